//! The newest-first walk over `GET /invoices?orderBy=updatedAt&sortBy=DESC`.
//!
//! Rebillia has no updated-since filter, so each cycle reads from the newest invoice backwards
//! and stops at the first page that reaches invoices older than `cursor.read_from(overlap)`.
//! Because the walk goes backwards in time, the cursor can only move once it is complete: every
//! page's receipt carries the previous cursor, the last one `max(previous, newest updated-at)`.
//!
//! Paging by page number over a list that changes meanwhile:
//! - an invoice created or changed during the walk jumps to the front; items behind it shift
//!   down a place, so a page may repeat an invoice (harmless: its fingerprint is unchanged),
//!   and the changed invoice itself is newer than the walk's newest, so the next cycle gets it;
//! - an invoice deleted during the walk shifts the items behind it up a place, which could hide
//!   one at a page boundary. `totalItems` shrinking between two pages reveals it, and the walk
//!   steps back enough pages to cover the shift (re-reading, never skipping).
//!
//! If the API ever ignores the sort (an invoice newer than the one before it on the list), the
//! walk stops relying on the order: it no longer stops early and scans to the end, while still
//! leaving out invoices older than the window, which the committed cursor already covers.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::amounts::AmountPolicy;
use super::convert;
use crate::domain::{RecordError, SourceInvoice};
use crate::source::{Cursor, PageReceipt};

/// One page of `GET /invoices`: `{currentPageNumber, itemsPerPage, totalItems, totalPages, data}`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ListPage {
    pub total_items: Option<u64>,
    pub total_pages: Option<u64>,
    pub items_per_page: Option<u64>,
    pub data: Vec<Value>,
}

impl ListPage {
    /// Reads the paging envelope; only `data` is indispensable.
    pub(super) fn from_json(value: Value) -> Result<Self, String> {
        let Value::Object(mut object) = value else {
            return Err("the invoice list is not a JSON object".to_owned());
        };
        let number = |key: &str| {
            object.get(key).and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            })
        };
        let (total_items, total_pages, items_per_page) = (
            number("totalItems"),
            number("totalPages"),
            number("itemsPerPage"),
        );
        match object.remove("data") {
            Some(Value::Array(data)) => Ok(Self {
                total_items,
                total_pages,
                items_per_page,
                data,
            }),
            _ => Err("the invoice list has no `data` array".to_owned()),
        }
    }
}

/// What one page yields.
#[derive(Debug)]
pub(super) struct Step {
    pub records: Vec<Result<SourceInvoice, RecordError>>,
    /// No page follows: this one's receipt advances the cursor.
    pub last: bool,
}

#[derive(Debug)]
pub(super) struct Walk {
    previous: Cursor,
    read_from: Option<DateTime<Utc>>,
    page_size: u32,
    page_no: u64,
    newest: Option<DateTime<Utc>>,
    /// Updated-at of the last record read, to check the order.
    last_seen: Option<DateTime<Utc>>,
    last_total: Option<u64>,
    sorted: bool,
}

impl Walk {
    pub(super) fn new(cursor: &Cursor, overlap: Duration, page_size: u32) -> Self {
        Self {
            previous: cursor.clone(),
            read_from: cursor.read_from(overlap),
            page_size: page_size.max(1),
            page_no: 1,
            newest: None,
            last_seen: None,
            last_total: None,
            sorted: true,
        }
    }

    /// The page to request next (1-based).
    pub(super) fn page_no(&self) -> u64 {
        self.page_no
    }

    pub(super) fn read_from(&self) -> Option<DateTime<Utc>> {
        self.read_from
    }

    /// Takes a fetched page: converts its records (reading amounts as `policy` says), drops
    /// those older than the window, and decides which page comes next, if any.
    pub(super) fn take(&mut self, source: &str, page: ListPage, policy: AmountPolicy) -> Step {
        let mut records = Vec::with_capacity(page.data.len());
        let mut reached_old = false;
        let received = page.data.len();
        for value in &page.data {
            if let Some(updated) = convert::updated_at(value) {
                self.check_order(source, updated);
                self.newest = self.newest.max(Some(updated));
                if self.read_from.is_some_and(|from| updated < from) {
                    reached_old = true;
                    continue;
                }
            }
            // A record whose time cannot be read is converted anyway: the error names the field.
            records.push(convert::invoice_with(source, value, policy));
        }
        let shrunk = match (self.last_total, page.total_items) {
            (Some(before), Some(now)) if now < before => before - now,
            _ => 0,
        };
        if page.total_items.is_some() {
            self.last_total = page.total_items;
        }
        let per_page = page
            .items_per_page
            .filter(|&n| n > 0)
            .unwrap_or(u64::from(self.page_size));
        let step_back = shrunk.div_ceil(per_page);
        let at_end = received == 0 || page.total_pages.is_some_and(|pages| self.page_no >= pages);
        // After a shrink the hidden invoices are newer than this page's: never stop there.
        let last = step_back == 0 && (at_end || (reached_old && self.sorted));
        if step_back > 0 {
            tracing::debug!(
                source,
                shrunk,
                step_back,
                "Rebillia invoice list shrank during the walk; re-reading earlier pages"
            );
            // The re-read pages hold newer invoices than the last one seen.
            self.last_seen = None;
        }
        // Invoices shifted up by `shrunk` places: the ones this page missed are at the end of
        // the pages before it.
        self.page_no = if step_back > 0 {
            self.page_no.saturating_sub(step_back).max(1)
        } else {
            self.page_no + 1
        };
        Step { records, last }
    }

    /// The receipt of a page: the previous cursor, or the advanced one on the last page.
    pub(super) fn receipt(&self, last: bool) -> PageReceipt {
        let cursor = if last {
            self.previous.clone().max(Cursor {
                watermark: self.newest,
            })
        } else {
            self.previous.clone()
        };
        PageReceipt {
            cursor,
            finished_file: None,
        }
    }

    fn check_order(&mut self, source: &str, updated: DateTime<Utc>) {
        if self.sorted && self.last_seen.is_some_and(|before| updated > before) {
            tracing::warn!(
                source,
                "Rebillia did not sort invoices by updatedAt descending; scanning every page this cycle"
            );
            self.sorted = false;
        }
        self.last_seen = Some(updated);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const HOUR: i64 = 3600;
    const T0: i64 = 1_800_000_000;

    fn time(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    /// A valid invoice of one line of 1.00 (amounts that add up).
    fn record(id: u64, updated: i64) -> Value {
        json!({
            "id": id.to_string(), "invoiceNo": format!("RB-{id}"), "status": "posted",
            "customer": {"id": "1", "customerId": "CUST-00001"}, "currency": {"iso3": "USD"},
            "total": 100, "balanceDue": 100, "detail": [{"amount": 100, "qty": 1, "description": "Plan"}],
            "updatedAt": time(updated).to_rfc3339(),
        })
    }

    fn page(records: Vec<Value>, total: u64, pages: u64) -> ListPage {
        ListPage {
            total_items: Some(total),
            total_pages: Some(pages),
            items_per_page: Some(2),
            data: records,
        }
    }

    impl Walk {
        fn take_default(&mut self, page: ListPage) -> Step {
            self.take("rb", page, AmountPolicy::default())
        }
    }

    fn ids(step: &Step) -> Vec<String> {
        step.records
            .iter()
            .map(|r| r.as_ref().map(|i| i.external_id.clone()).unwrap())
            .collect()
    }

    #[test]
    fn the_cursor_moves_on_the_last_page_only() {
        let previous = Cursor::at(time(T0 - 10 * HOUR));
        let mut walk = Walk::new(&previous, Duration::ZERO, 2);
        let first = walk.take_default(page(vec![record(5, T0), record(4, T0 - HOUR)], 5, 3));
        assert!(!first.last);
        assert_eq!(walk.receipt(first.last).cursor, previous);
        assert_eq!(walk.page_no(), 2);
        let second = walk.take_default(page(vec![record(3, T0 - 20 * HOUR)], 5, 3));
        assert!(second.last, "older than the window: stop");
        assert!(second.records.is_empty(), "the old record is left out");
        assert_eq!(walk.receipt(true).cursor, Cursor::at(time(T0)));
    }

    #[test]
    fn the_window_includes_its_boundary_and_the_overlap() {
        let mut walk = Walk::new(&Cursor::at(time(T0)), Duration::from_secs(HOUR as u64), 10);
        let step = walk.take_default(page(
            vec![
                record(3, T0),
                record(2, T0 - HOUR),
                record(1, T0 - HOUR - 1),
            ],
            3,
            1,
        ));
        assert_eq!(ids(&step), vec!["3", "2"]);
        assert!(step.last);
    }

    #[test]
    fn a_first_walk_reads_everything_and_ends_with_the_newest() {
        let mut walk = Walk::new(&Cursor::default(), Duration::ZERO, 2);
        let a = walk.take_default(page(vec![record(2, T0), record(1, T0 - HOUR)], 3, 2));
        assert!(!a.last);
        let b = walk.take_default(page(vec![record(0, T0 - 2 * HOUR)], 3, 2));
        assert!(b.last);
        assert_eq!(walk.receipt(true).cursor, Cursor::at(time(T0)));
        let mut empty = Walk::new(&Cursor::default(), Duration::ZERO, 2);
        assert!(empty.take_default(page(vec![], 0, 0)).last);
        assert_eq!(empty.receipt(true).cursor, Cursor::default());
    }

    #[test]
    fn a_shrinking_list_steps_back_instead_of_skipping() {
        let mut walk = Walk::new(&Cursor::default(), Duration::ZERO, 2);
        walk.take_default(page(vec![record(9, T0), record(8, T0 - 1)], 9, 5));
        walk.take_default(page(vec![record(7, T0 - 2), record(6, T0 - 3)], 9, 5));
        assert_eq!(walk.page_no(), 3);
        // Record 7 was deleted: 5 moved to the end of page 2, which was already read.
        let after_delete =
            walk.take_default(page(vec![record(4, T0 - 5), record(3, T0 - 6)], 8, 4));
        assert!(!after_delete.last);
        assert_eq!(walk.page_no(), 2, "stepped back one page");
        walk.take_default(page(vec![record(6, T0 - 3), record(5, T0 - 4)], 8, 4));
        assert_eq!(walk.page_no(), 3, "then on as usual");
        let mut shrunk_at_the_end = Walk::new(&Cursor::default(), Duration::ZERO, 2);
        shrunk_at_the_end.take_default(page(vec![record(9, T0), record(8, T0 - 1)], 3, 2));
        let step = shrunk_at_the_end.take_default(page(vec![], 2, 1));
        assert!(
            !step.last,
            "an empty page after a shrink goes back, not home"
        );
        assert_eq!(shrunk_at_the_end.page_no(), 1);
        assert!(
            walk.sorted,
            "re-reading newer records is not an ordering problem"
        );
    }

    #[test]
    fn an_unsorted_answer_turns_off_the_early_stop() {
        let mut walk = Walk::new(&Cursor::at(time(T0)), Duration::ZERO, 2);
        let a = walk.take_default(page(vec![record(1, T0 - HOUR), record(2, T0 + HOUR)], 4, 2));
        assert!(!a.last, "an old record before a newer one: keep scanning");
        assert_eq!(ids(&a), vec!["2"]);
        let b = walk.take_default(page(
            vec![record(3, T0 + 2 * HOUR), record(4, T0 - HOUR)],
            4,
            2,
        ));
        assert!(b.last, "the end of the list");
        assert_eq!(walk.receipt(true).cursor, Cursor::at(time(T0 + 2 * HOUR)));
    }

    #[test]
    fn the_envelope_needs_a_data_array() {
        let page = ListPage::from_json(json!({
            "currentPageNumber": 1, "itemsPerPage": "2", "totalItems": 3, "totalPages": 2, "data": []
        }))
        .unwrap();
        assert_eq!((page.items_per_page, page.total_pages), (Some(2), Some(2)));
        assert!(ListPage::from_json(json!({"items": []})).is_err());
        assert!(ListPage::from_json(json!([])).is_err());
    }
}
