//! `status [--json] [--runs N]`: per source, the latest runs, the cursor, what waits for retry
//! or for a person, and mutations whose outcome is still unknown.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use b2b_invoice_sync::config::Settings;
use b2b_invoice_sync::payments::events;
use b2b_invoice_sync::store::leases::{self, LeaseRow};
use b2b_invoice_sync::store::refused;
use b2b_invoice_sync::store::runs::{self, RunRow};
use b2b_invoice_sync::store::state::{self, Status};
use b2b_invoice_sync::store::{cursors, ledger};

use super::database;
use super::output::{print_json, when, Table};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print the status as JSON.
    #[arg(long)]
    json: bool,
    /// Runs shown per source.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(i64).range(1..=1000))]
    runs: i64,
}

#[derive(Debug, Serialize)]
struct SourceStatus {
    source: String,
    /// `None` for a source found in the database but no longer in the config.
    kind: Option<&'static str>,
    store: Option<String>,
    /// Every invoice updated up to here is committed (API sources; `files` sources track
    /// progress by moving files and leave it empty).
    watermark: Option<DateTime<Utc>>,
    /// Failed, waiting for their next attempt.
    failed: u64,
    /// Gave up after the configured attempts (`failures retry` brings them back).
    dead: u64,
    /// Waiting for a person.
    flagged: u64,
    /// Mutations sent whose outcome is unknown until the next cycle's recovery.
    in_flight: i64,
    /// B2B payments not yet written back to the ERP (pending, in flight, failed).
    payments_pending: i64,
    /// Payment write-backs that need a person (dead, unknown outcome).
    payments_stuck: i64,
    /// ERP records refused and not yet sent again right (`failures list` shows them).
    refused: i64,
    runs: Vec<RunRow>,
}

#[derive(Debug, Serialize)]
struct StatusReport {
    sources: Vec<SourceStatus>,
    /// Which process works each store (its lease), and since when.
    stores: Vec<LeaseRow>,
}

pub async fn run(settings: &Settings, args: StatusArgs) -> anyhow::Result<()> {
    let pool = database(settings).await?;
    let mut sources: BTreeMap<String, SourceStatus> = settings
        .sources
        .values()
        .map(|s| {
            (
                s.name.clone(),
                SourceStatus::new(&s.name, Some(s.adapter.kind()), Some(s.store.clone())),
            )
        })
        .collect();
    for row in runs::recent(&pool, None, args.runs).await? {
        get(&mut sources, &row.source).runs.push(row);
    }
    for row in state::problems(&pool, None).await? {
        let s = get(&mut sources, &row.source);
        match row.status {
            Status::Failed => s.failed += 1,
            Status::Dead => s.dead += 1,
            Status::Flagged => s.flagged += 1,
            _ => {}
        }
    }
    for (name, n) in ledger::in_flight_counts(&pool).await? {
        get(&mut sources, &name).in_flight = n;
    }
    for (name, n) in refused::counts(&pool).await? {
        get(&mut sources, &name).refused = n;
    }
    for (name, s) in sources.iter_mut() {
        s.watermark = cursors::load(&pool, name).await?.watermark;
        (s.payments_pending, s.payments_stuck) = events::health(&pool, name).await?;
    }
    let status = StatusReport {
        sources: sources.into_values().collect(),
        stores: leases::all(&pool).await?,
    };
    if args.json {
        return print_json(&status);
    }
    print!("{}", render(&status.sources));
    print!("{}", render_stores(&status.stores));
    Ok(())
}

/// The source's entry; sources found only in the database get one too.
fn get<'a>(sources: &'a mut BTreeMap<String, SourceStatus>, name: &str) -> &'a mut SourceStatus {
    sources
        .entry(name.to_owned())
        .or_insert_with(|| SourceStatus::new(name, None, None))
}

impl SourceStatus {
    fn new(name: &str, kind: Option<&'static str>, store: Option<String>) -> Self {
        Self {
            source: name.to_owned(),
            kind,
            store,
            watermark: None,
            failed: 0,
            dead: 0,
            flagged: 0,
            in_flight: 0,
            payments_pending: 0,
            payments_stuck: 0,
            refused: 0,
            runs: Vec::new(),
        }
    }
}

fn render(sources: &[SourceStatus]) -> String {
    if sources.is_empty() {
        return "no sources configured and none in the database ([sources.<name>] in the config)\n"
            .to_owned();
    }
    let mut table = Table::new(&[
        "SOURCE",
        "KIND",
        "STORE",
        "WATERMARK",
        "FAILED",
        "DEAD",
        "FLAGGED",
        "IN FLIGHT",
        "PAYMENTS",
        "REFUSED",
        "LAST RUN",
    ]);
    for s in sources {
        let last = s.runs.first().map_or_else(
            || "never".to_owned(),
            |r| format!("{} {}", when(r.started_at), outcome(r)),
        );
        table.row(vec![
            s.source.clone(),
            s.kind.unwrap_or("(not in config)").to_owned(),
            s.store.clone().unwrap_or_else(|| "-".to_owned()),
            s.watermark.map_or_else(|| "-".to_owned(), when),
            s.failed.to_string(),
            s.dead.to_string(),
            s.flagged.to_string(),
            s.in_flight.to_string(),
            match (s.payments_pending, s.payments_stuck) {
                (0, 0) => "-".to_owned(),
                (p, 0) => format!("{p}-pending"),
                (p, x) => format!("{p}-pending,{x}-stuck"),
            },
            s.refused.to_string(),
            last,
        ]);
    }
    let mut out = table.render();
    out.push('\n');

    let mut runs = Table::new(&[
        "SOURCE",
        "STARTED",
        "DURATION",
        "OUTCOME",
        "CREATED",
        "UPDATED",
        "UNCHANGED",
        "DELETED",
        "FAILED",
        "RECOVERED",
        "B2B CALLS",
        "ERP CALLS",
        "ERROR",
    ]);
    for r in sources.iter().flat_map(|s| &s.runs) {
        let c = &r.counts;
        runs.row(vec![
            r.source.clone(),
            when(r.started_at),
            r.finished_at.map_or_else(
                || "-".to_owned(),
                |f| {
                    format!(
                        "{:.2} s",
                        (f - r.started_at).num_milliseconds() as f64 / 1000.0
                    )
                },
            ),
            outcome(r),
            c.created.to_string(),
            c.updated.to_string(),
            c.unchanged.to_string(),
            c.deleted.to_string(),
            c.failed.to_string(),
            c.recovered.to_string(),
            r.b2b_calls.to_string(),
            r.erp_calls.to_string(),
            r.error.clone().unwrap_or_default(),
        ]);
    }
    out.push('\n');
    if runs.is_empty() {
        out.push_str("no runs yet: `b2b-invoice-sync sync` starts one\n");
    } else {
        out.push_str("Recent runs (newest first)\n");
        out.push_str(&runs.render());
        out.push('\n');
    }
    let waiting: u64 = sources.iter().map(|s| s.failed + s.dead + s.flagged).sum();
    if waiting > 0 {
        out.push_str(&format!(
            "\n{waiting} invoice(s) failed, dead-lettered or flagged: `b2b-invoice-sync failures list` shows them\n"
        ));
    }
    let refused: i64 = sources.iter().map(|s| s.refused).sum();
    if refused > 0 {
        out.push_str(&format!(
            "{}{refused} ERP record(s) refused (never sent to B2B): `b2b-invoice-sync failures list` shows them\n",
            if waiting > 0 { "" } else { "\n" }
        ));
    }
    if sources.iter().any(|s| s.payments_stuck > 0) {
        out.push_str(
            "stuck payments: B2B payments the ERP does not have and the daemon stopped trying to write: `b2b-invoice-sync payments list --pending`\n",
        );
    }
    if sources.iter().any(|s| s.in_flight > 0) {
        out.push_str(
            "in flight: mutations whose outcome is not known yet; the next cycle of the source settles them first\n",
        );
    }
    out
}

/// Which process holds each store now (a daemon replica, or a `sync` run for its cycle).
fn render_stores(stores: &[LeaseRow]) -> String {
    if stores.is_empty() {
        return String::new();
    }
    let mut table = Table::new(&["STORE", "HELD BY", "HOST", "SINCE", "UNTIL", "MOVES"]);
    for l in stores {
        let (holder, host, since, until) = if l.live {
            (
                l.holder.clone().unwrap_or_default(),
                l.hostname.clone().unwrap_or_default(),
                l.acquired_at.map_or_else(|| "-".to_owned(), when),
                l.expires_at.map_or_else(|| "-".to_owned(), when),
            )
        } else {
            let last = l
                .holder
                .as_deref()
                .map_or_else(String::new, |h| format!(" (last: {h})"));
            (
                format!("free{last}"),
                "-".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
            )
        };
        table.row(vec![
            l.store.clone(),
            holder,
            host,
            since,
            until,
            l.moves.to_string(),
        ]);
    }
    format!(
        "\nStores (one process works a store at a time)\n{}\n",
        table.render()
    )
}

fn outcome(r: &RunRow) -> String {
    match (&r.outcome, r.finished_at) {
        (Some(o), _) => o.clone(),
        (None, None) => "running".to_owned(),
        (None, Some(_)) => "unknown".to_owned(),
    }
}
