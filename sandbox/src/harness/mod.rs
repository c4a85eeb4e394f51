//! The harness every fake runs on: what each does per request (latency, faults including
//! connection kills, rate limit and the request log: [`pipeline`]), the test controls common to
//! all of them (in process: [`Control`]; over HTTP under `/__sandbox/`: [`admin`]), the clock and
//! the running server. A fake implements [`Fake`] for what differs (who a request is for, how it
//! answers an error, its own counters) and keeps only its API routes and its own data.

pub(crate) mod admin;
pub(crate) mod pipeline;
pub(crate) mod reply;

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::http::{request, Method, StatusCode};
use axum::response::Response;
use tokio::time::Instant;

use crate::faults::{ErrorRates, FaultRule, FaultState};
use crate::ratelimit::RateLimiter;
use crate::serve::{reachable, Server};
use crate::stats::{RequestRecord, SandboxStats, Stats};

/// Locks a sandbox mutex. A panic while holding one (only possible in a test assertion) leaves
/// plain data behind that is still usable, so poisoning is ignored. No guard of a sandbox mutex
/// ever lives across an `.await`.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Wall-clock time that advances with the tokio clock.
///
/// Tests run the sandboxes under a paused tokio clock; deriving timestamps from
/// `tokio::time::Instant` makes them move only when the test moves time.
#[derive(Debug)]
pub(crate) struct Clock {
    start: Instant,
    start_unix: i64,
    start_unix_ms: i64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let now = chrono::Utc::now();
        Self {
            start: Instant::now(),
            start_unix: now.timestamp(),
            start_unix_ms: now.timestamp_millis(),
        }
    }

    pub(crate) fn since_start(&self) -> Duration {
        Instant::now().saturating_duration_since(self.start)
    }

    /// Unix seconds: whole seconds since the start on top of the start's whole second, so a
    /// timestamp moves only when a (paused) test clock moves a whole second.
    pub(crate) fn now_unix(&self) -> i64 {
        let elapsed = i64::try_from(self.since_start().as_secs()).unwrap_or(i64::MAX);
        self.start_unix.saturating_add(elapsed)
    }

    /// Unix milliseconds.
    pub(crate) fn now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.since_start().as_millis()).unwrap_or(i64::MAX);
        self.start_unix_ms.saturating_add(elapsed)
    }
}

/// How the per-request machinery of a fake starts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HarnessConfig {
    /// Requests per `rate_window` per tenant; 0: unlimited.
    pub rate_limit: u32,
    pub rate_window: Duration,
    pub latency: Duration,
    pub latency_jitter: Duration,
    pub rng_seed: Option<u64>,
}

/// The runtime state every fake shares between connections and its control handle.
#[derive(Debug)]
pub struct Harness {
    pub(crate) clock: Clock,
    limiter: Mutex<RateLimiter>,
    faults: Mutex<FaultState>,
    stats: Mutex<Stats>,
}

impl Harness {
    pub(crate) fn new(config: HarnessConfig) -> std::io::Result<Self> {
        if config.rate_window.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the sandbox rate window must be positive",
            ));
        }
        Ok(Self {
            clock: Clock::new(),
            limiter: Mutex::new(RateLimiter::new(config.rate_limit, config.rate_window)),
            faults: Mutex::new(FaultState::new(
                config.latency,
                config.latency_jitter,
                config.rng_seed,
            )),
            stats: Mutex::new(Stats::default()),
        })
    }
}

/// An error answer the harness asks a fake for, in the fake's own envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    InternalError,
    Unavailable,
    /// With the `Retry-After` seconds to send, if any.
    TooManyRequests(Option<u64>),
    TooLarge,
    /// A path that matches no route.
    RouteNotFound,
}

/// A request the fake refuses before it counts against the rate limit: the answer, and the
/// tenant the request log files it under (`None`: not authenticated).
#[derive(Debug)]
pub struct Refusal {
    pub answer: Response,
    pub tenant: Option<String>,
}

/// What differs between the fakes, for the shared harness. Implemented by each fake's state.
pub trait Fake: fmt::Debug + Send + Sync + Sized + 'static {
    /// What the fake's in-process controls fail with.
    type Error: ControlError;
    /// Larger request bodies are refused before anything else.
    const MAX_BODY_BYTES: usize;
    /// Whether the fake models a rate limit (and offers `PUT /__sandbox/rate-limit`).
    const RATE_LIMITED: bool;
    /// Whether the request log keeps each request's target and `User-Agent`.
    const LOGS_TARGETS: bool;

    fn harness(&self) -> &Harness;

    /// The part of a matched path the route labels leave out (the API's base path).
    fn route_prefix(&self) -> &str;

    /// Who the request is for (the tenant the rate limit counts and the log names), or why not.
    fn admit(&self, request: &request::Parts) -> Result<String, Box<Refusal>>;

    /// Whether a request's work runs in its own task, so that it completes when its client has
    /// hung up (a timeout), as on a real server; otherwise it ends with the connection.
    fn detached(&self, _method: &Method) -> bool {
        true
    }

    /// The fake's error answer.
    fn answer(&self, answer: Answer) -> Response;

    /// A control request the fake cannot carry out.
    fn invalid(message: String) -> Self::Error;

    /// Resets the fake's own counters, together with the request counters.
    fn reset_own_stats(&self) {}
}

/// A control error: its message, and the HTTP status the controls under `/__sandbox/` answer.
pub trait ControlError: fmt::Display {
    fn status(&self) -> StatusCode;
}

/// A cloneable handle on a running fake for tests, the demo and benchmarks; the HTTP controls
/// under `/__sandbox/` call these same methods. Each fake adds its own (seeding, editing, its
/// counters and knobs).
#[derive(Debug)]
pub struct Control<F> {
    pub(crate) shared: Arc<F>,
}

impl<F> Clone for Control<F> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<F: Fake> Control<F> {
    pub(crate) fn new(shared: Arc<F>) -> Self {
        Self { shared }
    }

    fn harness(&self) -> &Harness {
        self.shared.harness()
    }

    /// Every API request takes `fixed` plus a uniform random share of `jitter`.
    pub fn set_latency(&self, fixed: Duration, jitter: Duration) {
        lock(&self.harness().faults).set_latency(fixed, jitter);
    }

    pub fn set_error_rates(&self, rates: ErrorRates) -> Result<(), F::Error> {
        lock(&self.harness().faults)
            .set_error_rates(rates)
            .map_err(F::invalid)
    }

    /// Queues a fault rule behind those already queued.
    pub fn push_fault(&self, rule: FaultRule) {
        lock(&self.harness().faults).push(rule);
    }

    pub fn clear_faults(&self) {
        lock(&self.harness().faults).clear();
    }

    /// Rules not yet used up, in queue order.
    pub fn pending_faults(&self) -> Vec<FaultRule> {
        lock(&self.harness().faults).pending()
    }

    /// `limit` requests per `window` per tenant (store, credential; 0: unlimited); restarts
    /// every window.
    pub fn set_rate_limit(&self, limit: u32, window: Duration) {
        lock(&self.harness().limiter).configure(limit, window);
    }

    /// Counters since the start or the last reset; `store_hash` in the records names the
    /// tenant (B2B: the store; unified: the credential id; Rebillia: the company).
    pub fn stats(&self) -> SandboxStats {
        lock(&self.harness().stats).snapshot()
    }

    /// The request log, oldest first (the latest 100 000 requests).
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.harness().stats).requests()
    }

    /// Resets the request counters (and the fake's own, such as Alloy's counters).
    pub fn reset_stats(&self) {
        lock(&self.harness().stats).reset();
        self.shared.reset_own_stats();
    }

    /// Time since the sandbox started, on the clock of [`RequestRecord::at`] (tokio's).
    pub fn since_start(&self) -> Duration {
        self.harness().clock.since_start()
    }
}

/// A fake serving on its port.
#[derive(Debug)]
pub struct Running<F> {
    server: Server,
    control: Control<F>,
    /// The path of the API's base below the origin (`/api/v3/io/`, `/v1`, ...).
    base_path: String,
}

impl<F: Fake> Running<F> {
    /// Binds `addr` (port 0 picks a free port) and serves `router`; returns once bound.
    pub(crate) async fn bind(
        addr: SocketAddr,
        router: axum::Router,
        control: Control<F>,
        base_path: String,
    ) -> std::io::Result<Self> {
        let server = Server::bind(addr, router).await?;
        Ok(Self {
            server,
            control,
            base_path,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The API's base URL on the bound port (loopback for a wildcard bind).
    pub fn base_url(&self) -> String {
        format!("http://{}{}", reachable(self.addr()), self.base_path)
    }

    pub fn control(&self) -> Control<F> {
        self.control.clone()
    }

    /// Graceful shutdown: stops accepting and waits for open connections.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }

    /// Serves until ctrl-c, then shuts down gracefully (for the CLI).
    pub async fn wait(self) {
        self.server.wait().await;
    }
}
