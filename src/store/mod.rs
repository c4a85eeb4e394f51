//! PostgreSQL through sqlx: the pool, the migrations, and the tables' queries (one module each).

pub mod capabilities;
pub mod cursors;
pub mod health;
pub mod intent;
pub mod leases;
pub mod ledger;
pub mod refused;
pub mod runs;
pub mod state;

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::config::DatabaseSettings;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Database failures. Messages never carry the connection URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database.url: cannot connect to PostgreSQL: {0}")]
    Connect(String),
    #[error("database: migrations failed: {0}; the database is left as the last successful migration made it")]
    Migrate(String),
    #[error("database: {what} failed: {message}")]
    Query { what: &'static str, message: String },
    /// The store's lease was lost while the cycle ran (see `leases::Fence`).
    #[error(
        "source {source_name}: this process lost its store's lease (not renewed in time: the \
         database out of reach, or the process paused); stopped before its next change, as \
         another process may be working the store now"
    )]
    LeaseLost { source_name: String },
}

impl StoreError {
    pub fn query(what: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |e| Self::Query {
            what,
            message: describe(&e),
        }
    }
}

/// sqlx's own text, minus anything that could repeat the URL.
fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Configuration(_) => "the connection settings are invalid".to_owned(),
        other => other.to_string(),
    }
}

pub use crate::process::{process_name, PROCESS_PREFIX};

/// A pool for `settings`, checked with one connection.
pub async fn connect(settings: &DatabaseSettings) -> Result<PgPool, StoreError> {
    let options: PgConnectOptions = settings
        .url
        .expose_secret()
        .parse::<PgConnectOptions>()
        .map_err(|e: sqlx::Error| StoreError::Connect(describe(&e)))?
        .application_name(process_name());
    PgPoolOptions::new()
        .max_connections(settings.max_connections.get())
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|e| StoreError::Connect(describe(&e)))
}

/// Applies pending migrations (idempotent; concurrent runs are serialised by sqlx's lock).
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| StoreError::Migrate(e.to_string()))
}

/// Deletes every row of `source` from every table that has a `source` column (and its cursor
/// row), in one transaction: the demo starts from nothing each time. Tables are found in the
/// catalog, so a table added later is cleared too.
pub async fn forget_source(pool: &PgPool, source: &str) -> Result<(), StoreError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(StoreError::query("starting to clear a source"))?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.columns
          WHERE table_schema = current_schema() AND column_name = 'source'
          ORDER BY table_name",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(StoreError::query("listing the tables of a source"))?;
    for table in tables {
        // Names come from the catalog, quoted as identifiers.
        let table = table.replace('"', "\"\"");
        sqlx::query(&format!("DELETE FROM \"{table}\" WHERE source = $1"))
            .bind(source)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("clearing a source's rows"))?;
    }
    sqlx::query("DELETE FROM sources WHERE name = $1")
        .bind(source)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("clearing a source's cursor"))?;
    tx.commit()
        .await
        .map_err(StoreError::query("committing a source's clean-up"))
}
