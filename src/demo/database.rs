//! The demo's PostgreSQL: `DATABASE_URL`, the database created when missing, migrated, and the
//! demo source's rows cleared so that every run starts from the same state. Without
//! `DATABASE_URL`, the server at the default address, or, when nothing answers there, a
//! throwaway one started from the machine's PostgreSQL binaries ([`super::postgres`]).

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use super::postgres::{self, ThrowawayPostgres};
use super::DemoError;
use crate::store;

/// Used when `DATABASE_URL` is not set: the server `.ci/run` starts, with trust auth.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/b2b_invoice_sync";
/// Where [`DEFAULT_DATABASE_URL`] points, checked before a throwaway server is started.
pub const DEFAULT_HOST: &str = "127.0.0.1";
pub const DEFAULT_PORT: u16 = 5432;
/// The database the demo uses on a throwaway server.
const DEMO_DATABASE: &str = "b2b_invoice_sync";

/// A server that does not answer within this is reported as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The engine tables and customer cache, each with its source column: the demo deletes only
/// its own source's rows, never anyone else's (`DATABASE_URL` may point at a shared database).
/// What `open` did, for the summary.
#[derive(Debug, Clone)]
pub struct DatabaseInfo {
    /// The URL without its password.
    pub display_url: String,
    pub created: bool,
}

/// The server the demo uses when `DATABASE_URL` is not set.
#[derive(Debug)]
pub enum DefaultServer {
    /// Something answers at [`DEFAULT_HOST`]:[`DEFAULT_PORT`]: [`DEFAULT_DATABASE_URL`].
    Running,
    /// Nothing did: a private server, stopped and removed when this is stopped or dropped.
    Throwaway(ThrowawayPostgres),
}

impl DefaultServer {
    /// The demo's database URL on this server.
    pub fn url(&self) -> String {
        match self {
            Self::Running => DEFAULT_DATABASE_URL.to_owned(),
            Self::Throwaway(postgres) => postgres.url(DEMO_DATABASE),
        }
    }
}

/// The default server if anything answers at its address, a throwaway one otherwise. What
/// answers there but is not a usable PostgreSQL is left for [`open`] to report.
pub async fn default_server() -> Result<DefaultServer, DemoError> {
    let answers = tokio::task::spawn_blocking(|| postgres::answers(DEFAULT_HOST, DEFAULT_PORT))
        .await
        .unwrap_or(false);
    if answers {
        return Ok(DefaultServer::Running);
    }
    let started = tokio::task::spawn_blocking(ThrowawayPostgres::start)
        .await
        .map_err(|e| DemoError::Database {
            url: format!("{DEFAULT_HOST}:{DEFAULT_PORT}"),
            reason: format!("starting a throwaway PostgreSQL stopped: {e}"),
        })?;
    Ok(DefaultServer::Throwaway(started?))
}

/// `url` without a password, neither in the user part nor as a `password=` parameter.
pub fn redact(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "(DATABASE_URL, which is not a valid URL)".to_owned();
    };
    if parsed.password().is_some() {
        // Fails only for URLs that cannot have a password at all.
        let _ = parsed.set_password(None);
    }
    if parsed.query().is_some() {
        let kept: Vec<(String, String)> = parsed
            .query_pairs()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("password"))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if kept.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
    parsed.to_string()
}

fn options(url: &str) -> Result<PgConnectOptions, DemoError> {
    let scheme_ok = url.starts_with("postgres://") || url.starts_with("postgresql://");
    match url.parse::<PgConnectOptions>() {
        Ok(options) if scheme_ok => Ok(options),
        _ => Err(DemoError::InvalidUrl),
    }
}

/// Connects (creating the database if the server lacks it), migrates, and clears the rows of
/// `source` so that the demo starts from nothing.
pub async fn open(url: &str, source: &str) -> Result<(PgPool, DatabaseInfo), DemoError> {
    let display_url = redact(url);
    let options = options(url)?;
    let mut created = false;
    if let Err(e) = probe(&options).await {
        if !is_missing_database(&e) {
            return Err(classify(e, &display_url));
        }
        create_database(&options, &display_url).await?;
        created = true;
    }
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|e| classify(e, &display_url))?;
    store::migrate(&pool).await?;
    clear(&pool, source).await?;
    Ok((
        pool,
        DatabaseInfo {
            display_url,
            created,
        },
    ))
}

/// One connection, with a deadline: a server behind a firewall that drops packets must not
/// hang the demo.
async fn probe(options: &PgConnectOptions) -> Result<(), sqlx::Error> {
    let conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(options))
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)??;
    conn.close().await
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

fn is_missing_database(e: &sqlx::Error) -> bool {
    sqlstate(e).as_deref() == Some("3D000")
}

/// The server's own words for a database error, sqlx's text otherwise.
fn words(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

/// The message an operator can act on; never the URL with its password.
fn classify(e: sqlx::Error, display_url: &str) -> DemoError {
    match &e {
        sqlx::Error::Io(io) => DemoError::Unreachable {
            url: display_url.to_owned(),
            reason: io.to_string(),
        },
        sqlx::Error::PoolTimedOut => DemoError::Unreachable {
            url: display_url.to_owned(),
            reason: format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
        },
        sqlx::Error::Tls(tls) => DemoError::Unreachable {
            url: display_url.to_owned(),
            reason: format!("TLS failed: {tls}"),
        },
        _ => match sqlstate(&e).as_deref() {
            Some("28P01" | "28000") => DemoError::Refused {
                url: display_url.to_owned(),
                reason: words(&e),
            },
            _ => DemoError::Database {
                url: display_url.to_owned(),
                reason: words(&e),
            },
        },
    }
}

/// `CREATE DATABASE` through the server's `postgres` database.
async fn create_database(options: &PgConnectOptions, display_url: &str) -> Result<(), DemoError> {
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let admin = options.clone().database("postgres");
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&admin))
        .await
        .map_err(|_| classify(sqlx::Error::PoolTimedOut, display_url))?
        .map_err(|e| classify(e, display_url))?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    let done = sqlx::query(&format!("CREATE DATABASE {quoted}"))
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    match done {
        Ok(_) => {
            tracing::info!(database = %name, "created the demo database");
            Ok(())
        }
        // Another demo created it in the meantime: just as good.
        Err(e) if sqlstate(&e).as_deref() == Some("42P04") => Ok(()),
        Err(e) => Err(DemoError::Database {
            url: display_url.to_owned(),
            reason: format!(
                "the database does not exist and creating it failed: {} \
                 (create it yourself, or use a role allowed to CREATE DATABASE)",
                words(&e)
            ),
        }),
    }
}

async fn clear(pool: &PgPool, source: &str) -> Result<(), DemoError> {
    store::forget_source(pool, source).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_drops_passwords_only() {
        assert_eq!(
            redact("postgres://sync:s3cret@db.internal:5432/b2b?sslmode=require&password=x2"),
            "postgres://sync@db.internal:5432/b2b?sslmode=require"
        );
        assert_eq!(redact(DEFAULT_DATABASE_URL), DEFAULT_DATABASE_URL);
        assert_eq!(
            redact("postgres://u@h/db?password=only"),
            "postgres://u@h/db"
        );
        assert!(!redact("not a url with s3cret").contains("s3cret"));
    }

    #[test]
    fn only_postgres_urls_are_taken() {
        assert!(options("mysql://u@h/db").is_err());
        assert!(options("postgres://u@h:5432/db").is_ok());
    }
}
