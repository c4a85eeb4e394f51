//! [`UnifiedSandboxControl`]: in-process test controls. The HTTP controls under `/__sandbox/`
//! (see `admin`) call these same methods.
//!
//! Changes behave as the ERP's would: each one stamps `remoteUpdatedAt` with the sandbox clock,
//! never at or before an earlier change, so the changed invoice moves to the end of the list.
//! [`UnifiedSandboxControl::update_invoice_at`] sets an explicit stamp instead, for the late
//! commit that lands before the reader's cursor.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::seed::remote_id;
use super::state::{lock, Shared};
use super::write;
use crate::domain::amount_text;
use crate::domain::money::parse_amount;
use crate::sandbox::faults::{ErrorRates, FaultRule};
use crate::sandbox::stats::{RequestRecord, SandboxStats};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnifiedSandboxError {
    #[error("invoice {0} does not exist in the unified sandbox")]
    UnknownInvoice(String),
    #[error("invalid sandbox control request: {0}")]
    Invalid(String),
}

/// A record the ERP holds but a reader cannot take as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Malformation {
    /// `currency` is `USX`, not an ISO 4217 code.
    BadCurrency,
    /// `totalAmount` is `"12O.00"` (a letter O).
    NonNumericAmount,
    /// `issueDate` is `"2026-02-30"`.
    BadDate,
    /// The record is a JSON string, without any `remoteId`.
    NotAnObject,
}

/// An invoice's amounts as the ERP holds them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InvoiceAmounts {
    /// `totalAmount`.
    pub total: Decimal,
    /// `balance`: what is still due.
    pub balance: Decimal,
    /// `invoiceStatus`.
    pub status: Option<String>,
}

/// A cloneable handle on a running unified sandbox.
#[derive(Clone, Debug)]
pub struct UnifiedSandboxControl {
    pub(crate) shared: Arc<Shared>,
}

impl UnifiedSandboxControl {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Every API request takes `fixed` plus a uniform random share of `jitter`.
    pub fn set_latency(&self, fixed: Duration, jitter: Duration) {
        lock(&self.shared.faults).set_latency(fixed, jitter);
    }

    pub fn set_error_rates(&self, rates: ErrorRates) -> Result<(), UnifiedSandboxError> {
        lock(&self.shared.faults)
            .set_error_rates(rates)
            .map_err(UnifiedSandboxError::Invalid)
    }

    /// Queues a fault rule behind those already queued.
    pub fn push_fault(&self, rule: FaultRule) {
        lock(&self.shared.faults).push(rule);
    }

    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    pub fn pending_faults(&self) -> Vec<FaultRule> {
        lock(&self.shared.faults).pending()
    }

    /// `limit` requests per `window` per credential (0: unlimited).
    pub fn set_rate_limit(&self, limit: u32, window: Duration) {
        lock(&self.shared.limiter).configure(limit, window);
    }

    /// Counters; `store_hash` in the records holds the credential id.
    pub fn stats(&self) -> SandboxStats {
        lock(&self.shared.stats).snapshot()
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.stats).requests()
    }

    pub fn reset_stats(&self) {
        lock(&self.shared.stats).reset();
    }

    /// The sandbox clock (follows a paused tokio clock).
    pub fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.shared.clock.now_ms()).unwrap_or_default()
    }

    /// How many invoices the list holds.
    pub fn invoice_count(&self) -> u64 {
        lock(&self.shared.invoices).len()
    }

    /// An invoice as `GET {invoices_path}/{id}` serves it.
    pub fn invoice(&self, id: &str) -> Option<Value> {
        lock(&self.shared.invoices).get(id)
    }

    /// The invoice's total, balance and status; `None` when it does not exist or has no readable
    /// `totalAmount` and `balance`.
    pub fn amounts(&self, id: &str) -> Option<InvoiceAmounts> {
        let invoice = self.invoice(id)?;
        let amount = |key: &str| parse_amount(&amount_text(invoice.get(key)?)?).ok();
        Some(InvoiceAmounts {
            total: amount("totalAmount")?,
            balance: amount("balance")?,
            status: invoice
                .get("invoiceStatus")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    /// While on, valid `PUT`s are answered 200 but queued instead of applied, as an ERP that
    /// imports payments later; [`Self::acknowledge_writes`] applies them. Turning it off does
    /// not apply what is queued.
    pub fn hold_writes(&self, hold: bool) {
        lock(&self.shared.writes).held = hold;
    }

    /// Applies the queued `PUT`s in arrival order, each stamped now; returns how many.
    pub fn acknowledge_writes(&self) -> usize {
        let queued = std::mem::take(&mut lock(&self.shared.writes).queue);
        let now = self.shared.clock.now_ms();
        let mut invoices = lock(&self.shared.invoices);
        queued
            .iter()
            .filter(|(id, body)| write::apply(&mut invoices, id, body, now).is_some())
            .count()
    }

    /// Every `PUT` body the sandbox accepted, in order, as `(remoteId, body)`: applied, queued,
    /// or applied and then answered with an injected fault. Refused bodies (400, 404) and
    /// requests a fault stopped before they were applied are not in it.
    pub fn received_writes(&self) -> Vec<(String, Value)> {
        lock(&self.shared.writes).received.clone()
    }

    /// The `PUT`s held and not yet acknowledged, as `(remoteId, body)`.
    pub fn queued_writes(&self) -> Vec<(String, Value)> {
        lock(&self.shared.writes).queue.clone()
    }

    /// The ERP changes fields of the invoice: `patch`'s keys replace the invoice's (e.g.
    /// `{"balance": 40}` or new `lineItems`). Returns the new `remoteUpdatedAt`.
    pub fn update_invoice(
        &self,
        id: &str,
        patch: &Value,
    ) -> Result<DateTime<Utc>, UnifiedSandboxError> {
        self.change(id, None, |invoice| merge(invoice, patch))
    }

    /// Like [`Self::update_invoice`], stamped `at` (e.g. before a reader's cursor).
    pub fn update_invoice_at(
        &self,
        id: &str,
        patch: &Value,
        at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, UnifiedSandboxError> {
        self.change(id, Some(at), |invoice| merge(invoice, patch))
    }

    /// The ERP deletes the invoice: `remoteDeleted` becomes true (it stays in the list).
    pub fn delete_invoice(&self, id: &str) -> Result<DateTime<Utc>, UnifiedSandboxError> {
        self.update_invoice(id, &json!({ "remoteDeleted": true }))
    }

    /// The ERP voids the invoice: `invoiceStatus` becomes `VOIDED`.
    pub fn void_invoice(&self, id: &str) -> Result<DateTime<Utc>, UnifiedSandboxError> {
        self.update_invoice(id, &json!({ "invoiceStatus": "VOIDED" }))
    }

    /// The ERP creates a new, valid invoice (generated like the seeded ones); returns its id.
    pub fn create_invoice(&self) -> String {
        self.add(|_| {})
    }

    /// The ERP holds a record a reader cannot take; returns its id.
    pub fn insert_malformed(&self, kind: Malformation) -> String {
        self.add(|invoice| match kind {
            Malformation::BadCurrency => invoice["currency"] = json!("USX"),
            Malformation::NonNumericAmount => invoice["totalAmount"] = json!("12O.00"),
            Malformation::BadDate => invoice["issueDate"] = json!("2026-02-30"),
            Malformation::NotAnObject => *invoice = json!("not an invoice"),
        })
    }

    /// Adds any JSON as a record, stamped now. Its id is its `remoteId` when that is a string,
    /// else a new one (not written into the record). Returns the id.
    pub fn insert_raw(&self, record: Value) -> Result<String, UnifiedSandboxError> {
        let now = self.shared.clock.now_ms();
        let mut invoices = lock(&self.shared.invoices);
        let id = match record.get("remoteId").and_then(Value::as_str) {
            Some(id) if invoices.get(id).is_some() => {
                return Err(UnifiedSandboxError::Invalid(format!(
                    "remoteId {id} already exists; update it instead"
                )))
            }
            Some(id) => id.to_owned(),
            None => remote_id(invoices.allocate_index()),
        };
        let stamp = invoices.next_stamp(now);
        invoices.put(&id, stamp, record);
        Ok(id)
    }

    fn add(&self, shape: impl FnOnce(&mut Value)) -> String {
        let now = self.shared.clock.now_ms();
        let mut invoices = lock(&self.shared.invoices);
        let index = invoices.allocate_index();
        let stamp = invoices.next_stamp(now);
        let mut invoice = invoices.seed.invoice(index, stamp);
        shape(&mut invoice);
        let id = remote_id(index);
        invoices.put(&id, stamp, invoice);
        id
    }

    fn change(
        &self,
        id: &str,
        at: Option<DateTime<Utc>>,
        edit: impl FnOnce(&mut Value) -> Result<(), UnifiedSandboxError>,
    ) -> Result<DateTime<Utc>, UnifiedSandboxError> {
        let now = self.shared.clock.now_ms();
        let mut invoices = lock(&self.shared.invoices);
        let mut invoice = invoices
            .get(id)
            .ok_or_else(|| UnifiedSandboxError::UnknownInvoice(id.to_owned()))?;
        edit(&mut invoice)?;
        let stamp = match at {
            Some(at) => at.timestamp_millis(),
            None => invoices.next_stamp(now),
        };
        invoices.put(id, stamp, invoice);
        Ok(DateTime::from_timestamp_millis(stamp).unwrap_or_default())
    }
}

/// Shallow merge; the ids cannot change (they are how the invoice is found).
fn merge(invoice: &mut Value, patch: &Value) -> Result<(), UnifiedSandboxError> {
    let Some(patch) = patch.as_object() else {
        return Err(UnifiedSandboxError::Invalid(
            "a patch must be a JSON object".to_owned(),
        ));
    };
    if patch.contains_key("remoteId") || patch.contains_key("id") {
        return Err(UnifiedSandboxError::Invalid(
            "remoteId and id cannot be changed".to_owned(),
        ));
    }
    let Some(object) = invoice.as_object_mut() else {
        return Err(UnifiedSandboxError::Invalid(
            "this record is not an object; it cannot be patched".to_owned(),
        ));
    };
    for (key, value) in patch {
        object.insert(key.clone(), value.clone());
    }
    Ok(())
}
