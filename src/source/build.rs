//! Builds the configured adapter of a source.

use std::sync::Arc;

use super::files::FilesSource;
use super::rebillia::RebilliaSource;
use super::unified::UnifiedSource;
use super::{Source, SourceError};
use crate::config::{AdapterSettings, SourceSettings};

pub fn build(settings: &SourceSettings) -> Result<Arc<dyn Source>, SourceError> {
    Ok(match &settings.adapter {
        AdapterSettings::Unified(u) => {
            Arc::new(UnifiedSource::new(&settings.name, u, settings.overlap)?)
        }
        AdapterSettings::Rebillia(r) => {
            Arc::new(RebilliaSource::new(&settings.name, r, settings.overlap)?)
        }
        AdapterSettings::Files(f) => Arc::new(FilesSource::new(&settings.name, f)?),
    })
}
