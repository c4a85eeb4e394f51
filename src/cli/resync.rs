//! `resync --source NAME (--all | --since DATE | --invoice EXT_ID...) [--dry-run] [--json]`:
//! the next cycle re-reads and re-pushes those invoices although nothing changed (see
//! `b2b_invoice_sync::sync::resync`).

use chrono::{DateTime, NaiveDate, Utc};

use b2b_invoice_sync::config::{AdapterSettings, Settings};
use b2b_invoice_sync::source::Cursor;
use b2b_invoice_sync::sync::resync::{resync, ResyncReport, Selection};

use super::output::{print_json, Table};
use super::{database, selected_sources, UsageError};

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["all", "since", "invoice"])))]
pub struct ResyncArgs {
    /// The source (a key of `[sources]`).
    #[arg(long)]
    source: String,
    /// Every invoice B2B holds for the source (the cursor restarts from the beginning).
    #[arg(long)]
    all: bool,
    /// Invoices the ERP updated at or after this date (`2026-11-01`) or instant (RFC 3339).
    #[arg(long, value_parser = parse_since)]
    since: Option<DateTime<Utc>>,
    /// These ERP invoice ids (B2B `externalId`); repeat or separate with commas.
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    invoice: Vec<String>,
    /// Print what would be re-pushed; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("{text:?} is neither a date (2026-11-01) nor an RFC 3339 instant"))
}

pub async fn run(settings: &Settings, args: ResyncArgs) -> anyhow::Result<()> {
    let names = selected_sources(settings, Some(&args.source))?;
    let Some(name) = names.first() else {
        return Err(UsageError(format!("--source {}: no such source", args.source)).into());
    };
    let selection = match (args.all, args.since, args.invoice.is_empty()) {
        (true, None, true) => Selection::All,
        (false, Some(since), true) => Selection::Since(since),
        (false, None, false) => Selection::Invoices(args.invoice.clone()),
        _ => {
            return Err(UsageError(
                "give exactly one of --all, --since DATE, --invoice EXT_ID...".to_owned(),
            )
            .into())
        }
    };
    let pool = database(settings).await?;
    let report = resync(&pool, name, &selection, args.dry_run).await?;
    // A cycle in flight may commit its cursor over the rewind: say so.
    let running: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sync_runs WHERE source = $1 AND finished_at IS NULL
            AND started_at > now() - interval '1 day'",
    )
    .bind(name)
    .fetch_one(&pool)
    .await
    .unwrap_or(0);
    if running > 0 && !args.dry_run {
        eprintln!(
            "warning: a cycle of {name} is running now; it may record its own cursor after this \
             resync: run the same resync again once it has finished (`status` shows it)"
        );
    }
    if args.json {
        print_json(&report)?;
    } else {
        let files = settings
            .sources
            .get(name)
            .is_some_and(|s| matches!(s.adapter, AdapterSettings::Files(_)));
        print!("{}", render(&report, files));
    }
    Ok(())
}

fn cursor(c: &Cursor) -> String {
    c.watermark
        .map_or_else(|| "the beginning".to_owned(), |w| w.to_rfc3339())
}

fn render(report: &ResyncReport, files: bool) -> String {
    let n = report.invoices.len();
    let s = if n == 1 { "" } else { "s" };
    let mut out = if report.dry_run {
        format!(
            "{}: dry run, nothing changed: the next cycle would re-push {n} invoice{s}\n",
            report.source
        )
    } else {
        format!(
            "{}: the next cycle re-pushes {n} invoice{s} (from their current B2B details)\n",
            report.source
        )
    };
    if report.cursor_after != report.cursor_before {
        out.push_str(&format!(
            "  cursor {} from {} to {}\n",
            if report.dry_run {
                "would go back"
            } else {
                "went back"
            },
            cursor(&report.cursor_before),
            cursor(&report.cursor_after)
        ));
    }
    if n > 0 {
        let mut table = Table::new(&["EXTERNAL ID", "INVOICE", "B2B ID", "ERP VERSION"]);
        for r in &report.invoices {
            table.row(vec![
                r.external_id.clone(),
                r.invoice_number.clone(),
                r.b2b_invoice_id.to_string(),
                r.erp_version
                    .clone()
                    .unwrap_or_else(|| "unknown".to_owned()),
            ]);
        }
        for line in table.render().lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    if !report.not_in_b2b.is_empty() {
        out.push_str(&format!(
            "  not in B2B for this source (nothing to re-push; `failures list` and `status` say why): {}\n",
            report.not_in_b2b.join(", ")
        ));
    }
    if files && n > 0 {
        out.push_str(
            "  note: a files source reads only the exports in its folder: drop the exports holding these invoices again for them to be re-read\n",
        );
    }
    out
}
