//! Payments flowing back: how an adapter records a B2B Edition payment in its ERP.
//!
//! The engine (`crate::payments`) decides *what* to write and keeps the ledger; an adapter only
//! knows *how*: read the ERP's current balance of an invoice (to compute the target balance and
//! to settle an ambiguous earlier write) and write one payment event.

use rust_decimal::Decimal;

use crate::domain::money::Currency;

/// Payment or refund (a refund reverses an earlier payment of the same line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentKind {
    Payment,
    Refund,
}

impl PaymentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Payment => "payment",
            Self::Refund => "refund",
        }
    }
}

/// One payment event to write to the ERP.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentWrite {
    /// The daemon's id of the event (`payment_events.id`): an idempotency key for importers.
    pub event_id: i64,
    /// The ERP's id of the invoice (unified `remoteId`, Rebillia invoice id, files `external_id`).
    pub external_id: String,
    pub invoice_number: String,
    pub kind: PaymentKind,
    /// The B2B Edition payment id and invoice id.
    pub payment_id: u64,
    pub b2b_invoice_id: u64,
    /// Always positive; `kind` says the direction.
    pub amount: Decimal,
    pub currency: Currency,
    /// The balance the ERP invoice should show once this event is applied.
    pub target_balance: Decimal,
    /// e.g. "b2b-payment-117": goes where the source's `payments.reference_field` says.
    pub reference: String,
    /// Where the reference goes (unified: a `remoteFields` key; Rebillia: `comments` when set);
    /// `None`: nowhere.
    pub reference_field: Option<String>,
    /// When the payment was made / refunded in B2B Edition (UTC).
    pub occurred_at: chrono::DateTime<chrono::Utc>,
}

/// The ERP's view of one invoice, read just before a write (or to settle an unknown outcome).
#[derive(Debug, Clone, PartialEq)]
pub struct ErpBalance {
    pub total: Decimal,
    pub balance: Decimal,
    /// The ERP's own status word (Rebillia: `posted`, `paid`, ...), if it has one.
    pub status: Option<String>,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// For the payments table and logs, e.g. "PUT balance 60.00" or "outbox/payments-..ndjson".
    pub note: String,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteBackError {
    /// The ERP refuses this event for a reason retrying will not change (e.g. Rebillia invoice
    /// status `paid` or `void`): recorded as skipped with the reason, never retried by itself.
    #[error("{reason}")]
    Skip { reason: String },
    /// The ERP answered with a definite refusal (4xx): nothing was applied; retried with backoff.
    #[error("the ERP refused the write ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// The request was not sent, or was certainly not applied (connection refused, 429, 503
    /// before the request was read): safe to send again.
    #[error("the ERP could not be reached: {message}")]
    NotSent { message: String },
    /// The request may or may not have been applied (timeout after sending, 5xx, connection
    /// dropped mid-response): settled by reading the ERP before anything is sent again.
    #[error("the outcome of the write is unknown: {message}")]
    Ambiguous { message: String },
}

/// Implemented by adapters whose ERP can take payments back.
#[async_trait::async_trait]
pub trait PaymentWriter: Send + Sync {
    /// The ERP's current total, balance and status of the invoice `external_id`.
    /// `Ok(None)`: this ERP cannot be read back (the files adapter), the engine then relies on
    /// [`Self::already_written`].
    async fn current(&self, external_id: &str) -> Result<Option<ErpBalance>, WriteBackError>;

    /// Applies one event. Must not be called again for the same event after `Ambiguous` until
    /// the engine has settled it.
    async fn write(&self, event: &PaymentWrite) -> Result<Written, WriteBackError>;

    /// For ERPs that cannot be read back: whether `event` is already written (e.g. present in
    /// the outbox). `None`: unknown.
    async fn already_written(&self, event: &PaymentWrite) -> Option<bool> {
        let _ = event;
        None
    }
}
