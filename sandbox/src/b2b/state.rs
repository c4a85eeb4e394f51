//! What the sandbox holds: per-store companies, orders, invoices, payments and invoice
//! extra-field configs, plus the harness (limiter, faults, stats) and small mutexes.
//!
//! Every mutex here guards plain data and is only held for synchronous work: no guard ever
//! lives across an `.await`.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use rust_decimal::Decimal;
use serde_json::Value;

use super::payments::PaymentRecord;
use super::SandboxStore;
pub(crate) use crate::harness::lock;
use crate::harness::Harness;

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

/// Everything a running B2B sandbox shares between connections and the control handle (the
/// state behind [`SandboxControl`](super::SandboxControl)).
#[derive(Debug)]
pub struct Shared {
    pub(crate) harness: Harness,
    /// Fixed at start; never logged (the `Debug` of `SandboxStore` redacts tokens).
    pub(crate) credentials: Vec<SandboxStore>,
    pub(crate) stores: Mutex<BTreeMap<String, StoreData>>,
    /// `http://host:port` of the bound socket, for the PDF links; set once after binding.
    pub(crate) public_base: OnceLock<String>,
    /// How open points of the documents are read; fixed at start.
    pub(crate) readings: super::Readings,
}

impl Shared {
    pub(crate) fn public_base(&self) -> &str {
        self.public_base
            .get()
            .map_or("http://127.0.0.1", String::as_str)
    }
}
