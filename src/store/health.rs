//! What the per-source health gauges show, read from the database in one query for all sources,
//! so they exist from start-up and stay true between cycles (`/metrics` refreshes them).

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::StoreError;

/// One source's health, as the database has it now.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceHealth {
    pub source: String,
    /// Invoices failed and waiting for a retry.
    pub failed: i64,
    pub dead: i64,
    /// Mutations whose outcome is not settled yet.
    pub in_flight: i64,
    /// The end of the last cycle that completed (ok or partial).
    pub last_success: Option<DateTime<Utc>>,
    /// Since when the oldest change not yet in B2B has been waiting: the first failure of an
    /// invoice that is failed, dead or flagged, or the oldest mutation still in flight.
    pub oldest_unsynced: Option<DateTime<Utc>>,
    pub refused: i64,
    pub payments_pending: i64,
    pub payments_stuck: i64,
}

pub async fn of_sources(
    pool: &PgPool,
    sources: &[String],
) -> Result<Vec<SourceHealth>, StoreError> {
    type Row = (
        String,
        i64,
        i64,
        i64,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        i64,
        i64,
        i64,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT s.name,
                (SELECT count(*) FROM invoice_state WHERE source = s.name AND status = 'failed'),
                (SELECT count(*) FROM invoice_state WHERE source = s.name AND status = 'dead'),
                (SELECT count(*) FROM ledger WHERE source = s.name AND state = 'in_flight'),
                (SELECT max(finished_at) FROM sync_runs
                  WHERE source = s.name AND outcome IN ('ok', 'partial') AND scope = 'full'),
                (SELECT min(pending_since) FROM invoice_state
                  WHERE source = s.name AND status IN ('failed', 'dead', 'flagged')),
                (SELECT min(created_at) FROM ledger WHERE source = s.name AND state = 'in_flight'),
                (SELECT count(*) FROM refused_records WHERE source = s.name),
                (SELECT count(*) FROM payment_events WHERE source = s.name
                    AND write_state IN ('pending', 'in_flight', 'failed')),
                (SELECT count(*) FROM payment_events WHERE source = s.name
                    AND write_state IN ('dead', 'unknown'))
           FROM unnest($1::text[]) AS s(name)",
    )
    .bind(sources)
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("reading the sources' health"))?;
    Ok(rows
        .into_iter()
        .map(|r| SourceHealth {
            source: r.0,
            failed: r.1,
            dead: r.2,
            in_flight: r.3,
            last_success: r.4,
            oldest_unsynced: r.5.into_iter().chain(r.6).min(),
            refused: r.7,
            payments_pending: r.8,
            payments_stuck: r.9,
        })
        .collect())
}
