//! The unified accounting API adapter (api-docs 004): one API over QuickBooks, Xero, NetSuite, ...
//!
//! Reads `GET {base_url}/{invoices_path}?credentialId=..&limit=..&next=..&updatedAfter=..`, which
//! answers `{"invoices": [...], "next": "<cursor>" | null}` ordered by `remoteUpdatedAt`
//! ascending. Every wire name (path, parameters, envelope fields) comes from
//! [`UnifiedNames`](crate::config::UnifiedNames); how invoice fields are read is in [`wire`].
//!
//! **Cursor.** Each cycle reads from `cursor.read_from(overlap)` (the overlap re-reads records a
//! skewed ERP clock or a late commit put before the watermark; re-read invoices cost nothing
//! downstream). A page's receipt cursor is the later of the previous watermark and the greatest
//! `remoteUpdatedAt` seen so far, so committing page by page is safe on an ascending list: every
//! record at or before that instant has been handed over. Timestamps more than
//! [`MAX_CLOCK_AHEAD`] in the future do not move the cursor (one bad clock would otherwise skip
//! every change until that date); such a record still flows, and is simply read again.
//!
//! **Paging** is lazy: one page in memory at a time, whatever the size of the ERP. Transient
//! failures (5xx, 429 with `Retry-After`, timeouts, dropped connections) are retried for the page
//! at hand, mid-paging, without starting over.
//!
//! **Ids.** `external_id` is `remoteId` (the ERP's id). 004 addresses one invoice as `/{id}`
//! without saying which id; this adapter (and the sandbox) use the `remoteId` there.
//!
//! **Payments** flow back as `PUT {invoices_path}/{id}` with the new `balance` (see
//! `write_back`).

mod call;
mod client;
mod wire;
mod write_back;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use tracing::Instrument;

use self::client::UnifiedClient;
use crate::config::UnifiedSettings;
use crate::domain::{RecordError, SourceInvoice};
use crate::source::write_back::PaymentWriter;
use crate::source::{Cursor, PageReceipt, Source, SourceError, SourcePage};

/// How far ahead of this machine's clock a `remoteUpdatedAt` may be and still move the cursor.
pub const MAX_CLOCK_AHEAD: Duration = Duration::from_secs(60 * 60);

/// A source reading invoices from a unified accounting API.
#[derive(Debug)]
pub struct UnifiedSource {
    name: Arc<str>,
    client: UnifiedClient,
    overlap: Duration,
}

impl UnifiedSource {
    /// `name` is the source's config name; `overlap` how far before the cursor to re-read.
    pub fn new(
        name: &str,
        settings: &UnifiedSettings,
        overlap: Duration,
    ) -> Result<Self, SourceError> {
        Ok(Self {
            name: Arc::from(name),
            client: UnifiedClient::new(name, settings)?,
            overlap,
        })
    }

    /// `GET {invoices_path}/{remote_id}`: one invoice, or why it cannot be taken.
    pub async fn get_invoice(
        &self,
        remote_id: &str,
    ) -> Result<Result<SourceInvoice, RecordError>, SourceError> {
        let span = tracing::debug_span!("unified_get_invoice", source = %self.name, remote_id);
        async {
            let url = self.client.invoice_url(remote_id)?;
            let body = self.client.get_one(url).await?;
            let record = wire::single(body, self.client.names()).map_err(|message| {
                SourceError::Protocol {
                    source_name: self.name.to_string(),
                    message,
                }
            })?;
            Ok(parse(&self.name, &record, 0))
        }
        .instrument(span)
        .await
    }

    /// Parses a page's records, moving `watermark` past their `remoteUpdatedAt` (bad records'
    /// too: the engine records them as failed).
    fn records(
        &self,
        raw: Vec<serde_json::Value>,
        watermark: &mut Option<DateTime<Utc>>,
    ) -> Vec<Result<SourceInvoice, RecordError>> {
        let ceiling = cursor_ceiling();
        let mut records = Vec::with_capacity(raw.len());
        for (position, record) in raw.iter().enumerate() {
            match wire::updated_at(record) {
                Some(at) if at > ceiling => tracing::warn!(
                    source = %self.name,
                    record = %wire::locator(record, position),
                    updated_at = %at,
                    "remoteUpdatedAt is far in the future; the cursor does not move past it"
                ),
                Some(at) => *watermark = (*watermark).max(Some(at)),
                None => {}
            }
            records.push(parse(&self.name, record, position));
        }
        records
    }

    fn repeated_cursor(&self) -> SourceError {
        SourceError::Protocol {
            source_name: self.name.to_string(),
            message: format!(
                "the API returned the same `{}` cursor twice; paging would never end",
                self.client.names().next_field
            ),
        }
    }

    async fn read_page(
        &self,
        from: Option<DateTime<Utc>>,
        next: Option<&str>,
    ) -> Result<wire::ListPage, SourceError> {
        let url = self.client.list_url(from, next)?;
        let body = self.client.get_list(url).await?;
        wire::list_page(body, self.client.names(), self.client.page_size()).map_err(|message| {
            SourceError::Protocol {
                source_name: self.name.to_string(),
                message,
            }
        })
    }
}

fn parse(
    source: &str,
    record: &serde_json::Value,
    position: usize,
) -> Result<SourceInvoice, RecordError> {
    let locator = wire::locator(record, position);
    let raw = wire::raw_invoice(source, &locator, record)?;
    SourceInvoice::parse(source, locator, raw)
}

/// The latest instant a record may move the cursor to.
fn cursor_ceiling() -> DateTime<Utc> {
    let ahead = chrono::Duration::from_std(MAX_CLOCK_AHEAD).unwrap_or(chrono::Duration::zero());
    Utc::now() + ahead
}

#[async_trait::async_trait]
impl Source for UnifiedSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn payment_writer(&self) -> Option<&dyn PaymentWriter> {
        Some(self)
    }

    fn pages<'a>(&'a self, cursor: &Cursor) -> BoxStream<'a, Result<SourcePage, SourceError>> {
        let from = cursor.read_from(self.overlap);
        let start = cursor.watermark;
        let stream = async_stream::try_stream! {
            let mut watermark = start;
            let mut next: Option<String> = None;
            let mut number: u64 = 0;
            loop {
                number += 1;
                let span = tracing::debug_span!("unified_page", source = %self.name, page = number);
                let page = self
                    .read_page(from, next.as_deref())
                    .instrument(span.clone())
                    .await?;
                let more = page.next.is_some();
                let records = self.records(page.records, &mut watermark);
                let refused = records.iter().filter(|r| r.is_err()).count();
                span.in_scope(|| {
                    tracing::debug!(records = records.len(), refused, more, "unified page read")
                });
                let receipt = PageReceipt {
                    cursor: Cursor { watermark },
                    finished_file: None,
                };
                yield SourcePage { records, receipt };
                match page.next {
                    None => break,
                    Some(cursor) if next.as_deref() == Some(cursor.as_str()) => {
                        Err(self.repeated_cursor())?;
                    }
                    Some(cursor) => next = Some(cursor),
                }
            }
        };
        Box::pin(stream)
    }
}
