//! The export folder on disk: which files are complete and in what order, and where a file goes
//! once it is settled (`processed/` or `rejected/`, with its marker and its errors file).

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::ReadyRule;

/// Suffix of the marker that says `x.csv` is complete: `x.csv.ready`.
const MARKER_SUFFIX: &str = ".ready";
/// Suffix of the rejected-rows file of `x.csv` in `rejected/`: `x.csv.errors.ndjson`.
const ERRORS_SUFFIX: &str = ".errors.ndjson";
/// Suffix of the rejected-rows file while the export is still being read.
const PARTIAL_SUFFIX: &str = ".partial";

/// The two formats, told apart by extension (case-insensitive: Windows ERPs write `.CSV`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Csv,
    Ndjson,
}

impl Format {
    pub(super) fn of(path: &Path) -> Option<Self> {
        let ext = path.extension().and_then(OsStr::to_str)?;
        if ext.eq_ignore_ascii_case("csv") {
            Some(Self::Csv)
        } else if ext.eq_ignore_ascii_case("ndjson") {
            Some(Self::Ndjson)
        } else {
            None
        }
    }
}

/// Where a finished file goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Disposition {
    /// Read to the end: every row was committed or recorded as failed.
    Processed,
    /// Could not be read as an export at all (not UTF-8 text, bad header): set aside whole.
    Rejected,
}

/// Where a settled file ended up, for the log.
#[derive(Debug)]
pub(super) struct Settled {
    pub file: Option<PathBuf>,
    pub errors: Option<PathBuf>,
}

/// What a scan of the folder found.
#[derive(Debug, Default)]
pub(super) struct Listing {
    /// Complete export files, oldest first.
    pub ready: Vec<PathBuf>,
    /// Export files without their `.ready` marker (`ready = "marker"`): not read yet.
    pub unmarked: Vec<String>,
}

#[derive(Debug, Clone)]
pub(super) struct Folder {
    pub dir: PathBuf,
    processed: PathBuf,
    rejected: PathBuf,
}

impl Folder {
    /// The folder must exist (a typo in the config must not silently create an empty one);
    /// `processed/` and `rejected/` are created inside it when missing.
    pub(super) fn open(dir: &Path) -> io::Result<Self> {
        let meta = fs::metadata(dir)?;
        if !meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        let folder = Self {
            dir: dir.to_owned(),
            processed: dir.join("processed"),
            rejected: dir.join("rejected"),
        };
        fs::create_dir_all(&folder.processed)?;
        fs::create_dir_all(&folder.rejected)?;
        Ok(folder)
    }

    /// Complete export files, oldest first (modification time, then name), and the names of
    /// export files that wait for their `.ready` marker.
    ///
    /// Also moves away `.ready` markers whose file is gone (a crash between moving a file and
    /// moving its marker): left in place, such a marker would make a later export of the same
    /// name look complete while it is still being written.
    pub(super) fn ready_files(&self, rule: ReadyRule) -> io::Result<Listing> {
        let mut files = Vec::new();
        let mut unmarked = Vec::new();
        let mut orphan_markers = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            // Hidden names are other tools' work in progress (rsync writes `.x.csv.AbC123`).
            if name.starts_with('.') || !entry.file_type()?.is_file() {
                continue;
            }
            let path = entry.path();
            if let Some(data) = name.strip_suffix(MARKER_SUFFIX) {
                if Format::of(Path::new(data)).is_some() && !self.dir.join(data).exists() {
                    orphan_markers.push(path);
                }
                continue;
            }
            if Format::of(&path).is_none() {
                continue;
            }
            if rule == ReadyRule::Marker && !marker_of(&path).is_file() {
                unmarked.push(name.to_owned());
                continue;
            }
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            files.push((modified, name.to_owned(), path));
        }
        for marker in orphan_markers {
            let Some(name) = file_name(&marker) else {
                continue;
            };
            let target = unique_in(&self.processed, &name);
            match fs::rename(&marker, &target) {
                Ok(()) => tracing::info!(
                    marker = %marker.display(),
                    "moved a ready marker whose export file is gone to processed/"
                ),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        files.sort();
        unmarked.sort();
        Ok(Listing {
            ready: files.into_iter().map(|(_, _, path)| path).collect(),
            unmarked,
        })
    }

    /// Where the rejected rows of `file_name` are collected while it is read.
    pub(super) fn partial_errors(&self, file_name: &str) -> PathBuf {
        self.rejected
            .join(format!("{file_name}{ERRORS_SUFFIX}{PARTIAL_SUFFIX}"))
    }

    /// Finishes a file whose last page is committed: its rejected rows become
    /// `rejected/<name>.errors.ndjson` (atomically: the partial file is synced, then renamed),
    /// then the file and its marker move to `processed/` or `rejected/`.
    ///
    /// The order makes a crash anywhere harmless: until the file itself has moved, the next
    /// cycle reads it again and rewrites the same errors file under the same name.
    pub(super) fn settle(&self, file: &Path, disposition: Disposition) -> io::Result<Settled> {
        let name = file_name(file).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "the file name is not UTF-8")
        })?;
        let target_dir = match disposition {
            Disposition::Processed => &self.processed,
            Disposition::Rejected => &self.rejected,
        };
        // A later export may reuse a name: never overwrite what an earlier one left.
        let target = unique_in(target_dir, &name);
        let final_name = file_name(&target).unwrap_or(name.clone());

        let partial = self.partial_errors(&name);
        let errors = match fs::File::open(&partial) {
            Ok(f) => {
                f.sync_all()?;
                let errors = self.rejected.join(format!("{final_name}{ERRORS_SUFFIX}"));
                fs::rename(&partial, &errors)?;
                Some(errors)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let moved = match fs::rename(file, &target) {
            Ok(()) => Some(target.clone()),
            // Already settled (a receipt handed back twice): nothing left to move.
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let marker = marker_of(file);
        match fs::rename(&marker, marker_of(&target)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(Settled {
            file: moved,
            errors,
        })
    }
}

/// `x.csv` -> `x.csv.ready`.
pub(super) fn marker_of(path: &Path) -> PathBuf {
    let mut marker = path.as_os_str().to_owned();
    marker.push(MARKER_SUFFIX);
    PathBuf::from(marker)
}

pub(super) fn file_name(path: &Path) -> Option<String> {
    path.file_name().and_then(OsStr::to_str).map(str::to_owned)
}

/// `dir/name` when free, else `dir/stem~1.ext`, `dir/stem~2.ext`, ...
fn unique_in(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    let (stem, ext) = match name.split_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, format!(".{ext}")),
        _ => (name, String::new()),
    };
    (1u64..)
        .map(|n| dir.join(format!("{stem}~{n}{ext}")))
        .find(|candidate| !candidate.exists())
        .unwrap_or(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        fs::write(path, b"x").unwrap();
    }

    #[test]
    fn formats_are_told_by_extension() {
        assert_eq!(Format::of(Path::new("a.CSV")), Some(Format::Csv));
        assert_eq!(Format::of(Path::new("a.ndjson")), Some(Format::Ndjson));
        assert_eq!(Format::of(Path::new("a.csv.tmp")), None);
        assert_eq!(Format::of(Path::new("a.csv.ready")), None);
    }

    #[test]
    fn reused_names_get_a_counter_before_the_extension() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(unique_in(dir.path(), "a.csv"), dir.path().join("a.csv"));
        touch(&dir.path().join("a.csv"));
        touch(&dir.path().join("a~1.csv"));
        assert_eq!(unique_in(dir.path(), "a.csv"), dir.path().join("a~2.csv"));
        touch(&dir.path().join("noext"));
        assert_eq!(unique_in(dir.path(), "noext"), dir.path().join("noext~1"));
    }

    #[test]
    fn orphan_markers_are_moved_and_hidden_files_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let folder = Folder::open(dir.path()).unwrap();
        touch(&dir.path().join("gone.csv.ready"));
        touch(&dir.path().join(".hidden.csv"));
        touch(&dir.path().join("b.ndjson"));
        let files = folder.ready_files(ReadyRule::AtomicRename).unwrap();
        assert_eq!(files.ready, vec![dir.path().join("b.ndjson")]);
        assert!(files.unmarked.is_empty());
        let files = folder.ready_files(ReadyRule::Marker).unwrap();
        assert!(files.ready.is_empty());
        assert_eq!(files.unmarked, vec!["b.ndjson".to_owned()]);
        assert!(!dir.path().join("gone.csv.ready").exists());
        assert!(dir.path().join("processed/gone.csv.ready").exists());
    }
}
