//! Builds the configured adapter of a source.

use std::sync::Arc;

use sqlx::PgPool;

use super::files::FilesSource;
use super::rebillia::RebilliaSource;
use super::unified::UnifiedSource;
use super::{Source, SourceError};
use crate::config::{AdapterSettings, SourceSettings};

pub fn build(settings: &SourceSettings) -> Result<Arc<dyn Source>, SourceError> {
    build_with_pool(settings, None)
}

/// [`build`], with the database for adapters that keep state of their own (the unified
/// adapter's invoice ids and customers; without it they keep them in memory).
pub fn build_with_pool(
    settings: &SourceSettings,
    pool: Option<&PgPool>,
) -> Result<Arc<dyn Source>, SourceError> {
    Ok(match &settings.adapter {
        AdapterSettings::Unified(u) => Arc::new(UnifiedSource::with_pool(
            &settings.name,
            u,
            settings.overlap,
            pool.cloned(),
        )?),
        AdapterSettings::Rebillia(r) => {
            Arc::new(RebilliaSource::new(&settings.name, r, settings.overlap)?)
        }
        AdapterSettings::Files(f) => Arc::new(FilesSource::new(&settings.name, f)?),
    })
}
