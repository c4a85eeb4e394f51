//! What the sandbox holds: per-store companies, orders, invoices, payments and invoice
//! extra-field configs, plus the shared runtime state (limiter, faults, stats) behind small mutexes.
//!
//! Every mutex here guards plain data and is only held for synchronous work: no guard ever
//! lives across an `.await`.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::Value;
use tokio::time::Instant;

use super::payments::PaymentRecord;
use super::SandboxStore;
use crate::faults::FaultState;
use crate::ratelimit::RateLimiter;
use crate::stats::Stats;

/// Locks a sandbox mutex. A panic while holding one (only possible in a test assertion)
/// leaves plain data behind that is still usable, so poisoning is ignored.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Wall-clock seconds that advance with the tokio clock.
///
/// Tests run the sandbox under a paused tokio clock; deriving timestamps from
/// `tokio::time::Instant` makes `createdAt`/`updatedAt` move only when the test moves time.
#[derive(Debug)]
pub(crate) struct Clock {
    start: Instant,
    start_unix: i64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            start_unix: chrono::Utc::now().timestamp(),
        }
    }

    pub(crate) fn since_start(&self) -> Duration {
        Instant::now().saturating_duration_since(self.start)
    }

    pub(crate) fn now_unix(&self) -> i64 {
        let elapsed = i64::try_from(self.since_start().as_secs()).unwrap_or(i64::MAX);
        self.start_unix.saturating_add(elapsed)
    }
}

/// An amount in a currency, e.g. `{"code":"USD","value":"349.5000"}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Money {
    pub code: String,
    pub value: Decimal,
}

/// One `{fieldName, fieldValue}` pair of an invoice or company.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExtraFieldValue {
    pub name: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct InvoiceRecord {
    pub id: u64,
    /// The B2B company id.
    pub customer_id: u64,
    pub external_id: Option<String>,
    pub external_customer_id: Option<String>,
    pub invoice_number: String,
    /// `type` in the API.
    pub kind: String,
    pub due_date: i64,
    pub status: u8,
    pub order_number: Option<String>,
    pub purchase_order_number: Option<String>,
    /// Stored exactly as sent (any JSON object).
    pub details: Value,
    pub source: u8,
    pub original_balance: Money,
    pub open_balance: Money,
    pub created_at: i64,
    pub updated_at: i64,
    pub channel_id: i64,
    pub terms_conditions: Option<String>,
    pub external_pdf_url: Option<String>,
    pub extra_fields: Vec<ExtraFieldValue>,
}

impl InvoiceRecord {
    /// The documented rule: an invoice whose open balance is zero or negative is completed.
    pub(crate) fn apply_status_rule(&mut self) {
        if self.open_balance.value <= Decimal::ZERO {
            self.status = STATUS_COMPLETED;
        }
    }
}

pub(crate) const STATUS_COMPLETED: u8 = 2;

#[derive(Clone, Debug)]
pub(crate) struct Company {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub phone: String,
    pub uuid: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub extra_fields: Vec<ExtraFieldValue>,
}

/// A B2B Edition order an invoice can be generated from.
#[derive(Clone, Debug)]
pub(crate) struct Order {
    pub id: u64,
    pub company_id: u64,
    pub total: Decimal,
    pub currency: String,
    pub created_at: i64,
    /// The invoice generated from this order, if any.
    pub invoice_id: Option<u64>,
}

/// Field types of the extra-field config model (`extra_fields.yaml`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExtraFieldType {
    Text = 0,
    Multiline = 1,
    Number = 2,
    Dropdown = 3,
}

#[derive(Clone, Debug)]
pub(crate) struct ExtraFieldConfig {
    pub id: u64,
    pub uuid: String,
    pub name: String,
    pub field_type: ExtraFieldType,
    pub is_required: bool,
    pub is_unique: bool,
    pub visible_to_end_user: bool,
    pub default_value: String,
    pub maximum_length: Option<usize>,
    pub list_of_value: Vec<String>,
}

/// All data of one B2B Edition store.
#[derive(Debug)]
pub(crate) struct StoreData {
    pub hash: String,
    pub companies: BTreeMap<u64, Company>,
    pub orders: BTreeMap<u64, Order>,
    pub invoices: BTreeMap<u64, InvoiceRecord>,
    pub next_invoice_id: u64,
    pub invoice_extra_fields: Vec<ExtraFieldConfig>,
    pub payments: BTreeMap<u64, PaymentRecord>,
    pub next_payment_id: u64,
}

impl StoreData {
    pub(crate) fn new(hash: &str) -> Self {
        Self {
            hash: hash.to_owned(),
            companies: BTreeMap::new(),
            orders: BTreeMap::new(),
            invoices: BTreeMap::new(),
            next_invoice_id: 1,
            invoice_extra_fields: Vec::new(),
            payments: BTreeMap::new(),
            next_payment_id: 1,
        }
    }

    /// Whether another invoice (not `except`) already uses `number`. Compared without case:
    /// production likely stores numbers under a case-insensitive collation, and the stricter
    /// reading keeps a client from passing here with `inv-1` next to `INV-1`.
    /// A linear scan, so it must stay cheap per invoice: ASCII numbers (the usual case) compare
    /// without allocating, which keeps a 100 000-invoice benchmark from spending its time here.
    pub(crate) fn invoice_number_taken(&self, number: &str, except: Option<u64>) -> bool {
        let wanted = (!number.is_ascii()).then(|| number.to_lowercase());
        self.invoices.values().any(|invoice| {
            let other = invoice.invoice_number.as_str();
            let same = match &wanted {
                None if other.is_ascii() => other.eq_ignore_ascii_case(number),
                None => other.to_lowercase() == number.to_lowercase(),
                Some(wanted) => other.to_lowercase() == *wanted,
            };
            same && Some(invoice.id) != except
        })
    }

    pub(crate) fn company_name(&self, company_id: u64) -> &str {
        self.companies
            .get(&company_id)
            .map_or("", |company| company.name.as_str())
    }

    pub(crate) fn allocate_invoice_id(&mut self) -> u64 {
        let id = self.next_invoice_id;
        self.next_invoice_id += 1;
        id
    }
}

/// Everything a running sandbox shares between connections and the control handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub clock: Clock,
    /// Fixed at start; never logged (the `Debug` of `SandboxStore` redacts tokens).
    pub credentials: Vec<SandboxStore>,
    pub stores: Mutex<BTreeMap<String, StoreData>>,
    pub limiter: Mutex<RateLimiter>,
    pub faults: Mutex<FaultState>,
    pub stats: Mutex<Stats>,
    /// `http://host:port` of the bound socket, for the PDF links; set once after binding.
    pub public_base: OnceLock<String>,
    /// How open points of the documents are read; fixed at start.
    pub readings: super::Readings,
}

impl Shared {
    pub(crate) fn public_base(&self) -> &str {
        self.public_base
            .get()
            .map_or("http://127.0.0.1", String::as_str)
    }
}
