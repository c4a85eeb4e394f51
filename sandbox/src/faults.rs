//! Test controls that make the sandbox misbehave: latency, random error rates and a FIFO
//! queue of deterministic fault rules. Randomness comes from one seedable RNG so a failing
//! run can be replayed with the same `rng_seed`.

use std::collections::VecDeque;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// `Retry-After` of a 429 produced by the random error rate.
const RANDOM_429_RETRY_AFTER_SECS: u64 = 1;

/// What to do to one API request. Serialized with a `kind` tag for the HTTP controls, e.g.
/// `{"kind":"Status429","retry_after_secs":5}` or `{"kind":"ApplyThenDrop"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Fault {
    /// Answer 500 without doing anything.
    Status500,
    /// Answer 503 (an HTML page, as a load balancer would) without doing anything.
    Status503,
    /// Answer 429 without doing anything; `Retry-After` only when given.
    Status429 {
        #[serde(default)]
        retry_after_secs: Option<u64>,
    },
    /// Wait, then handle the request normally (the client may time out meanwhile; the
    /// request is still applied, as a real server would).
    Delay { ms: u64 },
    /// Perform the request, then answer 500 instead of the real response.
    ApplyThen500,
    /// Perform the request, then close the connection without any response.
    ApplyThenDrop,
    /// Close the connection without doing anything.
    DropBeforeApply,
}

/// A fault for the next `count` API requests matching `method` and `path_contains`
/// (both optional; `path_contains` is matched against the URL path, e.g. `/ip/invoices/12`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path_contains: Option<String>,
    pub fault: Fault,
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

impl FaultRule {
    /// The fault for the next API request, whatever it is.
    pub fn once(fault: Fault) -> Self {
        Self {
            method: None,
            path_contains: None,
            fault,
            count: 1,
        }
    }

    pub fn times(mut self, count: u32) -> Self {
        self.count = count;
        self
    }

    pub fn on_method(mut self, method: &str) -> Self {
        self.method = Some(method.to_owned());
        self
    }

    pub fn on_path_containing(mut self, fragment: &str) -> Self {
        self.path_contains = Some(fragment.to_owned());
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        let method_ok = self
            .method
            .as_deref()
            .is_none_or(|wanted| wanted.eq_ignore_ascii_case(method));
        let path_ok = self
            .path_contains
            .as_deref()
            .is_none_or(|fragment| path.contains(fragment));
        method_ok && path_ok
    }
}

/// Probabilities (0..=1, summing to at most 1) that an API request fails with that status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorRates {
    #[serde(default)]
    pub status_500: f64,
    #[serde(default)]
    pub status_503: f64,
    #[serde(default)]
    pub status_429: f64,
}

impl ErrorRates {
    pub fn validate(&self) -> Result<(), String> {
        let rates = [self.status_500, self.status_503, self.status_429];
        if rates.iter().any(|rate| !(0.0..=1.0).contains(rate)) {
            return Err("each error rate must be between 0 and 1".into());
        }
        if rates.iter().sum::<f64>() > 1.0 {
            return Err("error rates must add up to at most 1".into());
        }
        Ok(())
    }
}

/// What happens to one admitted request: how long it takes and which fault, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub latency: Duration,
    pub fault: Option<Fault>,
}

#[derive(Debug)]
pub(crate) struct FaultState {
    latency: Duration,
    jitter: Duration,
    rates: ErrorRates,
    rules: VecDeque<FaultRule>,
    rng: StdRng,
}

impl FaultState {
    pub(crate) fn new(latency: Duration, jitter: Duration, seed: Option<u64>) -> Self {
        Self {
            latency,
            jitter,
            rates: ErrorRates::default(),
            rules: VecDeque::new(),
            rng: seed.map_or_else(StdRng::from_os_rng, StdRng::seed_from_u64),
        }
    }

    pub(crate) fn set_latency(&mut self, latency: Duration, jitter: Duration) {
        self.latency = latency;
        self.jitter = jitter;
    }

    pub(crate) fn set_error_rates(&mut self, rates: ErrorRates) -> Result<(), String> {
        rates.validate()?;
        self.rates = rates;
        Ok(())
    }

    /// Queues a rule behind the existing ones; a count of 0 is taken as 1.
    pub(crate) fn push(&mut self, mut rule: FaultRule) {
        rule.count = rule.count.max(1);
        self.rules.push_back(rule);
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    pub(crate) fn pending(&self) -> Vec<FaultRule> {
        self.rules.iter().cloned().collect()
    }

    /// Decides the fate of an admitted request: the first matching queued rule (consuming
    /// one use of it), else a roll against the error rates.
    pub(crate) fn plan(&mut self, method: &str, path: &str) -> Plan {
        let latency = self.sample_latency();
        let fault = self.take_rule(method, path).or_else(|| self.roll());
        Plan { latency, fault }
    }

    fn take_rule(&mut self, method: &str, path: &str) -> Option<Fault> {
        let index = self
            .rules
            .iter()
            .position(|rule| rule.matches(method, path))?;
        let rule = self.rules.get_mut(index)?;
        rule.count = rule.count.saturating_sub(1);
        let fault = rule.fault.clone();
        if rule.count == 0 {
            self.rules.remove(index);
        }
        Some(fault)
    }

    fn roll(&mut self) -> Option<Fault> {
        let ErrorRates {
            status_500,
            status_503,
            status_429,
        } = self.rates;
        if status_500 + status_503 + status_429 <= 0.0 {
            return None;
        }
        let draw: f64 = self.rng.random();
        if draw < status_500 {
            Some(Fault::Status500)
        } else if draw < status_500 + status_503 {
            Some(Fault::Status503)
        } else if draw < status_500 + status_503 + status_429 {
            Some(Fault::Status429 {
                retry_after_secs: Some(RANDOM_429_RETRY_AFTER_SECS),
            })
        } else {
            None
        }
    }

    fn sample_latency(&mut self) -> Duration {
        let jitter_nanos = u64::try_from(self.jitter.as_nanos()).unwrap_or(u64::MAX);
        if jitter_nanos == 0 {
            return self.latency;
        }
        self.latency + Duration::from_nanos(self.rng.random_range(0..=jitter_nanos))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rules_are_consumed_in_order_by_matching_requests_only() {
        let mut state = FaultState::new(Duration::ZERO, Duration::ZERO, Some(1));
        state.push(
            FaultRule::once(Fault::ApplyThenDrop)
                .on_method("put")
                .on_path_containing("/ip/invoices/"),
        );
        state.push(FaultRule::once(Fault::Status500).times(2));
        // A GET does not match the PUT rule, so it takes the catch-all behind it.
        assert_eq!(
            state.plan("GET", "/api/v3/io/ip/invoices").fault,
            Some(Fault::Status500)
        );
        assert_eq!(
            state.plan("PUT", "/api/v3/io/ip/invoices/7").fault,
            Some(Fault::ApplyThenDrop)
        );
        assert_eq!(
            state.plan("PUT", "/api/v3/io/ip/invoices/7").fault,
            Some(Fault::Status500)
        );
        assert_eq!(state.plan("PUT", "/api/v3/io/ip/invoices/7").fault, None);
        assert!(state.pending().is_empty());
    }

    #[test]
    fn seeded_rates_are_reproducible_and_roughly_right() {
        let draws = |seed| {
            let mut state = FaultState::new(Duration::ZERO, Duration::ZERO, Some(seed));
            state
                .set_error_rates(ErrorRates {
                    status_500: 0.2,
                    status_503: 0.1,
                    status_429: 0.1,
                })
                .unwrap();
            (0..2000)
                .map(|_| state.plan("GET", "/").fault)
                .collect::<Vec<_>>()
        };
        let first = draws(7);
        assert_eq!(first, draws(7));
        let count = |wanted: &Fault| {
            first
                .iter()
                .filter(|fault| fault.as_ref() == Some(wanted))
                .count()
        };
        assert!((300..500).contains(&count(&Fault::Status500)));
        assert!((120..280).contains(&count(&Fault::Status503)));
        let retry = Fault::Status429 {
            retry_after_secs: Some(1),
        };
        assert!((120..280).contains(&count(&retry)));
    }

    #[test]
    fn invalid_rates_are_refused() {
        let mut state = FaultState::new(Duration::ZERO, Duration::ZERO, None);
        let too_big = ErrorRates {
            status_500: 0.7,
            status_503: 0.4,
            status_429: 0.0,
        };
        assert!(state.set_error_rates(too_big).is_err());
        let negative = ErrorRates {
            status_500: -0.1,
            ..ErrorRates::default()
        };
        assert!(state.set_error_rates(negative).is_err());
    }

    #[test]
    fn latency_stays_within_fixed_plus_jitter() {
        let mut state = FaultState::new(
            Duration::from_millis(100),
            Duration::from_millis(50),
            Some(3),
        );
        for _ in 0..200 {
            let latency = state.plan("GET", "/").latency;
            assert!(latency >= Duration::from_millis(100) && latency <= Duration::from_millis(150));
        }
    }

    #[test]
    fn rules_have_a_readable_json_form() {
        let rule: FaultRule = serde_json::from_value(json!({
            "method": "POST", "fault": {"kind": "Status429", "retry_after_secs": 5}
        }))
        .unwrap();
        assert_eq!(rule.count, 1);
        assert_eq!(
            rule.fault,
            Fault::Status429 {
                retry_after_secs: Some(5)
            }
        );
        let delay: Fault = serde_json::from_value(json!({"kind": "Delay", "ms": 250})).unwrap();
        assert_eq!(delay, Fault::Delay { ms: 250 });
    }
}
