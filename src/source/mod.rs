//! ERP adapters behind one trait: pages of [`SourceInvoice`]s changed since a cursor.
//!
//! The engine drives a source like this:
//! 1. `pages(&cursor)` streams pages, lazily: memory holds one page at a time, whatever the
//!    number of invoices in the ERP.
//! 2. For each page, the engine commits every record (or records its failure), then calls
//!    `page_committed(&page.receipt)` and stores `page.receipt.cursor` as the new cursor.
//!
//! Adapters re-read an overlap window before the cursor (clock skew between the ERP's servers,
//! records committed late with an earlier timestamp); re-read invoices cost nothing downstream
//! because their fingerprint is unchanged.

mod build;
pub mod files;
mod limited;
pub mod rebillia;
pub mod requests;
pub mod unified;
pub mod write_back;

pub use build::{build, build_with};

use std::path::PathBuf;

use futures::stream::BoxStream;

use crate::domain::{RecordError, SourceInvoice};

pub use crate::domain::cursor::Cursor;

/// One page of records from a source.
#[derive(Debug)]
pub struct SourcePage {
    /// Valid invoices, and records that could not be taken with the reason.
    pub records: Vec<Result<SourceInvoice, RecordError>>,
    /// Give this back through [`Source::page_committed`] once every record is settled.
    pub receipt: PageReceipt,
}

/// What the engine hands back after committing a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageReceipt {
    /// The cursor to store once this page is committed.
    pub cursor: Cursor,
    /// `files` adapter: the export file this page finished, to move to `processed/`.
    pub finished_file: Option<PathBuf>,
}

/// A page-level failure: the source could not be read (records' own problems are
/// [`RecordError`]s inside a page instead).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Credentials refused: fix the config; retrying will not help.
    #[error("source {source_name}: credentials refused: {message}")]
    Unauthorized {
        source_name: String,
        message: String,
    },
    /// The ERP did not answer well (5xx, timeouts, connection errors) after the retries.
    #[error("source {source_name}: unavailable after retries: {message}")]
    Unavailable {
        source_name: String,
        message: String,
    },
    /// The ERP answered something this adapter cannot read (a changed API, a broken page).
    #[error("source {source_name}: unexpected answer: {message}")]
    Protocol {
        source_name: String,
        message: String,
    },
    /// The adapter's own tables in PostgreSQL (the unified adapter's ids and customers).
    #[error("source {source_name}: database: {message}")]
    Database {
        source_name: String,
        message: String,
    },
    /// A file or folder of the `files` adapter.
    #[error("source {source_name}: {}: {message}", path.display())]
    Io {
        source_name: String,
        path: PathBuf,
        message: String,
    },
}

impl SourceError {
    /// True when a later cycle may succeed without a config change.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. } | Self::Io { .. } | Self::Database { .. }
        )
    }
}

/// An ERP adapter.
#[async_trait::async_trait]
pub trait Source: Send + Sync {
    /// The source's name in the config (`[sources.<name>]`).
    fn name(&self) -> &str;

    /// Pages of invoices changed since `cursor` (minus the overlap window), oldest first where
    /// the ERP allows. The stream ends when the source has nothing more.
    fn pages<'a>(&'a self, cursor: &Cursor) -> BoxStream<'a, Result<SourcePage, SourceError>>;

    /// Called once every record of a page is committed or recorded as failed.
    async fn page_committed(&self, receipt: &PageReceipt) -> Result<(), SourceError> {
        let _ = receipt;
        Ok(())
    }

    /// What the operator should hear of this cycle's reading that is not a record's failure
    /// (an export set aside, files waiting for a marker); drained once per cycle.
    fn take_notices(&self) -> Vec<String> {
        Vec::new()
    }

    /// Reads these invoices (ERP ids) now, one by one (a webhook named them); each is the
    /// invoice or why it cannot be taken. `None`: this adapter cannot read by id (the caller
    /// runs a full cycle instead).
    async fn fetch(
        &self,
        external_ids: &[String],
    ) -> Option<Result<Vec<Result<SourceInvoice, RecordError>>, SourceError>> {
        let _ = external_ids;
        None
    }

    /// How this ERP takes B2B payments back (`None`: it cannot).
    fn payment_writer(&self) -> Option<&dyn write_back::PaymentWriter> {
        None
    }
}
