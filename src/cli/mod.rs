//! Command-line glue: parse arguments, load config, set up logging, run one command.
//! Exit codes: 0 ok, 1 runtime failure, 2 bad config or usage.

mod customers;
mod probe;
mod sandbox;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use b2b_invoice_sync::config::{self, LogFormat, Settings};
use b2b_invoice_sync::telemetry;

pub const EXIT_RUNTIME: u8 = 1;
pub const EXIT_CONFIG: u8 = 2;

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
    /// Apply the database migrations (also done automatically by commands that need them).
    Migrate,
    /// Manage the ERP customer -> B2B company map.
    #[command(subcommand)]
    Customers(customers::CustomersCommand),
    /// Run a faithful local fake of an API, for tests, the demo and benchmarks.
    #[command(subcommand)]
    Sandbox(sandbox::SandboxCommand),
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
        Command::Probe(args) => {
            let Some(settings) = load_or_report(&cli.config) else {
                return ExitCode::from(EXIT_CONFIG);
            };
            if let Err(code) = init_logging(cli_format, &settings) {
                return code;
            }
            report(probe::run(&settings, args).await)
        }
        Command::Migrate => {
            let Some(settings) = load_or_report(&cli.config) else {
                return ExitCode::from(EXIT_CONFIG);
            };
            if let Err(code) = init_logging(cli_format, &settings) {
                return code;
            }
            report(
                database(&settings)
                    .await
                    .map(|_| println!("migrations applied")),
            )
        }
        Command::Customers(cmd) => {
            let Some(settings) = load_or_report(&cli.config) else {
                return ExitCode::from(EXIT_CONFIG);
            };
            if let Err(code) = init_logging(cli_format, &settings) {
                return code;
            }
            report(customers::run(&settings, cmd).await)
        }
        Command::Sandbox(cmd) => {
            // The sandbox needs no config file: it is what a config points at.
            if let Err(e) = telemetry::init(cli_format.unwrap_or_default(), "info") {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
            report(sandbox::run(cmd).await)
        }
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match load_or_report(path) {
        Some(settings) => {
            let stores: Vec<&str> = settings.stores.keys().map(String::as_str).collect();
            println!(
                "{}: OK ({} store{}: {})",
                path.display(),
                stores.len(),
                if stores.len() == 1 { "" } else { "s" },
                stores.join(", ")
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
            eprintln!(
                "{}: {} problem{}:",
                path.display(),
                errors.problems.len(),
                if errors.problems.len() == 1 { "" } else { "s" }
            );
            for p in &errors.problems {
                eprintln!("  {}: {}", p.key, p.message);
            }
            None
        }
    }
}

fn init_logging(cli_format: Option<LogFormat>, settings: &Settings) -> Result<(), ExitCode> {
    let format = cli_format.unwrap_or(settings.telemetry.log_format);
    telemetry::init(format, &settings.telemetry.log_filter).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// The pool, with migrations applied.
pub async fn database(settings: &Settings) -> anyhow::Result<sqlx::PgPool> {
    let Some(db) = &settings.database else {
        anyhow::bail!(
            "database.url: missing: this command needs the database ([database] url or url_file)"
        );
    };
    let pool = b2b_invoice_sync::store::connect(db).await?;
    b2b_invoice_sync::store::migrate(&pool).await?;
    Ok(pool)
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "command failed");
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}
