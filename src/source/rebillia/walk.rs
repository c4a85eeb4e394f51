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
//! **When the server does not sort.** The early stop is only safe if the list really is newest
//! `updatedAt` first. Nothing documents that Rebillia honours `orderBy=updatedAt`; a server that
//! ignores it serves its default order (newest created first, say), where an old invoice changed
//! today sits at the end. So the walk checks the order it is given:
//! - every record must be no newer than every record before it on this pass (within a page and
//!   across pages);
//! - a walk that stops at the window first reads one **audit page** further down the list (a
//!   different one each cycle, so the whole list is covered over as many cycles as it has
//!   pages): in a sorted list everything there is no newer than the oldest record already seen.
//!
//! On the first sign of disorder the cycle becomes a **full walk**: every page to the end and
//! every record on it, older than the window or not (back from page 1 if a record was already
//! left out), because an earlier early stop may have moved the cursor past an invoice it never
//! saw. The walk says so (a WARN line and a note in the run report), and the source walks in
//! full every cycle until a full walk finds the list in order again.

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

/// Whether the walk may stop at the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Newest first, stopping at the first page that reaches the window.
    NewestFirst,
    /// Every page, every record.
    Full,
}

/// The oldest record seen so far on a pass: nothing after it may be newer.
#[derive(Debug, Clone)]
struct Floor {
    at: DateTime<Utc>,
    id: String,
}

#[derive(Debug)]
pub(super) struct Walk {
    previous: Cursor,
    read_from: Option<DateTime<Utc>>,
    page_size: u32,
    page_no: u64,
    mode: Mode,
    newest: Option<DateTime<Utc>>,
    floor: Option<Floor>,
    /// A record of this pass was left out as older than the window.
    left_out: bool,
    last_total: Option<u64>,
    /// Which audit page this walk reads (the source turns it each cycle).
    audit_turn: u64,
    /// The audit page requested, with the floor it must stay under.
    audit: Option<Option<Floor>>,
    /// The first sign that the list is out of order, until reported.
    disorder: Option<String>,
    saw_disorder: bool,
    pages_read: u64,
}

impl Walk {
    /// `full`: walk every page from the start (the source's last walk found the list out of
    /// order). A walk without a cursor reads everything anyway.
    pub(super) fn new(
        cursor: &Cursor,
        overlap: Duration,
        page_size: u32,
        full: bool,
        audit_turn: u64,
    ) -> Self {
        let read_from = cursor.read_from(overlap);
        Self {
            previous: cursor.clone(),
            read_from,
            page_size: page_size.max(1),
            page_no: 1,
            mode: if full || read_from.is_none() {
                Mode::Full
            } else {
                Mode::NewestFirst
            },
            newest: None,
            floor: None,
            left_out: false,
            last_total: None,
            audit_turn,
            audit: None,
            disorder: None,
            saw_disorder: false,
            pages_read: 0,
        }
    }

    /// The page to request next (1-based).
    pub(super) fn page_no(&self) -> u64 {
        self.page_no
    }

    pub(super) fn read_from(&self) -> Option<DateTime<Utc>> {
        self.read_from
    }

    pub(super) fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether any page of this walk was out of updatedAt order.
    pub(super) fn saw_disorder(&self) -> bool {
        self.saw_disorder
    }

    pub(super) fn pages_read(&self) -> u64 {
        self.pages_read
    }

    /// The first sign of disorder, once, to be reported.
    pub(super) fn take_disorder(&mut self) -> Option<String> {
        self.disorder.take()
    }

    /// Takes a fetched page: converts its records (reading amounts as `policy` says), leaves
    /// out those older than the window while the order holds, and decides which page comes
    /// next, if any.
    pub(super) fn take(&mut self, source: &str, page: ListPage, policy: AmountPolicy) -> Step {
        self.pages_read += 1;
        if let Some(floor) = self.audit.take() {
            return self.take_audit(page, floor.as_ref());
        }
        let mut records = Vec::with_capacity(page.data.len());
        let mut reached_old = false;
        let received = page.data.len();
        for value in &page.data {
            if let Some(updated) = convert::updated_at(value) {
                self.check_order(value, updated);
                self.newest = self.newest.max(Some(updated));
                if self.mode == Mode::NewestFirst
                    && self.read_from.is_some_and(|from| updated < from)
                {
                    reached_old = true;
                    self.left_out = true;
                    continue;
                }
            }
            // A record whose time cannot be read is converted anyway: the error names the field.
            records.push(convert::invoice_with(source, value, policy));
        }
        if self.mode == Mode::NewestFirst && self.saw_disorder {
            self.mode = Mode::Full;
            if self.left_out {
                // Records already left out may be ones no walk has taken: start over.
                self.restart();
                return Step {
                    records,
                    last: false,
                };
            }
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
        if step_back > 0 {
            tracing::debug!(
                source,
                shrunk,
                step_back,
                "Rebillia invoice list shrank during the walk; re-reading earlier pages"
            );
            // The re-read pages hold newer invoices than the last one seen. Invoices shifted up
            // by `shrunk` places: the ones this page missed are at the end of the pages before.
            self.floor = None;
            self.page_no = self.page_no.saturating_sub(step_back).max(1);
            return Step {
                records,
                last: false,
            };
        }
        let at_end = received == 0 || page.total_pages.is_some_and(|pages| self.page_no >= pages);
        if at_end {
            return Step {
                records,
                last: true,
            };
        }
        if self.mode == Mode::NewestFirst && reached_old {
            // Stop here, but first look one page further down (see the module docs).
            let Some(pages) = page.total_pages else {
                return Step {
                    records,
                    last: true,
                };
            };
            let span = pages - self.page_no;
            self.page_no += 1 + self.audit_turn % span;
            self.audit = Some(self.floor.clone());
            return Step {
                records,
                last: false,
            };
        }
        self.page_no += 1;
        Step {
            records,
            last: false,
        }
    }

    /// The audit page: nothing on it may be newer than the oldest record the walk stopped at.
    fn take_audit(&mut self, page: ListPage, floor: Option<&Floor>) -> Step {
        let audited = self.page_no;
        self.floor = floor.cloned();
        for value in &page.data {
            if let Some(updated) = convert::updated_at(value) {
                self.check_order(value, updated);
            }
        }
        if self.saw_disorder {
            tracing::debug!(audited, "the audit page is out of updatedAt order");
            self.mode = Mode::Full;
            self.restart();
            return Step {
                records: Vec::new(),
                last: false,
            };
        }
        Step {
            records: Vec::new(),
            last: true,
        }
    }

    fn restart(&mut self) {
        self.page_no = 1;
        self.floor = None;
        self.left_out = false;
        self.last_total = None;
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

    fn check_order(&mut self, value: &Value, updated: DateTime<Utc>) {
        let id = || convert::record_id(value).unwrap_or_else(|| "(without id)".to_owned());
        match &self.floor {
            Some(floor) if updated > floor.at => {
                if !self.saw_disorder {
                    self.saw_disorder = true;
                    self.disorder = Some(format!(
                        "invoice {} updated {} came after invoice {} updated {} (page {})",
                        id(),
                        updated.to_rfc3339(),
                        floor.id,
                        floor.at.to_rfc3339(),
                        self.page_no,
                    ));
                }
            }
            Some(floor) if updated == floor.at => {}
            _ => {
                self.floor = Some(Floor {
                    at: updated,
                    id: id(),
                })
            }
        }
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

    fn ids(step: &Step) -> Vec<String> {
        step.records
            .iter()
            .map(|r| r.as_ref().map(|i| i.external_id.clone()).unwrap())
            .collect()
    }

    fn walk(cursor: &Cursor, page_size: u32) -> Walk {
        Walk::new(cursor, Duration::ZERO, page_size, false, 0)
    }

    fn take(walk: &mut Walk, page: ListPage) -> Step {
        walk.take("rb", page, AmountPolicy::default())
    }

    #[test]
    fn the_cursor_moves_on_the_last_page_only() {
        let previous = Cursor::at(time(T0 - 10 * HOUR));
        let mut walk = walk(&previous, 2);
        let first = take(
            &mut walk,
            page(vec![record(5, T0), record(4, T0 - HOUR)], 5, 3),
        );
        assert!(!first.last);
        assert_eq!(walk.receipt(first.last).cursor, previous);
        assert_eq!(walk.page_no(), 2);
        let second = take(&mut walk, page(vec![record(3, T0 - 20 * HOUR)], 5, 3));
        assert!(second.records.is_empty(), "the old record is left out");
        assert!(!second.last, "older than the window: one audit page first");
        assert_eq!(walk.receipt(second.last).cursor, previous);
        assert_eq!(walk.page_no(), 3, "the only page further down");
        let audit = take(&mut walk, page(vec![record(2, T0 - 21 * HOUR)], 5, 3));
        assert!(audit.last, "in order down there: stop");
        assert!(audit.records.is_empty());
        assert_eq!(walk.receipt(true).cursor, Cursor::at(time(T0)));
        assert_eq!(walk.mode(), Mode::NewestFirst);
        assert!(!walk.saw_disorder());
    }

    #[test]
    fn the_window_includes_its_boundary_and_the_overlap() {
        let mut walk = Walk::new(
            &Cursor::at(time(T0)),
            Duration::from_secs(HOUR as u64),
            10,
            false,
            0,
        );
        let step = take(
            &mut walk,
            page(
                vec![
                    record(3, T0),
                    record(2, T0 - HOUR),
                    record(1, T0 - HOUR - 1),
                ],
                3,
                1,
            ),
        );
        assert_eq!(ids(&step), vec!["3", "2"]);
        assert!(step.last);
    }

    #[test]
    fn a_first_walk_reads_everything_and_ends_with_the_newest() {
        let mut walk = walk(&Cursor::default(), 2);
        assert_eq!(walk.mode(), Mode::Full);
        let a = take(
            &mut walk,
            page(vec![record(2, T0), record(1, T0 - HOUR)], 3, 2),
        );
        assert!(!a.last);
        let b = take(&mut walk, page(vec![record(0, T0 - 2 * HOUR)], 3, 2));
        assert!(b.last);
        assert_eq!(walk.receipt(true).cursor, Cursor::at(time(T0)));
        let mut empty = Walk::new(&Cursor::default(), Duration::ZERO, 2, false, 0);
        assert!(take(&mut empty, page(vec![], 0, 0)).last);
        assert_eq!(empty.receipt(true).cursor, Cursor::default());
    }

    #[test]
    fn a_shrinking_list_steps_back_instead_of_skipping() {
        let mut walk = walk(&Cursor::default(), 2);
        take(
            &mut walk,
            page(vec![record(9, T0), record(8, T0 - 1)], 9, 5),
        );
        take(
            &mut walk,
            page(vec![record(7, T0 - 2), record(6, T0 - 3)], 9, 5),
        );
        assert_eq!(walk.page_no(), 3);
        // Record 7 was deleted: 5 moved to the end of page 2, which was already read.
        let after_delete = take(
            &mut walk,
            page(vec![record(4, T0 - 5), record(3, T0 - 6)], 8, 4),
        );
        assert!(!after_delete.last);
        assert_eq!(walk.page_no(), 2, "stepped back one page");
        take(
            &mut walk,
            page(vec![record(6, T0 - 3), record(5, T0 - 4)], 8, 4),
        );
        assert_eq!(walk.page_no(), 3, "then on as usual");
        let mut shrunk_at_the_end = Walk::new(&Cursor::default(), Duration::ZERO, 2, false, 0);
        take(
            &mut shrunk_at_the_end,
            page(vec![record(9, T0), record(8, T0 - 1)], 3, 2),
        );
        let step = take(&mut shrunk_at_the_end, page(vec![], 2, 1));
        assert!(
            !step.last,
            "an empty page after a shrink goes back, not home"
        );
        assert_eq!(shrunk_at_the_end.page_no(), 1);
        assert!(
            !walk.saw_disorder(),
            "re-reading newer records is not an ordering problem"
        );
    }

    #[test]
    fn an_unsorted_answer_turns_the_cycle_into_a_full_walk() {
        let mut walk = walk(&Cursor::at(time(T0)), 2);
        let a = take(
            &mut walk,
            page(vec![record(1, T0 - HOUR), record(2, T0 + HOUR)], 4, 2),
        );
        assert!(!a.last, "an old record before a newer one: keep reading");
        assert_eq!(ids(&a), vec!["2"]);
        assert_eq!(walk.mode(), Mode::Full);
        assert_eq!(walk.page_no(), 1, "1 was left out: from the start again");
        let sign = walk.take_disorder().expect("the disorder is reported");
        assert!(
            sign.starts_with(
                "invoice 2 updated 2027-01-15T09:00:00+00:00 came after invoice 1 updated"
            ),
            "{sign}"
        );
        assert_eq!(walk.take_disorder(), None, "once");
        let again = take(
            &mut walk,
            page(vec![record(1, T0 - HOUR), record(2, T0 + HOUR)], 4, 2),
        );
        assert_eq!(
            ids(&again),
            vec!["1", "2"],
            "a full walk takes old records too"
        );
        let b = take(
            &mut walk,
            page(
                vec![record(3, T0 + 2 * HOUR), record(4, T0 - 5 * HOUR)],
                4,
                2,
            ),
        );
        assert_eq!(ids(&b), vec!["3", "4"]);
        assert!(b.last, "the end of the list");
        assert_eq!(walk.receipt(true).cursor, Cursor::at(time(T0 + 2 * HOUR)));
        assert!(walk.saw_disorder());
    }

    #[test]
    fn disorder_before_anything_was_left_out_just_reads_on() {
        let mut walk = walk(&Cursor::at(time(T0)), 2);
        let a = take(
            &mut walk,
            page(vec![record(1, T0 + HOUR), record(2, T0 + 2 * HOUR)], 4, 2),
        );
        assert_eq!(ids(&a), vec!["1", "2"]);
        assert_eq!((walk.mode(), walk.page_no()), (Mode::Full, 2));
        let b = take(
            &mut walk,
            page(
                vec![record(3, T0 - 9 * HOUR), record(4, T0 - 10 * HOUR)],
                4,
                2,
            ),
        );
        assert_eq!(ids(&b), vec!["3", "4"], "no early stop any more");
        assert!(b.last);
    }

    #[test]
    fn an_order_that_looks_right_is_checked_one_page_further_down() {
        // Newest *created* first: an old invoice changed today sits at the end.
        let cursor = Cursor::at(time(T0));
        for turn in 0..2 {
            let mut walk = Walk::new(&cursor, Duration::ZERO, 2, false, turn);
            let first = take(
                &mut walk,
                page(vec![record(6, T0), record(5, T0 - HOUR)], 6, 3),
            );
            assert_eq!(ids(&first), vec!["6"]);
            assert!(!first.last);
            assert_eq!(
                walk.page_no(),
                2 + turn,
                "the audit page turns with the cycle"
            );
        }
        let mut walk = Walk::new(&cursor, Duration::ZERO, 2, false, 1);
        take(
            &mut walk,
            page(vec![record(6, T0), record(5, T0 - HOUR)], 6, 3),
        );
        let audit = take(
            &mut walk,
            page(vec![record(2, T0 - 4 * HOUR), record(1, T0 + HOUR)], 6, 3),
        );
        assert!(audit.records.is_empty() && !audit.last);
        assert_eq!((walk.mode(), walk.page_no()), (Mode::Full, 1));
        assert!(walk
            .take_disorder()
            .expect("reported")
            .contains("invoice 1 updated"));
        let mut seen = Vec::new();
        for data in [
            vec![record(6, T0), record(5, T0 - HOUR)],
            vec![record(4, T0 - 2 * HOUR), record(3, T0 - 3 * HOUR)],
            vec![record(2, T0 - 4 * HOUR), record(1, T0 + HOUR)],
        ] {
            let step = take(&mut walk, page(data, 6, 3));
            seen.extend(ids(&step));
            if step.last {
                break;
            }
        }
        assert_eq!(seen, ["6", "5", "4", "3", "2", "1"]);
        assert_eq!(walk.receipt(true).cursor, Cursor::at(time(T0 + HOUR)));
    }

    #[test]
    fn a_source_that_was_out_of_order_walks_in_full() {
        let mut walk = Walk::new(&Cursor::at(time(T0)), Duration::ZERO, 2, true, 0);
        assert_eq!(walk.mode(), Mode::Full);
        let a = take(
            &mut walk,
            page(vec![record(2, T0), record(1, T0 - HOUR)], 4, 2),
        );
        assert_eq!(ids(&a), vec!["2", "1"]);
        assert!(!a.last);
        let b = take(&mut walk, page(vec![record(0, T0 - 2 * HOUR)], 4, 2));
        assert!(b.last);
        assert!(!walk.saw_disorder(), "in order this time");
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
