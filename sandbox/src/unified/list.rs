//! `GET {invoices_path}`: invoices ordered by `(remoteUpdatedAt, remoteId)` ascending, filtered
//! by `updatedAfter` (strictly after), in pages of `limit` linked by opaque `next` cursors.
//!
//! A cursor is the position of the last invoice served, so paging walks the order as it is when
//! each page is asked for: an invoice changed meanwhile moves to the end and is served again
//! there, never skipped, as a modification-time ordered ERP list behaves.
//!
//! The order merges the seeded invoices (generated from their index, stamps ascending with the
//! index) with the stored changes (a sorted set), so a page costs `O(limit)` whatever the seed.

use std::collections::BTreeMap;
use std::ops::Bound;

use chrono::DateTime;
use serde_json::Value;

use super::seed::remote_id;
use super::state::Invoices;

const CURSOR_VERSION: &str = "v1";

/// Serve invoices strictly after this `(stamp, remoteId)`; `id: None` means after every
/// invoice at `stamp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Position {
    pub stamp: i64,
    pub id: Option<String>,
}

impl Position {
    fn admits(&self, stamp: i64, id: &str) -> bool {
        match &self.id {
            None => stamp > self.stamp,
            Some(after) => (stamp, id) > (self.stamp, after.as_str()),
        }
    }

    /// The later of two positions.
    fn max(self, other: Position) -> Position {
        let later = match (self.stamp.cmp(&other.stamp), &self.id, &other.id) {
            (std::cmp::Ordering::Greater, _, _) => true,
            (std::cmp::Ordering::Less, _, _) => false,
            (_, None, _) => true,
            (_, Some(_), None) => false,
            (_, Some(a), Some(b)) => a >= b,
        };
        if later {
            self
        } else {
            other
        }
    }

    /// The opaque `next` cursor.
    pub(crate) fn encode(&self) -> String {
        let id = self.id.as_deref().unwrap_or("");
        hex::encode(format!("{CURSOR_VERSION}|{}|{id}", self.stamp))
    }

    pub(crate) fn decode(cursor: &str) -> Option<Position> {
        let text = String::from_utf8(hex::decode(cursor.trim()).ok()?).ok()?;
        let mut parts = text.splitn(3, '|');
        if parts.next()? != CURSOR_VERSION {
            return None;
        }
        let stamp = parts.next()?.parse().ok()?;
        let id = parts.next()?;
        Some(Position {
            stamp,
            id: (!id.is_empty()).then(|| id.to_owned()),
        })
    }
}

/// The query of a list request, read strictly.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ListQuery {
    pub start: Option<Position>,
    pub limit: usize,
}

/// The list's query parameters (already split) into a [`ListQuery`], or the 400 message.
pub(crate) fn parse_query(
    params: &BTreeMap<String, String>,
    names: &super::SandboxNames,
    default_limit: u32,
    max_limit: u32,
) -> Result<ListQuery, String> {
    let limit = match params.get(&names.limit_param) {
        None => default_limit,
        Some(text) => text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max_limit).contains(n))
            .ok_or_else(|| {
                format!(
                    "{} must be a whole number from 1 to {max_limit}",
                    names.limit_param
                )
            })?,
    };
    let after = match params.get(&names.updated_after_param) {
        None => None,
        Some(text) => {
            let at = DateTime::parse_from_rfc3339(text.trim()).map_err(|_| {
                format!(
                    "{} must be an RFC 3339 date-time, like 2026-11-21T10:00:00Z",
                    names.updated_after_param
                )
            })?;
            // Strictly after an instant with sub-millisecond digits: after its millisecond.
            Some(Position {
                stamp: at.timestamp_millis(),
                id: None,
            })
        }
    };
    let cursor = match params.get(&names.cursor_param) {
        None => None,
        Some(text) => Some(
            Position::decode(text)
                .ok_or_else(|| format!("{} is not a cursor this API issued", names.cursor_param))?,
        ),
    };
    let start = match (after, cursor) {
        (Some(a), Some(c)) => Some(a.max(c)),
        (a, c) => a.or(c),
    };
    Ok(ListQuery {
        start,
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
    })
}

/// One page: the invoices after `query.start`, and the cursor of the next page if any remain.
pub(crate) fn page(invoices: &Invoices, query: &ListQuery) -> (Vec<Value>, Option<String>) {
    let mut walk = Walk::new(invoices, query.start.as_ref());
    let mut served = Vec::with_capacity(query.limit.min(1024));
    let mut last = None;
    while served.len() < query.limit {
        let Some((stamp, id, body)) = walk.next_item() else {
            break;
        };
        served.push(body);
        last = Some(Position {
            stamp,
            id: Some(id),
        });
    }
    let more = walk.peek_key().is_some();
    (served, last.filter(|_| more).map(|p| p.encode()))
}

/// Walks the merged order from a position.
struct Walk<'a> {
    invoices: &'a Invoices,
    /// Next seeded index to consider.
    seeded: u64,
    stored: std::iter::Peekable<std::collections::btree_set::Range<'a, (i64, String)>>,
}

impl<'a> Walk<'a> {
    fn new(invoices: &'a Invoices, start: Option<&Position>) -> Self {
        let seed = &invoices.seed;
        let (seeded, lower) = match start {
            None => (1, Bound::Unbounded),
            Some(position) => {
                let mut index = seed.first_at_or_after(position.stamp);
                while index <= seed.count && !position.admits(seed.stamp(index), &remote_id(index))
                {
                    index += 1;
                }
                let lower = match &position.id {
                    Some(id) => Bound::Excluded((position.stamp, id.clone())),
                    None => Bound::Included((position.stamp.saturating_add(1), String::new())),
                };
                (index, lower)
            }
        };
        Self {
            invoices,
            seeded,
            stored: invoices.order.range((lower, Bound::Unbounded)).peekable(),
        }
    }

    /// The key of the next seeded invoice still in its seeded form.
    fn seeded_key(&mut self) -> Option<(i64, String)> {
        let seed = self.invoices.seed;
        while self.seeded <= seed.count && self.invoices.is_overridden(self.seeded) {
            self.seeded += 1;
        }
        (self.seeded <= seed.count).then(|| (seed.stamp(self.seeded), remote_id(self.seeded)))
    }

    fn peek_key(&mut self) -> Option<(i64, String)> {
        let seeded = self.seeded_key();
        let stored = self.stored.peek().map(|key| (*key).clone());
        match (seeded, stored) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn next_item(&mut self) -> Option<(i64, String, Value)> {
        let seeded = self.seeded_key();
        let take_stored = match (&seeded, self.stored.peek()) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(a), Some(b)) => *b < a,
        };
        if take_stored {
            let (stamp, id) = self.stored.next()?.clone();
            let body = self.invoices.stored(&id)?.body.clone();
            return Some((stamp, id, body));
        }
        let (stamp, id) = seeded?;
        let body = self.invoices.seed.invoice(self.seeded, stamp);
        self.seeded += 1;
        Some((stamp, id, body))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::unified::seed::Seed;
    use crate::unified::SandboxNames;

    fn invoices(count: u64) -> Invoices {
        Invoices::new(Seed {
            count,
            customers: 3,
            epoch_ms: 10_000,
            spacing_ms: 1000,
        })
    }

    fn ids(values: &[Value]) -> Vec<String> {
        values
            .iter()
            .map(|v| v["remoteId"].as_str().unwrap_or("?").to_owned())
            .collect()
    }

    fn all(invoices: &Invoices, start: Option<Position>, limit: usize) -> Vec<String> {
        let mut query = ListQuery { start, limit };
        let mut out = Vec::new();
        loop {
            let (page, next) = page(invoices, &query);
            assert!(page.len() <= limit);
            out.extend(ids(&page));
            match next {
                None => return out,
                Some(cursor) => query.start = Position::decode(&cursor),
            }
        }
    }

    #[test]
    fn pages_walk_seeded_and_changed_invoices_in_order() {
        let mut inv = invoices(7);
        let later = inv.next_stamp(0);
        inv.put("rmt-000002", later, json!({"remoteId": "rmt-000002"}));
        // A late commit: stamped between seeded 4 (13 000) and 5 (14 000).
        inv.put("rmt-000006", 13_500, json!({"remoteId": "rmt-000006"}));
        let expected = [
            "000001", "000003", "000004", "000006", "000005", "000007", "000002",
        ]
        .map(|s| format!("rmt-{s}"));
        for limit in [1, 2, 3, 100] {
            assert_eq!(all(&inv, None, limit), expected, "limit {limit}");
        }
        let after = Position {
            stamp: 13_000,
            id: None,
        };
        assert_eq!(all(&inv, Some(after), 2), expected[3..].to_vec());
    }

    #[test]
    fn equal_stamps_order_by_id_and_cursors_split_them() {
        let mut inv = invoices(0);
        for id in ["b", "a", "c"] {
            inv.put(id, 500, json!({"remoteId": id}));
        }
        assert_eq!(all(&inv, None, 1), vec!["a", "b", "c"]);
        let at = Position {
            stamp: 500,
            id: Some("a".to_owned()),
        };
        assert_eq!(all(&inv, Some(at), 5), vec!["b", "c"]);
        assert!(all(
            &inv,
            Some(Position {
                stamp: 500,
                id: None
            }),
            5
        )
        .is_empty());
    }

    #[test]
    fn the_last_page_has_no_cursor_and_cursors_round_trip() {
        let inv = invoices(4);
        let (first, next) = page(
            &inv,
            &ListQuery {
                start: None,
                limit: 4,
            },
        );
        assert_eq!((first.len(), next), (4, None));
        let p = Position {
            stamp: -5,
            id: Some("x|y".to_owned()),
        };
        assert_eq!(Position::decode(&p.encode()), Some(p));
        assert_eq!(Position::decode("zz"), None);
        assert_eq!(Position::decode(&hex::encode("v2|1|a")), None);
    }

    #[test]
    fn queries_are_read_strictly() {
        let names = SandboxNames::default();
        let q = |pairs: &[(&str, &str)]| {
            let params = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            parse_query(&params, &names, 100, 1000)
        };
        assert_eq!(
            q(&[]).unwrap(),
            ListQuery {
                start: None,
                limit: 100
            }
        );
        assert!(q(&[("limit", "0")]).is_err());
        assert!(q(&[("limit", "1001")]).is_err());
        assert!(q(&[("limit", "ten")]).is_err());
        assert!(q(&[("updatedAfter", "2026-11-21")]).is_err());
        assert!(q(&[("next", "nope")]).is_err());
        let after = q(&[("updatedAfter", "1970-01-01T00:00:01.5Z")]).unwrap();
        assert_eq!(
            after.start,
            Some(Position {
                stamp: 1500,
                id: None
            })
        );
        let cursor = Position {
            stamp: 900,
            id: Some("a".to_owned()),
        }
        .encode();
        let both = q(&[("updatedAfter", "1970-01-01T00:00:01Z"), ("next", &cursor)]).unwrap();
        assert_eq!(
            both.start,
            Some(Position {
                stamp: 1000,
                id: None
            }),
            "the later bound wins"
        );
    }
}
