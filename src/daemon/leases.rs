//! Stores across replicas: a replica works a store only while it holds the store's lease, so
//! one process spends the store's whole request budget, whatever the number of replicas.
//!
//! Each round (every third of the lease's time to live) a replica renews its heartbeat and the
//! leases it holds, counts the live replicas, and takes free leases up to its fair share
//! (`ceil(stores / live replicas)`), or gives back what it holds beyond it, so stores spread
//! evenly and move when replicas come and go. Leases expire by the database's clock; a replica
//! fences itself by its own: the store's budget closes `margin` before the lease could expire
//! (counted from when the renewal was sent), so it never sends for a store another replica may
//! already hold, even cut off from the database. Shutdown releases every lease at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;

use crate::b2b::RequestBudget;
use crate::store::{leases, StoreError};

/// What changed for this replica in a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Start working the store.
    Took(String),
    /// Stop working the store: its lease was lost (not renewed in time) or handed over.
    Dropped(String),
}

#[derive(Debug)]
pub struct Leases {
    pool: PgPool,
    replica: String,
    hostname: String,
    ttl: Duration,
    /// Each configured store's budget, which the lease opens and closes.
    budgets: BTreeMap<String, Arc<RequestBudget>>,
    held: Mutex<BTreeMap<String, Instant>>,
}

/// Time kept between a replica's own end of a lease and the database's (scheduling, the
/// renewal's round trip): a fifth of the time to live, at most 2 s.
fn margin(ttl: Duration) -> Duration {
    (ttl / 5).min(Duration::from_secs(2))
}

impl Leases {
    pub fn new(
        pool: PgPool,
        replica: &str,
        ttl: Duration,
        budgets: BTreeMap<String, Arc<RequestBudget>>,
    ) -> Self {
        // Closed until a lease opens them: nothing is sent for a store not held.
        for budget in budgets.values() {
            budget.open_until(Some(Instant::now()));
        }
        Self {
            pool,
            replica: replica.to_owned(),
            hostname: hostname(),
            ttl,
            budgets,
            held: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// How often [`Self::round`] should run.
    pub fn every(&self) -> Duration {
        self.ttl / 3
    }

    /// The stores this replica holds now.
    pub fn held(&self) -> Vec<String> {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    fn open(&self, store: &str, until: Instant) {
        if let Some(b) = self.budgets.get(store) {
            b.open_until(Some(until));
        }
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(store.to_owned(), until);
    }

    fn close(&self, store: &str) {
        if let Some(b) = self.budgets.get(store) {
            b.open_until(Some(Instant::now()));
        }
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(store);
    }

    /// One round: heartbeat, renewals, fair share. A database error leaves every lease to end
    /// by itself (the budgets close at their own deadlines).
    pub async fn round(&self) -> Result<Vec<Change>, StoreError> {
        let mut changes = Vec::new();
        let stores: Vec<String> = self.budgets.keys().cloned().collect();
        // Counted from before the renewal is sent: the database's expiry is later than this.
        let sent = Instant::now();
        let until = sent + self.ttl.saturating_sub(margin(self.ttl));
        leases::heartbeat(&self.pool, &self.replica, &self.hostname).await?;
        leases::ensure(&self.pool, &stores).await?;
        let held = self.held();
        let renewed = leases::renew(&self.pool, &self.replica, &held, self.ttl).await?;
        for store in held {
            if renewed.contains(&store) {
                self.open(&store, until);
            } else {
                tracing::warn!(store = %store, "the store's lease ended before it was renewed: stopped working it");
                self.close(&store);
                changes.push(Change::Dropped(store));
            }
        }
        let live = leases::live_replicas(&self.pool, self.ttl).await?.max(1);
        let share = stores.len().div_ceil(usize::try_from(live).unwrap_or(1));
        let mut mine = self.held();
        if mine.len() > share {
            // Others came: hand over what is beyond the fair share (the last taken first).
            let extra: Vec<String> = mine.split_off(share);
            for store in &extra {
                self.close(store);
                changes.push(Change::Dropped(store.clone()));
            }
            leases::release(&self.pool, &self.replica, &extra).await?;
            tracing::info!(stores = ?extra, share, live, "handed stores over to other replicas");
        } else if mine.len() < share {
            for store in leases::free(&self.pool, &stores).await? {
                if self.held().len() >= share {
                    break;
                }
                let sent = Instant::now();
                if leases::take(&self.pool, &self.replica, &store, self.ttl)
                    .await?
                    .is_some()
                {
                    self.open(&store, sent + self.ttl.saturating_sub(margin(self.ttl)));
                    tracing::info!(store = %store, share, live, "took the store's lease");
                    changes.push(Change::Took(store));
                }
            }
        }
        metrics::gauge!(crate::telemetry_metrics::STORE_LEASES, "replica" => self.replica.clone())
            .set(self.held().len() as f64);
        Ok(changes)
    }

    /// Gives every lease back at once (graceful shutdown): other replicas take the stores in
    /// their next round instead of after the leases' time to live.
    pub async fn release_all(&self) {
        let held = self.held();
        for store in &held {
            self.close(store);
        }
        if let Err(e) = leases::release(&self.pool, &self.replica, &held).await {
            tracing::warn!(error = %e, "releasing the store leases failed: they expire by themselves");
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_ends_its_lease_before_the_database_does() {
        assert_eq!(margin(Duration::from_secs(15)), Duration::from_secs(2));
        assert_eq!(margin(Duration::from_secs(3)), Duration::from_millis(600));
    }
}
