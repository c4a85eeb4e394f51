//! The unified accounting API adapter: Alloy Automation's Unified API (presets
//! `alloy-2024-03` and `alloy-2023-12`) and other unified APIs whose wire names and paging are
//! configured (`custom`, api-docs 004).
//!
//! **Reading.** Two modes ([`ScanMode`]):
//! - *Full scan* (Alloy; `scan = "full"`): every cycle walks every page of the list, in whatever
//!   order the API keeps it, and relies on the engine's fingerprints: an unchanged invoice costs
//!   no B2B call. Nothing depends on list order or on a filter the API does not have (Alloy
//!   documents neither an updated-since filter nor a sort, and serves its cache, which may learn
//!   of an ERP edit hours after the edit's own `remoteUpdatedAt`). A crash mid-scan loses
//!   nothing: the next cycle scans from the first page again. The last page's receipt carries
//!   the scan's start as the cursor's watermark ("everything the API showed when this scan
//!   started is synced"), which `status` reports.
//! - *Incremental* (`custom`, the default there): `GET ..?updatedAfter=<cursor - overlap>`, for
//!   APIs that filter and sort by update time. A page's receipt cursor is the later of the
//!   previous watermark and the greatest `remoteUpdatedAt` seen so far. Timestamps more than
//!   [`MAX_CLOCK_AHEAD`] in the future do not move the cursor.
//!
//! **Paging** ([`PagingStyle`]): a `next` cursor field (004), page numbers (Alloy 2024-03:
//! `pageNumber` from 1, `pageSize` at most 100, a short or empty page ends the list), a cursor
//! at a dotted path of the body (Alloy 2023-12: `pageInfo {hasNext, nextCursor}`), or an offset.
//! Lazy: one page in memory at a time. An API that answers the same page for two page numbers
//! (it ignores the page parameter) is a protocol error, not an endless scan. Transient failures
//! (5xx, timeouts, dropped connections) are retried for the page at hand; 429s pause the
//! source's request budget (see `client`).
//!
//! **Ids.** `names.external_id_field` (`remoteId`, the ERP's id) becomes the B2B `externalId`;
//! `names.id_field` addresses one invoice in `GET/PUT {invoices_path}/{id}` (Alloy: its own
//! `id` UUID). When they differ, each page's pairs are kept in `unified_refs` (see `keep`), and
//! the payments write-back looks the API id up there.
//!
//! **Customers** (Alloy, `customer_lookup`): `customerId` is resolved to the customer's
//! `remoteId` (see `customers`); the customer's name is offered as the extra field
//! `customerName` (for `mapping.extra_fields`), unless the invoice's `remoteFields` has one.
//!
//! **Payments** flow back as `PUT {invoices_path}/{id}` with the new `balance` (see
//! `write_back`).

mod call;
mod client;
mod customers;
mod keep;
mod probe;
mod wire;
mod write_back;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde_json::Value;
use sqlx::PgPool;
use tracing::Instrument;

use self::client::{PageAt, UnifiedClient};
use self::customers::{CustomerView, Resolved};
use self::keep::{InvoiceRef, Keep};
use crate::config::{PagingStyle, ScanMode, UnifiedSettings};
use crate::domain::{RecordError, SourceInvoice};
use crate::source::write_back::PaymentWriter;
use crate::source::{Cursor, PageReceipt, Source, SourceError, SourcePage};

pub use probe::{ProbeFailure, ProbeReport};

/// How far ahead of this machine's clock a `remoteUpdatedAt` may be and still move the cursor.
pub const MAX_CLOCK_AHEAD: Duration = Duration::from_secs(60 * 60);

/// The extra field that carries the resolved customer's name.
pub const CUSTOMER_NAME_FIELD: &str = "customerName";

/// A source reading invoices from a unified accounting API.
#[derive(Debug)]
pub struct UnifiedSource {
    name: Arc<str>,
    client: UnifiedClient,
    overlap: Duration,
    keep: Keep,
}

impl UnifiedSource {
    /// `name` is the source's config name; `overlap` how far before the cursor to re-read.
    /// Without a database: invoice ids and customers are kept in memory for this process.
    pub fn new(
        name: &str,
        settings: &UnifiedSettings,
        overlap: Duration,
    ) -> Result<Self, SourceError> {
        Self::with_pool(name, settings, overlap, None)
    }

    /// With `pool`, invoice ids and customers are kept in PostgreSQL across processes.
    pub fn with_pool(
        name: &str,
        settings: &UnifiedSettings,
        overlap: Duration,
        pool: Option<PgPool>,
    ) -> Result<Self, SourceError> {
        Ok(Self {
            name: Arc::from(name),
            client: UnifiedClient::new(name, settings)?,
            overlap,
            keep: Keep::new(pool),
        })
    }

    /// Requests sent to the API so far through the source's budget (reads and write-backs).
    pub fn requests_sent(&self) -> u64 {
        self.client.requests_sent()
    }

    /// `GET {invoices_path}/{id}` of the invoice whose ERP id is `external_id`: one invoice, or
    /// why it cannot be taken.
    pub async fn get_invoice(
        &self,
        external_id: &str,
    ) -> Result<Result<SourceInvoice, RecordError>, SourceError> {
        let span = tracing::debug_span!("unified_get_invoice", source = %self.name, external_id);
        async {
            let id = self.api_id(external_id).await?.ok_or_else(|| {
                self.protocol(format!(
                    "invoice {external_id}: its API id is not known yet (a scan learns it)"
                ))
            })?;
            let url = self.client.invoice_url(&id)?;
            let body = self.client.get_one(url).await?;
            let record = wire::single_in(body, &self.client.names().single_field)
                .map_err(|message| self.protocol(message))?;
            let mut view = CustomerView::default();
            let ids = self.customer_ids(std::slice::from_ref(&record));
            if !ids.is_empty() {
                self.resolve_customers(&mut view, ids).await?;
            }
            Ok(self.parse(&record, 0, &view))
        }
        .instrument(span)
        .await
    }

    /// Alloy's webhook subscriptions (`GET /webhooks`), as the API answers them.
    pub async fn webhooks(&self) -> Result<Value, SourceError> {
        let url = self.client.join("webhooks")?;
        self.client
            .send("GET /webhooks", reqwest::Method::GET, url, None)
            .await
    }

    /// Subscribes `address` to `topic` (`POST /webhooks {address, topic}`).
    pub async fn subscribe_webhook(
        &self,
        address: &str,
        topic: &str,
    ) -> Result<Value, SourceError> {
        let url = self.client.join("webhooks")?;
        let body = serde_json::json!({ "address": address, "topic": topic });
        self.client
            .send("POST /webhooks", reqwest::Method::POST, url, Some(&body))
            .await
    }

    /// The id that addresses invoice `external_id` in `{invoices_path}/{id}`: the same id, or
    /// (when `names.id_field` differs) the API id a scan recorded.
    pub(crate) async fn api_id(&self, external_id: &str) -> Result<Option<String>, SourceError> {
        let names = self.client.names();
        if names.id_field == names.external_id_field {
            return Ok(Some(external_id.to_owned()));
        }
        self.keep
            .api_id(&self.name, external_id)
            .await
            .map_err(|m| self.database(m))
    }

    fn protocol(&self, message: String) -> SourceError {
        SourceError::Protocol {
            source_name: self.name.to_string(),
            message,
        }
    }

    fn database(&self, message: String) -> SourceError {
        SourceError::Database {
            source_name: self.name.to_string(),
            message,
        }
    }

    fn same_page_twice(&self, endpoint: &str) -> SourceError {
        let names = self.client.names();
        let param = match self.client.api().paging {
            PagingStyle::Offset => &names.offset_param,
            _ => &names.page_param,
        };
        self.protocol(format!(
            "{endpoint}: two pages in a row began with the same record: the API does not read \
             `{param}`, so paging would never end; check the preset or names.{}",
            if self.client.api().paging == PagingStyle::Offset {
                "offset_param"
            } else {
                "page_param"
            }
        ))
    }

    fn repeated_cursor(&self) -> SourceError {
        self.protocol(format!(
            "the API returned the same `{}` cursor twice; paging would never end",
            self.client.names().cursor_param
        ))
    }

    /// The page after `at`, given what the page at `at` held (`count` records); `None` at the
    /// end of the list.
    pub(crate) fn next_page(
        &self,
        at: &PageAt,
        page: &wire::ListPage,
        count: usize,
    ) -> Result<Option<PageAt>, SourceError> {
        if !page.more {
            return Ok(None);
        }
        Ok(Some(match (at, &page.next) {
            (PageAt::Cursor(previous), Some(next)) if previous == next => {
                return Err(self.repeated_cursor())
            }
            (_, Some(next)) => PageAt::Cursor(next.clone()),
            (PageAt::Number(n), None) => PageAt::Number(n + 1),
            (PageAt::Offset(n), None) => PageAt::Offset(n + count as u64),
            (PageAt::First | PageAt::Cursor(_), None) => return Ok(None),
        }))
    }

    async fn read_page(
        &self,
        from: Option<DateTime<Utc>>,
        at: &PageAt,
    ) -> Result<wire::ListPage, SourceError> {
        let url = self.client.list_url(from, at)?;
        let body = self.client.get_list(url).await?;
        let names = self.client.names();
        wire::list_page_in(
            body,
            names,
            self.client.api().paging,
            self.client.page_size(),
            &names.list_field,
        )
        .map_err(|message| self.protocol(format!("{}: {message}", self.client.list_endpoint())))
    }

    /// The API customer ids a page's invoices name (customer lookup only).
    fn customer_ids(&self, records: &[Value]) -> HashSet<String> {
        if self.client.api().customer_lookup.is_none() {
            return HashSet::new();
        }
        records
            .iter()
            .filter_map(|r| wire::text_field(r, "customerId"))
            .collect()
    }

    /// A page's records: customers resolved, API ids kept, each parsed; `watermark` moves past
    /// their `remoteUpdatedAt` (bad records' too: the engine records them as failed).
    async fn take_page(
        &self,
        raw: Vec<Value>,
        watermark: &mut Option<DateTime<Utc>>,
        view: &mut CustomerView,
    ) -> Result<Vec<Result<SourceInvoice, RecordError>>, SourceError> {
        let ids = self.customer_ids(&raw);
        if !ids.is_empty() {
            self.resolve_customers(view, ids).await?;
        }
        self.keep_refs(&raw).await?;
        let ceiling = cursor_ceiling();
        let external = self.client.names().external_id_field.as_str();
        let mut records = Vec::with_capacity(raw.len());
        for (position, record) in raw.iter().enumerate() {
            match wire::updated_at(record) {
                Some(at) if at > ceiling => tracing::warn!(
                    source = %self.name,
                    record = %wire::locator_by(record, position, external),
                    updated_at = %at,
                    "remoteUpdatedAt is far in the future; the cursor does not move past it"
                ),
                Some(at) => *watermark = (*watermark).max(Some(at)),
                None => {}
            }
            records.push(self.parse(record, position, view));
        }
        Ok(records)
    }

    /// Keeps each record's API id by its ERP id, when the two differ.
    async fn keep_refs(&self, raw: &[Value]) -> Result<(), SourceError> {
        let names = self.client.names();
        if names.id_field == names.external_id_field {
            return Ok(());
        }
        let refs: Vec<InvoiceRef> = raw
            .iter()
            .filter_map(|r| {
                Some(InvoiceRef {
                    external_id: wire::text_field(r, &names.external_id_field)?,
                    api_id: wire::text_field(r, &names.id_field)?,
                    deleted: r
                        .get("remoteDeleted")
                        .is_some_and(|d| d.as_bool() == Some(true)),
                })
            })
            .collect();
        self.keep
            .remember_refs(&self.name, &refs)
            .await
            .map_err(|m| self.database(m))
    }

    /// One record into a `SourceInvoice`, its customer resolved when the API needs it.
    fn parse(
        &self,
        record: &Value,
        position: usize,
        view: &CustomerView,
    ) -> Result<SourceInvoice, RecordError> {
        let external = self.client.names().external_id_field.as_str();
        let locator = wire::locator_by(record, position, external);
        let mut raw = wire::raw_invoice_by(&self.name, &locator, record, external)?;
        if self.client.api().customer_lookup.is_some() {
            if let Some(id) = wire::text_field(record, "customerId") {
                match view.get(&id) {
                    Some(Resolved::Customer(customer)) => {
                        raw.external_customer_id = Some(customer.remote_id);
                        if let Some(name) = customer.name {
                            raw.extra_fields
                                .entry(CUSTOMER_NAME_FIELD.to_owned())
                                .or_insert(name);
                        }
                    }
                    Some(Resolved::Unknown(why)) => {
                        return Err(RecordError::new(
                            &*self.name,
                            locator,
                            Some("external_customer_id"),
                            why,
                        ))
                    }
                    None => {
                        return Err(RecordError::new(
                            &*self.name,
                            locator,
                            Some("external_customer_id"),
                            format!("customer {id} could not be resolved"),
                        ))
                    }
                }
            }
        }
        SourceInvoice::parse(&self.name, locator, raw)
    }
}

/// The latest instant a record may move the cursor to.
fn cursor_ceiling() -> DateTime<Utc> {
    let ahead = chrono::Duration::from_std(MAX_CLOCK_AHEAD).unwrap_or(chrono::Duration::zero());
    Utc::now() + ahead
}

/// A page's first record, to notice an API that serves the same page for every number.
fn first_key(records: &[Value], external: &str) -> Option<String> {
    records
        .first()
        .and_then(|r| wire::text_field(r, external).or_else(|| wire::text_field(r, "id")))
}

#[async_trait::async_trait]
impl Source for UnifiedSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn payment_writer(&self) -> Option<&dyn PaymentWriter> {
        Some(self)
    }

    async fn fetch(
        &self,
        external_ids: &[String],
    ) -> Option<Result<Vec<Result<SourceInvoice, RecordError>>, SourceError>> {
        let mut records = Vec::with_capacity(external_ids.len());
        for id in external_ids {
            match self.api_id(id).await {
                Ok(Some(_)) => {}
                // Not scanned yet: the next full cycle reads it.
                Ok(None) => {
                    tracing::info!(source = %self.name, external_id = %id, "invoice not scanned yet: left to the next full cycle");
                    continue;
                }
                Err(e) => return Some(Err(e)),
            }
            match self.get_invoice(id).await {
                Ok(record) => records.push(record),
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok(records))
    }

    fn pages<'a>(&'a self, cursor: &Cursor) -> BoxStream<'a, Result<SourcePage, SourceError>> {
        let full = self.client.api().scan == ScanMode::Full;
        // A full scan reads everything: no filter, and the cursor only records scans.
        let from = if full {
            None
        } else {
            cursor.read_from(self.overlap)
        };
        let start = cursor.watermark;
        let stream = async_stream::try_stream! {
            let scan_started = Utc::now();
            let mut view = CustomerView::default();
            self.refresh_customers_if_due(&mut view).await?;
            let mut watermark = start;
            let mut at = self.client.first_page();
            let mut previous_first: Option<String> = None;
            let external = self.client.names().external_id_field.clone();
            let mut number: u64 = 0;
            loop {
                number += 1;
                let span = tracing::debug_span!("unified_page", source = %self.name, page = number);
                let page = self.read_page(from, &at).instrument(span.clone()).await?;
                let first = first_key(&page.records, &external);
                if matches!(at, PageAt::Number(_) | PageAt::Offset(_))
                    && first.is_some()
                    && first == previous_first
                {
                    Err(self.same_page_twice(self.client.list_endpoint()))?;
                }
                previous_first = first;
                let count = page.records.len();
                let next = self.next_page(&at, &page, count)?;
                let records = self
                    .take_page(page.records, &mut watermark, &mut view)
                    .instrument(span.clone())
                    .await?;
                let refused = records.iter().filter(|r| r.is_err()).count();
                span.in_scope(|| {
                    tracing::debug!(records = count, refused, more = next.is_some(), "unified page read")
                });
                let cursor = match (full, &next) {
                    (false, _) => Cursor { watermark },
                    // Only a finished scan says everything up to its start is synced.
                    (true, None) => Cursor::at(scan_started).max(Cursor { watermark: start }),
                    (true, Some(_)) => Cursor { watermark: start },
                };
                let receipt = PageReceipt {
                    cursor,
                    finished_file: None,
                };
                yield SourcePage { records, receipt };
                match next {
                    Some(next) => at = next,
                    None => break,
                }
            }
            if full {
                tracing::info!(source = %self.name, pages = number, requests = self.requests_sent(), "full scan finished");
            }
        };
        Box::pin(stream)
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use secrecy::SecretString;
    use serde_json::json;

    use super::*;
    use crate::config::{HttpSettings, RetrySettings, UnifiedApi, UnifiedNames};

    fn source(paging: PagingStyle) -> UnifiedSource {
        let settings = UnifiedSettings {
            base_url: "https://api.example/".parse().unwrap(),
            api_key: SecretString::from("k"),
            credential_id: "c".to_owned(),
            http: HttpSettings {
                request_timeout: Duration::from_secs(5),
                connect_timeout: Duration::from_secs(1),
                retry: RetrySettings::default(),
                page_size: NonZeroU32::new(2).unwrap(),
            },
            names: UnifiedNames::default(),
            api: UnifiedApi {
                paging,
                first_page: 0,
                ..UnifiedApi::default()
            },
        };
        UnifiedSource::new("erp", &settings, Duration::ZERO).unwrap()
    }

    fn page(records: usize, next: Option<&str>, more: bool) -> wire::ListPage {
        wire::ListPage {
            records: vec![json!({}); records],
            next: next.map(str::to_owned),
            more,
        }
    }

    #[test]
    fn each_paging_style_asks_for_the_right_next_page() {
        let offset = source(PagingStyle::Offset);
        assert_eq!(offset.client.first_page(), PageAt::Offset(0));
        assert_eq!(
            offset
                .next_page(&PageAt::Offset(4), &page(2, None, true), 2)
                .unwrap(),
            Some(PageAt::Offset(6))
        );
        assert_eq!(
            offset
                .next_page(&PageAt::Offset(4), &page(1, None, false), 1)
                .unwrap(),
            None
        );
        let numbers = source(PagingStyle::PageNumber);
        assert_eq!(numbers.client.first_page(), PageAt::Number(0));
        assert_eq!(
            numbers
                .next_page(&PageAt::Number(0), &page(2, None, true), 2)
                .unwrap(),
            Some(PageAt::Number(1))
        );
        let cursors = source(PagingStyle::BodyCursor);
        assert_eq!(cursors.client.first_page(), PageAt::First);
        assert_eq!(
            cursors
                .next_page(&PageAt::First, &page(2, Some("a"), true), 2)
                .unwrap(),
            Some(PageAt::Cursor("a".to_owned()))
        );
        let repeated = cursors.next_page(
            &PageAt::Cursor("a".to_owned()),
            &page(2, Some("a"), true),
            2,
        );
        assert!(matches!(repeated, Err(SourceError::Protocol { .. })));
        let url = offset.client.list_url(None, &PageAt::Offset(6)).unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.example/accounting/invoices?credentialId=c&limit=2&offset=6"
        );
    }
}
