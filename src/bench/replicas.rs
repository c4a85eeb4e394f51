//! `bench replicas`: many stores across 1, 2, 4 ... replicas (issue #17). Each run starts the
//! replicas as real processes of this executable (`run`) on a fresh database, against one B2B
//! sandbox holding every store (each limited to B2B Edition's 150 requests a minute) and one
//! export folder per store, and measures:
//!
//! - the time from the first replica's start to the moment every invoice of every store is in
//!   B2B (counted from the sandbox's request log: one successful `POST` per invoice);
//! - each replica's CPU time and peak RSS (`/proc`), and its PostgreSQL connections (the peak of
//!   `pg_stat_activity` rows under its connection name, sampled every half second);
//! - how much of its share each store used while it had work pending: the store's requests
//!   from its first request to its last create, against the share over that span;
//! - the busiest 60-second window of any store (never above the share plus its burst), and how
//!   often a store's lease moved.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::database::BenchDatabase;
use super::measure::{cpu_time, peak_rss_kib, Machine};
use super::synthetic;
use super::BenchError;
use crate::config::BudgetSettings;
use crate::sandbox::b2b::{self, B2bSandboxConfig, RequestRecord, RunningB2bSandbox, SandboxStore};

/// B2B Edition's documented limit per store.
const STORE_LIMIT_PER_MINUTE: u32 = 150;
const CREATE_ROUTE: &str = "POST /ip/invoices";

#[derive(Debug, Clone)]
pub struct ReplicasOptions {
    pub stores: usize,
    pub invoices_per_store: usize,
    /// One run per entry: that many replicas.
    pub replicas: Vec<usize>,
    /// Latency of every B2B call, and its uniform random extra.
    pub latency: Duration,
    pub jitter: Duration,
    pub lease_ttl_secs: u64,
    /// A run that has not synced everything by then stops with an error.
    pub timeout: Duration,
    pub database_url: String,
    /// This executable, started as `<exe> run` for each replica.
    pub exe: PathBuf,
}

impl ReplicasOptions {
    pub fn new(database_url: &str, exe: PathBuf) -> Self {
        Self {
            stores: 50,
            invoices_per_store: 1000,
            replicas: vec![1, 2, 4],
            latency: Duration::from_millis(80),
            jitter: Duration::from_millis(40),
            lease_ttl_secs: 15,
            timeout: Duration::from_secs(3600),
            database_url: database_url.to_owned(),
            exe,
        }
    }
}

/// One replica's measurements.
#[derive(Debug, Clone)]
pub struct ReplicaRow {
    pub cpu: Duration,
    pub peak_rss_kib: u64,
    pub peak_connections: i64,
    /// Stores whose lease it held at the end.
    pub stores_held: usize,
}

#[derive(Debug, Clone)]
pub struct RunRow {
    pub replicas: usize,
    pub first_full_sync: Duration,
    pub per_replica: Vec<ReplicaRow>,
    /// Per store: requests while work was pending / (share x that span), in percent.
    pub budget_use_percent: Vec<f64>,
    /// The most requests any store saw in one sliding 60-second window.
    pub busiest_minute: usize,
    pub requests: usize,
    pub rate_limited: u64,
    pub lease_moves: i64,
}

#[derive(Debug)]
pub struct ReplicasReport {
    pub machine: Machine,
    pub options: ReplicasOptions,
    pub share: BudgetSettings,
    pub runs: Vec<RunRow>,
}

/// Runs the benchmark once per replica count, until done or `interrupted` (each run's database
/// is dropped and its replicas killed either way).
pub async fn run_until(
    opts: &ReplicasOptions,
    interrupted: impl std::future::Future<Output = ()>,
) -> Result<ReplicasReport, BenchError> {
    let mut interrupted = std::pin::pin!(interrupted);
    if opts.stores == 0 || opts.invoices_per_store == 0 || opts.replicas.contains(&0) {
        return Err(BenchError::Option(
            "--stores, --invoices and every --replicas must be at least 1".into(),
        ));
    }
    let mut runs = Vec::new();
    for &n in &opts.replicas {
        tracing::info!(
            replicas = n,
            stores = opts.stores,
            invoices = opts.invoices_per_store,
            "bench replicas: starting a run"
        );
        let db = BenchDatabase::create(&opts.database_url).await?;
        let result = db
            .run_then_drop(one_run(opts, n, &db), &mut interrupted)
            .await;
        runs.push(result?);
    }
    Ok(ReplicasReport {
        machine: Machine::describe(),
        options: opts.clone(),
        share: BudgetSettings::default(),
        runs,
    })
}

fn store_hash(i: usize) -> String {
    format!("bench{i:03}")
}

fn token(i: usize) -> String {
    format!("bench-token-{i:03}")
}

async fn sandbox(opts: &ReplicasOptions) -> Result<RunningB2bSandbox, BenchError> {
    b2b::start(
        B2bSandboxConfig {
            stores: (1..=opts.stores)
                .map(|i| SandboxStore::new(&store_hash(i), &token(i), &format!("legacy-{i}")))
                .collect(),
            rate_limit: STORE_LIMIT_PER_MINUTE,
            rate_window: Duration::from_secs(60),
            latency: opts.latency,
            latency_jitter: opts.jitter,
            rng_seed: Some(42),
            ..B2bSandboxConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .map_err(|e| BenchError::Sandbox(e.to_string()))
}

/// One export folder a store, its invoices numbered apart per store.
fn write_exports(root: &Path, opts: &ReplicasOptions) -> Result<Vec<PathBuf>, BenchError> {
    let io = |e: std::io::Error| BenchError::Sandbox(format!("writing the exports: {e}"));
    let mut dirs = Vec::new();
    for store in 1..=opts.stores {
        let dir = root.join(format!("erp{store:03}"));
        std::fs::create_dir_all(&dir).map_err(io)?;
        let mut text = String::new();
        let first = (store * 1_000_000) as u64;
        for i in first..first + opts.invoices_per_store as u64 {
            let line = serde_json::to_string(&synthetic::raw_invoice(i, false))
                .map_err(|e| BenchError::Sandbox(format!("an export line: {e}")))?;
            text.push_str(&line);
            text.push('\n');
        }
        std::fs::write(dir.join("export.ndjson"), text).map_err(io)?;
        dirs.push(dir);
    }
    Ok(dirs)
}

fn config(opts: &ReplicasOptions, db_url: &str, b2b_url: &str, dirs: &[PathBuf]) -> String {
    let customers = (1..=synthetic::CUSTOMERS)
        .map(|i| format!("\"CUST-{i:05}\" = \"{i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    // Every replica has the default pool, budget and schedule: what a deployment would run.
    let mut toml = format!(
        "[database]\nurl = \"{db_url}\"\n\n[daemon]\nhttp_address = \"\"\nlease_ttl_secs = {}\n\n",
        opts.lease_ttl_secs
    );
    for (k, dir) in dirs.iter().enumerate() {
        let i = k + 1;
        let _ = write!(
            toml,
            "[stores.s{i:03}.b2b]\nbase_url = \"{b2b_url}\"\nstore_hash = \"{}\"\ntoken = \"{}\"\n\n\
             [sources.erp{i:03}]\nkind = \"files\"\nstore = \"s{i:03}\"\nschedule = \"*/5 * * * * *\"\n\
             [sources.erp{i:03}.files]\ndir = \"{}\"\nready = \"atomic_rename\"\n\
             [sources.erp{i:03}.customers]\nstrategy = \"static\"\nmap = {{ {customers} }}\n\n",
            store_hash(i),
            token(i),
            dir.display()
        );
    }
    toml
}

/// The run's exports, config and replica logs; removed when the run ends.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Result<Self, BenchError> {
        let path = std::env::temp_dir().join(format!(
            "b2b-invoice-sync-bench-replicas-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path)
            .map_err(|e| BenchError::Sandbox(format!("a temporary directory: {e}")))?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Replica {
    child: Child,
    pid: u32,
}

fn spawn(exe: &Path, config: &Path, log: &Path) -> Result<Replica, BenchError> {
    let log = std::fs::File::create(log)
        .map_err(|e| BenchError::Sandbox(format!("a replica's log file: {e}")))?;
    let child = Command::new(exe)
        .args(["run", "--run-now", "--log-format", "json", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| BenchError::Sandbox(format!("starting a replica: {e}")))?;
    let pid = child
        .id()
        .ok_or_else(|| BenchError::Sandbox("a replica ended as it started".into()))?;
    Ok(Replica { child, pid })
}

async fn one_run(
    opts: &ReplicasOptions,
    n: usize,
    db: &BenchDatabase,
) -> Result<RunRow, BenchError> {
    let b2b = sandbox(opts).await?;
    let dir = ScratchDir::new()?;
    let dirs = write_exports(dir.path(), opts)?;
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, config(opts, &db.url, &b2b.base_url(), &dirs))
        .map_err(|e| BenchError::Sandbox(format!("writing the config: {e}")))?;
    let monitor = db.pool(2).await?;

    let started = Instant::now();
    let mut replicas = Vec::new();
    for r in 0..n {
        replicas.push(spawn(
            &opts.exe,
            &cfg,
            &dir.path().join(format!("replica{r}.log")),
        )?);
    }
    let expected = opts.stores * opts.invoices_per_store;
    let control = b2b.control();
    let mut peak_connections: HashMap<String, i64> = HashMap::new();
    let first_full_sync = loop {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT application_name, count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND application_name LIKE $1
              GROUP BY 1",
        )
        .bind(format!("{}%", crate::store::PROCESS_PREFIX))
        .fetch_all(&monitor)
        .await
        .map_err(|e| BenchError::Database(format!("reading pg_stat_activity: {e}")))?;
        for (name, count) in rows {
            let peak = peak_connections.entry(name).or_default();
            *peak = (*peak).max(count);
        }
        let created = control
            .requests()
            .iter()
            .filter(|r| r.route == CREATE_ROUTE && r.status.is_some_and(|s| s < 300))
            .count();
        if created >= expected {
            break started.elapsed();
        }
        if started.elapsed() > opts.timeout {
            return Err(BenchError::Sandbox(format!(
                "{created} of {expected} invoices in B2B after {:?}: see the replicas' logs",
                opts.timeout
            )));
        }
        for (k, r) in replicas.iter_mut().enumerate() {
            if let Ok(Some(status)) = r.child.try_wait() {
                let log = std::fs::read_to_string(dir.path().join(format!("replica{k}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(10).collect();
                return Err(BenchError::Sandbox(format!(
                    "replica {k} exited early ({status}); the end of its log:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // Who holds what at the end (by process: its connection name and pid), and how often
    // leases moved.
    let held: Vec<(String, Option<i32>, i64)> = sqlx::query_as(
        "SELECT split_part(holder, '#', 1), holder_pid, count(*) FROM store_leases
          WHERE holder IS NOT NULL AND expires_at > now() GROUP BY 1, 2",
    )
    .fetch_all(&monitor)
    .await
    .map_err(|e| BenchError::Database(format!("reading store_leases: {e}")))?;
    let lease_moves: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(moves), 0)::bigint FROM store_leases")
            .fetch_one(&monitor)
            .await
            .map_err(|e| BenchError::Database(format!("reading store_leases: {e}")))?;
    let mut per_replica = Vec::new();
    for r in &replicas {
        let mine = held
            .iter()
            .find(|(_, pid, _)| pid.and_then(|p| u32::try_from(p).ok()) == Some(r.pid));
        per_replica.push(ReplicaRow {
            cpu: cpu_time(Some(r.pid)).unwrap_or_default(),
            peak_rss_kib: peak_rss_kib(Some(r.pid)).unwrap_or_default(),
            peak_connections: mine
                .and_then(|(name, _, _)| peak_connections.get(name).copied())
                .unwrap_or_default(),
            stores_held: mine.map_or(0, |(_, _, n)| usize::try_from(*n).unwrap_or_default()),
        });
    }
    for r in &mut replicas {
        let _ = r.child.start_kill();
        let _ = r.child.wait().await;
    }
    monitor.close().await;

    let log = control.requests();
    let share = BudgetSettings::default().requests_per_minute.get();
    Ok(RunRow {
        replicas: n,
        first_full_sync,
        per_replica,
        budget_use_percent: budget_use(&log, opts.stores, share),
        busiest_minute: (1..=opts.stores)
            .map(|i| busiest_window(&log, &store_hash(i), Duration::from_secs(60)))
            .max()
            .unwrap_or(0),
        requests: log.len(),
        rate_limited: control.stats().rate_limited,
        lease_moves,
    })
}

/// Per store: its requests from its first to its last create, against `share` a minute over
/// that span (the burst can put a store a little above 100 %).
fn budget_use(log: &[RequestRecord], stores: usize, share: u32) -> Vec<f64> {
    let mut by_store: BTreeMap<&str, Vec<&RequestRecord>> = BTreeMap::new();
    for r in log {
        if let Some(s) = r.store_hash.as_deref() {
            by_store.entry(s).or_default().push(r);
        }
    }
    let mut out = Vec::new();
    for i in 1..=stores {
        let hash = store_hash(i);
        let Some(records) = by_store.get(hash.as_str()) else {
            out.push(0.0);
            continue;
        };
        let Some(first) = records.iter().map(|r| r.at).min() else {
            continue;
        };
        let Some(last) = records
            .iter()
            .filter(|r| r.route == CREATE_ROUTE)
            .map(|r| r.at)
            .max()
        else {
            continue;
        };
        let sent = records.iter().filter(|r| r.at <= last).count();
        let span_min = last.saturating_sub(first).as_secs_f64() / 60.0;
        if span_min > 0.0 {
            out.push(100.0 * sent as f64 / (f64::from(share) * span_min));
        }
    }
    out
}

/// The most requests `store` saw in any `window` (sliding, by arrival).
fn busiest_window(log: &[RequestRecord], store: &str, window: Duration) -> usize {
    // The log is in completion order; requests overlap, so sort by arrival first.
    let mut times: Vec<Duration> = log
        .iter()
        .filter(|r| r.store_hash.as_deref() == Some(store))
        .map(|r| r.at)
        .collect();
    times.sort_unstable();
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end].saturating_sub(times[start]) >= window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

impl ReplicasReport {
    pub fn markdown(&self) -> String {
        let o = &self.options;
        let mut out = String::new();
        let _ = writeln!(out, "{}\n", self.machine);
        let _ = writeln!(
            out,
            "{} stores x {} invoices (one `files` source a store, schedule every 5 s), B2B latency {} ± {} ms, \
             each store limited to {STORE_LIMIT_PER_MINUTE}/min at the sandbox; the daemon's defaults: a share of {}/min \
             (burst {}), a pool of 8 connections, leases of {} s.\n",
            o.stores,
            o.invoices_per_store,
            o.latency.as_millis(),
            o.jitter.as_millis(),
            self.share.requests_per_minute,
            self.share.burst,
            o.lease_ttl_secs,
        );
        out.push_str(
            "| replicas | first full sync | CPU per replica (s) | peak RSS per replica (MiB) | PG connections per replica (peak) | stores held at the end | store budget use while pending (min / median / max) | busiest minute of a store | requests | 429s | lease moves |\n",
        );
        out.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
        for r in &self.runs {
            let join = |f: &dyn Fn(&ReplicaRow) -> String| {
                r.per_replica.iter().map(f).collect::<Vec<_>>().join(" / ")
            };
            let mut uses = r.budget_use_percent.clone();
            uses.sort_by(f64::total_cmp);
            let _ = writeln!(
                out,
                "| {} | {:.0} s | {} | {} | {} | {} | {:.1} % / {:.1} % / {:.1} % | {} | {} | {} | {} |",
                r.replicas,
                r.first_full_sync.as_secs_f64(),
                join(&|x| format!("{:.1}", x.cpu.as_secs_f64())),
                join(&|x| format!("{:.0}", x.peak_rss_kib as f64 / 1024.0)),
                join(&|x| x.peak_connections.to_string()),
                join(&|x| x.stores_held.to_string()),
                percentile(&uses, 0.0),
                percentile(&uses, 0.5),
                percentile(&uses, 1.0),
                r.busiest_minute,
                r.requests,
                r.rate_limited,
                r.lease_moves,
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(at_ms: u64, store: &str, route: &str) -> RequestRecord {
        RequestRecord {
            at: Duration::from_millis(at_ms),
            store_hash: Some(store.to_owned()),
            method: "POST".into(),
            route: route.into(),
            target: None,
            user_agent: None,
            status: Some(200),
        }
    }

    #[test]
    fn budget_use_counts_requests_while_work_is_pending_against_the_share() {
        // 120 requests over one minute, the last a create: 100 % of a 120/min share.
        let log: Vec<RequestRecord> = (0..=120)
            .map(|k| rec(k * 500, &store_hash(1), CREATE_ROUTE))
            .collect();
        let uses = budget_use(&log, 1, 120);
        assert_eq!(uses.len(), 1);
        assert!((uses[0] - 100.8).abs() < 0.1, "{uses:?}");
        assert_eq!(
            busiest_window(&log, &store_hash(1), Duration::from_secs(60)),
            120
        );
    }
}
