//! The `files` adapter: a folder of CSV / NDJSON exports in the canonical schema
//! (`docs/erp-export-format.md`), for ERPs that can only drop files.
//!
//! Progress is tracked by moving files, not by a watermark: a file whose last page is committed
//! moves to `processed/` (or, when it could not be read as an export at all, to `rejected/`),
//! so what is left in the folder is exactly what is still to do. Exports carry no trustworthy
//! "updated since" order across files, so receipts hand back the incoming cursor unchanged.
//!
//! Reading is blocking file I/O, done on tokio's blocking pool one page at a time: memory holds
//! a page, one record of look-ahead and the ids of the current file (CSV), never a whole file.
//!
//! Payments flow back as one NDJSON file per event in `outbox/` (see `write_back`); the folder
//! scan takes only files directly in the folder, so the outbox is never read as an export.

mod csv_export;
mod folder;
mod ndjson;
mod reader;
mod rejects;
mod write_back;

pub use write_back::{outbox_file_name, OUTBOX_DIR};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use futures::stream::BoxStream;

use crate::config::{FilesSettings, ReadyRule};

use self::folder::{Disposition, Folder};
use self::reader::{Chunk, ExportFile};
use super::{Cursor, PageReceipt, Source, SourceError, SourcePage};

/// Reads a folder of export files; see the module docs.
pub struct FilesSource {
    name: Arc<str>,
    folder: Arc<Folder>,
    ready: ReadyRule,
    page_size: usize,
    /// Files whose last page has been handed out, and where they go once it is committed.
    finishing: Mutex<HashMap<PathBuf, Disposition>>,
}

impl std::fmt::Debug for FilesSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilesSource")
            .field("name", &self.name)
            .field("dir", &self.folder.dir)
            .field("ready", &self.ready)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl FilesSource {
    /// The export folder must exist; `processed/` and `rejected/` are created in it if missing.
    pub fn new(name: &str, settings: &FilesSettings) -> Result<Self, SourceError> {
        let folder = Folder::open(&settings.dir).map_err(|e| SourceError::Io {
            source_name: name.to_owned(),
            path: settings.dir.clone(),
            message: format!(
                "cannot use the export folder: {e} (check sources.{name}.files.dir; \
                 the folder must exist and be writable)"
            ),
        })?;
        Ok(Self {
            name: name.into(),
            folder: Arc::new(folder),
            ready: settings.ready,
            page_size: usize::try_from(settings.page_size.get()).unwrap_or(usize::MAX),
            finishing: Mutex::new(HashMap::new()),
        })
    }

    fn io_error(&self, path: &Path, what: &str, e: impl std::fmt::Display) -> SourceError {
        SourceError::Io {
            source_name: self.name.to_string(),
            path: path.to_owned(),
            message: format!("{what}: {e}"),
        }
    }

    async fn ready_files(&self) -> Result<Vec<PathBuf>, SourceError> {
        let folder = self.folder.clone();
        let rule = self.ready;
        tokio::task::spawn_blocking(move || folder.ready_files(rule))
            .await
            .map_err(|e| self.io_error(&self.folder.dir, "listing the export folder failed", e))?
            .map_err(|e| self.io_error(&self.folder.dir, "cannot list the export folder", e))
    }

    /// Opens a file on the blocking pool; `None` (logged) when it cannot be read now.
    async fn open(&self, path: &Path) -> Option<ExportFile> {
        let (source, folder, file) = (self.name.clone(), self.folder.clone(), path.to_owned());
        let opened = tokio::task::spawn_blocking(move || ExportFile::open(&source, &folder, &file))
            .await
            .map_err(std::io::Error::other);
        match opened {
            Ok(Ok(export)) => Some(export),
            // Moved away between listing and opening (another tool, an operator): nothing to do.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => None,
            Ok(Err(e)) | Err(e) => {
                tracing::warn!(
                    source = %self.name,
                    file = %path.display(),
                    error = %e,
                    "cannot read export file; leaving it in place for the next cycle"
                );
                None
            }
        }
    }

    /// Reads the next page on the blocking pool; the file comes back with it.
    async fn next_page(&self, mut export: ExportFile) -> std::io::Result<(ExportFile, Chunk)> {
        let size = self.page_size;
        let (export, chunk) = tokio::task::spawn_blocking(move || {
            let chunk = export.next_page(size);
            (export, chunk)
        })
        .await
        .map_err(std::io::Error::other)?;
        Ok((export, chunk?))
    }

    fn mark_finishing(&self, path: &Path, disposition: Disposition) {
        self.finishing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path.to_owned(), disposition);
    }
}

#[async_trait::async_trait]
impl Source for FilesSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn payment_writer(&self) -> Option<&dyn super::write_back::PaymentWriter> {
        Some(self)
    }

    fn pages<'a>(&'a self, cursor: &Cursor) -> BoxStream<'a, Result<SourcePage, SourceError>> {
        let cursor = cursor.clone();
        Box::pin(async_stream::stream! {
            let files = match self.ready_files().await {
                Ok(files) => files,
                Err(e) => {
                    yield Err(e);
                    return;
                }
            };
            for path in files {
                let Some(mut export) = self.open(&path).await else {
                    continue;
                };
                tracing::info!(source = %self.name, file = %path.display(), "reading export file");
                loop {
                    let chunk = match self.next_page(export).await {
                        Ok((next, chunk)) => {
                            export = next;
                            chunk
                        }
                        Err(e) => {
                            // Pages already handed out stay valid; the file is read again
                            // next cycle (re-read invoices cost nothing downstream).
                            tracing::warn!(
                                source = %self.name,
                                file = %path.display(),
                                error = %e,
                                "reading export file failed; leaving it in place for the next cycle"
                            );
                            break;
                        }
                    };
                    let finished_file = if chunk.last {
                        let (taken, rejected) = export.counts();
                        tracing::info!(
                            source = %self.name,
                            file = %path.display(),
                            invoices = taken,
                            rejected,
                            whole_file_refused = export.disposition == Disposition::Rejected,
                            "export file read to the end"
                        );
                        self.mark_finishing(&path, export.disposition);
                        Some(path.clone())
                    } else {
                        None
                    };
                    yield Ok(SourcePage {
                        records: chunk.records,
                        receipt: PageReceipt {
                            cursor: cursor.clone(),
                            finished_file,
                        },
                    });
                    if chunk.last {
                        break;
                    }
                }
            }
        })
    }

    async fn page_committed(&self, receipt: &PageReceipt) -> Result<(), SourceError> {
        let Some(file) = receipt.finished_file.clone() else {
            return Ok(());
        };
        let disposition = self
            .finishing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&file)
            .unwrap_or(Disposition::Processed);
        let folder = self.folder.clone();
        let target = file.clone();
        let settled = tokio::task::spawn_blocking(move || folder.settle(&target, disposition))
            .await
            .map_err(std::io::Error::other)
            .and_then(|settled| settled)
            .map_err(|e| {
                // Put it back so a retried commit still knows where the file goes.
                self.mark_finishing(&file, disposition);
                self.io_error(&file, "cannot move the finished export file", e)
            })?;
        tracing::info!(
            source = %self.name,
            file = %file.display(),
            moved_to = ?settled.file,
            errors_file = ?settled.errors,
            "export file settled"
        );
        Ok(())
    }
}
