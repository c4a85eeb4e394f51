//! `bench planner`: the diff of N synthetic invoices against N state rows, the way a cycle
//! plans them: pages of records through `prepare_page` (map + fingerprint), `state::load_for_plan` (one
//! `= ANY($2)` query per page) and `sync::plan::plan`, nothing sent anywhere.
//!
//! The state rows are filled in bulk (UNNEST, batches of 10 000) with the fingerprints and
//! owned content the synthetic invoices produce, computed in Rust, so "unchanged" really means
//! equal fingerprints; then the invoices are streamed twice: unchanged, and with 1 % changed.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use sqlx::PgPool;

use super::database::{BenchDatabase, PgCounters};
use super::e2e::spread;
use super::measure::{self, Machine};
use super::synthetic;
use super::table::{self, NONE};
use super::BenchError;
use crate::config::{CustomerMapping, MappingSettings};
use crate::customers::CustomerResolver;
use crate::domain::fingerprint::canonical;
use crate::domain::{fingerprint, map_invoice, RawInvoice, RecordLocator, SourceInvoice};
use crate::store::state;
use crate::sync::plan::plan;
use crate::sync::prepare::{prepare_page, Prepared};

const SOURCE: &str = "erp";

#[derive(Debug, Clone)]
pub struct PlannerOptions {
    pub invoices: usize,
    /// Records per page, as an adapter would hand them over.
    pub page_size: usize,
    pub change_percent: f64,
    /// State rows per INSERT while filling.
    pub insert_batch: usize,
    pub database_url: String,
}

impl PlannerOptions {
    pub fn new(invoices: usize, database_url: &str) -> Self {
        Self {
            invoices,
            page_size: 1000,
            change_percent: 1.0,
            insert_batch: 10_000,
            database_url: database_url.to_owned(),
        }
    }
}

/// Where a run's time went.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phases {
    /// Building the synthetic records (the ERP adapter's work, not the planner's).
    pub generate: Duration,
    /// `SourceInvoice::parse` and `prepare_page` (map, fingerprint).
    pub prepare: Duration,
    /// Reading the page's state rows (one query per page).
    pub load: Duration,
    /// `sync::plan::plan`, including dropping the page.
    pub plan: Duration,
}

impl Phases {
    /// The planner's own path: everything but generating the records.
    pub fn planner(&self) -> Duration {
        self.prepare + self.load + self.plan
    }
}

/// One streaming pass over every invoice.
#[derive(Debug, Clone)]
pub struct PlannerRun {
    pub label: String,
    /// Planned actions by name (`skip`, `update`, ...).
    pub actions: BTreeMap<&'static str, u64>,
    pub wall: Duration,
    pub took: Phases,
    pub peak_rss_kib: Option<u64>,
    pub statements: Option<u64>,
    pub pg: PgCounters,
}

impl PlannerRun {
    pub fn count(&self, action: &str) -> u64 {
        self.actions.get(action).copied().unwrap_or(0)
    }
}

#[derive(Debug, Clone)]
pub struct PlannerReport {
    pub options: PlannerOptions,
    pub machine: Machine,
    pub fill: Duration,
    pub fill_peak_rss_kib: Option<u64>,
    pub state_rows: i64,
    pub table_bytes: i64,
    pub runs: Vec<PlannerRun>,
    pub unit_costs: UnitCosts,
}

/// Mean cost of each step for one invoice, timed one call at a time on one thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitCosts {
    pub invoices: u64,
    pub generate: Duration,
    pub parse: Duration,
    pub map: Duration,
    /// The canonical document built as JSON values (diffs and the ledger; the fingerprint streams it).
    pub canonical: Duration,
    pub fingerprint: Duration,
}

impl UnitCosts {
    /// Times each step for invoices `1..=count`.
    pub fn measure(count: u64, mapping: &MappingSettings) -> Result<Self, BenchError> {
        let mut c = Self {
            invoices: count,
            ..Self::default()
        };
        for i in 1..=count {
            let t = Instant::now();
            let raw = synthetic::raw_invoice(i, false);
            c.generate += t.elapsed();
            let t = Instant::now();
            let invoice =
                SourceInvoice::parse(SOURCE, RecordLocator::id(synthetic::external_id(i)), raw)
                    .map_err(|e| BenchError::Option(format!("a synthetic invoice failed: {e}")))?;
            c.parse += t.elapsed();
            let t = Instant::now();
            let desired = map_invoice(&invoice, &synthetic::company(i), mapping);
            c.map += t.elapsed();
            let t = Instant::now();
            drop(std::hint::black_box(canonical(&desired)));
            c.canonical += t.elapsed();
            let t = Instant::now();
            std::hint::black_box(fingerprint(&desired));
            c.fingerprint += t.elapsed();
        }
        Ok(c)
    }

    fn micros(&self, d: Duration) -> String {
        format!(
            "{:.1} µs",
            d.as_secs_f64() * 1e6 / self.invoices.max(1) as f64
        )
    }
}

/// Runs the benchmark in a database of its own, dropped afterwards.
pub async fn run(opts: &PlannerOptions) -> Result<PlannerReport, BenchError> {
    run_until(opts, std::future::pending()).await
}

/// [`run`], giving up when `stop` completes (e.g. on Ctrl-C); the database is removed either
/// way.
pub async fn run_until(
    opts: &PlannerOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<PlannerReport, BenchError> {
    if opts.invoices == 0 || opts.page_size == 0 || opts.insert_batch == 0 {
        return Err(BenchError::Option(
            "--invoices, --page-size and --insert-batch must be at least 1".to_owned(),
        ));
    }
    let db = BenchDatabase::create(&opts.database_url).await?;
    db.run_then_drop(with_database(opts, &db), stop).await
}

async fn with_database(
    opts: &PlannerOptions,
    db: &BenchDatabase,
) -> Result<PlannerReport, BenchError> {
    let mapping = MappingSettings::default();
    let pool = db.pool(4).await?;
    measure::reset_peak_rss(None);
    let started = Instant::now();
    let filled = fill(&pool, opts, &mapping).await;
    let fill_took = started.elapsed();
    let fill_peak_rss_kib = measure::peak_rss_kib(None);
    if let Err(e) = filled {
        pool.close().await;
        return Err(e);
    }
    let sizes: Result<(i64, i64), sqlx::Error> = sqlx::query_as(
        "SELECT count(*), pg_total_relation_size('invoice_state') FROM invoice_state",
    )
    .fetch_one(&pool)
    .await;
    pool.close().await;
    let (state_rows, table_bytes) = sizes.map_err(BenchError::db("sizing invoice_state"))?;
    tracing::info!(rows = state_rows, took = %table::duration(fill_took), "state filled");

    let changed: HashSet<u64> = spread(opts.invoices, opts.change_percent, 0)
        .into_iter()
        .collect();
    let mut runs = Vec::new();
    let none = HashSet::new();
    for (label, changed) in [
        ("nothing changed".to_owned(), &none),
        (format!("{} % changed", opts.change_percent), &changed),
    ] {
        tracing::info!(run = %label, "planning");
        let run = stream(db, opts, &mapping, &label, changed).await?;
        tracing::info!(run = %label, took = %table::duration(run.wall), "planned");
        runs.push(run);
    }
    let unit_costs = UnitCosts::measure((opts.invoices as u64).min(20_000), &mapping)?;
    Ok(PlannerReport {
        unit_costs,
        options: opts.clone(),
        machine: Machine::describe(),
        fill: fill_took,
        fill_peak_rss_kib,
        state_rows,
        table_bytes,
        runs,
    })
}

fn resolver() -> Result<CustomerResolver, BenchError> {
    let map = (0..synthetic::CUSTOMERS)
        .map(|i| (synthetic::customer(i), synthetic::company(i)))
        .collect();
    CustomerResolver::new(SOURCE, CustomerMapping::Static(map), None, None)
        .map_err(|e| BenchError::Option(e.to_string()))
}

/// Invoices `first..=last` as an adapter hands them over (the changed version of those in
/// `changed`): not yet parsed.
fn records(first: u64, last: u64, changed: &HashSet<u64>) -> Vec<RawInvoice> {
    (first..=last)
        .map(|i| synthetic::raw_invoice(i, changed.contains(&i)))
        .collect()
}

/// Parses and prepares raw records the way a cycle prepares a page (map, customers,
/// fingerprint).
async fn prepare(
    raw: Vec<RawInvoice>,
    customers: &CustomerResolver,
    mapping: &MappingSettings,
) -> Result<Vec<Prepared>, BenchError> {
    let parsed = raw
        .into_iter()
        .map(|r| {
            let locator = RecordLocator::id(r.external_id.clone().unwrap_or_default());
            SourceInvoice::parse(SOURCE, locator, r)
        })
        .collect();
    let out = prepare_page(parsed, customers, mapping, None)
        .await
        .map_err(|e| BenchError::Option(e.to_string()))?;
    out.into_iter()
        .map(|p| p.map_err(|e| BenchError::Option(format!("a synthetic invoice failed: {e}"))))
        .collect()
}

/// The state rows B2B would hold after syncing every (unchanged) invoice, in batches of
/// `insert_batch` rows, prepared a page at a time so the fill stays small in memory.
async fn fill(
    pool: &PgPool,
    opts: &PlannerOptions,
    mapping: &MappingSettings,
) -> Result<(), BenchError> {
    let customers = resolver()?;
    let none = HashSet::new();
    let n = opts.invoices as u64;
    let mut first = 1;
    while first <= n {
        let last = (first + opts.insert_batch as u64 - 1).min(n);
        let rows = (last - first + 1) as usize;
        let mut ids = Vec::with_capacity(rows);
        let mut numbers = Vec::with_capacity(rows);
        let mut b2b_ids: Vec<i64> = Vec::with_capacity(rows);
        let mut fingerprints = Vec::with_capacity(rows);
        let mut owned = Vec::with_capacity(rows);
        let mut open: Vec<Decimal> = Vec::with_capacity(rows);
        let mut page_first = first;
        while page_first <= last {
            let page_last = (page_first + opts.page_size as u64 - 1).min(last);
            let page = prepare(records(page_first, page_last, &none), &customers, mapping).await?;
            for p in page {
                // B2B ids as the sandbox hands them out: 1, 2, 3, ...
                b2b_ids.push(i64::try_from(first + ids.len() as u64).unwrap_or(i64::MAX));
                ids.push(p.external_id().to_owned());
                numbers.push(p.invoice_number().to_owned());
                fingerprints.push(p.fingerprint.as_str().to_owned());
                // What the engine stores as `owned` after a successful write.
                owned.push(serde_json::to_string(&canonical(&p.desired)).unwrap_or_default());
                open.push(p.desired.open_balance);
            }
            page_first = page_last + 1;
        }
        sqlx::query(
            "INSERT INTO invoice_state (source, external_id, invoice_number, b2b_invoice_id,
                    fingerprint, owned, written_open, status, last_synced_at, last_attempted_at,
                    attempts)
             SELECT $1, e, n, b, f, o::jsonb, w, 'synced', now(), now(), 0
               FROM UNNEST($2::text[], $3::text[], $4::int8[], $5::text[], $6::text[],
                           $7::numeric[]) AS t(e, n, b, f, o, w)",
        )
        .bind(SOURCE)
        .bind(&ids)
        .bind(&numbers)
        .bind(&b2b_ids)
        .bind(&fingerprints)
        .bind(&owned)
        .bind(&open)
        .execute(pool)
        .await
        .map_err(BenchError::db("filling invoice_state"))?;
        first = last + 1;
    }
    // What autovacuum would have done to a table this size by the time a daemon reads it.
    sqlx::query("VACUUM ANALYZE invoice_state")
        .execute(pool)
        .await
        .map_err(BenchError::db("analyzing invoice_state"))?;
    Ok(())
}

async fn stream(
    db: &BenchDatabase,
    opts: &PlannerOptions,
    mapping: &MappingSettings,
    label: &str,
    changed: &HashSet<u64>,
) -> Result<PlannerRun, BenchError> {
    let customers = resolver()?;
    let pg_before = db.settled_counters().await?;
    let statements_before = measure::statements_sent();
    measure::reset_peak_rss(None);
    let pool = db.pool(4).await?;
    let mut actions: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut took = Phases::default();
    let n = opts.invoices as u64;
    let started = Instant::now();
    let mut first = 1;
    let mut result = Ok(());
    while first <= n {
        let last = (first + opts.page_size as u64 - 1).min(n);
        let t = Instant::now();
        let raw = records(first, last, changed);
        took.generate += t.elapsed();
        let t = Instant::now();
        let page = match prepare(raw, &customers, mapping).await {
            Ok(page) => page,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        took.prepare += t.elapsed();
        let (ids, fingerprints): (Vec<String>, Vec<String>) = page
            .iter()
            .map(|p| {
                (
                    p.external_id().to_owned(),
                    p.fingerprint.as_str().to_owned(),
                )
            })
            .unzip();
        let t = Instant::now();
        // As the engine reads a page's state.
        let states = state::load_for_plan(&pool, SOURCE, &ids, &fingerprints)
            .await
            .map_err(BenchError::from);
        let states = match states {
            Ok(states) => states,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        took.load += t.elapsed();
        let t = Instant::now();
        for action in plan(page, &states, chrono::Utc::now()) {
            *actions.entry(action.name()).or_default() += 1;
        }
        took.plan += t.elapsed();
        first = last + 1;
    }
    let wall = started.elapsed();
    let peak_rss_kib = measure::peak_rss_kib(None);
    let statements = measure::statements_sent()
        .zip(statements_before)
        .map(|(after, before)| after - before);
    pool.close().await;
    result?;
    let pg = db.settled_counters().await?.since(&pg_before);
    Ok(PlannerRun {
        label: label.to_owned(),
        actions,
        wall,
        took,
        peak_rss_kib,
        statements,
        pg,
    })
}

impl PlannerReport {
    pub fn markdown(&self) -> String {
        let o = &self.options;
        let mut out = format!(
            "### bench planner: {} invoices against {} state rows, pages of {}\n\n",
            o.invoices, self.state_rows, o.page_size
        );
        out.push_str(&format!("Machine: {}.\n\n", self.machine));
        out.push_str(&format!(
            "Fill (not part of the planning time): {} state rows in {} ({} rows/s; batches of {}), table with indexes {:.0} MiB, peak RSS while filling {}.\n\n",
            self.state_rows,
            table::duration(self.fill),
            table::rate(u64::try_from(self.state_rows).unwrap_or(0), self.fill),
            o.insert_batch,
            self.table_bytes as f64 / 1_048_576.0,
            table::mib(self.fill_peak_rss_kib),
        ));
        out.push_str("| run | actions | wall | invoices/s | planner path | parse + map + fingerprint | state read | plan | generating records | peak RSS | PG statements | PG tuples fetched |\n");
        out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for r in &self.runs {
            let actions: BTreeSet<String> = r
                .actions
                .iter()
                .map(|(name, n)| format!("{name} {n}"))
                .collect();
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                r.label,
                actions.into_iter().collect::<Vec<_>>().join(", "),
                table::duration(r.wall),
                table::rate(o.invoices as u64, r.wall),
                table::duration(r.took.planner()),
                table::duration(r.took.prepare),
                table::duration(r.took.load),
                table::duration(r.took.plan),
                table::duration(r.took.generate),
                table::mib(r.peak_rss_kib),
                r.statements
                    .map_or_else(|| NONE.to_owned(), |s| s.to_string()),
                r.pg.tup_fetched,
            ));
        }
        let u = &self.unit_costs;
        out.push_str(&format!(
            "\nPer invoice, mean of {} timed one at a time: generating the record {}, `SourceInvoice::parse` {}, `map_invoice` {}, `fingerprint` {} (streamed; building the canonical document as JSON values, which only an update's diff and the ledger do, {}); `state::load_for_plan` {:.1} ms per page of {} in the first run.\n",
            u.invoices,
            u.micros(u.generate),
            u.micros(u.parse),
            u.micros(u.map),
            u.micros(u.fingerprint),
            u.micros(u.canonical),
            self.runs.first().map_or(0.0, |r| r.took.load.as_secs_f64() * 1000.0
                / (o.invoices as f64 / o.page_size as f64).ceil().max(1.0)),
            o.page_size,
        ));
        out
    }
}
