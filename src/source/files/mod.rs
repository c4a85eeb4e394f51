//! The `files` adapter: a folder of CSV / NDJSON exports in the canonical schema
//! (`docs/erp-export-format.md`), for ERPs that can only drop files.
//!
//! Progress is tracked by moving files, not by a watermark: a file whose last page is committed
//! moves to `processed/` (or, when it could not be read as an export at all, to `rejected/`),
//! so what is left in the folder is exactly what is still to do. Exports carry no trustworthy
//! "updated since" order across files, so receipts hand back the incoming cursor unchanged.
//!
//! Reading is blocking file I/O, done on tokio's blocking pool one page at a time: memory holds
//! a page, one record of look-ahead and the ids of the current file (an id repeated in one
//! export is refused, CSV or NDJSON), never a whole file.
//!
//! Payments flow back as one NDJSON file per event in `outbox/` (see `write_back`); the folder
//! scan takes only files directly in the folder, so the outbox is never read as an export.

mod csv_export;
mod folder;
mod ndjson;
mod reader;
mod registry;
mod rejects;
mod seen;
mod write_back;

pub use write_back::{outbox_file_name, OUTBOX_DIR};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use futures::stream::BoxStream;

use crate::config::{FilesSettings, ReadyRule, RecordLimits};

use self::folder::{file_name, Disposition, Folder};
use self::reader::{Chunk, ExportFile};
use self::registry::{Content, Registry};
use super::{Cursor, PageReceipt, Source, SourceError, SourcePage};

/// Reads a folder of export files; see the module docs.
pub struct FilesSource {
    name: Arc<str>,
    folder: Arc<Folder>,
    ready: ReadyRule,
    page_size: usize,
    /// Records beyond them are refused like any invalid row (default: the config's defaults).
    limits: Arc<RecordLimits>,
    /// Files whose last page has been handed out, and where they go once it is committed.
    finishing: Mutex<HashMap<PathBuf, Finishing>>,
    /// Imported exports by content (with a database): an export dropped again is set aside.
    registry: Option<Registry>,
    /// What the run report should tell the operator (see [`Source::take_notices`]).
    notices: Mutex<Vec<String>>,
}

/// A file whose last page is out: where it goes, and its content for the registry.
#[derive(Debug, Clone)]
struct Finishing {
    disposition: Disposition,
    content: Option<Content>,
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
            limits: Arc::default(),
            finishing: Mutex::new(HashMap::new()),
            registry: None,
            notices: Mutex::new(Vec::new()),
        })
    }

    /// Refuses records beyond `limits` (`[sources.<name>.limits]`), each in its file and line.
    pub fn with_limits(mut self, limits: RecordLimits) -> Self {
        self.limits = Arc::new(limits);
        self
    }

    /// Remembers settled exports by content in `export_files`, so that one dropped into the
    /// folder again (any name, any time) is set aside instead of read: its records could only
    /// take B2B back to older versions.
    pub fn with_registry(mut self, pool: sqlx::PgPool) -> Self {
        self.registry = Some(Registry::new(pool));
        self
    }

    fn notice(&self, text: String) {
        self.notices
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(text);
    }

    /// The file's content, and the earlier import of the same content if there was one.
    async fn imported_before(
        &self,
        path: &Path,
    ) -> Result<Option<(Content, Option<registry::Imported>)>, SourceError> {
        let Some(registry) = &self.registry else {
            return Ok(None);
        };
        let file = path.to_owned();
        let content = match tokio::task::spawn_blocking(move || Content::of(&file))
            .await
            .map_err(std::io::Error::other)
            .and_then(|c| c)
        {
            Ok(content) => content,
            // Moved away meanwhile, or unreadable now: `open` says so and skips it.
            Err(_) => return Ok(None),
        };
        let found = registry
            .find(&self.name, &content)
            .await
            .map_err(|e| self.io_error(path, "checking which exports were imported failed", e))?;
        Ok(Some((content, found)))
    }

    fn io_error(&self, path: &Path, what: &str, e: impl std::fmt::Display) -> SourceError {
        SourceError::Io {
            source_name: self.name.to_string(),
            path: path.to_owned(),
            message: format!("{what}: {e}"),
        }
    }

    async fn ready_files(&self) -> Result<folder::Listing, SourceError> {
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
        let limits = self.limits.clone();
        let opened =
            tokio::task::spawn_blocking(move || ExportFile::open(&source, &folder, &file, &limits))
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

    fn mark_finishing(&self, path: &Path, finishing: Finishing) {
        self.finishing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path.to_owned(), finishing);
    }

    /// Moves a settled file (and its marker) away on the blocking pool.
    async fn settle(
        &self,
        file: &Path,
        disposition: Disposition,
    ) -> std::io::Result<folder::Settled> {
        let folder = self.folder.clone();
        let target = file.to_owned();
        tokio::task::spawn_blocking(move || folder.settle(&target, disposition))
            .await
            .map_err(std::io::Error::other)
            .and_then(|settled| settled)
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
            let listing = match self.ready_files().await {
                Ok(listing) => listing,
                Err(e) => {
                    yield Err(e);
                    return;
                }
            };
            if !listing.unmarked.is_empty() {
                tracing::info!(source = %self.name, files = ?listing.unmarked, "export files wait for their .ready marker");
                self.notice(format!(
                    "{} export file(s) wait for their .ready marker and were not read: {} \
                     (sources.{}.files.ready = \"marker\": write <file>.ready once an export is complete, \
                     or use ready = \"atomic_rename\" if exports are renamed into place)",
                    listing.unmarked.len(),
                    listing.unmarked.join(", "),
                    self.name
                ));
            }
            for path in listing.ready {
                let content = match self.imported_before(&path).await {
                    Ok(Some((_, Some(earlier)))) => {
                        self.set_aside(&path, &earlier).await;
                        continue;
                    }
                    Ok(Some((content, None))) => Some(content),
                    Ok(None) => None,
                    Err(e) => {
                        yield Err(e);
                        return;
                    }
                };
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
                        self.mark_finishing(
                            &path,
                            Finishing {
                                disposition: export.disposition,
                                content: content.clone(),
                            },
                        );
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
        let finishing = self
            .finishing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&file)
            .unwrap_or(Finishing {
                disposition: Disposition::Processed,
                content: None,
            });
        if let (Some(registry), Some(content)) = (&self.registry, &finishing.content) {
            let name = file_name(&file).unwrap_or_default();
            if let Err(e) = registry.record(&self.name, &name, content).await {
                self.mark_finishing(&file, finishing.clone());
                return Err(self.io_error(&file, "recording the imported export failed", e));
            }
        }
        let settled = self
            .settle(&file, finishing.disposition)
            .await
            .map_err(|e| {
                // Put it back so a retried commit still knows where the file goes.
                self.mark_finishing(&file, finishing.clone());
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

    fn take_notices(&self) -> Vec<String> {
        std::mem::take(&mut *self.notices.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl FilesSource {
    /// An export whose content was imported before: moved to `processed/` unread, and named.
    async fn set_aside(&self, path: &Path, earlier: &registry::Imported) {
        let name = file_name(path).unwrap_or_default();
        let moved = self.settle(path, Disposition::Processed).await;
        let to = match &moved {
            Ok(settled) => settled
                .file
                .as_ref()
                .map_or_else(|| "processed/".to_owned(), |f| f.display().to_string()),
            Err(e) => format!("nowhere (moving it failed: {e}; it is set aside again next cycle)"),
        };
        tracing::warn!(
            source = %self.name,
            file = %path.display(),
            imported_as = %earlier.file_name,
            imported_at = %earlier.settled_at,
            "export dropped again: already imported, set aside unread"
        );
        self.notice(format!(
            "export file {name} was already imported on {} (as {}): set aside unread, moved to {to}; \
             an old export read again could only take B2B back to older versions",
            earlier.settled_at.format("%Y-%m-%d %H:%M:%S UTC"),
            earlier.file_name
        ));
    }
}
