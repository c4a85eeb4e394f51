//! `demo`: the whole job end to end against the bundled sandbox; needs only PostgreSQL.

use anyhow::bail;

use b2b_invoice_sync::demo::{self, DemoOptions, DEFAULT_DATABASE_URL};

use super::UsageError;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The PostgreSQL server and database to use (created if missing). The demo keeps its rows
    /// under the source name `erp_export` and clears them at each start.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, default_value = DEFAULT_DATABASE_URL)]
    database_url: String,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let report = match demo::run(DemoOptions {
        database_url: args.database_url,
    })
    .await
    {
        Ok(report) => report,
        Err(e) if e.is_usage() => return Err(UsageError(e.to_string()).into()),
        Err(e) => return Err(e.into()),
    };
    print!("{report}");
    if !report.ok() {
        bail!("the demo ran, but a check failed (see the summary above)");
    }
    Ok(())
}
