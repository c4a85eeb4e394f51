//! Backoff between attempts: exponential with full jitter (a random wait in
//! `[0, min(max_delay, base_delay * 2^(attempt-1))]`), which spreads retries of many callers
//! instead of having them hit the store again in lockstep.

use std::time::Duration;

use rand::Rng;

use crate::config::RetrySettings;

/// The longest a backoff may wait before attempt `attempt + 1` (attempts count from 1).
pub fn backoff_ceiling(settings: &RetrySettings, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(31);
    settings
        .base_delay
        .saturating_mul(1u32 << exp)
        .min(settings.max_delay)
}

/// A random wait up to [`backoff_ceiling`].
pub fn backoff(settings: &RetrySettings, attempt: u32) -> Duration {
    let ceiling = backoff_ceiling(settings, attempt);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..=millis))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
