//! `run [--run-now]`: the daemon (see `b2b_invoice_sync::daemon`).

use b2b_invoice_sync::config::Settings;
use b2b_invoice_sync::daemon::{self, RunOptions};

use super::database;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Run every source once at start, then follow the schedules.
    #[arg(long)]
    run_now: bool,
}

pub async fn run(settings: &Settings, args: RunArgs) -> anyhow::Result<()> {
    let pool = database(settings).await?;
    daemon::run(
        settings,
        pool,
        RunOptions {
            run_now: args.run_now,
        },
    )
    .await?;
    Ok(())
}
