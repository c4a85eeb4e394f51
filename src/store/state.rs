//! `invoice_state`: what B2B holds for each ERP invoice, and how its latest attempt went.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::{PgExecutor, PgPool};

use super::StoreError;
use crate::domain::SourceVersion;

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
    /// The ERP version of the content B2B holds (with `fingerprint`).
    pub erp_version: Option<SourceVersion>,
    pub status: Status,
    pub pending: Option<Value>,
    pub pending_fingerprint: Option<String>,
    /// The ERP version of the kept `pending` record.
    pub pending_version: Option<SourceVersion>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub last_attempted_at: Option<DateTime<Utc>>,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl StateRow {
    /// Whether a record of `version` is older than what the daemon already knows of this
    /// invoice (the content B2B holds, or a newer record still waiting to be pushed).
    pub fn is_newer_than(&self, version: Option<&SourceVersion>) -> bool {
        crate::domain::version::is_older(
            version,
            &[self.erp_version.as_ref(), self.pending_version.as_ref()],
        )
    }

    /// The newest version known of this invoice, if any.
    pub fn newest_version(&self) -> Option<&SourceVersion> {
        self.erp_version.iter().chain(&self.pending_version).max()
    }
}

const COLUMNS: &str = "id, source, external_id, invoice_number, b2b_invoice_id, fingerprint, owned,
    written_open, erp_version, status, pending, pending_fingerprint, pending_version,
    last_synced_at, last_attempted_at, attempts, next_attempt_at, last_error";

#[derive(sqlx::FromRow)]
struct Raw {
    id: i64,
    source: String,
    external_id: String,
    invoice_number: String,
    b2b_invoice_id: Option<i64>,
    fingerprint: Option<String>,
    owned: Option<Value>,
    written_open: Option<Decimal>,
    erp_version: Option<String>,
    status: String,
    pending: Option<Value>,
    pending_fingerprint: Option<String>,
    pending_version: Option<String>,
    last_synced_at: Option<DateTime<Utc>>,
    last_attempted_at: Option<DateTime<Utc>>,
    attempts: i32,
    next_attempt_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

fn row(r: Raw) -> StateRow {
    StateRow {
        id: r.id,
        source: r.source,
        external_id: r.external_id,
        invoice_number: r.invoice_number,
        b2b_invoice_id: r.b2b_invoice_id.and_then(|id| u64::try_from(id).ok()),
        fingerprint: r.fingerprint,
        owned: r.owned,
        written_open: r.written_open,
        erp_version: r.erp_version.as_deref().and_then(SourceVersion::parse_key),
        status: Status::parse(&r.status),
        pending: r.pending,
        pending_fingerprint: r.pending_fingerprint,
        pending_version: r
            .pending_version
            .as_deref()
            .and_then(SourceVersion::parse_key),
        last_synced_at: r.last_synced_at,
        last_attempted_at: r.last_attempted_at,
        attempts: r.attempts,
        next_attempt_at: r.next_attempt_at,
        last_error: r.last_error,
    }
}

/// Rows read for a page, by their ERP id.
fn by_external_id(rows: Vec<Raw>) -> HashMap<String, StateRow> {
    rows.into_iter()
        .map(row)
        .map(|r| (r.external_id.clone(), r))
        .collect()
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
    Ok(by_external_id(rows))
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
            "owned" => {
                "CASE WHEN s.fingerprint IS DISTINCT FROM p.fp THEN s.owned END AS owned".to_owned()
            }
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
    Ok(by_external_id(rows))
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
    /// The ERP version of that content.
    pub erp_version: Option<&'a SourceVersion>,
    /// What the ERP had been paid (total - balance) in the record synced; `None` keeps the
    /// value known before (recovery works from the ledger, which does not have it).
    pub erp_paid: Option<Decimal>,
    /// The ERP's balance in that record (same rule).
    pub erp_balance: Option<Decimal>,
}

/// B2B holds `s` after this daemon's own request succeeded. A kept record of a *newer* version
/// (both versions known) stays pending and due: it is pushed next, never dropped.
pub async fn mark_synced<'e>(db: impl PgExecutor<'e>, s: &Synced<'_>) -> Result<(), StoreError> {
    upsert_synced(
        db,
        s,
        "invoice_state.pending_version > EXCLUDED.erp_version",
        "recording a synced invoice",
    )
    .await
}

/// Recovery found that a request whose outcome was unknown was applied: B2B holds `s`. Any
/// other record kept since (a newer export that arrived while the outcome was unknown) stays
/// pending and due, so the next step compares it with what was adopted and pushes it as an
/// update; only a record known to be the same or older is dropped.
pub async fn mark_adopted<'e>(db: impl PgExecutor<'e>, s: &Synced<'_>) -> Result<(), StoreError> {
    upsert_synced(
        db,
        s,
        "invoice_state.pending_fingerprint IS DISTINCT FROM EXCLUDED.fingerprint
         AND NOT coalesce(invoice_state.pending_version <= EXCLUDED.erp_version, false)",
        "recording an adopted invoice",
    )
    .await
}

/// The one upsert behind [`mark_synced`] and [`mark_adopted`]; `keep` (SQL over the old row
/// `invoice_state` and the new `EXCLUDED`) says when the kept pending record survives.
async fn upsert_synced<'e>(
    db: impl PgExecutor<'e>,
    s: &Synced<'_>,
    keep: &str,
    what: &'static str,
) -> Result<(), StoreError> {
    let keep = format!("(invoice_state.pending IS NOT NULL AND {keep})");
    sqlx::query(&format!(
        "INSERT INTO invoice_state (source, external_id, invoice_number, b2b_invoice_id,
                fingerprint, owned, written_open, erp_version, status, last_synced_at,
                last_attempted_at, attempts, erp_paid, erp_balance)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $10, 'synced', now(), now(), 0, $8, $9)
         ON CONFLICT (source, external_id) DO UPDATE SET
            invoice_number = EXCLUDED.invoice_number, b2b_invoice_id = EXCLUDED.b2b_invoice_id,
            fingerprint = EXCLUDED.fingerprint, owned = EXCLUDED.owned,
            written_open = EXCLUDED.written_open, erp_version = EXCLUDED.erp_version,
            status = CASE WHEN {keep}
                          THEN (CASE WHEN invoice_state.status = 'dead' THEN 'dead' ELSE 'failed' END)
                          ELSE 'synced' END,
            last_synced_at = now(), last_attempted_at = now(),
            attempts = CASE WHEN {keep} THEN invoice_state.attempts ELSE 0 END,
            next_attempt_at = CASE WHEN {keep} THEN LEAST(invoice_state.next_attempt_at, now()) END,
            last_error = CASE WHEN {keep} THEN invoice_state.last_error END,
            pending = CASE WHEN {keep} THEN invoice_state.pending END,
            pending_fingerprint = CASE WHEN {keep} THEN invoice_state.pending_fingerprint END,
            pending_version = CASE WHEN {keep} THEN invoice_state.pending_version END,
            pending_since = CASE WHEN {keep} THEN invoice_state.pending_since END,
            erp_paid = COALESCE(EXCLUDED.erp_paid, invoice_state.erp_paid),
            erp_balance = COALESCE(EXCLUDED.erp_balance, invoice_state.erp_balance)"
    ))
    .bind(s.source)
    .bind(s.external_id)
    .bind(s.invoice_number)
    .bind(i64::try_from(s.b2b_invoice_id).unwrap_or(i64::MAX))
    .bind(s.fingerprint)
    .bind(s.owned)
    .bind(s.written_open)
    .bind(s.erp_paid)
    .bind(s.erp_balance)
    .bind(s.erp_version.map(SourceVersion::key))
    .execute(db)
    .await
    .map_err(StoreError::query(what))?;
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
    /// The ERP version of `pending`.
    pub pending_version: Option<&'a SourceVersion>,
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
                pending_fingerprint, attempts, last_attempted_at, next_attempt_at, last_error,
                pending_version, pending_since)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now(), $8, $9, $10, now())
         ON CONFLICT (source, external_id) DO UPDATE SET
            invoice_number = EXCLUDED.invoice_number, status = EXCLUDED.status,
            pending = EXCLUDED.pending, pending_fingerprint = EXCLUDED.pending_fingerprint,
            pending_version = EXCLUDED.pending_version,
            pending_since = COALESCE(invoice_state.pending_since, now()),
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
    .bind(f.pending_version.map(SourceVersion::key))
    .execute(db)
    .await
    .map_err(StoreError::query("recording a failure"))?;
    Ok(())
}

/// An ERP invoice that was deleted or voided, as the state table records it once handled.
#[derive(Debug, Clone, Copy)]
pub struct Deletion<'a> {
    pub source: &'a str,
    pub external_id: &'a str,
    pub invoice_number: &'a str,
    pub fingerprint: Option<&'a str>,
    pub version: Option<&'a SourceVersion>,
}

/// Deleted or voided in the ERP, and gone from B2B (deleted there, or never created):
/// `b2b_invoice_id` is cleared.
pub async fn deleted_from_b2b(pool: &PgPool, d: &Deletion<'_>) -> Result<(), StoreError> {
    mark_deleted(pool, d, false).await
}

/// Deleted or voided in the ERP, and kept in B2B (the `ignore` policy, or its open balance set
/// to zero): `b2b_invoice_id` is kept, and the balance last written is zero.
pub async fn deleted_kept_in_b2b(pool: &PgPool, d: &Deletion<'_>) -> Result<(), StoreError> {
    mark_deleted(pool, d, true).await
}

async fn mark_deleted(
    pool: &PgPool,
    d: &Deletion<'_>,
    still_in_b2b: bool,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO invoice_state (source, external_id, invoice_number, status, fingerprint,
                last_attempted_at, last_synced_at, erp_version)
         VALUES ($1, $2, $3, 'deleted', $5, now(), now(), $6)
         ON CONFLICT (source, external_id) DO UPDATE SET
            status = 'deleted', fingerprint = $5, erp_version = $6, pending_version = NULL,
            last_attempted_at = now(), last_synced_at = now(),
            b2b_invoice_id = CASE WHEN $4 THEN invoice_state.b2b_invoice_id ELSE NULL END,
            written_open = CASE WHEN $4 THEN 0 ELSE NULL END,
            attempts = 0, next_attempt_at = NULL, last_error = NULL, pending = NULL,
            pending_fingerprint = NULL, pending_since = NULL",
    )
    .bind(d.source)
    .bind(d.external_id)
    .bind(d.invoice_number)
    .bind(still_in_b2b)
    .bind(d.fingerprint)
    .bind(d.version.map(SourceVersion::key))
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

/// Every row of `source` (`reconcile` compares them with ERP and B2B).
pub async fn all_of_source(pool: &PgPool, source: &str) -> Result<Vec<StateRow>, StoreError> {
    let rows: Vec<Raw> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM invoice_state WHERE source = $1 ORDER BY external_id"
    ))
    .bind(source)
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("reading invoice_state"))?;
    Ok(rows.into_iter().map(row).collect())
}

/// The ERP ids other sources (`sources`) keep a row of: invoices of theirs in a shared store,
/// which `reconcile` of another source must not call orphans.
pub async fn external_ids_of(
    pool: &PgPool,
    sources: &[String],
) -> Result<std::collections::HashSet<String>, StoreError> {
    if sources.is_empty() {
        return Ok(std::collections::HashSet::new());
    }
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT external_id FROM invoice_state WHERE source = ANY($1)")
            .bind(sources)
            .fetch_all(pool)
            .await
            .map_err(StoreError::query("reading invoice_state"))?;
    Ok(ids.into_iter().collect())
}

/// `reconcile --repair`: the next cycle plans these invoices again although the ERP did not
/// change them. `requeue` forgets the synced fingerprint (an update is planned from the current
/// B2B state); `recreate` also forgets the B2B invoice id, which no longer exists (a create is
/// planned). Failed, dead, discarded and flagged rows are left to `failures`. Returns the rows
/// changed.
pub async fn forget_for_repair(
    pool: &PgPool,
    source: &str,
    requeue: &[String],
    recreate: &[String],
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE invoice_state SET fingerprint = NULL,
                b2b_invoice_id = CASE WHEN external_id = ANY($3) THEN NULL ELSE b2b_invoice_id END,
                written_open = CASE WHEN external_id = ANY($3) THEN NULL ELSE written_open END
          WHERE source = $1 AND status = 'synced'
            AND (external_id = ANY($2) OR external_id = ANY($3))",
    )
    .bind(source)
    .bind(requeue)
    .bind(recreate)
    .execute(pool)
    .await
    .map_err(StoreError::query("queueing invoices for repair"))?;
    Ok(done.rows_affected())
}
