//! Payments: what buyers pay in the buyer portal, and the read side of the API over them
//! (`GET /ip/payments`, `GET /ip/payments/{id}`).
//!
//! Payments are created and moved between statuses only through the controls (see `apply`):
//! the daemon never writes payments, it only has to notice what they did to open balances.
//!
//! Behaviour where the docs are silent:
//! - A payment's balances are applied exactly while it is Completed (3): completing one lowers
//!   its invoices' open balances, leaving Completed (refund included) raises them back.
//! - `appliedStatus` is 1 while applied, 0 otherwise; `fundingStatus` is always 2, as in every
//!   documented example.
//! - Unknown or non-numeric payment ids are 404 "Payment does not exist".

mod apply;
#[cfg(test)]
mod tests;

use std::cmp::Ordering;

use serde_json::{json, Value};

use super::list::channel_ids;
use super::money::render_money;
use super::query::{contains, search_matches, Page, RawQuery};
use super::render::channel_name;
use super::reply::{self, ApiReply};
use super::state::{Money, StoreData};

pub(crate) const STATUS_COMPLETED: u8 = 3;
pub(crate) const STATUS_REFUNDED: u8 = 4;

const MODULE_OFFLINE: &str = "payments_offline";
const FUNDING_STATUS: u8 = 2;

const SORT_KEYS: &[&str] = &[
    "moduleName",
    "processingStatus",
    "appliedStatus",
    "createdAt",
    "customerId",
    "externalCustomerId",
    "fundingStatus",
    "updatedAt",
    "totalAmount",
];
const SEARCH_FIELDS: &[&str] = &["id", "customerId", "externalId", "externalCustomerId"];

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PaymentRecord {
    pub id: u64,
    /// The paying company (every line's invoice belongs to it).
    pub customer_id: u64,
    pub external_customer_id: Option<String>,
    pub payer_name: String,
    pub memo: String,
    pub module_name: String,
    pub processing_status: u8,
    pub total: Money,
    pub lines: Vec<PaymentLine>,
    pub channel_id: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl PaymentRecord {
    /// Whether the payment's amounts are currently taken off its invoices' open balances.
    pub(crate) fn is_applied(&self) -> bool {
        self.processing_status == STATUS_COMPLETED
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PaymentLine {
    pub invoice_id: u64,
    pub invoice_number: String,
    pub amount: Money,
}

/// The next `updatedAt`: the clock's seconds are coarse, and a change must still move the
/// timestamp, or an updated-since reader could miss it.
pub(crate) fn next_updated_at(previous: i64, now: i64) -> i64 {
    now.max(previous.saturating_add(1))
}

/// Renders one payment, keys in the order of the documented examples.
pub(crate) fn render(payment: &PaymentRecord, store: &StoreData) -> Value {
    let customer_id = payment.customer_id.to_string();
    let lines: Vec<Value> = payment
        .lines
        .iter()
        .map(|line| {
            json!({
                "paymentId": payment.id,
                "invoiceId": line.invoice_id,
                "invoiceNumber": line.invoice_number,
                "amount": render_money(&line.amount),
            })
        })
        .collect();
    json!({
        "id": payment.id,
        "createdAt": payment.created_at,
        "updatedAt": payment.updated_at,
        "storeHash": store.hash,
        "customerId": customer_id,
        "externalId": Value::Null,
        "externalCustomerId": payment.external_customer_id,
        "payerName": payment.payer_name,
        "payerCustomerId": customer_id,
        "details": { "memo": payment.memo },
        "moduleName": payment.module_name,
        "fees": [],
        "moduleData": {
            "transactions": [
                { "memo": payment.memo, "type": "OfflineTransaction", "rawTransaction": null },
            ],
        },
        "processingStatus": payment.processing_status,
        "appliedStatus": u8::from(payment.is_applied()),
        "fundingStatus": FUNDING_STATUS,
        "total": render_money(&payment.total),
        "lineItems": lines,
        "customerName": store.company_name(payment.customer_id),
        "allowedOperations": [],
        "allowedStatuses": [1, 2, 3, 4],
        "channelId": payment.channel_id.to_string(),
        "channelName": channel_name(payment.channel_id),
    })
}

/// A parsed `GET /ip/payments` request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PaymentListQuery {
    pub page: Page,
    pub sort_by: &'static str,
    pub descending: bool,
    /// Lower-cased search text and the field it applies to (`None`: every search field).
    pub search: Option<(Option<&'static str>, String)>,
    pub customer_name: Option<String>,
    pub invoice_id: Option<u64>,
    pub processing_status: Option<u8>,
    pub channel_ids: Vec<i64>,
}

impl PaymentListQuery {
    pub(crate) fn parse(query: &RawQuery) -> Result<Self, ApiReply> {
        let page = Page::parse(query)?;
        let sort_by = query.one_of("sortBy", SORT_KEYS)?.unwrap_or("createdAt");
        let descending = query.one_of("orderBy", &["DESC", "ASC"])? != Some("ASC");
        let search_by = query.one_of("searchBy", SEARCH_FIELDS)?;
        let search = query.get("q").map(|text| (search_by, text.to_lowercase()));
        let processing_status = match query.number::<u8>("processingStatus")? {
            Some(status) if status > STATUS_REFUNDED => {
                return Err(reply::bad_request(
                    "processingStatus: must be one of 0, 1, 2, 3, 4",
                ))
            }
            status => status,
        };
        Ok(Self {
            page,
            sort_by,
            descending,
            search,
            customer_name: query.get("customerName").map(str::to_lowercase),
            invoice_id: query.number("invoiceId")?,
            processing_status,
            channel_ids: channel_ids(query)?,
        })
    }
}

/// `GET /ip/payments`.
pub(crate) fn list(store: &StoreData, raw: &RawQuery) -> ApiReply {
    let query = match PaymentListQuery::parse(raw) {
        Ok(query) => query,
        Err(reply) => return reply,
    };
    let (total, payments) = select(store, &query);
    let items = payments
        .into_iter()
        .map(|payment| render(payment, store))
        .collect();
    reply::page(
        Value::Array(items),
        total,
        query.page.limit,
        query.page.offset,
    )
}

/// `GET /ip/payments/{id}`.
pub(crate) fn get(store: &StoreData, id: &str) -> ApiReply {
    let payment = id
        .parse::<u64>()
        .ok()
        .and_then(|id| store.payments.get(&id));
    match payment {
        Some(payment) => reply::success(render(payment, store)),
        None => reply::not_found("Payment does not exist"),
    }
}

/// The matching payments' total and the requested page of them, sorted.
pub(crate) fn select<'s>(
    store: &'s StoreData,
    query: &PaymentListQuery,
) -> (usize, Vec<&'s PaymentRecord>) {
    let matching: Vec<&PaymentRecord> = store
        .payments
        .values()
        .filter(|payment| matches(store, payment, query))
        .collect();
    query.page.sorted(
        matching,
        query.descending,
        |a, b| compare(a, b, query.sort_by),
        |r| r.id,
    )
}

fn matches(store: &StoreData, payment: &PaymentRecord, query: &PaymentListQuery) -> bool {
    let searched = |field: &str, needle: &str| match field {
        "id" => contains(Some(&payment.id.to_string()), needle),
        "customerId" => contains(Some(&payment.customer_id.to_string()), needle),
        "externalCustomerId" => contains(payment.external_customer_id.as_deref(), needle),
        // Sandbox payments never carry an external id.
        _ => false,
    };
    search_matches(&query.search, SEARCH_FIELDS, searched)
        && query
            .customer_name
            .as_deref()
            .is_none_or(|name| contains(Some(store.company_name(payment.customer_id)), name))
        && query.invoice_id.is_none_or(|invoice_id| {
            payment
                .lines
                .iter()
                .any(|line| line.invoice_id == invoice_id)
        })
        && query
            .processing_status
            .is_none_or(|status| status == payment.processing_status)
        && (query.channel_ids.is_empty() || query.channel_ids.contains(&payment.channel_id))
}

fn compare(a: &PaymentRecord, b: &PaymentRecord, key: &str) -> Ordering {
    match key {
        "moduleName" => a.module_name.cmp(&b.module_name),
        "processingStatus" => a.processing_status.cmp(&b.processing_status),
        "appliedStatus" => a.is_applied().cmp(&b.is_applied()),
        "customerId" => a.customer_id.cmp(&b.customer_id),
        "externalCustomerId" => a.external_customer_id.cmp(&b.external_customer_id),
        "updatedAt" => a.updated_at.cmp(&b.updated_at),
        "totalAmount" => a.total.value.cmp(&b.total.value),
        // One funding status for all: only the id orders them.
        "fundingStatus" => Ordering::Equal,
        _ => a.created_at.cmp(&b.created_at),
    }
}
