//! Settles ledger rows left `in_flight` by a crash or an ambiguous answer, at the start of every
//! cycle and before anything is planned: a create is looked up in B2B by externalId (then by
//! invoice number) and adopted if it was applied; an update is superseded by a fresh one built
//! from current state; a delete is checked by id. Until a row is settled, the ledger's unique
//! index keeps any new request for that invoice from starting. (The protocol, shared with the
//! payment write-backs, is `store::intent`'s.)

use std::collections::HashMap;

use super::execute::Ctx;
use super::lookup::{self, LookupError, Wanted};
use super::outcome::CycleError;
use crate::b2b::model::Invoice;
use crate::b2b::B2bError;
use crate::store::intent::Settlement;
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
    // A request another live process may still be sending is its to settle (it stops at its
    // next change once it finds it lost the source): judging it now could send it twice.
    let in_transit = ctx.client.request_timeout() * 2;
    let (busy, settle_now): (Vec<InFlight>, Vec<InFlight>) =
        ledger::in_flight(ctx.pool, &ctx.source.name, in_transit)
            .await?
            .into_iter()
            .partition(|e| e.maybe_on_the_wire);
    if !busy.is_empty() {
        tracing::info!(
            requests = busy.len(),
            "in-flight requests of a process that is still running: left to it"
        );
        r.unresolved += u32::try_from(busy.len()).unwrap_or(u32::MAX);
    }
    let (creates, others): (Vec<InFlight>, Vec<InFlight>) =
        settle_now.into_iter().partition(|e| e.op == Op::Create);
    for entry in &others {
        let span = tracing::info_span!("recover", external_id = %entry.external_id, invoice_number = %entry.invoice_number, op = entry.op.as_str());
        let settled = tracing::Instrument::instrument(settle(ctx, entry), span).await?;
        r.count(settled);
    }
    // Creates are looked up in bulk, like the update path's current state.
    // `lookup::find` reads them a page of ids at a time.
    for settled in settle_creates(ctx, &creates).await? {
        r.count(settled);
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

impl Recovery {
    fn count(&mut self, settled: Settlement) {
        match settled {
            Settlement::Applied => self.adopted += 1,
            Settlement::NotApplied => self.abandoned += 1,
            Settlement::Unknown => self.unresolved += 1,
        }
    }
}

async fn settle(ctx: &Ctx<'_>, entry: &InFlight) -> Result<Settlement, CycleError> {
    match entry.op {
        // Creates are settled in bulk by `settle_creates`; one alone goes the same way.
        Op::Create => Ok(settle_creates(ctx, std::slice::from_ref(entry))
            .await?
            .pop()
            .unwrap_or(Settlement::Unknown)),
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
            Ok(Settlement::NotApplied)
        }
        Op::Delete => {
            let Some(id) = entry.b2b_invoice_id else {
                ledger::abandon(ctx.pool, entry.id, "no invoice id recorded").await?;
                return Ok(Settlement::NotApplied);
            };
            match ctx.client.get_invoice(id).await {
                Err(B2bError::NotFound { .. }) => {
                    ledger::succeed(ctx.pool, entry.id, id, "recovered: the delete was applied")
                        .await?;
                    let deletion = state::Deletion {
                        source: &ctx.source.name,
                        external_id: &entry.external_id,
                        invoice_number: &entry.invoice_number,
                        fingerprint: entry.fingerprint.as_deref(),
                        version: entry.erp_version.as_ref(),
                    };
                    state::deleted_from_b2b(ctx.pool, &deletion).await?;
                    Ok(Settlement::Applied)
                }
                Ok(_) => {
                    ledger::abandon(ctx.pool, entry.id, "recovered: the delete was not applied")
                        .await?;
                    mark_due(ctx, entry).await?;
                    Ok(Settlement::NotApplied)
                }
                Err(e) => unresolved(ctx, &e),
            }
        }
    }
}

fn unresolved(ctx: &Ctx<'_>, e: &B2bError) -> Result<Settlement, CycleError> {
    if let Some(stop) = ctx.client.misconfigured(e) {
        return Err(stop.into());
    }
    tracing::warn!(error = %e, "could not settle an in-flight request; left for the next cycle");
    Ok(Settlement::Unknown)
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

/// Settles in-flight creates with bulk reads (`lookup::find`: `externalId[]`, or invoice numbers
/// where the store's filter cannot take the ids): found ones are adopted; the others were not
/// applied (a store's answer never leaves out an invoice that holds the id: an ignored filter is
/// detected and the numbers are searched instead).
async fn settle_creates(
    ctx: &Ctx<'_>,
    entries: &[InFlight],
) -> Result<Vec<Settlement>, CycleError> {
    let wanted: Vec<Wanted> = entries
        .iter()
        .map(|e| Wanted {
            external_id: &e.external_id,
            invoice_number: &e.invoice_number,
        })
        .collect();
    let listed = match lookup::find(ctx.pool, ctx.client, ctx.capabilities, &wanted).await {
        Ok(found) => found.invoices,
        Err(LookupError::Store(e)) => return Err(e.into()),
        Err(LookupError::B2b(e)) => {
            if let Some(stop) = ctx.client.misconfigured(&e) {
                return Err(stop.into());
            }
            tracing::warn!(error = %e, invoices = entries.len(), "could not look up in-flight creates; left for the next cycle");
            return Ok(vec![Settlement::Unknown; entries.len()]);
        }
    };
    let mut by_id: HashMap<&str, Vec<Invoice>> = HashMap::new();
    for inv in listed {
        if let Some(entry) = entries
            .iter()
            .find(|e| inv.external_id.as_deref() == Some(e.external_id.as_str()))
        {
            by_id
                .entry(entry.external_id.as_str())
                .or_default()
                .push(inv);
        }
    }
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let span = tracing::info_span!("recover", external_id = %entry.external_id, invoice_number = %entry.invoice_number, op = "create");
        let found = by_id.remove(entry.external_id.as_str()).unwrap_or_default();
        let settled =
            tracing::Instrument::instrument(settle_create(ctx, entry, found), span).await?;
        out.push(settled);
    }
    Ok(out)
}

async fn settle_create(
    ctx: &Ctx<'_>,
    entry: &InFlight,
    mut found: Vec<Invoice>,
) -> Result<Settlement, CycleError> {
    found.sort_by_key(|i| i.id);
    let Some(invoice) = found.first() else {
        ledger::abandon(
            ctx.pool,
            entry.id,
            "recovered: not found in B2B, the create was not applied",
        )
        .await?;
        mark_due(ctx, entry).await?;
        return Ok(Settlement::NotApplied);
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
    state::mark_adopted(
        &mut *tx,
        &Synced {
            source: &ctx.source.name,
            external_id: &entry.external_id,
            invoice_number: &entry.invoice_number,
            b2b_invoice_id: invoice.id,
            fingerprint: entry.fingerprint.as_deref(),
            owned: entry.owned.as_ref(),
            written_open: entry.written_open,
            erp_version: entry.erp_version.as_ref(),
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
    Ok(Settlement::Applied)
}
