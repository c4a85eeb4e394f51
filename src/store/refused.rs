//! `refused_records`: ERP records a source could not take, where operators look (`failures
//! list`, `status`, the `b2bsync_records_refused_total` and `b2bsync_refused_records` metrics).
//!
//! One row per refused invoice (its external id), or per file line when the record's id could
//! not be read. Each page read from a source is taken in by [`take_page`]: its refused records
//! are recorded (a repeat refusal updates the row) and a valid record of an external id deletes
//! that id's row: the record is no longer refused, and it syncs (or fails, and is then listed as
//! a failed invoice). Rows without an id stay until `failures dismiss`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::StoreError;
use crate::domain::{RecordError, RecordLocator, SourceInvoice};

/// One refused record, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RefusedRow {
    pub id: i64,
    pub source: String,
    pub external_id: Option<String>,
    pub file: Option<String>,
    pub line: Option<i64>,
    pub field: Option<String>,
    pub reason: String,
    pub first_refused_at: DateTime<Utc>,
    pub last_refused_at: DateTime<Utc>,
    pub times_refused: i32,
}

impl RefusedRow {
    /// Where the record is: `a.csv line 12`, or `record INV-7`.
    pub fn place(&self) -> String {
        match (&self.file, self.line, &self.external_id) {
            (Some(file), Some(line), _) => format!("{file} line {line}"),
            (_, _, Some(id)) => format!("record {id}"),
            _ => "a record without an id".to_owned(),
        }
    }
}

/// What one refusal says, ready for the table.
struct Refusal {
    key: String,
    external_id: Option<String>,
    file: Option<String>,
    line: Option<i64>,
    field: Option<String>,
    reason: String,
}

fn refusal(e: &RecordError) -> Refusal {
    let id_key = |id: &str| (!id.trim().is_empty()).then(|| format!("id:{id}"));
    let line = |n: u64| i64::try_from(n).ok();
    let (key, external_id, file, at) = match &e.record {
        RecordLocator::Id(id) => (id_key(id), Some(id.to_string()), None, None),
        RecordLocator::IdAtLine { id, file, line: n } => (
            id_key(id),
            Some(id.to_string()),
            Some(file.to_string()),
            line(*n),
        ),
        RecordLocator::Line { file, line: n } => (None, None, Some(file.to_string()), line(*n)),
    };
    Refusal {
        key: key.unwrap_or_else(|| format!("at:{}", e.record)),
        external_id: external_id.filter(|id| !id.trim().is_empty()),
        file,
        line: at,
        field: e.field.as_deref().map(str::to_owned),
        reason: e.reason.to_string(),
    }
}

/// Takes in a page read from `source` in `run_id`: records its refusals, and clears the rows of
/// ids it holds a valid record of. Within a page the later record of an id wins.
pub async fn take_page(
    pool: &PgPool,
    source: &str,
    run_id: Uuid,
    records: &[Result<SourceInvoice, RecordError>],
) -> Result<(), StoreError> {
    let mut last: BTreeMap<String, Option<Refusal>> = BTreeMap::new();
    for record in records {
        match record {
            Ok(invoice) => {
                last.insert(format!("id:{}", invoice.external_id), None);
            }
            Err(e) => {
                let r = refusal(e);
                last.insert(r.key.clone(), Some(r));
            }
        }
    }
    let (refused, taken): (Vec<_>, Vec<_>) = last.into_iter().partition(|(_, r)| r.is_some());
    let taken: Vec<String> = taken.into_iter().map(|(key, _)| key).collect();
    let refused: Vec<Refusal> = refused.into_iter().filter_map(|(_, r)| r).collect();
    if !taken.is_empty() {
        sqlx::query("DELETE FROM refused_records WHERE source = $1 AND record_key = ANY($2)")
            .bind(source)
            .bind(&taken)
            .execute(pool)
            .await
            .map_err(StoreError::query("clearing refused records"))?;
    }
    if !refused.is_empty() {
        record(pool, source, run_id, &refused).await?;
        metrics::counter!(crate::telemetry_metrics::RECORDS_REFUSED, "source" => source.to_owned())
            .increment(u64::try_from(refused.len()).unwrap_or(u64::MAX));
    }
    // The gauge of listed refusals is published with the source's health (`store::health`).
    Ok(())
}

async fn record(
    pool: &PgPool,
    source: &str,
    run_id: Uuid,
    refused: &[Refusal],
) -> Result<(), StoreError> {
    let column = |f: fn(&Refusal) -> Option<String>| refused.iter().map(f).collect::<Vec<_>>();
    let keys = column(|r| Some(r.key.clone()));
    let ids = column(|r| r.external_id.clone());
    let files = column(|r| r.file.clone());
    let fields = column(|r| r.field.clone());
    let reasons = column(|r| Some(r.reason.clone()));
    let lines: Vec<Option<i64>> = refused.iter().map(|r| r.line).collect();
    sqlx::query(
        "INSERT INTO refused_records (source, record_key, external_id, file, line, field, reason,
                run_id)
         SELECT $1, k, i, f, l, fd, r, $8
           FROM UNNEST($2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[])
                AS u(k, i, f, l, fd, r)
         ON CONFLICT (source, record_key) DO UPDATE SET
            external_id = EXCLUDED.external_id, file = EXCLUDED.file, line = EXCLUDED.line,
            field = EXCLUDED.field, reason = EXCLUDED.reason, run_id = EXCLUDED.run_id,
            last_refused_at = now(), times_refused = refused_records.times_refused + 1",
    )
    .bind(source)
    .bind(keys)
    .bind(ids)
    .bind(files)
    .bind(lines)
    .bind(fields)
    .bind(reasons)
    .bind(run_id)
    .execute(pool)
    .await
    .map_err(StoreError::query("recording refused records"))?;
    Ok(())
}

type Raw = (
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
    i32,
);

/// The refused records of every source (or of one), newest first.
pub async fn list(pool: &PgPool, source: Option<&str>) -> Result<Vec<RefusedRow>, StoreError> {
    let rows: Vec<Raw> = sqlx::query_as(
        "SELECT id, source, external_id, file, line, field, reason, first_refused_at,
                last_refused_at, times_refused
           FROM refused_records WHERE $1::text IS NULL OR source = $1
          ORDER BY last_refused_at DESC, id",
    )
    .bind(source)
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("reading refused records"))?;
    Ok(rows.into_iter().map(row).collect())
}

fn row(r: Raw) -> RefusedRow {
    RefusedRow {
        id: r.0,
        source: r.1,
        external_id: r.2,
        file: r.3,
        line: r.4,
        field: r.5,
        reason: r.6,
        first_refused_at: r.7,
        last_refused_at: r.8,
        times_refused: r.9,
    }
}

/// Refused records per source.
pub async fn counts(pool: &PgPool) -> Result<Vec<(String, i64)>, StoreError> {
    sqlx::query_as("SELECT source, count(*) FROM refused_records GROUP BY source")
        .fetch_all(pool)
        .await
        .map_err(StoreError::query("counting refused records"))
}

/// `failures dismiss`: removes one refused record by id, or all of them (of one source); they
/// are listed again only if the ERP sends them again and they are refused again.
pub async fn dismiss(
    pool: &PgPool,
    id: Option<i64>,
    source: Option<&str>,
) -> Result<Vec<RefusedRow>, StoreError> {
    let rows: Vec<Raw> = sqlx::query_as(
        "DELETE FROM refused_records
          WHERE ($1::bigint IS NULL OR id = $1) AND ($2::text IS NULL OR source = $2)
         RETURNING id, source, external_id, file, line, field, reason, first_refused_at,
                   last_refused_at, times_refused",
    )
    .bind(id)
    .bind(source)
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("dismissing refused records"))?;
    Ok(rows.into_iter().map(row).collect())
}
