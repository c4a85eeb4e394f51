//! Command-line glue: parse arguments, load config, set up logging, run one command.
//! Exit codes: 0 ok, 1 runtime failure, 2 bad config or usage.

#[cfg(feature = "rigs")]
mod bench;
mod customers;
mod db;
#[cfg(feature = "rigs")]
mod demo;
mod failures;
mod output;
mod payments;
mod plan;
mod probe;
mod reconcile;
mod resync;
mod run;
#[cfg(feature = "rigs")]
mod sandbox;
mod status;
mod sync;
mod webhooks;
#[cfg(feature = "rigs")]
mod with_postgres;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use b2b_invoice_sync::config::{self, LogFormat, Settings};
use b2b_invoice_sync::telemetry;

pub const EXIT_RUNTIME: u8 = 1;
pub const EXIT_CONFIG: u8 = 2;

/// A mistake in the config or the command line: exit code 2 rather than 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Logs of the demo: its own summary is the output; the engine's warnings (the refused row)
/// and run lines show what happens underneath. `RUST_LOG` overrides.
#[cfg(feature = "rigs")]
const DEMO_LOG_FILTER: &str = "warn,b2b_invoice_sync::sync::engine=info";

#[derive(Debug, Parser)]
#[command(
    name = "b2b-invoice-sync",
    version,
    about = "Keeps BigCommerce B2B Edition invoices in step with your ERP"
)]
struct Cli {
    /// The TOML config file; `B2BSYNC__SECTION__KEY` environment variables override its keys.
    #[arg(
        long,
        global = true,
        env = "B2BSYNC_CONFIG",
        default_value = "config/b2b-invoice-sync.toml"
    )]
    config: PathBuf,

    /// Log format (default: the config's telemetry.log_format; `auto` is JSON unless stderr is a terminal).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Auto,
    Json,
    Pretty,
}

impl From<LogFormatArg> for LogFormat {
    fn from(f: LogFormatArg) -> Self {
        match f {
            LogFormatArg::Auto => LogFormat::Auto,
            LogFormatArg::Json => LogFormat::Json,
            LogFormatArg::Pretty => LogFormat::Pretty,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load and validate the config; print every problem with its key path (exit 2 if any).
    CheckConfig,
    /// Check that each configured store answers with its credentials (read-only calls).
    Probe(probe::ProbeArgs),
    /// Apply the database migrations (commands that need the database also apply them first,
    /// unless engine.auto_migrate is false).
    Migrate,
    /// The daemon: every source on its schedule, health and metrics endpoints, graceful
    /// shutdown on SIGTERM (systemd Type=notify aware).
    Run(run::RunArgs),
    /// Run sync cycles now: every source (or --source NAME), one after another.
    Sync(sync::SyncArgs),
    /// Dry run: what a sync would do, with per-field diffs; writes nothing.
    Plan(plan::PlanArgs),
    /// Make the next cycle re-read and re-push invoices although nothing changed (from their
    /// current B2B details: what a person added there is kept); `--dry-run` only lists them.
    Resync(resync::ResyncArgs),
    /// Month-end reconciliation: where ERP and B2B disagree and why (exit 1 while anything is
    /// unexplained); --repair queues what the next cycle can fix.
    Reconcile(reconcile::ReconcileArgs),
    /// Per source: latest runs, cursor, failures waiting, mutations in flight.
    Status(status::StatusArgs),
    /// Failed, dead-lettered and flagged invoices: list, retry, discard.
    #[command(subcommand)]
    Failures(failures::FailuresCommand),
    /// B2B Edition payments flowing back to the ERP: list, retry.
    #[command(subcommand)]
    Payments(payments::PaymentsCommand),
    /// Alloy webhook subscriptions of a unified source: register this daemon's receiver, list.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    #[cfg(feature = "rigs")]
    /// The whole job end to end against the bundled sandbox: needs only PostgreSQL
    /// (DATABASE_URL), no config file.
    Demo(demo::DemoArgs),
    /// Manage the ERP customer -> B2B company map.
    #[command(subcommand)]
    Customers(customers::CustomersCommand),
    #[cfg(feature = "rigs")]
    /// Run a faithful local fake of an API, for tests, the demo and benchmarks.
    #[command(subcommand)]
    Sandbox(sandbox::SandboxCommand),
    #[cfg(feature = "rigs")]
    /// Benchmarks against the sandboxes and a throwaway PostgreSQL database (BENCHMARKS.md).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    #[cfg(feature = "rigs")]
    /// Runs a command with a PostgreSQL for the tests: a throwaway one when none answers
    /// (./scripts/test uses it).
    #[command(hide = true)]
    WithPostgres(with_postgres::WithPostgresArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let cli_format = cli.log_format.map(LogFormat::from);
    match cli.command {
        Command::CheckConfig => check_config(&cli.config),
        #[cfg(feature = "rigs")]
        Command::Sandbox(cmd) => {
            // The sandbox needs no config file: it is what a config points at.
            if let Err(code) = init_plain_logging(cli_format, "info") {
                return code;
            }
            report(sandbox::run(cmd).await)
        }
        #[cfg(feature = "rigs")]
        Command::Bench(cmd) => report(bench::run(cmd, cli_format).await),
        #[cfg(feature = "rigs")]
        Command::Demo(args) => {
            if let Err(code) = init_plain_logging(cli_format, DEMO_LOG_FILTER) {
                return code;
            }
            report(demo::run(args).await)
        }
        #[cfg(feature = "rigs")]
        Command::WithPostgres(args) => {
            if let Err(code) = init_plain_logging(cli_format, "warn") {
                return code;
            }
            match with_postgres::run(args).await {
                Ok(code) => code,
                Err(e) => report(Err(e)),
            }
        }
        command => {
            let Some(settings) = load_or_report(&cli.config) else {
                return ExitCode::from(EXIT_CONFIG);
            };
            if let Err(code) = init_logging(cli_format, &settings) {
                return code;
            }
            for warning in env_warnings() {
                tracing::warn!(warning = %warning, "environment variable ignored");
            }
            report(with_config(&settings, command).await)
        }
    }
}

/// The commands that read the config file.
async fn with_config(settings: &Settings, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Probe(args) => probe::run(settings, args).await,
        Command::Migrate => {
            let pool = db::connect(settings).await?;
            b2b_invoice_sync::store::migrate(&pool).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Customers(cmd) => customers::run(settings, cmd).await,
        Command::Run(args) => run::run(settings, args).await,
        Command::Sync(args) => sync::run(settings, args).await,
        Command::Plan(args) => plan::run(settings, args).await,
        Command::Resync(args) => resync::run(settings, args).await,
        Command::Webhooks(cmd) => webhooks::run(settings, cmd).await,
        Command::Reconcile(args) => reconcile::run(settings, args).await,
        Command::Status(args) => status::run(settings, args).await,
        Command::Failures(cmd) => failures::run(settings, cmd).await,
        Command::Payments(cmd) => payments::run(settings, cmd).await,
        Command::CheckConfig => {
            anyhow::bail!("internal: this command does not read the config")
        }
        #[cfg(feature = "rigs")]
        Command::Sandbox(_) | Command::Demo(_) | Command::Bench(_) | Command::WithPostgres(_) => {
            anyhow::bail!("internal: this command does not read the config")
        }
    }
}

/// `B2BSYNC_...` variables of the process that are no override (one underscore).
fn env_warnings() -> Vec<String> {
    config::env_warnings(std::env::vars_os().filter_map(|(name, _)| name.into_string().ok()))
}

fn check_config(path: &std::path::Path) -> ExitCode {
    for warning in env_warnings() {
        eprintln!("warning: {warning}");
    }
    match load_or_report(path) {
        // Parses, but a secret still holds the example's placeholder: every request would fail.
        Some(settings) if !config::placeholders(&settings).is_empty() => {
            print_problems(path, &config::placeholders(&settings));
            ExitCode::from(EXIT_CONFIG)
        }
        Some(settings) => {
            let list = |names: Vec<&String>, what: &str| {
                let names: Vec<&str> = names.into_iter().map(String::as_str).collect();
                let s = if names.len() == 1 { "" } else { "s" };
                match names.len() {
                    0 => format!("no {what}s"),
                    n => format!("{n} {what}{s}: {}", names.join(", ")),
                }
            };
            println!(
                "{}: OK ({}; {})",
                path.display(),
                list(settings.stores.keys().collect(), "store"),
                list(settings.sources.keys().collect(), "source"),
            );
            ExitCode::SUCCESS
        }
        None => ExitCode::from(EXIT_CONFIG),
    }
}

/// Loads the config; on failure prints every problem to stderr, one per line.
fn load_or_report(path: &std::path::Path) -> Option<Settings> {
    match config::load(path) {
        Ok(settings) => Some(settings),
        Err(errors) => {
            print_problems(path, &errors.problems);
            None
        }
    }
}

/// The problems of a config file on stderr, one per line, each naming its key.
fn print_problems(path: &std::path::Path, problems: &[config::ConfigProblem]) {
    eprintln!(
        "{}: {} problem{}:",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        eprintln!("  {}: {}", p.key, p.message);
    }
}

/// Logging for commands without a config file.
#[cfg(feature = "rigs")]
fn init_plain_logging(cli_format: Option<LogFormat>, filter: &str) -> Result<(), ExitCode> {
    telemetry::init(cli_format.unwrap_or_default(), filter).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

fn init_logging(cli_format: Option<LogFormat>, settings: &Settings) -> Result<(), ExitCode> {
    let format = cli_format.unwrap_or(settings.telemetry.log_format);
    telemetry::init(format, &settings.telemetry.log_filter).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// The pool, with migrations applied (`engine.auto_migrate`, the default) or checked.
pub async fn database(settings: &Settings) -> anyhow::Result<sqlx::PgPool> {
    let pool = db::connect(settings).await?;
    if settings.engine.auto_migrate {
        b2b_invoice_sync::store::migrate(&pool).await?;
    } else {
        db::ensure_current(&pool).await?;
    }
    Ok(pool)
}

/// The configured sources' names, for a message that names them: `a, b`.
pub(crate) fn configured_sources(settings: &Settings) -> String {
    settings
        .sources
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(", ")
}

/// The sources a command works on: `--source NAME`, or every configured one.
pub fn selected_sources(
    settings: &Settings,
    only: Option<&str>,
) -> Result<Vec<String>, UsageError> {
    let configured = || configured_sources(settings);
    match only {
        Some(name) if settings.sources.contains_key(name) => Ok(vec![name.to_owned()]),
        Some(name) if settings.sources.is_empty() => Err(UsageError(format!(
            "--source {name}: no sources are configured (add a [sources.{name}] section; config/example.toml documents them)"
        ))),
        Some(name) => Err(UsageError(format!(
            "--source {name}: no such source in the config (configured: {})",
            configured()
        ))),
        None if settings.sources.is_empty() => Err(UsageError(
            "sources: none configured: add a [sources.<name>] section (config/example.toml documents them)"
                .to_owned(),
        )),
        None => Ok(settings.sources.keys().cloned().collect()),
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "command failed");
            // The JSON line above says it all; a plain line would break the JSON stream.
            if !telemetry::json_installed() {
                eprintln!("error: {e:#}");
            }
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::from(EXIT_RUNTIME)
            }
        }
    }
}
