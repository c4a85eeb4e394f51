//! `invoice_state`: what B2B holds for each ERP invoice, and how its latest attempt went.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::{PgExecutor, PgPool};

use super::StoreError;

/// The `status` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Synced,
    Failed,
    Dead,
    Discarded,
    Deleted,
    Flagged,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Synced => "synced",
            Self::Failed => "failed",
            Self::Dead => "dead",
            Self::Discarded => "discarded",
            Self::Deleted => "deleted",
            Self::Flagged => "flagged",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "synced" => Self::Synced,
            "failed" => Self::Failed,
            "dead" => Self::Dead,
            "discarded" => Self::Discarded,
            "deleted" => Self::Deleted,
            // The CHECK constraint allows nothing else.
            _ => Self::Flagged,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StateRow {
    pub id: i64,
    pub source: String,
    pub external_id: String,
    pub invoice_number: String,
    pub b2b_invoice_id: Option<u64>,
    pub fingerprint: Option<String>,
    pub owned: Option<Value>,
    pub written_open: Option<Decimal>,
    pub status: Status,
    pub pending: Option<Value>,
    pub pending_fingerprint: Option<String>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub last_attempted_at: Option<DateTime<Utc>>,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

const COLUMNS: &str = "id, source, external_id, invoice_number, b2b_invoice_id, fingerprint, owned,
    written_open, status, pending, pending_fingerprint, last_synced_at, last_attempted_at,
    attempts, next_attempt_at, last_error";

type Raw = (
    i64,
    String,
    String,
    String,
    Option<i64>,
    Option<String>,
    Option<Value>,
    Option<Decimal>,
    String,
    Option<Value>,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    i32,
    Option<DateTime<Utc>>,
    Option<String>,
);

fn row(r: Raw) -> StateRow {
    StateRow {
        id: r.0,
        source: r.1,
        external_id: r.2,
        invoice_number: r.3,
        b2b_invoice_id: r.4.and_then(|id| u64::try_from(id).ok()),
        fingerprint: r.5,
        owned: r.6,
        written_open: r.7,
        status: Status::parse(&r.8),
        pending: r.9,
        pending_fingerprint: r.10,
        last_synced_at: r.11,
        last_attempted_at: r.12,
        attempts: r.13,
        next_attempt_at: r.14,
        last_error: r.15,
    }
}

/// The rows of `source` for these ERP ids, in one query.
pub async fn load(
    pool: &PgPool,
    source: &str,
    external_ids: &[String],
) -> Result<HashMap<String, StateRow>, StoreError> {
    let rows: Vec<Raw> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM invoice_state WHERE source = $1 AND external_id = ANY($2)"
    ))
    .bind(source)
    .bind(external_ids)
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("reading invoice_state"))?;
    Ok(rows
        .into_iter()
        .map(row)
        .map(|r| (r.external_id.clone(), r))
        .collect())
}

/// The rows of `source` for a page being planned: `(external_id, fingerprint)` per invoice, in
/// one query. `owned` (only an update's field diff reads it) comes back only for rows whose
/// fingerprint differs from the page's: for the usual unchanged invoice the large JSON is
/// neither sent nor decoded, which halves the cost of a steady-state read.
pub async fn load_for_plan(
    pool: &PgPool,
    source: &str,
    external_ids: &[String],
    fingerprints: &[String],
) -> Result<HashMap<String, StateRow>, StoreError> {
    let columns = COLUMNS
        .split(',')
        .map(|c| match c.trim() {
            "owned" => "CASE WHEN s.fingerprint IS DISTINCT FROM p.fp THEN s.owned END".to_owned(),
            other => format!("s.{other}"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let rows: Vec<Raw> = sqlx::query_as(&format!(
        "SELECT {columns} FROM UNNEST($2::text[], $3::text[]) AS p(external_id, fp)
           JOIN invoice_state s ON s.source = $1 AND s.external_id = p.external_id"
    ))
    .bind(source)
    .bind(external_ids)
    .bind(fingerprints)
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("reading invoice_state"))?;
    Ok(rows
        .into_iter()
        .map(row)
        .map(|r| (r.external_id.clone(), r))
        .collect())
}

/// Failed invoices of `source` whose retry time has come and whose ERP record is kept.
pub async fn due_failures(
    pool: &PgPool,
    source: &str,
    limit: i64,
) -> Result<Vec<StateRow>, StoreError> {
    let rows: Vec<Raw> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM invoice_state
          WHERE source = $1 AND status = 'failed' AND pending IS NOT NULL
            AND next_attempt_at <= now()
          ORDER BY next_attempt_at LIMIT $2"
    ))
    .bind(source)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("reading due failures"))?;
    Ok(rows.into_iter().map(row).collect())
}

/// Rows an operator should look at (failed, dead, flagged), newest first.
pub async fn problems(pool: &PgPool, source: Option<&str>) -> Result<Vec<StateRow>, StoreError> {
    let rows: Vec<Raw> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM invoice_state
          WHERE status IN ('failed', 'dead', 'flagged') AND ($1::text IS NULL OR source = $1)
          ORDER BY last_attempted_at DESC NULLS LAST, id"
    ))
    .bind(source)
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("reading failures"))?;
    Ok(rows.into_iter().map(row).collect())
}

/// What a successful mutation leaves B2B holding.
#[derive(Debug, Clone)]
pub struct Synced<'a> {
    pub source: &'a str,
    pub external_id: &'a str,
    pub invoice_number: &'a str,
    pub b2b_invoice_id: u64,
    pub fingerprint: Option<&'a str>,
    pub owned: Option<&'a Value>,
    pub written_open: Option<Decimal>,
    /// What the ERP had been paid (total - balance) in the record synced; `None` keeps the
    /// value known before (recovery works from the ledger, which does not have it).
    pub erp_paid: Option<Decimal>,
    /// The ERP's balance in that record (same rule).
    pub erp_balance: Option<Decimal>,
}

pub async fn mark_synced<'e>(db: impl PgExecutor<'e>, s: &Synced<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO invoice_state (source, external_id, invoice_number, b2b_invoice_id,
                fingerprint, owned, written_open, status, last_synced_at, last_attempted_at, attempts,
                erp_paid, erp_balance)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'synced', now(), now(), 0, $8, $9)
         ON CONFLICT (source, external_id) DO UPDATE SET
            invoice_number = EXCLUDED.invoice_number, b2b_invoice_id = EXCLUDED.b2b_invoice_id,
            fingerprint = EXCLUDED.fingerprint, owned = EXCLUDED.owned,
            written_open = EXCLUDED.written_open, status = 'synced',
            last_synced_at = now(), last_attempted_at = now(), attempts = 0,
            next_attempt_at = NULL, last_error = NULL, pending = NULL, pending_fingerprint = NULL,
            erp_paid = COALESCE(EXCLUDED.erp_paid, invoice_state.erp_paid),
            erp_balance = COALESCE(EXCLUDED.erp_balance, invoice_state.erp_balance)",
    )
    .bind(s.source)
    .bind(s.external_id)
    .bind(s.invoice_number)
    .bind(i64::try_from(s.b2b_invoice_id).unwrap_or(i64::MAX))
    .bind(s.fingerprint)
    .bind(s.owned)
    .bind(s.written_open)
    .bind(s.erp_paid)
    .bind(s.erp_balance)
    .execute(db)
    .await
    .map_err(StoreError::query("recording a synced invoice"))?;
    Ok(())
}

/// A failed attempt: counted, scheduled, or sent to the dead letter. `fingerprint`/`owned` are
/// left alone: they describe what B2B really holds.
#[derive(Debug, Clone)]
pub struct Failure<'a> {
    pub source: &'a str,
    pub external_id: &'a str,
    pub invoice_number: &'a str,
    pub error: &'a str,
    /// The ERP record (canonical schema) to retry from, when it can be retried without an ERP change.
    pub pending: Option<&'a Value>,
    pub pending_fingerprint: Option<&'a str>,
    /// Attempts so far including this one.
    pub attempts: i32,
    /// `Failed` (retry at `next_attempt_at`) or `Dead`.
    pub status: Status,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

pub async fn record_failure<'e>(
    db: impl PgExecutor<'e>,
    f: &Failure<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO invoice_state (source, external_id, invoice_number, status, pending,
                pending_fingerprint, attempts, last_attempted_at, next_attempt_at, last_error)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now(), $8, $9)
         ON CONFLICT (source, external_id) DO UPDATE SET
            invoice_number = EXCLUDED.invoice_number, status = EXCLUDED.status,
            pending = EXCLUDED.pending, pending_fingerprint = EXCLUDED.pending_fingerprint,
            attempts = EXCLUDED.attempts, last_attempted_at = now(),
            next_attempt_at = EXCLUDED.next_attempt_at, last_error = EXCLUDED.last_error",
    )
    .bind(f.source)
    .bind(f.external_id)
    .bind(f.invoice_number)
    .bind(f.status.as_str())
    .bind(f.pending)
    .bind(f.pending_fingerprint)
    .bind(f.attempts)
    .bind(f.next_attempt_at)
    .bind(f.error)
    .execute(db)
    .await
    .map_err(StoreError::query("recording a failure"))?;
    Ok(())
}

/// Deleted or voided in the ERP and handled: `b2b_invoice_id` is cleared when B2B deleted it.
pub async fn mark_deleted(
    pool: &PgPool,
    source: &str,
    external_id: &str,
    invoice_number: &str,
    still_in_b2b: bool,
    fingerprint: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO invoice_state (source, external_id, invoice_number, status, fingerprint,
                last_attempted_at, last_synced_at)
         VALUES ($1, $2, $3, 'deleted', $5, now(), now())
         ON CONFLICT (source, external_id) DO UPDATE SET
            status = 'deleted', fingerprint = $5, last_attempted_at = now(), last_synced_at = now(),
            b2b_invoice_id = CASE WHEN $4 THEN invoice_state.b2b_invoice_id ELSE NULL END,
            written_open = CASE WHEN $4 THEN 0 ELSE NULL END,
            attempts = 0, next_attempt_at = NULL, last_error = NULL, pending = NULL,
            pending_fingerprint = NULL",
    )
    .bind(source)
    .bind(external_id)
    .bind(invoice_number)
    .bind(still_in_b2b)
    .bind(fingerprint)
    .execute(pool)
    .await
    .map_err(StoreError::query("recording a deletion"))?;
    Ok(())
}

/// Needs a person: `reason` says why; nothing is retried until the ERP changes the invoice.
pub async fn mark_flagged(
    pool: &PgPool,
    source: &str,
    external_id: &str,
    reason: &str,
    fingerprint: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE invoice_state SET status = 'flagged', last_error = $3, last_attempted_at = now(),
                pending_fingerprint = $4, next_attempt_at = NULL
          WHERE source = $1 AND external_id = $2",
    )
    .bind(source)
    .bind(external_id)
    .bind(reason)
    .bind(fingerprint)
    .execute(pool)
    .await
    .map_err(StoreError::query("flagging an invoice"))?;
    Ok(())
}

/// `failures retry`: back to `failed`, due now, attempts from zero. Returns rows changed. All
/// (`None`) means failed and dead rows; a discarded row comes back only when named by id.
pub async fn retry(pool: &PgPool, id: Option<i64>) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE invoice_state SET status = 'failed', attempts = 0, next_attempt_at = now()
          WHERE pending IS NOT NULL
            AND (($1::bigint IS NULL AND status IN ('failed', 'dead'))
                 OR (id = $1 AND status IN ('failed', 'dead', 'discarded')))",
    )
    .bind(id)
    .execute(pool)
    .await
    .map_err(StoreError::query("retrying failures"))?;
    Ok(done.rows_affected())
}

/// `failures discard`: stop retrying; the invoice syncs again only when the ERP changes it.
pub async fn discard(pool: &PgPool, id: i64) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE invoice_state SET status = 'discarded', next_attempt_at = NULL
          WHERE id = $1 AND status IN ('failed', 'dead', 'flagged')",
    )
    .bind(id)
    .execute(pool)
    .await
    .map_err(StoreError::query("discarding a failure"))?;
    Ok(done.rows_affected())
}

/// Failed (pending retry), dead, and in-flight ledger rows of a source, in one query.
pub async fn health_counts(pool: &PgPool, source: &str) -> Result<(i64, i64, i64), StoreError> {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM invoice_state WHERE source = $1 AND status = 'failed'),
                (SELECT count(*) FROM invoice_state WHERE source = $1 AND status = 'dead'),
                (SELECT count(*) FROM ledger WHERE source = $1 AND state = 'in_flight')",
    )
    .bind(source)
    .fetch_one(pool)
    .await
    .map_err(StoreError::query("counting failures"))
}
