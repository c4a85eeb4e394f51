//! Stores across replicas: which stores this replica holds (the holding itself, its budget gate
//! and its fencing are `sync::ownership`'s).
//!
//! Each round (every third of the lease's time to live) a replica renews its heartbeat and the
//! leases it holds, counts the live replicas, and takes free leases up to its fair share
//! (`ceil(stores / live replicas)`), or gives back what it holds beyond it, so stores spread
//! evenly and move when replicas come and go. Shutdown gives every lease back at once.

use std::sync::Arc;
use std::time::Duration;

use crate::store::{leases, StoreError};
use crate::sync::ownership::Ownership;

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
    ownership: Arc<Ownership>,
}

impl Leases {
    /// Takes over `ownership`: from now on only the stores this replica holds are worked.
    pub fn new(ownership: Arc<Ownership>) -> Self {
        ownership.manage();
        Self { ownership }
    }

    pub fn replica(&self) -> &str {
        self.ownership.holder()
    }

    /// How often [`Self::round`] should run.
    pub fn every(&self) -> Duration {
        self.ownership.ttl() / 3
    }

    /// The stores this replica holds now.
    pub fn held(&self) -> Vec<String> {
        self.ownership.pinned()
    }

    /// One round: heartbeat, renewals, fair share.
    pub async fn round(&self) -> Result<Vec<Change>, StoreError> {
        let own = &self.ownership;
        let pool = own.pool();
        let stores = own.stores();
        let mut changes: Vec<Change> = own
            .renew()
            .await?
            .into_iter()
            .map(Change::Dropped)
            .collect();
        leases::heartbeat(pool, own.holder(), own.hostname()).await?;
        leases::ensure(pool, &stores).await?;
        let live = leases::live_replicas(pool, own.ttl()).await?.max(1);
        let share = stores.len().div_ceil(usize::try_from(live).unwrap_or(1));
        let mut mine = self.held();
        if mine.len() > share {
            // Others came: hand over what is beyond the fair share.
            let extra: Vec<String> = mine.split_off(share);
            own.give_back(&extra).await;
            changes.extend(extra.iter().cloned().map(Change::Dropped));
            tracing::info!(stores = ?extra, share, live, "handed stores over to other replicas");
        } else if mine.len() < share {
            for store in leases::free(pool, &stores).await? {
                if self.held().len() >= share {
                    break;
                }
                if let Some(taken) = own.take(&store).await? {
                    if taken.moved {
                        metrics::counter!(crate::telemetry_metrics::STORE_LEASE_MOVES, "store" => store.clone())
                            .increment(1);
                    }
                    tracing::info!(store = %store, share, live, moved = taken.moved, "took the store's lease");
                    changes.push(Change::Took(store));
                }
            }
        }
        metrics::gauge!(crate::telemetry_metrics::STORE_LEASES, "replica" => own.holder().to_owned())
            .set(self.held().len() as f64);
        Ok(changes)
    }

    /// Gives every lease back at once (graceful shutdown): other replicas take the stores in
    /// their next round instead of after the leases' time to live.
    pub async fn release_all(&self) {
        self.ownership.give_back(&self.held()).await;
    }
}
