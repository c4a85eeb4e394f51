//! `bench freshness`: what the update freshness bound costs and what it guarantees.
//!
//! For each bound: a fresh database and sandboxes, N invoices loaded into B2B (with a budget out
//! of the way, not measured), then every ERP invoice changed, then one cycle of N updates at the
//! daemon's default budget (120 a minute, bursts of 4) with `update_freshness_secs` at the
//! bound. Measured: B2B reads and PUTs (the sandbox's counters), calls per update, and the age
//! of the B2B state each PUT was built from when it went out (the ledger's `state_age_ms`: max,
//! p99, median), never above the bound.

use std::time::{Duration, Instant};

use serde_json::json;

use super::database::BenchDatabase;
use super::e2e::{E2eOptions, STORE_RATE_LIMIT};
use super::e2e_setup::{self, SOURCE};
use super::measure::Machine;
use super::sandboxes::{B2bShape, Sandbox, SandboxLaunch};
use super::BenchError;
use crate::sandbox::unified::remote_id;
use crate::sync::engine::Engine;

#[derive(Debug, Clone)]
pub struct FreshnessOptions {
    pub invoices: usize,
    pub bounds: Vec<Duration>,
    pub latency: Duration,
    pub jitter: Duration,
    pub database_url: String,
    pub launch: SandboxLaunch,
}

#[derive(Debug, Clone)]
pub struct FreshnessResult {
    pub bound: Duration,
    pub updated: u64,
    pub reads: u64,
    pub puts: u64,
    pub calls: u64,
    pub age_max_ms: i64,
    pub age_p99_ms: i64,
    pub age_median_ms: i64,
    pub wall: Duration,
    pub failures: Vec<String>,
}

impl FreshnessResult {
    pub fn calls_per_update(&self) -> f64 {
        self.calls as f64 / self.updated.max(1) as f64
    }
}

#[derive(Debug, Clone)]
pub struct FreshnessReport {
    pub options: FreshnessOptions,
    pub machine: Machine,
    pub results: Vec<FreshnessResult>,
}

/// Runs every bound in turn, each on its own database and sandboxes (removed afterwards).
pub async fn run(opts: &FreshnessOptions) -> Result<FreshnessReport, BenchError> {
    if opts.invoices == 0 || opts.bounds.is_empty() {
        return Err(BenchError::Option(
            "--invoices must be at least 1 and --bounds name at least one bound".to_owned(),
        ));
    }
    let mut results = Vec::new();
    for bound in &opts.bounds {
        let db = BenchDatabase::create(&opts.database_url).await?;
        let result = db
            .run_then_drop(one_bound(opts, &db, *bound), std::future::pending())
            .await;
        results.push(result?);
    }
    Ok(FreshnessReport {
        options: opts.clone(),
        machine: Machine::describe(),
        results,
    })
}

async fn one_bound(
    opts: &FreshnessOptions,
    db: &BenchDatabase,
    bound: Duration,
) -> Result<FreshnessResult, BenchError> {
    let erp = Sandbox::start_erp(&opts.launch, opts.invoices).await?;
    // No limit at the sandbox: the daemon's own budget is what paces it here.
    let shape = B2bShape {
        rate_limit: 0,
        latency: opts.latency,
        jitter: opts.jitter,
        rng_seed: 42,
    };
    let b2b = match Sandbox::start_b2b(&opts.launch, shape).await {
        Ok(b2b) => b2b,
        Err(e) => {
            erp.stop().await;
            return Err(e);
        }
    };
    let result = measure_bound(opts, db, bound, &erp, &b2b).await;
    erp.stop().await;
    b2b.stop().await;
    result
}

async fn measure_bound(
    opts: &FreshnessOptions,
    db: &BenchDatabase,
    bound: Duration,
    erp: &Sandbox,
    b2b: &Sandbox,
) -> Result<FreshnessResult, BenchError> {
    let e2e = |fast: bool| E2eOptions {
        fast,
        latency: opts.latency,
        jitter: opts.jitter,
        sandbox_rate_limit: STORE_RATE_LIMIT,
        naive: false,
        ..E2eOptions::new(opts.invoices, &opts.database_url, opts.launch.clone())
    };
    // The load, not measured.
    let load = e2e_setup::settings(&e2e(true), &db.url, &b2b.base_url, &erp.base_url)?;
    cycle(db, &load).await?;
    for i in 1..=opts.invoices {
        let patch = json!({ "purchaseOrders": [{ "number": format!("PO-FRESH-{i}") }] });
        erp.change_erp_invoice(&remote_id(i as u64), &patch).await?;
    }
    let mut settings = e2e_setup::settings(&e2e(false), &db.url, &b2b.base_url, &erp.base_url)?;
    for source in settings.sources.values_mut() {
        source.update_freshness = bound;
    }
    b2b.reset_stats().await?;
    let started = Instant::now();
    let report = cycle(db, &settings).await?;
    let wall = started.elapsed();
    let stats = b2b.stats().await?;
    let pool = db.pool(2).await?;
    type Ages = (Option<i32>, Option<i32>, Option<i32>);
    let ages: Result<Ages, sqlx::Error> = sqlx::query_as(
        "SELECT max(state_age_ms),
                percentile_disc(0.99) WITHIN GROUP (ORDER BY state_age_ms),
                percentile_disc(0.5) WITHIN GROUP (ORDER BY state_age_ms)
           FROM ledger WHERE run_id = $1 AND op = 'update' AND state = 'succeeded'",
    )
    .bind(report.run_id)
    .fetch_one(&pool)
    .await;
    pool.close().await;
    let (max, p99, median) = ages.map_err(|e| BenchError::Database(e.to_string()))?;
    let mut failures = report.failures.clone();
    failures.extend(report.error.clone());
    Ok(FreshnessResult {
        bound,
        updated: u64::try_from(report.counts.updated).unwrap_or(0),
        reads: stats.route("GET /ip/invoices"),
        puts: stats.route("PUT /ip/invoices/{id}"),
        calls: stats.total,
        age_max_ms: max.map_or(0, i64::from),
        age_p99_ms: p99.map_or(0, i64::from),
        age_median_ms: median.map_or(0, i64::from),
        wall,
        failures,
    })
}

async fn cycle(
    db: &BenchDatabase,
    settings: &crate::config::Settings,
) -> Result<crate::sync::engine::RunReport, BenchError> {
    let pool = db.pool(8).await?;
    let engine = Engine::new(settings, pool.clone())?;
    let report = engine.run_cycle(SOURCE).await;
    drop(engine);
    pool.close().await;
    Ok(report?)
}

impl FreshnessReport {
    pub fn markdown(&self) -> String {
        let o = &self.options;
        let mut out = format!(
            "{} updates at the daemon's default budget (120/min, bursts of 4, 4 in flight), B2B latency {} ± {} ms; {}\n\n",
            o.invoices,
            o.latency.as_millis(),
            o.jitter.as_millis(),
            self.machine
        );
        out.push_str(
            "| update_freshness_secs | updated | B2B reads | PUTs | calls per update | state age at PUT: max / p99 / median | wall |\n",
        );
        out.push_str("|---|---:|---:|---:|---:|---|---:|\n");
        for r in &self.results {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {:.3} | {} / {} / {} ms | {:.1} s |\n",
                r.bound.as_secs_f64(),
                r.updated,
                r.reads,
                r.puts,
                r.calls_per_update(),
                r.age_max_ms,
                r.age_p99_ms,
                r.age_median_ms,
                r.wall.as_secs_f64(),
            ));
        }
        for r in &self.results {
            for f in r.failures.iter().take(3) {
                out.push_str(&format!("\n- bound {:?}: {f}", r.bound));
            }
        }
        out.push('\n');
        out
    }
}
