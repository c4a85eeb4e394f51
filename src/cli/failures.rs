//! `failures list|retry|discard`: the invoices that failed, gave up (dead letter) or wait for a
//! person, and what an operator can do about them.

use anyhow::bail;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use b2b_invoice_sync::config::Settings;
use b2b_invoice_sync::store::state::{self, StateRow, Status};

use super::database;
use super::output::{plural, print_json, when, Table};

#[derive(Debug, clap::Subcommand)]
pub enum FailuresCommand {
    /// List failed, dead-lettered and flagged invoices.
    List {
        /// Only this source's.
        #[arg(long)]
        source: Option<String>,
        /// Print them as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Make a failed or dead-lettered invoice due now with its attempts reset (the next `sync`
    /// tries it), or every such invoice with --all.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["id", "all"])))]
    Retry {
        /// The id `failures list` shows.
        id: Option<i64>,
        /// Every failed or dead-lettered invoice (discarded ones stay discarded).
        #[arg(long)]
        all: bool,
    },
    /// Stop retrying an invoice: it syncs again only when the ERP changes it.
    Discard {
        /// The id `failures list` shows.
        id: i64,
    },
}

/// One row of `failures list --json`.
#[derive(Debug, Serialize)]
struct FailureRow {
    id: i64,
    source: String,
    external_id: String,
    invoice_number: String,
    status: &'static str,
    attempts: i32,
    next_attempt_at: Option<DateTime<Utc>>,
    last_attempted_at: Option<DateTime<Utc>>,
    b2b_invoice_id: Option<u64>,
    last_error: Option<String>,
}

impl From<&StateRow> for FailureRow {
    fn from(r: &StateRow) -> Self {
        Self {
            id: r.id,
            source: r.source.clone(),
            external_id: r.external_id.clone(),
            invoice_number: r.invoice_number.clone(),
            status: r.status.as_str(),
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            last_attempted_at: r.last_attempted_at,
            b2b_invoice_id: r.b2b_invoice_id,
            last_error: r.last_error.clone(),
        }
    }
}

pub async fn run(settings: &Settings, cmd: FailuresCommand) -> anyhow::Result<()> {
    let pool = database(settings).await?;
    match cmd {
        FailuresCommand::List { source, json } => list(&pool, source.as_deref(), json).await,
        FailuresCommand::Retry { all: true, .. } => retry_all(&pool).await,
        FailuresCommand::Retry { id: Some(id), .. } => retry(&pool, id).await,
        // clap requires one of the two.
        FailuresCommand::Retry { .. } => bail!("failures retry: give an id or --all"),
        FailuresCommand::Discard { id } => discard(&pool, id).await,
    }
}

async fn list(pool: &PgPool, source: Option<&str>, json: bool) -> anyhow::Result<()> {
    let rows = state::problems(pool, source).await?;
    if json {
        let rows: Vec<FailureRow> = rows.iter().map(FailureRow::from).collect();
        return print_json(&rows);
    }
    if rows.is_empty() {
        match source {
            Some(s) => println!("no failed, dead-lettered or flagged invoices for source {s}"),
            None => println!("no failed, dead-lettered or flagged invoices"),
        }
        return Ok(());
    }
    let now = Utc::now();
    let mut table = Table::new(&[
        "ID",
        "SOURCE",
        "EXTERNAL ID",
        "INVOICE",
        "STATUS",
        "ATTEMPTS",
        "NEXT ATTEMPT",
        "LAST ERROR",
    ]);
    for r in &rows {
        table.row(vec![
            r.id.to_string(),
            r.source.clone(),
            r.external_id.clone(),
            r.invoice_number.clone(),
            r.status.as_str().to_owned(),
            r.attempts.to_string(),
            next_attempt(r, now),
            r.last_error.clone().unwrap_or_default(),
        ]);
    }
    println!("{}", table.render());
    println!(
        "\n{} invoice{}. `failures retry ID` (or --all) tries again now; `failures discard ID` stops retrying.",
        rows.len(),
        plural(i64::try_from(rows.len()).unwrap_or(i64::MAX))
    );
    Ok(())
}

fn next_attempt(r: &StateRow, now: DateTime<Utc>) -> String {
    match (r.status, r.next_attempt_at) {
        (Status::Failed, Some(t)) if t <= now => "due now".to_owned(),
        (Status::Failed, Some(t)) => when(t),
        (Status::Failed, None) => "when the ERP changes it".to_owned(),
        (Status::Dead, _) => "never (dead letter)".to_owned(),
        (Status::Flagged, _) => "after a person acts".to_owned(),
        _ => "-".to_owned(),
    }
}

fn describe(r: &StateRow) -> String {
    format!(
        "{} (source {}, {}, invoice {})",
        r.id, r.source, r.external_id, r.invoice_number
    )
}

async fn find(pool: &PgPool, id: i64) -> anyhow::Result<Option<StateRow>> {
    Ok(state::problems(pool, None)
        .await?
        .into_iter()
        .find(|r| r.id == id))
}

/// Why `id` cannot be retried, for the error message.
fn not_retryable(id: i64, row: Option<&StateRow>) -> String {
    match row {
        Some(r) if r.status == Status::Flagged => format!(
            "failures retry {id}: invoice {} is flagged for a person ({}); it syncs again when the ERP changes it, and `failures discard {id}` sets it aside",
            describe(r),
            r.last_error.as_deref().unwrap_or("no reason recorded")
        ),
        Some(r) => format!(
            "failures retry {id}: invoice {} has no kept ERP record to retry from (its record was refused); it is tried again when the ERP sends it again",
            describe(r)
        ),
        None => format!(
            "failures retry {id}: no failed or dead-lettered invoice has id {id} (`failures list` shows the ids)"
        ),
    }
}

async fn retry(pool: &PgPool, id: i64) -> anyhow::Result<()> {
    let row = find(pool, id).await?;
    // Flagged rows need a person, not a retry; the store query would not take them anyway.
    if row.as_ref().is_some_and(|r| r.status == Status::Flagged) {
        bail!(not_retryable(id, row.as_ref()));
    }
    if state::retry(pool, Some(id)).await? == 0 {
        bail!(not_retryable(id, row.as_ref()));
    }
    match row {
        Some(r) => println!(
            "retry {}: {}; the next `sync --source {}` tries it",
            describe(&r),
            retried(&r),
            r.source
        ),
        None => println!(
            "retry {id}: discarded -> failed, attempts reset, due now; the next `sync` tries it"
        ),
    }
    Ok(())
}

/// What a retry changed in `r`.
fn retried(r: &StateRow) -> String {
    let from = if r.status == Status::Dead {
        " (out of the dead letter)"
    } else {
        ""
    };
    format!("due now, attempts {} -> 0{from}", r.attempts)
}

/// Every failed or dead-lettered invoice with a kept record; discarded ones are left alone
/// (an operator set them aside on purpose).
async fn retry_all(pool: &PgPool) -> anyhow::Result<()> {
    let rows: Vec<StateRow> = state::problems(pool, None)
        .await?
        .into_iter()
        .filter(|r| matches!(r.status, Status::Failed | Status::Dead) && r.pending.is_some())
        .collect();
    let mut done = 0;
    for r in &rows {
        if state::retry(pool, Some(r.id)).await? > 0 {
            println!("retry {}: {}", describe(r), retried(r));
            done += 1;
        }
    }
    if done == 0 {
        println!("nothing to retry: no failed or dead-lettered invoice with a kept ERP record");
    } else {
        println!(
            "{done} invoice{} due now: the next `sync` tries them",
            plural(done)
        );
    }
    Ok(())
}

async fn discard(pool: &PgPool, id: i64) -> anyhow::Result<()> {
    let row = find(pool, id).await?;
    if state::discard(pool, id).await? == 0 {
        bail!(
            "failures discard {id}: no failed, dead-lettered or flagged invoice has id {id} (`failures list` shows the ids)"
        );
    }
    match row {
        Some(r) => println!(
            "discard {}: {} -> discarded; no more retries, it syncs again only when the ERP changes it",
            describe(&r),
            r.status.as_str()
        ),
        None => println!("discard {id}: discarded; it syncs again only when the ERP changes it"),
    }
    Ok(())
}
