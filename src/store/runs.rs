//! `sync_runs`: one row per cycle of a source, for `status`, metrics and post-mortems.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::StoreError;

/// What a cycle did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub created: i32,
    pub updated: i32,
    pub unchanged: i32,
    pub deleted: i32,
    pub failed: i32,
    pub recovered: i32,
    /// Records older than the version B2B holds: refused, never pushed (each named in notices).
    pub stale: i32,
    /// Skipped while waiting for a retry, or in the dead letter, discarded or flagged.
    pub waiting: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every invoice synced.
    Ok,
    /// Some invoices failed (recorded, retried later).
    Partial,
    /// The cycle itself failed (source unreachable, database error).
    Failed,
    /// Another process held the source.
    Skipped,
    /// Shutdown began mid-cycle: settled invoices are committed, the rest is read again next time.
    Stopped,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Self::Ok,
        Self::Partial,
        Self::Failed,
        Self::Skipped,
        Self::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Partial => "partial",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunRow {
    pub id: Uuid,
    pub source: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub counts: Counts,
    pub b2b_calls: i64,
    pub erp_calls: i64,
    pub error: Option<String>,
}

/// Records a run's start, with the process it belongs to (the connection's `application_name`
/// when it is a daemon's, see `store::process_name`).
/// `full`: the run reads the source's whole change feed; else only invoices named by a webhook
/// (`scope` 'invoices', left out of "last success").
pub async fn start(pool: &PgPool, id: Uuid, source: &str, full: bool) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sync_runs (id, source, process, scope) VALUES ($1, $2,
                NULLIF(current_setting('application_name'), ''), $3)",
    )
    .bind(id)
    .bind(source)
    .bind(if full { "full" } else { "invoices" })
    .execute(pool)
    .await
    .map_err(StoreError::query("recording a run's start"))?;
    Ok(())
}

/// Requests a cycle sent, B2B Edition and ERP apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Calls {
    pub b2b: u64,
    pub erp: u64,
}

/// Records a run's end. Creates and updates are counted from the ledger too, and the larger
/// count is kept (and returned): the truth even when a COMMIT's acknowledgement was lost with the
/// connection (committed, but never seen as such by the cycle).
pub async fn finish(
    pool: &PgPool,
    id: Uuid,
    outcome: Outcome,
    c: &Counts,
    calls: Calls,
    error: Option<&str>,
) -> Result<(i32, i32), StoreError> {
    sqlx::query_as(
        "UPDATE sync_runs SET finished_at = now(), outcome = $2,
                created = GREATEST($3, (SELECT count(*) FROM ledger
                                         WHERE run_id = $1 AND state = 'succeeded' AND op = 'create')),
                updated = GREATEST($4, (SELECT count(*) FROM ledger
                                         WHERE run_id = $1 AND state = 'succeeded' AND op = 'update')),
                unchanged = $5, deleted = $6, failed = $7, recovered = $8, b2b_calls = $9, error = $10,
                stale = $11, waiting = $12, erp_calls = $13
          WHERE id = $1
          RETURNING created, updated",
    )
    .bind(id)
    .bind(outcome.as_str())
    .bind(c.created)
    .bind(c.updated)
    .bind(c.unchanged)
    .bind(c.deleted)
    .bind(c.failed)
    .bind(c.recovered)
    .bind(i64::try_from(calls.b2b).unwrap_or(i64::MAX))
    .bind(error)
    .bind(c.stale)
    .bind(c.waiting)
    .bind(i64::try_from(calls.erp).unwrap_or(i64::MAX))
    .fetch_one(pool)
    .await
    .map_err(StoreError::query("recording a run's end"))
}

/// The latest `limit` runs of each source (or of one).
pub async fn recent(
    pool: &PgPool,
    source: Option<&str>,
    limit: i64,
) -> Result<Vec<RunRow>, StoreError> {
    type Raw = (
        Uuid,
        String,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
        Option<String>,
        i32,
        i32,
        i32,
        i32,
        i32,
        i32,
        i64,
        Option<String>,
        i32,
        i32,
        i64,
    );
    let rows: Vec<Raw> = sqlx::query_as(
        "SELECT id, source, started_at, finished_at, outcome, created, updated, unchanged, deleted,
                failed, recovered, b2b_calls, error, stale, waiting, erp_calls
           FROM (SELECT *, row_number() OVER (PARTITION BY source ORDER BY started_at DESC) AS n
                   FROM sync_runs WHERE $1::text IS NULL OR source = $1) r
          WHERE n <= $2 ORDER BY source, started_at DESC",
    )
    .bind(source)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("reading runs"))?;
    Ok(rows
        .into_iter()
        .map(|r| RunRow {
            id: r.0,
            source: r.1,
            started_at: r.2,
            finished_at: r.3,
            outcome: r.4,
            counts: Counts {
                created: r.5,
                updated: r.6,
                unchanged: r.7,
                deleted: r.8,
                failed: r.9,
                recovered: r.10,
                stale: r.13,
                waiting: r.14,
            },
            b2b_calls: r.11,
            erp_calls: r.15,
            error: r.12,
        })
        .collect())
}

pub async fn prune(pool: &PgPool, before: DateTime<Utc>) -> Result<u64, StoreError> {
    let done =
        sqlx::query("DELETE FROM sync_runs WHERE started_at < $1 AND finished_at IS NOT NULL")
            .bind(before)
            .execute(pool)
            .await
            .map_err(StoreError::query("pruning runs"))?;
    Ok(done.rows_affected())
}
