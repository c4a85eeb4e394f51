//! Rebillia, a subscription billing platform (api-docs 003), as an invoice source.
//!
//! What the wire looks like, from the public reference client `rhinosaas/rebillia-mcp-server`
//! (`src/client.ts`, `src/services/invoiceServices.ts`, `src/tools/invoices/*.ts`,
//! `src/types.ts`, `src/resources/api-docs.ts`):
//! - base `https://api.rebillia.com/v1`, header `X-AUTH-TOKEN`; a bad key is a 401;
//! - `GET /invoices` with `include` (`detail`, `transactions`, ...), `status`, `query`,
//!   `orderBy` (a column) + `sortBy` (`ASC`/`DESC`), `filterId`, `pageNo` (from 1) and
//!   `itemPerPage` (default 25, at most 250); answers
//!   `{currentPageNumber, itemsPerPage, totalItems, totalPages, data}`;
//! - `GET /invoices/{id}`, `PUT /invoices/{id}` (only `posted` / `requestPayment` invoices),
//!   `PUT /invoices/{id}/void`, `POST /invoices/{id}/charge` (cents), `DELETE /invoices/{id}`;
//! - an invoice: `id`, `invoiceNo`, `status`, `customer` (`id`, `customerId`, ...), `currency`
//!   (`iso3`), `dateDue` / `dateFrom` / `dateTo`, `createdAt` / `updatedAt`, `detail[]`
//!   (`amount`, `qty`, `description`, `product`), `shippingAmount`, `taxAmount`,
//!   `subtotalTaxExc`, `total`, `balanceDue`, `billingAddress` / `shippingAddress`, `terms`,
//!   `comments`.
//!
//! Choices where the reference is silent (the sandbox behaves the same way):
//! - **Amounts** (see `amounts`). Line amounts are documented as dollar strings (`"20.00"`),
//!   `shippingAmount`, charges and refunds in cents; the units of what the API answers are not
//!   documented. A decimal string is read as dollars, a whole `shippingAmount` as cents, and the
//!   other whole numbers in cents or dollars as each invoice's arithmetic (lines + shipping +
//!   tax = total, lines = `subtotalTaxExc`) says, or as `amount_unit` forces; an invoice that
//!   adds up either way takes the unit the source's invoices last showed (cents until then),
//!   and one that adds up in neither is refused with both sums. A cent is a hundredth of the
//!   unit for every currency (see [`cents_to_decimal`]); an amount finer than the currency's
//!   minor unit is refused. `detail[].amount` is the unit price; the line total is
//!   `qty x amount`, computed exactly.
//! - **Statuses** (compared without case), and what happens to the invoice:
//!
//!   | Rebillia status                                               | lifecycle | open balance  |
//!   |---------------------------------------------------------------|-----------|---------------|
//!   | `posted`, `requestPayment`, `partiallyPaid`, `paid`, `refunded`, `partiallyRefunded` | active | `balanceDue` |
//!   | `void`, `voided`                                              | voided    | `balanceDue`  |
//!   | `deleted`, `archived`                                         | deleted   | `balanceDue`  |
//!   | anything else (e.g. `draft`)                                  | record error naming the status | |
//!
//!   `DELETE /invoices/{id}` removes an invoice outright, so a deletion never shows up in the
//!   list; [`RebilliaSource::get_invoice`] reports such an invoice as a not-found record error.
//! - **Order.** The list is read with `orderBy=updatedAt&sortBy=DESC` and the walk stops once
//!   it passes the window, after one audit page further down; a list found out of order turns
//!   the cycle into a full walk (see `walk`). `updatedAt` is assumed to be set on creation; a
//!   record without it falls back to `createdAt`.
//! - **Customer.** `customer.customerId` (the merchant's own id, e.g. `CUST-00001`) is the ERP
//!   customer id; Rebillia's internal `customer.id` stands in when it is empty.
//! - **Dates.** Issue date: the date of `createdAt`. Times are RFC 3339, or naive and then UTC.
//! - **Extra fields** offered to the mapping: `status`, `date_from`, `date_to`, `payment_type`.
//! - **Single invoice.** `GET /invoices/{id}` answers the invoice itself (a `{data: ...}`
//!   wrapper is unwrapped too).
//! - **Payments** flow back as `POST /invoices/{id}/charge` (see `write_back`).

mod amounts;
mod client;
mod convert;
mod walk;
mod write_back;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::stream::BoxStream;
use serde_json::Value;

pub use amounts::{AmountPolicy, AmountUnit, UnitEvidence, Verdict};
pub use client::{DEFAULT_BASE_URL, MAX_PAGE_SIZE};
pub use convert::{cents_to_decimal, decimal_to_cents, invoice_from_json, invoice_with};

use self::client::{ClientError, RebilliaClient, Request};
use self::walk::{ListPage, Mode, Walk};
use crate::config::{RebilliaAmountUnit, RebilliaSettings};
use crate::domain::{RecordError, RecordLocator, SourceInvoice};
use crate::source::{Cursor, Source, SourceError, SourcePage};

/// The Rebillia adapter of one `[sources.<name>]`.
#[derive(Debug)]
pub struct RebilliaSource {
    name: Arc<str>,
    client: RebilliaClient,
    overlap: Duration,
    page_size: u32,
    amount_unit: RebilliaAmountUnit,
    /// The unit the source's invoices last showed by their arithmetic (`auto`).
    shown_unit: Mutex<Option<AmountUnit>>,
    /// The last complete walk found the list out of updatedAt order: walk in full.
    out_of_order: AtomicBool,
    /// Turns the walk's audit page from cycle to cycle.
    audit_turn: AtomicU64,
    notices: Mutex<Vec<String>>,
}

/// The amount units the first page of a Rebillia source shows (for `probe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmountDetection {
    /// `amount_unit` in the config.
    pub configured: RebilliaAmountUnit,
    /// What the invoices' arithmetic says.
    pub evidence: UnitEvidence,
}

impl AmountDetection {
    /// The unit the invoices show, when they show one.
    pub fn detected(&self) -> Option<AmountUnit> {
        self.evidence.unit()
    }

    /// The configured unit contradicts what the invoices show.
    pub fn conflicts(&self) -> bool {
        let forced = match self.configured {
            RebilliaAmountUnit::Auto => return false,
            RebilliaAmountUnit::Cents => AmountUnit::Cents,
            RebilliaAmountUnit::Dollars => AmountUnit::Dollars,
        };
        self.detected().is_some_and(|unit| unit != forced)
    }
}

impl fmt::Display for AmountDetection {
    /// `amounts: whole numbers are cents: of 10 invoices, ... (first page, amount_unit = "auto")`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "amounts: {} (first page, amount_unit = \"{}\")",
            self.evidence,
            self.configured.name()
        )?;
        if self.conflicts() {
            f.write_str("; the configured unit contradicts them")?;
        }
        Ok(())
    }
}

/// What `probe` finds on a Rebillia source's first page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebilliaProbe {
    pub paging: PagingSeen,
    pub amounts: AmountDetection,
}

/// The paging the first page of `GET /invoices` answered with (for `probe`): the walk relies
/// on it (`totalPages` for its audit page and its end, `totalItems` to notice a list that
/// shrank mid-walk, `itemsPerPage` to step back), so an operator sees what it will have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagingSeen {
    /// `itemPerPage` asked (`sources.<name>.rebillia.page_size`, at most 250).
    pub asked: u32,
    /// Invoices on the first page.
    pub received: usize,
    pub items_per_page: Option<u64>,
    pub total_items: Option<u64>,
    pub total_pages: Option<u64>,
}

impl PagingSeen {
    /// The server answered with pages smaller than asked while it has more: its own cap.
    pub fn cap(&self) -> Option<u64> {
        let received = u64::try_from(self.received).unwrap_or(u64::MAX);
        let asked = u64::from(self.asked);
        let more = self.total_items.is_some_and(|t| t > received)
            || self.total_pages.is_some_and(|p| p > 1);
        match self.items_per_page {
            Some(per_page) if per_page > 0 && per_page < asked => Some(per_page),
            _ if more && received > 0 && received < asked => Some(received),
            _ => None,
        }
    }
}

impl fmt::Display for PagingSeen {
    /// `paging: asked 10 a page, got 10 invoices; itemsPerPage 10, totalItems 25, totalPages 3`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field =
            |value: Option<u64>| value.map_or_else(|| "missing".to_owned(), |n| n.to_string());
        write!(
            f,
            "paging: asked {} a page (itemPerPage), got {} invoice(s) on page 1; itemsPerPage {}, totalItems {}, totalPages {}",
            self.asked,
            self.received,
            field(self.items_per_page),
            field(self.total_items),
            field(self.total_pages),
        )?;
        if let Some(cap) = self.cap() {
            write!(f, "; the server caps pages at {cap}")?;
        }
        if self.total_pages.is_none() {
            // Without it a cycle that stops early cannot pick an audit page (see `walk`).
            f.write_str("; without totalPages the walk reads on to an empty page")?;
        }
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the arithmetic of `records` (a page of `GET /invoices?include=detail`) says about the
/// unit of their whole-number amounts.
pub fn amount_evidence(records: &[Value]) -> UnitEvidence {
    let mut evidence = UnitEvidence::default();
    for record in records {
        evidence.add_invoice(convert::wire_amounts(record).as_ref());
    }
    evidence
}

impl RebilliaSource {
    /// `page_size` above [`MAX_PAGE_SIZE`] is lowered to it: Rebillia refuses larger pages.
    pub fn new(
        name: &str,
        settings: &RebilliaSettings,
        overlap: Duration,
    ) -> Result<Self, SourceError> {
        let requested = settings.http.page_size.get();
        let page_size = requested.min(MAX_PAGE_SIZE);
        if requested > MAX_PAGE_SIZE {
            tracing::warn!(
                source = name,
                requested,
                page_size,
                "Rebillia pages hold at most 250 invoices; using 250"
            );
        }
        // Cycles started at different times audit different pages (see `walk`).
        let turn = chrono::Utc::now().timestamp().unsigned_abs() / 60;
        Ok(Self {
            name: Arc::from(name),
            client: RebilliaClient::new(name, settings)?,
            overlap,
            page_size,
            amount_unit: settings.amount_unit,
            shown_unit: Mutex::new(None),
            out_of_order: AtomicBool::new(false),
            audit_turn: AtomicU64::new(turn),
            notices: Mutex::new(Vec::new()),
        })
    }

    /// How amounts are read now: the configured unit, and the unit this source's invoices last
    /// showed for those that add up either way.
    pub fn amount_policy(&self) -> AmountPolicy {
        AmountPolicy {
            configured: self.amount_unit,
            fallback: lock(&self.shown_unit).unwrap_or(AmountUnit::Cents),
        }
    }

    /// The policy for one page: what the page's invoices show wins over what earlier ones did.
    fn page_policy(&self, records: &[Value]) -> AmountPolicy {
        let evidence = amount_evidence(records);
        if let Some(unit) = evidence.unit() {
            let mut shown = lock(&self.shown_unit);
            if *shown != Some(unit) {
                *shown = Some(unit);
                let forced = match self.amount_unit {
                    RebilliaAmountUnit::Auto => None,
                    RebilliaAmountUnit::Cents => Some(AmountUnit::Cents),
                    RebilliaAmountUnit::Dollars => Some(AmountUnit::Dollars),
                };
                match forced {
                    Some(forced) if forced != unit => tracing::warn!(
                        source = %self.name,
                        configured = forced.name(),
                        shown = unit.name(),
                        %evidence,
                        "Rebillia invoices add up in another unit than amount_unit says; those that do not add up in it are refused"
                    ),
                    _ => tracing::info!(
                        source = %self.name,
                        unit = unit.name(),
                        %evidence,
                        "Rebillia amounts read as whole numbers of {unit}"
                    ),
                }
            }
        }
        self.amount_policy()
    }

    /// The amount units the first page of invoices shows, read-only (one `GET /invoices`).
    pub async fn detect_amount_unit(&self) -> Result<AmountDetection, SourceError> {
        Ok(self.probe().await?.amounts)
    }

    /// What `probe` reports for a Rebillia source, read-only (one `GET /invoices`): the paging
    /// the first page answers with and the amount units its invoices show.
    pub async fn probe(&self) -> Result<RebilliaProbe, SourceError> {
        let page = self.list_page(1).await?;
        Ok(RebilliaProbe {
            paging: PagingSeen {
                asked: self.page_size,
                received: page.data.len(),
                items_per_page: page.items_per_page,
                total_items: page.total_items,
                total_pages: page.total_pages,
            },
            amounts: AmountDetection {
                configured: self.amount_unit,
                evidence: amount_evidence(&page.data),
            },
        })
    }

    fn notice(&self, text: String) {
        lock(&self.notices).push(text);
    }

    /// One invoice by its Rebillia id, with its lines. `Ok(Err(..))`: the invoice cannot be
    /// taken, or no longer exists (Rebillia deletes outright).
    pub async fn get_invoice(
        &self,
        id: &str,
    ) -> Result<Result<SourceInvoice, RecordError>, SourceError> {
        let request = Request::get("GET /invoices/{id}", &["invoices", id])
            .query(vec![("include", "detail".to_owned())]);
        match self.client.send(&request).await {
            Ok(Value::Object(mut object)) if !object.contains_key("id") => {
                let inner = object.remove("data").unwrap_or(Value::Object(object));
                Ok(convert::invoice_with(
                    &self.name,
                    &inner,
                    self.amount_policy(),
                ))
            }
            Ok(value) => Ok(convert::invoice_with(
                &self.name,
                &value,
                self.amount_policy(),
            )),
            Err(ClientError::NotFound { .. }) => Ok(Err(RecordError::whole(
                &*self.name,
                RecordLocator::id(id),
                "Rebillia has no invoice with this id (deleted there?)",
            ))),
            Err(err) => Err(err.into_source_error(&self.name)),
        }
    }

    async fn list_page(&self, page_no: u64) -> Result<ListPage, SourceError> {
        let request = Request::get("GET /invoices", &["invoices"]).query(vec![
            ("include", "detail".to_owned()),
            ("orderBy", "updatedAt".to_owned()),
            ("sortBy", "DESC".to_owned()),
            ("pageNo", page_no.to_string()),
            ("itemPerPage", self.page_size.to_string()),
        ]);
        let value = self
            .client
            .send(&request)
            .await
            .map_err(|err| err.into_source_error(&self.name))?;
        ListPage::from_json(value).map_err(|message| SourceError::Protocol {
            source_name: self.name.to_string(),
            message: format!("GET /invoices page {page_no}: {message}"),
        })
    }
}

#[async_trait::async_trait]
impl Source for RebilliaSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn payment_writer(&self) -> Option<&dyn crate::source::write_back::PaymentWriter> {
        Some(self)
    }

    fn take_notices(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.notices))
    }

    fn pages<'a>(&'a self, cursor: &Cursor) -> BoxStream<'a, Result<SourcePage, SourceError>> {
        let remembered = self.out_of_order.load(Ordering::Relaxed);
        let turn = self.audit_turn.fetch_add(1, Ordering::Relaxed);
        let mut walk = Walk::new(cursor, self.overlap, self.page_size, remembered, turn);
        if remembered && walk.read_from().is_some() {
            tracing::info!(
                source = %self.name,
                "Rebillia's last walk found its invoices out of updatedAt order: reading every page this cycle"
            );
        }
        Box::pin(async_stream::stream! {
            let mut records = 0usize;
            loop {
                let page_no = walk.page_no();
                let page = match self.list_page(page_no).await {
                    Ok(page) => page,
                    Err(err) => {
                        tracing::warn!(source = %self.name, page_no, error = %err, "Rebillia walk stopped");
                        yield Err(err);
                        break;
                    }
                };
                let policy = self.page_policy(&page.data);
                let mode = walk.mode();
                let step = walk.take(&self.name, page, policy);
                match walk.take_disorder() {
                    Some(sign) if mode == Mode::NewestFirst => {
                        tracing::warn!(
                            source = %self.name,
                            page_no,
                            disorder = %sign,
                            "Rebillia did not return invoices newest updatedAt first: reading every page this cycle"
                        );
                        self.notice(format!(
                            "Rebillia did not sort invoices by updatedAt ({sign}): this cycle read every page, and later cycles do until one finds them in order"
                        ));
                    }
                    Some(sign) if !remembered => tracing::info!(
                        source = %self.name,
                        disorder = %sign,
                        "Rebillia's invoices are not in updatedAt order: later cycles read every page"
                    ),
                    Some(sign) => tracing::debug!(source = %self.name, disorder = %sign, "still out of updatedAt order"),
                    None => {}
                }
                records += step.records.len();
                tracing::debug!(source = %self.name, page_no, records = step.records.len(), last = step.last, "Rebillia page");
                let receipt = walk.receipt(step.last);
                let last = step.last;
                if last {
                    self.out_of_order.store(walk.saw_disorder(), Ordering::Relaxed);
                    tracing::info!(
                        source = %self.name,
                        pages = walk.pages_read(),
                        records,
                        full = walk.mode() == Mode::Full,
                        read_from = ?walk.read_from(),
                        cursor = ?receipt.cursor.watermark,
                        "Rebillia walk complete"
                    );
                }
                yield Ok(SourcePage { records: step.records, receipt });
                if last {
                    break;
                }
            }
        })
    }
}
