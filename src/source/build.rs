//! Builds the configured adapter of a source.

use std::sync::Arc;

use super::files::FilesSource;
use super::limited::Limited;
use super::rebillia::RebilliaSource;
use super::unified::UnifiedSource;
use super::{Source, SourceError};
use crate::config::{AdapterSettings, SourceSettings};

/// The adapter refuses records beyond the source's limits (`[sources.<name>.limits]`).
pub fn build(settings: &SourceSettings) -> Result<Arc<dyn Source>, SourceError> {
    build_with(settings, None)
}

/// [`build`], with the database for what an adapter keeps there (the `files` adapter's record
/// of imported exports; the unified adapter's invoice ids and customers, which it otherwise
/// keeps in memory).
pub fn build_with(
    settings: &SourceSettings,
    pool: Option<&sqlx::PgPool>,
) -> Result<Arc<dyn Source>, SourceError> {
    let api: Arc<dyn Source> = match &settings.adapter {
        AdapterSettings::Unified(u) => Arc::new(UnifiedSource::with_pool(
            &settings.name,
            u,
            settings.overlap,
            pool.cloned(),
        )?),
        AdapterSettings::Rebillia(r) => {
            Arc::new(RebilliaSource::new(&settings.name, r, settings.overlap)?)
        }
        AdapterSettings::Files(f) => {
            // The files adapter checks the limits itself: refusals name the file and line.
            let files = FilesSource::new(&settings.name, f)?.with_limits(settings.limits.clone());
            return Ok(Arc::new(match pool {
                Some(pool) => files.with_registry(pool.clone()),
                None => files,
            }));
        }
    };
    Ok(Arc::new(Limited::new(api, settings.limits.clone())))
}
