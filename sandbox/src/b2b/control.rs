//! [`SandboxControl`]: the in-process test controls. The HTTP controls under `/__sandbox/`
//! (see `admin`) call these same methods.

use axum::http::StatusCode;
use serde_json::Value;

use super::person;
use super::render;
use super::state::{lock, Shared, StoreData};
use crate::harness::{Control, ControlError};

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

/// A cloneable handle on a running B2B sandbox for tests, the demo and benchmarks: the controls
/// of every fake ([`Control`]: latency, faults, rate limit, stats) and the B2B sandbox's own below.
pub type SandboxControl = Control<Shared>;

impl ControlError for SandboxError {
    fn status(&self) -> StatusCode {
        match self {
            SandboxError::Invalid(_) => StatusCode::BAD_REQUEST,
            SandboxError::UnknownStore(_)
            | SandboxError::UnknownInvoice { .. }
            | SandboxError::UnknownPayment { .. } => StatusCode::NOT_FOUND,
        }
    }
}

impl Control<Shared> {
    /// The sandbox's clock in unix seconds (follows a paused tokio clock).
    pub fn now_unix(&self) -> i64 {
        self.shared.harness.clock.now_unix()
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
