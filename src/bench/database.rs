//! A fresh PostgreSQL database per benchmark run, created on the server the URL names and
//! dropped afterwards, so a run starts from nothing and leaves nothing behind.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use super::BenchError;
use crate::store;

/// A server that does not answer within this is reported, not waited for.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Counters of `pg_stat_database` for the benchmark's database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PgCounters {
    pub xact_commit: i64,
    pub xact_rollback: i64,
    pub tup_returned: i64,
    pub tup_fetched: i64,
    pub tup_inserted: i64,
    pub tup_updated: i64,
    pub tup_deleted: i64,
}

impl PgCounters {
    pub fn since(&self, before: &Self) -> Self {
        Self {
            xact_commit: self.xact_commit - before.xact_commit,
            xact_rollback: self.xact_rollback - before.xact_rollback,
            tup_returned: self.tup_returned - before.tup_returned,
            tup_fetched: self.tup_fetched - before.tup_fetched,
            tup_inserted: self.tup_inserted - before.tup_inserted,
            tup_updated: self.tup_updated - before.tup_updated,
            tup_deleted: self.tup_deleted - before.tup_deleted,
        }
    }

    pub fn transactions(&self) -> i64 {
        self.xact_commit + self.xact_rollback
    }
}

/// How one table was read in a stretch of time (`pg_stat_user_tables` deltas).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReads {
    pub table: String,
    pub seq_scans: i64,
    pub seq_rows: i64,
    pub index_scans: i64,
    pub index_rows: i64,
}

impl std::fmt::Display for TableReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} seq scans ({} rows), {} index scans ({} rows)",
            self.table, self.seq_scans, self.seq_rows, self.index_scans, self.index_rows
        )
    }
}

/// The tables read between `before` and `after`, busiest first.
pub fn reads_between(before: &[TableReads], after: &[TableReads]) -> Vec<TableReads> {
    let mut out: Vec<TableReads> = after
        .iter()
        .map(|a| {
            let b = before.iter().find(|b| b.table == a.table);
            let was = |f: fn(&TableReads) -> i64| b.map_or(0, f);
            TableReads {
                table: a.table.clone(),
                seq_scans: a.seq_scans - was(|t| t.seq_scans),
                seq_rows: a.seq_rows - was(|t| t.seq_rows),
                index_scans: a.index_scans - was(|t| t.index_scans),
                index_rows: a.index_rows - was(|t| t.index_rows),
            }
        })
        .filter(|t| t.seq_scans + t.index_scans > 0)
        .collect();
    out.sort_by_key(|t| std::cmp::Reverse(t.seq_rows + t.index_rows));
    out
}

pub(crate) struct BenchDatabase {
    /// The server's maintenance database, for CREATE/DROP and the statistics (so that reading
    /// them never counts as work in the benchmark's own database).
    admin: PgConnectOptions,
    options: PgConnectOptions,
    pub name: String,
    /// The URL of the benchmark's database (may carry the password: never printed).
    pub url: String,
}

impl BenchDatabase {
    /// Creates `b2bsync_bench_<uuid>` on the server of `url` and applies the migrations.
    pub async fn create(url: &str) -> Result<Self, BenchError> {
        let scheme_ok = url.starts_with("postgres://") || url.starts_with("postgresql://");
        let base: PgConnectOptions = match url.parse() {
            Ok(options) if scheme_ok => options,
            _ => return Err(BenchError::InvalidUrl),
        };
        let mut parsed = url::Url::parse(url).map_err(|_| BenchError::InvalidUrl)?;
        let name = format!("b2bsync_bench_{}", uuid::Uuid::new_v4().simple());
        parsed.set_path(&format!("/{name}"));
        let db = Self {
            admin: base.clone().database("postgres"),
            options: base.database(&name),
            name,
            url: parsed.to_string(),
        };
        let mut conn = db.admin_connection().await?;
        sqlx::query(&format!("CREATE DATABASE {}", db.name))
            .execute(&mut conn)
            .await
            .map_err(BenchError::db("creating the benchmark database"))?;
        let _ = conn.close().await;
        let pool = db.pool(2).await?;
        let migrated = store::migrate(&pool).await;
        pool.close().await;
        if let Err(e) = migrated {
            db.drop_database().await;
            return Err(e.into());
        }
        tracing::info!(database = %db.name, "created the benchmark database");
        Ok(db)
    }

    /// Runs `work` (which uses this database) until it ends or `stop` completes, then drops the
    /// database whatever happened: every benchmark's database is removed after it.
    pub async fn run_then_drop<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, BenchError>>,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<T, BenchError> {
        let result = tokio::select! {
            result = work => result,
            () = stop => Err(BenchError::Interrupted),
        };
        self.drop_database().await;
        result
    }

    async fn admin_connection(&self) -> Result<PgConnection, BenchError> {
        tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&self.admin))
            .await
            .map_err(|_| {
                BenchError::Database(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()))
            })?
            .map_err(BenchError::db(
                "connecting to the server's postgres database",
            ))
    }

    /// A new pool on the benchmark's database.
    pub async fn pool(&self, max_connections: u32) -> Result<PgPool, BenchError> {
        PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(self.options.clone())
            .await
            .map_err(BenchError::db("connecting to the benchmark database"))
    }

    /// The database's counters as PostgreSQL has them now. Backends publish their counters
    /// when they end (and at most once a second while busy), so callers close their pool first
    /// and [`Self::settled_counters`] waits until the numbers stop moving.
    pub async fn counters(&self) -> Result<PgCounters, BenchError> {
        let mut conn = self.admin_connection().await?;
        let row: (i64, i64, i64, i64, i64, i64, i64) = sqlx::query_as(
            "SELECT xact_commit, xact_rollback, tup_returned, tup_fetched, tup_inserted,
                    tup_updated, tup_deleted
               FROM pg_stat_database WHERE datname = $1",
        )
        .bind(&self.name)
        .fetch_one(&mut conn)
        .await
        .map_err(BenchError::db("reading pg_stat_database"))?;
        let _ = conn.close().await;
        Ok(PgCounters {
            xact_commit: row.0,
            xact_rollback: row.1,
            tup_returned: row.2,
            tup_fetched: row.3,
            tup_inserted: row.4,
            tup_updated: row.5,
            tup_deleted: row.6,
        })
    }

    /// The counters once they have stopped moving (the closed pool's backends have exited and
    /// published theirs), or after about 3 s.
    pub async fn settled_counters(&self) -> Result<PgCounters, BenchError> {
        let mut last = self.counters().await?;
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.counters().await?;
            if now == last {
                return Ok(now);
            }
            last = now;
        }
        Ok(last)
    }

    /// Per-table read counters, from inside the benchmark database (statistics views show only
    /// the current database's tables). Take them outside the window [`Self::counters`] measures.
    pub async fn table_reads(&self) -> Result<Vec<TableReads>, BenchError> {
        let mut conn =
            tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&self.options))
                .await
                .map_err(|_| BenchError::Database("no answer to connect".to_owned()))?
                .map_err(BenchError::db("connecting to the benchmark database"))?;
        type Row = (String, i64, i64, i64, i64);
        let rows: Result<Vec<Row>, sqlx::Error> = sqlx::query_as(
            "SELECT relname::text, seq_scan, seq_tup_read, COALESCE(idx_scan, 0),
                    COALESCE(idx_tup_fetch, 0)
               FROM pg_stat_user_tables ORDER BY relname",
        )
        .fetch_all(&mut conn)
        .await;
        let _ = conn.close().await;
        Ok(rows
            .map_err(BenchError::db("reading pg_stat_user_tables"))?
            .into_iter()
            .map(|r| TableReads {
                table: r.0,
                seq_scans: r.1,
                seq_rows: r.2,
                index_scans: r.3,
                index_rows: r.4,
            })
            .collect())
    }

    /// `ANALYZE` of the whole database, on a connection of its own.
    pub async fn analyze(&self) -> Result<(), BenchError> {
        let mut conn =
            tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&self.options))
                .await
                .map_err(|_| BenchError::Database("no answer to connect".to_owned()))?
                .map_err(BenchError::db("connecting to the benchmark database"))?;
        let done = sqlx::query("ANALYZE").execute(&mut conn).await;
        let _ = conn.close().await;
        done.map(drop)
            .map_err(BenchError::db("analyzing the benchmark database"))
    }

    /// Drops the database (FORCE ends any connection left); a failure is only reported.
    pub async fn drop_database(&self) {
        let dropped = match self.admin_connection().await {
            Ok(mut conn) => sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = dropped {
            tracing::warn!(database = %self.name, error = %e, "could not drop the benchmark database; drop it by hand");
        }
    }
}
