//! `resync`: make the next cycle re-read and re-plan chosen invoices although nothing changed.
//!
//! Two things make a cycle skip an invoice: the cursor (an incremental source reads only what
//! changed since it) and the fingerprint (an unchanged record costs no B2B call). A resync
//! forgets the fingerprint of the chosen state rows and rewinds the cursor far enough that the
//! source hands those invoices out again (a full-scan source such as Alloy reads everything
//! every cycle anyway). The re-push is an ordinary update: it starts from the invoice's current
//! B2B details and changes only the owned fields, so what a person added there is kept.
//!
//! Only invoices B2B holds (`synced` rows with a B2B id) are re-pushed; invoices never synced
//! are created by the next cycle anyway once the source hands them out, and failed ones follow
//! their own retry schedule (`failures retry`). The change is one transaction. A cycle already
//! running when the resync is made may still record its own cursor and fingerprints after it:
//! resync when the source is idle, or run it again after that cycle.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::source::Cursor;
use crate::store::{cursors, StoreError};

/// Which invoices of a source to re-push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every invoice B2B holds for the source; the cursor restarts from the beginning.
    All,
    /// Invoices whose ERP version (updated-at) is at or after this instant (invoices without a
    /// known version: synced at or after it); the cursor goes back to it.
    Since(DateTime<Utc>),
    /// These ERP ids (B2B `externalId`s); the cursor goes back to the oldest of their versions.
    Invoices(Vec<String>),
}

/// One invoice a resync re-pushes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ResyncRow {
    pub external_id: String,
    pub invoice_number: String,
    pub b2b_invoice_id: i64,
    /// The ERP version B2B holds (`None`: unknown).
    pub erp_version: Option<String>,
}

/// What a resync did (or, dry, would do).
#[derive(Debug, Clone, Serialize)]
pub struct ResyncReport {
    pub source: String,
    pub dry_run: bool,
    /// The invoices the next cycle re-pushes.
    pub invoices: Vec<ResyncRow>,
    /// Named ids (`--invoice`) that B2B does not hold for this source (never synced, failed,
    /// deleted): nothing to re-push; the next cycle handles them as usual.
    pub not_in_b2b: Vec<String>,
    pub cursor_before: Cursor,
    pub cursor_after: Cursor,
}

/// Re-pushes `selection` of `source` at the next cycle; with `dry_run`, only says what would be.
pub async fn resync(
    pool: &PgPool,
    source: &str,
    selection: &Selection,
    dry_run: bool,
) -> Result<ResyncReport, StoreError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(StoreError::query("starting a resync"))?;
    // Serialises resyncs of one source with each other.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('b2bsync-resync:' || $1))")
        .bind(source)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("locking the source for a resync"))?;
    let base = "SELECT external_id, invoice_number, b2b_invoice_id, erp_version
                  FROM invoice_state
                 WHERE source = $1 AND status = 'synced' AND b2b_invoice_id IS NOT NULL";
    let invoices: Vec<ResyncRow> = match selection {
        Selection::All => {
            sqlx::query_as(&format!("{base} ORDER BY external_id"))
                .bind(source)
                .fetch_all(&mut *tx)
                .await
        }
        Selection::Since(since) => {
            sqlx::query_as(&format!(
                "{base} AND (erp_version >= $2 OR (erp_version IS NULL AND last_synced_at >= $3))
             ORDER BY external_id"
            ))
            .bind(source)
            .bind(since.to_rfc3339_opts(SecondsFormat::Nanos, true))
            .bind(since)
            .fetch_all(&mut *tx)
            .await
        }
        Selection::Invoices(ids) => {
            sqlx::query_as(&format!(
                "{base} AND external_id = ANY($2) ORDER BY external_id"
            ))
            .bind(source)
            .bind(ids)
            .fetch_all(&mut *tx)
            .await
        }
    }
    .map_err(StoreError::query("reading the invoices to resync"))?;
    let not_in_b2b = match selection {
        Selection::Invoices(ids) => ids
            .iter()
            .filter(|id| !invoices.iter().any(|r| &r.external_id == *id))
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    let cursor_before = cursors::load(pool, source).await?;
    let cursor_after = rewound(&cursor_before, selection, &invoices);
    if !dry_run {
        let ids: Vec<&str> = invoices.iter().map(|r| r.external_id.as_str()).collect();
        sqlx::query(
            "UPDATE invoice_state SET fingerprint = NULL
              WHERE source = $1 AND status = 'synced' AND external_id = ANY($2)",
        )
        .bind(source)
        .bind(&ids)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("forgetting fingerprints for a resync"))?;
        if cursor_after != cursor_before {
            let value = serde_json::to_value(&cursor_after).unwrap_or_default();
            sqlx::query(
                "INSERT INTO sources (name, cursor, updated_at) VALUES ($1, $2, now())
                 ON CONFLICT (name) DO UPDATE SET cursor = EXCLUDED.cursor, updated_at = now()",
            )
            .bind(source)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("rewinding the cursor for a resync"))?;
        }
    }
    tx.commit()
        .await
        .map_err(StoreError::query("committing a resync"))?;
    Ok(ResyncReport {
        source: source.to_owned(),
        dry_run,
        invoices,
        not_in_b2b,
        cursor_before,
        cursor_after,
    })
}

/// The cursor after a resync: never later than before. One second before the oldest version
/// chosen, so a source that reads strictly after its watermark hands that invoice out too.
fn rewound(before: &Cursor, selection: &Selection, rows: &[ResyncRow]) -> Cursor {
    let target = match selection {
        Selection::All => return Cursor::default(),
        Selection::Since(since) => Some(*since),
        Selection::Invoices(_) => {
            let versions: Option<Vec<DateTime<Utc>>> = rows
                .iter()
                .map(|r| {
                    r.erp_version
                        .as_deref()
                        .and_then(crate::domain::SourceVersion::parse_key)
                        .map(|v| v.instant())
                })
                .collect();
            match versions {
                // A chosen invoice of unknown version: only a read from the start is sure to
                // hand it out.
                None => return Cursor::default(),
                Some(v) => v.into_iter().min(),
            }
        }
    };
    match (target, before.watermark) {
        (Some(t), Some(w)) => {
            let t = t - chrono::Duration::seconds(1);
            Cursor::at(t.min(w))
        }
        (_, None) => Cursor::default(),
        (None, Some(_)) => before.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn row(id: &str, version: Option<&str>) -> ResyncRow {
        ResyncRow {
            external_id: id.to_owned(),
            invoice_number: id.to_owned(),
            b2b_invoice_id: 1,
            erp_version: version.map(str::to_owned),
        }
    }

    #[test]
    fn the_cursor_goes_back_never_forward() {
        let now = Cursor::at(at("2026-12-01T00:00:00Z"));
        assert_eq!(rewound(&now, &Selection::All, &[]), Cursor::default());
        assert_eq!(
            rewound(&now, &Selection::Since(at("2026-11-01T00:00:00Z")), &[]),
            Cursor::at(at("2026-10-31T23:59:59Z"))
        );
        assert_eq!(
            rewound(&now, &Selection::Since(at("2027-01-01T00:00:00Z")), &[]),
            now
        );
        let rows = [
            row("a", Some("2026-11-20T10:00:00.000000000Z")),
            row("b", Some("2026-11-10T10:00:00.000000000Z|file")),
        ];
        assert_eq!(
            rewound(&now, &Selection::Invoices(vec![]), &rows),
            Cursor::at(at("2026-11-10T09:59:59Z"))
        );
        assert_eq!(
            rewound(&now, &Selection::Invoices(vec![]), &[row("c", None)]),
            Cursor::default()
        );
        // Nothing chosen: the cursor stays.
        assert_eq!(rewound(&now, &Selection::Invoices(vec![]), &[]), now);
        assert_eq!(
            rewound(
                &Cursor::default(),
                &Selection::Since(at("2026-11-01T00:00:00Z")),
                &[]
            ),
            Cursor::default()
        );
    }
}
