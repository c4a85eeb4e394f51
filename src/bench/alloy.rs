//! `bench alloy-scan`: what a full-scan cycle of an Alloy source costs when nothing changed
//! (issue #12). N invoices over C customers in the sandbox's Alloy API, an empty B2B sandbox
//! (C companies), a fresh PostgreSQL database:
//! 1. setup: the initial load (every invoice created; the ERP budget lifted), reported too;
//! 2. a full scan with nothing changed at Alloy's 150 requests a minute (the sandbox enforcing
//!    it, the daemon's default budget);
//! 3. the same with the budget lifted (the sandbox's limit off), so the daemon's own costs show.
//!
//! Reported per scan: ERP requests by route (the sandbox's own counts), 429s, B2B calls, wall
//! time, the ERP request rate, this process's CPU per invoice (the sandboxes run as child
//! processes by default, so it is the daemon's alone), its peak RSS, SQL statements, and the
//! Alloy sandbox's counters of lookups by remoteId, clamped pages and ignored parameters.

use std::collections::BTreeMap;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::{Duration, Instant};

use secrecy::SecretString;

use super::database::BenchDatabase;
use super::measure::{self, Machine};
use super::sandboxes::{B2bShape, Sandbox, SandboxLaunch, STORE_HASH, TOKEN};
use super::table::{self, NONE};
use super::BenchError;
use crate::config::{
    AdapterSettings, B2bAuth, B2bSettings, BudgetSettings, CustomerMapping, DaemonSettings,
    DatabaseSettings, EngineSettings, HttpSettings, LogFormat, RetrySettings, Settings,
    SourceSettings, StoreSettings, TelemetrySettings, UnifiedPreset, UnifiedSettings,
    ALLOY_REQUESTS_PER_MINUTE,
};
use crate::sandbox::unified::{
    AlloyCounters, AlloyVersion, DEFAULT_API_KEY, DEFAULT_CREDENTIAL_ID,
};
use crate::sync::engine::Engine;

const SOURCE: &str = "alloy";
const STORE: &str = "bench";
/// "No limit" for the daemon's budgets.
const LIFTED_RPM: u32 = 6_000_000;

#[derive(Debug, Clone)]
pub struct AlloyScanOptions {
    pub invoices: usize,
    pub customers: usize,
    pub version: AlloyVersion,
    /// Alloy's requests per minute, enforced by the sandbox and kept by the daemon's budget.
    pub rate_limit: u32,
    pub database_url: String,
    pub launch: SandboxLaunch,
}

impl AlloyScanOptions {
    /// 2024-03, 300 customers, Alloy's 150 requests a minute.
    pub fn new(invoices: usize, database_url: &str, launch: SandboxLaunch) -> Self {
        Self {
            invoices,
            customers: 300,
            version: AlloyVersion::V2024_03,
            rate_limit: ALLOY_REQUESTS_PER_MINUTE,
            database_url: database_url.to_owned(),
            launch,
        }
    }

    fn check(&self) -> Result<(), BenchError> {
        if self.invoices == 0 || self.customers == 0 || self.rate_limit == 0 {
            return Err(BenchError::Option(
                "--invoices, --customers and --rate-limit must be at least 1".to_owned(),
            ));
        }
        Ok(())
    }
}

/// What one cycle cost.
#[derive(Debug, Clone)]
pub struct ScanResult {
    pub label: String,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub failed: u64,
    /// ERP requests by route, as the Alloy sandbox counted them.
    pub erp_routes: BTreeMap<String, u64>,
    pub erp_requests: u64,
    pub erp_429s: u64,
    pub b2b_calls: u64,
    pub wall: Duration,
    pub cpu: Option<Duration>,
    pub peak_rss_kib: Option<u64>,
    pub statements: Option<u64>,
    pub counters: AlloyCounters,
    pub budget: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct AlloyScanReport {
    pub options: AlloyScanOptions,
    pub machine: Machine,
    pub results: Vec<ScanResult>,
}

pub async fn run(opts: &AlloyScanOptions) -> Result<AlloyScanReport, BenchError> {
    run_until(opts, std::future::pending()).await
}

/// [`run`], giving up when `stop` completes; the database and sandboxes are removed either way.
pub async fn run_until(
    opts: &AlloyScanOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<AlloyScanReport, BenchError> {
    opts.check()?;
    let db = BenchDatabase::create(&opts.database_url).await?;
    db.run_then_drop(with_database(opts, &db), stop).await
}

async fn with_database(
    opts: &AlloyScanOptions,
    db: &BenchDatabase,
) -> Result<AlloyScanReport, BenchError> {
    let erp =
        Sandbox::start_alloy(&opts.launch, opts.version, opts.invoices, opts.customers).await?;
    let shape = B2bShape {
        rate_limit: 0,
        latency: Duration::ZERO,
        jitter: Duration::ZERO,
        rng_seed: 42,
    };
    let b2b = match Sandbox::start_b2b_with_companies(&opts.launch, shape, opts.customers).await {
        Ok(b2b) => b2b,
        Err(e) => {
            erp.stop().await;
            return Err(e);
        }
    };
    let result = scans(opts, db, &erp, &b2b).await;
    erp.stop().await;
    b2b.stop().await;
    Ok(AlloyScanReport {
        options: opts.clone(),
        machine: Machine::describe(),
        results: result?,
    })
}

async fn scans(
    opts: &AlloyScanOptions,
    db: &BenchDatabase,
    erp: &Sandbox,
    b2b: &Sandbox,
) -> Result<Vec<ScanResult>, BenchError> {
    let mut results = Vec::new();
    tracing::info!(invoices = opts.invoices, "initial load (setup)");
    let load = cycle(opts, db, erp, b2b, "initial load (setup)", None).await?;
    results.push(load);
    db.analyze().await?;
    erp.set_rate_limit(opts.rate_limit).await?;
    tracing::info!(
        rate_limit = opts.rate_limit,
        "full scan, nothing changed, at Alloy's rate"
    );
    let label = format!(
        "full scan, nothing changed, {} requests/min",
        opts.rate_limit
    );
    results.push(cycle(opts, db, erp, b2b, &label, Some(opts.rate_limit)).await?);
    erp.set_rate_limit(0).await?;
    tracing::info!("full scan, nothing changed, budget lifted");
    let label = "full scan, nothing changed, budget lifted".to_owned();
    results.push(cycle(opts, db, erp, b2b, &label, None).await?);
    Ok(results)
}

/// One `Engine::run_cycle` with a new engine and pool, measured.
async fn cycle(
    opts: &AlloyScanOptions,
    db: &BenchDatabase,
    erp: &Sandbox,
    b2b: &Sandbox,
    label: &str,
    budget: Option<u32>,
) -> Result<ScanResult, BenchError> {
    let settings = settings(opts, &db.url, &b2b.base_url, &erp.base_url, budget)?;
    erp.reset_stats().await?;
    b2b.reset_stats().await?;
    measure::reset_peak_rss(None);
    let statements_before = measure::statements_sent();
    let cpu_before = measure::cpu_time(None);
    let pool = db.pool(8).await?;
    let engine = match Engine::new(&settings, pool.clone()) {
        Ok(engine) => engine,
        Err(e) => {
            pool.close().await;
            return Err(e.into());
        }
    };
    let started = Instant::now();
    let report = engine.run_cycle(SOURCE).await;
    let wall = started.elapsed();
    let cpu = measure::cpu_time(None)
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let peak_rss_kib = measure::peak_rss_kib(None);
    let statements = measure::statements_sent()
        .zip(statements_before)
        .map(|(after, before)| after - before);
    drop(engine);
    pool.close().await;
    let report = report?;
    if let Some(error) = &report.error {
        return Err(BenchError::Sandbox(format!(
            "{label}: the cycle failed: {error}"
        )));
    }
    let erp_stats = erp.stats().await?;
    let b2b_stats = b2b.stats().await?;
    let count = |n: i32| u64::try_from(n).unwrap_or(0);
    Ok(ScanResult {
        label: label.to_owned(),
        created: count(report.counts.created),
        updated: count(report.counts.updated),
        unchanged: count(report.counts.unchanged),
        failed: count(report.counts.failed),
        erp_routes: erp_stats.routes().into_iter().collect(),
        erp_requests: erp_stats.total,
        erp_429s: erp_stats.too_many_requests,
        b2b_calls: b2b_stats.total,
        wall,
        cpu,
        peak_rss_kib,
        statements,
        counters: erp.alloy_counters().await?,
        budget,
    })
}

fn non_zero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// The store with its budget out of the way, the Alloy source (its budget `budget` requests a
/// minute, or lifted), customers by a static map of the seeded companies.
fn settings(
    opts: &AlloyScanOptions,
    database_url: &str,
    b2b_base_url: &str,
    erp_base_url: &str,
    budget: Option<u32>,
) -> Result<Settings, BenchError> {
    let url = |u: &str| {
        u.parse()
            .map_err(|e| BenchError::Sandbox(format!("sandbox base URL {u}: {e}")))
    };
    let store = StoreSettings {
        name: STORE.to_owned(),
        b2b: B2bSettings {
            base_url: url(b2b_base_url)?,
            auth: B2bAuth::XAuthToken {
                store_hash: STORE_HASH.to_owned(),
                token: SecretString::from(TOKEN),
            },
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            page_size: crate::config::DEFAULT_B2B_PAGE_SIZE,
        },
        budget: BudgetSettings {
            requests_per_minute: non_zero(LIFTED_RPM),
            burst: non_zero(1000),
            max_concurrent: NonZeroUsize::new(4).unwrap_or(NonZeroUsize::MIN),
            ..BudgetSettings::default()
        },
        retry: RetrySettings::default(),
    };
    let preset = match opts.version {
        AlloyVersion::V2024_03 => UnifiedPreset::Alloy2024_03,
        AlloyVersion::V2023_12 => UnifiedPreset::Alloy2023_12,
    };
    let mut unified = UnifiedSettings::alloy(
        preset,
        url(erp_base_url)?,
        SecretString::from(DEFAULT_API_KEY),
        DEFAULT_CREDENTIAL_ID.to_owned(),
        HttpSettings {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            retry: RetrySettings::default(),
            page_size: non_zero(100),
        },
    );
    unified.api.requests_per_minute = Some(non_zero(budget.unwrap_or(LIFTED_RPM)));
    let customers = (1..=opts.customers)
        .map(|k| (format!("CUST-{k:05}"), k.to_string()))
        .collect();
    let source = SourceSettings {
        customers: CustomerMapping::Static(customers),
        ..SourceSettings::with_defaults(SOURCE, STORE, AdapterSettings::Unified(Box::new(unified)))
    };
    Ok(Settings {
        telemetry: TelemetrySettings {
            log_filter: "warn".to_owned(),
            log_format: LogFormat::Auto,
        },
        database: Some(DatabaseSettings {
            url: SecretString::from(database_url),
            max_connections: non_zero(8),
        }),
        stores: BTreeMap::from([(STORE.to_owned(), store)]),
        sources: BTreeMap::from([(SOURCE.to_owned(), source)]),
        engine: EngineSettings::default(),
        daemon: DaemonSettings::default(),
    })
}

impl AlloyScanReport {
    pub fn result(&self, index: usize) -> Option<&ScanResult> {
        self.results.get(index)
    }

    /// The run as Markdown.
    pub fn markdown(&self) -> String {
        let o = &self.options;
        let n = o.invoices as u64;
        let mut out = format!(
            "### bench alloy-scan: {} invoices over {} customers, Alloy {} (pages of 100)\n\n",
            o.invoices,
            o.customers,
            o.version.as_str()
        );
        out.push_str(&format!("Machine: {}.\n\n", self.machine));
        out.push_str(
            "| cycle | created / updated / unchanged | ERP requests | ERP 429s | B2B calls | wall | ERP requests/min | CPU µs / invoice | peak RSS | PG statements |\n",
        );
        out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
        for r in &self.results {
            let per_minute = if r.wall.as_secs_f64() > 0.0 {
                format!("{:.1}", r.erp_requests as f64 * 60.0 / r.wall.as_secs_f64())
            } else {
                NONE.to_owned()
            };
            let failed = if r.failed > 0 {
                format!(" ({} failed)", r.failed)
            } else {
                String::new()
            };
            out.push_str(&format!(
                "| {} | {} / {} / {}{failed} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                r.label,
                r.created,
                r.updated,
                r.unchanged,
                r.erp_requests,
                r.erp_429s,
                r.b2b_calls,
                table::duration(r.wall),
                per_minute,
                r.cpu.map_or_else(
                    || NONE.to_owned(),
                    |c| format!("{:.1}", c.as_secs_f64() * 1e6 / n.max(1) as f64)
                ),
                table::mib(r.peak_rss_kib),
                r.statements
                    .map_or_else(|| NONE.to_owned(), |s| s.to_string()),
            ));
        }
        out.push_str("\nERP requests by route, and what Alloy's clients should not do:\n\n");
        for r in &self.results {
            let routes: Vec<String> = r
                .erp_routes
                .iter()
                .map(|(route, n)| format!("`{route}` {n}"))
                .collect();
            let c = &r.counters;
            out.push_str(&format!(
                "- {}: {}; lookups by remoteId {}, clamped pages {}, ignored parameters {}\n",
                r.label,
                routes.join(", "),
                c.remote_id_lookups,
                c.clamped_pages,
                c.ignored_params.values().sum::<u64>()
            ));
        }
        out
    }
}
