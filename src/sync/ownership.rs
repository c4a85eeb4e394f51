//! One process per store: a cycle runs only while its process holds the store's lease
//! (`store_leases`), so one process spends the store's whole request budget and no two processes
//! ever send for the same invoice.
//!
//! Two ways to hold a lease:
//! - **Per cycle** (`sync`, the tests): a cycle takes its store's lease if it is free, holds it
//!   while it runs (renewed in the background, shared by the cycles of the store's other sources
//!   in this process) and gives it back at the end. A store held by another process makes the
//!   cycle skip.
//! - **Managed** (the daemon, see `daemon::leases`): the replica's supervisor decides which stores
//!   this replica holds ([`Ownership::take`], [`Ownership::give_back`]) and renews them each
//!   round; a cycle of a store this replica does not hold skips.
//!
//! **The budget gate.** A lease expires by the database's clock; this process fences itself by
//! its own: the store's request budget closes a margin before the lease could expire (counted
//! from when the renewal was sent), so it never sends for a store another process may already
//! hold, even cut off from the database. Every change also checks the lease in its own
//! transaction (`store::leases::Fence`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use crate::b2b::RequestBudget;
use crate::store::leases::{self, Fence};
use crate::store::StoreError;

/// This process's leases.
#[derive(Debug)]
pub struct Ownership {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    /// This holder: its id is unique per engine (two engines in one process are two holders).
    me: leases::Claimant,
    ttl: Duration,
    /// Each configured store's budget, which the lease opens and closes.
    budgets: BTreeMap<String, Arc<RequestBudget>>,
    state: Mutex<State>,
    taking: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct State {
    /// Managed by a daemon supervisor (no per-cycle takes).
    managed: bool,
    held: BTreeMap<String, Held>,
    /// Whether the per-cycle renewer runs.
    renewing: bool,
}

#[derive(Debug)]
struct Held {
    token: i64,
    /// Cycles of this store running now.
    cycles: usize,
    /// Held by the supervisor (managed), not only for cycles.
    pinned: bool,
}

/// Time kept between this process's own end of a lease and the database's (scheduling, the
/// renewal's round trip): a fifth of the time to live, at most 2 s.
fn margin(ttl: Duration) -> Duration {
    (ttl / 5).min(Duration::from_secs(2))
}

/// A cycle's hold on its store: give it back with [`Ownership::leave`]. Dropped instead (a
/// cycle cut off), it is given back all the same, in the background.
#[derive(Debug)]
pub struct StoreHold {
    inner: Arc<Inner>,
    store: String,
    token: i64,
    left: bool,
}

impl Drop for StoreHold {
    fn drop(&mut self) {
        if self.left {
            return;
        }
        if self.inner.last_cycle_left(&self.store) {
            let (inner, store) = (self.inner.clone(), self.store.clone());
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { inner.release(&store).await });
            }
        }
    }
}

impl StoreHold {
    pub fn fence(&self, ownership: &Ownership, source: &str) -> Fence {
        Fence::new(&self.store, source, ownership.holder(), self.token)
    }
}

/// Why a cycle may not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotHeld {
    /// Another process holds the store's lease.
    ElsewhereHeld { holder: String, hostname: String },
    /// A daemon replica that does not hold the store (another replica does, or will).
    NotThisReplica,
}

impl std::fmt::Display for NotHeld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ElsewhereHeld { holder, hostname } if hostname.is_empty() => {
                write!(f, "another process ({holder}) holds the store's lease")
            }
            Self::ElsewhereHeld { holder, hostname } => write!(
                f,
                "another process ({holder} on {hostname}) holds the store's lease"
            ),
            Self::NotThisReplica => write!(f, "this replica does not hold the store's lease"),
        }
    }
}

impl Ownership {
    pub fn new(pool: PgPool, ttl: Duration, budgets: BTreeMap<String, Arc<RequestBudget>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                me: leases::Claimant {
                    holder: format!(
                        "{}#{}",
                        crate::store::process_name(),
                        &Uuid::new_v4().simple().to_string()[..8]
                    ),
                    hostname: hostname(),
                    pid: std::process::id(),
                    started: process_started(std::process::id()),
                },
                ttl,
                budgets,
                state: Mutex::new(State::default()),
                taking: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// This holder's id, as `store_leases.holder` and `replicas.id` show it.
    pub fn holder(&self) -> &str {
        &self.inner.me.holder
    }

    pub fn hostname(&self) -> &str {
        &self.inner.me.hostname
    }

    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    pub fn stores(&self) -> Vec<String> {
        self.inner.budgets.keys().cloned().collect()
    }

    /// From now on a supervisor decides which stores this process holds: every budget closes
    /// until a lease opens it.
    pub fn manage(&self) {
        self.inner.lock().managed = true;
        for budget in self.inner.budgets.values() {
            budget.open_until(Some(Instant::now()));
        }
    }

    /// The stores held now (by the supervisor or for cycles).
    pub fn held(&self) -> Vec<String> {
        self.inner.lock().held.keys().cloned().collect()
    }

    /// The stores the supervisor holds.
    pub fn pinned(&self) -> Vec<String> {
        self.inner
            .lock()
            .held
            .iter()
            .filter(|(_, h)| h.pinned)
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// A cycle of `store` starts: `Ok(Err(_))` when it may not run.
    pub async fn enter(&self, store: &str) -> Result<Result<StoreHold, NotHeld>, StoreError> {
        if let Some(hold) = self.inner.join(store) {
            return Ok(hold);
        }
        // One take at a time in this process: two cycles of one store never both take it (the
        // second would find it held, by this very process).
        let _taking = self.inner.taking.lock().await;
        if let Some(hold) = self.inner.join(store) {
            return Ok(hold);
        }
        let sent = Instant::now();
        let Some(taken) = self.inner.take(store).await? else {
            let (holder, hostname) = leases::holder(&self.inner.pool, store)
                .await?
                .unwrap_or_else(|| ("another process".to_owned(), String::new()));
            return Ok(Err(NotHeld::ElsewhereHeld { holder, hostname }));
        };
        let start_renewer = {
            let mut st = self.inner.lock();
            st.held.insert(
                store.to_owned(),
                Held {
                    token: taken.token,
                    cycles: 1,
                    pinned: false,
                },
            );
            self.inner.opened(store, sent, taken);
            !std::mem::replace(&mut st.renewing, true)
        };
        if start_renewer {
            tokio::spawn(renew_while_held(Arc::downgrade(&self.inner)));
        }
        Ok(Ok(StoreHold {
            inner: self.inner.clone(),
            store: store.to_owned(),
            token: taken.token,
            left: false,
        }))
    }

    /// The cycle ended: the last cycle of a store held only for cycles gives its lease back.
    pub async fn leave(&self, mut hold: StoreHold) {
        hold.left = true;
        if self.inner.last_cycle_left(&hold.store) {
            self.inner.release(&hold.store).await;
        }
    }

    /// The supervisor takes `store` if it is free: what was taken, `None` when another holds it.
    pub async fn take(&self, store: &str) -> Result<Option<leases::Taken>, StoreError> {
        let sent = Instant::now();
        let Some(taken) = self.inner.take(store).await? else {
            return Ok(None);
        };
        let mut st = self.inner.lock();
        st.held.insert(
            store.to_owned(),
            Held {
                token: taken.token,
                cycles: 0,
                pinned: true,
            },
        );
        self.inner.opened(store, sent, taken);
        Ok(Some(taken))
    }

    /// The supervisor gives `stores` back (handed over, or shutdown): their budgets close at
    /// once, so a cycle still running sends nothing more, and other replicas may take them.
    pub async fn give_back(&self, stores: &[String]) {
        {
            let mut st = self.inner.lock();
            for store in stores {
                st.held.remove(store);
                self.inner.close(store);
            }
        }
        if let Err(e) = leases::release(&self.inner.pool, &self.inner.me.holder, stores).await {
            tracing::warn!(error = %e, "giving store leases back failed: they expire by themselves");
        }
    }

    /// Renews every lease held: returns the stores whose lease had ended (they are dropped, and
    /// their budgets closed). A database error leaves every lease to end by itself: the budgets
    /// close at their own deadlines.
    pub async fn renew(&self) -> Result<Vec<String>, StoreError> {
        self.inner.renew().await
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A cycle joins the store's lease if this process holds it: `None` when it must be taken.
    fn join(self: &Arc<Self>, store: &str) -> Option<Result<StoreHold, NotHeld>> {
        let mut st = self.lock();
        if let Some(h) = st.held.get_mut(store) {
            h.cycles += 1;
            return Some(Ok(StoreHold {
                inner: self.clone(),
                store: store.to_owned(),
                token: h.token,
                left: false,
            }));
        }
        if st.managed {
            return Some(Err(NotHeld::NotThisReplica));
        }
        None
    }

    async fn take(&self, store: &str) -> Result<Option<leases::Taken>, StoreError> {
        leases::take(&self.pool, &self.me, store, self.ttl, |pid, started| {
            process_started(pid).as_deref() != Some(started)
        })
        .await
    }

    /// A cycle of `store` ended: whether it was the last and the lease is to be given back.
    fn last_cycle_left(&self, store: &str) -> bool {
        let mut st = self.lock();
        let Some(h) = st.held.get_mut(store) else {
            return false;
        };
        h.cycles = h.cycles.saturating_sub(1);
        if h.cycles > 0 || h.pinned {
            return false;
        }
        st.held.remove(store);
        drop(st);
        self.ungate(store);
        true
    }

    async fn release(&self, store: &str) {
        if let Err(e) = leases::release(
            &self.pool,
            &self.me.holder,
            std::slice::from_ref(&store.to_owned()),
        )
        .await
        {
            tracing::warn!(store = %store, error = %e, "giving the store's lease back failed: it expires by itself");
        }
    }

    /// A lease taken at `sent`: its budget opens, without the burst another process may have
    /// spent this minute.
    fn opened(&self, store: &str, sent: Instant, taken: leases::Taken) {
        if taken.recently_elsewhere {
            if let Some(b) = self.budgets.get(store) {
                b.drain();
            }
        }
        self.open(store, sent);
    }

    /// The store's budget opens until the lease, renewed at `sent`, could end.
    fn open(&self, store: &str, sent: Instant) {
        if let Some(b) = self.budgets.get(store) {
            b.open_until(Some(sent + self.ttl.saturating_sub(margin(self.ttl))));
        }
    }

    fn close(&self, store: &str) {
        if let Some(b) = self.budgets.get(store) {
            b.open_until(Some(Instant::now()));
        }
    }

    /// Per-cycle holding ended: closed when managed, otherwise no gate at all (tools that read
    /// the store without a cycle, like `reconcile`, use the same budget).
    fn ungate(&self, store: &str) {
        if self.lock().managed {
            self.close(store);
        } else if let Some(b) = self.budgets.get(store) {
            b.open_until(None);
        }
    }

    async fn renew(&self) -> Result<Vec<String>, StoreError> {
        let held: Vec<String> = self.lock().held.keys().cloned().collect();
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let sent = Instant::now();
        let renewed = leases::renew(&self.pool, &self.me.holder, &held, self.ttl).await?;
        let mut lost = Vec::new();
        let mut st = self.lock();
        for store in held {
            if renewed.contains(&store) {
                if st.held.contains_key(&store) {
                    self.open(&store, sent);
                }
            } else if st.held.remove(&store).is_some() {
                tracing::warn!(store = %store, "the store's lease ended before it was renewed: stopped working it");
                self.close(&store);
                lost.push(store);
            }
        }
        Ok(lost)
    }
}

/// Per-cycle holding: renews every third of the time to live while anything is held.
async fn renew_while_held(inner: Weak<Inner>) {
    loop {
        let Some(every) = inner.upgrade().map(|i| i.ttl / 3) else {
            return;
        };
        tokio::time::sleep(every).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        {
            let mut st = inner.lock();
            if st.held.is_empty() || st.managed {
                st.renewing = false;
                return;
            }
        }
        if let Err(e) = inner.renew().await {
            tracing::warn!(error = %e, "renewing store leases failed: they end by themselves unless a later renewal reaches the database");
        }
    }
}

/// When process `pid` started, as the OS tells it (Linux: `/proc/<pid>/stat`'s start time, in
/// clock ticks since boot); `None` when there is no such process or it cannot be read.
fn process_started(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19).map(str::to_owned)
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
    fn a_process_is_told_apart_from_a_later_one_with_its_pid() {
        let me = process_started(std::process::id());
        if std::path::Path::new("/proc/self/stat").exists() {
            let started = me.expect("this process's start time");
            assert!(started.parse::<u64>().is_ok(), "{started}");
            // Stable for the life of the process.
            assert_eq!(
                process_started(std::process::id()).as_deref(),
                Some(started.as_str())
            );
        }
        // No process has pid 0 in /proc.
        assert_eq!(process_started(0), None);
    }

    #[test]
    fn a_process_ends_its_lease_before_the_database_does() {
        assert_eq!(margin(Duration::from_secs(15)), Duration::from_secs(2));
        assert_eq!(margin(Duration::from_secs(3)), Duration::from_millis(600));
    }
}
