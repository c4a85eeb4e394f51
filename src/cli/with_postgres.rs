//! `with-postgres -- COMMAND...` (hidden): runs COMMAND with a PostgreSQL for the tests.
//! `./scripts/test` uses it on a machine where none is running.
//!
//! `B2BSYNC_TEST_POSTGRES` set, or something answering at 127.0.0.1:5432: COMMAND runs as it
//! is. Otherwise a throwaway PostgreSQL is started from the machine's server binaries, COMMAND
//! runs with `B2BSYNC_TEST_POSTGRES` (its `postgres` database, where the tests create theirs)
//! and `DATABASE_URL` (`b2b_invoice_sync`) pointing at it, and the server is stopped and
//! removed when COMMAND ends. The exit code is COMMAND's.

use std::process::ExitCode;

use anyhow::{bail, Context};
use tokio::signal::unix::{signal, Signal, SignalKind};

use b2b_invoice_sync::demo::postgres::{self, ThrowawayPostgres};
use b2b_invoice_sync::demo::{DEFAULT_HOST, DEFAULT_PORT};

/// The variable the tests read their server from (`tests/api/db.rs`).
const TEST_POSTGRES: &str = "B2BSYNC_TEST_POSTGRES";

#[derive(Debug, clap::Args)]
pub struct WithPostgresArgs {
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub async fn run(args: WithPostgresArgs) -> anyhow::Result<ExitCode> {
    let Some((program, rest)) = args.command.split_first() else {
        bail!("with-postgres needs a command to run");
    };
    let mut command = tokio::process::Command::new(program);
    command.args(rest);

    let configured = std::env::var_os(TEST_POSTGRES).is_some();
    let answers = configured
        || tokio::task::spawn_blocking(|| postgres::answers(DEFAULT_HOST, DEFAULT_PORT))
            .await
            .unwrap_or(false);
    let throwaway = if answers {
        None
    } else {
        let started = tokio::task::spawn_blocking(ThrowawayPostgres::start)
            .await
            .context("starting a throwaway PostgreSQL")?
            .with_context(|| {
                format!(
                    "nothing answers at {DEFAULT_HOST}:{DEFAULT_PORT} and {TEST_POSTGRES} is not \
                     set (set it to a server's maintenance database, \
                     postgres://USER@HOST:PORT/postgres), and no throwaway PostgreSQL could be \
                     started for the tests"
                )
            })?;
        eprintln!(
            "with-postgres: nothing answers at {DEFAULT_HOST}:{DEFAULT_PORT} and {TEST_POSTGRES} \
             is not set: {}.",
            started.describe()
        );
        command
            .env(TEST_POSTGRES, started.url("postgres"))
            .env("DATABASE_URL", started.url("b2b_invoice_sync"));
        Some(started)
    };

    // Listening replaces the signals' default action (exit at once, leaving the server behind).
    // Ctrl-C reaches COMMAND too (one process group): wait for it to end, then clean up. A
    // SIGTERM for this process alone ends COMMAND first.
    let _interrupt = signal(SignalKind::interrupt()).ok();
    let mut terminate = signal(SignalKind::terminate()).ok();
    let status = match command.spawn() {
        Ok(mut child) => {
            let status = tokio::select! {
                status = child.wait() => status,
                Some(()) = recv(&mut terminate) => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            status.with_context(|| format!("waiting for {program}"))
        }
        Err(e) => Err(e).with_context(|| format!("cannot run {program}")),
    };
    if let Some(postgres) = throwaway {
        let stopped = tokio::task::spawn_blocking(move || postgres.stop()).await;
        if let Ok(Err(e)) = stopped {
            eprintln!("with-postgres: {e}");
        }
    }
    let status = status?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::from(1),
    })
}

/// The next signal, or never when it could not be listened to.
async fn recv(signal: &mut Option<Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}
