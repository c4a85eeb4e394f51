//! Many stores across many replicas (issue #17), with real processes of the binary: each store
//! is worked by one replica at a time, so the store's request budget holds across processes;
//! stores spread evenly, move when a replica dies or stops, and a replica cut off from the
//! database stops sending before another takes its stores over.
//!
//! Time is scaled down for CI: each store's share is 60 requests a minute (bursts of 2) and the
//! sandbox's window 10 s, so a run of seconds shows what a run of minutes at 120 a minute would
//! (`B2BSYNC_REPLICAS_FULL=1`: the 150/min store limit, 120/min share, 60 s windows).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use b2b_invoice_sync::sandbox::b2b::{
    self as b2b_sandbox, B2bSandboxConfig, RequestRecord, RunningB2bSandbox, SandboxStore,
};

use crate::db::TestDb;
use crate::erp::ndjson_invoice;
use crate::proxy::Proxy;

const BIN: &str = env!("CARGO_BIN_EXE_b2b-invoice-sync");

struct Scale {
    rpm: u32,
    burst: u32,
    window: Duration,
    invoices_per_source: usize,
}

fn scale() -> Scale {
    if std::env::var("B2BSYNC_REPLICAS_FULL").is_ok() {
        Scale {
            rpm: 120,
            burst: 4,
            window: Duration::from_secs(60),
            invoices_per_source: 150,
        }
    } else {
        Scale {
            rpm: 60,
            burst: 2,
            window: Duration::from_secs(10),
            invoices_per_source: 12,
        }
    }
}

fn store_hash(i: usize) -> String {
    format!("store{i}")
}

fn token(i: usize) -> String {
    format!("tok_replicas_{i}")
}

/// One B2B sandbox serving `stores` stores, each limited per window to share + its headroom.
async fn b2b(stores: usize, s: &Scale) -> RunningB2bSandbox {
    b2b_sandbox::start(
        B2bSandboxConfig {
            stores: (1..=stores)
                .map(|i| SandboxStore::new(&store_hash(i), &token(i), &format!("legacy_{i}")))
                .collect(),
            // The store's own limit (150/min scaled): above the daemon's share.
            rate_limit: u32::try_from(150 * s.window.as_secs() / 60).unwrap_or(150),
            rate_window: s.window,
            latency: Duration::from_millis(5),
            ..B2bSandboxConfig::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("B2B sandbox")
}

/// 2 sources a store, each an export folder of its own invoices (numbers unique per store).
fn folders(root: &Path, stores: usize, s: &Scale) -> Vec<(usize, usize, PathBuf)> {
    let mut out = Vec::new();
    for store in 1..=stores {
        for source in 0..2 {
            let dir = root.join(format!("erp{store}_{source}"));
            std::fs::create_dir_all(&dir).expect("folder");
            let first = source * 10_000;
            let lines: Vec<String> = (first..first + s.invoices_per_source)
                .map(ndjson_invoice)
                .collect();
            std::fs::write(dir.join("export.ndjson"), format!("{}\n", lines.join("\n")))
                .expect("export");
            out.push((store, source, dir));
        }
    }
    out
}

fn config(
    db_url: &str,
    b2b: &RunningB2bSandbox,
    folders: &[(usize, usize, PathBuf)],
    s: &Scale,
) -> String {
    let customers = (1..=10)
        .map(|i| format!("\"CUST-{i:05}\" = \"{i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut toml = format!(
        "[database]\nurl = \"{db_url}\"\nmax_connections = 6\n\n\
         [daemon]\nhttp_address = \"\"\nshutdown_deadline_secs = 5\nlease_ttl_secs = 3\n\n"
    );
    let stores = folders.iter().map(|(st, _, _)| *st).max().unwrap_or(0);
    for i in 1..=stores {
        toml.push_str(&format!(
            "[stores.s{i}.b2b]\nbase_url = \"{}\"\nstore_hash = \"{}\"\ntoken = \"{}\"\n\
             [stores.s{i}.budget]\nrequests_per_minute = {}\nburst = {}\nmax_concurrent = 2\n\n",
            b2b.base_url(),
            store_hash(i),
            token(i),
            s.rpm,
            s.burst
        ));
    }
    for (store, source, dir) in folders {
        toml.push_str(&format!(
            "[sources.erp{store}_{source}]\nkind = \"files\"\nstore = \"s{store}\"\nschedule = \"*/2 * * * * *\"\n\
             [sources.erp{store}_{source}.files]\ndir = \"{}\"\nready = \"atomic_rename\"\n\
             [sources.erp{store}_{source}.customers]\nstrategy = \"static\"\nmap = {{ {customers} }}\n\n",
            dir.display()
        ));
    }
    toml
}

fn spawn(config: &Path, log: &Path) -> tokio::process::Child {
    tokio::process::Command::new(BIN)
        .args(["run", "--run-now", "--log-format", "json", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log"))
        .kill_on_drop(true)
        .spawn()
        .expect("a replica starts")
}

fn signal(child: &tokio::process::Child, sig: &str) {
    let pid = child.id().expect("running").to_string();
    let ok = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// The replica (its process name) behind a request, from the client's User-Agent.
fn replica_of(r: &RequestRecord) -> String {
    r.user_agent
        .as_deref()
        .and_then(|ua| ua.split_once('('))
        .map(|(_, rest)| rest.trim_end_matches(')').to_owned())
        .unwrap_or_default()
}

/// The most requests a store saw in any `window` (sliding, by arrival).
fn busiest_window(log: &[RequestRecord], store: &str, window: Duration) -> usize {
    let times: Vec<Duration> = log
        .iter()
        .filter(|r| r.store_hash.as_deref() == Some(store))
        .map(|r| r.at)
        .collect();
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] >= window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

async fn leases(db: &TestDb) -> BTreeMap<String, Option<String>> {
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT store, CASE WHEN expires_at > now() THEN holder END FROM store_leases ORDER BY store",
    )
    .fetch_all(&db.pool)
    .await
    .expect("leases");
    rows.into_iter().collect()
}

fn per_holder(l: &BTreeMap<String, Option<String>>) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for h in l.values().flatten() {
        *out.entry(h.clone()).or_default() += 1;
    }
    out
}

/// Every ERP invoice of every store is in B2B exactly once.
fn assert_once(b2b: &RunningB2bSandbox, stores: usize, s: &Scale) {
    for i in 1..=stores {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for inv in b2b.control().invoices(&store_hash(i)).expect("store") {
            *seen
                .entry(inv["externalId"].as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
        assert_eq!(seen.len(), 2 * s.invoices_per_source, "store {i}: {seen:?}");
        assert!(
            seen.values().all(|n| *n == 1),
            "store {i}: duplicates {seen:?}"
        );
    }
}

/// The last lines of every replica log in `dir`, for a failure message.
fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) == Some("log") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            out.push_str(&format!("--- {}\n{tail}\n", path.display()));
        }
    }
    out
}

async fn eventually(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    check()
}

#[tokio::test]
async fn three_replicas_spread_nine_stores_and_never_exceed_a_stores_share() {
    let s = scale();
    let stores = 9;
    let db = TestDb::new().await;
    let b2b = b2b(stores, &s).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let folders = folders(dir.path(), stores, &s);
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, config(&db.url, &b2b, &folders, &s)).expect("config");
    let mut replicas = Vec::new();
    for r in 0..3 {
        replicas.push(spawn(&cfg, &dir.path().join(format!("r{r}.log"))));
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let expected = 2 * s.invoices_per_source * stores;
    let control = b2b.control();
    let done = eventually(240, || {
        (1..=stores)
            .map(|i| control.invoices(&store_hash(i)).map_or(0, |v| v.len()))
            .sum::<usize>()
            >= expected
    })
    .await;
    assert!(done, "every invoice synced\n{}", logs(dir.path()));
    // A few more cycles on a quiet ERP.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let held = per_holder(&leases(&db).await);
    // `status` tells which replica holds which store, on which host, since when.
    let status = std::process::Command::new(BIN)
        .args(["status", "--json", "--config"])
        .arg(&cfg)
        .output()
        .expect("status runs");
    assert!(status.status.success(), "{status:?}");
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    let shown = status["stores"].as_array().expect("stores in status");
    assert_eq!(shown.len(), stores, "{shown:?}");
    let mut shown_per_holder: HashMap<String, usize> = HashMap::new();
    for l in shown {
        assert_eq!(l["live"], true, "{l}");
        assert!(l["hostname"].as_str().is_some_and(|h| !h.is_empty()), "{l}");
        assert!(l["acquired_at"].is_string(), "{l}");
        *shown_per_holder
            .entry(l["holder"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    assert_eq!(shown_per_holder, held, "status agrees with the leases");
    // A one-off `sync` while the replicas hold every store: skipped, naming who holds it.
    let once = std::process::Command::new(BIN)
        .args(["sync", "--config"])
        .arg(&cfg)
        .output()
        .expect("sync runs");
    let said = String::from_utf8_lossy(&once.stdout);
    assert!(
        said.contains("skipped: another process (b2b-invoice-sync/")
            && said.contains("holds the store's lease"),
        "{said}\n{}",
        String::from_utf8_lossy(&once.stderr)
    );
    for r in &mut replicas {
        r.kill().await.expect("stop");
    }
    assert_once(&b2b, stores, &s);
    let log = control.requests();
    let share = usize::try_from(u64::from(s.rpm) * s.window.as_secs() / 60 + u64::from(s.burst))
        .unwrap_or(usize::MAX);
    for i in 1..=stores {
        let busiest = busiest_window(&log, &store_hash(i), s.window);
        assert!(
            busiest <= share,
            "store {i}: {busiest} requests in one {:?} window, above its share of {share}",
            s.window
        );
    }
    assert_eq!(
        control.stats().rate_limited,
        0,
        "no 429 from the stores' own limits"
    );
    let mut counts: Vec<usize> = held.values().copied().collect();
    counts.sort_unstable();
    assert_eq!(counts.iter().sum::<usize>(), stores, "{held:?}");
    assert!(
        counts.len() == 3 && counts[2] - counts[0] <= 1,
        "the stores spread 3/3/3 within one: {held:?}"
    );
}

#[tokio::test]
async fn a_killed_replicas_stores_move_within_the_bound_and_a_stopped_ones_at_once() {
    let s = scale();
    let stores = 4;
    let db = TestDb::new().await;
    let b2b = b2b(stores, &s).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let folders = folders(dir.path(), stores, &s);
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, config(&db.url, &b2b, &folders, &s)).expect("config");
    let mut a = spawn(&cfg, &dir.path().join("a.log"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut b = spawn(&cfg, &dir.path().join("b.log"));
    let spread = {
        let db = &db;
        let mut ok = false;
        for _ in 0..60 {
            let h = per_holder(&leases(db).await);
            if h.len() == 2 && h.values().all(|n| *n == 2) {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        ok
    };
    assert!(
        spread,
        "two replicas hold two stores each: {:?}",
        leases(&db).await
    );

    // SIGKILL one: its stores are taken over within the lease's time to live and a round.
    let before = leases(&db).await;
    signal(&b, "-KILL");
    let _ = b.wait().await;
    let killed_at = Instant::now();
    let mut moved = false;
    while killed_at.elapsed() < Duration::from_secs(10) {
        let now = leases(&db).await;
        if now.values().all(|h| h.is_some()) && per_holder(&now).len() == 1 {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = killed_at.elapsed();
    assert!(moved, "taken over: {before:?} -> {:?}", leases(&db).await);
    assert!(
        took < Duration::from_secs(3 + 1 + 2),
        "within ttl + a round (+ slack): {took:?}"
    );

    // SIGTERM instead: the leases move at once (the next round of the other replica).
    let mut c = spawn(&cfg, &dir.path().join("c.log"));
    let mut shared = false;
    for _ in 0..60 {
        if per_holder(&leases(&db).await).len() == 2 {
            shared = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        shared,
        "the new replica takes its share: {:?}",
        leases(&db).await
    );
    signal(&c, "-TERM");
    let _ = c.wait().await;
    let stopped_at = Instant::now();
    let mut all_back = false;
    while stopped_at.elapsed() < Duration::from_secs(5) {
        let now = leases(&db).await;
        if now.values().all(|h| h.is_some()) && per_holder(&now).len() == 1 {
            all_back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(all_back, "{:?}", leases(&db).await);
    assert!(
        stopped_at.elapsed() < Duration::from_secs(2),
        "released leases are taken in the next round, not after the ttl: {:?}",
        stopped_at.elapsed()
    );
    let control = b2b.control();
    let expected = 2 * s.invoices_per_source * stores;
    assert!(
        eventually(120, || (1..=stores)
            .map(|i| control.invoices(&store_hash(i)).map_or(0, |v| v.len()))
            .sum::<usize>()
            >= expected)
        .await,
        "every invoice synced\n{}",
        logs(dir.path())
    );
    a.kill().await.expect("stop");
    assert_once(&b2b, stores, &s);
}

#[tokio::test]
async fn a_replica_cut_off_from_the_database_stops_sending_before_another_takes_over() {
    let s = scale();
    let stores = 2;
    let db = TestDb::new().await;
    let b2b = b2b(stores, &s).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Plenty of work, so the replicas keep sending throughout.
    let s = Scale {
        invoices_per_source: 200,
        ..s
    };
    let folders = folders(dir.path(), stores, &s);
    let authority = db.server_authority();
    let proxy = Proxy::start(0, &authority).await;
    let proxied = db
        .url
        .replace(&authority, &format!("127.0.0.1:{}", proxy.port));
    let cfg_a = dir.path().join("a.toml");
    std::fs::write(&cfg_a, config(&proxied, &b2b, &folders, &s)).expect("config");
    let cfg_b = dir.path().join("b.toml");
    std::fs::write(&cfg_b, config(&db.url, &b2b, &folders, &s)).expect("config");
    let mut a = spawn(&cfg_a, &dir.path().join("a.log"));
    let control = b2b.control();
    assert!(
        eventually(30, || control.stats().total >= 10).await,
        "A works both stores"
    );
    let a_name = control
        .requests()
        .last()
        .map(replica_of)
        .expect("a request");
    // B joins after A holds everything; then A is cut off from PostgreSQL.
    let mut b = spawn(&cfg_b, &dir.path().join("b.log"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.cut();
    let cut_at = control.since_start();
    assert!(
        eventually(30, || control.requests().iter().any(|r| r.at > cut_at
            && !replica_of(r).is_empty()
            && replica_of(r) != a_name))
        .await,
        "B takes the stores over"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = control.requests();
    for i in 1..=stores {
        let store = store_hash(i);
        let last_a = log
            .iter()
            .filter(|r| r.store_hash.as_deref() == Some(store.as_str()) && replica_of(r) == a_name)
            .map(|r| r.at)
            .max();
        let first_b = log
            .iter()
            .filter(|r| {
                r.store_hash.as_deref() == Some(store.as_str())
                    && r.at > cut_at
                    && replica_of(r) != a_name
            })
            .map(|r| r.at)
            .min();
        if let (Some(last_a), Some(first_b)) = (last_a, first_b) {
            assert!(
                last_a < first_b,
                "store {i}: A sent at {last_a:?}, after B started at {first_b:?}"
            );
        }
    }
    a.kill().await.expect("stop");
    b.kill().await.expect("stop");
}
