//! The `run` daemon as operators run it: the real binary, signals, endpoints, replicas.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use b2b_invoice_sync::sandbox::b2b::{B2bSandboxConfig, RunningB2bSandbox, SandboxStore};
use b2b_invoice_sync::sandbox::unified::{self, RunningUnifiedSandbox, UnifiedSandboxConfig};

use crate::db::TestDb;
use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_b2b-invoice-sync");

async fn erp(invoices: usize) -> RunningUnifiedSandbox {
    unified::start(
        UnifiedSandboxConfig {
            seed_invoices: invoices,
            ..UnifiedSandboxConfig::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("ERP sandbox")
}

fn customer_map_toml() -> String {
    (1..=10)
        .map(|i| format!("\"CUST-{i:05}\" = \"{i}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A config with one store per (store hash, ERP) pair, each fed by its own source.
fn config(
    db_url: &str,
    b2b: &RunningB2bSandbox,
    pairs: &[(&str, &RunningUnifiedSandbox)],
    schedule: &str,
    http: &str,
) -> String {
    let mut toml = format!(
        "[database]\nurl = \"{db_url}\"\n\n[daemon]\nhttp_address = \"{http}\"\nshutdown_deadline_secs = 8\n\n"
    );
    for (i, (hash, erp)) in pairs.iter().enumerate() {
        toml.push_str(&format!(
            "[stores.s{i}.b2b]\nbase_url = \"{}\"\nstore_hash = \"{hash}\"\ntoken = \"{TOKEN}\"\n[stores.s{i}.budget]\nrequests_per_minute = 120\nburst = 30\n\n\
             [sources.erp{i}]\nkind = \"unified\"\nstore = \"s{i}\"\nschedule = \"{schedule}\"\n\
             [sources.erp{i}.unified]\nbase_url = \"{}\"\napi_key = \"{}\"\ncredential_id = \"{}\"\n\
             [sources.erp{i}.customers]\nstrategy = \"static\"\nmap = {{ {} }}\n\n",
            b2b.base_url(),
            erp.base_url(),
            unified::DEFAULT_API_KEY,
            unified::DEFAULT_CREDENTIAL_ID,
            customer_map_toml(),
        ));
    }
    toml
}

fn write_config(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

fn spawn_run(config: &str) -> tokio::process::Child {
    tokio::process::Command::new(BIN)
        .args([
            "run",
            "--run-now",
            "--config",
            config,
            "--log-format",
            "json",
        ])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the daemon starts")
}

fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
}

async fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr").port()
}

async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let resp = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().await.ok()?))
}

/// Waits until `check` holds, up to `secs`.
async fn eventually<F: FnMut() -> bool>(secs: u64, mut check: F) -> bool {
    for _ in 0..secs * 10 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn by_external_id(b2b: &RunningB2bSandbox, hash: &str) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for inv in b2b.control().invoices(hash).expect("store") {
        *seen
            .entry(inv["externalId"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    seen
}

#[tokio::test]
async fn sigterm_mid_cycle_exits_0_in_time_and_the_next_run_completes_without_duplicates() {
    let db = TestDb::new().await;
    let b2b = spawn_sandbox(B2bSandboxConfig {
        rate_limit: 1_000_000,
        latency: Duration::from_millis(150),
        ..B2bSandboxConfig::default()
    })
    .await;
    let erp = erp(80).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(
        &dir,
        &config(&db.url, &b2b, &[(STORE_HASH, &erp)], "0 0 1 1 *", ""),
    );
    let mut child = spawn_run(&cfg);
    let control = b2b.control();
    assert!(
        eventually(20, || control.stats().route_total("POST /ip/invoices") >= 5).await,
        "the daemon started creating"
    );
    sigterm(&child);
    let started = std::time::Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits before the deadline")
        .expect("status");
    assert_eq!(status.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "within the 8 s deadline (+ slack): {:?}",
        started.elapsed()
    );
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = e.read_to_string(&mut stderr).await;
    }
    assert!(stderr.contains("shutting down"), "{stderr}");
    assert!(
        b2b.control().invoices(STORE_HASH).expect("store").len() < 80,
        "stopped before the end"
    );

    // The next run completes: every live ERP invoice exactly once.
    let out = tokio::process::Command::new(BIN)
        .args(["sync", "--config", &cfg])
        .output()
        .await
        .expect("sync runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = by_external_id(&b2b, STORE_HASH);
    assert!(seen.values().all(|n| *n == 1), "duplicates: {seen:?}");
    let runs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sync_runs WHERE outcome IN ('ok','partial')")
            .fetch_one(&db.pool)
            .await
            .expect("runs");
    assert!(runs >= 1);
    let in_flight: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ledger WHERE state = 'in_flight'")
            .fetch_one(&db.pool)
            .await
            .expect("ledger");
    assert_eq!(in_flight, 0, "recovery settled everything");
    let live = (1..=80u64)
        .filter_map(|i| erp.control().invoice(&format!("rmt-{i:06}")))
        .filter(|inv| {
            inv["remoteDeleted"] != serde_json::json!(true)
                && !inv["invoiceStatus"]
                    .as_str()
                    .is_some_and(|s| s.to_ascii_lowercase().starts_with("void"))
        })
        .count();
    assert_eq!(seen.len(), live, "nothing lost");
}

fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .find_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let rest = series.strip_prefix(name)?;
            if !(rest.is_empty() || rest.starts_with('{')) {
                return None;
            }
            labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
                .then(|| value.parse().ok())?
        })
}

#[tokio::test]
async fn metrics_and_health_endpoints_report_the_cycle() {
    let db = TestDb::new().await;
    let b2b = spawn_unlimited_sandbox(0).await;
    let erp = erp(25).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().await;
    let cfg = write_config(
        &dir,
        &config(
            &db.url,
            &b2b,
            &[(STORE_HASH, &erp)],
            "0 0 1 1 *",
            &format!("127.0.0.1:{port}"),
        ),
    );
    let child = spawn_run(&cfg);
    let mut text = String::new();
    for _ in 0..100 {
        if let Some((200, t)) = get(port, "/metrics").await {
            // Every series exists from start-up (at zero): wait for the cycle itself.
            let cycled = metric(
                &t,
                "b2bsync_cycles_total",
                &[("source", "erp0"), ("outcome", "ok")],
            )
            .is_some_and(|n| n >= 1.0);
            if cycled {
                text = t;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!text.is_empty(), "a cycle was reported");
    let created = b2b.control().invoices(STORE_HASH).expect("store").len() as f64;
    assert_eq!(
        metric(
            &text,
            "b2bsync_cycles_total",
            &[("source", "erp0"), ("outcome", "ok")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "b2bsync_invoices_total",
            &[("source", "erp0"), ("action", "create")]
        ),
        Some(created)
    );
    assert_eq!(
        metric(
            &text,
            "b2bsync_b2b_requests_total",
            &[
                ("store", "s0"),
                ("endpoint", "POST /ip/invoices"),
                ("status", "200")
            ]
        ),
        Some(created)
    );
    assert_eq!(
        metric(
            &text,
            "b2bsync_budget_requests_per_minute",
            &[("store", "s0")]
        ),
        Some(120.0)
    );
    assert_eq!(
        metric(&text, "b2bsync_dead_letters", &[("source", "erp0")]),
        Some(0.0)
    );
    assert_eq!(
        metric(&text, "b2bsync_ledger_in_flight", &[("source", "erp0")]),
        Some(0.0)
    );
    assert!(metric(
        &text,
        "b2bsync_last_success_timestamp_seconds",
        &[("source", "erp0")]
    )
    .is_some_and(|t| t > 1.7e9));
    assert!(
        text.contains("b2bsync_b2b_request_duration_seconds_bucket"),
        "latency histogram"
    );
    assert!(text.contains("b2bsync_cycle_duration_seconds"));
    assert_eq!(get(port, "/healthz").await.map(|r| r.0), Some(200));
    assert_eq!(get(port, "/readyz").await.map(|r| r.0), Some(200));
    assert!(!text.contains(TOKEN));
    sigterm(&child);
}

/// A TCP forwarder to PostgreSQL that a test can cut and restore.
struct Proxy {
    port: u16,
    cut: CancellationToken,
}

impl Proxy {
    /// Forwards `127.0.0.1:port` (0: any free port) to `upstream` (`host:port`).
    async fn start(port: u16, upstream: String) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("proxy bind");
        let port = listener.local_addr().expect("addr").port();
        let cut = CancellationToken::new();
        let stop = cut.clone();
        tokio::spawn(async move {
            loop {
                let (mut client, _) = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => return },
                };
                let stop = stop.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream.as_str()).await else {
                        return;
                    };
                    tokio::select! {
                        _ = stop.cancelled() => {
                            let _ = client.shutdown().await;
                        }
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
        Self { port, cut }
    }
}

#[tokio::test]
async fn readyz_follows_the_database() {
    let db = TestDb::new().await;
    // The test server may be anywhere (B2BSYNC_TEST_POSTGRES, or a throwaway one).
    let upstream = db.server_authority();
    let proxy = Proxy::start(0, upstream.clone()).await;
    let proxied = db
        .url
        .replace(&upstream, &format!("127.0.0.1:{}", proxy.port));
    assert_ne!(
        proxied, db.url,
        "the database URL does not go through the proxy"
    );
    let b2b = spawn_unlimited_sandbox(0).await;
    let erp = erp(5).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().await;
    let cfg = write_config(
        &dir,
        &config(
            &proxied,
            &b2b,
            &[(STORE_HASH, &erp)],
            "0 0 1 1 *",
            &format!("127.0.0.1:{port}"),
        ),
    );
    let child = spawn_run(&cfg);
    let mut ready = false;
    for _ in 0..100 {
        if get(port, "/readyz").await.map(|r| r.0) == Some(200) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "ready while PostgreSQL is reachable");

    // PostgreSQL goes away.
    let proxy_port = proxy.port;
    proxy.cut.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = get(port, "/readyz").await.expect("answers");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("database"), "{body}");
    assert_eq!(
        get(port, "/healthz").await.map(|r| r.0),
        Some(200),
        "alive all the same"
    );

    // And comes back.
    let _proxy = Proxy::start(proxy_port, upstream).await;
    let mut back = false;
    for _ in 0..150 {
        if get(port, "/readyz").await.map(|r| r.0) == Some(200) {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "ready again once PostgreSQL returns");
    sigterm(&child);
}

#[tokio::test]
async fn two_daemons_on_one_database_sync_three_sources_without_doing_any_twice() {
    let db = TestDb::new().await;
    let hashes = ["store0", "store1", "store2"];
    let b2b = b2b_invoice_sync::sandbox::b2b::start(
        B2bSandboxConfig {
            stores: hashes
                .iter()
                .map(|h| SandboxStore::new(h, TOKEN, &format!("legacy-{h}")))
                .collect(),
            rate_limit: 1_000_000,
            latency: Duration::from_millis(20),
            ..B2bSandboxConfig::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("B2B sandbox");
    let erps = [erp(40).await, erp(40).await, erp(40).await];
    let pairs: Vec<(&str, &RunningUnifiedSandbox)> =
        hashes.iter().copied().zip(erps.iter()).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    // Every 2 seconds, so both replicas keep competing for every source.
    let cfg = write_config(&dir, &config(&db.url, &b2b, &pairs, "*/2 * * * * *", ""));
    let (a, b) = (spawn_run(&cfg), spawn_run(&cfg));
    let control = b2b.control();
    let all_synced = eventually(60, || {
        hashes
            .iter()
            .all(|h| control.invoices(h).map(|v| v.len()).unwrap_or(0) >= 30)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    sigterm(&a);
    sigterm(&b);
    let (sa, sb) = tokio::join!(a.wait_with_output(), b.wait_with_output());
    assert_eq!(sa.expect("a").status.code(), Some(0));
    assert_eq!(sb.expect("b").status.code(), Some(0));
    assert!(all_synced, "every source synced");
    for h in hashes {
        let seen = by_external_id(&b2b, h);
        assert!(seen.values().all(|n| *n == 1), "{h}: duplicates {seen:?}");
    }
    // No source ever had two cycles at once.
    let runs: Vec<(String, chrono::DateTime<chrono::Utc>, Option<chrono::DateTime<chrono::Utc>>)> =
        sqlx::query_as("SELECT source, started_at, finished_at FROM sync_runs WHERE outcome <> 'skipped' ORDER BY source, started_at")
            .fetch_all(&db.pool)
            .await
            .expect("runs");
    for pair in runs.windows(2) {
        if pair[0].0 == pair[1].0 {
            let end = pair[0].2.expect("finished");
            assert!(
                end <= pair[1].1,
                "overlapping cycles of {}: {pair:?}",
                pair[0].0
            );
        }
    }
}

#[tokio::test]
async fn a_cycle_stuck_past_its_limit_fails_healthz() {
    let db = TestDb::new().await;
    // Every B2B answer takes 2 s: the first cycle (20 creates) takes far longer than 1 s.
    let b2b = spawn_sandbox(B2bSandboxConfig {
        rate_limit: 1_000_000,
        latency: Duration::from_millis(2000),
        ..B2bSandboxConfig::default()
    })
    .await;
    let erp = erp(20).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().await;
    let mut text = config(
        &db.url,
        &b2b,
        &[(STORE_HASH, &erp)],
        "0 0 1 1 *",
        &format!("127.0.0.1:{port}"),
    );
    text = text.replace(
        "shutdown_deadline_secs = 8\n",
        "shutdown_deadline_secs = 8\nmax_cycle_secs = 1\n",
    );
    let cfg = write_config(&dir, &text);
    let child = spawn_run(&cfg);
    let mut alive_seen = false;
    let mut stuck = None;
    for _ in 0..200 {
        match get(port, "/healthz").await {
            Some((200, _)) => alive_seen = true,
            Some((503, body)) => {
                stuck = Some(body);
                break;
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = stuck.expect("/healthz fails while the cycle is stuck");
    assert!(alive_seen, "alive before the limit passed");
    assert!(
        body.contains("a cycle has run for") && body.contains("past daemon.max_cycle_secs = 1"),
        "{body}"
    );
    drop(child);
}

fn spawn_waiting(config: &str) -> tokio::process::Child {
    tokio::process::Command::new(BIN)
        .args(["run", "--config", config, "--log-format", "json"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the daemon starts")
}

/// `/metrics` as soon as it answers.
async fn first_scrape(port: u16) -> String {
    for _ in 0..200 {
        if let Some((200, text)) = get(port, "/metrics").await {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no /metrics");
}

#[tokio::test]
async fn every_source_series_exists_from_start_up_and_tells_staleness_from_the_database() {
    let db = TestDb::new().await;
    let b2b = spawn_unlimited_sandbox(0).await;
    let erp = erp(3).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().await;
    // No cycle will run during the test: the schedule fires once a year.
    let cfg = write_config(
        &dir,
        &config(
            &db.url,
            &b2b,
            &[(STORE_HASH, &erp)],
            "0 0 1 1 *",
            &format!("127.0.0.1:{port}"),
        ),
    );
    let labels = [("source", "erp0")];

    // An empty database: every per-source series is there, at zero.
    let mut child = spawn_waiting(&cfg);
    let text = first_scrape(port).await;
    child.kill().await.expect("stop the daemon");
    for name in [
        "b2bsync_failures_pending",
        "b2bsync_dead_letters",
        "b2bsync_ledger_in_flight",
        "b2bsync_refused_records",
        "b2bsync_payments_pending",
        "b2bsync_payments_stuck",
        "b2bsync_last_success_timestamp_seconds",
        "b2bsync_oldest_unsynced_change_age_seconds",
    ] {
        assert_eq!(metric(&text, name, &labels), Some(0.0), "{name}: {text}");
    }
    assert!(
        metric(&text, "b2bsync_last_success_age_seconds", &labels).is_some(),
        "{text}"
    );
    for outcome in ["ok", "partial", "failed", "skipped", "stopped"] {
        assert_eq!(
            metric(
                &text,
                "b2bsync_cycles_total",
                &[("source", "erp0"), ("outcome", outcome)]
            ),
            Some(0.0),
            "cycles_total{{outcome={outcome}}}: {text}"
        );
    }
    assert_eq!(
        metric(&text, "b2bsync_build_info", &[]),
        Some(1.0),
        "{text}"
    );
    assert!(
        metric(&text, "process_resident_memory_bytes", &[]).is_some_and(|v| v > 0.0),
        "process metrics: {text}"
    );
    assert!(!text.contains("cursor_lag"), "{text}");

    // A database with history: a success an hour ago, a change failing for 2 hours, a dead one.
    sqlx::query(
        "INSERT INTO sync_runs (id, source, started_at, finished_at, outcome)
         VALUES (gen_random_uuid(), 'erp0', now() - interval '61 minutes', now() - interval '60 minutes', 'ok')",
    )
    .execute(&db.pool)
    .await
    .expect("run");
    sqlx::query(
        "INSERT INTO invoice_state (source, external_id, invoice_number, status, attempts, pending_since)
         VALUES ('erp0', 'A', 'A', 'failed', 2, now() - interval '2 hours'),
                ('erp0', 'B', 'B', 'dead', 8, now() - interval '30 minutes')",
    )
    .execute(&db.pool)
    .await
    .expect("state");
    let mut child = spawn_waiting(&cfg);
    let text = first_scrape(port).await;
    child.kill().await.expect("stop the daemon");
    assert_eq!(
        metric(&text, "b2bsync_failures_pending", &labels),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "b2bsync_dead_letters", &labels),
        Some(1.0),
        "{text}"
    );
    let since_success = metric(&text, "b2bsync_last_success_age_seconds", &labels).expect("age");
    assert!((3590.0..3700.0).contains(&since_success), "{since_success}");
    let oldest = metric(&text, "b2bsync_oldest_unsynced_change_age_seconds", &labels).expect("age");
    assert!((7190.0..7300.0).contains(&oldest), "{oldest}");
}

/// Issue 14, item 4: a second SIGTERM exits at once, and says so as a JSON line like every
/// other line of the JSON stream (no plain `second signal: ...` text).
#[tokio::test]
async fn a_second_signal_exits_at_once_and_its_line_is_json() {
    let db = TestDb::new().await;
    let b2b = spawn_sandbox(B2bSandboxConfig {
        rate_limit: 1_000_000,
        latency: Duration::from_millis(400),
        ..B2bSandboxConfig::default()
    })
    .await;
    let erp = erp(80).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(
        &dir,
        &config(&db.url, &b2b, &[(STORE_HASH, &erp)], "0 0 1 1 *", ""),
    );
    let mut child = spawn_run(&cfg);
    let control = b2b.control();
    assert!(
        eventually(20, || control.stats().route_total("POST /ip/invoices") >= 2).await,
        "the daemon started creating"
    );
    sigterm(&child);
    tokio::time::sleep(Duration::from_millis(100)).await;
    sigterm(&child);
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits")
        .expect("status");
    assert_eq!(status.code(), Some(130));
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = e.read_to_string(&mut stderr).await;
    }
    let mut said = false;
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        said |= v["message"] == "second signal: exiting at once";
    }
    assert!(said, "{stderr}");
}

#[tokio::test]
async fn a_reconcile_schedule_sets_the_differences_gauge_from_each_report() {
    let db = TestDb::new().await;
    let b2b = spawn_unlimited_sandbox(0).await;
    let erp = erp(8).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().await;
    let text = config(
        &db.url,
        &b2b,
        &[(STORE_HASH, &erp)],
        "0 0 1 1 *",
        &format!("127.0.0.1:{port}"),
    )
    .replace(
        "schedule = \"0 0 1 1 *\"\n",
        "schedule = \"0 0 1 1 *\"\nreconcile_schedule = \"* * * * * *\"\n",
    );
    let cfg = write_config(&dir, &text);
    let mut child = spawn_run(&cfg);
    let gauge = |text: &str, kind: &str| {
        metric(
            text,
            "b2bsync_reconcile_differences",
            &[("source", "erp0"), ("kind", kind)],
        )
    };
    // After the first cycle, a reconcile finds ERP and B2B in agreement.
    let mut agreed = false;
    for _ in 0..150 {
        if let Some((200, t)) = get(port, "/metrics").await {
            let synced = b2b.control().invoices(STORE_HASH).expect("store").len() >= 8;
            if synced && gauge(&t, "unexplained") == Some(0.0) && gauge(&t, "missing") == Some(0.0)
            {
                agreed = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(agreed, "a scheduled reconcile reported no difference");
    // A person edits an owned field: the next reconcile counts a drift, unexplained.
    let id = b2b.control().invoices(STORE_HASH).expect("store")[0]["id"]
        .as_u64()
        .expect("id");
    b2b.control()
        .edit_invoice_as_person(
            STORE_HASH,
            id,
            &b2b_invoice_sync::sandbox::b2b::PersonEdit {
                kind: Some("Edited".to_owned()),
                ..Default::default()
            },
        )
        .expect("edited");
    let mut drifted = false;
    for _ in 0..100 {
        if let Some((200, t)) = get(port, "/metrics").await {
            if gauge(&t, "drift") == Some(1.0) && gauge(&t, "unexplained") == Some(1.0) {
                drifted = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(drifted, "the drift reached the gauge");
    sigterm(&child);
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits in time")
        .expect("status");
    assert!(status.success(), "{status:?}");
}
