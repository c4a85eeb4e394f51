//! Which of two records of one ERP invoice is the newer: the rule that keeps B2B from ever
//! going back to an older version of an invoice (a re-read export after a crash, an old export
//! dropped again, a lagging cache).
//!
//! A version is the ERP's own updated-at when the record has one; an export file without it
//! versions its records by the file's time, and records of the same instant are ordered by a
//! tie-breaker (for exports: the file's time and name, so a later file of the folder's order
//! wins). A record without any version is taken as the newest there is: nothing can say
//! otherwise.
//!
//! Stored as one text key that sorts like the version (`2026-11-02T10:00:00.000000000Z|tie`), so
//! the database and an operator read the same order.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};

/// The version of one ERP record; compare with `<`: later instants, then later tie-breakers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceVersion {
    at: DateTime<Utc>,
    tie: String,
}

impl SourceVersion {
    /// The ERP's own updated-at.
    pub fn at(at: DateTime<Utc>) -> Self {
        Self {
            at,
            tie: String::new(),
        }
    }

    /// `at`, with records of the same instant ordered by `tie`.
    pub fn with_tie(at: DateTime<Utc>, tie: impl Into<String>) -> Self {
        Self {
            at,
            tie: tie.into(),
        }
    }

    pub fn instant(&self) -> DateTime<Utc> {
        self.at
    }

    /// The stored form; its text order is the version order (years 0-9999, UTC, fixed width).
    pub fn key(&self) -> String {
        let at = self.at.to_rfc3339_opts(SecondsFormat::Nanos, true);
        if self.tie.is_empty() {
            at
        } else {
            format!("{at}|{}", self.tie)
        }
    }

    /// Reads [`Self::key`] back; `None` for text that is not one.
    pub fn parse_key(key: &str) -> Option<Self> {
        let (at, tie) = key.split_once('|').unwrap_or((key, ""));
        let at = DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc);
        Some(Self::with_tie(at, tie))
    }
}

impl fmt::Display for SourceVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.at.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        if self.tie.is_empty() {
            write!(f, "{at}")
        } else {
            write!(f, "{at} ({})", self.tie)
        }
    }
}

/// Whether `candidate` is older than the newest of `known` (unknown versions never are).
pub fn is_older(candidate: Option<&SourceVersion>, known: &[Option<&SourceVersion>]) -> bool {
    let newest = known.iter().flatten().max();
    matches!((candidate, newest), (Some(c), Some(n)) if c < *n)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn later_instants_then_later_ties_are_newer() {
        let a = SourceVersion::at(t("2026-11-01T10:00:00Z"));
        let b = SourceVersion::with_tie(t("2026-11-01T10:00:00Z"), "x");
        let c = SourceVersion::at(t("2026-11-01T10:00:01Z"));
        assert!(a < b && b < c);
        assert!(is_older(Some(&a), &[Some(&c), None]));
        assert!(!is_older(Some(&c), &[Some(&a), Some(&b)]));
        assert!(!is_older(None, &[Some(&c)]), "no version: taken as newest");
        assert!(
            !is_older(Some(&a), &[None, None]),
            "nothing known to compare"
        );
        assert!(
            !is_older(Some(&a), &[Some(&a)]),
            "the same version is not older"
        );
    }

    #[test]
    fn keys_read_back() {
        let v = SourceVersion::with_tie(t("2026-11-01T10:00:00.5Z"), "2026|export-1.csv");
        assert_eq!(v.key(), "2026-11-01T10:00:00.500000000Z|2026|export-1.csv");
        assert_eq!(SourceVersion::parse_key(&v.key()), Some(v));
        assert_eq!(SourceVersion::parse_key("not a version"), None);
    }

    proptest! {
        /// The stored text sorts exactly like the versions: the database's order is the rule's.
        #[test]
        fn key_order_is_version_order(
            a in 0i64..253_402_300_799, an in 0u32..1_000_000_000, at in "[a-z0-9|.-]{0,8}",
            b in 0i64..253_402_300_799, bn in 0u32..1_000_000_000, bt in "[a-z0-9|.-]{0,8}",
        ) {
            let va = SourceVersion::with_tie(DateTime::from_timestamp(a, an).unwrap(), at);
            let vb = SourceVersion::with_tie(DateTime::from_timestamp(b, bn).unwrap(), bt);
            prop_assert_eq!(va.cmp(&vb), va.key().cmp(&vb.key()));
            prop_assert_eq!(SourceVersion::parse_key(&va.key()), Some(va));
        }
    }
}
