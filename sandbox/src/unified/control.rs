//! [`UnifiedSandboxControl`]: in-process test controls. The HTTP controls under `/__sandbox/`
//! (see `admin`) call these same methods.
//!
//! Changes behave as the ERP's would: each one stamps `remoteUpdatedAt` with the sandbox clock,
//! never at or before an earlier change, so the changed invoice moves to the end of the list.
//! [`UnifiedSandboxControl::update_invoice_at`] sets an explicit stamp instead, for the late
//! commit that lands before the reader's cursor.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::alloy::{self, AlloyCounters};
use super::seed::{self, remote_id};
use super::state::{lock, Shared};
use super::write;
use super::SandboxApi;
use crate::harness::{Control, ControlError};
use crate::wire::json_amount;

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

/// A cloneable handle on a running unified sandbox: the controls of every fake ([`Control`]:
/// latency, faults, rate limit per credential, stats, whose `store_hash` holds the credential
/// id; `reset_stats` also resets Alloy's [`AlloyCounters`]) and the unified sandbox's own below.
pub type UnifiedSandboxControl = Control<Shared>;

impl ControlError for UnifiedSandboxError {
    fn status(&self) -> StatusCode {
        match self {
            UnifiedSandboxError::Invalid(_) => StatusCode::BAD_REQUEST,
            UnifiedSandboxError::UnknownInvoice(_) => StatusCode::NOT_FOUND,
        }
    }
}

impl Control<Shared> {
    /// The Alloy version served; `None` for the generic API.
    pub fn alloy_version(&self) -> Option<alloy::AlloyVersion> {
        match &self.shared.api {
            SandboxApi::Alloy(options) => Some(options.version),
            SandboxApi::Generic => None,
        }
    }

    /// What an Alloy client did that it should not (all zero for the generic API).
    pub fn alloy_counters(&self) -> AlloyCounters {
        lock(&self.shared.alloy).clone()
    }

    /// The sandbox clock (follows a paused tokio clock).
    pub fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.shared.harness.clock.now_ms()).unwrap_or_default()
    }

    /// How many invoices the list holds.
    pub fn invoice_count(&self) -> u64 {
        lock(&self.shared.invoices).len()
    }

    /// An invoice as `GET {invoices_path}/{id}` serves it. Alloy: `id` may be Alloy's id, the
    /// served `remoteId` or the sandbox's own `rmt-` id.
    pub fn invoice(&self, id: &str) -> Option<Value> {
        let key = self.key(id)?;
        let body = lock(&self.shared.invoices).get(&key)?;
        Some(self.render(&key, body))
    }

    /// The sandbox's own id (`rmt-000007`) of an invoice named any way a test may name it.
    fn key(&self, id: &str) -> Option<String> {
        let SandboxApi::Alloy(_) = &self.shared.api else {
            return Some(id.to_owned());
        };
        if seed::index_of(id).is_some() {
            return Some(id.to_owned());
        }
        if let Some(index) = alloy::invoice_index_of_id(id) {
            return Some(seed::remote_id(index));
        }
        let invoices = lock(&self.shared.invoices);
        if let Some(key) = invoices.find_by_remote_id(id) {
            return Some(key);
        }
        alloy::index_of_remote_id(id).map(seed::remote_id)
    }

    /// An invoice as served, from its stored form.
    fn render(&self, key: &str, body: Value) -> Value {
        match (&self.shared.api, seed::index_of(key)) {
            (SandboxApi::Alloy(options), Some(index)) => {
                alloy::render_invoice(options, index, body)
            }
            _ => body,
        }
    }

    /// The id the adapter sees as the ERP's (the B2B `externalId`): the generic API's
    /// `remoteId` is the sandbox's own id; Alloy's is the served `remoteId`.
    fn public_id(&self, key: &str) -> String {
        if let SandboxApi::Generic = &self.shared.api {
            return key.to_owned();
        }
        let body = lock(&self.shared.invoices).get(key);
        body.map(|b| self.render(key, b))
            .and_then(|b| b.get("remoteId").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| key.to_owned())
    }

    /// Alloy: the ERP's `remoteId` and Alloy's `id` of an invoice named any way.
    pub fn alloy_ids(&self, id: &str) -> Option<(String, String)> {
        let invoice = self.invoice(id)?;
        let text = |k: &str| invoice.get(k).and_then(Value::as_str).map(str::to_owned);
        Some((text("remoteId")?, text("id")?))
    }

    /// The invoice's total, balance and status; `None` when it does not exist or has no readable
    /// `totalAmount` and `balance`.
    pub fn amounts(&self, id: &str) -> Option<InvoiceAmounts> {
        let invoice = self.invoice(id)?;
        let amount = |key: &str| json_amount(invoice.get(key)?);
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
        let now = self.shared.harness.clock.now_ms();
        let mut invoices = lock(&self.shared.invoices);
        queued
            .iter()
            .filter(|(id, _, body)| write::apply(&mut invoices, id, body, now).is_some())
            .count()
    }

    /// Every `PUT` body the sandbox accepted, in order, as `(id in the URL, body)` (the generic
    /// API's `remoteId`, Alloy's own id): applied, queued,
    /// or applied and then answered with an injected fault. Refused bodies (400, 404) and
    /// requests a fault stopped before they were applied are not in it.
    pub fn received_writes(&self) -> Vec<(String, Value)> {
        lock(&self.shared.writes).received.clone()
    }

    /// The `PUT`s held and not yet acknowledged, as `(id in the URL, body)`.
    pub fn queued_writes(&self) -> Vec<(String, Value)> {
        lock(&self.shared.writes)
            .queue
            .iter()
            .map(|(_, shown, body)| (shown.clone(), body.clone()))
            .collect()
    }

    /// Alloy: subscribes `address` to `topic`, as `POST /webhooks` does.
    pub fn subscribe_webhook(&self, address: &str, topic: &str) -> super::Subscription {
        let sub = super::Subscription {
            id: uuid::Uuid::new_v4().to_string(),
            address: address.to_owned(),
            topic: topic.to_owned(),
        };
        lock(&self.shared.webhooks).subscriptions.push(sub.clone());
        sub
    }

    /// Alloy: the webhook subscriptions.
    pub fn webhook_subscriptions(&self) -> Vec<super::Subscription> {
        lock(&self.shared.webhooks).subscriptions.clone()
    }

    /// Alloy: webhooks are lost on the way (true) or delivered again (false).
    pub fn lose_webhooks(&self, lose: bool) {
        lock(&self.shared.webhooks).lose = lose;
    }

    /// Alloy: webhook deliveries sent and lost so far.
    pub fn webhook_counts(&self) -> (u64, u64) {
        let w = lock(&self.shared.webhooks);
        (w.sent, w.lost)
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

    /// The ERP creates a new, valid invoice (generated like the seeded ones); returns its id
    /// (Alloy: its `remoteId`). Alloy lists it last.
    pub fn create_invoice(&self) -> String {
        self.add(None, |_| {})
    }

    /// Alloy: the ERP creates an invoice that the API lists just before invoice `before`
    /// (Alloy's cache order is its own, not creation order); returns its `remoteId`.
    pub fn create_invoice_before(&self, before: &str) -> Result<String, UnifiedSandboxError> {
        let key = self
            .key(before)
            .ok_or_else(|| UnifiedSandboxError::UnknownInvoice(before.to_owned()))?;
        let index = seed::index_of(&key)
            .ok_or_else(|| UnifiedSandboxError::UnknownInvoice(before.to_owned()))?;
        Ok(self.add(Some(index), |_| {}))
    }

    /// Alloy: a new customer with this `remoteId` and name; returns its Alloy id.
    pub fn create_customer(&self, remote_id: &str, name: &str) -> String {
        let now = self.shared.harness.clock.now_ms();
        lock(&self.shared.customers).add(remote_id, name, now)
    }

    /// Alloy: how many customers the list holds.
    pub fn customer_count(&self) -> u64 {
        lock(&self.shared.customers).count()
    }

    /// The ERP holds a record a reader cannot take; returns its id.
    pub fn insert_malformed(&self, kind: Malformation) -> String {
        self.add(None, |invoice| match kind {
            Malformation::BadCurrency => invoice["currency"] = json!("USX"),
            Malformation::NonNumericAmount => invoice["totalAmount"] = json!("12O.00"),
            Malformation::BadDate => invoice["issueDate"] = json!("2026-02-30"),
            Malformation::NotAnObject => *invoice = json!("not an invoice"),
        })
    }

    /// Adds any JSON as a record, stamped now. Its id is its `remoteId` when that is a string,
    /// else a new one (not written into the record). Returns the id. (Alloy: the record gets an
    /// index and Alloy id of its own and is listed last.)
    pub fn insert_raw(&self, record: Value) -> Result<String, UnifiedSandboxError> {
        let now = self.shared.harness.clock.now_ms();
        if let SandboxApi::Alloy(_) = &self.shared.api {
            let given = record
                .get("remoteId")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let Some(id) = &given {
                if self
                    .key(id)
                    .is_some_and(|k| lock(&self.shared.invoices).get(&k).is_some())
                {
                    return Err(UnifiedSandboxError::Invalid(format!(
                        "remoteId {id} already exists; update it instead"
                    )));
                }
            }
            let mut invoices = lock(&self.shared.invoices);
            let index = invoices.allocate_index();
            let stamp = invoices.next_stamp(now);
            let key = seed::remote_id(index);
            invoices.put(&key, stamp, record);
            invoices.list(index, None);
            drop(invoices);
            return Ok(given.unwrap_or_else(|| self.public_id(&key)));
        }
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

    fn add(&self, before: Option<u64>, shape: impl FnOnce(&mut Value)) -> String {
        let now = self.shared.harness.clock.now_ms();
        let mut invoices = lock(&self.shared.invoices);
        let index = invoices.allocate_index();
        let stamp = invoices.next_stamp(now);
        let mut invoice = invoices.seed.invoice(index, stamp);
        shape(&mut invoice);
        let id = remote_id(index);
        invoices.put(&id, stamp, invoice);
        invoices.list(index, before);
        drop(invoices);
        self.public_id(&id)
    }

    fn change(
        &self,
        id: &str,
        at: Option<DateTime<Utc>>,
        edit: impl FnOnce(&mut Value) -> Result<(), UnifiedSandboxError>,
    ) -> Result<DateTime<Utc>, UnifiedSandboxError> {
        let now = self.shared.harness.clock.now_ms();
        let key = self
            .key(id)
            .ok_or_else(|| UnifiedSandboxError::UnknownInvoice(id.to_owned()))?;
        let mut invoices = lock(&self.shared.invoices);
        let mut invoice = invoices
            .get(&key)
            .ok_or_else(|| UnifiedSandboxError::UnknownInvoice(id.to_owned()))?;
        edit(&mut invoice)?;
        let stamp = match at {
            Some(at) => at.timestamp_millis(),
            None => invoices.next_stamp(now),
        };
        invoices.put(&key, stamp, invoice);
        drop(invoices);
        if matches!(self.shared.api, SandboxApi::Alloy(_)) {
            if let Some((remote, alloy_id)) = self.alloy_ids(&key) {
                super::webhooks::deliver(self, &alloy_id, &remote);
            }
        }
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
