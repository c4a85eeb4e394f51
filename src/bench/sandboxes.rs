//! The sandboxes a benchmark runs against: in this process, or (preferred, so that the
//! daemon's memory is measured alone) as child processes of `b2b-invoice-sync sandbox ...`.
//! Either way they are driven through their HTTP controls under `/__sandbox/`, which are not
//! rate limited and not counted.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use super::BenchError;
use crate::sandbox::b2b::{self, B2bSandboxConfig, RunningB2bSandbox, SandboxStore};
use crate::sandbox::unified::{
    self, AlloyCounters, AlloyVersion, RunningUnifiedSandbox, UnifiedSandboxConfig,
};

/// The benchmark store's fixed sandbox credentials (fake, not secrets).
pub(crate) const STORE_HASH: &str = "bench";
pub(crate) const TOKEN: &str = "bench-token";
const LEGACY_TOKEN: &str = "bench-legacy-token";
/// How long a child sandbox may take to say it is listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the sandboxes run.
#[derive(Debug, Clone)]
pub enum SandboxLaunch {
    /// In this process: simplest, but their memory counts in the process's peak RSS.
    InProcess,
    /// Child processes of this executable (`<exe> sandbox b2b|unified`), so this process's
    /// peak RSS is the daemon's alone.
    Processes { exe: PathBuf },
}

/// How the B2B sandbox behaves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct B2bShape {
    /// Requests per minute per store; 0: unlimited.
    pub rate_limit: u32,
    pub latency: Duration,
    pub jitter: Duration,
    pub rng_seed: u64,
}

enum Running {
    B2b(RunningB2bSandbox),
    Erp(RunningUnifiedSandbox),
    Child {
        child: Box<Child>,
        /// Kept open: the child may still write to stdout.
        _stdout: Box<Lines<BufReader<ChildStdout>>>,
    },
}

/// One running sandbox and an HTTP client for its controls.
pub(crate) struct Sandbox {
    running: Running,
    /// The API base URL (for B2B: `.../api/v3/io/`).
    pub base_url: String,
    origin: String,
    http: reqwest::Client,
}

impl Sandbox {
    /// The B2B Edition sandbox with the benchmark's store and 10 companies (CUST-00001..).
    pub async fn start_b2b(launch: &SandboxLaunch, shape: B2bShape) -> Result<Self, BenchError> {
        Self::start_b2b_with_companies(launch, shape, 10).await
    }

    /// The B2B Edition sandbox with `companies` companies (CUST-00001..).
    pub async fn start_b2b_with_companies(
        launch: &SandboxLaunch,
        shape: B2bShape,
        companies: usize,
    ) -> Result<Self, BenchError> {
        match launch {
            SandboxLaunch::InProcess => {
                let config = B2bSandboxConfig {
                    stores: vec![SandboxStore::new(STORE_HASH, TOKEN, LEGACY_TOKEN)],
                    rate_limit: shape.rate_limit,
                    latency: shape.latency,
                    latency_jitter: shape.jitter,
                    seed_companies: companies,
                    rng_seed: Some(shape.rng_seed),
                    ..B2bSandboxConfig::default()
                };
                let running = b2b::start(config, ([127, 0, 0, 1], 0).into())
                    .await
                    .map_err(|e| {
                        BenchError::Sandbox(format!("the B2B sandbox cannot start: {e}"))
                    })?;
                let base_url = running.base_url();
                Self::new(Running::B2b(running), base_url)
            }
            SandboxLaunch::Processes { exe } => {
                let args = [
                    "sandbox".to_owned(),
                    "b2b".to_owned(),
                    "--port=0".to_owned(),
                    format!("--rate-limit={}", shape.rate_limit),
                    format!("--latency-ms={}", shape.latency.as_millis()),
                    format!("--latency-jitter-ms={}", shape.jitter.as_millis()),
                    format!("--seed-companies={companies}"),
                    format!("--rng-seed={}", shape.rng_seed),
                    format!("--store-hash={STORE_HASH}"),
                    format!("--token={TOKEN}"),
                    format!("--legacy-token={LEGACY_TOKEN}"),
                ];
                Self::spawn(exe, &args).await
            }
        }
    }

    /// The unified accounting API sandbox with `invoices` seeded invoices over 10 customers.
    pub async fn start_erp(launch: &SandboxLaunch, invoices: usize) -> Result<Self, BenchError> {
        match launch {
            SandboxLaunch::InProcess => {
                let config = UnifiedSandboxConfig {
                    seed_invoices: invoices,
                    seed_customers: 10,
                    ..UnifiedSandboxConfig::default()
                };
                let running = unified::start(config, ([127, 0, 0, 1], 0).into())
                    .await
                    .map_err(|e| {
                        BenchError::Sandbox(format!("the ERP sandbox cannot start: {e}"))
                    })?;
                let base_url = running.base_url();
                Self::new(Running::Erp(running), base_url)
            }
            SandboxLaunch::Processes { exe } => {
                let args = [
                    "sandbox".to_owned(),
                    "unified".to_owned(),
                    "--port=0".to_owned(),
                    format!("--seed-invoices={invoices}"),
                    "--seed-customers=10".to_owned(),
                ];
                Self::spawn(exe, &args).await
            }
        }
    }

    /// Alloy's Unified API (`version`) with `invoices` over `customers`, its rate limit off
    /// (see [`Self::set_rate_limit`]).
    pub async fn start_alloy(
        launch: &SandboxLaunch,
        version: AlloyVersion,
        invoices: usize,
        customers: usize,
    ) -> Result<Self, BenchError> {
        match launch {
            SandboxLaunch::InProcess => {
                let config = UnifiedSandboxConfig {
                    seed_invoices: invoices,
                    seed_customers: customers,
                    rate_limit: 0,
                    ..UnifiedSandboxConfig::alloy(version)
                };
                let running = unified::start(config, ([127, 0, 0, 1], 0).into())
                    .await
                    .map_err(|e| {
                        BenchError::Sandbox(format!("the Alloy sandbox cannot start: {e}"))
                    })?;
                let base_url = running.base_url();
                Self::new(Running::Erp(running), base_url)
            }
            SandboxLaunch::Processes { exe } => {
                let args = [
                    "sandbox".to_owned(),
                    "unified".to_owned(),
                    "--port=0".to_owned(),
                    format!("--api-version={}", version.as_str()),
                    format!("--seed-invoices={invoices}"),
                    format!("--seed-customers={customers}"),
                    "--rate-limit=0".to_owned(),
                ];
                Self::spawn(exe, &args).await
            }
        }
    }

    /// ERP sandbox: `limit` requests per minute per credential (0: none).
    pub async fn set_rate_limit(&self, limit: u32) -> Result<(), BenchError> {
        let body = json!({ "limit": limit, "window_ms": 60_000 });
        self.control(reqwest::Method::PUT, "rate-limit", Some(&body))
            .await
            .map(drop)
    }

    /// Alloy sandbox: what the client did that Alloy's clients should not.
    pub async fn alloy_counters(&self) -> Result<AlloyCounters, BenchError> {
        let value = self
            .control(reqwest::Method::GET, "alloy-counters", None)
            .await?;
        serde_json::from_value(value)
            .map_err(|e| BenchError::Sandbox(format!("unexpected Alloy counters: {e}")))
    }

    fn new(running: Running, base_url: String) -> Result<Self, BenchError> {
        let parsed = url::Url::parse(&base_url)
            .map_err(|e| BenchError::Sandbox(format!("its base URL {base_url}: {e}")))?;
        let origin = parsed.origin().ascii_serialization();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| BenchError::Sandbox(format!("an HTTP client for its controls: {e}")))?;
        Ok(Self {
            running,
            base_url,
            origin,
            http,
        })
    }

    /// Starts `exe args..` and waits for its "... listening on <URL>" line on stdout.
    async fn spawn(exe: &PathBuf, args: &[String]) -> Result<Self, BenchError> {
        let what = format!("{} {}", exe.display(), args.join(" "));
        let mut child = Command::new(exe)
            .args(args)
            // Only its warnings: a request log line per call would cost the benchmark.
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| BenchError::Sandbox(format!("cannot start `{what}`: {e}")))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Sandbox(format!("`{what}` has no stdout")))?;
        let mut lines = BufReader::new(stdout).lines();
        let found = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some((_, url)) = line.split_once(" listening on ") {
                    return Some(url.trim().to_owned());
                }
            }
            None
        })
        .await;
        let base_url = match found {
            Ok(Some(url)) => url,
            Ok(None) => {
                let _ = child.kill().await;
                return Err(BenchError::Sandbox(format!(
                    "`{what}` exited without listening (its errors are above)"
                )));
            }
            Err(_) => {
                let _ = child.kill().await;
                return Err(BenchError::Sandbox(format!(
                    "`{what}` did not listen within {} s",
                    START_TIMEOUT.as_secs()
                )));
            }
        };
        Self::new(
            Running::Child {
                child: Box::new(child),
                _stdout: Box::new(lines),
            },
            base_url,
        )
    }

    /// The child's process id, when it runs in a process of its own.
    pub fn pid(&self) -> Option<u32> {
        match &self.running {
            Running::Child { child, .. } => child.id(),
            _ => None,
        }
    }

    pub async fn stop(self) {
        match self.running {
            Running::B2b(s) => s.shutdown().await,
            Running::Erp(s) => s.shutdown().await,
            Running::Child { mut child, .. } => {
                let _ = child.kill().await;
            }
        }
    }

    async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, BenchError> {
        let url = format!("{}/__sandbox/{path}", self.origin);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| BenchError::Sandbox(format!("{url}: {e}")))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| BenchError::Sandbox(format!("{url}: {e}")))?;
        if !status.is_success() {
            return Err(BenchError::Sandbox(format!("{url}: {status}: {text}")));
        }
        serde_json::from_str(&text).map_err(|e| BenchError::Sandbox(format!("{url}: {e}")))
    }

    pub async fn reset_stats(&self) -> Result<(), BenchError> {
        self.control(reqwest::Method::POST, "reset-stats", None)
            .await
            .map(drop)
    }

    pub async fn stats(&self) -> Result<Stats, BenchError> {
        let value = self.control(reqwest::Method::GET, "stats", None).await?;
        serde_json::from_value(value)
            .map_err(|e| BenchError::Sandbox(format!("unexpected stats: {e}")))
    }

    /// B2B: a person edits invoice `id`'s details in the control panel.
    pub async fn edit_details(&self, id: u64, patch: &Value) -> Result<(), BenchError> {
        let path = format!("stores/{STORE_HASH}/invoices/{id}/edit-details");
        self.control(reqwest::Method::POST, &path, Some(patch))
            .await
            .map(drop)
    }

    /// ERP: the ERP changes fields of invoice `remote_id` (it moves to the end of the list).
    pub async fn change_erp_invoice(
        &self,
        remote_id: &str,
        patch: &Value,
    ) -> Result<(), BenchError> {
        let path = format!("invoices/{remote_id}/update");
        self.control(
            reqwest::Method::POST,
            &path,
            Some(&json!({ "patch": patch })),
        )
        .await
        .map(drop)
    }
}

/// The sandbox's counters (`GET /__sandbox/stats`).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Stats {
    pub total: u64,
    pub too_many_requests: u64,
    pub by_route: Vec<RouteCount>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RouteCount {
    pub route: String,
    pub count: u64,
}

impl Stats {
    pub fn route(&self, route: &str) -> u64 {
        self.by_route
            .iter()
            .filter(|r| r.route == route)
            .map(|r| r.count)
            .sum()
    }

    /// Calls per route, summed over statuses, busiest first.
    pub fn routes(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = Vec::new();
        for r in &self.by_route {
            match out.iter_mut().find(|(route, _)| *route == r.route) {
                Some((_, n)) => *n += r.count,
                None => out.push((r.route.clone(), r.count)),
            }
        }
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }
}
