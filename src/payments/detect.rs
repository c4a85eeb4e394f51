//! Reading B2B Edition's payment list for new payments and refunds of the source's invoices.
//!
//! `GET /payments` has no updated-since filter, but sorts by `updatedAt`: the list is read
//! newest first and stops at the payments cursor (minus an overlap for payments committed late
//! within the same seconds). A refund changes the payment's status and `updatedAt`, so it comes
//! round again and is recorded as a second event that reverses the first. Re-reading is free:
//! events are unique per (payment, invoice, kind).
//!
//! The very first scan of a source records nothing to write: payments that exist then were made
//! before the daemon watched, and the ERP is taken to know them (they are recorded as already
//! acknowledged, so they are visible in `payments list`).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::events::{self, NewEvent, WriteState};
use super::{Counts, PaymentsCtx, PaymentsError};
use crate::b2b::{Payment, PaymentQuery};
use crate::source::write_back::PaymentKind;

/// Payments read per request (the API's maximum page).
const PAGE: u32 = 250;
/// Re-read this far before the cursor (B2B's timestamps are whole seconds).
const OVERLAP_SECS: i64 = 300;
/// B2B Edition's processingStatus of a refunded payment.
const REFUNDED: u8 = 4;

pub async fn run(ctx: &PaymentsCtx<'_>, counts: &mut Counts) -> Result<(), PaymentsError> {
    let src = &ctx.source.name;
    let cursor = events::cursor(ctx.pool, src).await?;
    let first_scan = cursor.is_none();
    let from = cursor.map(|w| w.saturating_sub(OVERLAP_SECS));
    let query = PaymentQuery::newest_updated_first(PAGE);
    let mut newest = cursor.unwrap_or(0);
    let mut offset = 0u64;
    loop {
        let page = page_of(ctx, &query, offset).await?;
        let n = page.items.len();
        let mut reached_cursor = false;
        let mut fresh = Vec::with_capacity(n);
        for payment in page.items {
            newest = newest.max(payment.updated_at);
            match from {
                Some(from) if payment.updated_at < from => reached_cursor = true,
                _ => fresh.push(payment),
            }
        }
        record(ctx, &fresh, first_scan, counts).await?;
        offset += n as u64;
        let more = page.total_count.map_or(n as u32 >= PAGE, |t| offset < t);
        // The first scan only needs the newest page: older payments are all before the cursor.
        if reached_cursor || !more || n == 0 || first_scan {
            break;
        }
    }
    events::store_cursor(ctx.pool, src, newest).await?;
    Ok(())
}

/// Reads and records the payments of one B2B invoice (all pages); returns how many new events.
pub async fn check_invoice(
    ctx: &PaymentsCtx<'_>,
    b2b_invoice_id: u64,
) -> Result<u32, PaymentsError> {
    let query = PaymentQuery::newest_updated_first(PAGE).with_invoice_id(b2b_invoice_id);
    let mut counts = Counts::default();
    let mut offset = 0u64;
    loop {
        let page = page_of(ctx, &query, offset).await?;
        let n = page.items.len();
        record(ctx, &page.items, false, &mut counts).await?;
        offset += n as u64;
        if n == 0 || page.total_count.map_or(n < PAGE as usize, |t| offset >= t) {
            break;
        }
    }
    Ok(counts.detected)
}

async fn page_of(
    ctx: &PaymentsCtx<'_>,
    query: &PaymentQuery,
    offset: u64,
) -> Result<crate::b2b::Page<Payment>, PaymentsError> {
    ctx.client
        .list_payments_page(query, offset)
        .await
        .map_err(|error| PaymentsError::Scan {
            source_name: ctx.source.name.clone(),
            error,
        })
}

/// Records the lines of `payments` that are on the source's invoices.
async fn record(
    ctx: &PaymentsCtx<'_>,
    payments: &[Payment],
    first_scan: bool,
    counts: &mut Counts,
) -> Result<(), PaymentsError> {
    let src = &ctx.source.name;
    let counted: BTreeSet<u8> = ctx
        .source
        .payments
        .statuses
        .iter()
        .map(|s| s.code())
        .collect();
    let relevant: Vec<&Payment> = payments
        .iter()
        .filter(|p| counted.contains(&p.processing_status) || p.processing_status == REFUNDED)
        .collect();
    if relevant.is_empty() {
        return Ok(());
    }
    let ids: Vec<u64> = relevant
        .iter()
        .flat_map(|p| p.line_items.iter().map(|l| l.invoice_id))
        .collect();
    let owners = events::owners(ctx.pool, src, &ids).await?;
    let new_state = if ctx.source.payments.write_back {
        WriteState::Pending
    } else {
        WriteState::Off
    };
    for payment in relevant {
        let refunded = payment.processing_status == REFUNDED;
        for line in &payment.line_items {
            let Some(owner) = owners.get(&line.invoice_id) else {
                continue;
            };
            let amount = in_minor_units(line.amount.value, &line.amount.code);
            if amount <= Decimal::ZERO {
                tracing::warn!(payment_id = payment.id, b2b_invoice_id = line.invoice_id, amount = %amount,
                    "B2B payment line without a positive amount: ignored");
                continue;
            }
            let line_event = |kind, write_state, acknowledged, note| NewEvent {
                source: src,
                payment_id: payment.id,
                b2b_invoice_id: line.invoice_id,
                kind,
                owner,
                amount,
                currency: &line.amount.code,
                processing_status: i32::from(payment.processing_status),
                occurred_at: at(match kind {
                    PaymentKind::Payment => payment.created_at,
                    PaymentKind::Refund => payment.updated_at,
                }),
                run_id: ctx.run_id,
                write_state,
                acknowledged,
                note,
            };
            let known = |kind| events::exists(ctx.pool, src, payment.id, line.invoice_id, kind);
            if first_scan {
                let note = Some("made before payment sync started: taken as known to the ERP");
                insert(
                    ctx,
                    &line_event(PaymentKind::Payment, WriteState::Skipped, true, note),
                    counts,
                )
                .await?;
                if refunded {
                    insert(
                        ctx,
                        &line_event(PaymentKind::Refund, WriteState::Skipped, true, note),
                        counts,
                    )
                    .await?;
                }
            } else if refunded && !known(PaymentKind::Payment).await? {
                // Completed and refunded between two scans: B2B's balance is back where it was.
                let note = Some("refunded before the daemon saw it complete: nothing to write");
                insert(
                    ctx,
                    &line_event(PaymentKind::Payment, WriteState::Skipped, true, note),
                    counts,
                )
                .await?;
                insert(
                    ctx,
                    &line_event(PaymentKind::Refund, WriteState::Skipped, true, note),
                    counts,
                )
                .await?;
            } else if refunded {
                insert(
                    ctx,
                    &line_event(PaymentKind::Refund, new_state, false, None),
                    counts,
                )
                .await?;
            } else {
                insert(
                    ctx,
                    &line_event(PaymentKind::Payment, new_state, false, None),
                    counts,
                )
                .await?;
            }
        }
    }
    Ok(())
}

async fn insert(
    ctx: &PaymentsCtx<'_>,
    event: &NewEvent<'_>,
    counts: &mut Counts,
) -> Result<(), PaymentsError> {
    if events::insert(ctx.pool, event).await? {
        events::ensure_baseline(ctx.pool, &ctx.source.name, &event.owner.external_id).await?;
        counts.detected += 1;
        tracing::info!(
            external_id = %event.owner.external_id,
            invoice_number = %event.owner.invoice_number,
            payment_id = event.payment_id,
            b2b_invoice_id = event.b2b_invoice_id,
            kind = event.kind.as_str(),
            amount = %event.amount,
            write_state = event.write_state.as_str(),
            "B2B payment recorded"
        );
        metrics::counter!(crate::telemetry_metrics::PAYMENTS_DETECTED, "source" => ctx.source.name.clone(), "kind" => event.kind.as_str())
            .increment(1);
    }
    Ok(())
}

/// B2B writes amounts with 4 decimals ("40.0000"); the ERP gets them at the currency's own
/// scale ("40.00") when that loses nothing.
fn in_minor_units(amount: Decimal, code: &str) -> Decimal {
    match crate::domain::money::Currency::parse(code) {
        Ok(currency) => {
            let digits = currency.minor_unit_digits();
            let mut scaled = amount.round_dp(digits);
            if scaled != amount {
                return amount;
            }
            scaled.rescale(digits);
            scaled
        }
        Err(_) => amount,
    }
}

fn at(unix: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix, 0).unwrap_or_else(Utc::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_take_the_currency_scale_when_nothing_is_lost() {
        let d = |t: &str| t.parse::<Decimal>().unwrap();
        assert_eq!(in_minor_units(d("40.0000"), "USD").to_string(), "40.00");
        assert_eq!(in_minor_units(d("40.0000"), "JPY").to_string(), "40");
        assert_eq!(in_minor_units(d("1.2345"), "KWD").to_string(), "1.2345");
        assert_eq!(in_minor_units(d("1.2340"), "KWD").to_string(), "1.234");
        assert_eq!(in_minor_units(d("0.005"), "USD").to_string(), "0.005");
        assert_eq!(in_minor_units(d("7.5000"), "XXQ").to_string(), "7.5000");
    }
}
