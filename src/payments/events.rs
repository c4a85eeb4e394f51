//! `payment_events` and `payment_cursors`: the B2B payment lines seen, their acknowledgement by
//! the ERP and their write-back state (see the migration for the states).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::acknowledge::Unacked;
use crate::source::write_back::PaymentKind;
use crate::store::intent::{self, Begun};
use crate::store::leases::Fence;
use crate::store::StoreError;

/// The `write_state` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteState {
    Pending,
    InFlight,
    Written,
    Failed,
    Dead,
    Skipped,
    Off,
    Unknown,
}

impl WriteState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InFlight => "in_flight",
            Self::Written => "written",
            Self::Failed => "failed",
            Self::Dead => "dead",
            Self::Skipped => "skipped",
            Self::Off => "off",
            Self::Unknown => "unknown",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "pending" => Self::Pending,
            "in_flight" => Self::InFlight,
            "written" => Self::Written,
            "failed" => Self::Failed,
            "dead" => Self::Dead,
            "skipped" => Self::Skipped,
            "off" => Self::Off,
            // The CHECK constraint allows nothing else.
            _ => Self::Unknown,
        }
    }
}

/// One payment line (or its refund) as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: i64,
    pub source: String,
    pub payment_id: u64,
    pub b2b_invoice_id: u64,
    pub kind: PaymentKind,
    pub external_id: String,
    pub invoice_number: String,
    pub amount: Decimal,
    pub currency: String,
    pub processing_status: i32,
    pub occurred_at: DateTime<Utc>,
    pub detected_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub write_state: WriteState,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub target_balance: Option<Decimal>,
    pub before_balance: Option<Decimal>,
    pub note: Option<String>,
    pub last_error: Option<String>,
    pub written_at: Option<DateTime<Utc>>,
}

impl Event {
    /// + for a payment, - for a refund.
    pub fn signed(&self) -> Decimal {
        match self.kind {
            PaymentKind::Payment => self.amount,
            PaymentKind::Refund => -self.amount,
        }
    }
}

const COLUMNS: &str = "id, source, payment_id, b2b_invoice_id, kind, external_id, invoice_number,
    amount, currency, processing_status, occurred_at, detected_at, acknowledged_at, write_state,
    attempts, next_attempt_at, target_balance, before_balance, note, last_error, written_at";

#[derive(sqlx::FromRow)]
struct Raw {
    id: i64,
    source: String,
    payment_id: i64,
    b2b_invoice_id: i64,
    kind: String,
    external_id: String,
    invoice_number: String,
    amount: Decimal,
    currency: String,
    processing_status: i32,
    occurred_at: DateTime<Utc>,
    detected_at: DateTime<Utc>,
    acknowledged_at: Option<DateTime<Utc>>,
    write_state: String,
    attempts: i32,
    next_attempt_at: Option<DateTime<Utc>>,
    target_balance: Option<Decimal>,
    before_balance: Option<Decimal>,
    note: Option<String>,
    last_error: Option<String>,
    written_at: Option<DateTime<Utc>>,
}

impl From<Raw> for Event {
    fn from(r: Raw) -> Self {
        Event {
            id: r.id,
            source: r.source,
            payment_id: u64::try_from(r.payment_id).unwrap_or(0),
            b2b_invoice_id: u64::try_from(r.b2b_invoice_id).unwrap_or(0),
            kind: if r.kind == "refund" {
                PaymentKind::Refund
            } else {
                PaymentKind::Payment
            },
            external_id: r.external_id,
            invoice_number: r.invoice_number,
            amount: r.amount,
            currency: r.currency,
            processing_status: r.processing_status,
            occurred_at: r.occurred_at,
            detected_at: r.detected_at,
            acknowledged_at: r.acknowledged_at,
            write_state: WriteState::parse(&r.write_state),
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            target_balance: r.target_balance,
            before_balance: r.before_balance,
            note: r.note,
            last_error: r.last_error,
            written_at: r.written_at,
        }
    }
}

fn db_id(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// The newest B2B `updatedAt` of the payments seen by `source`; `None`: never scanned.
pub async fn cursor(pool: &PgPool, source: &str) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar("SELECT watermark FROM payment_cursors WHERE source = $1")
        .bind(source)
        .fetch_optional(pool)
        .await
        .map_err(StoreError::query("reading the payments cursor"))
}

/// Moves the payments cursor forward (never back).
pub async fn store_cursor(pool: &PgPool, source: &str, watermark: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO payment_cursors (source, watermark) VALUES ($1, $2)
         ON CONFLICT (source) DO UPDATE
            SET watermark = GREATEST(payment_cursors.watermark, EXCLUDED.watermark), updated_at = now()",
    )
    .bind(source)
    .bind(watermark)
    .execute(pool)
    .await
    .map_err(StoreError::query("storing the payments cursor"))?;
    Ok(())
}

/// The ERP invoice behind a B2B invoice id.
#[derive(Debug, Clone)]
pub struct Owner {
    pub external_id: String,
    pub invoice_number: String,
}

/// Which of these B2B invoices belong to `source`, in one query.
pub async fn owners(
    pool: &PgPool,
    source: &str,
    b2b_ids: &[u64],
) -> Result<HashMap<u64, Owner>, StoreError> {
    let ids: Vec<i64> = b2b_ids.iter().copied().map(db_id).collect();
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT b2b_invoice_id, external_id, invoice_number FROM invoice_state
          WHERE source = $1 AND b2b_invoice_id = ANY($2)",
    )
    .bind(source)
    .bind(&ids)
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("finding the invoices of B2B payments"))?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, external_id, invoice_number)| {
            Some((
                u64::try_from(id).ok()?,
                Owner {
                    external_id,
                    invoice_number,
                },
            ))
        })
        .collect())
}

/// A payment line seen in B2B, to record.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub source: &'a str,
    pub payment_id: u64,
    pub b2b_invoice_id: u64,
    pub kind: PaymentKind,
    pub owner: &'a Owner,
    pub amount: Decimal,
    pub currency: &'a str,
    pub processing_status: i32,
    pub occurred_at: DateTime<Utc>,
    pub run_id: Uuid,
    pub write_state: WriteState,
    /// Set for events the ERP is taken to know already (seen on the first scan).
    pub acknowledged: bool,
    pub note: Option<&'a str>,
}

/// Records an event once; `false` when it was already recorded.
pub async fn insert(pool: &PgPool, e: &NewEvent<'_>) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO payment_events (source, payment_id, b2b_invoice_id, kind, external_id,
                invoice_number, amount, currency, processing_status, occurred_at, detected_run,
                write_state, acknowledged_at, note)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                 CASE WHEN $13 THEN now() END, $14)
         ON CONFLICT (source, payment_id, b2b_invoice_id, kind) DO NOTHING",
    )
    .bind(e.source)
    .bind(db_id(e.payment_id))
    .bind(db_id(e.b2b_invoice_id))
    .bind(e.kind.as_str())
    .bind(&e.owner.external_id)
    .bind(&e.owner.invoice_number)
    .bind(e.amount)
    .bind(e.currency)
    .bind(e.processing_status)
    .bind(e.occurred_at)
    .bind(e.run_id)
    .bind(e.write_state.as_str())
    .bind(e.acknowledged)
    .bind(e.note)
    .execute(pool)
    .await
    .map_err(StoreError::query("recording a B2B payment"))?;
    Ok(done.rows_affected() == 1)
}

/// Rows synced before payments were tracked have no `erp_paid`: take it from what was last
/// written (no payment adjusted it then), so the ERP's first import of a payment is seen as one.
pub async fn ensure_baseline(
    pool: &PgPool,
    source: &str,
    external_id: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        r"UPDATE invoice_state
             SET erp_paid = (owned->'original_balance'->>1)::numeric - written_open,
                 erp_balance = written_open
           WHERE source = $1 AND external_id = $2 AND erp_paid IS NULL
             AND written_open IS NOT NULL
             AND (owned->'original_balance'->>1) ~ '^-?[0-9]+(\.[0-9]+)?$'",
    )
    .bind(source)
    .bind(external_id)
    .execute(pool)
    .await
    .map_err(StoreError::query("recording what the ERP was paid"))?;
    Ok(())
}

/// Whether this payment line is already recorded in that direction.
pub async fn exists(
    pool: &PgPool,
    source: &str,
    payment_id: u64,
    b2b_invoice_id: u64,
    kind: PaymentKind,
) -> Result<bool, StoreError> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM payment_events
          WHERE source = $1 AND payment_id = $2 AND b2b_invoice_id = $3 AND kind = $4)",
    )
    .bind(source)
    .bind(db_id(payment_id))
    .bind(db_id(b2b_invoice_id))
    .bind(kind.as_str())
    .fetch_one(pool)
    .await
    .map_err(StoreError::query("looking up a B2B payment"))
}

/// Per ERP invoice: what the ERP had been paid when last looked at, and its unacknowledged
/// events oldest first. Only invoices with such events are in the answer.
pub async fn unacked(
    pool: &PgPool,
    source: &str,
    external_ids: &[String],
) -> Result<HashMap<String, (Option<Decimal>, Vec<Unacked>)>, StoreError> {
    let rows: Vec<(String, i64, String, Decimal, Option<Decimal>)> = sqlx::query_as(
        "SELECT e.external_id, e.id, e.kind, e.amount, s.erp_paid
           FROM payment_events e
           LEFT JOIN invoice_state s ON s.source = e.source AND s.external_id = e.external_id
          WHERE e.source = $1 AND e.external_id = ANY($2) AND e.acknowledged_at IS NULL
          ORDER BY e.id",
    )
    .bind(source)
    .bind(external_ids)
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("reading unacknowledged payments"))?;
    let mut out: HashMap<String, (Option<Decimal>, Vec<Unacked>)> = HashMap::new();
    for (external_id, id, kind, amount, erp_paid) in rows {
        let signed = if kind == "refund" { -amount } else { amount };
        out.entry(external_id)
            .or_insert_with(|| (erp_paid, Vec::new()))
            .1
            .push(Unacked { id, signed });
    }
    Ok(out)
}

/// Records what the ERP has been paid now and the events that accounts for, together.
pub async fn acknowledge(
    pool: &PgPool,
    source: &str,
    external_id: &str,
    erp_paid: Decimal,
    erp_balance: Option<Decimal>,
    ids: &[i64],
) -> Result<(), StoreError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(StoreError::query("opening a transaction"))?;
    if !ids.is_empty() {
        sqlx::query(
            "UPDATE payment_events SET acknowledged_at = now(), updated_at = now()
              WHERE source = $1 AND id = ANY($2) AND acknowledged_at IS NULL",
        )
        .bind(source)
        .bind(ids)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("acknowledging payments"))?;
    }
    sqlx::query(
        "UPDATE invoice_state SET erp_paid = $3, erp_balance = COALESCE($4, erp_balance)
          WHERE source = $1 AND external_id = $2",
    )
    .bind(source)
    .bind(external_id)
    .bind(erp_paid)
    .bind(erp_balance)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::query("recording what the ERP was paid"))?;
    tx.commit()
        .await
        .map_err(StoreError::query("committing acknowledged payments"))
}

/// Events of `source` the write-back should look at now: in flight (to settle first), pending,
/// and failed ones whose retry time has come; oldest first.
pub async fn to_write(pool: &PgPool, source: &str, limit: i64) -> Result<Vec<Event>, StoreError> {
    let rows: Vec<Raw> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM payment_events
          WHERE source = $1 AND (write_state IN ('pending', 'in_flight')
                OR (write_state = 'failed' AND next_attempt_at <= now()))
          ORDER BY id LIMIT $2"
    ))
    .bind(source)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("reading payments to write back"))?;
    Ok(rows.into_iter().map(Event::from).collect())
}

/// Unacknowledged events of one invoice, oldest first.
pub async fn unacked_of(
    pool: &PgPool,
    source: &str,
    external_id: &str,
) -> Result<Vec<Unacked>, StoreError> {
    let mut all = unacked(pool, source, &[external_id.to_owned()]).await?;
    Ok(all
        .remove(external_id)
        .map(|(_, events)| events)
        .unwrap_or_default())
}

/// The ERP's paid amount and balance as the daemon last saw them.
pub async fn erp_seen(
    pool: &PgPool,
    source: &str,
    external_id: &str,
) -> Result<(Option<Decimal>, Option<Decimal>), StoreError> {
    let seen: Option<(Option<Decimal>, Option<Decimal>)> = sqlx::query_as(
        "SELECT erp_paid, erp_balance FROM invoice_state WHERE source = $1 AND external_id = $2",
    )
    .bind(source)
    .bind(external_id)
    .fetch_optional(pool)
    .await
    .map_err(StoreError::query("reading what the ERP was paid"))?;
    Ok(seen.unwrap_or((None, None)))
}

/// The intent, committed before the request ([`intent::open`], [`intent::commit`]):
/// [`Begun::Busy`] when another process took the event.
pub async fn begin_write(
    pool: &PgPool,
    id: i64,
    target: Decimal,
    before: Option<Decimal>,
    fence: &Fence,
) -> Result<Begun, StoreError> {
    let mut tx = intent::open(pool, fence).await?;
    let row = sqlx::query_scalar(
        "UPDATE payment_events
            SET write_state = 'in_flight', attempts = attempts + 1, target_balance = $2,
                before_balance = $3, updated_at = now()
          WHERE id = $1 AND write_state IN ('pending', 'failed')
          RETURNING id",
    )
    .bind(id)
    .bind(target)
    .bind(before)
    .fetch_optional(&mut *tx)
    .await
    .map_err(StoreError::query("recording a payment write-back intent"))?;
    intent::commit(tx, row, "committing a payment write-back intent").await
}

/// One more attempt, for a failure before any intent was taken (reading the ERP failed).
pub async fn count_attempt(pool: &PgPool, id: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE payment_events SET attempts = attempts + 1 WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map_err(StoreError::query("counting a payment write-back attempt"))?;
    Ok(())
}

/// Settles an event's write-back.
pub async fn settle(
    pool: &PgPool,
    id: i64,
    state: WriteState,
    note: Option<&str>,
    error: Option<&str>,
    next_attempt_at: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE payment_events
            SET write_state = $2, note = COALESCE($3, note), last_error = $4,
                next_attempt_at = $5, updated_at = now(),
                written_at = CASE WHEN $2 = 'written' THEN now() ELSE written_at END
          WHERE id = $1",
    )
    .bind(id)
    .bind(state.as_str())
    .bind(note)
    .bind(error)
    .bind(next_attempt_at)
    .execute(pool)
    .await
    .map_err(StoreError::query("settling a payment write-back"))?;
    Ok(())
}

/// Events for `payments list`: all of `source` (or every source), or only those not settled
/// (`pending`: not written, not skipped, or not yet reflected by the ERP); newest first.
pub async fn list(
    pool: &PgPool,
    source: Option<&str>,
    pending_only: bool,
    limit: i64,
) -> Result<Vec<Event>, StoreError> {
    let rows: Vec<Raw> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM payment_events
          WHERE ($1::text IS NULL OR source = $1)
            AND (NOT $2 OR write_state IN ('pending', 'in_flight', 'failed', 'dead', 'unknown')
                 OR acknowledged_at IS NULL)
          ORDER BY id DESC LIMIT $3"
    ))
    .bind(source)
    .bind(pending_only)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("listing payments"))?;
    Ok(rows.into_iter().map(Event::from).collect())
}

/// `payments retry ID`: a failed, dead, unknown or skipped write-back is tried again next cycle,
/// with its attempts reset.
pub async fn retry(pool: &PgPool, id: i64) -> Result<Option<Event>, StoreError> {
    let row: Option<Raw> = sqlx::query_as(&format!(
        "UPDATE payment_events
            SET write_state = 'pending', attempts = 0, next_attempt_at = NULL, last_error = NULL,
                updated_at = now()
          WHERE id = $1 AND write_state IN ('failed', 'dead', 'unknown', 'skipped')
          RETURNING {COLUMNS}"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(StoreError::query("retrying a payment write-back"))?;
    Ok(row.map(Event::from))
}

/// One event by id.
pub async fn get(pool: &PgPool, id: i64) -> Result<Option<Event>, StoreError> {
    let row: Option<Raw> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM payment_events WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(StoreError::query("reading a payment"))?;
    Ok(row.map(Event::from))
}

/// Gauges: events not yet written (pending, in flight, failed) and failed for good (dead,
/// unknown), for `source`.
pub async fn health(pool: &PgPool, source: &str) -> Result<(i64, i64), StoreError> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE write_state IN ('pending', 'in_flight', 'failed')),
                count(*) FILTER (WHERE write_state IN ('dead', 'unknown'))
           FROM payment_events WHERE source = $1",
    )
    .bind(source)
    .fetch_one(pool)
    .await
    .map_err(StoreError::query("counting payments"))
}
