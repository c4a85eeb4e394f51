//! Cycles on demand: `POST /v1/sources/{name}/sync` and Alloy's webhooks wake a source's loop
//! (see `scheduler::run_loop`) instead of waiting for its schedule.
//!
//! Each source has one [`SourceTrigger`]: a request for a full cycle is a flag, and invoices a
//! webhook named are a set, both drained by the loop when it wakes; so any number of requests
//! between two cycles make one cycle, and a source's cycles still run one after another in its
//! own loop (never overlapping). A full-cycle request while a cycle runs joins that cycle. Named
//! invoices that arrive while a cycle runs wait for the next turn: the running one may already
//! have read them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// What became of a request for a full cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// The loop wakes and starts a cycle now.
    Started,
    /// A requested cycle had not started yet: this request is the same cycle.
    AlreadyDue,
    /// A cycle is running: this request joins it.
    Running,
    /// No loop of this source runs in this process (another replica holds its store).
    NotHere,
}

impl Requested {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::AlreadyDue => "already_due",
            Self::Running => "running",
            Self::NotHere => "not_here",
        }
    }
}

/// What the loop should do when it wakes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// The schedule fired, or someone asked for a full cycle.
    Full,
    /// Only these invoices (ERP ids) changed: read them by id and sync them.
    Invoices(Vec<String>),
}

#[derive(Debug, Default)]
struct State {
    /// Loops of this source in this process (its store is held here; briefly two while a
    /// store is dropped and taken again).
    attached: u32,
    requested: bool,
    running: bool,
    /// The running cycle is a full one (not only a webhook's invoices).
    running_full: bool,
    invoices: BTreeSet<String>,
}

/// One source's wake-up: requests in, the loop drains them.
#[derive(Debug, Default)]
pub struct SourceTrigger {
    state: Mutex<State>,
    notify: Notify,
}

/// At most this many named invoices wait for one turn; more make it a full cycle.
pub const MAX_NAMED: usize = 1000;

impl SourceTrigger {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks for a full cycle now, coalesced with one already due or running (a webhook's short
    /// cycle running does not count: a full one follows it).
    pub fn request_cycle(&self) -> Requested {
        let mut s = self.state();
        if s.attached == 0 {
            return Requested::NotHere;
        }
        if s.running && s.running_full {
            return Requested::Running;
        }
        if s.requested {
            return Requested::AlreadyDue;
        }
        s.requested = true;
        drop(s);
        self.notify.notify_one();
        Requested::Started
    }

    /// Asks for these invoices to be synced at the loop's next turn (at once when idle).
    /// Returns false when no loop of this source runs here.
    pub fn request_invoices(&self, ids: impl IntoIterator<Item = String>) -> bool {
        let mut s = self.state();
        if s.attached == 0 {
            return false;
        }
        s.invoices.extend(ids);
        if s.invoices.len() > MAX_NAMED {
            s.invoices.clear();
            s.requested = true;
        }
        drop(s);
        self.notify.notify_one();
        true
    }

    /// The loop starts (true) or stops (false) serving this source here.
    pub fn attach(&self, attached: bool) {
        let mut s = self.state();
        if attached {
            s.attached += 1;
        } else {
            s.attached = s.attached.saturating_sub(1);
        }
        if s.attached == 0 {
            s.requested = false;
            s.running = false;
            s.invoices.clear();
        }
    }

    /// Waits until something was requested (may return spuriously: check [`Self::take`]).
    pub async fn notified(&self) {
        self.notify.notified().await;
    }

    /// What to run now, if anything was requested: marks the cycle running. `scheduled` says
    /// the schedule fired, which makes it a full cycle whatever was requested.
    pub fn take(&self, scheduled: bool) -> Option<Wake> {
        let mut s = self.state();
        let wake = if scheduled || s.requested {
            // A full cycle reads the named invoices too.
            s.invoices.clear();
            Wake::Full
        } else if !s.invoices.is_empty() {
            Wake::Invoices(std::mem::take(&mut s.invoices).into_iter().collect())
        } else {
            return None;
        };
        s.requested = false;
        s.running = true;
        s.running_full = wake == Wake::Full;
        Some(wake)
    }

    /// The cycle ended.
    pub fn finished(&self) {
        let mut s = self.state();
        s.running = false;
        let more = s.requested || !s.invoices.is_empty();
        drop(s);
        if more {
            self.notify.notify_one();
        }
    }
}

/// Every source's trigger, shared by the HTTP endpoints and the loops.
#[derive(Debug, Default, Clone)]
pub struct Triggers {
    by_source: Arc<BTreeMap<String, Arc<SourceTrigger>>>,
}

impl Triggers {
    pub fn new(sources: impl IntoIterator<Item = String>) -> Self {
        Self {
            by_source: Arc::new(
                sources
                    .into_iter()
                    .map(|s| (s, Arc::new(SourceTrigger::default())))
                    .collect(),
            ),
        }
    }

    pub fn get(&self, source: &str) -> Option<&Arc<SourceTrigger>> {
        self.by_source.get(source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_between_two_cycles_make_one() {
        let t = SourceTrigger::default();
        assert_eq!(t.request_cycle(), Requested::NotHere);
        t.attach(true);
        assert_eq!(t.request_cycle(), Requested::Started);
        assert_eq!(t.request_cycle(), Requested::AlreadyDue);
        assert_eq!(t.take(false), Some(Wake::Full));
        assert_eq!(t.request_cycle(), Requested::Running);
        t.finished();
        assert_eq!(t.take(false), None, "joined the running cycle");
    }

    #[test]
    fn named_invoices_gather_and_wait_for_the_running_cycle() {
        let t = SourceTrigger::default();
        t.attach(true);
        assert!(t.request_invoices(["a".to_owned()]));
        assert_eq!(t.take(false), Some(Wake::Invoices(vec!["a".to_owned()])));
        assert!(t.request_invoices(["b".to_owned(), "c".to_owned()]));
        assert!(t.request_invoices(["b".to_owned()]));
        t.finished();
        assert_eq!(
            t.take(false),
            Some(Wake::Invoices(vec!["b".to_owned(), "c".to_owned()]))
        );
        t.finished();
        assert!(t.request_invoices((0..=MAX_NAMED).map(|i| i.to_string())));
        assert_eq!(t.take(false), Some(Wake::Full), "too many: a full cycle");
        t.finished();
        // A full request while a webhook's short cycle runs: a full cycle follows it.
        assert!(t.request_invoices(["d".to_owned()]));
        assert_eq!(t.take(false), Some(Wake::Invoices(vec!["d".to_owned()])));
        assert_eq!(t.request_cycle(), Requested::Started);
        t.finished();
        assert_eq!(t.take(false), Some(Wake::Full));
    }
}
