//! A fresh PostgreSQL database per test, migrated, dropped when the test ends. Shared by both
//! test binaries (`tests/reliability` includes this file), so parts one of them does not use
//! are allowed to be unused.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

/// The server tests use; `B2BSYNC_TEST_POSTGRES` overrides (a URL to its maintenance database).
fn admin_url() -> String {
    std::env::var("B2BSYNC_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub struct TestDb {
    pub pool: PgPool,
    pub url: String,
    name: String,
}

impl TestDb {
    #[allow(dead_code)]
    pub async fn new() -> Self {
        Self::create(|url| async move {
            PgPoolOptions::new()
                .max_connections(5)
                .connect(&url)
                .await
                .expect("connect to the test database")
        })
        .await
    }

    /// With a [`pool`] that gives up on a dead server quickly (the fault matrix cuts it).
    #[allow(dead_code)]
    pub async fn failing_fast() -> Self {
        Self::create(|url| async move { pool(&url).await }).await
    }

    async fn create<F: std::future::Future<Output = PgPool>>(
        connect: impl FnOnce(String) -> F,
    ) -> Self {
        let name = format!("b2bsync_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url())
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (start it with .ci/run or pg_ctlcluster)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let base = admin_url();
        let url = match base.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("B2BSYNC_TEST_POSTGRES must end with /<database>"),
        };
        let pool = connect(url.clone()).await;
        b2b_invoice_sync::store::migrate(&pool)
            .await
            .expect("migrations apply");
        Self { pool, url, name }
    }

    /// The server's `host:port` as it appears in [`Self::url`].
    #[allow(dead_code)]
    pub fn server_authority(&self) -> String {
        let after_at = self
            .url
            .rsplit_once('@')
            .map_or(self.url.as_str(), |(_, a)| a);
        after_at
            .split_once('/')
            .map_or(after_at, |(authority, _)| authority)
            .to_owned()
    }
}

/// A pool that gives up on a dead server quickly, so a cut connection fails a cycle in seconds.
#[allow(dead_code)]
pub async fn pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(5)
        .acquire_timeout(Duration::from_secs(3))
        .connect(url)
        .await
        .expect("connect to the test database")
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on; a thread with its
        // own small runtime removes the database (FORCE ends the pools' connections).
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut admin = PgConnection::connect(&admin_url()).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("note: could not drop test database {}", self.name);
        }
    }
}
