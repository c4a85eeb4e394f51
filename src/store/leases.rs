//! `replicas` and `store_leases`: which process works which store (see `sync::ownership` and
//! `daemon::leases`).
//!
//! Every time is the database's (`now()`), so processes' clocks never have to agree. A lease is
//! taken only once it is free or expired, renewed only while it has not expired, and every take
//! bumps its token.
//!
//! **Fencing.** A lease can be lost while its process lives on (renewals that no longer reach
//! the database, a pause longer than the lease): every change a cycle makes checks, in the
//! transaction of its intent, that the lease is still its own, by holder and token, and not
//! expired ([`Fence::holds`]). The row is read `FOR SHARE`, so a take by another process waits
//! for an intent being written, and every later intent of the old holder fails.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

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

/// A lease taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    pub token: i64,
    /// Another process held the store within the last minute: it may have spent part of the
    /// store's budget for this minute.
    pub recently_elsewhere: bool,
    /// Another holder had the store before (a move, not a first take or a take-back).
    pub moved: bool,
}

/// Who asks for a lease: an id unique to the holder, and where its process runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimant {
    /// `<its process's connection name>#<suffix>` (see `store::process_name`): whether the
    /// process is still connected to PostgreSQL is read from it.
    pub holder: String,
    pub hostname: String,
    pub pid: u32,
    /// The process's start time as the OS tells it (`None` where it cannot be read): with the
    /// pid, it tells the process apart from a later one given the same pid.
    pub started: Option<String>,
}

/// Takes `store` for `who` if it is free, expired, or held by a process that has died on this
/// same host (its pid gone or reused, and no connection of it left in PostgreSQL): a crashed or
/// restarted process's stores are taken at once instead of after the lease's time to live. The
/// row is made first if the store is new.
pub async fn take(
    pool: &PgPool,
    who: &Claimant,
    store: &str,
    ttl: std::time::Duration,
    dead: impl Fn(u32, &str) -> bool,
) -> Result<Option<Taken>, StoreError> {
    let what = "taking a store lease";
    let mut tx = pool.begin().await.map_err(StoreError::query(what))?;
    sqlx::query("INSERT INTO store_leases (store) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(store)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(what))?;
    type Before = (
        Option<String>,
        bool,
        bool,
        Option<String>,
        Option<i32>,
        Option<String>,
        bool,
    );
    let before: Before = sqlx::query_as(
        "SELECT holder, coalesce(expires_at > now(), false),
                coalesce(expires_at > now() - interval '60 seconds', false),
                holder_host, holder_pid, holder_start,
                EXISTS (SELECT 1 FROM pg_stat_activity a
                         WHERE a.application_name = split_part(l.holder, '#', 1))
           FROM store_leases l WHERE store = $1 FOR UPDATE",
    )
    .bind(store)
    .fetch_one(&mut *tx)
    .await
    .map_err(StoreError::query(what))?;
    let (previous, live, recent, host, pid, started, connected) = before;
    if live && previous.is_some() {
        let died_here = !connected
            && who.hostname != "unknown"
            && host.as_deref() == Some(who.hostname.as_str())
            && match (pid.and_then(|p| u32::try_from(p).ok()), started.as_deref()) {
                (Some(pid), Some(started)) => dead(pid, started),
                _ => false,
            };
        if !died_here {
            return Ok(None);
        }
        tracing::info!(
            store,
            previous = previous.as_deref().unwrap_or_default(),
            pid = pid.unwrap_or_default(),
            "the store's last holder on this host has ended: its lease is taken over at once"
        );
    }
    let token: i64 = sqlx::query_scalar(
        "UPDATE store_leases SET holder = $1, holder_host = $4, holder_pid = $5,
                holder_start = $6, token = token + 1, acquired_at = now(), renewed_at = now(),
                expires_at = now() + make_interval(secs => $3),
                moves = moves + CASE WHEN acquired_at IS NOT NULL AND holder IS DISTINCT FROM $1
                                     THEN 1 ELSE 0 END
          WHERE store = $2
         RETURNING token",
    )
    .bind(&who.holder)
    .bind(store)
    .bind(secs(ttl))
    .bind(&who.hostname)
    .bind(i32::try_from(who.pid).ok())
    .bind(who.started.as_deref())
    .fetch_one(&mut *tx)
    .await
    .map_err(StoreError::query(what))?;
    tx.commit().await.map_err(StoreError::query(what))?;
    Ok(Some(Taken {
        token,
        recently_elsewhere: recent && previous.as_deref().is_some_and(|p| p != who.holder),
        moved: previous.is_some_and(|p| p != who.holder),
    }))
}

/// Who holds `store` now (an unexpired lease): `(holder, hostname)`.
pub async fn holder(pool: &PgPool, store: &str) -> Result<Option<(String, String)>, StoreError> {
    sqlx::query_as(
        "SELECT holder, coalesce(holder_host, '') FROM store_leases
          WHERE store = $1 AND holder IS NOT NULL AND expires_at > now()",
    )
    .bind(store)
    .fetch_optional(pool)
    .await
    .map_err(StoreError::query("reading a store's lease"))
}

/// What a change checks to be sure this process still holds its store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    store: String,
    /// The source the cycle works (for messages).
    source: String,
    holder: String,
    token: i64,
}

impl Fence {
    pub fn new(store: &str, source: &str, holder: &str, token: i64) -> Self {
        Self {
            store: store.to_owned(),
            source: source.to_owned(),
            holder: holder.to_owned(),
            token,
        }
    }

    /// Whether this process still holds the store: its lease, by holder and token, has not
    /// expired by the database's clock. The row is read `FOR SHARE`: run this inside the
    /// transaction of the change it guards.
    pub async fn holds(&self, tx: &mut PgConnection) -> Result<bool, StoreError> {
        let held: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM store_leases
              WHERE store = $1 AND holder = $2 AND token = $3 AND expires_at > clock_timestamp()
                FOR SHARE",
        )
        .bind(&self.store)
        .bind(&self.holder)
        .bind(self.token)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::query("checking the store's lease"))?;
        Ok(held.is_some())
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn store(&self) -> &str {
        &self.store
    }

    /// A fence for code that runs without a lease (tests, tools): [`Self::holds`] is false.
    pub fn none(source: &str) -> Self {
        Self::new("", source, "", -1)
    }
}

/// Gives leases back at once (graceful shutdown, a share to hand over): expired now, the
/// holder kept to tell the next one who worked the store last.
pub async fn release(pool: &PgPool, replica: &str, stores: &[String]) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE store_leases SET expires_at = now()
          WHERE store = ANY($2) AND holder = $1 AND expires_at > now()",
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
    /// The holder's host (a daemon replica's or a one-off command's).
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
        "SELECT store, holder, holder_host, acquired_at, expires_at,
                coalesce(holder IS NOT NULL AND expires_at > now(), false), moves
           FROM store_leases ORDER BY store",
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
