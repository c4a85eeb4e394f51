//! The store-wide request budget.
//!
//! B2B Edition allows 150 requests a minute per store, shared by every app on the store. Every
//! call this daemon makes to one store, whatever part of the daemon makes it, goes through one
//! [`RequestBudget`]: a rate (GCRA via `governor`, this daemon's share of the 150), a cap on
//! requests in flight, and a store-wide pause that a 429 sets for its `Retry-After`, so one
//! caller's 429 holds back all of them instead of each finding out on its own.
//!
//! **Adapting to other apps.** A 429 means the store's 150 are used up by everyone together:
//! after the pause, this daemon does not go back to its full share at once. Each new pause
//! halves the pace it allows itself (down to a quarter of its share) and it comes back by a
//! twentieth of its share per 30 s without a 429: additive increase, multiplicative decrease,
//! so the daemon and the other apps both get through instead of taking turns at 429s.
//!
//! **Fair order.** Callers get their turn in the order they asked (a FIFO lock around the wait
//! for the rate), so a caller that needs several requests at once (a [`Reservation`]) is not
//! starved by single ones.
//!
//! Time comes from `tokio::time`, so tests can run the budget under a paused clock.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

tokio::task_local! {
    /// Microseconds the budget held back the requests of the future [`measure_wait`] runs.
    static WAITED_US: Arc<AtomicU64>;
}

/// Runs `fut`, also returning how long its requests waited for the budget (for a turn, a slot,
/// the rate or a pause), so that a request's latency can be told from the wait before it.
pub async fn measure_wait<F: std::future::Future>(fut: F) -> (F::Output, Duration) {
    let waited = Arc::new(AtomicU64::new(0));
    let out = WAITED_US.scope(waited.clone(), fut).await;
    (out, Duration::from_micros(waited.load(Ordering::Relaxed)))
}

/// Adds to the wait of the future [`measure_wait`] runs, if any.
fn note_wait(since: tokio::time::Instant) {
    let us = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
    let _ = WAITED_US.try_with(|w| w.fetch_add(us, Ordering::Relaxed));
}
use tokio::time::Instant;

use crate::config::BudgetSettings;

/// The full pace, in thousandths of the configured rate.
const FULL_PACE: u32 = 1000;
/// The slowest pace a run of 429s can bring the daemon to.
const MIN_PACE: u32 = 250;
/// How much of the pace comes back per [`RECOVERY_STEP`] without a 429.
const RECOVERY: u32 = 50;
const RECOVERY_STEP: Duration = Duration::from_secs(30);

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
    /// Held while a caller waits for the rate: callers are served in the order they came.
    turn: tokio::sync::Mutex<()>,
    paused_until: Mutex<Option<Instant>>,
    /// The pace this daemon allows itself after 429s, and since when it holds.
    pace: Mutex<Pace>,
    /// No grant before this instant (the slowed pace spaces grants out beyond the rate).
    next_grant: Mutex<Option<Instant>>,
    settings: BudgetSettings,
    granted: AtomicU64,
    pauses: AtomicU64,
    pace_now: AtomicU32,
    /// Requests may be sent only before this instant (`None`: no limit). A replica that holds a
    /// store by a lease closes the gate at the lease's end, so it never sends once another
    /// replica may have taken the store (see `daemon::leases`).
    gate: Mutex<Option<Instant>>,
}

#[derive(Debug, Clone, Copy)]
struct Pace {
    permille: u32,
    since: Instant,
}

/// Held for the duration of one request; dropping it frees the concurrency slot.
#[derive(Debug)]
pub struct BudgetPermit {
    _slot: Option<OwnedSemaphorePermit>,
}

/// Rate cells paid for together, to spend on requests that must go out close together (a read
/// and the updates built from it). Spent by [`RequestBudget::acquire_with`]; unspent cells are
/// simply lost (the rate was paid for them).
#[derive(Debug, Default)]
pub struct Reservation {
    cells: AtomicU32,
}

impl Reservation {
    /// Cells still to spend.
    pub fn left(&self) -> u32 {
        self.cells.load(Ordering::Relaxed)
    }

    fn take(&self) -> bool {
        self.cells
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| c.checked_sub(1))
            .is_ok()
    }
}

/// Counters for logs, metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetStats {
    pub granted: u64,
    pub pauses: u64,
    pub in_flight: usize,
    /// The pace allowed now, in thousandths of the configured rate (1000 = full).
    pub pace_permille: u32,
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
            turn: tokio::sync::Mutex::new(()),
            paused_until: Mutex::new(None),
            pace: Mutex::new(Pace {
                permille: FULL_PACE,
                since: Instant::now(),
            }),
            next_grant: Mutex::new(None),
            settings: *settings,
            granted: AtomicU64::new(0),
            pauses: AtomicU64::new(0),
            pace_now: AtomicU32::new(FULL_PACE),
            gate: Mutex::new(None),
        }
    }

    /// Requests may go only before `until` (`None`: always). Checked by the client after each
    /// permit, before anything is sent.
    pub fn open_until(&self, until: Option<Instant>) {
        *self.gate.lock().unwrap_or_else(|e| e.into_inner()) = until;
    }

    /// Spends whatever burst is left, so the next requests go at the steady rate: a store taken
    /// over from another process, which may have spent the burst in the same minute, must not
    /// be sent a second one.
    pub fn drain(&self) {
        for _ in 0..=self.settings.burst.get() {
            if self.limiter.check().is_err() {
                break;
            }
        }
    }

    /// Whether a request may be sent now (see [`Self::open_until`]).
    pub fn is_open(&self) -> bool {
        self.gate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none_or(|until| Instant::now() < until)
    }

    pub fn settings(&self) -> &BudgetSettings {
        &self.settings
    }

    /// Waits for a concurrency slot, for any store-wide pause to end, and for a rate token.
    pub async fn acquire(&self) -> BudgetPermit {
        self.acquire_with(None).await
    }

    /// [`Self::acquire`], spending a cell of `reservation` instead of waiting for the rate when
    /// one is left (a pause still holds it back).
    pub async fn acquire_with(&self, reservation: Option<&Reservation>) -> BudgetPermit {
        // The semaphore is never closed, so acquiring cannot fail; were it ever closed, going on
        // without a slot is safer than failing the call (the rate still bounds the store).
        let asked = tokio::time::Instant::now();
        let slot = self.slots.clone().acquire_owned().await.ok();
        if reservation.is_some_and(Reservation::take) {
            self.wait_out_pause().await;
        } else {
            self.wait_for_cells(NonZeroU32::MIN).await;
        }
        note_wait(asked);
        self.granted.fetch_add(1, Ordering::Relaxed);
        BudgetPermit { _slot: slot }
    }

    /// Pays for `n` requests at once (at most the burst), in turn with every other caller:
    /// they can then go out back to back through [`Self::acquire_with`].
    pub async fn reserve(&self, n: u32) -> Reservation {
        let n = n.clamp(1, self.settings.burst.get());
        let asked = tokio::time::Instant::now();
        self.wait_for_cells(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
            .await;
        note_wait(asked);
        Reservation {
            cells: AtomicU32::new(n),
        }
    }

    /// The most requests [`Self::reserve`] can pay for at once.
    pub fn max_reservation(&self) -> u32 {
        self.settings.burst.get()
    }

    /// The pace allowed now, in requests a second (the configured rate, slowed after 429s).
    pub fn requests_per_second(&self) -> f64 {
        f64::from(self.settings.requests_per_minute.get()) / 60.0 * f64::from(self.pace_permille())
            / f64::from(FULL_PACE)
    }

    async fn wait_out_pause(&self) {
        while let Some(until) = self.paused_until() {
            tokio::time::sleep_until(until).await;
        }
    }

    /// In turn: the pause, the slowed pace, then `n` rate cells.
    async fn wait_for_cells(&self, n: NonZeroU32) {
        let _turn = self.turn.lock().await;
        loop {
            self.wait_out_pause().await;
            let next = *self.next_grant.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(at) = next.filter(|at| *at > Instant::now()) {
                tokio::time::sleep_until(at).await;
                continue;
            }
            match self.limiter.check_n(n) {
                // A 429 may have paused the store while this caller waited for its token.
                Ok(Ok(())) if self.paused_until().is_some() => continue,
                Ok(Ok(())) => break,
                Ok(Err(not_until)) => {
                    let wait = not_until.wait_time_from(self.clock.now());
                    tokio::time::sleep(wait).await;
                }
                // More than the burst: cannot happen (callers clamp), so go on one at a time.
                Err(_) => break,
            }
        }
        self.space_after_grant(n.get());
    }

    /// At a slowed pace, grants are spaced by the slowed interval (no burst either): the rate's
    /// own interval stretched by the pace.
    fn space_after_grant(&self, n: u32) {
        let permille = self.pace_permille();
        if permille >= FULL_PACE {
            return;
        }
        let interval = Duration::from_secs(60) / self.settings.requests_per_minute.get();
        let spacing = interval * n * FULL_PACE / permille.max(1);
        *self.next_grant.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + spacing);
    }

    /// The pace now: slowed by 429s, coming back by [`RECOVERY`] per [`RECOVERY_STEP`].
    fn pace_permille(&self) -> u32 {
        let mut pace = self.pace.lock().unwrap_or_else(|e| e.into_inner());
        let steps = pace.since.elapsed().as_secs() / RECOVERY_STEP.as_secs();
        if pace.permille < FULL_PACE && steps > 0 {
            let back = u32::try_from(steps)
                .unwrap_or(u32::MAX)
                .saturating_mul(RECOVERY);
            pace.permille = pace.permille.saturating_add(back).min(FULL_PACE);
            pace.since += RECOVERY_STEP * u32::try_from(steps).unwrap_or(u32::MAX);
        }
        self.pace_now.store(pace.permille, Ordering::Relaxed);
        pace.permille
    }

    /// Holds every caller of this store back for `wait` (a 429's `Retry-After`). Never shortens
    /// a pause already in force. A new pause also halves the pace (see the module docs).
    pub fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        let already = paused.is_some_and(|current| current > Instant::now());
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
            self.pauses.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                pause_secs = wait.as_secs_f64(),
                "answered 429 (too many requests): pausing every request that shares this budget"
            );
        }
        if !already {
            let mut pace = self.pace.lock().unwrap_or_else(|e| e.into_inner());
            pace.permille = (pace.permille / 2).max(MIN_PACE);
            // Recovery counts from the end of the pause.
            pace.since = until;
            self.pace_now.store(pace.permille, Ordering::Relaxed);
            tracing::info!(
                pace_percent = pace.permille / 10,
                "slowing down: others share this rate limit"
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
            pace_permille: self.pace_now.load(Ordering::Relaxed),
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
    async fn a_pause_halves_the_pace_which_comes_back_slowly() {
        let budget = RequestBudget::new(&settings(120, 4, 4));
        assert_eq!(budget.stats().pace_permille, 1000);
        budget.pause_for(Duration::from_secs(10));
        // A 429 seen by a second caller during the same pause does not halve it again.
        budget.pause_for(Duration::from_secs(5));
        assert_eq!(budget.pace_permille(), 500);
        // After the pause, the slowed pace spaces grants (no burst): 60 a minute, one a second.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let start = Instant::now();
        for _ in 0..11 {
            drop(budget.acquire().await);
        }
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        // A twentieth of the share back per 30 s without a 429.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(budget.pace_permille(), 600);
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(budget.pace_permille(), 1000);
        // Runs of 429s slow it to a quarter at most.
        for _ in 0..5 {
            budget.pause_for(Duration::from_secs(1));
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        assert_eq!(budget.pace_permille(), 250);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reservation_lets_requests_go_back_to_back_in_their_turn() {
        let budget = RequestBudget::new(&settings(120, 4, 4));
        // The burst is spent: the next cells come every 0.5 s.
        for _ in 0..4 {
            drop(budget.acquire().await);
        }
        let start = Instant::now();
        let group = budget.reserve(4).await;
        // Four cells at once: 4 x 0.5 s after the burst.
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert_eq!(group.left(), 4);
        let paid = Instant::now();
        for _ in 0..4 {
            drop(budget.acquire_with(Some(&group)).await);
        }
        assert_eq!(
            paid.elapsed(),
            Duration::ZERO,
            "reserved cells need no wait"
        );
        assert_eq!(group.left(), 0);
        // Spent: the next request waits for the rate again.
        drop(budget.acquire_with(Some(&group)).await);
        assert_eq!(paid.elapsed(), Duration::from_millis(500));
        assert_eq!(budget.reserve(99).await.left(), 4, "at most the burst");
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
