//! The ownership rule of openBalance, in one place: the balance pushed to B2B is the ERP's minus
//! the B2B payments it does not show yet, so an ERP push never undoes a payment made in B2B (the
//! amounts and events are `payments`').
//!
//! The payments stage runs before the invoices of a cycle (it records what B2B shows); for a
//! page of invoices, [`unacknowledged`] reads what the ERP has not taken in yet and hands it to
//! [`super::prepare`], which maps each invoice and applies [`keep_payments`] before its one
//! fingerprint is computed. Execute changes nothing of that, except when a payment arrived in
//! B2B after the payments stage read the list: then [`before_raising`] builds the invoice again
//! by the same function with the new amount.

use std::collections::HashMap;

use rust_decimal::Decimal;
use sqlx::PgPool;

use crate::domain::mapping::status_for;
use crate::domain::{DesiredInvoice, SourceInvoice};
use crate::payments::acknowledge::{adjustment, pushed_balance, Unacked};
use crate::payments::{adjust::take_in, detect, events, PaymentsCtx, PaymentsError};
use crate::store::StoreError;
use crate::sync::prepare::Prepared;

/// Whose payments a page reads, and whether it records the ERP's acknowledgements (`plan` and
/// `reconcile` do not: they write nothing).
#[derive(Debug, Clone, Copy)]
pub struct Payments<'a> {
    pub pool: &'a PgPool,
    pub source: &'a str,
    pub persist: bool,
}

/// Per external id, the B2B payments (minus refunds) the ERP does not show yet, for the
/// invoices of a page; invoices without any are absent. One query for the page. With
/// `persist`, what the ERP now shows is recorded as acknowledged.
pub async fn unacknowledged(
    payments: Payments<'_>,
    invoices: &[&SourceInvoice],
) -> Result<HashMap<String, Decimal>, StoreError> {
    let mut out = HashMap::new();
    if invoices.is_empty() {
        return Ok(out);
    }
    let ids: Vec<String> = invoices.iter().map(|i| i.external_id.clone()).collect();
    let unacked = events::unacked(payments.pool, payments.source, &ids).await?;
    if unacked.is_empty() {
        return Ok(out);
    }
    for invoice in invoices {
        let Some((seen, events)) = unacked.get(&invoice.external_id) else {
            continue;
        };
        let acked = take_in(
            payments.pool,
            payments.source,
            &invoice.external_id,
            *seen,
            (invoice.total, invoice.open_balance),
            events,
            payments.persist,
        )
        .await?;
        let left: Vec<Unacked> = events
            .iter()
            .copied()
            .filter(|e| !acked.contains(&e.id))
            .collect();
        let amount = adjustment(&left);
        if !amount.is_zero() {
            out.insert(invoice.external_id.clone(), amount);
        }
    }
    Ok(out)
}

/// `desired` as B2B should hold it with `unacknowledged` kept off the ERP's balance
/// `erp_balance` (status follows the balance).
pub fn keep_payments(desired: &mut DesiredInvoice, erp_balance: Decimal, unacknowledged: Decimal) {
    if unacknowledged.is_zero() {
        return;
    }
    let open = pushed_balance(erp_balance, unacknowledged);
    tracing::debug!(
        erp_balance = %erp_balance,
        pushed = %open,
        "openBalance keeps B2B payments the ERP does not show yet"
    );
    desired.open_balance = open;
    desired.status = status_for(desired.original_balance, open);
}

/// An invoice's openBalance as B2B shows it now and as the daemon last wrote it.
#[derive(Debug, Clone, Copy)]
pub struct OpenBalance {
    pub in_b2b: Decimal,
    pub last_written: Option<Decimal>,
}

/// A payment made in B2B after this cycle's payments stage read the list would be undone by a
/// push that raises the balance B2B lowered: before raising it, the invoice's own payments are
/// read (one request, only in that case) and `p` is built again with them kept. `Err` with the
/// reason when they cannot be read: then nothing is pushed.
pub async fn before_raising(
    ctx: &PaymentsCtx<'_>,
    b2b_invoice_id: u64,
    p: Prepared,
    open: OpenBalance,
) -> Result<Result<Prepared, (Prepared, String)>, StoreError> {
    let lowered_in_b2b = open.last_written.is_some_and(|w| open.in_b2b < w);
    if !lowered_in_b2b || p.desired.open_balance <= open.in_b2b {
        return Ok(Ok(p));
    }
    match detect::check_invoice(ctx, b2b_invoice_id).await {
        Ok(0) => Ok(Ok(p)),
        Ok(n) => {
            tracing::info!(
                payments = n,
                "B2B payments made during this cycle found before pushing the balance"
            );
            let unacked =
                events::unacked(ctx.pool, &ctx.source.name, &[p.external_id().to_owned()]).await?;
            let Some((_, events)) = unacked.get(p.external_id()) else {
                return Ok(Ok(p));
            };
            // Built again by the one function that builds it, with the new amount.
            let company = p.desired.customer_id.clone();
            Ok(Ok(Prepared::build(
                p.invoice,
                &company,
                &ctx.source.mapping,
                adjustment(events),
            )))
        }
        Err(PaymentsError::Store(e)) => Err(e),
        Err(e) => {
            let reason = format!(
                "B2B shows openBalance {}, below the {} last written, and its payments could not be read ({e}); \
                 not pushing a higher balance over a possible payment",
                open.in_b2b,
                open.last_written.unwrap_or_default()
            );
            Ok(Err((p, reason)))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::b2b::model::InvoiceStatus;
    use crate::config::MappingSettings;
    use crate::domain::{fingerprint, map_invoice, RawInvoice, RawLineItem, RecordLocator};

    fn invoice(total: &str, open: &str) -> SourceInvoice {
        let raw = RawInvoice {
            external_id: Some("A".into()),
            external_customer_id: Some("C".into()),
            invoice_number: Some("N-A".into()),
            currency: Some("USD".into()),
            total: Some(total.into()),
            open_balance: Some(open.into()),
            line_items: vec![RawLineItem {
                sku: Some("S".into()),
                quantity: Some("1".into()),
                unit_price: Some(total.into()),
                ..RawLineItem::default()
            }],
            ..RawInvoice::default()
        };
        SourceInvoice::parse("erp", RecordLocator::id("A"), raw).expect("valid")
    }

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).expect("decimal")
    }

    #[test]
    fn a_payment_the_erp_does_not_show_is_kept_off_the_balance_and_sets_the_status() {
        let inv = invoice("100", "100");
        let mut desired = map_invoice(&inv, "7", &MappingSettings::default());
        keep_payments(&mut desired, inv.open_balance, dec("40"));
        assert_eq!(desired.open_balance, dec("60"));
        assert_eq!(desired.status, InvoiceStatus::PartiallyPaid);
        // More paid in B2B than the ERP's balance: never below zero, and completed.
        keep_payments(&mut desired, inv.open_balance, dec("130"));
        assert_eq!(desired.open_balance, Decimal::ZERO);
        assert_eq!(desired.status, InvoiceStatus::Completed);
    }

    #[test]
    fn nothing_unacknowledged_leaves_the_mapping_as_it_is() {
        let inv = invoice("100", "25");
        let mapped = map_invoice(&inv, "7", &MappingSettings::default());
        let mut desired = mapped.clone();
        keep_payments(&mut desired, inv.open_balance, Decimal::ZERO);
        assert_eq!(desired, mapped);
    }

    #[test]
    fn the_fingerprint_is_of_the_invoice_with_the_payments_kept() {
        let p = Prepared::build(
            invoice("100", "100"),
            "7",
            &MappingSettings::default(),
            dec("40"),
        );
        assert_eq!(p.desired.open_balance, dec("60"));
        assert_eq!(p.fingerprint, fingerprint(&p.desired));
        let unpaid = Prepared::build(
            invoice("100", "100"),
            "7",
            &MappingSettings::default(),
            Decimal::ZERO,
        );
        assert_ne!(p.fingerprint, unpaid.fingerprint);
    }
}
