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
        let Some(paid_now) = p.invoice.total.checked_sub(p.invoice.open_balance) else {
            continue;
        };
        let acked = match seen {
            Some(seen) => paid_now
                .checked_sub(*seen)
                .map(|delta| acknowledged(delta, events))
                .unwrap_or_default(),
            None => Vec::new(),
        };
        if persist && (*seen != Some(paid_now) || !acked.is_empty()) {
            events::acknowledge(
                pool,
                source,
                p.external_id(),
                paid_now,
                Some(p.invoice.open_balance),
                &acked,
            )
            .await?;
            if !acked.is_empty() {
                tracing::info!(
                    external_id = %p.external_id(),
                    invoice_number = %p.invoice_number(),
                    events = ?acked,
                    "the ERP's balance now reflects these B2B payments"
                );
            }
        }
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
