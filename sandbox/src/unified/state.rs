//! What the sandbox holds: the seed parameters, the invoices that differ from their seeded form
//! (or were added), and the harness (faults, limiter, stats); small mutexes.
//!
//! No mutex guard here ever lives across an `.await`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use serde_json::Value;

use super::seed::{self, Seed};
use super::write::Writes;
use super::{Redacted, SandboxNames};
pub(crate) use crate::harness::lock;
use crate::harness::Harness;

/// An invoice that is no longer (or never was) its seeded self.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    pub stamp: i64,
    /// As served; any JSON at all for malformed records.
    pub body: Value,
}

/// The invoice data: seeded invoices are generated on demand; only changes are stored.
#[derive(Debug)]
pub(crate) struct Invoices {
    pub seed: Seed,
    overrides: HashMap<String, Stored>,
    /// `(remoteUpdatedAt ms, remoteId)` of every override: the list order.
    pub order: BTreeSet<(i64, String)>,
    /// Seeded indexes hidden behind an override.
    overridden: HashSet<u64>,
    /// The latest stamp handed out, so that a change always sorts after everything before it.
    last_stamp: i64,
    /// Index of the next invoice the ERP "creates" (after the seeded ones).
    next_index: u64,
    /// Alloy: the list order, by index (creation order, or where a test put an invoice);
    /// `None`: the generic order by `(remoteUpdatedAt, remoteId)`.
    pub listing: Option<Vec<u64>>,
}

impl Invoices {
    pub(crate) fn new(seed: Seed) -> Self {
        Self {
            seed,
            overrides: HashMap::new(),
            order: BTreeSet::new(),
            overridden: HashSet::new(),
            last_stamp: seed.last_stamp().unwrap_or(i64::MIN),
            next_index: seed.count + 1,
            listing: None,
        }
    }

    /// Listed in an order of their own (Alloy's cache order) rather than by update time.
    pub(crate) fn listed(seed: Seed) -> Self {
        Self {
            listing: Some((1..=seed.count).collect()),
            ..Self::new(seed)
        }
    }

    /// Alloy: puts new invoice `index` in the list, at the end or just before `before`.
    pub(crate) fn list(&mut self, index: u64, before: Option<u64>) {
        if let Some(listing) = &mut self.listing {
            let at = before
                .and_then(|b| listing.iter().position(|i| *i == b))
                .unwrap_or(listing.len());
            listing.insert(at, index);
        }
    }

    /// The invoice (internal id) that carries `remote_id` as its own `remoteId` field: raw
    /// records a test inserted with an id of their own.
    pub(crate) fn find_by_remote_id(&self, remote_id: &str) -> Option<String> {
        self.overrides
            .iter()
            .find(|(_, s)| s.body.get("remoteId").and_then(Value::as_str) == Some(remote_id))
            .map(|(key, _)| key.clone())
    }

    /// The seeded index of `id` when that invoice is still as seeded.
    pub(crate) fn seeded_index(&self, id: &str) -> Option<u64> {
        seed::index_of(id)
            .filter(|&i| i >= 1 && i <= self.seed.count && !self.overridden.contains(&i))
    }

    pub(crate) fn is_overridden(&self, index: u64) -> bool {
        self.overridden.contains(&index)
    }

    /// An invoice as served, by remoteId.
    pub(crate) fn get(&self, id: &str) -> Option<Value> {
        if let Some(stored) = self.overrides.get(id) {
            return Some(stored.body.clone());
        }
        let index = self.seeded_index(id)?;
        Some(self.seed.invoice(index, self.seed.stamp(index)))
    }

    pub(crate) fn stored(&self, id: &str) -> Option<&Stored> {
        self.overrides.get(id)
    }

    /// Stores `body` as invoice `id` at `stamp`, setting its timestamps to the stamp.
    pub(crate) fn put(&mut self, id: &str, stamp: i64, mut body: Value) {
        if let Value::Object(object) = &mut body {
            let at = Value::String(seed::rfc3339(stamp));
            object.insert("remoteUpdatedAt".to_owned(), at.clone());
            object.insert("updatedAt".to_owned(), at);
        }
        if let Some(old) = self.overrides.get(id) {
            self.order.remove(&(old.stamp, id.to_owned()));
        }
        if let Some(index) = seed::index_of(id).filter(|&i| (1..=self.seed.count).contains(&i)) {
            self.overridden.insert(index);
        }
        self.order.insert((stamp, id.to_owned()));
        self.last_stamp = self.last_stamp.max(stamp);
        self.overrides.insert(id.to_owned(), Stored { stamp, body });
    }

    /// The stamp of a change made now: the clock, but never at or before an earlier change,
    /// as an ERP's modification time would be.
    pub(crate) fn next_stamp(&mut self, now_ms: i64) -> i64 {
        let stamp = now_ms.max(self.last_stamp.saturating_add(1));
        self.last_stamp = stamp;
        stamp
    }

    /// The next free index: a raw record may already use the id an index would get.
    pub(crate) fn allocate_index(&mut self) -> u64 {
        loop {
            let index = self.next_index;
            self.next_index += 1;
            if !self.overrides.contains_key(&seed::remote_id(index)) {
                return index;
            }
        }
    }

    /// How many invoices the list holds.
    pub(crate) fn len(&self) -> u64 {
        if let Some(listing) = &self.listing {
            return listing.len() as u64;
        }
        let hidden = self.overridden.len() as u64;
        self.seed.count - hidden + self.overrides.len() as u64
    }
}

/// Everything a running sandbox shares between connections and the control handle.
#[derive(Debug)]
pub struct Shared {
    pub(crate) harness: Harness,
    /// What the request log's route labels leave out: Alloy's `/{version}/one`; none for the
    /// generic API.
    pub(crate) route_prefix: String,
    pub(crate) api_key: Redacted,
    pub(crate) credentials: Vec<String>,
    pub(crate) names: SandboxNames,
    pub(crate) default_limit: u32,
    pub(crate) max_limit: u32,
    /// The generic unified API, or Alloy's.
    pub(crate) api: super::SandboxApi,
    pub(crate) invoices: Mutex<Invoices>,
    /// Alloy's customers; locked after `invoices`, never before.
    pub(crate) customers: Mutex<super::alloy::Customers>,
    /// What Alloy clients did that they should not.
    pub(crate) alloy: Mutex<super::alloy::AlloyCounters>,
    /// The payments write-back's `PUT`s (see `write`); locked after `invoices`, never before.
    pub(crate) writes: Mutex<Writes>,
    /// Alloy's webhook subscriptions and deliveries.
    pub(crate) webhooks: Mutex<super::webhooks::Webhooks>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn invoices() -> Invoices {
        Invoices::new(Seed {
            count: 5,
            customers: 2,
            epoch_ms: 1_000_000,
            spacing_ms: 1000,
        })
    }

    #[test]
    fn overrides_hide_the_seeded_version_and_move_in_the_order() {
        let mut inv = invoices();
        assert_eq!(inv.len(), 5);
        assert!(inv.get("rmt-000003").is_some());
        assert!(inv.get("rmt-000006").is_none());
        let stamp = inv.next_stamp(0);
        assert_eq!(stamp, 1_004_001, "after the last seeded stamp");
        inv.put("rmt-000003", stamp, json!({"remoteId": "rmt-000003"}));
        assert_eq!(inv.len(), 5);
        assert_eq!(inv.seeded_index("rmt-000003"), None);
        assert_eq!(
            inv.get("rmt-000003").unwrap()["remoteUpdatedAt"],
            "1970-01-01T00:16:44.001Z"
        );
        inv.put("rmt-000003", 5, json!({}));
        assert_eq!(inv.order.len(), 1);
        assert_eq!(
            inv.next_stamp(0),
            1_004_002,
            "never before an earlier change"
        );
        let added = inv.allocate_index();
        assert_eq!(added, 6);
        inv.put(&seed::remote_id(added), 7, json!("junk"));
        assert_eq!(inv.len(), 6);
        assert_eq!(inv.get("rmt-000006"), Some(json!("junk")));
        inv.put("rmt-000007", 8, json!({}));
        inv.put("rmt-000000", 9, json!({}));
        assert_eq!(
            inv.allocate_index(),
            8,
            "ids taken by raw records are skipped"
        );
        assert_eq!(inv.len(), 8);
    }
}
