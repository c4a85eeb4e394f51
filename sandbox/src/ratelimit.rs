//! The per-store request budget: `limit` requests per fixed `window` (150 per 60 s by default,
//! shared by every integration on the store). A window opens with the first request after
//! the previous one expired; rejected requests do not count.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub(crate) struct RateLimiter {
    /// 0 disables the limit (benchmarks that measure the client, not the budget).
    limit: u32,
    window: Duration,
    windows: HashMap<String, Window>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    used: u32,
}

impl RateLimiter {
    pub(crate) fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            windows: HashMap::new(),
        }
    }

    /// Changes the budget and forgets the current windows, so the new one applies cleanly.
    pub(crate) fn configure(&mut self, limit: u32, window: Duration) {
        self.limit = limit;
        self.window = window;
        self.windows.clear();
    }

    /// Counts the request, or returns the whole seconds (at least 1) until the store's
    /// window resets when its budget is spent.
    pub(crate) fn admit(&mut self, store: &str, now: Instant) -> Result<(), u64> {
        if self.limit == 0 {
            return Ok(());
        }
        let window = self.window;
        let current = self.windows.entry(store.to_owned()).or_insert(Window {
            started: now,
            used: 0,
        });
        if now.saturating_duration_since(current.started) >= window {
            *current = Window {
                started: now,
                used: 0,
            };
        }
        if current.used < self.limit {
            current.used += 1;
            return Ok(());
        }
        let remaining = (current.started + window).saturating_duration_since(now);
        Err(ceil_seconds(remaining).max(1))
    }
}

fn ceil_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_fills_rejects_then_reopens_with_the_next_request() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert_eq!(limiter.admit("s", start), Ok(()));
        }
        assert_eq!(
            limiter.admit("s", start + Duration::from_millis(500)),
            Err(60)
        );
        assert_eq!(limiter.admit("s", start + Duration::from_secs(59)), Err(1));
        assert_eq!(
            limiter.admit("s", start + Duration::from_millis(59_999)),
            Err(1)
        );
        // Rejections did not count, and the next window starts at this request, not at 60 s.
        let reopened = start + Duration::from_secs(75);
        assert_eq!(limiter.admit("s", reopened), Ok(()));
        assert_eq!(limiter.admit("s", reopened), Ok(()));
        assert_eq!(limiter.admit("s", reopened), Ok(()));
        assert_eq!(limiter.admit("s", start + Duration::from_secs(80)), Err(55));
        assert_eq!(limiter.admit("s", start + Duration::from_secs(135)), Ok(()));
    }

    #[test]
    fn stores_have_separate_budgets() {
        let now = Instant::now();
        let mut limiter = RateLimiter::new(1, Duration::from_secs(60));
        assert_eq!(limiter.admit("a", now), Ok(()));
        assert_eq!(limiter.admit("b", now), Ok(()));
        assert!(limiter.admit("a", now).is_err());
    }

    #[test]
    fn zero_disables_and_configure_resets() {
        let now = Instant::now();
        let mut limiter = RateLimiter::new(1, Duration::from_secs(60));
        assert_eq!(limiter.admit("a", now), Ok(()));
        assert!(limiter.admit("a", now).is_err());
        limiter.configure(2, Duration::from_secs(10));
        assert_eq!(limiter.admit("a", now), Ok(()));
        assert_eq!(limiter.admit("a", now), Ok(()));
        assert_eq!(limiter.admit("a", now), Err(10));
        limiter.configure(0, Duration::from_secs(10));
        for _ in 0..1000 {
            assert_eq!(limiter.admit("a", now), Ok(()));
        }
    }
}
