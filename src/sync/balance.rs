//! The ownership rule of openBalance, applied to a page of ERP invoices before planning: the
//! balance pushed to B2B is the ERP's minus the B2B payments it does not show yet, so an ERP push
//! never undoes a payment made in B2B (the amounts and events are `payments`').

use rust_decimal::Decimal;
use sqlx::PgPool;

use super::prepare::Prepared;
use crate::domain::fingerprint;
use crate::domain::mapping::status_for;
use crate::payments::acknowledge::{adjustment, pushed_balance, Unacked};
use crate::payments::{adjust::take_in, events};
use crate::store::StoreError;

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
