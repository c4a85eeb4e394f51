//! The idempotency ledger: one row per attempted mutation, committed *before* the request.
//!
//! B2B Edition has no idempotency key, so this table is it: an `in_flight` row means "a request
//! may have reached B2B"; nothing may mutate that invoice again until `recover` has settled the
//! row by looking in B2B. A unique index makes the database itself refuse a second in-flight row.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::intent::{self, Begun};
use super::leases::Fence;
use super::StoreError;
use crate::domain::SourceVersion;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
    ZeroBalance,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::ZeroBalance => "zero_balance",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "create" => Self::Create,
            "update" => Self::Update,
            "delete" => Self::Delete,
            _ => Self::ZeroBalance,
        }
    }
}

/// A mutation about to be sent.
#[derive(Debug, Clone)]
pub struct Intent<'a> {
    pub source: &'a str,
    pub external_id: &'a str,
    pub invoice_number: &'a str,
    pub op: Op,
    pub fingerprint: Option<&'a str>,
    pub owned: Option<&'a Value>,
    pub written_open: Option<Decimal>,
    pub b2b_invoice_id: Option<u64>,
    pub request_digest: Option<&'a str>,
    pub attempt: i32,
    pub run_id: Uuid,
    /// The ERP version of the content the request carries.
    pub erp_version: Option<&'a SourceVersion>,
}

/// An in-flight row, as recovery reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct InFlight {
    pub id: i64,
    pub external_id: String,
    pub invoice_number: String,
    pub op: Op,
    pub fingerprint: Option<String>,
    pub owned: Option<Value>,
    pub written_open: Option<Decimal>,
    pub b2b_invoice_id: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub erp_version: Option<SourceVersion>,
    /// Its process is alive and its run unfinished: the request may still be on the wire.
    pub maybe_on_the_wire: bool,
}

fn id_param(id: Option<u64>) -> Option<i64> {
    id.and_then(|i| i64::try_from(i).ok())
}

/// Commits the intent ([`intent::open`], [`intent::commit`]): [`Begun::Busy`] while another
/// mutation of this invoice is still in flight (the unique index on in-flight rows refuses a
/// second one).
pub async fn begin(pool: &PgPool, i: &Intent<'_>, fence: &Fence) -> Result<Begun, StoreError> {
    let mut tx = intent::open(pool, fence).await?;
    let row = sqlx::query_scalar(
        "INSERT INTO ledger (source, external_id, invoice_number, op, fingerprint, owned,
                written_open, state, b2b_invoice_id, request_digest, attempt, run_id, erp_version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'in_flight', $8, $9, $10, $11, $12)
         ON CONFLICT (source, external_id) WHERE state = 'in_flight' DO NOTHING
         RETURNING id",
    )
    .bind(i.source)
    .bind(i.external_id)
    .bind(i.invoice_number)
    .bind(i.op.as_str())
    .bind(i.fingerprint)
    .bind(i.owned)
    .bind(i.written_open)
    .bind(id_param(i.b2b_invoice_id))
    .bind(i.request_digest)
    .bind(i.attempt)
    .bind(i.run_id)
    .bind(i.erp_version.map(SourceVersion::key))
    .fetch_optional(&mut *tx)
    .await
    .map_err(StoreError::query("writing a ledger intent"))?;
    intent::commit(tx, row, "committing a ledger intent").await
}

async fn settle<'e>(
    db: impl PgExecutor<'e>,
    id: i64,
    state: &str,
    b2b_invoice_id: Option<u64>,
    status: Option<u16>,
    excerpt: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE ledger SET state = $2, b2b_invoice_id = COALESCE($3, b2b_invoice_id),
                response_status = COALESCE($4, response_status),
                response_excerpt = COALESCE($5, response_excerpt), updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(id_param(b2b_invoice_id))
    .bind(status.map(i32::from))
    .bind(excerpt.map(|e| e.chars().take(500).collect::<String>()))
    .execute(db)
    .await
    .map_err(StoreError::query("settling a ledger row"))?;
    Ok(())
}

pub async fn succeed<'e>(
    db: impl PgExecutor<'e>,
    id: i64,
    b2b_invoice_id: u64,
    note: &str,
) -> Result<(), StoreError> {
    settle(
        db,
        id,
        "succeeded",
        Some(b2b_invoice_id),
        Some(200),
        Some(note),
    )
    .await
}

/// [`succeed`] for an update, with the age of the B2B state it was built from when it went out.
pub async fn succeed_update<'e>(
    db: impl PgExecutor<'e>,
    id: i64,
    b2b_invoice_id: u64,
    state_age: std::time::Duration,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE ledger SET state = 'succeeded', b2b_invoice_id = $2, response_status = 200,
                response_excerpt = 'updated', state_age_ms = $3, updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(id_param(Some(b2b_invoice_id)))
    .bind(i32::try_from(state_age.as_millis()).unwrap_or(i32::MAX))
    .execute(db)
    .await
    .map_err(StoreError::query("settling a ledger row"))?;
    Ok(())
}

/// Definitely not applied (a 4xx, a refused connection).
pub async fn fail(
    pool: &PgPool,
    id: i64,
    status: Option<u16>,
    why: &str,
) -> Result<(), StoreError> {
    settle(pool, id, "failed", None, status, Some(why)).await
}

/// Settled by recovery as not applied (or superseded): a new attempt may follow.
pub async fn abandon(pool: &PgPool, id: i64, why: &str) -> Result<(), StoreError> {
    settle(pool, id, "abandoned", None, None, Some(why)).await
}

/// The outcome is unknown: the row stays in flight for recovery, with what was seen.
pub async fn note_ambiguous(pool: &PgPool, id: i64, what: &str) -> Result<(), StoreError> {
    settle(pool, id, "in_flight", None, None, Some(what)).await
}

/// In-flight rows of `source`, with whether each may still be on the wire: its run has not
/// finished, its process is still connected to the database (by `application_name`), and it
/// is younger than `in_transit` (after which its request has certainly ended, one way or the
/// other). Recovery leaves those to their process.
pub async fn in_flight(
    pool: &PgPool,
    source: &str,
    in_transit: std::time::Duration,
) -> Result<Vec<InFlight>, StoreError> {
    type Raw = (
        i64,
        String,
        String,
        String,
        Option<String>,
        Option<Value>,
        Option<Decimal>,
        Option<i64>,
        DateTime<Utc>,
        Option<String>,
        bool,
    );
    let rows: Vec<Raw> = sqlx::query_as(
        "SELECT l.id, l.external_id, l.invoice_number, l.op, l.fingerprint, l.owned, l.written_open,
                l.b2b_invoice_id, l.created_at, l.erp_version,
                (r.finished_at IS NULL AND r.process LIKE $2 || '%'
                 AND l.created_at > now() - make_interval(secs => $3)
                 AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.application_name = r.process))
           FROM ledger l LEFT JOIN sync_runs r ON r.id = l.run_id
          WHERE l.source = $1 AND l.state = 'in_flight' ORDER BY l.id",
    )
    .bind(source)
    .bind(super::PROCESS_PREFIX)
    .bind(in_transit.as_secs_f64())
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("reading in-flight ledger rows"))?;
    Ok(rows
        .into_iter()
        .map(|r| InFlight {
            id: r.0,
            external_id: r.1,
            invoice_number: r.2,
            op: Op::parse(&r.3),
            fingerprint: r.4,
            owned: r.5,
            written_open: r.6,
            b2b_invoice_id: r.7.and_then(|i| u64::try_from(i).ok()),
            created_at: r.8,
            erp_version: r.9.as_deref().and_then(SourceVersion::parse_key),
            maybe_on_the_wire: r.10,
        })
        .collect())
}

/// In-flight rows per source (for `status` and readiness).
pub async fn in_flight_counts(pool: &PgPool) -> Result<Vec<(String, i64)>, StoreError> {
    sqlx::query_as("SELECT source, count(*) FROM ledger WHERE state = 'in_flight' GROUP BY source ORDER BY source")
        .fetch_all(pool)
        .await
        .map_err(StoreError::query("counting in-flight ledger rows"))
}

/// Deletes settled rows older than `before`; in-flight rows are never pruned.
pub async fn prune(pool: &PgPool, before: DateTime<Utc>) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM ledger WHERE state <> 'in_flight' AND created_at < $1")
        .bind(before)
        .execute(pool)
        .await
        .map_err(StoreError::query("pruning the ledger"))?;
    Ok(done.rows_affected())
}
