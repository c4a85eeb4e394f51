//! The I/O of `reconcile`: the ERP read in full through the source's adapter (every invoice the
//! source would sync, mapped and adjusted for B2B payments exactly as a cycle does), B2B read in
//! bulk pages (`GET /invoices`, the store's page size, up to 250 a page, sorted by creation so
//! that invoices created meanwhile land on the last page) through the store's client and so its
//! budget, and the state table. `--repair` then queues what a cycle can fix.

use std::collections::{BTreeMap, HashSet};

use chrono::Utc;
use futures::StreamExt;

use super::{compare, ErpInvoice, Inputs, Report};
use crate::b2b::{B2bError, InvoiceQuery, InvoiceSortField, SortOrder};
use crate::customers::CustomerError;
use crate::domain::Lifecycle;
use crate::source::{Cursor, SourceError};
use crate::store::state;
use crate::store::{cursors, StoreError};
use crate::sync::balance::Payments;
use crate::sync::engine::{Engine, EngineError};
use crate::sync::prepare::{prepare_page, InvoiceFailure, PageError};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Customers(#[from] CustomerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading B2B invoices of store {store}: {error}")]
    B2b { store: String, error: B2bError },
    #[error(
        "source {0}: a files source cannot be reconciled: its folder holds only the exports not \
         imported yet, not every invoice of the ERP"
    )]
    CannotListEveryInvoice(String),
    /// The store's request budget is spent by the one process holding its lease: reading B2B
    /// from a second process would take from the same 150 requests a minute.
    #[error(
        "source {source_name}: not reconciled now: {why}; the store's request budget is that \
         process's (run reconcile again when it is idle, or set [sources.{source_name}] \
         reconcile_schedule so the daemon that holds the store does it)"
    )]
    StoreHeld {
        source_name: String,
        why: crate::sync::ownership::NotHeld,
    },
}

/// Reads ERP, B2B and state for `source` and compares them; with `repair`, queues the missing,
/// drifted and stale invoices (and unexplained balances) for the next cycle: their fingerprint is
/// forgotten (and a B2B id that no longer exists), and the source's cursor goes back to the
/// start so that the next cycle reads them again. Nothing is sent to B2B but the reads.
pub async fn reconcile(
    engine: &Engine,
    source: &str,
    repair: bool,
) -> Result<Report, ReconcileError> {
    // Like a cycle, a reconcile reads B2B only while this process holds the store's lease.
    let store = engine.source_parts(source)?.settings.store.clone();
    let hold = match engine.ownership().enter(&store).await? {
        Ok(hold) => hold,
        Err(why) => {
            return Err(ReconcileError::StoreHeld {
                source_name: source.to_owned(),
                why,
            })
        }
    };
    let inputs = gather(engine, source).await;
    engine.ownership().leave(hold).await;
    let inputs = inputs?;
    let mut report = compare(&inputs, Utc::now());
    if repair {
        let (requeue, recreate) = report.repairs();
        let pool = engine.pool();
        let changed = state::forget_for_repair(pool, source, &requeue, &recreate).await?;
        if !requeue.is_empty() || !recreate.is_empty() {
            cursors::store(pool, source, &Cursor::default()).await?;
        }
        tracing::info!(
            source,
            queued = requeue.len() + recreate.len(),
            state_rows = changed,
            "reconcile --repair: queued for the next cycle"
        );
        report.summary.repaired = Some((requeue.len() + recreate.len()) as u64);
    }
    publish(&report);
    Ok(report)
}

/// `b2bsync_reconcile_differences{source,kind}`: the latest report's counts, and its differences
/// still unexplained under `kind="unexplained"` (what the alert watches).
pub fn publish(report: &Report) {
    metrics::gauge!(
        crate::telemetry_metrics::RECONCILE_DIFFERENCES,
        "source" => report.summary.source.clone(),
        "kind" => "unexplained"
    )
    .set(report.summary.unexplained as f64);
    for (kind, n) in &report.summary.counts {
        metrics::gauge!(
            crate::telemetry_metrics::RECONCILE_DIFFERENCES,
            "source" => report.summary.source.clone(),
            "kind" => kind.as_str()
        )
        .set(*n as f64);
    }
}

/// Everything [`compare`] needs for `source`.
pub async fn gather(engine: &Engine, source: &str) -> Result<Inputs, ReconcileError> {
    let parts = engine.source_parts(source)?;
    if parts.settings.adapter.kind() == "files" {
        return Err(ReconcileError::CannotListEveryInvoice(source.to_owned()));
    }
    let pool = engine.pool();
    let mut inputs = Inputs {
        source: source.to_owned(),
        ..Inputs::default()
    };

    // The ERP, from the start: every invoice it holds, not only those changed since the cursor.
    let mut erp: BTreeMap<String, ErpInvoice> = BTreeMap::new();
    let mut pages = parts.adapter.pages(&Cursor::default());
    while let Some(page) = pages.next().await {
        // What sync would push: the payments the ERP does not show yet kept (nothing recorded).
        let payments = parts.settings.payments.enabled.then_some(Payments {
            pool,
            source,
            persist: false,
        });
        let prepared = prepare_page(
            page?.records,
            &parts.customers,
            &parts.settings.mapping,
            payments,
        )
        .await
        .map_err(PageError::into_either::<ReconcileError>)?;
        let mut ready = Vec::new();
        for item in prepared {
            match item {
                Ok(p) if p.lifecycle() == Lifecycle::Active => ready.push(p),
                Ok(p) => {
                    erp.remove(p.external_id());
                    inputs.erp_retired.insert(p.external_id().to_owned());
                }
                Err(InvoiceFailure::Record(_)) => inputs.erp_unreadable += 1,
                Err(InvoiceFailure::UnmappedCustomer { invoice, reason }) => {
                    if invoice.lifecycle != Lifecycle::Active {
                        inputs.erp_retired.insert(invoice.external_id.clone());
                        continue;
                    }
                    inputs.erp_retired.remove(&invoice.external_id);
                    erp.insert(
                        invoice.external_id.clone(),
                        ErpInvoice {
                            external_id: invoice.external_id.clone(),
                            invoice_number: invoice.invoice_number.clone(),
                            currency: invoice.currency,
                            erp_open: invoice.open_balance,
                            expected_open: invoice.open_balance,
                            owned: None,
                            owned_fields: parts.settings.mapping.owned.iter().copied().collect(),
                            note: Some(reason),
                        },
                    );
                }
            }
        }
        for p in ready {
            inputs.erp_retired.remove(p.external_id());
            erp.insert(
                p.external_id().to_owned(),
                ErpInvoice::mapped(&p.desired, p.invoice.open_balance),
            );
        }
    }
    drop(pages);
    inputs.erp = erp.into_values().collect();

    // B2B: the whole store in bulk pages; `compare` keeps the invoices carrying this source's ids.
    let query = InvoiceQuery {
        sort_by: Some(InvoiceSortField::CreatedAt),
        order: Some(SortOrder::Asc),
        include_extra_fields: true,
        ..InvoiceQuery::default()
    };
    let client = parts.client;
    let mut seen = HashSet::new();
    let mut b2b_pages = Box::pin(client.list_invoice_pages(&query));
    while let Some(page) = b2b_pages.next().await {
        let page = page.map_err(|error| ReconcileError::B2b {
            store: parts.settings.store.clone(),
            error,
        })?;
        // An invoice that moved between pages while they were read is counted once.
        inputs
            .b2b
            .extend(page.items.into_iter().filter(|i| seen.insert(i.id)));
    }

    inputs.state = state::all_of_source(pool, source).await?;
    let others: Vec<String> = engine
        .sources_of(&parts.settings.store)
        .into_iter()
        .filter(|s| s != source)
        .collect();
    inputs.foreign_ids = state::external_ids_of(pool, &others).await?;
    Ok(inputs)
}
