//! The database for commands that need it: connect, then migrate (`engine.auto_migrate`) or
//! check that the schema is current.

use anyhow::bail;
use sqlx::PgPool;

use b2b_invoice_sync::config::Settings;
use b2b_invoice_sync::store::{self, MIGRATOR};

use super::UsageError;

/// A pool to `[database]`, nothing more.
pub async fn connect(settings: &Settings) -> anyhow::Result<PgPool> {
    let Some(db) = &settings.database else {
        return Err(UsageError(
            "database.url: missing: this command needs the database ([database] url or url_file \
             in the config, or B2BSYNC__DATABASE__URL)"
                .to_owned(),
        )
        .into());
    };
    Ok(store::connect(db).await?)
}

/// Fails, saying to run `migrate`, when a migration this binary knows is not applied.
pub async fn ensure_current(pool: &PgPool) -> anyhow::Result<()> {
    let applied: Vec<i64> =
        match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
        {
            Ok(v) => v,
            // No migrations table: nothing applied yet.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Vec::new(),
            Err(e) => bail!("database: reading the applied migrations failed: {e}"),
        };
    let pending: Vec<String> = MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
        .map(|m| format!("{}_{}", m.version, m.description.replace(' ', "_")))
        .collect();
    if !pending.is_empty() {
        bail!(
            "database: the schema is not current ({} migration{} pending: {}); \
             engine.auto_migrate is false, so run `b2b-invoice-sync migrate` first",
            pending.len(),
            if pending.len() == 1 { "" } else { "s" },
            pending.join(", ")
        );
    }
    Ok(())
}
