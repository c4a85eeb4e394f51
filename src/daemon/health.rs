//! What `/readyz` answers: the database is reachable, the migrations are applied, and no source
//! has failed its last N cycles in a row.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use sqlx::PgPool;

use crate::store::runs::Outcome;
use crate::store::MIGRATOR;

pub struct Health {
    pool: PgPool,
    unready_after: u32,
    failed_in_a_row: Mutex<HashMap<String, u32>>,
}

impl Health {
    pub fn new(pool: PgPool, unready_after: u32) -> Self {
        Self {
            pool,
            unready_after,
            failed_in_a_row: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a source's failed cycles in a row (a skipped or stopped cycle changes nothing).
    pub fn record(&self, source: &str, outcome: Outcome) {
        let mut streaks = self
            .failed_in_a_row
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let streak = streaks.entry(source.to_owned()).or_default();
        match outcome {
            Outcome::Failed => *streak += 1,
            Outcome::Ok | Outcome::Partial => *streak = 0,
            Outcome::Skipped | Outcome::Stopped => {}
        }
    }

    /// `Err(reason)` when not ready.
    pub async fn ready(&self) -> Result<(), String> {
        let applied: Result<Option<i64>, sqlx::Error> = tokio::time::timeout(
            Duration::from_secs(3),
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool),
        )
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut));
        let latest = MIGRATOR.iter().map(|m| m.version).max();
        match applied {
            Err(e) => return Err(format!("database unreachable: {e}")),
            Ok(v) if v < latest => {
                return Err(
                    "database migrations are not applied: run `b2b-invoice-sync migrate`"
                        .to_owned(),
                )
            }
            Ok(_) => {}
        }
        let streaks = self
            .failed_in_a_row
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut failing: Vec<String> = streaks
            .iter()
            .filter(|(_, n)| **n >= self.unready_after)
            .map(|(s, n)| format!("{s} ({n} failed cycles in a row)"))
            .collect();
        if failing.is_empty() {
            Ok(())
        } else {
            failing.sort();
            Err(format!("sources failing: {}", failing.join(", ")))
        }
    }
}
