//! `bench e2e` and `bench planner`: what they measure and how is in BENCHMARKS.md.

use std::time::Duration;

use anyhow::Context;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use b2b_invoice_sync::bench::alloy::{self, AlloyScanOptions};
use b2b_invoice_sync::bench::e2e::{self, E2eOptions};
use b2b_invoice_sync::bench::freshness::{self, FreshnessOptions};
use b2b_invoice_sync::bench::measure::StatementCounter;
use b2b_invoice_sync::bench::planner::{self, PlannerOptions};
use b2b_invoice_sync::bench::replicas::{self, ReplicasOptions};
use b2b_invoice_sync::bench::{BenchError, SandboxLaunch};
use b2b_invoice_sync::config::{BudgetSettings, LogFormat};
use b2b_invoice_sync::demo::DEFAULT_DATABASE_URL;
use b2b_invoice_sync::sandbox::unified::AlloyVersion;
use b2b_invoice_sync::telemetry;

use super::UsageError;

/// Progress lines of the benchmark itself; `RUST_LOG` overrides.
const BENCH_LOG_FILTER: &str = "warn,b2b_invoice_sync::bench=info";

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// The daemon end to end against the ERP and B2B sandboxes and a fresh PostgreSQL
    /// database: initial load, 1 % changed, no change, 5 % edited by a person; next to a naive
    /// syncer. Prints a Markdown table.
    E2e(E2eArgs),
    /// The planner: N synthetic invoices diffed against N state rows (nothing changed, then
    /// 1 % changed). Prints a Markdown table.
    Planner(PlannerArgs),
    /// An Alloy source's full-scan cycle over N unchanged invoices: ERP requests, wall time at
    /// Alloy's rate limit and with the budget lifted, B2B calls, CPU, peak RSS. Prints a
    /// Markdown table.
    AlloyScan(AlloyScanArgs),
    /// N updates at the daemon's default budget for each update freshness bound: calls per
    /// update and the age of the state each PUT was built from. Prints a Markdown table.
    Freshness(FreshnessArgs),
    /// Many stores across 1, 2, 4 ... replicas (real `run` processes of this executable) on one
    /// database: time to the first full sync, CPU, RSS and PostgreSQL connections per replica,
    /// each store's budget use. Prints a Markdown table.
    Replicas(ReplicasArgs),
}

/// The B2B sandbox's latency, as the realistic runs take it (B2B Edition's own, about 80 ms).
#[derive(Debug, clap::Args)]
pub struct LatencyArgs {
    /// Latency of every B2B call in milliseconds.
    #[arg(long, default_value_t = 80)]
    latency_ms: u64,
    /// Uniform random extra latency in milliseconds.
    #[arg(long, default_value_t = 40)]
    jitter_ms: u64,
}

#[derive(Debug, clap::Args)]
pub struct ReplicasArgs {
    /// Stores (each with one `files` source).
    #[arg(long, default_value_t = 50)]
    stores: usize,
    /// Invoices per store.
    #[arg(long, default_value_t = 1000)]
    invoices: usize,
    /// One run per count of replicas.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2, 4])]
    replicas: Vec<usize>,
    #[command(flatten)]
    latency: LatencyArgs,
    /// A PostgreSQL server (the benchmark creates its own database per run and drops it).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, default_value = DEFAULT_DATABASE_URL)]
    database_url: String,
}

#[derive(Debug, clap::Args)]
pub struct AlloyScanArgs {
    /// Invoices in the ERP.
    #[arg(long, default_value_t = 50_000)]
    invoices: usize,
    /// Customers the invoices are spread over (and B2B companies).
    #[arg(long, default_value_t = 300)]
    customers: usize,
    /// Alloy's API version: 2024-03 (page numbers) or 2023-12 (cursors).
    #[arg(long, default_value = "2024-03", value_parser = ["2024-03", "2023-12"])]
    api_version: String,
    /// Alloy's requests per minute (the sandbox enforces it; the daemon's budget keeps to it).
    #[arg(long, default_value_t = 150)]
    rate_limit: u32,
    /// Run the sandboxes in this process instead of child processes (their memory and CPU
    /// then count in the daemon's).
    #[arg(long)]
    in_process: bool,
    /// A PostgreSQL server (the benchmark creates its own database and drops it afterwards).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, default_value = DEFAULT_DATABASE_URL)]
    database_url: String,
}

#[derive(Debug, clap::Args)]
pub struct FreshnessArgs {
    /// Invoices updated per bound.
    #[arg(long, default_value_t = 200)]
    invoices: usize,
    /// The bounds, in seconds (update_freshness_secs).
    #[arg(long, value_delimiter = ',', default_values_t = [0.5, 2.0, 5.0, 10.0])]
    bounds: Vec<f64>,
    #[command(flatten)]
    latency: LatencyArgs,
    /// A PostgreSQL server (the benchmark creates its own database per bound and drops it).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, default_value = DEFAULT_DATABASE_URL)]
    database_url: String,
}

#[derive(Debug, clap::Args)]
pub struct E2eArgs {
    /// Invoices in the ERP.
    #[arg(long, default_value_t = 1000)]
    invoices: usize,
    /// No rate limit at the sandbox and the daemon's budget out of the way, so CPU costs show;
    /// B2B latency defaults to 0.
    #[arg(long)]
    fast: bool,
    /// Latency of every B2B call in milliseconds [default: 80, 0 with --fast].
    #[arg(long)]
    latency_ms: Option<u64>,
    /// Uniform random extra latency in milliseconds [default: 40, 0 with --fast].
    #[arg(long)]
    jitter_ms: Option<u64>,
    /// The B2B sandbox's requests per minute (B2B Edition's limit); ignored with --fast.
    #[arg(long, default_value_t = e2e::STORE_RATE_LIMIT)]
    rate_limit: u32,
    /// The daemon's requests_per_minute [default: the daemon's default]; ignored with --fast.
    #[arg(long)]
    budget_rpm: Option<u32>,
    /// The daemon's max_concurrent [default: the daemon's default].
    #[arg(long)]
    concurrency: Option<usize>,
    /// Share of the ERP's invoices changed before the steady-state cycle.
    #[arg(long, default_value_t = 1.0)]
    change_percent: f64,
    /// Share of the B2B invoices a person edits before the last cycle.
    #[arg(long, default_value_t = 5.0)]
    edit_percent: f64,
    /// Leave out the naive syncer.
    #[arg(long)]
    no_naive: bool,
    /// Run the sandboxes in this process instead of child processes (their memory then counts
    /// in the peak RSS).
    #[arg(long)]
    in_process: bool,
    /// Seed of the sandbox's latency jitter.
    #[arg(long, default_value_t = 42)]
    rng_seed: u64,
    /// A PostgreSQL server (the URL's database is not used: the benchmark creates its own and
    /// drops it afterwards).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, default_value = DEFAULT_DATABASE_URL)]
    database_url: String,
}

#[derive(Debug, clap::Args)]
pub struct PlannerArgs {
    /// Invoices, and state rows.
    #[arg(long, default_value_t = 1_000_000)]
    invoices: usize,
    /// Records per page.
    #[arg(long, default_value_t = 1000)]
    page_size: usize,
    /// Share of the invoices changed in the second run.
    #[arg(long, default_value_t = 1.0)]
    change_percent: f64,
    /// State rows per INSERT while filling.
    #[arg(long, default_value_t = 10_000)]
    insert_batch: usize,
    /// A PostgreSQL server (the benchmark creates its own database and drops it afterwards).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, default_value = DEFAULT_DATABASE_URL)]
    database_url: String,
}

pub async fn run(cmd: BenchCommand, format: Option<LogFormat>) -> anyhow::Result<()> {
    init_logging(format)?;
    match cmd {
        BenchCommand::E2e(args) => {
            let report = e2e::run_until(&e2e_options(args)?, interrupted())
                .await
                .map_err(usage)?;
            print!("{}", report.markdown());
        }
        BenchCommand::Planner(args) => {
            let opts = PlannerOptions {
                page_size: args.page_size,
                change_percent: args.change_percent,
                insert_batch: args.insert_batch,
                ..PlannerOptions::new(args.invoices, &args.database_url)
            };
            let report = planner::run_until(&opts, interrupted())
                .await
                .map_err(usage)?;
            print!("{}", report.markdown());
        }
        BenchCommand::AlloyScan(args) => {
            let exe =
                std::env::current_exe().context("finding this executable to run the sandboxes")?;
            let launch = if args.in_process {
                SandboxLaunch::InProcess
            } else {
                SandboxLaunch::Processes { exe }
            };
            let opts = AlloyScanOptions {
                customers: args.customers,
                version: if args.api_version == "2023-12" {
                    AlloyVersion::V2023_12
                } else {
                    AlloyVersion::V2024_03
                },
                rate_limit: args.rate_limit,
                ..AlloyScanOptions::new(args.invoices, &args.database_url, launch)
            };
            let report = alloy::run_until(&opts, interrupted())
                .await
                .map_err(usage)?;
            print!("{}", report.markdown());
        }
        BenchCommand::Replicas(args) => {
            let exe =
                std::env::current_exe().context("finding this executable to run the replicas")?;
            let opts = ReplicasOptions {
                stores: args.stores,
                invoices_per_store: args.invoices,
                replicas: args.replicas,
                latency: Duration::from_millis(args.latency.latency_ms),
                jitter: Duration::from_millis(args.latency.jitter_ms),
                ..ReplicasOptions::new(&args.database_url, exe)
            };
            let report = replicas::run_until(&opts, interrupted())
                .await
                .map_err(usage)?;
            print!("{}", report.markdown());
        }
        BenchCommand::Freshness(args) => {
            let exe =
                std::env::current_exe().context("finding this executable to run the sandboxes")?;
            let bounds = args
                .bounds
                .iter()
                .map(|b| Duration::try_from_secs_f64(*b))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| UsageError(format!("--bounds: {e}")))?;
            let opts = FreshnessOptions {
                invoices: args.invoices,
                bounds,
                latency: Duration::from_millis(args.latency.latency_ms),
                jitter: Duration::from_millis(args.latency.jitter_ms),
                database_url: args.database_url,
                launch: SandboxLaunch::Processes { exe },
            };
            let report = tokio::select! {
                r = freshness::run(&opts) => r.map_err(usage)?,
                () = interrupted() => return Err(usage(BenchError::Interrupted)),
            };
            print!("{}", report.markdown());
        }
    }
    Ok(())
}

/// Ctrl-C (SIGINT): the benchmark stops and removes its database and sandboxes.
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        // No signal handler: never interrupt, rather than at once.
        std::future::pending::<()>().await;
    }
}

fn e2e_options(args: E2eArgs) -> anyhow::Result<E2eOptions> {
    let exe = std::env::current_exe().context("finding this executable to run the sandboxes")?;
    let launch = if args.in_process {
        SandboxLaunch::InProcess
    } else {
        SandboxLaunch::Processes { exe }
    };
    let defaults = BudgetSettings::default();
    let (latency, jitter) = if args.fast { (0, 0) } else { (80, 40) };
    Ok(E2eOptions {
        fast: args.fast,
        latency: Duration::from_millis(args.latency_ms.unwrap_or(latency)),
        jitter: Duration::from_millis(args.jitter_ms.unwrap_or(jitter)),
        sandbox_rate_limit: args.rate_limit,
        budget_rpm: args
            .budget_rpm
            .unwrap_or(defaults.requests_per_minute.get()),
        concurrency: args.concurrency.unwrap_or(defaults.max_concurrent.get()),
        change_percent: args.change_percent,
        edit_percent: args.edit_percent,
        naive: !args.no_naive,
        rng_seed: args.rng_seed,
        ..E2eOptions::new(args.invoices, &args.database_url, launch)
    })
}

/// A bad option or URL exits 2, like other usage errors.
fn usage(e: BenchError) -> anyhow::Error {
    match e {
        BenchError::InvalidUrl | BenchError::Option(_) => UsageError(e.to_string()).into(),
        other => other.into(),
    }
}

/// Logs to stderr, plus the counter of SQL statements the benchmark reports.
fn init_logging(format: Option<LogFormat>) -> anyhow::Result<()> {
    let filter = telemetry::filter(BENCH_LOG_FILTER)?;
    let logs: Box<dyn Layer<Registry> + Send + Sync> =
        match telemetry::resolve(format.unwrap_or_default()) {
            LogFormat::Json => Box::new(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            ),
            _ => Box::new(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            ),
        };
    let statements = StatementCounter::install_marker()
        .with_filter(Targets::new().with_target("sqlx::query", LevelFilter::TRACE));
    tracing_subscriber::registry()
        .with(logs)
        .with(statements)
        .try_init()
        .context("installing the log subscriber")?;
    Ok(())
}
