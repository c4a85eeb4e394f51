//! What the sandbox saw: a log of API requests and counters per route and status.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::{Serialize, Serializer};

/// The log keeps the latest requests only, so a long benchmark cannot eat the memory;
/// the counters stay exact.
const LOG_CAPACITY: usize = 100_000;

/// One API request as the sandbox answered it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// When the request arrived, measured on the tokio clock from the server start.
    #[serde(rename = "at_ms", serialize_with = "as_millis")]
    pub at: Duration,
    /// `None` when the request was not authenticated.
    pub store_hash: Option<String>,
    pub method: String,
    /// Route template, e.g. `GET /ip/invoices/{id}`.
    pub route: String,
    /// The request target as sent, path and query (`/api/v3/io/ip/invoices?limit=100&...`),
    /// where the sandbox keeps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The client's `User-Agent`, where the sandbox keeps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// `None` when the connection was closed without a response.
    pub status: Option<u16>,
}

fn as_millis<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64() * 1000.0)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RouteCount {
    pub route: String,
    /// `None` counts dropped connections.
    pub status: Option<u16>,
    pub count: u64,
}

/// Counters since the start or the last reset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SandboxStats {
    pub total: u64,
    /// Every 429 answered, whether from the rate limiter or an injected fault.
    pub too_many_requests: u64,
    /// 429s from the rate limiter only.
    pub rate_limited: u64,
    /// Connections closed without a response.
    pub dropped: u64,
    pub by_route: Vec<RouteCount>,
}

impl SandboxStats {
    /// Requests on `route` answered with `status` (`None`: dropped).
    pub fn count(&self, route: &str, status: Option<u16>) -> u64 {
        self.by_route
            .iter()
            .filter(|entry| entry.route == route && entry.status == status)
            .map(|entry| entry.count)
            .sum()
    }

    /// Requests on `route`, whatever the outcome.
    pub fn route_total(&self, route: &str) -> u64 {
        self.by_route
            .iter()
            .filter(|entry| entry.route == route)
            .map(|entry| entry.count)
            .sum()
    }
}

/// Why a request got its status, where stats need to tell 429s apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    RateLimiter,
    Other,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    log: VecDeque<RequestRecord>,
    counts: BTreeMap<(String, Option<u16>), u64>,
    totals: SandboxStats,
}

impl Stats {
    pub(crate) fn record(&mut self, record: RequestRecord, cause: Cause) {
        self.totals.total += 1;
        match record.status {
            Some(429) => {
                self.totals.too_many_requests += 1;
                if cause == Cause::RateLimiter {
                    self.totals.rate_limited += 1;
                }
            }
            None => self.totals.dropped += 1,
            Some(_) => {}
        }
        *self
            .counts
            .entry((record.route.clone(), record.status))
            .or_insert(0) += 1;
        if self.log.len() == LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(record);
    }

    pub(crate) fn snapshot(&self) -> SandboxStats {
        let mut stats = self.totals.clone();
        stats.by_route = self
            .counts
            .iter()
            .map(|((route, status), count)| RouteCount {
                route: route.clone(),
                status: *status,
                count: *count,
            })
            .collect();
        stats
    }

    pub(crate) fn requests(&self) -> Vec<RequestRecord> {
        self.log.iter().cloned().collect()
    }

    pub(crate) fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(route: &str, status: Option<u16>) -> RequestRecord {
        RequestRecord {
            target: None,
            user_agent: None,
            at: Duration::from_millis(5),
            store_hash: Some("s".into()),
            method: "GET".into(),
            route: route.into(),
            status,
        }
    }

    #[test]
    fn counts_by_route_status_and_kind() {
        let mut stats = Stats::default();
        stats.record(record("GET /ip/invoices", Some(200)), Cause::Other);
        stats.record(record("GET /ip/invoices", Some(200)), Cause::Other);
        stats.record(record("GET /ip/invoices", Some(429)), Cause::RateLimiter);
        stats.record(record("PUT /ip/invoices/{id}", Some(429)), Cause::Other);
        stats.record(record("PUT /ip/invoices/{id}", None), Cause::Other);
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.total, 5);
        assert_eq!(snapshot.too_many_requests, 2);
        assert_eq!(snapshot.rate_limited, 1);
        assert_eq!(snapshot.dropped, 1);
        assert_eq!(snapshot.count("GET /ip/invoices", Some(200)), 2);
        assert_eq!(snapshot.route_total("PUT /ip/invoices/{id}"), 2);
        assert_eq!(stats.requests().len(), 5);
        stats.reset();
        assert_eq!(stats.snapshot(), SandboxStats::default());
    }
}
