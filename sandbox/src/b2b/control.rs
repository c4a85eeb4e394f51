//! [`SandboxControl`]: the in-process test controls. The HTTP controls under `/__sandbox/`
//! (see `admin`) call these same methods.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::person;
use super::render;
use super::state::{lock, Shared, StoreData};
use crate::faults::{ErrorRates, FaultRule};
use crate::stats::{RequestRecord, SandboxStats};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SandboxError {
    #[error("unknown sandbox store {0:?}")]
    UnknownStore(String),
    #[error("invoice {id} does not exist in sandbox store {store:?}")]
    UnknownInvoice { store: String, id: u64 },
    #[error("payment {id} does not exist in sandbox store {store:?}")]
    UnknownPayment { store: String, id: u64 },
    #[error("invalid sandbox control request: {0}")]
    Invalid(String),
}

/// A cloneable handle on a running sandbox for tests, the demo and benchmarks.
#[derive(Clone, Debug)]
pub struct SandboxControl {
    pub(crate) shared: Arc<Shared>,
}

impl SandboxControl {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Every API request takes `fixed` plus a uniform random share of `jitter`.
    pub fn set_latency(&self, fixed: Duration, jitter: Duration) {
        lock(&self.shared.faults).set_latency(fixed, jitter);
    }

    pub fn set_error_rates(&self, rates: ErrorRates) -> Result<(), SandboxError> {
        lock(&self.shared.faults)
            .set_error_rates(rates)
            .map_err(SandboxError::Invalid)
    }

    /// Queues a fault rule behind those already queued.
    pub fn push_fault(&self, rule: FaultRule) {
        lock(&self.shared.faults).push(rule);
    }

    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Rules not yet used up, in queue order.
    pub fn pending_faults(&self) -> Vec<FaultRule> {
        lock(&self.shared.faults).pending()
    }

    /// `limit` requests per `window` per store (0: unlimited); restarts every window.
    pub fn set_rate_limit(&self, limit: u32, window: Duration) {
        lock(&self.shared.limiter).configure(limit, window);
    }

    pub fn stats(&self) -> SandboxStats {
        lock(&self.shared.stats).snapshot()
    }

    /// The request log, oldest first (the latest 100 000 requests).
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.stats).requests()
    }

    pub fn reset_stats(&self) {
        lock(&self.shared.stats).reset();
    }

    /// Time since the sandbox started, on the clock of [`RequestRecord::at`] (tokio's).
    pub fn since_start(&self) -> std::time::Duration {
        self.shared.clock.since_start()
    }

    /// The sandbox's clock in unix seconds (follows a paused tokio clock).
    pub fn now_unix(&self) -> i64 {
        self.shared.clock.now_unix()
    }

    pub fn store_hashes(&self) -> Vec<String> {
        lock(&self.shared.stores).keys().cloned().collect()
    }

    /// All invoices of a store as `GET /ip/invoices/{id}` renders them, by id.
    pub fn invoices(&self, store_hash: &str) -> Result<Vec<Value>, SandboxError> {
        self.with_store(store_hash, |store| {
            Ok(store
                .invoices
                .values()
                .map(|invoice| {
                    render::invoice(invoice, store.company_name(invoice.customer_id), true)
                })
                .collect())
        })
    }

    pub fn invoice(&self, store_hash: &str, id: u64) -> Option<Value> {
        self.with_store(store_hash, |store| {
            Ok(store.invoices.get(&id).map(|invoice| {
                render::invoice(invoice, store.company_name(invoice.customer_id), true)
            }))
        })
        .ok()
        .flatten()
    }

    /// A person edits the invoice in the control panel: `patch` is deep-merged into
    /// `details` and `updatedAt` moves.
    pub fn edit_details(
        &self,
        store_hash: &str,
        id: u64,
        patch: &Value,
    ) -> Result<(), SandboxError> {
        let now = self.now_unix();
        self.with_store(store_hash, |store| {
            person::edit_details(store, id, patch, now)
        })
    }

    /// A person deletes the invoice in the control panel.
    pub fn delete_invoice_as_person(&self, store_hash: &str, id: u64) -> Result<(), SandboxError> {
        self.with_store(store_hash, |store| person::delete_invoice(store, id))
    }

    /// A person edits top-level fields of the invoice in the control panel (owned fields the
    /// daemon wrote: `reconcile` reports them as drift).
    pub fn edit_invoice_as_person(
        &self,
        store_hash: &str,
        id: u64,
        edit: &person::PersonEdit,
    ) -> Result<(), SandboxError> {
        let now = self.now_unix();
        self.with_store(store_hash, |store| {
            person::edit_invoice(store, id, edit, now)
        })
    }

    /// A person keys in a copy of invoice `id` under `invoice_number`: with the same ERP id (a
    /// duplicate) or with `external_id` (an orphan when the ERP does not know it). Returns the
    /// new invoice's id.
    pub fn copy_invoice_as_person(
        &self,
        store_hash: &str,
        id: u64,
        invoice_number: &str,
        external_id: Option<&str>,
    ) -> Result<u64, SandboxError> {
        let now = self.now_unix();
        self.with_store(store_hash, |store| {
            person::copy_invoice(store, id, invoice_number, external_id, now)
        })
    }

    pub(super) fn with_store<T>(
        &self,
        store_hash: &str,
        work: impl FnOnce(&mut StoreData) -> Result<T, SandboxError>,
    ) -> Result<T, SandboxError> {
        let mut stores = lock(&self.shared.stores);
        let store = stores
            .get_mut(store_hash)
            .ok_or_else(|| SandboxError::UnknownStore(store_hash.to_owned()))?;
        work(store)
    }
}
