//! `demo`: the whole job end to end against the bundled sandbox; needs only PostgreSQL.

use anyhow::bail;

use b2b_invoice_sync::demo::{
    self, DefaultServer, DemoOptions, DEFAULT_DATABASE_URL, DEFAULT_HOST, DEFAULT_PORT,
};

use super::UsageError;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The PostgreSQL server and database to use (created if missing). The demo keeps its rows
    /// under the source name `erp_export` and clears them at each start. Default:
    /// the server at 127.0.0.1:5432, or, when nothing answers there, a throwaway one started
    /// from this machine's PostgreSQL binaries and removed at exit.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let server = match &args.database_url {
        Some(_) => None,
        None => Some(demo::default_server().await?),
    };
    if let Some(DefaultServer::Throwaway(postgres)) = &server {
        // stdout: the person reading the summary learns it first (stderr carries JSON logs).
        println!(
            "No PostgreSQL answers at {DEFAULT_HOST}:{DEFAULT_PORT} and DATABASE_URL is not set: {}.\n",
            postgres.describe()
        );
        tracing::info!(
            dir = %postgres.dir().display(),
            port = postgres.port(),
            "started a throwaway PostgreSQL for the demo"
        );
    }
    let database_url = match &server {
        Some(server) => server.url(),
        None => args
            .database_url
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
    };
    // Ctrl-C or SIGTERM still stops and removes a throwaway server.
    let result = tokio::select! {
        result = demo::run(DemoOptions { database_url }) => Some(result),
        () = interrupted() => None,
    };
    if let Some(DefaultServer::Throwaway(postgres)) = server {
        match tokio::task::spawn_blocking(move || postgres.stop()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not remove the throwaway PostgreSQL"),
            Err(e) => tracing::warn!(error = %e, "could not remove the throwaway PostgreSQL"),
        }
    }
    let report = match result {
        None => bail!("interrupted"),
        Some(Ok(report)) => report,
        Some(Err(e)) if e.is_usage() => return Err(UsageError(e.to_string()).into()),
        Some(Err(e)) => return Err(e.into()),
    };
    print!("{report}");
    if !report.ok() {
        bail!("the demo ran, but a check failed (see the summary above)");
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM (never, where they cannot be listened to).
async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}
