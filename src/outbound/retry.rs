//! Send-with-retry, once for every API client (B2B Edition, the unified API's reads and
//! write-back, Rebillia), in the spirit of vector's `RetryLogic`: the loop here owns counting
//! attempts, the backoff, the waits and the retry and give-up log lines; each client supplies
//! only how to make one attempt, what a failed attempt means ([`Verdict`]) and the error it
//! hands back when the loop gives up ([`GaveUp`]).
//!
//! The rule for writes lives here too: a failure that may have been applied ([`Verdict::Ambiguous`])
//! is handed back at once for a mutation (the caller's ledger settles it by looking before
//! anything is sent again) and retried like any transient failure for a read.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tracing::Instrument;

/// Backoff for transient failures: exponential with full jitter, `min(max_delay, base_delay * 2^n)`.
/// (Read from the configuration as `config::RetrySettings`, which is this type; its defaults
/// live with the schema there.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    /// Attempts in all, the first included (default 5, at least 1).
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

/// The longest a backoff may wait before attempt `attempt + 1` (attempts count from 1).
pub fn backoff_ceiling(settings: &RetrySettings, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(31);
    settings
        .base_delay
        .saturating_mul(1u32 << exp)
        .min(settings.max_delay)
}

/// A random wait in `[0, backoff_ceiling]` ("full jitter"), which spreads the retries of many
/// callers instead of having them hit the API again in lockstep.
///
/// Written here rather than taken from `backon`: its `ExponentialBuilder::with_jitter` adds a
/// random amount on top of the exponential delay (a wait in `[d, 2d)`), which is not full jitter,
/// and the driver below needs one wait at a time (it mixes in `Retry-After` and the budget's
/// pause), not a whole retry combinator.
pub fn backoff(settings: &RetrySettings, attempt: u32) -> Duration {
    let ceiling = backoff_ceiling(settings, attempt);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..=millis))
}

/// What one failed attempt means, as the API's client sorts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Transient, and sending again cannot apply anything twice (the request certainly was not
    /// applied, or it is a read): tried again after `Wait`, using one attempt.
    Retry(Wait),
    /// The API asks to slow down (429) and the client's request budget is already paused for
    /// the answer's `Retry-After`: sent again as soon as the budget lets it, without using an
    /// attempt (a 429 is not a failure), up to [`Policy::max_rate_limited`] times in a row.
    RateLimited,
    /// The request reached the API and got no definite answer (a timeout or a lost connection
    /// after sending, most 5xx): it may have been applied. A mutation is handed back at once;
    /// a read is retried like `Retry(Wait::Backoff)`.
    Ambiguous,
    /// Will fail the same way again (refused credentials, a 4xx, an unreadable answer), or must
    /// not be sent at all: handed back at once.
    Permanent,
}

/// How long to wait before the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Exponential backoff with full jitter ([`backoff`]).
    Backoff,
    /// The backoff, but at least this long (the answer's `Retry-After`).
    AtLeast(Duration),
    /// No wait here: the request budget the client sends through was paused for the answer's
    /// `Retry-After`, and taking the next attempt's permit waits that pause out.
    Budget,
}

/// Why the loop handed a failure back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GaveUp {
    /// [`Verdict::Permanent`].
    Permanent,
    /// [`Verdict::Ambiguous`] for a mutation: it may have been applied.
    Ambiguous,
    /// Every attempt of [`RetrySettings::max_attempts`] failed.
    Exhausted,
    /// More than [`Policy::max_rate_limited`] 429s in a row.
    RateLimited { in_a_row: u32 },
}

/// How one request is retried.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub settings: &'a RetrySettings,
    /// The API in log lines: `retrying {api} request`, `{api} request failed`.
    pub api: &'static str,
    /// The request changes nothing (a GET): sending it again is always safe, so an ambiguous
    /// failure is retried.
    pub read: bool,
    /// 429s in a row waited out ([`Verdict::RateLimited`]) before giving up.
    pub max_rate_limited: u32,
}

/// Sends one request: `attempt` makes one attempt (each inside the span `span(n)` makes for
/// attempt `n`, counted from 1), `verdict` sorts a failed one, and `give_up` turns the last
/// failure into the caller's error, with why and the number of the attempt that failed.
///
/// Attempts are counted up to `settings.max_attempts` (at least one): [`Verdict::Retry`] and
/// an ambiguous read use one, [`Verdict::RateLimited`] does not (the attempt is sent again under
/// the same number). The retry lines are logged at info, the give-up line at warn, each in the
/// attempt's span.
pub async fn send<T, F, E, Fut>(
    policy: Policy<'_>,
    span: impl Fn(u32) -> tracing::Span,
    mut attempt: impl FnMut() -> Fut,
    verdict: impl Fn(&F) -> Verdict,
    give_up: impl FnOnce(F, GaveUp, u32) -> E,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, F>>,
    F: Display,
    E: Display,
{
    let max_attempts = policy.settings.max_attempts.max(1);
    let mut number = 1;
    let mut rate_limited = 0;
    let (span, failure, why) = loop {
        let span = span(number);
        let failure = match attempt().instrument(span.clone()).await {
            Ok(value) => return Ok(value),
            Err(failure) => failure,
        };
        let wait = match verdict(&failure) {
            Verdict::Permanent => break (span, failure, GaveUp::Permanent),
            Verdict::Ambiguous if !policy.read => break (span, failure, GaveUp::Ambiguous),
            Verdict::Ambiguous => Wait::Backoff,
            Verdict::Retry(wait) => wait,
            Verdict::RateLimited => {
                rate_limited += 1;
                if rate_limited > policy.max_rate_limited {
                    let why = GaveUp::RateLimited {
                        in_a_row: rate_limited,
                    };
                    break (span, failure, why);
                }
                span.in_scope(|| {
                    tracing::info!(
                        error = %failure,
                        rate_limited,
                        "{} request rate limited: waiting for the request budget",
                        policy.api
                    )
                });
                continue;
            }
        };
        rate_limited = 0;
        if number >= max_attempts {
            break (span, failure, GaveUp::Exhausted);
        }
        let wait = match wait {
            Wait::Backoff => backoff(policy.settings, number),
            Wait::AtLeast(at_least) => backoff(policy.settings, number).max(at_least),
            Wait::Budget => Duration::ZERO,
        };
        span.in_scope(|| {
            tracing::info!(
                error = %failure,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "retrying {} request",
                policy.api
            )
        });
        tokio::time::sleep(wait).await;
        number += 1;
    };
    let err = give_up(failure, why, number);
    span.in_scope(|| {
        tracing::warn!(
            error = %err,
            ambiguous = why == GaveUp::Ambiguous,
            attempt = number,
            "{} request failed",
            policy.api
        )
    });
    Err(err)
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::collections::VecDeque;

    use super::*;

    fn settings(max_attempts: u32) -> RetrySettings {
        RetrySettings {
            max_attempts,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        }
    }

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let s = RetrySettings {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        let ceilings: Vec<u128> = (1..=6)
            .map(|a| backoff_ceiling(&s, a).as_millis())
            .collect();
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff_ceiling(&s, 200), Duration::from_secs(1));
        for a in 1..=6 {
            assert!(backoff(&s, a) <= backoff_ceiling(&s, a));
        }
    }

    /// A fake API: each attempt takes the next scripted failure (a verdict), or succeeds when
    /// the script is out.
    struct Script {
        failures: RefCell<VecDeque<Verdict>>,
        sent: Cell<u32>,
    }

    impl Script {
        fn new(failures: impl IntoIterator<Item = Verdict>) -> Self {
            Self {
                failures: RefCell::new(failures.into_iter().collect()),
                sent: Cell::new(0),
            }
        }

        /// Drives the script through [`send`]; the error is `why@attempt`.
        async fn run(&self, settings: &RetrySettings, read: bool) -> Result<u32, String> {
            let policy = Policy {
                settings,
                api: "fake",
                read,
                max_rate_limited: 3,
            };
            send(
                policy,
                |n| tracing::debug_span!("fake_request", attempt = n),
                || async {
                    self.sent.set(self.sent.get() + 1);
                    match self.failures.borrow_mut().pop_front() {
                        None => Ok(self.sent.get()),
                        Some(v) => Err(Failure(v)),
                    }
                },
                |f: &Failure| f.0,
                |f, why, attempt| format!("{:?} {why:?}@{attempt}", f.0),
            )
            .await
        }
    }

    struct Failure(Verdict);

    impl Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }

    const RETRY: Verdict = Verdict::Retry(Wait::Backoff);

    #[tokio::test(start_paused = true)]
    async fn transient_failures_use_attempts_until_they_run_out() {
        let s = settings(3);
        let script = Script::new([RETRY, RETRY]);
        assert_eq!(
            script.run(&s, false).await,
            Ok(3),
            "the third attempt succeeds"
        );

        let script = Script::new([RETRY; 5]);
        assert_eq!(
            script.run(&s, false).await,
            Err("Retry(Backoff) Exhausted@3".to_owned()),
            "gives up after max_attempts"
        );
        assert_eq!(script.sent.get(), 3);

        let script = Script::new([RETRY]);
        assert_eq!(
            script.run(&settings(0), true).await,
            Err("Retry(Backoff) Exhausted@1".to_owned()),
            "at least one attempt, never a retry beyond max_attempts"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_are_handed_back_at_once() {
        let script = Script::new([Verdict::Permanent, RETRY]);
        assert_eq!(
            script.run(&settings(5), true).await,
            Err("Permanent Permanent@1".to_owned())
        );
        assert_eq!(script.sent.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_ambiguous_mutation_is_handed_back_and_an_ambiguous_read_retried() {
        let script = Script::new([RETRY, Verdict::Ambiguous]);
        assert_eq!(
            script.run(&settings(5), false).await,
            Err("Ambiguous Ambiguous@2".to_owned())
        );
        assert_eq!(script.sent.get(), 2, "the mutation is not sent again");

        let script = Script::new([Verdict::Ambiguous, Verdict::Ambiguous]);
        assert_eq!(script.run(&settings(5), true).await, Ok(3));
        let script = Script::new([Verdict::Ambiguous; 3]);
        assert_eq!(
            script.run(&settings(2), true).await,
            Err("Ambiguous Exhausted@2".to_owned()),
            "an ambiguous read uses attempts"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limits_do_not_use_attempts_and_are_capped_in_a_row() {
        let started = tokio::time::Instant::now();
        // Two attempts allowed, three 429s between two transient failures: all waited out.
        let script = Script::new([
            Verdict::RateLimited,
            Verdict::RateLimited,
            RETRY,
            Verdict::RateLimited,
            Verdict::RateLimited,
            Verdict::RateLimited,
        ]);
        assert_eq!(script.run(&settings(2), true).await, Ok(7));
        assert!(
            started.elapsed() <= backoff_ceiling(&settings(2), 1),
            "a 429 waits for the budget, not here"
        );

        let script = Script::new([Verdict::RateLimited; 10]);
        assert_eq!(
            script.run(&settings(2), true).await,
            Err("RateLimited RateLimited { in_a_row: 4 }@1".to_owned()),
            "the fourth 429 in a row (max 3) ends it"
        );
        assert_eq!(script.sent.get(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_a_floor_under_the_backoff_and_the_budget_waits_nothing_here() {
        let started = tokio::time::Instant::now();
        let script = Script::new([Verdict::Retry(Wait::AtLeast(Duration::from_secs(30)))]);
        assert_eq!(script.run(&settings(3), false).await, Ok(2));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(30) && waited < Duration::from_secs(31),
            "{waited:?}"
        );

        let started = tokio::time::Instant::now();
        let script = Script::new([Verdict::Retry(Wait::Budget); 2]);
        assert_eq!(script.run(&settings(3), false).await, Ok(3));
        assert_eq!(started.elapsed(), Duration::ZERO);
        let script = Script::new([Verdict::Retry(Wait::Budget); 3]);
        assert_eq!(
            script.run(&settings(3), false).await,
            Err("Retry(Budget) Exhausted@3".to_owned()),
            "a wait for the budget still uses an attempt"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_waits_grow_within_their_ceilings() {
        let s = settings(4);
        let started = tokio::time::Instant::now();
        let script = Script::new([RETRY; 3]);
        assert_eq!(script.run(&s, false).await, Ok(4));
        let most: Duration = (1..=3).map(|a| backoff_ceiling(&s, a)).sum();
        assert!(started.elapsed() <= most, "{:?}", started.elapsed());
    }
}
