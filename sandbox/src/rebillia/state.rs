//! What the Rebillia sandbox holds: customers and invoices of one company (the tenant an API
//! key belongs to), plus the shared runtime state behind small mutexes that are never held
//! across an `.await`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::NaiveDate;
use serde_json::{Map, Value};

pub(crate) use crate::harness::lock;
use crate::harness::Harness;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Customer {
    /// Rebillia's own id.
    pub id: u64,
    /// The merchant's id for the customer, e.g. `CUST-00001` (the B2B sandbox's companies carry
    /// the same values in their "ERP Customer ID" extra field).
    pub customer_id: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub business_name: String,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Line {
    pub id: u64,
    pub description: String,
    pub qty: i64,
    /// Unit price in cents.
    pub amount: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Address {
    pub contact_name: String,
    pub contact_company: Option<String>,
    pub street1: String,
    pub street2: Option<String>,
    pub city: String,
    pub state: Option<String>,
    pub zip: String,
    /// ISO 3166-1 alpha-2, one of [`COUNTRIES`].
    pub country: &'static str,
    /// `residential` or `commercial`.
    pub kind: String,
}

/// The countries the sandbox knows: `(id, alpha2, alpha3, numeric, name)`. The real API
/// resolves `countryId` against `/globals/countries`; a small fixed table stands in for it.
pub(crate) const COUNTRIES: [(u64, &str, &str, &str, &str); 6] = [
    (39, "CA", "CAN", "124", "Canada"),
    (82, "DE", "DEU", "276", "Germany"),
    (142, "MX", "MEX", "484", "Mexico"),
    (209, "ES", "ESP", "724", "Spain"),
    (235, "GB", "GBR", "826", "United Kingdom"),
    (236, "US", "USA", "840", "United States"),
];

/// The currencies the sandbox bills in: `(id, iso3, name, symbol, numeric)`.
pub(crate) const CURRENCIES: [(u64, &str, &str, &str, &str); 4] = [
    (1, "USD", "US Dollar", "$", "840"),
    (2, "EUR", "Euro", "€", "978"),
    (3, "CAD", "Canadian Dollar", "$", "124"),
    (4, "JPY", "Yen", "¥", "392"),
];

/// Statuses `PUT /invoices/{id}` and the charge call accept (api-docs 003).
pub(crate) const UPDATABLE: [&str; 2] = ["posted", "requestPayment"];

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Invoice {
    pub id: u64,
    pub invoice_no: String,
    /// Rebillia id of the customer.
    pub customer: u64,
    /// ISO code, one of [`CURRENCIES`].
    pub currency: &'static str,
    pub status: String,
    pub lines: Vec<Line>,
    pub shipping_cents: i64,
    pub tax_cents: i64,
    pub paid_cents: i64,
    pub date_due: NaiveDate,
    pub date_from: NaiveDate,
    pub date_to: NaiveDate,
    pub created_at: i64,
    pub updated_at: i64,
    pub date_paid: Option<i64>,
    pub date_void: Option<i64>,
    pub comments: Option<String>,
    pub terms: Option<String>,
    pub payment_type: Option<String>,
    pub customer_email: Option<String>,
    pub customer_name: Option<String>,
    pub customer_phone: Option<String>,
    pub billing: Option<Address>,
    pub shipping: Option<Address>,
    /// Merged over the rendered JSON: how a test plants a malformed record.
    pub overlay: Option<Map<String, Value>>,
}

impl Invoice {
    pub(crate) fn subtotal(&self) -> i64 {
        self.lines.iter().fold(0i64, |sum, line| {
            sum.saturating_add(line.qty.saturating_mul(line.amount))
        })
    }

    pub(crate) fn total(&self) -> i64 {
        self.subtotal()
            .saturating_add(self.shipping_cents)
            .saturating_add(self.tax_cents)
    }

    pub(crate) fn balance_due(&self) -> i64 {
        self.total().saturating_sub(self.paid_cents)
    }

    pub(crate) fn updatable(&self) -> bool {
        UPDATABLE.contains(&self.status.as_str())
    }

    /// The billing system changed the invoice: `updatedAt` moves (never backwards).
    pub(crate) fn touch(&mut self, now: i64) {
        self.updated_at = self.updated_at.max(now);
    }
}

/// A charge taken while charges are held, applied on acknowledgement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QueuedCharge {
    pub invoice_id: u64,
    pub cents: i64,
    pub payment_type: String,
}

/// The payments write-back's charges: what arrived and what waits.
#[derive(Debug, Default)]
pub(crate) struct Charges {
    pub held: bool,
    pub queue: Vec<QueuedCharge>,
    /// Every accepted charge, in arrival order: `(invoice id, cents)`.
    pub received: Vec<(u64, i64)>,
}

#[derive(Debug, Default)]
pub(crate) struct Data {
    pub customers: BTreeMap<u64, Customer>,
    pub invoices: BTreeMap<u64, Invoice>,
    pub next_invoice_id: u64,
    pub next_line_id: u64,
    pub charges: Charges,
    /// How amounts are written in answers.
    pub amounts: AmountStyle,
    /// Whether the list honours `orderBy` / `sortBy`.
    pub list_order: ListOrder,
}

/// How the sandbox writes an invoice's amounts (held in cents either way). Rebillia documents
/// line amounts as dollar strings and `shippingAmount`, charges and refunds in cents, but not
/// what it answers; these are the readings a client must survive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AmountStyle {
    /// Whole numbers of cents (`4100`).
    #[default]
    Cents,
    /// Dollar strings with two decimals (`"41.00"`), `shippingAmount` included.
    Dollars,
    /// As the documented request forms: dollar strings, but `shippingAmount` in cents.
    Documented,
}

/// Whether `GET /invoices` sorts as asked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListOrder {
    /// `orderBy` / `sortBy` are honoured.
    #[default]
    Honoured,
    /// They are checked but ignored: the list comes in its default order, newest created
    /// first, as a server that cannot sort by the column would serve it.
    Ignored,
}

impl Data {
    pub(crate) fn allocate_invoice_id(&mut self) -> u64 {
        self.next_invoice_id += 1;
        self.next_invoice_id
    }

    pub(crate) fn allocate_line_id(&mut self) -> u64 {
        self.next_line_id += 1;
        self.next_line_id
    }
}

/// Everything a running Rebillia sandbox shares between connections and the control handle
/// (the state behind [`RebilliaSandboxControl`](super::RebilliaSandboxControl)).
#[derive(Debug)]
pub struct Shared {
    pub(crate) harness: Harness,
    /// The accepted `X-AUTH-TOKEN`; never logged (see the config's `Debug`).
    pub(crate) token: String,
    /// The company the token belongs to, in the request log.
    pub(crate) company: String,
    pub(crate) data: Mutex<Data>,
}
