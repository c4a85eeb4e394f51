//! Taking in what the ERP shows of B2B payments: seeing an invoice again is when the ERP's paid
//! amount is compared with last time, which acknowledges the payments it now shows. The
//! ownership rule of openBalance that uses it is applied to a page by `sync::balance`.

use rust_decimal::Decimal;
use sqlx::PgPool;

use super::acknowledge::{acknowledged, Unacked};
use super::events;
use crate::store::StoreError;

/// What the ERP shows now (`total`, `balance`) compared with what it had been paid when last
/// seen (`seen`): the events of `unacked` (oldest first) it has taken in. With `persist`, those
/// are recorded as acknowledged together with the new paid amount.
pub async fn take_in(
    pool: &PgPool,
    source: &str,
    external_id: &str,
    seen: Option<Decimal>,
    (total, balance): (Decimal, Decimal),
    unacked: &[Unacked],
    persist: bool,
) -> Result<Vec<i64>, StoreError> {
    let Some(paid_now) = total.checked_sub(balance) else {
        return Ok(Vec::new());
    };
    let acked = seen
        .and_then(|seen| paid_now.checked_sub(seen))
        .map(|delta| acknowledged(delta, unacked))
        .unwrap_or_default();
    if persist && (seen != Some(paid_now) || !acked.is_empty()) {
        events::acknowledge(pool, source, external_id, paid_now, Some(balance), &acked).await?;
        if !acked.is_empty() {
            tracing::info!(
                external_id = %external_id,
                events = ?acked,
                "the ERP's balance now reflects these B2B payments"
            );
        }
    }
    Ok(acked)
}
