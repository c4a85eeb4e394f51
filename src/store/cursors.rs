//! `sources`: each source's committed cursor.

use sqlx::PgPool;

use super::StoreError;
use crate::domain::Cursor;

pub async fn load(pool: &PgPool, source: &str) -> Result<Cursor, StoreError> {
    let value: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT cursor FROM sources WHERE name = $1")
            .bind(source)
            .fetch_optional(pool)
            .await
            .map_err(StoreError::query("reading a cursor"))?;
    // A cursor this version cannot read restarts the source from the beginning: re-reading is
    // safe (fingerprints skip unchanged invoices); skipping is not.
    Ok(value
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

pub async fn store(pool: &PgPool, source: &str, cursor: &Cursor) -> Result<(), StoreError> {
    let value = serde_json::to_value(cursor).unwrap_or_default();
    sqlx::query(
        "INSERT INTO sources (name, cursor, updated_at) VALUES ($1, $2, now())
         ON CONFLICT (name) DO UPDATE SET cursor = EXCLUDED.cursor, updated_at = now()",
    )
    .bind(source)
    .bind(value)
    .execute(pool)
    .await
    .map_err(StoreError::query("storing a cursor"))?;
    Ok(())
}
