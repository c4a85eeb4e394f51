//! One export file being read: sniffed, then streamed record by record into bounded pages, its
//! rejected rows logged to disk on the way.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::config::RecordLimits;
use crate::domain::{
    check_limits, RawInvoice, RecordError, RecordLocator, SourceInvoice, SourceVersion,
};

use super::csv_export::{CsvRecords, HeaderProblem};
use super::folder::{file_name, Disposition, Folder, Format};
use super::ndjson::NdjsonRecords;
use super::rejects::{RawText, RejectLog, Rejection};

pub(super) type Record = Result<SourceInvoice, Rejection>;

/// A file's records in order. `Err` only when the file itself can no longer be read.
pub(super) trait Records: Send {
    fn next_record(&mut self) -> io::Result<Option<Record>>;
}

/// `IdAtLine` when the record's id is known, else `Line`.
pub(super) fn locator(file: &Arc<str>, line: u64, id: Option<&str>) -> RecordLocator {
    match id {
        Some(id) => RecordLocator::IdAtLine {
            id: id.into(),
            file: file.clone(),
            line,
        },
        None => RecordLocator::Line {
            file: file.clone(),
            line,
        },
    }
}

/// `raw` as an invoice of `source` within `limits`, or why not.
pub(super) fn take(
    source: &str,
    at: RecordLocator,
    raw: RawInvoice,
    limits: &RecordLimits,
) -> Result<SourceInvoice, RecordError> {
    let invoice = SourceInvoice::parse(source, at.clone(), raw)?;
    check_limits(&invoice, limits, &at)?;
    Ok(invoice)
}

/// Up to a page of records, and whether the file is done.
pub(super) struct Chunk {
    pub records: Vec<Result<SourceInvoice, RecordError>>,
    pub last: bool,
}

pub(super) struct ExportFile {
    pub disposition: Disposition,
    /// The file's place in the folder's order, as a version for its records (see `version`).
    file_time: DateTime<Utc>,
    tie: Arc<str>,
    records: Box<dyn Records>,
    /// One record read ahead, so the page that ends the file knows it does.
    peeked: Option<Record>,
    rejects: RejectLog,
    taken: u64,
}

impl ExportFile {
    /// Opens `path`. `Err` is an I/O failure (the file stays where it is, for a later cycle);
    /// a file that is not a readable export opens fine as one whole-file rejection.
    pub(super) fn open(
        source: &Arc<str>,
        folder: &Folder,
        path: &Path,
        limits: &Arc<RecordLimits>,
    ) -> io::Result<Self> {
        let name: Arc<str> = file_name(path)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "file name not UTF-8"))?
            .into();
        let rejects = RejectLog::start(name.clone(), folder.partial_errors(&name))?;
        let file = File::open(path)?;
        let file_time: DateTime<Utc> = file.metadata()?.modified()?.into();
        let tie = format!(
            "{}|{name}",
            file_time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        );
        let mut input = BufReader::with_capacity(64 * 1024, file);
        let refuse = |reason: String, raw: String| {
            let error = RecordError::whole(source.clone(), locator(&name, 1, None), reason);
            let refused: Box<dyn Records> = Box::new(Refused(Some(Rejection { error, raw })));
            (refused, Disposition::Rejected)
        };
        let (records, disposition) = match sniff(&mut input)? {
            Err((reason, raw)) => refuse(reason, raw),
            Ok(()) => match Format::of(path) {
                Some(Format::Ndjson) => {
                    let records: Box<dyn Records> = Box::new(NdjsonRecords::new(
                        source.clone(),
                        name.clone(),
                        input,
                        limits.clone(),
                    ));
                    (records, Disposition::Processed)
                }
                Some(Format::Csv) => {
                    match CsvRecords::new(source.clone(), name.clone(), input, limits.clone()) {
                        Ok(records) => {
                            let records: Box<dyn Records> = Box::new(records);
                            (records, Disposition::Processed)
                        }
                        Err(HeaderProblem::Io(e)) => return Err(e),
                        Err(HeaderProblem::Refused { reason, raw }) => refuse(reason, raw),
                    }
                }
                None => refuse("neither .csv nor .ndjson".to_owned(), String::new()),
            },
        };
        Ok(Self {
            disposition,
            file_time,
            tie: tie.into(),
            records,
            peeked: None,
            rejects,
            taken: 0,
        })
    }

    /// At most `max` records (at least one unless the file is done). Rejected rows are on disk
    /// in the partial errors file when this returns.
    pub(super) fn next_page(&mut self, max: usize) -> io::Result<Chunk> {
        let mut records = Vec::with_capacity(max.min(1024));
        while records.len() < max {
            let next = match self.peeked.take() {
                Some(record) => record,
                None => match self.records.next_record()? {
                    Some(record) => record,
                    None => break,
                },
            };
            records.push(self.settle(next)?);
        }
        if records.len() == max {
            self.peeked = self.records.next_record()?;
        }
        self.rejects.flush()?;
        Ok(Chunk {
            records,
            last: self.peeked.is_none(),
        })
    }

    fn settle(&mut self, record: Record) -> io::Result<Result<SourceInvoice, RecordError>> {
        match record {
            Ok(invoice) => {
                self.taken += 1;
                let version = self.version(invoice.updated_at);
                Ok(Ok(invoice.with_version(Some(version))))
            }
            Err(rejection) => {
                self.rejects.record(&rejection)?;
                Ok(Err(rejection.error))
            }
        }
    }

    /// A record's version: the ERP's updated-at when the row has one, else the file's time; of
    /// records of one instant, the later file in the folder's order (time, then name) is newer.
    /// So an export read again after a crash, or an older one, never outranks a newer one.
    fn version(&self, updated_at: Option<DateTime<Utc>>) -> SourceVersion {
        SourceVersion::with_tie(updated_at.unwrap_or(self.file_time), self.tie.as_ref())
    }

    pub(super) fn counts(&self) -> (u64, u64) {
        (self.taken, self.rejects.count())
    }
}

/// A file refused whole: its one record is the reason.
struct Refused(Option<Rejection>);

impl Records for Refused {
    fn next_record(&mut self) -> io::Result<Option<Record>> {
        Ok(self.0.take().map(Err))
    }
}

/// Checks that the file starts as UTF-8 text and skips a UTF-8 byte order mark. A garbled or
/// binary file is caught here as a whole, rather than as one rejected row per line.
fn sniff(input: &mut impl BufRead) -> io::Result<Result<(), (String, String)>> {
    let head = input.fill_buf()?;
    let first_line = head
        .iter()
        .position(|&b| b == b'\n')
        .map_or(head, |end| &head[..end]);
    let shown = || {
        RawText::of(&String::from_utf8_lossy(
            &first_line[..first_line.len().min(256)],
        ))
    };
    let problem = if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        Some("UTF-16 text; export as UTF-8")
    } else if head.starts_with(b"PK\x03\x04") {
        Some("a ZIP archive (an .xlsx workbook?), not text; export as CSV or NDJSON")
    } else if first_line.contains(&0) {
        Some("binary data, not text")
    } else {
        match std::str::from_utf8(first_line) {
            Ok(_) => None,
            // A character cut by the end of the buffer is fine; a bad byte before it is not.
            Err(e) if e.error_len().is_none() => None,
            Err(_) => Some("not UTF-8 text"),
        }
    };
    if let Some(reason) = problem {
        return Ok(Err((format!("file refused: {reason}"), shown())));
    }
    if head.starts_with(b"\xEF\xBB\xBF") {
        input.consume(3);
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sniffed(bytes: &[u8]) -> (Result<(), String>, Vec<u8>) {
        let mut input = bytes;
        let verdict = sniff(&mut input).unwrap().map_err(|(reason, _)| reason);
        (verdict, input.to_vec())
    }

    #[test]
    fn garbled_starts_are_refused_whole() {
        for (bytes, why) in [
            (&b"\xff\xfee\x00x\x00"[..], "UTF-16"),
            (b"PK\x03\x04\x14\x00", "ZIP archive"),
            (b"abc\x00def\n", "binary data"),
            (b"caf\xe9,x\n", "not UTF-8"),
        ] {
            let reason = sniffed(bytes).0.unwrap_err();
            assert!(reason.contains(why), "{reason}");
        }
    }

    #[test]
    fn text_passes_and_a_bom_is_skipped() {
        assert_eq!(sniffed(b"\xEF\xBB\xBFa,b\n\xff").1, b"a,b\n\xff");
        assert_eq!(sniffed(b"").0, Ok(()));
        // Only the first line is judged: a later bad byte is that row's problem.
        assert_eq!(sniffed(b"\xc3\xa9,x\n\xff\n").0, Ok(()));
    }
}
