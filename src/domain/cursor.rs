//! How far a source has been read. Pure: the engine advances it, the store keeps it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How far a source has been read: the updated-since watermark of the last committed page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Every invoice updated at or before this instant has been committed (or recorded as
    /// failed). `None`: nothing read yet, start from the beginning.
    pub watermark: Option<DateTime<Utc>>,
}

impl Cursor {
    pub fn at(watermark: DateTime<Utc>) -> Self {
        Self {
            watermark: Some(watermark),
        }
    }

    /// Where to start reading: the watermark minus the overlap window.
    pub fn read_from(&self, overlap: Duration) -> Option<DateTime<Utc>> {
        let overlap = chrono::Duration::from_std(overlap).unwrap_or(chrono::Duration::zero());
        self.watermark.map(|w| w - overlap)
    }

    /// The later of two cursors (a cursor never moves back).
    pub fn max(self, other: Cursor) -> Cursor {
        Cursor {
            watermark: self.watermark.max(other.watermark),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_starts_an_overlap_before_the_watermark() {
        let w = DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let c = Cursor::at(w);
        assert_eq!(
            c.read_from(Duration::from_secs(300))
                .map(|t| t.to_rfc3339()),
            Some("2026-11-21T09:55:00+00:00".to_owned())
        );
        assert_eq!(Cursor::default().read_from(Duration::from_secs(300)), None);
        assert_eq!(Cursor::default().max(c.clone()), c);
    }
}
