//! `reconcile --source NAME [--format table|csv|json] [--output FILE] [--repair]`: do ERP and
//! B2B agree? Exit 0 when nothing unexplained remains, 1 otherwise.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::ValueEnum;

use b2b_invoice_sync::config::Settings;
use b2b_invoice_sync::reconcile::{read, render, Report};
use b2b_invoice_sync::sync::engine::Engine;

use super::{database, selected_sources, UsageError};

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Csv,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ReconcileArgs {
    /// The source to reconcile (a key of `[sources]`).
    #[arg(long)]
    source: String,
    /// How to write the report (JSON: docs/reconcile.schema.json).
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// Write the report to this file instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Queue missing, drifted and stale invoices and unexplained balances for the next cycle
    /// (never deletes anything in B2B); orphans and duplicates stay listed for a person.
    #[arg(long)]
    repair: bool,
}

/// Unexplained differences remain: exit 1 with the report written.
#[derive(Debug, thiserror::Error)]
#[error("{0} unexplained difference(s) between the ERP and B2B")]
pub struct Unexplained(pub u64);

pub async fn run(settings: &Settings, args: ReconcileArgs) -> anyhow::Result<()> {
    let names = selected_sources(settings, Some(&args.source))?;
    for name in &names {
        if settings
            .sources
            .get(name)
            .is_some_and(|s| s.adapter.kind() == "files")
        {
            return Err(UsageError(format!(
                "--source {name}: a files source cannot be reconciled: its folder holds only the \
                 exports not imported yet, not every invoice of the ERP"
            ))
            .into());
        }
    }
    let pool = database(settings).await?;
    let engine = Engine::new(settings, pool)?;
    let mut unexplained = 0;
    for name in &names {
        let report = read::reconcile(&engine, name, args.repair).await?;
        unexplained += report.summary.unexplained;
        write(&report, args.format, args.output.as_deref())?;
    }
    if unexplained > 0 {
        return Err(Unexplained(unexplained).into());
    }
    Ok(())
}

fn write(report: &Report, format: Format, output: Option<&std::path::Path>) -> anyhow::Result<()> {
    let bytes = match format {
        Format::Table => render::table(report).into_bytes(),
        Format::Csv => render::csv(report).context("writing the CSV report")?,
        Format::Json => render::json(report)
            .context("writing the JSON report")?
            .into_bytes(),
    };
    match output {
        Some(path) => std::fs::write(path, bytes)
            .with_context(|| format!("--output {}: cannot write the report", path.display())),
        None => {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)
                .and_then(|()| out.flush())
                .context("writing the report to standard output")
        }
    }
}
