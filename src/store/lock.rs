//! One runner per source: a PostgreSQL session advisory lock held on a dedicated connection for
//! the whole cycle. If the process dies, PostgreSQL ends the session and frees the lock.

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};

use super::StoreError;

/// The lock key: a stable 64-bit hash of the source name in this daemon's namespace.
const KEY_SQL: &str = "hashtextextended('b2b-invoice-sync/source/' || $1, 0)";

pub struct SourceLock {
    conn: Option<PoolConnection<Postgres>>,
    source: String,
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
        Ok(got.then(|| Self {
            conn: Some(conn),
            source: source.to_owned(),
        }))
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
