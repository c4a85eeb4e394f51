//! The store-wide request budget.
//!
//! B2B Edition allows 150 requests a minute per store, shared by every app on the store. Every
//! call this daemon makes to one store, whatever part of the daemon makes it, goes through one
//! [`RequestBudget`]: a rate (GCRA via `governor`, this daemon's share of the 150), a cap on
//! requests in flight, and a store-wide pause that a 429 sets for its `Retry-After`, so one
//! caller's 429 holds back all of them instead of each finding out on its own.
//!
//! Time comes from `tokio::time`, so tests can run the budget under a paused clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::BudgetSettings;

/// A `governor` clock that reads `tokio::time`, so a paused test clock drives the rate too.
#[derive(Debug, Clone)]
struct TokioClock {
    start: Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

pub struct RequestBudget {
    limiter: Limiter,
    clock: TokioClock,
    slots: Arc<Semaphore>,
    paused_until: Mutex<Option<Instant>>,
    settings: BudgetSettings,
    granted: AtomicU64,
    pauses: AtomicU64,
}

/// Held for the duration of one request; dropping it frees the concurrency slot.
#[derive(Debug)]
pub struct BudgetPermit {
    _slot: Option<OwnedSemaphorePermit>,
}

/// Counters for logs, metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetStats {
    pub granted: u64,
    pub pauses: u64,
    pub in_flight: usize,
}

impl std::fmt::Debug for RequestBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBudget")
            .field("settings", &self.settings)
            .field("stats", &self.stats())
            .finish()
    }
}

impl RequestBudget {
    pub fn new(settings: &BudgetSettings) -> Self {
        let clock = TokioClock {
            start: Instant::now(),
        };
        let quota = Quota::per_minute(settings.requests_per_minute).allow_burst(settings.burst);
        Self {
            limiter: RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
            slots: Arc::new(Semaphore::new(settings.max_concurrent.get())),
            paused_until: Mutex::new(None),
            settings: *settings,
            granted: AtomicU64::new(0),
            pauses: AtomicU64::new(0),
        }
    }

    pub fn settings(&self) -> &BudgetSettings {
        &self.settings
    }

    /// Waits for a concurrency slot, for any store-wide pause to end, and for a rate token.
    pub async fn acquire(&self) -> BudgetPermit {
        // The semaphore is never closed, so acquiring cannot fail; were it ever closed, going on
        // without a slot is safer than failing the call (the rate still bounds the store).
        let slot = self.slots.clone().acquire_owned().await.ok();
        loop {
            if let Some(until) = self.paused_until() {
                tokio::time::sleep_until(until).await;
                continue;
            }
            match self.limiter.check() {
                // A 429 may have paused the store while this caller waited for its token.
                Ok(()) if self.paused_until().is_some() => continue,
                Ok(()) => break,
                Err(not_until) => {
                    let wait = not_until.wait_time_from(self.clock.now());
                    tokio::time::sleep(wait).await;
                }
            }
        }
        self.granted.fetch_add(1, Ordering::Relaxed);
        BudgetPermit { _slot: slot }
    }

    /// Holds every caller of this store back for `wait` (a 429's `Retry-After`). Never shortens
    /// a pause already in force.
    pub fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
            self.pauses.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                pause_secs = wait.as_secs_f64(),
                "B2B Edition answered 429: pausing every request to this store"
            );
        }
    }

    /// When the current pause ends, if one is in force.
    pub fn paused_until(&self) -> Option<Instant> {
        let mut paused = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        match *paused {
            Some(until) if until > Instant::now() => Some(until),
            Some(_) => {
                *paused = None;
                None
            }
            None => None,
        }
    }

    pub fn stats(&self) -> BudgetStats {
        BudgetStats {
            granted: self.granted.load(Ordering::Relaxed),
            pauses: self.pauses.load(Ordering::Relaxed),
            in_flight: self.settings.max_concurrent.get() - self.slots.available_permits(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::{NonZeroU32, NonZeroUsize};

    fn settings(rpm: u32, burst: u32, concurrent: usize) -> BudgetSettings {
        BudgetSettings {
            requests_per_minute: NonZeroU32::new(rpm).unwrap(),
            burst: NonZeroU32::new(burst).unwrap(),
            max_concurrent: NonZeroUsize::new(concurrent).unwrap(),
            default_retry_after: Duration::from_secs(60),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn grants_at_the_configured_rate_after_the_burst() {
        let budget = RequestBudget::new(&settings(120, 4, 4));
        let start = Instant::now();
        for _ in 0..24 {
            drop(budget.acquire().await);
        }
        // 4 at once, then one every 500 ms: the 24th comes 20 x 0.5 s = 10 s in.
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        assert_eq!(budget.stats().granted, 24);
    }

    #[tokio::test(start_paused = true)]
    async fn caps_requests_in_flight() {
        let budget = Arc::new(RequestBudget::new(&settings(150, 30, 2)));
        let a = budget.acquire().await;
        let _b = budget.acquire().await;
        assert_eq!(budget.stats().in_flight, 2);
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { budget.acquire().await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiter.is_finished());
        drop(a);
        let _c = waiter.await.unwrap();
        assert_eq!(budget.stats().in_flight, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_back_every_caller_and_is_never_shortened() {
        let budget = Arc::new(RequestBudget::new(&settings(150, 30, 4)));
        let start = Instant::now();
        budget.pause_for(Duration::from_secs(30));
        budget.pause_for(Duration::from_secs(5));
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let budget = budget.clone();
                tokio::spawn(async move {
                    drop(budget.acquire().await);
                    Instant::now()
                })
            })
            .collect();
        for w in waiters {
            assert!(w.await.unwrap() - start >= Duration::from_secs(30));
        }
        assert_eq!(budget.stats().pauses, 1);
    }
}
