//! What happened to one invoice in a cycle, and recording failures.

use chrono::Utc;
use sqlx::PgPool;

use super::failpoints::Crashed;
use crate::config::FailurePolicy;
use crate::domain::SourceInvoice;
use crate::store::state::{self, Status};
use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
    Deleted,
    /// Recorded as failed (retried later or dead): the reason names what to do.
    Failed(String),
    /// Not sent: the B2B state it was built from became older than `update_freshness` while it
    /// waited for the budget. The batch reads it again; never counted or reported as such.
    Expired,
}

/// A failure of the cycle itself (not of one invoice): it stops the cycle.
#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crashed(#[from] Crashed),
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    #[error(transparent)]
    Customers(#[from] crate::customers::CustomerError),
    #[error(transparent)]
    Payments(#[from] crate::payments::PaymentsError),
    /// The store's configuration makes every request fail (credentials, base URL, address):
    /// the cycle stops with this one error and no invoice is charged an attempt.
    #[error(transparent)]
    Misconfigured(#[from] crate::b2b::error::Misconfigured),
}

impl Outcome {
    /// What was done, in the one action vocabulary (`plan::ACTIONS`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Created => "create",
            Self::Updated => "update",
            Self::Unchanged => "skip",
            Self::Deleted => "delete",
            Self::Failed(_) => "fail",
            Self::Expired => "expired",
        }
    }
}

/// The one log line per invoice action, inside the invoice's span (which carries run_id,
/// source, store, external_id, invoice_number, action, attempt, b2b_invoice_id, http_status).
///
/// `latency_ms` is the action's own time (its requests and their database writes);
/// `budget_wait_ms` is the time it waited for the store's request budget before its requests
/// went out, which `took` includes.
pub fn log_action(outcome: &Outcome, took: std::time::Duration, waited: std::time::Duration) {
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let latency_ms = ms(took.saturating_sub(waited));
    let budget_wait_ms = ms(waited);
    match outcome {
        Outcome::Failed(reason) => {
            tracing::warn!(outcome = outcome.name(), latency_ms, budget_wait_ms, reason = %reason, "invoice action")
        }
        other => tracing::info!(
            outcome = other.name(),
            latency_ms,
            budget_wait_ms,
            "invoice action"
        ),
    }
}

/// Records the B2B answer's status on the current invoice span.
pub fn note_status(status: Option<u16>) {
    if let Some(s) = status {
        tracing::Span::current().record("http_status", s);
    }
}

/// When a failed invoice is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Next cycle (after recovery has looked in B2B).
    NextCycle,
    /// With exponential backoff per the source's failure policy.
    Backoff,
    /// Only when the ERP changes it (the record itself is invalid).
    OnChange,
}

/// Records a failed attempt of `invoice` and returns the outcome to count.
#[allow(clippy::too_many_arguments)]
pub async fn record_failure(
    pool: &PgPool,
    policy: &FailurePolicy,
    invoice: &SourceInvoice,
    pending_fingerprint: Option<&str>,
    attempts_before: i32,
    reason: String,
    retry: Retry,
) -> Result<Outcome, StoreError> {
    let attempts = attempts_before.saturating_add(1);
    let dead = attempts >= i32::try_from(policy.max_attempts).unwrap_or(i32::MAX);
    let (status, next) = match retry {
        _ if dead => (Status::Dead, None),
        Retry::NextCycle => (Status::Failed, Some(Utc::now())),
        Retry::Backoff => {
            let wait = policy.delay_after(attempts.unsigned_abs());
            let wait = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(6));
            (Status::Failed, Some(Utc::now() + wait))
        }
        Retry::OnChange => (Status::Failed, None),
    };
    let pending = match retry {
        Retry::OnChange => None,
        _ => serde_json::to_value(invoice.to_raw()).ok(),
    };
    let reason = if dead {
        format!("{reason} (gave up after {attempts} attempts: in the dead letter; `failures retry` tries again)")
    } else {
        reason
    };
    state::record_failure(
        pool,
        &state::Failure {
            source: &invoice.source,
            external_id: &invoice.external_id,
            invoice_number: &invoice.invoice_number,
            error: &reason,
            pending: pending.as_ref(),
            pending_fingerprint,
            pending_version: invoice.version.as_ref(),
            attempts,
            status,
            next_attempt_at: next,
        },
    )
    .await?;
    tracing::debug!(attempt = attempts, dead, "failure recorded");
    Ok(Outcome::Failed(reason))
}
