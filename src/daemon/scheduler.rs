//! Per-source schedule loops. A source's cycles run one after another in its own loop, so a
//! cycle never overlaps itself; firings that pass while a slow cycle runs are skipped with a log
//! line rather than queued.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::liveness::{SourcePulse, BEAT};
use super::trigger::{SourceTrigger, Wake};
use crate::schedule::CronSchedule;

/// Wall-clock time for the schedule. Tests use [`TokioClock`] so a paused tokio clock drives it.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A fixed start plus tokio's elapsed time.
pub struct TokioClock {
    start_wall: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(start_wall: DateTime<Utc>) -> Self {
        Self {
            start_wall,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        self.start_wall + chrono::Duration::from_std(self.start.elapsed()).unwrap_or_default()
    }
}

/// What a loop did, for tests and logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LoopStats {
    pub cycles: u32,
    pub skipped_firings: u32,
    /// Cycles a trigger asked for (also counted in `cycles`).
    pub triggered: u32,
}

/// Runs `cycle` at each firing of `schedule` (plus up to `jitter`) until `stop` is cancelled,
/// and whenever `trigger` asks for it (see `trigger`): a cycle asked for runs at once, or right
/// after the cycle running, never beside it. With `run_now`, one cycle runs at once first. The
/// loop beats `pulse` while it waits (at least every [`BEAT`]) and marks each cycle's start and
/// end, so `/healthz` can tell a stuck loop.
#[allow(clippy::too_many_arguments)]
pub async fn run_loop<F, Fut>(
    source: &str,
    schedule: &CronSchedule,
    jitter: Duration,
    run_now: bool,
    clock: &dyn Clock,
    stop: &CancellationToken,
    pulse: &SourcePulse,
    trigger: Option<&SourceTrigger>,
    mut cycle: F,
) -> LoopStats
where
    F: FnMut(Wake) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut stats = LoopStats::default();
    let mut run = |wake: Wake| {
        pulse.cycle_started();
        let cycle = cycle(wake);
        async move {
            cycle.await;
            pulse.cycle_ended();
            if let Some(t) = trigger {
                t.finished();
            }
        }
    };
    let take = |scheduled: bool| match trigger {
        Some(t) => t.take(scheduled),
        None => scheduled.then_some(Wake::Full),
    };
    if run_now && !stop.is_cancelled() {
        if let Some(wake) = take(true) {
            run(wake).await;
            stats.cycles += 1;
        }
    }
    let mut last_end = clock.now();
    loop {
        let Some(next) = schedule.next_after(last_end) else {
            tracing::warn!(
                source,
                schedule = schedule.expression(),
                "the schedule never fires again: this source stops"
            );
            return stats;
        };
        let wait = (next - clock.now()).to_std().unwrap_or(Duration::ZERO) + random_up_to(jitter);
        let firing = tokio::time::Instant::now() + wait;
        let scheduled = loop {
            pulse.beat();
            let slice = firing.min(tokio::time::Instant::now() + BEAT);
            let woken = async {
                match trigger {
                    Some(t) => t.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return stats,
                _ = tokio::time::sleep_until(slice) => {}
                _ = woken => {
                    if let Some(wake) = take(false) {
                        run(wake).await;
                        stats.cycles += 1;
                        stats.triggered += 1;
                        if stop.is_cancelled() {
                            return stats;
                        }
                    }
                    continue;
                }
            }
            if slice >= firing {
                break true;
            }
        };
        if let Some(wake) = take(scheduled) {
            run(wake).await;
            stats.cycles += 1;
        }
        let end = clock.now();
        // Firings that passed while the cycle ran are skipped, not queued.
        let mut missed = 0;
        let mut t = next;
        while let Some(n) = schedule.next_after(t) {
            if n > end {
                break;
            }
            missed += 1;
            t = n;
        }
        if missed > 0 {
            stats.skipped_firings += missed;
            tracing::warn!(source, missed, next_run = %schedule.next_after(end).map(|t| t.to_rfc3339()).unwrap_or_default(),
                "the cycle ran past its next scheduled start: skipped, not queued");
        }
        last_end = end;
    }
}

fn random_up_to(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..=ms))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::Arc;

    use super::*;

    fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-21T10:00:30Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    /// The schedule every test runs: every five minutes, in UTC.
    fn every_five_minutes() -> CronSchedule {
        CronSchedule::parse("*/5 * * * *", chrono_tz::UTC).unwrap()
    }

    /// A stop token that cancels itself after `minutes` of (paused) time.
    fn stop_after(minutes: u64) -> CancellationToken {
        let stop = CancellationToken::new();
        let stopper = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(minutes * 60)).await;
            stopper.cancel();
        });
        stop
    }

    /// A liveness pulse no test trips (an hour of grace).
    fn pulse() -> SourcePulse {
        crate::daemon::liveness::Liveness::new(Duration::from_secs(3600)).source("erp")
    }

    #[tokio::test(start_paused = true)]
    async fn fires_on_schedule_and_stops_when_told() {
        let clock = TokioClock::starting_at(start());
        let schedule = every_five_minutes();
        let times = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = stop_after(16);
        let t = times.clone();
        let stats = run_loop(
            "erp",
            &schedule,
            Duration::ZERO,
            false,
            &clock,
            &stop,
            &pulse(),
            None,
            |_| {
                t.lock().unwrap().push(clock.now());
                async {}
            },
        )
        .await;
        let fired: Vec<String> = times
            .lock()
            .unwrap()
            .iter()
            .map(|t| t.format("%H:%M:%S").to_string())
            .collect();
        assert_eq!(fired, ["10:05:00", "10:10:00", "10:15:00"]);
        assert_eq!(stats.cycles, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_cycle_skips_firings_instead_of_overlapping() {
        let clock = TokioClock::starting_at(start());
        let schedule = every_five_minutes();
        let running = Arc::new(AtomicBool::new(false));
        let overlaps = Arc::new(AtomicU32::new(0));
        let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = stop_after(40);
        let (r, o, s) = (running.clone(), overlaps.clone(), starts.clone());
        let stats = run_loop(
            "erp",
            &schedule,
            Duration::ZERO,
            true,
            &clock,
            &stop,
            &pulse(),
            None,
            |_| {
                if r.swap(true, Ordering::SeqCst) {
                    o.fetch_add(1, Ordering::SeqCst);
                }
                s.lock()
                    .unwrap()
                    .push(clock.now().format("%H:%M").to_string());
                let r = r.clone();
                async move {
                    // Every cycle takes 12 minutes: more than two firings' worth.
                    tokio::time::sleep(Duration::from_secs(12 * 60)).await;
                    r.store(false, Ordering::SeqCst);
                }
            },
        )
        .await;
        assert_eq!(overlaps.load(Ordering::SeqCst), 0);
        // run-now at 10:00, ends 10:12 -> next 10:15 (10:05 and 10:10 skipped), ends 10:27 -> 10:30.
        assert_eq!(*starts.lock().unwrap(), ["10:00", "10:15", "10:30"]);
        assert!(stats.skipped_firings >= 4, "{stats:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_trigger_runs_a_cycle_at_once_and_the_schedule_still_fires() {
        use crate::daemon::trigger::{Requested, SourceTrigger};
        let clock = TokioClock::starting_at(start());
        let schedule = every_five_minutes();
        let stop = CancellationToken::new();
        let trigger = Arc::new(SourceTrigger::default());
        trigger.attach(true);
        let wakes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (t, stopper) = (trigger.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            assert_eq!(t.request_cycle(), Requested::Started);
            assert_eq!(t.request_cycle(), Requested::AlreadyDue);
            tokio::time::sleep(Duration::from_secs(60)).await;
            assert!(t.request_invoices(["INV-1".to_owned()]));
            tokio::time::sleep(Duration::from_secs(6 * 60)).await;
            stopper.cancel();
        });
        let w = wakes.clone();
        let stats = run_loop(
            "erp",
            &schedule,
            Duration::ZERO,
            false,
            &clock,
            &stop,
            &pulse(),
            Some(&trigger),
            |wake| {
                w.lock()
                    .unwrap()
                    .push((clock.now().format("%H:%M:%S").to_string(), wake));
                async {}
            },
        )
        .await;
        let wakes = wakes.lock().unwrap().clone();
        assert_eq!(
            wakes,
            [
                ("10:01:30".to_owned(), Wake::Full),
                (
                    "10:02:30".to_owned(),
                    Wake::Invoices(vec!["INV-1".to_owned()])
                ),
                ("10:05:00".to_owned(), Wake::Full),
            ]
        );
        assert_eq!((stats.cycles, stats.triggered), (3, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_delays_the_start_within_its_bound() {
        let clock = TokioClock::starting_at(start());
        let schedule = every_five_minutes();
        let times = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = stop_after(6);
        let t = times.clone();
        run_loop(
            "erp",
            &schedule,
            Duration::from_secs(30),
            false,
            &clock,
            &stop,
            &pulse(),
            None,
            |_| {
                t.lock().unwrap().push(clock.now());
                async {}
            },
        )
        .await;
        let first = times.lock().unwrap()[0];
        let five = DateTime::parse_from_rfc3339("2026-11-21T10:05:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(
            first >= five && first <= five + chrono::Duration::seconds(30),
            "{first}"
        );
    }
}
