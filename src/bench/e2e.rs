//! `bench e2e`: the daemon end to end, scenario after scenario on the same data, next to the
//! [`naive`](super::naive) syncer.
//!
//! N invoices in the unified ERP sandbox, an empty B2B sandbox (one for the daemon, one for the
//! naive syncer), a fresh PostgreSQL database. Scenarios, in order:
//! 1. initial load: every invoice is new;
//! 2. steady state: the ERP changed 1 % of them;
//! 3. no change at all;
//! 4. a person edited 5 % of the invoices in B2B (`details`): not ERP drift, so no calls.
//!
//! Each daemon scenario is one `Engine::run_cycle` with a new engine and pool (closed after,
//! so PostgreSQL publishes its counters); each naive scenario is one full pass.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;

use super::database::{reads_between, BenchDatabase, PgCounters, TableReads};
use super::e2e_setup::{self, SOURCE};
use super::measure::{self, Machine};
use super::naive::{NaiveSyncer, NaiveTally};
use super::sandboxes::{B2bShape, Sandbox, SandboxLaunch, Stats};
use super::table::{self, per, NONE};
use super::BenchError;
use crate::config::Settings;
use crate::sandbox::unified::remote_id;
use crate::sync::engine::Engine;

/// B2B Edition's limit per store.
pub const STORE_RATE_LIMIT: u32 = 150;

#[derive(Debug, Clone)]
pub struct E2eOptions {
    pub invoices: usize,
    /// Sandbox rate limit off and the daemon's budget out of the way, so CPU costs show.
    pub fast: bool,
    pub latency: Duration,
    pub jitter: Duration,
    /// The B2B sandbox's requests per minute (ignored with `fast`: unlimited).
    pub sandbox_rate_limit: u32,
    /// The daemon's `requests_per_minute` (ignored with `fast`).
    pub budget_rpm: u32,
    /// The daemon's `max_concurrent`.
    pub concurrency: usize,
    /// Share of the ERP's invoices changed before the steady-state cycle.
    pub change_percent: f64,
    /// Share of the B2B invoices a person edits before the last cycle.
    pub edit_percent: f64,
    /// Also run the naive syncer, scenario by scenario.
    pub naive: bool,
    /// A PostgreSQL URL; the benchmark creates (and drops) a database of its own on that server.
    pub database_url: String,
    pub launch: SandboxLaunch,
    pub rng_seed: u64,
}

impl E2eOptions {
    /// The realistic defaults: 80 ± 40 ms latency, 150/min at the sandbox, the daemon's own
    /// budget (120/min, 4 in flight), 1 % changed, 5 % edited, naive syncer included.
    pub fn new(invoices: usize, database_url: &str, launch: SandboxLaunch) -> Self {
        let budget = crate::config::BudgetSettings::default();
        Self {
            invoices,
            fast: false,
            latency: Duration::from_millis(80),
            jitter: Duration::from_millis(40),
            sandbox_rate_limit: STORE_RATE_LIMIT,
            budget_rpm: budget.requests_per_minute.get(),
            concurrency: budget.max_concurrent.get(),
            change_percent: 1.0,
            edit_percent: 5.0,
            naive: true,
            database_url: database_url.to_owned(),
            launch,
            rng_seed: 42,
        }
    }

    fn check(&self) -> Result<(), BenchError> {
        let bad = |m: &str| Err(BenchError::Option(m.to_owned()));
        if self.invoices == 0 {
            return bad("--invoices must be at least 1");
        }
        let share_ok = |p: f64| p > 0.0 && p <= 100.0;
        if !share_ok(self.change_percent) || !share_ok(self.edit_percent) {
            return bad("--change-percent and --edit-percent must be in (0, 100]");
        }
        if self.budget_rpm == 0 || self.concurrency == 0 {
            return bad("--budget-rpm and --concurrency must be at least 1");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    InitialLoad,
    SteadyState,
    NoChange,
    PersonEdits,
}

impl Scenario {
    pub const ALL: [Scenario; 4] = [
        Self::InitialLoad,
        Self::SteadyState,
        Self::NoChange,
        Self::PersonEdits,
    ];

    pub fn label(self, opts: &E2eOptions) -> String {
        match self {
            Self::InitialLoad => "initial load".to_owned(),
            Self::SteadyState => format!("{} % changed in the ERP", opts.change_percent),
            Self::NoChange => "no change".to_owned(),
            Self::PersonEdits => format!("{} % edited by a person in B2B", opts.edit_percent),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syncer {
    Daemon,
    Naive,
}

impl Syncer {
    pub fn label(self) -> &'static str {
        match self {
            Self::Daemon => "daemon",
            Self::Naive => "naive",
        }
    }
}

/// One syncer's run of one scenario.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    pub scenario: Scenario,
    pub syncer: Syncer,
    pub created: u64,
    pub updated: u64,
    /// Invoices of the set that needed nothing (N - created - updated - failed).
    pub unchanged: u64,
    pub failed: u64,
    /// Every B2B call the sandbox answered in the scenario.
    pub calls: u64,
    /// Calls charged to each kind of invoice (see `BENCHMARKS.md` for the rule).
    pub calls_created: u64,
    pub calls_updated: u64,
    pub calls_unchanged: u64,
    pub routes: Vec<(String, u64)>,
    pub too_many_requests: u64,
    pub wall: Duration,
    /// Calls / (minutes x requests per minute), when the scenario was bound by the rate.
    pub budget_used: Option<f64>,
    /// This process's peak RSS during the scenario (the daemon's, with child sandboxes).
    pub peak_rss_kib: Option<u64>,
    /// The B2B sandbox's peak RSS during the scenario (child processes only).
    pub b2b_peak_rss_kib: Option<u64>,
    /// CPU time this process used in the scenario (the syncer's, with child sandboxes).
    pub cpu: Option<Duration>,
    /// CPU time the B2B sandbox used in the scenario (child processes only).
    pub b2b_cpu: Option<Duration>,
    /// SQL statements sent (when the statement counter is installed).
    pub statements: Option<u64>,
    pub pg: Option<PgCounters>,
    /// Tables the daemon read, with their scans and rows.
    pub tables: Vec<TableReads>,
    pub failures: Vec<String>,
}

impl ScenarioResult {
    pub fn per_created(&self) -> Option<f64> {
        per(self.calls_created, self.created)
    }
    pub fn per_updated(&self) -> Option<f64> {
        per(self.calls_updated, self.updated)
    }
    pub fn per_unchanged(&self) -> Option<f64> {
        per(self.calls_unchanged, self.unchanged)
    }
}

#[derive(Debug, Clone)]
pub struct E2eReport {
    pub options: E2eOptions,
    pub machine: Machine,
    pub results: Vec<ScenarioResult>,
    /// The ERP sandbox's peak RSS over the run (child processes only).
    pub erp_peak_rss_kib: Option<u64>,
    pub database: String,
}

/// Runs the benchmark: a fresh database, the sandboxes, the scenarios; everything is removed
/// afterwards, whatever happened.
pub async fn run(opts: &E2eOptions) -> Result<E2eReport, BenchError> {
    run_until(opts, std::future::pending()).await
}

/// [`run`], giving up when `stop` completes (e.g. on Ctrl-C); the database and the sandboxes
/// are removed either way.
pub async fn run_until(
    opts: &E2eOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<E2eReport, BenchError> {
    opts.check()?;
    let db = BenchDatabase::create(&opts.database_url).await?;
    db.run_then_drop(with_database(opts, &db), stop).await
}

async fn with_database(opts: &E2eOptions, db: &BenchDatabase) -> Result<E2eReport, BenchError> {
    let shape = B2bShape {
        rate_limit: if opts.fast {
            0
        } else {
            opts.sandbox_rate_limit
        },
        latency: opts.latency,
        jitter: opts.jitter,
        rng_seed: opts.rng_seed,
    };
    let erp = Sandbox::start_erp(&opts.launch, opts.invoices).await?;
    let b2b = match Sandbox::start_b2b(&opts.launch, shape).await {
        Ok(s) => s,
        Err(e) => {
            erp.stop().await;
            return Err(e);
        }
    };
    let naive_b2b = if opts.naive {
        match Sandbox::start_b2b(&opts.launch, shape).await {
            Ok(s) => Some(s),
            Err(e) => {
                erp.stop().await;
                b2b.stop().await;
                return Err(e);
            }
        }
    } else {
        None
    };
    let world = World {
        opts,
        db,
        erp: &erp,
        b2b: &b2b,
        naive_b2b: naive_b2b.as_ref(),
    };
    let result = world.scenarios().await;
    let erp_peak_rss_kib = erp.pid().and_then(|p| measure::peak_rss_kib(Some(p)));
    erp.stop().await;
    b2b.stop().await;
    if let Some(s) = naive_b2b {
        s.stop().await;
    }
    Ok(E2eReport {
        options: opts.clone(),
        machine: Machine::describe(),
        results: result?,
        erp_peak_rss_kib,
        database: db.name.clone(),
    })
}

struct World<'a> {
    opts: &'a E2eOptions,
    db: &'a BenchDatabase,
    erp: &'a Sandbox,
    b2b: &'a Sandbox,
    naive_b2b: Option<&'a Sandbox>,
}

/// `count` (at least 1) indexes spread evenly over `1..=n`, starting `offset` in.
pub fn spread(n: usize, percent: f64, offset: usize) -> Vec<u64> {
    let count = ((n as f64 * percent / 100.0).round() as usize).clamp(1, n);
    (0..count)
        .map(|k| ((k * n / count + offset) % n) as u64 + 1)
        .collect()
}

impl World<'_> {
    async fn scenarios(&self) -> Result<Vec<ScenarioResult>, BenchError> {
        let daemon_settings = e2e_setup::settings(
            self.opts,
            &self.db.url,
            &self.b2b.base_url,
            &self.erp.base_url,
        )?;
        let naive = match self.naive_b2b {
            Some(b2b) => Some((
                NaiveSyncer::new(
                    &e2e_setup::store(self.opts, &b2b.base_url)?,
                    &e2e_setup::source(&self.erp.base_url)?,
                )?,
                b2b,
            )),
            None => None,
        };
        let mut naive_ids: HashMap<String, u64> = HashMap::new();
        let mut results = Vec::new();
        for scenario in Scenario::ALL {
            match scenario {
                Scenario::SteadyState => self.change_erp().await?,
                Scenario::PersonEdits => self.person_edits(&naive_ids).await?,
                Scenario::InitialLoad | Scenario::NoChange => {}
            }
            let label = scenario.label(self.opts);
            tracing::info!(scenario = %label, "daemon: starting");
            let daemon = self.daemon(scenario, &daemon_settings).await?;
            tracing::info!(scenario = %label, calls = daemon.calls, took = %table::duration(daemon.wall), "daemon: done");
            results.push(daemon);
            if let Some((syncer, b2b)) = &naive {
                tracing::info!(scenario = %label, "naive: starting");
                let (result, tally) = self.naive(scenario, syncer, b2b).await?;
                tracing::info!(scenario = %label, calls = result.calls, took = %table::duration(result.wall), "naive: done");
                naive_ids.extend(tally.created_ids);
                results.push(result);
            }
        }
        Ok(results)
    }

    /// The ERP changes an owned field (the PO number) of `change_percent` of its invoices.
    async fn change_erp(&self) -> Result<(), BenchError> {
        for i in spread(self.opts.invoices, self.opts.change_percent, 0) {
            let patch = json!({ "purchaseOrders": [{ "number": format!("PO-CHANGED-{i}") }] });
            self.erp.change_erp_invoice(&remote_id(i), &patch).await?;
        }
        Ok(())
    }

    /// A person adds a note to `edit_percent` of the invoices in each B2B sandbox.
    async fn person_edits(&self, naive_ids: &HashMap<String, u64>) -> Result<(), BenchError> {
        let picked: Vec<String> = spread(self.opts.invoices, self.opts.edit_percent, 7)
            .into_iter()
            .map(remote_id)
            .collect();
        let patch = json!({ "personNote": "call before shipping", "editedBy": "a person" });
        // Only the ids: loading whole state rows would leave the harness's heap larger than
        // the daemon's next peak.
        let pool = self.db.pool(2).await?;
        let ids: Result<Vec<i64>, sqlx::Error> = sqlx::query_scalar(
            "SELECT b2b_invoice_id FROM invoice_state
              WHERE source = $1 AND external_id = ANY($2) AND b2b_invoice_id IS NOT NULL",
        )
        .bind(SOURCE)
        .bind(&picked)
        .fetch_all(&pool)
        .await;
        pool.close().await;
        for id in ids.map_err(BenchError::db("reading the edited invoices' B2B ids"))? {
            self.b2b
                .edit_details(u64::try_from(id).unwrap_or(0), &patch)
                .await?;
        }
        if let Some(b2b) = self.naive_b2b {
            for id in picked.iter().filter_map(|e| naive_ids.get(e)) {
                b2b.edit_details(*id, &patch).await?;
            }
        }
        Ok(())
    }

    async fn daemon(
        &self,
        scenario: Scenario,
        settings: &Settings,
    ) -> Result<ScenarioResult, BenchError> {
        self.b2b.reset_stats().await?;
        if scenario != Scenario::InitialLoad {
            // Cycles run minutes apart in production, and autovacuum analyzes the tables the
            // initial load filled by then; a benchmark seconds later would plan without
            // statistics. Not counted: it runs before the counters are read.
            self.db.analyze().await?;
        }
        let tables_before = self.db.table_reads().await?;
        let pg_before = self.db.settled_counters().await?;
        let statements_before = measure::statements_sent();
        measure::reset_peak_rss(None);
        let b2b_pid = self.b2b.pid();
        if let Some(pid) = b2b_pid {
            measure::reset_peak_rss(Some(pid));
        }
        let cpu_before = (
            measure::cpu_time(None),
            b2b_pid.and_then(|p| measure::cpu_time(Some(p))),
        );
        let pool = self.db.pool(8).await?;
        let engine = match Engine::new(settings, pool.clone()) {
            Ok(engine) => engine,
            Err(e) => {
                pool.close().await;
                return Err(e.into());
            }
        };
        let started = Instant::now();
        let report = engine.run_cycle(SOURCE).await;
        let wall = started.elapsed();
        let (cpu, b2b_cpu) = cpu_since(cpu_before, b2b_pid);
        let peak_rss_kib = measure::peak_rss_kib(None);
        let b2b_peak_rss_kib = b2b_pid.and_then(|p| measure::peak_rss_kib(Some(p)));
        let statements = measure::statements_sent()
            .zip(statements_before)
            .map(|(after, before)| after - before);
        drop(engine);
        pool.close().await;
        let report = report?;
        let pg = self.db.settled_counters().await?.since(&pg_before);
        let tables = reads_between(&tables_before, &self.db.table_reads().await?);
        let stats = self.b2b.stats().await?;
        let count = |n: i32| u64::try_from(n).unwrap_or(0);
        let (created, updated, failed) = (
            count(report.counts.created),
            count(report.counts.updated),
            count(report.counts.failed),
        );
        let mut failures = report.failures.clone();
        failures.extend(report.error.clone());
        let mut result = ScenarioResult {
            scenario,
            syncer: Syncer::Daemon,
            created,
            updated,
            unchanged: (self.opts.invoices as u64).saturating_sub(created + updated + failed),
            failed,
            calls: stats.total,
            calls_created: 0,
            calls_updated: 0,
            calls_unchanged: 0,
            routes: stats.routes(),
            too_many_requests: stats.too_many_requests,
            wall,
            budget_used: None,
            peak_rss_kib,
            b2b_peak_rss_kib,
            cpu,
            b2b_cpu,
            statements,
            pg: Some(pg),
            tables,
            failures,
        };
        attribute_daemon_calls(&mut result, &stats);
        result.budget_used = self.budget_used(result.calls, wall);
        Ok(result)
    }

    async fn naive(
        &self,
        scenario: Scenario,
        syncer: &NaiveSyncer,
        b2b: &Sandbox,
    ) -> Result<(ScenarioResult, NaiveTally), BenchError> {
        b2b.reset_stats().await?;
        measure::reset_peak_rss(None);
        if let Some(pid) = b2b.pid() {
            measure::reset_peak_rss(Some(pid));
        }
        let cpu_before = (
            measure::cpu_time(None),
            b2b.pid().and_then(|p| measure::cpu_time(Some(p))),
        );
        let started = Instant::now();
        let tally = syncer.pass().await?;
        let wall = started.elapsed();
        let (cpu, b2b_cpu) = cpu_since(cpu_before, b2b.pid());
        let peak_rss_kib = measure::peak_rss_kib(None);
        let b2b_peak_rss_kib = b2b.pid().and_then(|p| measure::peak_rss_kib(Some(p)));
        let stats = b2b.stats().await?;
        let result = ScenarioResult {
            scenario,
            syncer: Syncer::Naive,
            created: tally.created,
            updated: tally.updated,
            unchanged: tally.unchanged,
            failed: tally.failed,
            calls: stats.total,
            calls_created: tally.calls_created,
            calls_updated: tally.calls_updated,
            calls_unchanged: tally.calls_unchanged,
            routes: stats.routes(),
            too_many_requests: stats.too_many_requests,
            wall,
            budget_used: self.budget_used(stats.total, wall),
            peak_rss_kib,
            b2b_peak_rss_kib,
            cpu,
            b2b_cpu,
            statements: Some(0),
            pg: None,
            tables: Vec::new(),
            failures: tally.failures.clone(),
        };
        Ok((result, tally))
    }

    /// The share of the configured rate turned into calls, for scenarios the rate bounds.
    fn budget_used(&self, calls: u64, wall: Duration) -> Option<f64> {
        let burst = u64::from(crate::config::BudgetSettings::default().burst.get());
        if self.opts.fast || calls <= burst * 2 {
            return None;
        }
        let minutes = wall.as_secs_f64() / 60.0;
        Some(calls as f64 / (minutes * f64::from(self.opts.budget_rpm)))
    }
}

/// CPU used since `before` by this process and by process `pid`.
fn cpu_since(
    before: (Option<Duration>, Option<Duration>),
    pid: Option<u32>,
) -> (Option<Duration>, Option<Duration>) {
    let own = measure::cpu_time(None)
        .zip(before.0)
        .map(|(after, before)| after.saturating_sub(before));
    let child = pid
        .and_then(|p| measure::cpu_time(Some(p)))
        .zip(before.1)
        .map(|(after, before)| after.saturating_sub(before));
    (own, child)
}

/// Mutations are charged to their kind; reads (the batched fetch of current state, look-ups)
/// to the updates when there are any (that is what the daemon reads for), else to the creates,
/// else to the unchanged invoices.
fn attribute_daemon_calls(r: &mut ScenarioResult, stats: &Stats) {
    r.calls_created = stats.route("POST /ip/invoices");
    r.calls_updated = stats.route("PUT /ip/invoices/{id}");
    let reads = r.calls - r.calls_created - r.calls_updated;
    if r.updated > 0 {
        r.calls_updated += reads;
    } else if r.created > 0 {
        r.calls_created += reads;
    } else {
        r.calls_unchanged += reads;
    }
}

impl E2eReport {
    pub fn result(&self, scenario: Scenario, syncer: Syncer) -> Option<&ScenarioResult> {
        self.results
            .iter()
            .find(|r| r.scenario == scenario && r.syncer == syncer)
    }

    /// The run as Markdown: settings, the table, then calls by route and database work.
    pub fn markdown(&self) -> String {
        let o = &self.options;
        let mut out = String::new();
        let mode = if o.fast {
            format!(
                "fast: no rate limit at the sandbox, daemon budget out of the way, {} in flight",
                o.concurrency
            )
        } else {
            format!(
                "realistic: B2B sandbox {} requests/min, daemon budget {} requests/min (burst {}), {} in flight",
                o.sandbox_rate_limit,
                o.budget_rpm,
                crate::config::BudgetSettings::default().burst,
                o.concurrency
            )
        };
        out.push_str(&format!(
            "### bench e2e: {} invoices, {mode}; B2B latency {} ms ± {} ms\n\n",
            o.invoices,
            o.latency.as_millis(),
            o.jitter.as_millis()
        ));
        out.push_str(&format!("Machine: {}.\n\n", self.machine));
        out.push_str(
            "| scenario | syncer | created / updated / unchanged | B2B calls | calls per created | calls per updated | calls per unchanged | budget used | 429s | invoices/s | wall | CPU ms / invoice: syncer, B2B sandbox | peak RSS | PG statements / invoice | PG transactions / invoice |\n",
        );
        out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        let n = o.invoices as u64;
        for r in &self.results {
            let failed = if r.failed > 0 {
                format!(" ({} failed)", r.failed)
            } else {
                String::new()
            };
            out.push_str(&format!(
                "| {} | {} | {} / {} / {}{failed} | {} | {} | {} | {} | {} | {} | {} | {} | {}, {} | {} | {} | {} |\n",
                r.scenario.label(o),
                r.syncer.label(),
                r.created,
                r.updated,
                r.unchanged,
                r.calls,
                table::ratio(r.per_created()),
                table::ratio(r.per_updated()),
                table::ratio(r.per_unchanged()),
                table::percent(r.budget_used),
                r.too_many_requests,
                table::rate(n, r.wall),
                table::duration(r.wall),
                cpu_per(r.cpu, n),
                cpu_per(r.b2b_cpu, n),
                table::mib(r.peak_rss_kib),
                table::ratio(r.statements.and_then(|s| per(s, n))),
                table::ratio(r.pg.and_then(|p| per(u64::try_from(p.transactions()).unwrap_or(0), n))),
            ));
        }
        out.push_str("\nB2B calls by route, sandbox memory and database work:\n\n");
        for r in &self.results {
            let routes: Vec<String> = r
                .routes
                .iter()
                .map(|(route, n)| format!("`{route}` {n}"))
                .collect();
            let pg = r.pg.map_or_else(String::new, |p| {
                format!(
                    "; PostgreSQL: {} statements, {} transactions, tuples returned {} / fetched {} / inserted {} / updated {} / deleted {}",
                    r.statements.map_or_else(|| NONE.to_owned(), |s| s.to_string()),
                    p.transactions(),
                    p.tup_returned,
                    p.tup_fetched,
                    p.tup_inserted,
                    p.tup_updated,
                    p.tup_deleted
                )
            });
            out.push_str(&format!(
                "- {}, {}: {}; B2B sandbox peak RSS {}{pg}\n",
                r.scenario.label(o),
                r.syncer.label(),
                if routes.is_empty() {
                    "no calls".to_owned()
                } else {
                    routes.join(", ")
                },
                table::mib(r.b2b_peak_rss_kib),
            ));
            if !r.tables.is_empty() {
                let tables: Vec<String> = r.tables.iter().map(ToString::to_string).collect();
                out.push_str(&format!("  - tables read: {}\n", tables.join("; ")));
            }
            for f in r.failures.iter().take(3) {
                out.push_str(&format!("  - failure: {f}\n"));
            }
        }
        out.push_str(&format!(
            "- ERP sandbox peak RSS over the run: {}\n",
            table::mib(self.erp_peak_rss_kib)
        ));
        out
    }
}

/// Milliseconds of CPU per invoice of the set.
fn cpu_per(cpu: Option<Duration>, invoices: u64) -> String {
    cpu.map_or_else(
        || NONE.to_owned(),
        |c| format!("{:.2}", c.as_secs_f64() * 1000.0 / invoices.max(1) as f64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_evenly_and_never_picks_nothing() {
        assert_eq!(spread(1000, 1.0, 0).len(), 10);
        assert_eq!(spread(1000, 1.0, 0)[..3], [1, 101, 201]);
        assert_eq!(spread(50, 1.0, 0), vec![1]);
        let all = spread(10, 100.0, 3);
        let mut sorted = all.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, (1..=10).collect::<Vec<u64>>());
    }
}
