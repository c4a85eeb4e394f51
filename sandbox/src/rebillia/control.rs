//! [`RebilliaSandboxControl`]: the in-process test controls. The HTTP controls under
//! `/__sandbox/` (see `admin`) call these same methods.
//!
//! Changes made here are the billing system's own (a bill run, an operator in Rebillia's UI):
//! they bypass the API's rules and move the invoice's `updatedAt`.

use axum::http::StatusCode;

use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::api::settle_charge;
use super::render;
use super::seed::{self, INVOICE_ID_BASE};
use super::state::{lock, AmountStyle, Data, Invoice, Line, ListOrder, Shared, CURRENCIES};
use crate::harness::{Control, ControlError};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RebilliaSandboxError {
    #[error("invoice {0} does not exist in the Rebillia sandbox")]
    UnknownInvoice(u64),
    #[error("invalid Rebillia sandbox control request: {0}")]
    Invalid(String),
}

type Result<T> = std::result::Result<T, RebilliaSandboxError>;

/// A line item in cents.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineSpec {
    pub description: String,
    pub qty: i64,
    pub amount_cents: i64,
}

/// What the billing system changes on an invoice; unset fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InvoiceEdit {
    /// Any status, known to the adapter or not; `paid` without `paid_cents` pays it in full.
    pub status: Option<String>,
    pub date_due: Option<NaiveDate>,
    /// Replaces every line.
    pub lines: Option<Vec<LineSpec>>,
    pub shipping_cents: Option<i64>,
    pub tax_cents: Option<i64>,
    pub paid_cents: Option<i64>,
    pub comments: Option<String>,
    pub terms: Option<String>,
}

/// A new invoice, as a bill run would create it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewInvoice {
    /// 1-based: customer `n` is `CUST-0000n`.
    pub customer: usize,
    pub currency: String,
    pub lines: Vec<LineSpec>,
    pub shipping_cents: i64,
    pub status: String,
}

impl Default for NewInvoice {
    fn default() -> Self {
        Self {
            customer: 1,
            currency: "USD".to_owned(),
            lines: vec![LineSpec {
                description: "Sandbox subscription".to_owned(),
                qty: 1,
                amount_cents: 10_000,
            }],
            shipping_cents: 0,
            status: "posted".to_owned(),
        }
    }
}

/// A cloneable handle on a running Rebillia sandbox: the controls of every fake
/// ([`Control`]) and the Rebillia sandbox's own below. Fault rules see paths like
/// `/v1/invoices/1001`.
pub type RebilliaSandboxControl = Control<Shared>;

impl ControlError for RebilliaSandboxError {
    fn status(&self) -> StatusCode {
        match self {
            RebilliaSandboxError::Invalid(_) => StatusCode::BAD_REQUEST,
            RebilliaSandboxError::UnknownInvoice(_) => StatusCode::NOT_FOUND,
        }
    }
}

impl Control<Shared> {
    /// How answers write amounts from now on (the invoices themselves do not change).
    pub fn set_amount_style(&self, style: AmountStyle) {
        lock(&self.shared.data).amounts = style;
    }

    /// Whether the list honours `orderBy` / `sortBy` from now on.
    pub fn set_list_order(&self, order: ListOrder) {
        lock(&self.shared.data).list_order = order;
    }

    /// The sandbox's clock in unix seconds (follows a paused tokio clock).
    pub fn now_unix(&self) -> i64 {
        self.shared.harness.clock.now_unix()
    }

    /// Every invoice as `GET /invoices/{id}?include=detail` renders it, by id.
    pub fn invoices(&self) -> Vec<Value> {
        let data = lock(&self.shared.data);
        data.invoices
            .values()
            .map(|invoice| render::invoice(&data, invoice, true))
            .collect()
    }

    pub fn invoice(&self, id: u64) -> Option<Value> {
        let data = lock(&self.shared.data);
        data.invoices
            .get(&id)
            .map(|invoice| render::invoice(&data, invoice, true))
    }

    pub fn edit_invoice(&self, id: u64, edit: &InvoiceEdit) -> Result<()> {
        let now = self.now_unix();
        self.with_invoice(id, |data, invoice| {
            // Everything that can fail comes first: a refused edit changes nothing.
            if edit.status.as_ref().is_some_and(|s| s.trim().is_empty()) {
                return Err(RebilliaSandboxError::Invalid(
                    "status must not be empty".into(),
                ));
            }
            if let Some(lines) = edit
                .lines
                .as_ref()
                .map(|l| build_lines(data, l))
                .transpose()?
            {
                invoice.lines = lines;
            }
            if let Some(status) = &edit.status {
                invoice.status = status.clone();
            }
            invoice.date_due = edit.date_due.unwrap_or(invoice.date_due);
            invoice.shipping_cents = edit.shipping_cents.unwrap_or(invoice.shipping_cents);
            invoice.tax_cents = edit.tax_cents.unwrap_or(invoice.tax_cents);
            invoice.paid_cents = edit.paid_cents.unwrap_or(invoice.paid_cents);
            if edit.comments.is_some() {
                invoice.comments.clone_from(&edit.comments);
            }
            if edit.terms.is_some() {
                invoice.terms.clone_from(&edit.terms);
            }
            match invoice.status.as_str() {
                "paid" => {
                    if edit.paid_cents.is_none() {
                        invoice.paid_cents = invoice.total();
                    }
                    invoice.date_paid = Some(now);
                }
                "void" => invoice.date_void = Some(now),
                _ => {}
            }
            invoice.touch(now);
            Ok(())
        })
    }

    /// Voids the invoice as an operator would in Rebillia (irreversible).
    pub fn void_invoice(&self, id: u64) -> Result<()> {
        let now = self.now_unix();
        self.with_invoice(id, |_, invoice| {
            if invoice.status == "void" {
                return Err(RebilliaSandboxError::Invalid(format!(
                    "invoice {id} is already void"
                )));
            }
            invoice.status = "void".to_owned();
            invoice.date_void = Some(now);
            invoice.touch(now);
            Ok(())
        })
    }

    /// A payment of `cents` arrives; the invoice is `paid` once nothing is due.
    pub fn record_payment(&self, id: u64, cents: i64) -> Result<()> {
        let now = self.now_unix();
        self.with_invoice(id, |_, invoice| {
            if cents < 1 || cents > invoice.balance_due() {
                return Err(RebilliaSandboxError::Invalid(format!(
                    "a payment must be between 1 and the balance due ({} cents)",
                    invoice.balance_due()
                )));
            }
            invoice.paid_cents += cents;
            if invoice.balance_due() == 0 {
                invoice.status = "paid".to_owned();
                invoice.date_paid = Some(now);
            }
            invoice.touch(now);
            Ok(())
        })
    }

    /// While on, `POST /invoices/{id}/charge` checks and answers a charge as usual
    /// (`"status": "pending"`) but queues it instead of booking it, as a gateway that settles
    /// later; [`Self::acknowledge_charges`] books them. Turning it off books nothing.
    pub fn hold_charges(&self, hold: bool) {
        lock(&self.shared.data).charges.held = hold;
    }

    /// Books the queued charges in arrival order; returns how many. A charge the invoice can
    /// no longer take (no longer `posted` / `requestPayment`, more than the balance due, gone)
    /// is dropped, as a declined settlement.
    pub fn acknowledge_charges(&self) -> usize {
        let now = self.now_unix();
        let mut data = lock(&self.shared.data);
        let queued = std::mem::take(&mut data.charges.queue);
        let mut booked = 0;
        for charge in queued {
            let Some(invoice) = data.invoices.get_mut(&charge.invoice_id) else {
                continue;
            };
            if invoice.updatable() && charge.cents <= invoice.balance_due() {
                settle_charge(invoice, charge.cents, &charge.payment_type, now);
                booked += 1;
            }
        }
        booked
    }

    /// Every charge the API accepted, in order, as `(invoice id, cents)`: booked, queued, or
    /// booked and then answered with an injected fault. Refused charges and requests a fault
    /// stopped before they were applied are not in it.
    pub fn received_charges(&self) -> Vec<(u64, i64)> {
        lock(&self.shared.data).charges.received.clone()
    }

    /// Charges held and not yet acknowledged, as `(invoice id, cents)`.
    pub fn queued_charges(&self) -> Vec<(u64, i64)> {
        lock(&self.shared.data)
            .charges
            .queue
            .iter()
            .map(|c| (c.invoice_id, c.cents))
            .collect()
    }

    /// Deletes the invoice outright, as `DELETE /invoices/{id}` does: it leaves the list.
    pub fn delete_invoice(&self, id: u64) -> Result<()> {
        lock(&self.shared.data)
            .invoices
            .remove(&id)
            .map(|_| ())
            .ok_or(RebilliaSandboxError::UnknownInvoice(id))
    }

    /// Creates an invoice now; returns its id.
    pub fn add_invoice(&self, new: &NewInvoice) -> Result<u64> {
        self.insert(new, None)
    }

    /// Creates an invoice now whose JSON has `overlay` deep-merged over it, e.g.
    /// `{"currency": {"iso3": "USX"}}` or `{"detail": [{"amount": 12.5, "qty": 1}]}`.
    pub fn insert_malformed(&self, overlay: &Value) -> Result<u64> {
        let overlay = object(overlay)?;
        self.insert(&NewInvoice::default(), Some(overlay))
    }

    /// Deep-merges `overlay` over an existing invoice's JSON from now on; `updatedAt` moves.
    pub fn corrupt_invoice(&self, id: u64, overlay: &Value) -> Result<()> {
        let overlay = object(overlay)?;
        let now = self.now_unix();
        self.with_invoice(id, |_, invoice| {
            invoice.overlay = Some(overlay);
            invoice.touch(now);
            Ok(())
        })
    }

    fn insert(&self, new: &NewInvoice, overlay: Option<Map<String, Value>>) -> Result<u64> {
        let now = self.now_unix();
        let mut data = lock(&self.shared.data);
        let customer = data
            .customers
            .keys()
            .nth(new.customer.saturating_sub(1))
            .copied()
            .filter(|_| new.customer >= 1)
            .ok_or_else(|| {
                RebilliaSandboxError::Invalid(format!("no customer {}", new.customer))
            })?;
        let currency = CURRENCIES
            .iter()
            .find(|(_, iso3, ..)| iso3.eq_ignore_ascii_case(&new.currency))
            .map(|(_, iso3, ..)| *iso3)
            .ok_or_else(|| {
                RebilliaSandboxError::Invalid(format!("unknown currency {}", new.currency))
            })?;
        let lines = build_lines(&mut data, &new.lines)?;
        let id = data.allocate_invoice_id();
        let invoice = Invoice {
            id,
            invoice_no: format!("RB-{:06}", id - INVOICE_ID_BASE),
            customer,
            currency,
            status: new.status.clone(),
            lines,
            shipping_cents: new.shipping_cents,
            tax_cents: 0,
            paid_cents: 0,
            date_due: seed::date_of(now + 30 * 86_400),
            date_from: seed::date_of(now),
            date_to: seed::date_of(now + 29 * 86_400),
            created_at: now,
            updated_at: now,
            date_paid: None,
            date_void: None,
            comments: None,
            terms: Some("Net 30".to_owned()),
            payment_type: None,
            customer_email: None,
            customer_name: None,
            customer_phone: None,
            billing: Some(seed::address(customer, "commercial")),
            shipping: None,
            overlay,
        };
        data.invoices.insert(id, invoice);
        Ok(id)
    }

    fn with_invoice<T>(
        &self,
        id: u64,
        work: impl FnOnce(&mut Data, &mut Invoice) -> Result<T>,
    ) -> Result<T> {
        let mut data = lock(&self.shared.data);
        // Taken out and put back so `work` can allocate ids in `data` meanwhile.
        let mut invoice = data
            .invoices
            .remove(&id)
            .ok_or(RebilliaSandboxError::UnknownInvoice(id))?;
        let result = work(&mut data, &mut invoice);
        data.invoices.insert(id, invoice);
        result
    }
}

fn build_lines(data: &mut Data, specs: &[LineSpec]) -> Result<Vec<Line>> {
    specs
        .iter()
        .map(|spec| {
            if spec.qty < 1 {
                return Err(RebilliaSandboxError::Invalid(
                    "qty must be at least 1".into(),
                ));
            }
            Ok(Line {
                id: data.allocate_line_id(),
                description: spec.description.clone(),
                qty: spec.qty,
                amount: spec.amount_cents,
            })
        })
        .collect()
}

fn object(value: &Value) -> Result<Map<String, Value>> {
    value
        .as_object()
        .cloned()
        .ok_or_else(|| RebilliaSandboxError::Invalid("the overlay must be a JSON object".into()))
}
