//! One cycle of one source: lock -> recover -> due retries -> pull pages -> prepare -> plan ->
//! execute -> commit the cursor past settled invoices -> record the run.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::balance::Payments;
use super::execute::{Ctx, Pending, FETCH_BATCH};
use super::failpoints::Failpoints;
use super::lookup::Capabilities;
use super::outcome::{record_failure, CycleError, Outcome, Retry};
use super::plan::{plan, Action, FieldDiff, SkipReason};
use super::prepare::{prepare_page, InvoiceFailure, PageError};
use super::recover::recover;
use crate::b2b::{B2bClient, ClientBuildError, RequestBudget};
use crate::config::{EngineSettings, Settings, SourceSettings};
use crate::customers::{CustomerError, CustomerResolver};
use crate::domain::{RawInvoice, RecordError, RecordLocator, SourceInvoice, SourceVersion};
use crate::source::{self, Cursor, PageReceipt, Source, SourceError};
use crate::store::leases::Fence;
use crate::store::runs::{self, Counts, Outcome as RunOutcome};
use crate::store::state::{self, StateRow};
use crate::store::{cursors, ledger, StoreError};
use crate::sync::ownership::Ownership;

/// Keep at most this many failure reasons in a run report (the rest are in the state table).
const MAX_REPORTED_FAILURES: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("--source {name}: no such source in the config (configured: {configured})")]
    UnknownSource { name: String, configured: String },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Client(#[from] ClientBuildError),
    #[error(transparent)]
    Customers(#[from] CustomerError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a cycle did, for the CLI, logs and tests.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: Uuid,
    pub source: String,
    pub outcome: RunOutcome,
    pub counts: Counts,
    /// Requests the cycle sent to B2B Edition (customer lookups included).
    pub b2b_calls: u64,
    /// Requests the cycle sent to the ERP (0 for a `files` source).
    pub erp_calls: u64,
    /// Why invoices failed this cycle (at most 100; `failures list` has them all).
    pub failures: Vec<String>,
    /// What an operator should know although nothing failed: records refused as older than
    /// what B2B holds, export files recognised as already imported, files waiting for a
    /// marker (at most 100).
    pub notices: Vec<String>,
    /// B2B payments seen and written back to the ERP this cycle.
    pub payments: crate::payments::Counts,
    /// Why the cycle itself stopped, if it did.
    pub error: Option<String>,
    pub duration_ms: u64,
}

impl RunReport {
    /// A cycle that could not start at all (the database unreachable when taking the lock or
    /// recording the run): failed, with why, so `sync --json` still says so.
    pub fn not_started(source: &str, error: String) -> Self {
        Self::without_work(Uuid::new_v4(), source, RunOutcome::Failed, error)
    }

    /// A cycle that did no work (it did not start, or was skipped): nothing counted, no calls,
    /// only its outcome and why.
    fn without_work(run_id: Uuid, source: &str, outcome: RunOutcome, why: String) -> Self {
        Self {
            run_id,
            source: source.to_owned(),
            outcome,
            counts: Counts::default(),
            b2b_calls: 0,
            erp_calls: 0,
            failures: Vec::new(),
            notices: Vec::new(),
            payments: crate::payments::Counts::default(),
            error: Some(why),
            duration_ms: 0,
        }
    }
}

struct SourceRuntime {
    settings: SourceSettings,
    adapter: Arc<dyn Source>,
    client: B2bClient,
    /// What the source's store makes of `externalId[]` (shared by its sources).
    capabilities: Arc<Capabilities>,
    concurrency: usize,
}

impl SourceRuntime {
    /// The customer resolver over `client`, so company lookups count in the run's API calls.
    fn customers(
        &self,
        pool: &PgPool,
        client: &B2bClient,
    ) -> Result<CustomerResolver, CustomerError> {
        CustomerResolver::new(
            &self.settings.name,
            self.settings.customers.clone(),
            Some(pool.clone()),
            Some(client.clone()),
        )
    }
}

/// A source as [`Engine::source_parts`] hands it out.
pub struct SourceParts<'a> {
    pub settings: &'a SourceSettings,
    pub adapter: &'a Arc<dyn Source>,
    pub client: &'a B2bClient,
    pub customers: CustomerResolver,
}

pub struct Engine {
    /// Cancelled on shutdown: no new invoice action starts, and no cursor moves past an
    /// invoice that was not settled.
    stop: tokio_util::sync::CancellationToken,
    pool: PgPool,
    runtimes: BTreeMap<String, SourceRuntime>,
    failpoints: Arc<Failpoints>,
    retention: EngineSettings,
    /// When this engine started: the age of a source's "last success" until it has one.
    started: DateTime<Utc>,
    /// The stores' leases this engine holds (one process per store).
    ownership: Arc<Ownership>,
    /// Sources with a cycle running in this engine (one at a time per source).
    running: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

/// A source's turn to run in this engine; ends when dropped.
struct Running {
    set: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
    source: String,
}

impl Running {
    fn claim(
        set: &Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
        source: &str,
    ) -> Option<Self> {
        let fresh = set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(source.to_owned());
        fresh.then(|| Self {
            set: set.clone(),
            source: source.to_owned(),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.source);
    }
}

/// Work gathered while a cycle runs.
#[derive(Default)]
struct Cycle {
    counts: Counts,
    failures: Vec<String>,
    /// Updates and removals waiting for the batch fetch of current B2B state.
    batch: Vec<Pending>,
    /// Receipts of pages whose invoices are not all settled yet (their updates are in `batch`).
    receipts: Vec<PageReceipt>,
    /// Shutdown left some invoices of a page unstarted: no later cursor may be committed.
    stopped: bool,
    payments: crate::payments::Counts,
    notices: Vec<String>,
}

impl Cycle {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Created => self.counts.created += 1,
            Outcome::Updated => self.counts.updated += 1,
            Outcome::Unchanged => self.counts.unchanged += 1,
            Outcome::Deleted => self.counts.deleted += 1,
            Outcome::Failed(reason) => self.fail(reason),
            // Read again inside the batch, never handed out of it.
            Outcome::Expired => {}
        }
    }

    fn fail(&mut self, reason: String) {
        self.counts.failed += 1;
        if self.failures.len() < MAX_REPORTED_FAILURES {
            self.failures.push(reason);
        }
    }

    fn notice(&mut self, text: String) {
        if self.notices.len() < MAX_REPORTED_FAILURES {
            self.notices.push(text);
        }
    }

    /// A record older than what the daemon knows of its invoice (`newer`): refused, counted,
    /// named in a notice and a warning.
    fn stale(
        &mut self,
        external_id: &str,
        invoice_number: &str,
        version: Option<&SourceVersion>,
        newer: Option<&SourceVersion>,
    ) {
        self.counts.stale += 1;
        let show =
            |v: Option<&SourceVersion>| v.map_or_else(|| "unknown".to_owned(), ToString::to_string);
        let (version, newer) = (show(version), show(newer));
        tracing::warn!(
            external_id,
            invoice_number,
            version = %version,
            newer = %newer,
            "ERP record older than the version already synced: refused"
        );
        self.notice(format!(
            "invoice {external_id} (number {invoice_number}): the ERP record of version {version} is older \
             than version {newer} already in B2B or waiting to be pushed; refused, B2B keeps the newer one"
        ));
    }

    /// Queues an update or removal for the batch; of two records of one invoice, the newer
    /// version stays (the later one when neither is known to be newer).
    fn queue(&mut self, item: Pending) {
        if let Some(i) = self
            .batch
            .iter()
            .position(|b| b.external_id() == item.external_id())
        {
            let kept = self.batch[i].prepared();
            if super::plan::supersedes(kept, item.prepared()) {
                let newer = kept.invoice.version.clone();
                let p = item.prepared();
                self.stale(
                    p.external_id(),
                    p.invoice_number(),
                    p.invoice.version.as_ref(),
                    newer.as_ref(),
                );
                return;
            }
            self.batch.remove(i);
        }
        self.batch.push(item);
    }
}

impl Engine {
    /// Builds every configured source with its store's client; stores share one budget each.
    pub fn new(settings: &Settings, pool: PgPool) -> Result<Self, EngineError> {
        let mut clients: HashMap<&str, (B2bClient, Arc<Capabilities>)> = HashMap::new();
        let mut budgets = BTreeMap::new();
        for (name, store) in &settings.stores {
            let budget = Arc::new(RequestBudget::new(&store.budget));
            budgets.insert(name.clone(), budget.clone());
            let client = B2bClient::new(store, budget)?;
            clients.insert(name, (client, Arc::new(Capabilities::new(name))));
        }
        let mut runtimes = BTreeMap::new();
        for (name, src) in &settings.sources {
            // The config loader guarantees every source names a configured store.
            let Some((client, capabilities)) = clients.get(src.store.as_str()).cloned() else {
                continue;
            };
            let concurrency = settings
                .stores
                .get(&src.store)
                .map_or(4, |s| s.budget.max_concurrent.get());
            // Fails early on a strategy the source cannot use (e.g. no database).
            CustomerResolver::new(
                name,
                src.customers.clone(),
                Some(pool.clone()),
                Some(client.clone()),
            )?;
            runtimes.insert(
                name.clone(),
                SourceRuntime {
                    settings: src.clone(),
                    adapter: source::build_with(src, Some(&pool))?,
                    client,
                    capabilities,
                    concurrency,
                },
            );
        }
        let ownership = Arc::new(Ownership::new(
            pool.clone(),
            settings.daemon.lease_ttl,
            budgets,
        ));
        Ok(Self {
            ownership,
            running: Arc::default(),
            stop: tokio_util::sync::CancellationToken::new(),
            pool,
            runtimes,
            failpoints: Arc::default(),
            retention: settings.engine.clone(),
            started: Utc::now(),
        })
    }

    /// Stops cycles gracefully: actions in flight finish, nothing new starts.
    pub fn stop_token(&self) -> tokio_util::sync::CancellationToken {
        self.stop.clone()
    }

    /// Test hook: the failpoints this engine checks.
    pub fn failpoints(&self) -> &Failpoints {
        &self.failpoints
    }

    pub fn source_names(&self) -> Vec<String> {
        self.runtimes.keys().cloned().collect()
    }

    /// The sources that feed `store`.
    pub fn sources_of(&self, store: &str) -> Vec<String> {
        self.runtimes
            .iter()
            .filter(|(_, rt)| rt.settings.store == store)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The stores' leases this engine holds.
    pub fn ownership(&self) -> &Arc<Ownership> {
        &self.ownership
    }

    /// What `reconcile` reads a source through: its settings, its adapter, its store's client
    /// (inside the store's budget) and the customer resolver the cycles use.
    pub fn source_parts(&self, name: &str) -> Result<SourceParts<'_>, EngineError> {
        let rt = self.runtime(name)?;
        Ok(SourceParts {
            settings: &rt.settings,
            adapter: &rt.adapter,
            client: &rt.client,
            customers: rt.customers(&self.pool, &rt.client)?,
        })
    }

    fn runtime(&self, name: &str) -> Result<&SourceRuntime, EngineError> {
        self.runtimes
            .get(name)
            .ok_or_else(|| EngineError::UnknownSource {
                name: name.to_owned(),
                configured: self.source_names().join(", "),
            })
    }

    /// One cycle of `source`. A second process working the same source makes this one skip.
    pub async fn run_cycle(&self, source: &str) -> Result<RunReport, EngineError> {
        self.run_scoped(source, None).await
    }

    /// A short cycle over only these invoices (ERP ids; a webhook named them): each is read by
    /// id, then planned and executed like any other (the ledger, the state, the current B2B
    /// details); the cursor does not move, and payments and due retries wait for the next full
    /// cycle. An adapter that cannot read by id runs a full cycle instead.
    pub async fn sync_invoices(
        &self,
        source: &str,
        external_ids: &[String],
    ) -> Result<RunReport, EngineError> {
        self.run_scoped(source, Some(external_ids)).await
    }

    async fn run_scoped(
        &self,
        source: &str,
        only: Option<&[String]>,
    ) -> Result<RunReport, EngineError> {
        let rt = self.runtime(source)?;
        let run_id = Uuid::new_v4();
        let started = Instant::now();
        let span = tracing::info_span!("sync_run", %run_id, source = %source);
        let _entered = span.clone();
        let skipped = |why: String| {
            tracing::info!(parent: &span, reason = %why, "skipped");
            metrics::counter!(crate::telemetry_metrics::CYCLES, "source" => source.to_owned(), "outcome" => RunOutcome::Skipped.as_str())
                .increment(1);
            RunReport::without_work(run_id, source, RunOutcome::Skipped, why)
        };
        let Some(_running) = Running::claim(&self.running, source) else {
            return Ok(skipped(
                "a cycle of this source is already running in this process".to_owned(),
            ));
        };
        let hold = match self.ownership.enter(&rt.settings.store).await? {
            Ok(hold) => hold,
            Err(why) => return Ok(skipped(why.to_string())),
        };
        let fence = hold.fence(&self.ownership, source);
        let result = self
            .run_held(rt, source, only, run_id, started, &span, &fence)
            .await;
        self.ownership.leave(hold).await;
        result
    }

    /// [`Self::run_cycle`] once the store is held.
    #[allow(clippy::too_many_arguments)]
    async fn run_held(
        &self,
        rt: &SourceRuntime,
        source: &str,
        only: Option<&[String]>,
        run_id: Uuid,
        started: Instant,
        span: &tracing::Span,
        fence: &Fence,
    ) -> Result<RunReport, EngineError> {
        runs::start(&self.pool, run_id, source, only.is_none()).await?;
        let client = rt.client.with_fresh_counter();
        let erp_calls_before = crate::source::requests::calls(source);
        let mut cycle = Cycle::default();
        let result = tracing::Instrument::instrument(
            self.cycle(rt, &client, run_id, fence, only, &mut cycle),
            span.clone(),
        )
        .await;
        if let Err(CycleError::Store(lost @ StoreError::LeaseLost { .. })) = &result {
            tracing::warn!(parent: span, error = %lost, "lost the store's lease mid-cycle: stopped");
        }
        // After a database failure, only the run's own record is attempted: each further query
        // would wait out the pool's timeout for nothing.
        let database_down = matches!(&result, Err(CycleError::Store(StoreError::Query { .. })));
        let mut error = result.err().map(|e| e.to_string());
        let mut outcome = match (&error, cycle.counts.failed) {
            (Some(_), _) => RunOutcome::Failed,
            (None, _) if cycle.stopped => RunOutcome::Stopped,
            (None, 0) => RunOutcome::Ok,
            (None, _) => RunOutcome::Partial,
        };
        let calls = runs::Calls {
            b2b: client.calls_made(),
            erp: crate::source::requests::calls(source).saturating_sub(erp_calls_before),
        };
        // Commits whose acknowledgement was lost (the database went away mid-COMMIT) are in the
        // ledger all the same: `finish` counts them, so runs add up to what B2B holds.
        match runs::finish(
            &self.pool,
            run_id,
            outcome,
            &cycle.counts,
            calls,
            error.as_deref(),
        )
        .await
        {
            Ok((created, updated)) => {
                cycle.counts.created = created;
                cycle.counts.updated = updated;
            }
            Err(e) => {
                // The cycle's own error (often the same outage) is what the operator needs; the
                // report still says what was done, and the run row stays unfinished.
                error = Some(match error {
                    Some(first) => format!("{first}; the run could not be recorded either: {e}"),
                    None => format!("the run could not be recorded: {e}"),
                });
                outcome = RunOutcome::Failed;
            }
        }
        if !database_down {
            self.prune().await;
        }
        self.record_metrics(
            source,
            outcome,
            &cycle.counts,
            started.elapsed(),
            database_down,
        )
        .await;
        log_finished(span, outcome, &cycle.counts, calls, error.as_deref());
        Ok(RunReport {
            run_id,
            source: source.to_owned(),
            outcome,
            counts: cycle.counts,
            b2b_calls: calls.b2b,
            erp_calls: calls.erp,
            failures: cycle.failures,
            notices: cycle.notices,
            payments: cycle.payments,
            error,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }

    async fn cycle(
        &self,
        rt: &SourceRuntime,
        client: &B2bClient,
        run_id: Uuid,
        fence: &Fence,
        only: Option<&[String]>,
        st: &mut Cycle,
    ) -> Result<(), CycleError> {
        let ctx = Ctx {
            pool: &self.pool,
            client,
            source: &rt.settings,
            run_id,
            failpoints: &self.failpoints,
            fence,
            capabilities: &rt.capabilities,
        };
        let recovered = recover(&ctx).await?;
        st.counts.recovered += i32::try_from(recovered.adopted).unwrap_or(i32::MAX);

        if let Some(ids) = only {
            if let Some(records) = rt.adapter.fetch(ids).await {
                let records = records?;
                crate::store::refused::take_page(&self.pool, &rt.settings.name, run_id, &records)
                    .await?;
                self.process(&ctx, rt, records, st).await?;
                return self.flush(&ctx, rt, st).await;
            }
            tracing::info!("the source cannot read invoices by id: a full cycle instead");
        }

        // Before any invoice is pushed: a payment seen now is kept by this cycle's pushes.
        st.payments = crate::payments::run(&crate::payments::PaymentsCtx {
            pool: &self.pool,
            client,
            source: &rt.settings,
            writer: rt.adapter.payment_writer(),
            run_id,
            failpoints: &self.failpoints,
            fence,
        })
        .await
        .map_err(|e| match &e {
            crate::payments::PaymentsError::Scan { error, .. } => client
                .misconfigured(error)
                .map_or(CycleError::from(e), CycleError::from),
            _ => CycleError::from(e),
        })?;

        // Failures whose retry time has come, from the records kept in the state table.
        let due = state::due_failures(&self.pool, &rt.settings.name, 10_000).await?;
        if !due.is_empty() {
            let records = due
                .into_iter()
                .map(|row| reparse(&rt.settings.name, row))
                .collect();
            self.process(&ctx, rt, records, st).await?;
            self.flush(&ctx, rt, st).await?;
        }

        let read = self.read_pages(&ctx, rt, st).await;
        for notice in rt.adapter.take_notices() {
            st.notice(notice);
        }
        read
    }

    /// Every page the source has for this cycle, each processed, its batch flushed when full
    /// or when the page ends a file (so an export's progress is durable as soon as it is
    /// settled: a crash never makes the folder hand out a settled export again).
    async fn read_pages(
        &self,
        ctx: &Ctx<'_>,
        rt: &SourceRuntime,
        st: &mut Cycle,
    ) -> Result<(), CycleError> {
        let cursor = cursors::load(&self.pool, &rt.settings.name).await?;
        let mut pages = rt.adapter.pages(&cursor);
        while let Some(page) = pages.next().await {
            if self.stop.is_cancelled() {
                st.stopped = true;
                break;
            }
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    // Keep what was done: settle and commit the pages read so far.
                    self.flush(ctx, rt, st).await?;
                    return Err(e.into());
                }
            };
            // Refused records where operators look; a valid record clears its id's row.
            crate::store::refused::take_page(
                &self.pool,
                &rt.settings.name,
                ctx.run_id,
                &page.records,
            )
            .await?;
            self.process(ctx, rt, page.records, st).await?;
            let ends_a_file = page.receipt.finished_file.is_some();
            st.receipts.push(page.receipt);
            if st.batch.len() >= FETCH_BATCH || ends_a_file {
                self.flush(ctx, rt, st).await?;
            }
        }
        self.flush(ctx, rt, st).await
    }

    /// Prepares, plans and executes one page's records; updates and removals wait in the batch.
    /// The steps `sync` and `plan` share for a page: prepare (map, customers), the openBalance
    /// rule, the state read and the plan. `persist = false` (the dry run) records nothing: the
    /// payments the ERP now shows are not acknowledged.
    async fn plan_page<E: From<StoreError> + From<CustomerError>>(
        &self,
        rt: &SourceRuntime,
        client: &B2bClient,
        records: Vec<Result<SourceInvoice, RecordError>>,
        persist: bool,
    ) -> Result<PagePlan, E> {
        let customers = rt.customers(&self.pool, client)?;
        // The payments stage ran first: the fingerprints the plan compares keep its payments.
        let payments = rt.settings.payments.enabled.then_some(Payments {
            pool: &self.pool,
            source: &rt.settings.name,
            persist,
        });
        let prepared = prepare_page(records, &customers, &rt.settings.mapping, payments)
            .await
            .map_err(PageError::into_either::<E>)?;
        let mut ready = Vec::new();
        let mut failed = Vec::new();
        for item in prepared {
            match item {
                Ok(p) => ready.push(p),
                Err(f) => failed.push(f),
            }
        }
        let (ids, fingerprints): (Vec<String>, Vec<String>) = ready
            .iter()
            .map(|p| {
                (
                    p.external_id().to_owned(),
                    p.fingerprint.as_str().to_owned(),
                )
            })
            .chain(failed.iter().filter_map(|f| match f {
                // Their state decides whether their retry is due (see `process`).
                InvoiceFailure::UnmappedCustomer { invoice, .. } => {
                    Some((invoice.external_id.clone(), String::new()))
                }
                InvoiceFailure::Record(_) => None,
            }))
            .unzip();
        let states =
            state::load_for_plan(&self.pool, &rt.settings.name, &ids, &fingerprints).await?;
        let actions = plan(ready, &states, Utc::now());
        Ok(PagePlan {
            actions,
            failed,
            states,
        })
    }

    async fn process(
        &self,
        ctx: &Ctx<'_>,
        rt: &SourceRuntime,
        records: Vec<Result<SourceInvoice, RecordError>>,
        st: &mut Cycle,
    ) -> Result<(), CycleError> {
        let PagePlan {
            actions,
            failed,
            states,
        } = self
            .plan_page::<CycleError>(rt, ctx.client, records, true)
            .await?;
        let mut unmapped = Vec::new();
        for f in failed {
            match f {
                InvoiceFailure::Record(e) => {
                    tracing::warn!(record = %e.record, reason = %e.reason, "ERP record refused");
                    st.fail(e.to_string());
                }
                InvoiceFailure::UnmappedCustomer { invoice, reason } => {
                    unmapped.push((invoice, reason));
                }
            }
        }
        let now = Utc::now();
        for (invoice, reason) in unmapped {
            // Kept under its record's fingerprint: re-read before its retry is due (an overlap
            // window, a later page, another export) it waits like any failed invoice.
            let fp = record_fingerprint(&invoice);
            let state = states.get(&invoice.external_id);
            match super::plan::held_back(state, invoice.version.as_ref(), &fp, now) {
                Some(SkipReason::Stale) => {
                    let newer = state.and_then(StateRow::newest_version);
                    st.stale(
                        &invoice.external_id,
                        &invoice.invoice_number,
                        invoice.version.as_ref(),
                        newer,
                    );
                    continue;
                }
                Some(_) => {
                    st.counts.waiting += 1;
                    continue;
                }
                None => {}
            }
            let attempts = attempts_with(state, &fp);
            let outcome = record_failure(
                &self.pool,
                &rt.settings.failures,
                &invoice,
                Some(&fp),
                attempts,
                reason,
                Retry::Backoff,
            )
            .await?;
            st.count(outcome);
        }
        let mut creates = Vec::new();
        for action in actions {
            match action {
                Action::Create(p) => {
                    let attempts =
                        attempts_with(states.get(p.external_id()), p.fingerprint.as_str());
                    creates.push((p, attempts));
                }
                Action::Update {
                    b2b_invoice_id,
                    prepared,
                    attempts,
                    ..
                } => {
                    let written_open = states
                        .get(prepared.external_id())
                        .and_then(|s| s.written_open);
                    st.queue(Pending::Update {
                        b2b_invoice_id,
                        prepared,
                        attempts,
                        written_open,
                    });
                }
                Action::Remove {
                    b2b_invoice_id,
                    prepared,
                    state,
                } => {
                    st.queue(Pending::Remove {
                        b2b_invoice_id,
                        prepared,
                        state,
                    });
                }
                Action::Forget(p) => {
                    state::deleted_from_b2b(&self.pool, &p.deletion(&rt.settings.name)).await?;
                    // A deletion all the same (recorded, no call), never "unchanged".
                    st.count(Outcome::Deleted);
                }
                Action::Skip {
                    external_id,
                    invoice_number,
                    reason,
                    version,
                } => match reason {
                    SkipReason::Stale => {
                        let newer = states.get(&external_id).and_then(StateRow::newest_version);
                        st.stale(&external_id, &invoice_number, version.as_ref(), newer);
                    }
                    r if r.is_unchanged() => st.count(Outcome::Unchanged),
                    _ => st.counts.waiting += 1,
                },
            }
        }
        if self.stop.is_cancelled() && !creates.is_empty() {
            st.stopped = true;
            return Ok(());
        }
        // After a cycle error nothing new starts, but what finished is still counted: those
        // invoices are committed, and no later run would count them.
        let halt = self.stop.child_token();
        let halt = &halt;
        let results: Vec<Result<Option<Outcome>, CycleError>> = futures::stream::iter(creates)
            .map(|(p, attempts)| async move {
                if halt.is_cancelled() {
                    return Ok(None);
                }
                let span = tracing::info_span!(
                    "invoice",
                    source = %rt.settings.name,
                    store = %rt.settings.store,
                    external_id = %p.external_id(),
                    invoice_number = %p.invoice_number(),
                    action = "create",
                    attempt = attempts + 1,
                    b2b_invoice_id = tracing::field::Empty,
                    http_status = tracing::field::Empty,
                );
                let result = tracing::Instrument::instrument(ctx.create_logged(&p, attempts), span)
                    .await
                    .map(Some);
                if result.is_err() {
                    halt.cancel();
                }
                result
            })
            .buffer_unordered(rt.concurrency)
            .collect()
            .await;
        let mut first_error = None;
        for result in results {
            match result {
                Ok(Some(o)) => st.count(o),
                Ok(None) => st.stopped = true,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Runs the batched updates and removals, then commits the pages they belonged to.
    async fn flush(
        &self,
        ctx: &Ctx<'_>,
        rt: &SourceRuntime,
        st: &mut Cycle,
    ) -> Result<(), CycleError> {
        let batch = std::mem::take(&mut st.batch);
        if !batch.is_empty() {
            let (outcomes, error) = ctx.run_batch(batch, rt.concurrency, &self.stop).await;
            for (_, outcome) in outcomes {
                match outcome {
                    Some(o) => st.count(o),
                    None => st.stopped = true,
                }
            }
            if let Some(e) = error {
                return Err(e);
            }
        }
        if st.stopped {
            // Unstarted invoices are read again next cycle: keep the cursor where it is.
            st.receipts.clear();
            return Ok(());
        }
        for receipt in std::mem::take(&mut st.receipts) {
            rt.adapter.page_committed(&receipt).await?;
            cursors::store(&self.pool, &rt.settings.name, &receipt.cursor).await?;
        }
        Ok(())
    }

    /// The run's counters (see `telemetry_metrics`), then the sources' health gauges.
    async fn record_metrics(
        &self,
        source: &str,
        outcome: RunOutcome,
        c: &Counts,
        took: std::time::Duration,
        database_down: bool,
    ) {
        use crate::telemetry_metrics as m;
        let src = source.to_owned();
        metrics::counter!(m::CYCLES, "source" => src.clone(), "outcome" => outcome.as_str())
            .increment(1);
        metrics::histogram!(m::CYCLE_DURATION, "source" => src.clone()).record(took.as_secs_f64());
        // Actions are named as everywhere else (`plan::ACTIONS`); held-back skips say why in
        // the outcome.
        let by_action = [
            ("create", "ok", c.created),
            ("update", "ok", c.updated),
            ("skip", "ok", c.unchanged),
            ("delete", "ok", c.deleted),
            ("recover", "ok", c.recovered),
            ("skip", "refused", c.stale),
            ("skip", "waiting", c.waiting),
            ("fail", "failed", c.failed),
        ];
        for (action, result, n) in by_action {
            if n > 0 {
                metrics::counter!(m::INVOICES, "source" => src.clone(), "action" => action, "outcome" => result)
                    .increment(u64::try_from(n).unwrap_or(0));
            }
        }
        if !database_down {
            self.publish_health().await;
        }
    }

    /// Every source's health gauges, read from the database (`store::health`): they exist from
    /// start-up, whatever the cycles did since, and `run` refreshes them at each scrape of
    /// `/metrics`, so staleness keeps growing while nothing succeeds. Also makes every
    /// per-source counter series exist at zero, so alert rules see them before the first cycle.
    pub async fn publish_health(&self) {
        use crate::telemetry_metrics as m;
        let names = self.source_names();
        for name in &names {
            for outcome in RunOutcome::ALL {
                metrics::counter!(m::CYCLES, "source" => name.clone(), "outcome" => outcome.as_str())
                    .increment(0);
            }
        }
        let all = match crate::store::health::of_sources(&self.pool, &names).await {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!(error = %e, "reading the sources' health for the metrics failed");
                return;
            }
        };
        let now = Utc::now();
        let age = |since: DateTime<Utc>| (now - since).num_milliseconds().max(0) as f64 / 1000.0;
        for h in all {
            let src = h.source;
            metrics::gauge!(m::FAILURES_PENDING, "source" => src.clone()).set(h.failed as f64);
            metrics::gauge!(m::DEAD_LETTERS, "source" => src.clone()).set(h.dead as f64);
            metrics::gauge!(m::LEDGER_IN_FLIGHT, "source" => src.clone()).set(h.in_flight as f64);
            metrics::gauge!(m::REFUSED_RECORDS, "source" => src.clone()).set(h.refused as f64);
            metrics::gauge!(m::PAYMENTS_PENDING, "source" => src.clone())
                .set(h.payments_pending as f64);
            metrics::gauge!(m::PAYMENTS_STUCK, "source" => src.clone())
                .set(h.payments_stuck as f64);
            // Never succeeded: 0 (1970), which any "no success for a while" rule sees at once.
            metrics::gauge!(m::LAST_SUCCESS, "source" => src.clone())
                .set(h.last_success.map_or(0.0, |t| t.timestamp() as f64));
            metrics::gauge!(m::LAST_SUCCESS_AGE, "source" => src.clone())
                .set(age(h.last_success.unwrap_or(self.started)));
            metrics::gauge!(m::OLDEST_UNSYNCED_AGE, "source" => src)
                .set(h.oldest_unsynced.map_or(0.0, age));
        }
    }

    /// Old settled ledger rows and runs go, per `[engine]` retention (in-flight rows never do).
    /// A failure here only logs: it must not fail a cycle that synced fine.
    async fn prune(&self) {
        let ago = |d: std::time::Duration| {
            Utc::now() - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(90))
        };
        match ledger::prune(&self.pool, ago(self.retention.ledger_retention)).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(rows = n, "pruned old ledger rows"),
            Err(e) => tracing::warn!(error = %e, "pruning the ledger failed"),
        }
        match runs::prune(&self.pool, ago(self.retention.runs_retention)).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(rows = n, "pruned old runs"),
            Err(e) => tracing::warn!(error = %e, "pruning runs failed"),
        }
    }

    /// The pool the engine uses.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The cursor a source would read from next.
    pub async fn cursor(&self, source: &str) -> Result<Cursor, EngineError> {
        Ok(cursors::load(&self.pool, source).await?)
    }
}

/// The cycle's summary line: ERROR when it failed, WARN when some invoices failed (partial),
/// INFO otherwise, so that a level filter finds the cycles that need a look.
fn log_finished(
    span: &tracing::Span,
    outcome: RunOutcome,
    c: &Counts,
    calls: runs::Calls,
    error: Option<&str>,
) {
    macro_rules! finished {
        ($level:ident) => {
            tracing::$level!(parent: span, outcome = outcome.as_str(), created = c.created, updated = c.updated,
                unchanged = c.unchanged, deleted = c.deleted, failed = c.failed, recovered = c.recovered,
                b2b_calls = calls.b2b, erp_calls = calls.erp, error, "sync run finished")
        };
    }
    match outcome {
        RunOutcome::Failed => finished!(error),
        RunOutcome::Partial => finished!(warn),
        RunOutcome::Ok | RunOutcome::Skipped | RunOutcome::Stopped => finished!(info),
    }
}

/// The fingerprint an invoice that could not be mapped (no company yet) is kept under: of the
/// ERP record itself (`r1:` + SHA-256 of its canonical form), since nothing was mapped. A mapped
/// record's fingerprint never equals it, so once the customer maps it goes ahead at once.
fn record_fingerprint(invoice: &SourceInvoice) -> String {
    use sha2::{Digest, Sha256};
    let bytes = serde_json::to_vec(&invoice.to_raw()).unwrap_or_default();
    format!("r1:{}", hex::encode(Sha256::digest(bytes)))
}

/// Attempts so far with this very content, kept under `fp` (a changed record starts from zero).
fn attempts_with(state: Option<&StateRow>, fp: &str) -> i32 {
    state
        .filter(|s| s.pending_fingerprint.as_deref() == Some(fp))
        .map_or(0, |s| s.attempts)
}

/// A kept ERP record back into a `SourceInvoice`.
fn reparse(source: &str, row: StateRow) -> Result<SourceInvoice, RecordError> {
    let locator = RecordLocator::id(row.external_id.as_str());
    let version = row.pending_version.clone();
    let raw: RawInvoice = row
        .pending
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(|| {
            RecordError::whole(
                source,
                locator.clone(),
                "the kept record of a failed invoice cannot be read",
            )
        })?;
    // The version the record had when it was kept (an export's file time is not in the
    // record itself); parsing gives only the ERP's own updated-at.
    let parsed = SourceInvoice::parse(source, locator, raw)?;
    Ok(match version {
        Some(v) => parsed.with_version(Some(v)),
        None => parsed,
    })
}

/// A dry run's view of one invoice.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedInvoice {
    pub external_id: String,
    pub invoice_number: String,
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<SkipReason>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<FieldDiff>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// What a `delete` means for this invoice: held by B2B (the source's `on_deleted` policy
    /// applies) or never there (recorded, no call).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
}

/// [`PlannedInvoice::note`] of a deletion B2B holds.
pub const DELETE_HELD: &str = "deleted or voided in the ERP; B2B holds it: on_deleted applies";
/// [`PlannedInvoice::note`] of a deletion B2B never held.
pub const DELETE_NEVER_HELD: &str = "deleted or voided in the ERP; never in B2B: recorded, no call";

/// A page made ready for planning, by [`Engine::plan_page`].
struct PagePlan {
    actions: Vec<Action>,
    /// Records that did not become invoices to plan (invalid, or their customer has no B2B
    /// company yet), in the page's order.
    failed: Vec<InvoiceFailure>,
    /// The state rows of the page's invoices (unmapped ones too).
    states: HashMap<String, StateRow>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PlanReport {
    pub source: String,
    pub counts: BTreeMap<&'static str, u64>,
    pub invoices: Vec<PlannedInvoice>,
}

impl Engine {
    /// A dry run: what a cycle would do, with per-field diffs. Reads the ERP and the state
    /// table; sends nothing to B2B but company lookups, commits no cursor and no state.
    pub async fn plan_only(
        &self,
        source: &str,
        include_unchanged: bool,
    ) -> Result<PlanReport, EngineError> {
        let rt = self.runtime(source)?;
        let mut report = PlanReport {
            source: source.to_owned(),
            ..PlanReport::default()
        };
        let cursor = cursors::load(&self.pool, source).await?;
        let mut pages = rt.adapter.pages(&cursor);
        while let Some(page) = pages.next().await {
            let PagePlan {
                actions, failed, ..
            } = self
                .plan_page::<EngineError>(rt, &rt.client, page?.records, false)
                .await?;
            for e in failed {
                *report.counts.entry("fail").or_default() += 1;
                let (external_id, invoice_number) = match &e {
                    InvoiceFailure::UnmappedCustomer { invoice, .. } => {
                        (invoice.external_id.clone(), invoice.invoice_number.clone())
                    }
                    InvoiceFailure::Record(r) => (r.record.to_string(), String::new()),
                };
                report.invoices.push(PlannedInvoice {
                    external_id,
                    invoice_number,
                    action: "fail",
                    skip_reason: None,
                    diff: Vec::new(),
                    failure: Some(e.to_string()),
                    note: None,
                });
            }
            for action in actions {
                *report.counts.entry(action.name()).or_default() += 1;
                let entry = match action {
                    Action::Skip {
                        external_id,
                        invoice_number,
                        reason,
                        ..
                    } => {
                        if !include_unchanged && reason == SkipReason::Unchanged {
                            continue;
                        }
                        PlannedInvoice {
                            external_id,
                            invoice_number,
                            action: "skip",
                            skip_reason: Some(reason),
                            diff: Vec::new(),
                            failure: None,
                            note: None,
                        }
                    }
                    Action::Update { prepared, diff, .. } => PlannedInvoice {
                        external_id: prepared.external_id().to_owned(),
                        invoice_number: prepared.invoice_number().to_owned(),
                        action: "update",
                        skip_reason: None,
                        diff,
                        failure: None,
                        note: None,
                    },
                    other => {
                        let name = other.name();
                        let note = match &other {
                            Action::Remove { .. } => Some(DELETE_HELD),
                            Action::Forget(_) => Some(DELETE_NEVER_HELD),
                            _ => None,
                        };
                        let (Action::Create(p)
                        | Action::Forget(p)
                        | Action::Remove { prepared: p, .. }) = other
                        else {
                            continue;
                        };
                        PlannedInvoice {
                            external_id: p.external_id().to_owned(),
                            invoice_number: p.invoice_number().to_owned(),
                            action: name,
                            skip_reason: None,
                            diff: Vec::new(),
                            failure: None,
                            note,
                        }
                    }
                };
                report.invoices.push(entry);
            }
        }
        Ok(report)
    }
}
