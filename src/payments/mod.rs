//! Payments made in B2B Edition flowing back to the ERP (`[sources.<name>.payments]`).
//!
//! Each cycle of a source with payments enabled, before any ERP invoice is pushed:
//! 1. [`detect`]: reads B2B's payment list newest first down to the payments cursor and records
//!    each line of a completed (or refunded) payment on one of the source's invoices, keyed by
//!    (payment id, invoice id, payment|refund), in `payment_events`.
//! 2. [`write_back`]: writes due events to the ERP through its adapter, exactly once.
//! 3. While the ERP's pages are planned, [`adjust`] keeps unacknowledged payments off the ERP's
//!    balance (the ownership rule) and acknowledges those the ERP now shows ([`acknowledge`]).
//!
//! Detection runs first so that a payment seen in B2B is in the balance rule before the same
//! cycle pushes that invoice; if B2B's payments cannot be read the cycle stops rather than risk
//! undoing a payment.

pub mod acknowledge;
pub mod adjust;
pub mod detect;
pub mod events;
pub mod write_back;

use sqlx::PgPool;
use uuid::Uuid;

use crate::b2b::{B2bClient, B2bError};
use crate::config::SourceSettings;
use crate::failpoints::{Crashed, Failpoints};
use crate::source::write_back::PaymentWriter;
use crate::store::StoreError;

/// Everything the payment steps of a cycle need.
pub struct PaymentsCtx<'a> {
    pub pool: &'a PgPool,
    pub client: &'a B2bClient,
    pub source: &'a SourceSettings,
    pub writer: Option<&'a dyn PaymentWriter>,
    pub run_id: Uuid,
    pub failpoints: &'a Failpoints,
    /// What each write-back intent checks: this process still holds the source.
    pub fence: &'a crate::store::leases::Fence,
}

/// What the payment steps did in one cycle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// New payment and refund lines recorded.
    pub detected: u32,
    /// Events written to the ERP.
    pub written: u32,
    /// Write-backs that failed this cycle (retried, dead or left in flight).
    pub failed: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    #[error(
        "source {source_name}: reading B2B Edition payments failed: {error}; invoices are not pushed \
         until payments can be read, so that no B2B payment is undone (set \
         sources.{source_name}.payments.enabled = false to sync without payments)"
    )]
    Scan {
        source_name: String,
        error: B2bError,
    },
    #[error("{message}")]
    Data { message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crashed(#[from] Crashed),
}

/// Detection, then the write-back of what is due.
pub async fn run(ctx: &PaymentsCtx<'_>) -> Result<Counts, PaymentsError> {
    let mut counts = Counts::default();
    if !ctx.source.payments.enabled {
        return Ok(counts);
    }
    detect::run(ctx, &mut counts).await?;
    write_back::run(ctx, &mut counts).await?;
    // Its gauges (pending, stuck) are published with the source's health (`Engine`).
    Ok(counts)
}
