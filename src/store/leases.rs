//! `replicas` and `store_leases`: which replica works which store (see `daemon::leases`).
//!
//! Every time is the database's (`now()`), so replicas' clocks never have to agree. A lease is
//! taken only once it is free or expired, renewed only while it has not expired, and every take
//! bumps its token.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::StoreError;

fn secs(d: std::time::Duration) -> f64 {
    d.as_secs_f64()
}

/// This replica is alive (its row renewed).
pub async fn heartbeat(pool: &PgPool, replica: &str, hostname: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO replicas (id, hostname) VALUES ($1, $2)
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), hostname = $2",
    )
    .bind(replica)
    .bind(hostname)
    .execute(pool)
    .await
    .map_err(StoreError::query("renewing the replica's heartbeat"))?;
    Ok(())
}

/// Replicas whose heartbeat is younger than `ttl` (this one included once it beat).
pub async fn live_replicas(pool: &PgPool, ttl: std::time::Duration) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "SELECT count(*) FROM replicas WHERE heartbeat_at > now() - make_interval(secs => $1)",
    )
    .bind(secs(ttl))
    .fetch_one(pool)
    .await
    .map_err(StoreError::query("counting live replicas"))
}

/// Makes sure every configured store has a lease row.
pub async fn ensure(pool: &PgPool, stores: &[String]) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO store_leases (store) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
    )
    .bind(stores)
    .execute(pool)
    .await
    .map_err(StoreError::query("registering the stores' leases"))?;
    Ok(())
}

/// Renews the leases `replica` still holds among `stores`; returns those renewed. A lease that
/// expired before this renewal is not renewed (another replica may hold it now).
pub async fn renew(
    pool: &PgPool,
    replica: &str,
    stores: &[String],
    ttl: std::time::Duration,
) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar(
        "UPDATE store_leases SET renewed_at = now(), expires_at = now() + make_interval(secs => $3)
          WHERE store = ANY($2) AND holder = $1 AND expires_at > now()
         RETURNING store",
    )
    .bind(replica)
    .bind(stores)
    .bind(secs(ttl))
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("renewing store leases"))
}

/// Takes `store` for `replica` if it is free or expired: `Some(token)` when taken.
pub async fn take(
    pool: &PgPool,
    replica: &str,
    store: &str,
    ttl: std::time::Duration,
) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar(
        "UPDATE store_leases SET holder = $1, token = token + 1, acquired_at = now(),
                renewed_at = now(), expires_at = now() + make_interval(secs => $3),
                moves = moves + CASE WHEN acquired_at IS NOT NULL THEN 1 ELSE 0 END
          WHERE store = $2 AND (holder IS NULL OR expires_at IS NULL OR expires_at <= now())
         RETURNING token",
    )
    .bind(replica)
    .bind(store)
    .bind(secs(ttl))
    .fetch_optional(pool)
    .await
    .map_err(StoreError::query("taking a store lease"))
}

/// Gives leases back at once (graceful shutdown, a share to hand over).
pub async fn release(pool: &PgPool, replica: &str, stores: &[String]) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE store_leases SET holder = NULL, expires_at = now()
          WHERE store = ANY($2) AND holder = $1",
    )
    .bind(replica)
    .bind(stores)
    .execute(pool)
    .await
    .map_err(StoreError::query("releasing store leases"))?;
    Ok(())
}

/// Stores free for the taking now (no holder, or expired), in a stable order.
pub async fn free(pool: &PgPool, stores: &[String]) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar(
        "SELECT store FROM store_leases
          WHERE store = ANY($1) AND (holder IS NULL OR expires_at IS NULL OR expires_at <= now())
          ORDER BY store",
    )
    .bind(stores)
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("reading free store leases"))
}

/// A lease as `status` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LeaseRow {
    pub store: String,
    pub holder: Option<String>,
    pub hostname: Option<String>,
    pub acquired_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Held: not expired.
    pub live: bool,
    pub moves: i64,
}

pub async fn all(pool: &PgPool) -> Result<Vec<LeaseRow>, StoreError> {
    type Raw = (
        String,
        Option<String>,
        Option<String>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        bool,
        i64,
    );
    let rows: Vec<Raw> = sqlx::query_as(
        "SELECT l.store, l.holder, r.hostname, l.acquired_at, l.expires_at,
                coalesce(l.holder IS NOT NULL AND l.expires_at > now(), false), l.moves
           FROM store_leases l LEFT JOIN replicas r ON r.id = l.holder
          ORDER BY l.store",
    )
    .fetch_all(pool)
    .await
    .map_err(StoreError::query("reading store leases"))?;
    Ok(rows
        .into_iter()
        .map(|r| LeaseRow {
            store: r.0,
            holder: r.1,
            hostname: r.2,
            acquired_at: r.3,
            expires_at: r.4,
            live: r.5,
            moves: r.6,
        })
        .collect())
}
