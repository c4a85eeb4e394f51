//! The `customer_map` table: batched reads and writes (one query per batch, never per invoice).

use std::time::Duration;

use sqlx::PgPool;

use crate::store::StoreError;

/// A row as the resolver needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapRow {
    pub external_customer_id: String,
    pub company_id: Option<String>,
    pub imported: bool,
    /// Younger than the TTL that applies to it (imports are always fresh).
    pub fresh: bool,
}

/// Rows of `source` for `ids`; lookups count as fresh within `ttl` (negative ones within
/// `negative_ttl`).
pub async fn rows(
    pool: &PgPool,
    source: &str,
    ids: &[String],
    ttl: Duration,
    negative_ttl: Duration,
) -> Result<Vec<MapRow>, StoreError> {
    let rows: Vec<(String, Option<String>, String, bool)> = sqlx::query_as(
        "SELECT external_customer_id, company_id, origin,
                origin = 'import'
                OR (company_id IS NOT NULL AND updated_at > now() - make_interval(secs => $3))
                OR (company_id IS NULL AND updated_at > now() - make_interval(secs => $4))
           FROM customer_map
          WHERE source = $1 AND external_customer_id = ANY($2)",
    )
    .bind(source)
    .bind(ids)
    .bind(ttl.as_secs_f64())
    .bind(negative_ttl.as_secs_f64())
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("reading customer_map"))?;
    Ok(rows
        .into_iter()
        .map(|(external_customer_id, company_id, origin, fresh)| MapRow {
            external_customer_id,
            company_id,
            imported: origin == "import",
            fresh,
        })
        .collect())
}

/// Caches lookup results (`None`: no company found). Never overwrites an imported row.
pub async fn store_lookups(
    pool: &PgPool,
    source: &str,
    results: &[(String, Option<String>)],
) -> Result<(), StoreError> {
    if results.is_empty() {
        return Ok(());
    }
    let (ids, companies): (Vec<String>, Vec<Option<String>>) = results.iter().cloned().unzip();
    sqlx::query(
        "INSERT INTO customer_map (source, external_customer_id, company_id, origin, updated_at)
         SELECT $1, id, company, 'lookup', now() FROM UNNEST($2::text[], $3::text[]) AS t(id, company)
         ON CONFLICT (source, external_customer_id) DO UPDATE
            SET company_id = EXCLUDED.company_id, updated_at = now()
          WHERE customer_map.origin = 'lookup'",
    )
    .bind(source)
    .bind(&ids)
    .bind(&companies)
    .execute(pool)
    .await
    .map_err(StoreError::query("caching customer lookups"))?;
    Ok(())
}

/// Upserts imported mappings; they replace any cached lookup for the same customer.
pub async fn store_imports(
    pool: &PgPool,
    source: &str,
    rows: &[(String, String)],
) -> Result<u64, StoreError> {
    let (ids, companies): (Vec<String>, Vec<String>) = rows.iter().cloned().unzip();
    let done = sqlx::query(
        "INSERT INTO customer_map (source, external_customer_id, company_id, origin, updated_at)
         SELECT $1, id, company, 'import', now() FROM UNNEST($2::text[], $3::text[]) AS t(id, company)
         ON CONFLICT (source, external_customer_id) DO UPDATE
            SET company_id = EXCLUDED.company_id, origin = 'import', updated_at = now()",
    )
    .bind(source)
    .bind(&ids)
    .bind(&companies)
    .execute(pool)
    .await
    .map_err(StoreError::query("importing customer mappings"))?;
    Ok(done.rows_affected())
}
