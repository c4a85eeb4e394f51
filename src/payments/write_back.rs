//! Writing recorded payment events to the ERP, exactly once, under the ledger protocol of the
//! invoice sync: the intent (target balance, balance before) is committed before the request;
//! a definite answer settles the event; an ambiguous one leaves it in flight, and the next
//! cycle reads the ERP to settle it before anything is sent again.

use chrono::Utc;
use rust_decimal::Decimal;

use super::acknowledge::{adjustment, pushed_balance};
use super::adjust::take_in;
use super::events::{self, Event, WriteState};
use super::{Counts, PaymentsCtx, PaymentsError};
use crate::domain::money::Currency;
use crate::source::write_back::{ErpBalance, PaymentWrite, PaymentWriter, WriteBackError};
use crate::store::intent::{Begun, Settlement};

/// At most this many events per cycle (payments are rare; a backlog drains over cycles).
const PER_CYCLE: i64 = 500;

/// Writes (or settles) every event of the source that is due.
pub async fn run(ctx: &PaymentsCtx<'_>, counts: &mut Counts) -> Result<(), PaymentsError> {
    let due = events::to_write(ctx.pool, &ctx.source.name, PER_CYCLE).await?;
    for event in due {
        let span = tracing::info_span!(
            "payment",
            source = %ctx.source.name,
            external_id = %event.external_id,
            invoice_number = %event.invoice_number,
            payment_id = event.payment_id,
            b2b_invoice_id = event.b2b_invoice_id,
            kind = event.kind.as_str(),
            attempt = event.attempts + 1,
        );
        tracing::Instrument::instrument(one(ctx, event, counts), span).await?;
    }
    Ok(())
}

async fn one(ctx: &PaymentsCtx<'_>, e: Event, counts: &mut Counts) -> Result<(), PaymentsError> {
    let settings = &ctx.source.payments;
    if !settings.write_back {
        // Write-back was turned off while this waited: it stays in the balance rule only.
        if e.write_state != WriteState::InFlight {
            let note = "write-back is off for this source";
            events::settle(ctx.pool, e.id, WriteState::Off, Some(note), None, None).await?;
            return Ok(());
        }
    }
    let Some(writer) = ctx.writer else {
        let note = format!(
            "the {} adapter cannot write payments back",
            ctx.source.adapter.kind()
        );
        events::settle(ctx.pool, e.id, WriteState::Skipped, Some(&note), None, None).await?;
        return Ok(());
    };
    if e.write_state == WriteState::InFlight {
        match settle_in_flight(ctx, writer, &e, counts).await? {
            Settled::Done => return Ok(()),
            Settled::NotApplied => {}
        }
    } else if e.acknowledged_at.is_some() {
        let note = "not written: the ERP's balance already reflected it";
        events::settle(ctx.pool, e.id, WriteState::Skipped, Some(note), None, None).await?;
        return Ok(());
    }
    write(ctx, writer, &e, counts).await
}

enum Settled {
    /// Written, skipped or left for later: nothing more this cycle.
    Done,
    /// Certainly not applied: send it now.
    NotApplied,
}

/// An earlier attempt's outcome is unknown: read the ERP before sending anything again.
async fn settle_in_flight(
    ctx: &PaymentsCtx<'_>,
    writer: &dyn PaymentWriter,
    e: &Event,
    counts: &mut Counts,
) -> Result<Settled, PaymentsError> {
    let request = request(ctx, e, e.target_balance.unwrap_or(Decimal::ZERO))?;
    let settlement = match writer.current(&e.external_id).await {
        Ok(Some(now)) => {
            if Some(now.balance) == e.target_balance {
                Settlement::Applied
            } else if Some(now.balance) == e.before_balance {
                Settlement::NotApplied
            } else {
                Settlement::Unknown
            }
        }
        Ok(None) => match writer.already_written(&request).await {
            Some(true) => Settlement::Applied,
            Some(false) => Settlement::NotApplied,
            None => Settlement::Unknown,
        },
        Err(err) => {
            tracing::warn!(error = %err, "could not read the ERP to settle an earlier write-back; trying next cycle");
            return Ok(Settled::Done);
        }
    };
    match settlement {
        Settlement::Applied => {
            let note = "settled: the ERP shows the earlier write";
            events::settle(ctx.pool, e.id, WriteState::Written, Some(note), None, None).await?;
            tracing::info!("an earlier write-back had been applied; not sent again");
            counts.written += 1;
            metrics::counter!(crate::telemetry_metrics::PAYMENTS_WRITTEN, "source" => ctx.source.name.clone(), "kind" => e.kind.as_str())
                .increment(1);
            Ok(Settled::Done)
        }
        Settlement::NotApplied => {
            // Back to `failed` so the intent can be taken again below.
            events::settle(
                ctx.pool,
                e.id,
                WriteState::Failed,
                None,
                e.last_error.as_deref(),
                Some(Utc::now()),
            )
            .await?;
            Ok(Settled::NotApplied)
        }
        Settlement::Unknown => {
            let error = format!(
                "payment {} on invoice {} (number {}): the outcome of the write-back is unknown and the ERP's \
                 balance shows neither the balance before nor the target {}; check the invoice in the ERP, then \
                 `payments retry {}` to send it again (or leave it if the ERP has it)",
                e.payment_id,
                e.external_id,
                e.invoice_number,
                e.target_balance.map(|t| t.to_string()).unwrap_or_default(),
                e.id
            );
            tracing::error!(reason = %error, "payment write-back needs a person");
            events::settle(
                ctx.pool,
                e.id,
                WriteState::Unknown,
                None,
                Some(&error),
                None,
            )
            .await?;
            Ok(Settled::Done)
        }
    }
}

fn request(
    ctx: &PaymentsCtx<'_>,
    e: &Event,
    target: Decimal,
) -> Result<PaymentWrite, PaymentsError> {
    let currency = Currency::parse(&e.currency).map_err(|_| PaymentsError::Data {
        message: format!(
            "payment {} on invoice {} (number {}): currency {:?} is not an ISO 4217 code",
            e.payment_id, e.external_id, e.invoice_number, e.currency
        ),
    })?;
    Ok(PaymentWrite {
        event_id: e.id,
        external_id: e.external_id.clone(),
        invoice_number: e.invoice_number.clone(),
        kind: e.kind,
        payment_id: e.payment_id,
        b2b_invoice_id: e.b2b_invoice_id,
        amount: e.amount,
        currency,
        target_balance: target,
        reference: format!("b2b-payment-{}", e.payment_id),
        reference_field: ctx.source.payments.reference_field.clone(),
        occurred_at: e.occurred_at,
    })
}

/// Reads the ERP (acknowledging what it already shows), commits the intent, sends.
async fn write(
    ctx: &PaymentsCtx<'_>,
    writer: &dyn PaymentWriter,
    e: &Event,
    counts: &mut Counts,
) -> Result<(), PaymentsError> {
    let src = &ctx.source.name;
    let current = match writer.current(&e.external_id).await {
        Ok(c) => c,
        Err(err) => {
            // No intent was taken: count the attempt here, so a read that keeps failing ends in
            // the dead letter like a refused write.
            events::count_attempt(ctx.pool, e.id).await?;
            return failed(ctx, e, err, counts).await;
        }
    };
    // Every event of the invoice the ERP does not show yet, oldest first.
    let mut unacked = events::unacked_of(ctx.pool, src, &e.external_id).await?;
    let (seen, seen_balance) = events::erp_seen(ctx.pool, src, &e.external_id).await?;
    let before = match &current {
        Some(ErpBalance { total, balance, .. }) => {
            // The ERP may have taken payments in since the invoice was last synced.
            let acked = take_in(
                ctx.pool,
                src,
                &e.external_id,
                seen,
                (*total, *balance),
                &unacked,
                true,
            )
            .await?;
            if acked.contains(&e.id) {
                let note = "not written: the ERP's balance already reflected it";
                events::settle(ctx.pool, e.id, WriteState::Skipped, Some(note), None, None).await?;
                return Ok(());
            }
            unacked.retain(|u| !acked.contains(&u.id));
            Some(*balance)
        }
        None => seen_balance,
    };
    // What the ERP should show once this event is in: its balance minus every event up to this
    // one that it does not show yet.
    let through_this: Vec<_> = unacked.iter().filter(|u| u.id <= e.id).copied().collect();
    let target = before
        .map(|b| pushed_balance(b, adjustment(&through_this)))
        .unwrap_or(Decimal::ZERO);
    let request = request(ctx, e, target)?;
    if events::begin_write(ctx.pool, e.id, target, before, ctx.fence).await? == Begun::Busy {
        return Ok(());
    }
    ctx.failpoints.check("before_payment_write")?;
    let result = writer.write(&request).await;
    match result {
        Ok(written) => {
            ctx.failpoints.check("after_payment_write")?;
            events::settle(
                ctx.pool,
                e.id,
                WriteState::Written,
                Some(&written.note),
                None,
                None,
            )
            .await?;
            tracing::info!(note = %written.note, target_balance = %target, "payment written back to the ERP");
            counts.written += 1;
            metrics::counter!(crate::telemetry_metrics::PAYMENTS_WRITTEN, "source" => src.clone(), "kind" => e.kind.as_str())
                .increment(1);
            Ok(())
        }
        Err(err) => failed(ctx, e, err, counts).await,
    }
}

async fn failed(
    ctx: &PaymentsCtx<'_>,
    e: &Event,
    err: WriteBackError,
    counts: &mut Counts,
) -> Result<(), PaymentsError> {
    let reason = format!(
        "payment {} on invoice {} (number {}): {err}",
        e.payment_id, e.external_id, e.invoice_number
    );
    let policy = &ctx.source.failures;
    let attempts = u32::try_from(e.attempts + 1).unwrap_or(u32::MAX);
    let backoff = || {
        let wait = policy.delay_after(attempts);
        Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(6))
    };
    let (state, next) = match &err {
        WriteBackError::Skip { .. } => (WriteState::Skipped, None),
        WriteBackError::Ambiguous { .. } => (WriteState::InFlight, None),
        _ if attempts >= policy.max_attempts => (WriteState::Dead, None),
        WriteBackError::Rejected { .. } | WriteBackError::NotSent { .. } => {
            (WriteState::Failed, Some(backoff()))
        }
    };
    match state {
        WriteState::Skipped => {
            tracing::info!(reason = %err, "payment not written back: skipped");
            events::settle(ctx.pool, e.id, state, Some(&err.to_string()), None, None).await?;
            return Ok(());
        }
        _ => {
            tracing::warn!(reason = %reason, state = state.as_str(), "payment write-back failed");
            counts.failed += 1;
            metrics::counter!(crate::telemetry_metrics::PAYMENTS_FAILED, "source" => ctx.source.name.clone())
                .increment(1);
        }
    }
    // An ambiguous write keeps its intent; the next cycle settles it.
    events::settle(ctx.pool, e.id, state, None, Some(&reason), next).await?;
    Ok(())
}
