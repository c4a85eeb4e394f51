//! The ownership rule of openBalance, applied to a page of ERP invoices before planning: the
//! balance pushed to B2B is the ERP's minus the B2B payments it does not show yet, so an ERP push
//! never undoes a payment made in B2B. Seeing the invoice again is also when the ERP's paid
//! amount is compared with last time, which acknowledges the payments it now shows.

use rust_decimal::Decimal;
use sqlx::PgPool;

use super::acknowledge::{acknowledged, adjustment, pushed_balance, Unacked};
use super::events;
use crate::domain::fingerprint;
use crate::domain::mapping::status_for;
use crate::store::StoreError;
use crate::sync::prepare::Prepared;

/// Adjusts `ready` in place (balance, status, fingerprint) and, with `persist`, records
/// acknowledgements (`plan` passes `false`: a dry run writes nothing).
/// One query for the page; invoices without unacknowledged payments are left alone.
pub async fn adjust_page(
    pool: &PgPool,
    source: &str,
    ready: &mut [Prepared],
    persist: bool,
) -> Result<(), StoreError> {
    if ready.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = ready.iter().map(|p| p.external_id().to_owned()).collect();
    let unacked = events::unacked(pool, source, &ids).await?;
    if unacked.is_empty() {
        return Ok(());
    }
    for p in ready.iter_mut() {
        let Some((seen, events)) = unacked.get(p.external_id()) else {
            continue;
        };
        let acked = take_in(
            pool,
            source,
            p.external_id(),
            *seen,
            (p.invoice.total, p.invoice.open_balance),
            events,
            persist,
        )
        .await?;
        let left: Vec<Unacked> = events
            .iter()
            .copied()
            .filter(|e| !acked.contains(&e.id))
            .collect();
        apply(p, adjustment(&left));
    }
    Ok(())
}

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

/// `p` as B2B should hold it with `adjustment` kept off the ERP's balance.
pub fn apply(p: &mut Prepared, adjustment: Decimal) {
    if adjustment.is_zero() {
        return;
    }
    let open = pushed_balance(p.invoice.open_balance, adjustment);
    tracing::debug!(
        external_id = %p.external_id(),
        erp_balance = %p.invoice.open_balance,
        pushed = %open,
        "openBalance keeps B2B payments the ERP does not show yet"
    );
    p.desired.open_balance = open;
    p.desired.status = status_for(p.desired.original_balance, open);
    p.fingerprint = fingerprint(&p.desired);
}
