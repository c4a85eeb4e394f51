//! The planner benchmark's what-if: `store::state::load` without the `owned` column.
//!
//! `owned` (the canonical owned content last written) is read for every invoice of every page,
//! but only an update's field diff uses it; for an unchanged invoice the fingerprint decides.
//! This measures what leaving it out of the bulk read would save. It is not the daemon's code.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::PgPool;

use super::super::BenchError;
use crate::store::state::{StateRow, Status};

type Raw = (
    i64,
    String,
    String,
    String,
    Option<i64>,
    Option<String>,
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

fn status(text: &str) -> Status {
    match text {
        "synced" => Status::Synced,
        "failed" => Status::Failed,
        "dead" => Status::Dead,
        "discarded" => Status::Discarded,
        "deleted" => Status::Deleted,
        _ => Status::Flagged,
    }
}

pub(super) async fn load(
    pool: &PgPool,
    source: &str,
    external_ids: &[String],
) -> Result<HashMap<String, StateRow>, BenchError> {
    let rows: Vec<Raw> = sqlx::query_as(
        "SELECT id, source, external_id, invoice_number, b2b_invoice_id, fingerprint,
                written_open, status, pending, pending_fingerprint, last_synced_at,
                last_attempted_at, attempts, next_attempt_at, last_error
           FROM invoice_state WHERE source = $1 AND external_id = ANY($2)",
    )
    .bind(source)
    .bind(external_ids)
    .fetch_all(pool)
    .await
    .map_err(BenchError::db("reading invoice_state without owned"))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let row = StateRow {
                id: r.0,
                source: r.1,
                external_id: r.2,
                invoice_number: r.3,
                b2b_invoice_id: r.4.and_then(|id| u64::try_from(id).ok()),
                fingerprint: r.5,
                owned: None,
                written_open: r.6,
                status: status(&r.7),
                pending: r.8,
                pending_fingerprint: r.9,
                last_synced_at: r.10,
                last_attempted_at: r.11,
                attempts: r.12,
                next_attempt_at: r.13,
                last_error: r.14,
            };
            (row.external_id.clone(), row)
        })
        .collect())
}
