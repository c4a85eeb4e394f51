//! Settles ledger rows left `in_flight` by a crash or an ambiguous answer, at the start of every
//! cycle and before anything is planned: a create is looked up in B2B by externalId (then by
//! invoice number) and adopted if it was applied; an update is superseded by a fresh one built
//! from current state; a delete is checked by id. Until a row is settled, the ledger's unique
//! index keeps any new request for that invoice from starting.

use futures::TryStreamExt;

use super::execute::Ctx;
use super::outcome::CycleError;
use crate::b2b::model::Invoice;
use crate::b2b::{B2bError, InvoiceQuery};
use crate::store::ledger::{self, InFlight, Op};
use crate::store::state::{self, Synced};
use crate::store::StoreError;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Applied in B2B: adopted.
    pub adopted: u32,
    /// Not applied (or superseded): the invoice is attempted again.
    pub abandoned: u32,
    /// B2B could not be asked: left in flight for the next cycle.
    pub unresolved: u32,
}

pub async fn recover(ctx: &Ctx<'_>) -> Result<Recovery, CycleError> {
    let mut r = Recovery::default();
    for entry in ledger::in_flight(ctx.pool, &ctx.source.name).await? {
        let span = tracing::info_span!("recover", external_id = %entry.external_id, invoice_number = %entry.invoice_number, op = entry.op.as_str());
        let result = tracing::Instrument::instrument(settle(ctx, &entry), span).await?;
        match result {
            Settled::Adopted => r.adopted += 1,
            Settled::Abandoned => r.abandoned += 1,
            Settled::Unresolved => r.unresolved += 1,
        }
    }
    if r != Recovery::default() {
        tracing::info!(
            adopted = r.adopted,
            abandoned = r.abandoned,
            unresolved = r.unresolved,
            "recovered in-flight requests"
        );
    }
    Ok(r)
}

enum Settled {
    Adopted,
    Abandoned,
    Unresolved,
}

async fn settle(ctx: &Ctx<'_>, entry: &InFlight) -> Result<Settled, CycleError> {
    match entry.op {
        Op::Create => settle_create(ctx, entry).await,
        // Re-sending the same update could overwrite a newer edit: a fresh update is built from
        // current B2B state instead, because the invoice is still due (failed) or re-read.
        Op::Update | Op::ZeroBalance => {
            ledger::abandon(
                ctx.pool,
                entry.id,
                "superseded: a fresh update is built from current B2B state",
            )
            .await?;
            mark_due(ctx, entry).await?;
            Ok(Settled::Abandoned)
        }
        Op::Delete => {
            let Some(id) = entry.b2b_invoice_id else {
                ledger::abandon(ctx.pool, entry.id, "no invoice id recorded").await?;
                return Ok(Settled::Abandoned);
            };
            match ctx.client.get_invoice(id).await {
                Err(B2bError::NotFound { .. }) => {
                    ledger::succeed(ctx.pool, entry.id, id, "recovered: the delete was applied")
                        .await?;
                    state::mark_deleted(
                        ctx.pool,
                        &ctx.source.name,
                        &entry.external_id,
                        &entry.invoice_number,
                        false,
                        entry.fingerprint.as_deref(),
                    )
                    .await?;
                    Ok(Settled::Adopted)
                }
                Ok(_) => {
                    ledger::abandon(ctx.pool, entry.id, "recovered: the delete was not applied")
                        .await?;
                    mark_due(ctx, entry).await?;
                    Ok(Settled::Abandoned)
                }
                Err(e) => unresolved(&e),
            }
        }
    }
}

fn unresolved(e: &B2bError) -> Result<Settled, CycleError> {
    tracing::warn!(error = %e, "could not settle an in-flight request; left for the next cycle");
    Ok(Settled::Unresolved)
}

/// A failed row becomes due now, so the invoice is attempted again in this cycle.
async fn mark_due(ctx: &Ctx<'_>, entry: &InFlight) -> Result<(), CycleError> {
    sqlx::query("UPDATE invoice_state SET next_attempt_at = now() WHERE source = $1 AND external_id = $2 AND status = 'failed'")
        .bind(&ctx.source.name)
        .bind(&entry.external_id)
        .execute(ctx.pool)
        .await
        .map_err(StoreError::query("scheduling a recovered invoice"))?;
    Ok(())
}

async fn settle_create(ctx: &Ctx<'_>, entry: &InFlight) -> Result<Settled, CycleError> {
    let ours = |i: &Invoice| i.external_id.as_deref() == Some(entry.external_id.as_str());
    let by_id: Result<Vec<Invoice>, B2bError> = ctx
        .client
        .list_invoices(&InvoiceQuery::by_external_ids([entry.external_id.clone()]))
        .try_collect()
        .await;
    let mut found: Vec<Invoice> = match by_id {
        Ok(list) => list.into_iter().filter(ours).collect(),
        Err(e) => return unresolved(&e),
    };
    if found.is_empty() {
        // A B2B that did not store externalId would still have the (unique) number.
        let by_number: Result<Vec<Invoice>, B2bError> = ctx
            .client
            .list_invoices(&InvoiceQuery::by_invoice_number(
                entry.invoice_number.clone(),
            ))
            .try_collect()
            .await;
        match by_number {
            Ok(list) => {
                found = list
                    .into_iter()
                    .filter(|i| i.invoice_number == entry.invoice_number && ours(i))
                    .collect()
            }
            Err(e) => return unresolved(&e),
        }
    }
    found.sort_by_key(|i| i.id);
    let Some(invoice) = found.first() else {
        ledger::abandon(
            ctx.pool,
            entry.id,
            "recovered: not found in B2B, the create was not applied",
        )
        .await?;
        mark_due(ctx, entry).await?;
        return Ok(Settled::Abandoned);
    };
    if found.len() > 1 {
        tracing::error!(ids = ?found.iter().map(|i| i.id).collect::<Vec<_>>(), "several B2B invoices carry this externalId; adopting the oldest");
    }
    let mut tx = ctx
        .pool
        .begin()
        .await
        .map_err(StoreError::query("opening a transaction"))?;
    ledger::succeed(
        &mut *tx,
        entry.id,
        invoice.id,
        "recovered: the create was applied",
    )
    .await?;
    state::mark_synced(
        &mut *tx,
        &Synced {
            source: &ctx.source.name,
            external_id: &entry.external_id,
            invoice_number: &entry.invoice_number,
            b2b_invoice_id: invoice.id,
            fingerprint: entry.fingerprint.as_deref(),
            owned: entry.owned.as_ref(),
            written_open: entry.written_open,
            erp_paid: None,
            erp_balance: None,
        },
    )
    .await?;
    tx.commit()
        .await
        .map_err(StoreError::query("committing a recovered invoice"))?;
    tracing::info!(
        b2b_invoice_id = invoice.id,
        "adopted an invoice whose create was applied"
    );
    Ok(Settled::Adopted)
}
