//! Where a record came from, and why it was refused.

use std::fmt;
use std::sync::Arc;

/// Identifies one ERP record for an operator: its id when known, or its file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
///
/// Strings are boxed or shared (a file's name is shared by all its rows' errors) to keep
/// `Result<_, RecordError>` small on the hot parse path.
pub enum RecordLocator {
    /// The record's id in the ERP (remoteId, Rebillia invoice id, external_id column).
    Id(Box<str>),
    /// A row of an export file, 1-based line number (for CSV the header is line 1).
    Line { file: Arc<str>, line: u64 },
    /// A row of an export file whose id is also known.
    IdAtLine {
        id: Box<str>,
        file: Arc<str>,
        line: u64,
    },
}

impl RecordLocator {
    pub fn id(id: impl Into<Box<str>>) -> Self {
        Self::Id(id.into())
    }
}

impl fmt::Display for RecordLocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "record {id}"),
            Self::Line { file, line } => write!(f, "{file} line {line}"),
            Self::IdAtLine { id, file, line } => write!(f, "record {id} ({file} line {line})"),
        }
    }
}

/// A record the daemon cannot take: which source, which record, which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("source {source_name}, {record}: {}{reason}", field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
pub struct RecordError {
    pub source_name: Arc<str>,
    pub record: RecordLocator,
    /// The canonical field name (`currency`, `line_items[2].quantity`); `None` for the whole record.
    pub field: Option<Box<str>>,
    pub reason: Box<str>,
}

impl RecordError {
    pub fn new(
        source_name: impl Into<Arc<str>>,
        record: RecordLocator,
        field: Option<&str>,
        reason: impl Into<Box<str>>,
    ) -> Self {
        Self {
            source_name: source_name.into(),
            record,
            field: field.map(Box::from),
            reason: reason.into(),
        }
    }

    /// A whole-record problem (unreadable JSON, a row with the wrong number of columns).
    pub fn whole(
        source_name: impl Into<Arc<str>>,
        record: RecordLocator,
        reason: impl Into<Box<str>>,
    ) -> Self {
        Self::new(source_name, record, None, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_source_record_field_and_reason() {
        let e = RecordError::new(
            "erp",
            RecordLocator::IdAtLine {
                id: "INV-9".into(),
                file: "a.csv".into(),
                line: 12,
            },
            Some("currency"),
            "`USX` is not an ISO 4217 currency code",
        );
        assert_eq!(
            e.to_string(),
            "source erp, record INV-9 (a.csv line 12): field `currency`: `USX` is not an ISO 4217 currency code"
        );
        let e = RecordError::whole(
            "erp",
            RecordLocator::Line {
                file: "b.ndjson".into(),
                line: 3,
            },
            "not JSON",
        );
        assert_eq!(e.to_string(), "source erp, b.ndjson line 3: not JSON");
    }
}
