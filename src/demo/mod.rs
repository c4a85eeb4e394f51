//! `b2b-invoice-sync demo`: the whole job end to end on one machine, with no config file.
//!
//! PostgreSQL from `DATABASE_URL`, the bundled B2B Edition sandbox, and a `files` source fed
//! from a temporary copy of `examples/erp-export/`. Cycle 1 syncs the samples (one bad row, a
//! voided and a deleted invoice among them); then the ERP changes three invoices while a person
//! edits one of them in B2B, and cycle 2 updates them without losing the person's edit.

mod database;
mod erp;
pub mod postgres;
mod report;
mod settings;

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::sandbox::b2b::{self as sandbox, B2bSandboxConfig, RunningB2bSandbox, SandboxControl};
use crate::store::state::{self, Status};
use crate::store::StoreError;
use crate::sync::engine::{Engine, EngineError, RunReport};

pub use database::{
    default_server, DefaultServer, DEFAULT_DATABASE_URL, DEFAULT_HOST, DEFAULT_PORT,
};
pub use erp::Change;
pub use report::{Check, CycleSummary, DemoReport, LifecycleNote};

/// What a person adds to the edited invoice's `details` in the B2B control panel.
pub const PERSON_NOTE: &str = "call before shipping";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(
        "DATABASE_URL: not a PostgreSQL URL (expected postgres://user[:password]@host:port/database)"
    )]
    InvalidUrl,
    #[error(
        "PostgreSQL is unreachable at {url}: {reason}.\n\
         Start PostgreSQL there, or point DATABASE_URL at a server you can use, e.g.\n    \
         DATABASE_URL=postgres://user:password@host:5432/b2b_invoice_sync cargo run --release -- demo\n\
         (the demo creates the database if it is missing)"
    )]
    Unreachable { url: String, reason: String },
    #[error(
        "PostgreSQL at {url} refused the login: {reason}.\n\
         Put a user allowed to connect (and to create the database) in DATABASE_URL"
    )]
    Refused { url: String, reason: String },
    #[error("PostgreSQL at {url}: {reason}")]
    Database { url: String, reason: String },
    #[error(
        "nothing answers at {host}:{port}, where the demo looks when DATABASE_URL is not set \
         (set it to use another server), and no throwaway PostgreSQL could be started instead",
        host = database::DEFAULT_HOST,
        port = database::DEFAULT_PORT
    )]
    NoPostgres {
        #[from]
        source: postgres::PostgresError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the B2B sandbox: {0}")]
    Sandbox(String),
    #[error("the demo's export folder {}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    #[error("the bundled sample export is not as the demo expects: {0}")]
    Sample(String),
}

impl DemoError {
    /// Exit code 2 for a bad setting, 1 for everything else.
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::InvalidUrl)
    }
}

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// `DATABASE_URL`, or [`DEFAULT_DATABASE_URL`].
    pub database_url: String,
}

/// Runs the demo; `Ok` carries the summary even when one of its checks failed
/// ([`DemoReport::ok`]).
pub async fn run(options: DemoOptions) -> Result<DemoReport, DemoError> {
    let (pool, db) = database::open(&options.database_url, settings::SOURCE).await?;
    let folder = erp::ExportFolder::create()?;
    let b2b = sandbox::start(B2bSandboxConfig::default(), ([127, 0, 0, 1], 0).into())
        .await
        .map_err(|e| DemoError::Sandbox(format!("cannot start it: {e}")))?;
    let result = run_with(&options, pool, db, &folder, &b2b).await;
    b2b.shutdown().await;
    result
}

async fn run_with(
    options: &DemoOptions,
    pool: sqlx::PgPool,
    db: database::DatabaseInfo,
    folder: &erp::ExportFolder,
    b2b: &RunningB2bSandbox,
) -> Result<DemoReport, DemoError> {
    let control = b2b.control();
    let config = settings::build(&options.database_url, &b2b.base_url(), &folder.dir)?;
    let engine = Engine::new(&config, pool.clone())?;
    let mut report = DemoReport::new(db, b2b.base_url());

    // Cycle 1: the two sample exports.
    let first = cycle(&engine, &control).await?;
    report.bad_rows = erp::SAMPLES
        .iter()
        .flat_map(|(name, _)| folder.rejected_rows(name))
        .collect();
    report.lifecycle = lifecycle(&pool, &control).await?;
    report.cycles.push(CycleSummary::new(
        "Cycle 1: the first sync of both sample exports",
        first,
    ));

    // Between the cycles: the ERP changes invoices, and a person edits one of them in B2B.
    let export = erp::changes()?;
    folder.write_export(erp::CHANGES_FILE, &export.text)?;
    report.changes = export.changes;
    let edited_id = b2b_id(&pool, erp::EDITED_INVOICE).await?;
    if let Some(id) = edited_id {
        control
            .edit_details(
                settings::STORE_HASH,
                id,
                &json!({ "personNote": PERSON_NOTE }),
            )
            .map_err(|e| DemoError::Sandbox(e.to_string()))?;
    }
    report.edited = edited_id;
    report.payment = buyer_pays(&pool, &control).await?;

    // Cycle 2: the changes file, and the payment written back to the ERP's outbox.
    let second = cycle(&engine, &control).await?;
    report.cycles.push(CycleSummary::new(
        &format!("Cycle 2: the ERP's new export {}", erp::CHANGES_FILE),
        second,
    ));
    let edited = edited_id.and_then(|id| invoice(&control, id));
    report.checks = report::checks(&report, &control, edited.as_ref(), &export.edited);
    report
        .checks
        .push(report::payment_check(&report, &control, &folder.dir));
    Ok(report)
}

/// A buyer pays half of [`erp::PAID_INVOICE`] in the B2B buyer portal.
async fn buyer_pays(
    pool: &sqlx::PgPool,
    control: &SandboxControl,
) -> Result<Option<report::DemoPayment>, DemoError> {
    let Some(id) = b2b_id(pool, erp::PAID_INVOICE).await? else {
        return Ok(None);
    };
    let Some(held) = invoice(control, id) else {
        return Ok(None);
    };
    let Some(open) = report::decimal(&held["openBalance"]["value"]) else {
        return Ok(None);
    };
    let currency = held["openBalance"]["code"]
        .as_str()
        .and_then(|c| crate::domain::Currency::parse(c).ok());
    let amount = (open / rust_decimal::Decimal::from(2)).round_dp(2);
    let payment_id = control
        .pay_invoice(settings::STORE_HASH, id, amount)
        .map_err(|e| DemoError::Sandbox(e.to_string()))?;
    Ok(Some(report::DemoPayment {
        b2b_invoice_id: id,
        payment_id,
        amount: amount.normalize(),
        open_after: (open - amount).normalize(),
        currency,
    }))
}

/// One cycle, with the API calls the sandbox saw during it.
async fn cycle(
    engine: &Engine,
    control: &SandboxControl,
) -> Result<(RunReport, Vec<(String, u64)>), DemoError> {
    control.reset_stats();
    let run = engine.run_cycle(settings::SOURCE).await?;
    let mut calls: Vec<(String, u64)> = Vec::new();
    for entry in control.stats().by_route {
        match calls.iter_mut().find(|(route, _)| *route == entry.route) {
            Some((_, n)) => *n += entry.count,
            None => calls.push((entry.route, entry.count)),
        }
    }
    Ok((run, calls))
}

async fn b2b_id(pool: &sqlx::PgPool, external_id: &str) -> Result<Option<u64>, DemoError> {
    let rows = state::load(pool, settings::SOURCE, &[external_id.to_owned()]).await?;
    Ok(rows.get(external_id).and_then(|r| r.b2b_invoice_id))
}

fn invoice(control: &SandboxControl, id: u64) -> Option<Value> {
    control.invoice(settings::STORE_HASH, id)
}

/// What happened to the sample's voided and deleted invoices.
async fn lifecycle(
    pool: &sqlx::PgPool,
    control: &SandboxControl,
) -> Result<Vec<LifecycleNote>, DemoError> {
    const CASES: [(&str, &str, &str); 2] = [
        ("ERP-INV-20008", "20008", "voided"),
        ("ERP-INV-20014", "20014", "deleted"),
    ];
    let ids: Vec<String> = CASES.iter().map(|(id, _, _)| (*id).to_owned()).collect();
    let rows = state::load(pool, settings::SOURCE, &ids).await?;
    let in_b2b: Vec<String> = control
        .invoices(settings::STORE_HASH)
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v["invoiceNumber"].as_str().map(str::to_owned))
        .collect();
    Ok(CASES
        .iter()
        .map(|(external_id, number, how)| LifecycleNote {
            invoice_number: (*number).to_owned(),
            how: (*how).to_owned(),
            status: rows.get(*external_id).map(|r| r.status),
            in_b2b: in_b2b.iter().any(|n| n == number),
        })
        .collect())
}

/// `Status` as the summary words it.
fn status_words(status: Option<Status>) -> &'static str {
    match status {
        Some(Status::Deleted) => "recorded as deleted",
        Some(Status::Synced) => "synced",
        Some(Status::Failed) => "failed",
        Some(Status::Dead) => "in the dead letter",
        Some(Status::Discarded) => "discarded",
        Some(Status::Flagged) => "flagged for a person",
        None => "not recorded",
    }
}
