//! One runner per source: a PostgreSQL session advisory lock held on a dedicated connection for
//! the whole cycle. If the process dies, PostgreSQL ends the session and frees the lock.
//!
//! **Fencing.** A lock can also be lost while the process lives on (its session killed, a
//! failover): taking the lock bumps the source's token in `source_leases`, and every change the
//! cycle makes checks, in the transaction of its intent, that the token is still its own and
//! that its lock session still holds the lock ([`Fence::holds`]). The token row is read `FOR
//! SHARE`, so a new holder's bump waits for an intent being written and every later intent of
//! the old holder fails.

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};

use super::StoreError;

/// The lock key: a stable 64-bit hash of the source name in this daemon's namespace.
const KEY_SQL: &str = "hashtextextended('b2b-invoice-sync/source/' || $1, 0)";

pub struct SourceLock {
    conn: Option<PoolConnection<Postgres>>,
    source: String,
    fence: Fence,
}

/// What a change checks to be sure this process still holds its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    source: String,
    token: i64,
    /// The backend of the lock's own session.
    pid: i32,
}

impl Fence {
    /// Whether this process still holds the source: its token is current (read `FOR SHARE`, so
    /// run this inside the transaction of the change it guards) and its lock session still
    /// holds the advisory lock.
    pub async fn holds(&self, tx: &mut PgConnection) -> Result<bool, StoreError> {
        let held: Option<bool> = sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM pg_locks k
                             WHERE k.locktype = 'advisory' AND k.granted AND k.pid = $3
                               AND k.classid = ((({KEY_SQL}) >> 32) & 4294967295)::oid
                               AND k.objid = (({KEY_SQL}) & 4294967295)::oid
                               AND k.objsubid = 1)
               FROM source_leases WHERE source = $1 AND token = $2 FOR SHARE"
        ))
        .bind(&self.source)
        .bind(self.token)
        .bind(self.pid)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::query("checking the source's lock"))?;
        Ok(held == Some(true))
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// A fence for code that runs without the lock (tests, tools): [`Self::holds`] is false.
    pub fn none(source: &str) -> Self {
        Self {
            source: source.to_owned(),
            token: -1,
            pid: -1,
        }
    }
}

impl SourceLock {
    /// `Ok(None)`: another process holds the source.
    pub async fn try_acquire(pool: &PgPool, source: &str) -> Result<Option<Self>, StoreError> {
        let mut conn = pool
            .acquire()
            .await
            .map_err(StoreError::query("taking a connection for the source lock"))?;
        // If this host vanishes without closing the connection (power loss, network split),
        // PostgreSQL notices within about 30 s and ends the session, which frees the lock for
        // another replica, instead of the operating system's default of two hours.
        for setting in [
            "SET tcp_keepalives_idle = 15",
            "SET tcp_keepalives_interval = 5",
            "SET tcp_keepalives_count = 3",
        ] {
            sqlx::query(setting)
                .execute(&mut *conn)
                .await
                .map_err(StoreError::query(
                    "setting keepalives on the source lock's session",
                ))?;
        }
        let got: bool = sqlx::query_scalar(&format!("SELECT pg_try_advisory_lock({KEY_SQL})"))
            .bind(source)
            .fetch_one(&mut *conn)
            .await
            .map_err(StoreError::query("taking the source lock"))?;
        if !got {
            return Ok(None);
        }
        let (token, pid): (i64, i32) = sqlx::query_as(
            "INSERT INTO source_leases (source, token, holder_pid) VALUES ($1, 1, pg_backend_pid())
             ON CONFLICT (source) DO UPDATE SET token = source_leases.token + 1,
                    holder_pid = pg_backend_pid(), acquired_at = now()
             RETURNING token, holder_pid",
        )
        .bind(source)
        .fetch_one(&mut *conn)
        .await
        .map_err(StoreError::query("taking the source's lease token"))?;
        Ok(Some(Self {
            conn: Some(conn),
            source: source.to_owned(),
            fence: Fence {
                source: source.to_owned(),
                token,
                pid,
            },
        }))
    }

    /// What this cycle's changes check (see the module docs).
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    pub async fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let unlocked = sqlx::query(&format!("SELECT pg_advisory_unlock({KEY_SQL})"))
                .bind(&self.source)
                .execute(&mut *conn)
                .await;
            if unlocked.is_err() {
                // Never hand a connection that may still hold the lock back to the pool.
                conn.detach();
            }
        }
    }
}

impl Drop for SourceLock {
    fn drop(&mut self) {
        // Dropped without `release` (a cancelled cycle): close the session, which frees the lock.
        if let Some(conn) = self.conn.take() {
            conn.detach();
        }
    }
}
