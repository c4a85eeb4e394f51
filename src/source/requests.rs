//! The ERP side's request accounting, in the one place both HTTP adapters (Unified, Rebillia)
//! report every request they send: `b2bsync_erp_requests_total{source,status}`,
//! `b2bsync_erp_request_duration_seconds{source}`, `b2bsync_erp_rate_limited_total{source}`, and
//! the per-source count a cycle reads to report its ERP calls apart from its B2B calls. What an
//! answer says (its `Retry-After`, a short excerpt of its body) is read by `crate::outbound`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::config::HttpSettings;
use crate::source::SourceError;
use crate::telemetry_metrics as m;

/// The HTTP client of `source`'s ERP adapter (`crate::outbound::client` with its timeouts).
pub fn client(source: &str, http: &HttpSettings) -> Result<reqwest::Client, SourceError> {
    crate::outbound::client(http.request_timeout, http.connect_timeout).map_err(|e| {
        SourceError::Protocol {
            source_name: source.to_owned(),
            message: format!("cannot build the HTTP client: {e}"),
        }
    })
}

/// How a request to the ERP ended, as the `status` label shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// An answer with this HTTP status.
    Status(u16),
    /// No answer within the timeout.
    Timeout,
    /// No connection, or it was lost.
    Transport,
}

impl Ended {
    /// `200`, `429`, `timeout`, `transport`: the labels of `b2bsync_b2b_requests_total`.
    pub fn label(self) -> String {
        match self {
            Self::Status(code) => code.to_string(),
            Self::Timeout => "timeout".to_owned(),
            Self::Transport => "transport".to_owned(),
        }
    }

    /// How a reqwest failure counts.
    pub fn of_error(err: &reqwest::Error) -> Self {
        if err.is_timeout() {
            Self::Timeout
        } else {
            Self::Transport
        }
    }
}

fn counters() -> &'static Mutex<HashMap<String, Arc<AtomicU64>>> {
    static CALLS: OnceLock<Mutex<HashMap<String, Arc<AtomicU64>>>> = OnceLock::new();
    CALLS.get_or_init(Mutex::default)
}

fn counter(source: &str) -> Arc<AtomicU64> {
    let mut all = counters().lock().unwrap_or_else(|e| e.into_inner());
    all.entry(source.to_owned()).or_default().clone()
}

/// One request to `source`'s ERP that ended as `ended` after `took` (the request alone: any
/// wait for the source's budget is not in it).
pub fn record(source: &str, ended: Ended, took: Duration) {
    counter(source).fetch_add(1, Ordering::Relaxed);
    if ended == Ended::Status(429) {
        metrics::counter!(m::ERP_RATE_LIMITED, "source" => source.to_owned()).increment(1);
    }
    metrics::counter!(m::ERP_REQUESTS, "source" => source.to_owned(), "status" => ended.label())
        .increment(1);
    metrics::histogram!(m::ERP_REQUEST_DURATION, "source" => source.to_owned())
        .record(took.as_secs_f64());
}

/// Requests sent to `source`'s ERP by this process so far; a cycle reports the difference
/// between its end and its start (a source runs one cycle at a time per process).
pub fn calls(source: &str) -> u64 {
    counter(source).load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_count_per_source() {
        let before = calls("requests-test-a");
        record(
            "requests-test-a",
            Ended::Status(200),
            Duration::from_millis(5),
        );
        record(
            "requests-test-a",
            Ended::Status(429),
            Duration::from_millis(5),
        );
        record("requests-test-b", Ended::Timeout, Duration::from_millis(5));
        assert_eq!(calls("requests-test-a") - before, 2);
        assert_eq!(Ended::Status(429).label(), "429");
        assert_eq!(Ended::Timeout.label(), "timeout");
        assert_eq!(Ended::Transport.label(), "transport");
    }
}
