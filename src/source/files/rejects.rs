//! Rejected rows: what the engine gets (a `RecordError`) plus the raw text an operator needs to
//! fix the row, written to disk as they are found so memory never holds a file's worth of them.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::domain::{RecordError, RecordLocator};

/// Raw text kept per rejected record: enough to find and fix the row, bounded so that one
/// monstrous row cannot blow up memory or the errors file.
pub(super) const MAX_RAW_BYTES: usize = 64 * 1024;
const TRUNCATED: &str = " [truncated]";

/// A record that could not be taken, with its text as found in the file.
#[derive(Debug)]
pub(super) struct Rejection {
    pub error: RecordError,
    pub raw: String,
}

/// Text of rejected rows, capped at [`MAX_RAW_BYTES`].
#[derive(Debug, Default)]
pub(super) struct RawText {
    text: String,
    truncated: bool,
}

impl RawText {
    pub(super) fn push_line(&mut self, line: &str) {
        if self.truncated {
            return;
        }
        let separator = usize::from(!self.text.is_empty());
        if self.text.len() + separator + line.len() > MAX_RAW_BYTES {
            let room = MAX_RAW_BYTES.saturating_sub(self.text.len() + separator);
            if separator == 1 {
                self.text.push('\n');
            }
            self.text.push_str(prefix(line, room));
            self.text.push_str(TRUNCATED);
            self.truncated = true;
            return;
        }
        if separator == 1 {
            self.text.push('\n');
        }
        self.text.push_str(line);
    }

    pub(super) fn into_string(self) -> String {
        self.text
    }

    pub(super) fn of(line: &str) -> String {
        let mut raw = Self::default();
        raw.push_line(line);
        raw.into_string()
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn prefix(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// One line of `rejected/<file>.errors.ndjson`.
#[derive(Debug, Serialize)]
struct RejectedRow<'a> {
    file: &'a str,
    /// 1-based line of the record's first row (CSV: the header is line 1).
    line: Option<u64>,
    external_id: Option<&'a str>,
    /// The canonical field (`currency`, `line_items[1].quantity`) or CSV column; none when
    /// the whole row is at fault.
    field: Option<&'a str>,
    reason: &'a str,
    raw: &'a str,
}

/// Appends a file's rejected rows to its `.partial` errors file, created on the first one.
pub(super) struct RejectLog {
    file: Arc<str>,
    path: PathBuf,
    out: Option<BufWriter<File>>,
    count: u64,
}

impl RejectLog {
    /// Starts afresh: a partial file left by an interrupted read of the same export is stale.
    pub(super) fn start(file: Arc<str>, path: PathBuf) -> io::Result<Self> {
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(Self {
            file,
            path,
            out: None,
            count: 0,
        })
    }

    pub(super) fn record(&mut self, rejection: &Rejection) -> io::Result<()> {
        let out = match &mut self.out {
            Some(out) => out,
            None => self.out.insert(BufWriter::new(File::create(&self.path)?)),
        };
        let (line, external_id) = match &rejection.error.record {
            RecordLocator::Id(id) => (None, Some(&**id)),
            RecordLocator::Line { line, .. } => (Some(*line), None),
            RecordLocator::IdAtLine { id, line, .. } => (Some(*line), Some(&**id)),
        };
        let row = RejectedRow {
            file: &self.file,
            line,
            external_id,
            field: rejection.error.field.as_deref(),
            reason: &rejection.error.reason,
            raw: &rejection.raw,
        };
        serde_json::to_writer(&mut *out, &row)?;
        out.write_all(b"\n")?;
        self.count += 1;
        Ok(())
    }

    /// Pushes what was recorded to the file (once per page: rows are on disk as they are found).
    pub(super) fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }

    pub(super) fn count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_text_is_capped_on_a_character_boundary() {
        let mut raw = RawText::default();
        raw.push_line("a,b");
        raw.push_line(&"é".repeat(MAX_RAW_BYTES));
        raw.push_line("never");
        let text = raw.into_string();
        assert!(text.starts_with("a,b\né"), "{}", &text[..10]);
        assert!(text.ends_with(TRUNCATED));
        assert!(text.len() <= MAX_RAW_BYTES + TRUNCATED.len());
        assert!(!text.contains("never"));
    }

    #[test]
    fn rows_are_written_one_json_line_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv.errors.ndjson.partial");
        fs::write(&path, "stale\n").unwrap();
        let mut log = RejectLog::start("a.csv".into(), path.clone()).unwrap();
        assert!(
            !path.exists(),
            "a stale partial file is removed at the start"
        );
        let error = RecordError::new(
            "erp",
            RecordLocator::IdAtLine {
                id: "INV-1".into(),
                file: "a.csv".into(),
                line: 3,
            },
            Some("currency"),
            "`USX` is not an ISO 4217 currency code",
        );
        log.record(&Rejection {
            error,
            raw: "INV-1,USX".into(),
        })
        .unwrap();
        log.flush().unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let row: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(row["line"], 3);
        assert_eq!(row["external_id"], "INV-1");
        assert_eq!(row["field"], "currency");
        assert_eq!(row["raw"], "INV-1,USX");
        assert_eq!(log.count(), 1);
    }
}
