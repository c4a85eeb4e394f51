//! `failures list|retry|discard|dismiss`: the invoices that failed, gave up (dead letter) or
//! wait for a person, the ERP records that were refused, and what an operator can do about them.

use anyhow::bail;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use b2b_invoice_sync::config::Settings;
use b2b_invoice_sync::store::refused::{self, RefusedRow};
use b2b_invoice_sync::store::state::{self, StateRow, Status};

use super::database;
use super::output::{plural, print_json, when, Table};

#[derive(Debug, clap::Subcommand)]
pub enum FailuresCommand {
    /// List failed, dead-lettered and flagged invoices, and refused ERP records.
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
    /// Take a refused ERP record off the list (one without an external id stays there until
    /// dismissed); it is listed again if the ERP sends it again and it is refused again.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["id", "all"])))]
    Dismiss {
        /// The id of the refused record (`failures list`, "Refused ERP records").
        id: Option<i64>,
        /// Every refused record (of --source, when given).
        #[arg(long)]
        all: bool,
        /// With --all: only this source's.
        #[arg(long, requires = "all")]
        source: Option<String>,
    },
}

/// One row of `failures list --json`: a failed, dead-lettered or flagged invoice, or (status
/// `refused`, with its own ids) an ERP record that was refused.
#[derive(Debug, Serialize)]
struct FailureRow {
    id: i64,
    source: String,
    external_id: Option<String>,
    invoice_number: Option<String>,
    status: &'static str,
    attempts: i32,
    next_attempt_at: Option<DateTime<Utc>>,
    last_attempted_at: Option<DateTime<Utc>>,
    b2b_invoice_id: Option<u64>,
    last_error: Option<String>,
    /// Refused records: where the record is, the field at fault, how often it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_refused_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    times_refused: Option<i32>,
}

impl From<&StateRow> for FailureRow {
    fn from(r: &StateRow) -> Self {
        Self {
            id: r.id,
            source: r.source.clone(),
            external_id: Some(r.external_id.clone()),
            invoice_number: Some(r.invoice_number.clone()),
            status: r.status.as_str(),
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            last_attempted_at: r.last_attempted_at,
            b2b_invoice_id: r.b2b_invoice_id,
            last_error: r.last_error.clone(),
            file: None,
            line: None,
            field: None,
            first_refused_at: None,
            times_refused: None,
        }
    }
}

impl From<&RefusedRow> for FailureRow {
    fn from(r: &RefusedRow) -> Self {
        Self {
            id: r.id,
            source: r.source.clone(),
            external_id: r.external_id.clone(),
            invoice_number: None,
            status: "refused",
            attempts: 0,
            next_attempt_at: None,
            last_attempted_at: Some(r.last_refused_at),
            b2b_invoice_id: None,
            last_error: Some(r.reason.clone()),
            file: r.file.clone(),
            line: r.line,
            field: r.field.clone(),
            first_refused_at: Some(r.first_refused_at),
            times_refused: Some(r.times_refused),
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
        FailuresCommand::Dismiss { id, all, source } => {
            dismiss(&pool, id.filter(|_| !all), source.as_deref()).await
        }
    }
}

async fn list(pool: &PgPool, source: Option<&str>, json: bool) -> anyhow::Result<()> {
    let rows = state::problems(pool, source).await?;
    let refused = refused::list(pool, source).await?;
    if json {
        let rows: Vec<FailureRow> = rows
            .iter()
            .map(FailureRow::from)
            .chain(refused.iter().map(FailureRow::from))
            .collect();
        return print_json(&rows);
    }
    if rows.is_empty() && refused.is_empty() {
        match source {
            Some(s) => println!(
                "no failed, dead-lettered or flagged invoices for source {s}, and no refused ERP records"
            ),
            None => println!(
                "no failed, dead-lettered or flagged invoices, and no refused ERP records"
            ),
        }
        return Ok(());
    }
    if !rows.is_empty() {
        print_invoices(&rows);
    }
    if !refused.is_empty() {
        if !rows.is_empty() {
            println!();
        }
        print_refused(&refused);
    }
    Ok(())
}

fn print_invoices(rows: &[StateRow]) {
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
    for r in rows {
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
}

fn print_refused(rows: &[RefusedRow]) {
    println!(
        "Refused ERP records: never sent to B2B; each leaves this list once the ERP sends the invoice again in a form that can be taken"
    );
    let mut table = Table::new(&[
        "ID",
        "SOURCE",
        "FILE",
        "LINE",
        "EXTERNAL ID",
        "FIELD",
        "REFUSED",
        "REASON",
    ]);
    let dash = || "-".to_owned();
    for r in rows {
        let refused = match r.times_refused {
            1 => when(r.last_refused_at),
            n => format!("{} ({n} times)", when(r.last_refused_at)),
        };
        table.row(vec![
            r.id.to_string(),
            r.source.clone(),
            r.file.clone().unwrap_or_else(dash),
            r.line.map_or_else(dash, |l| l.to_string()),
            r.external_id.clone().unwrap_or_else(dash),
            r.field.clone().unwrap_or_else(dash),
            refused,
            r.reason.clone(),
        ]);
    }
    println!("{}", table.render());
    println!(
        "\n{} refused record{}: fix {} in the ERP and export or send {} again (files: the rows are in rejected/). `failures dismiss ID` (or --all) takes one off the list.",
        rows.len(),
        plural(i64::try_from(rows.len()).unwrap_or(i64::MAX)),
        if rows.len() == 1 { "it" } else { "them" },
        if rows.len() == 1 { "it" } else { "them" },
    );
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

async fn dismiss(pool: &PgPool, id: Option<i64>, source: Option<&str>) -> anyhow::Result<()> {
    let gone = refused::dismiss(pool, id, source).await?;
    if gone.is_empty() {
        match id {
            Some(id) => bail!(
                "failures dismiss {id}: no refused ERP record has id {id} (`failures list` shows them under \"Refused ERP records\")"
            ),
            None => {
                println!("nothing to dismiss: no refused ERP records");
                return Ok(());
            }
        }
    }
    for r in &gone {
        println!(
            "dismissed refused record {} (source {}, {}): listed again only if the ERP sends it again and it is refused again",
            r.id,
            r.source,
            r.place()
        );
    }
    Ok(())
}
