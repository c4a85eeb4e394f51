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
//! - **Cents everywhere.** Line amounts and shipping are documented in cents; `total`,
//!   `balanceDue`, `taxAmount` and `subtotalTaxExc` are read as cents too (the API's charges and
//!   refunds are cents as well). A cent is a hundredth of the unit for every currency (see
//!   [`cents_to_decimal`]); an amount finer than a zero-decimal currency's unit is refused.
//!   `detail[].amount` is the unit price; the line total is `qty x amount`, computed exactly.
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
//!   it passes the window (see `walk`). `updatedAt` is assumed to be set on creation; a record
//!   without it falls back to `createdAt`.
//! - **Customer.** `customer.customerId` (the merchant's own id, e.g. `CUST-00001`) is the ERP
//!   customer id; Rebillia's internal `customer.id` stands in when it is empty.
//! - **Dates.** Issue date: the date of `createdAt`. Times are RFC 3339, or naive and then UTC.
//! - **Extra fields** offered to the mapping: `status`, `date_from`, `date_to`, `payment_type`.
//! - **Single invoice.** `GET /invoices/{id}` answers the invoice itself (a `{data: ...}`
//!   wrapper is unwrapped too).
//! - **Payments** flow back as `POST /invoices/{id}/charge` (see `write_back`).

mod client;
mod convert;
mod walk;
mod write_back;

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use serde_json::Value;

pub use client::{DEFAULT_BASE_URL, MAX_PAGE_SIZE};
pub use convert::{cents_to_decimal, decimal_to_cents, invoice_from_json};

use self::client::{ClientError, RebilliaClient, Request};
use self::walk::{ListPage, Walk};
use crate::config::RebilliaSettings;
use crate::domain::{RecordError, RecordLocator, SourceInvoice};
use crate::source::{Cursor, Source, SourceError, SourcePage};

/// The Rebillia adapter of one `[sources.<name>]`.
#[derive(Debug)]
pub struct RebilliaSource {
    name: Arc<str>,
    client: RebilliaClient,
    overlap: Duration,
    page_size: u32,
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
        Ok(Self {
            name: Arc::from(name),
            client: RebilliaClient::new(name, settings)?,
            overlap,
            page_size,
        })
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
                Ok(convert::invoice_from_json(&self.name, &inner))
            }
            Ok(value) => Ok(convert::invoice_from_json(&self.name, &value)),
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

    fn pages<'a>(&'a self, cursor: &Cursor) -> BoxStream<'a, Result<SourcePage, SourceError>> {
        let mut walk = Walk::new(cursor, self.overlap, self.page_size);
        Box::pin(async_stream::stream! {
            let mut pages = 0u64;
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
                let step = walk.take(&self.name, page);
                pages += 1;
                records += step.records.len();
                tracing::debug!(source = %self.name, page_no, records = step.records.len(), last = step.last, "Rebillia page");
                let receipt = walk.receipt(step.last);
                let last = step.last;
                if last {
                    tracing::info!(
                        source = %self.name,
                        pages,
                        records,
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
