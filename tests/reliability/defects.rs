//! Issue #11's smaller defects, each with the test that failed before its fix: ambiguous creates
//! settled in bulk, misconfigurations that stop a cycle instead of failing every invoice, the
//! budget adapting to other apps' load, counts and errors that say what happened.

use b2b_invoice_sync::config::{B2bAuth, B2bSettings};
use b2b_invoice_sync::sandbox::b2b::{Fault, FaultRule};
use b2b_invoice_sync::store::runs::Outcome;

use crate::erp::{ndjson_invoice, Erp};
use crate::world::{seed_for, World, STORE_HASH};

/// `GET /ip/invoices` requests (list reads) B2B answered since its stats were reset.
fn list_reads(world: &World) -> usize {
    world
        .b2b
        .control()
        .requests()
        .iter()
        .filter(|r| r.route == "GET /ip/invoices")
        .count()
}

#[tokio::test]
async fn ambiguous_creates_are_settled_with_bulk_reads_not_one_get_each() {
    let row = "bulk_recovery";
    let seed = seed_for(row);
    let n = 300;
    let mut world = World::new(row, seed, Erp::files()).await;
    let control = world.b2b.control();
    let engine = world.engine();

    // A fresh store where every create was lost before B2B applied it.
    world
        .erp
        .folder()
        .write(&(0..n).map(ndjson_invoice).collect::<Vec<_>>());
    control.push_fault(
        FaultRule::once(Fault::DropBeforeApply)
            .on_method("POST")
            .times(n as u32),
    );
    let first = world.cycle(&engine).await;
    assert_eq!(first.counts.created, 0, "{first:#?}");
    control.reset_stats();
    let second = world.cycle(&engine).await;
    let reads = list_reads(&world);
    // One filtered read per page of ids.
    let bulk = n.div_ceil(b2b_invoice_sync::config::DEFAULT_B2B_PAGE_SIZE as usize);
    assert!(
        reads <= bulk,
        "{reads} list reads to settle {n} creates: {second:#?}"
    );
    assert_eq!(second.counts.created, n as i32, "{second:#?}");

    // Then creates that were all applied, their answers lost.
    world
        .erp
        .folder()
        .write(&(n..2 * n).map(ndjson_invoice).collect::<Vec<_>>());
    control.push_fault(
        FaultRule::once(Fault::ApplyThen500)
            .on_method("POST")
            .times(n as u32),
    );
    let third = world.cycle(&engine).await;
    assert_eq!(third.counts.created, 0, "{third:#?}");
    control.reset_stats();
    let fourth = world.cycle(&engine).await;
    let reads = list_reads(&world);
    assert!(
        reads <= bulk,
        "{reads} list reads to adopt {n} creates: {fourth:#?}"
    );
    assert_eq!(fourth.counts.recovered, n as i32, "{fourth:#?}");
    world.until_quiet(&engine, 3).await;
    world.finish().await;
}

/// Invoices charged an attempt (failed, dead) so far.
async fn charged(world: &World) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM invoice_state WHERE attempts > 0 OR status IN ('failed', 'dead')",
    )
    .fetch_one(&world.db.pool)
    .await
    .expect("count charged invoices")
}

#[tokio::test]
async fn a_misconfigured_store_stops_the_cycle_with_one_error_and_charges_no_invoice() {
    let row = "misconfigured_store";
    let seed = seed_for(row);
    let mut world = World::new(row, seed, Erp::files()).await;
    world
        .erp
        .folder()
        .write(&(0..30).map(ndjson_invoice).collect::<Vec<_>>());
    let good = world.store_mut().b2b.clone();
    let sandbox = good.base_url.to_string();
    let with = |change: &dyn Fn(&mut B2bSettings)| {
        let mut b2b = good.clone();
        change(&mut b2b);
        b2b
    };
    let cases = [
        (
            "wrong token",
            with(&|b| {
                b.auth = B2bAuth::XAuthToken {
                    store_hash: STORE_HASH.to_owned(),
                    token: "not-the-token".into(),
                }
            }),
            "stores.acme.b2b.token",
        ),
        (
            "base_url ending in /ip",
            with(&|b| {
                b.base_url = format!("{}/ip", sandbox.trim_end_matches('/'))
                    .parse()
                    .expect("URL")
            }),
            "base_url must stop at /api/v3/io",
        ),
        (
            "nothing listening",
            with(&|b| b.base_url = "http://127.0.0.1:9/api/v3/io".parse().expect("URL")),
            "nothing answers at stores.acme.b2b.base_url",
        ),
    ];
    for (case, b2b, names) in cases {
        world.store_mut().b2b = b2b;
        let engine = world.engine();
        let report = world.cycle(&engine).await;
        assert_eq!(report.outcome, Outcome::Failed, "[{case}] {report:#?}");
        let error = report.error.clone().unwrap_or_default();
        assert!(
            error.contains("store acme") && error.contains(names),
            "[{case}] one error naming the store and the fix: {error}"
        );
        eprintln!("[{case}] {error}");
        assert_eq!(report.counts.failed, 0, "[{case}] {report:#?}");
        assert_eq!(
            charged(&world).await,
            0,
            "[{case}] no invoice is charged an attempt"
        );
        assert_eq!(
            world.in_flight().await,
            0,
            "[{case}] nothing left in flight"
        );
    }
    // Fixed: everything syncs, nothing was burnt on the way.
    world.store_mut().b2b = good;
    let engine = world.engine();
    world.until_quiet(&engine, 3).await;
    world.finish().await;
}

/// A server that refuses every request with a 403, as B2B Edition does for a token without
/// the B2B Edition scope. Returns its `/api/v3/io` base URL.
async fn forbidding_server() -> String {
    let app = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({
                "code": 403,
                "message": "You don't have the required scopes to access this resource"
            })),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/api/v3/io")
}

/// The real binary: `sync --once` against a store whose credentials are refused (401 from the
/// sandbox for a wrong token, 403 for a token without the scope) exits 1 with one run that
/// failed with one error naming the store and the key to fix, and charges no invoice.
#[tokio::test]
async fn sync_against_a_store_refusing_the_credentials_exits_1_with_one_error() {
    use std::process::Stdio;
    use std::time::Duration;

    use crate::world::TOKEN;

    let row = "misconfigured_store_binary";
    let seed = seed_for(row);
    let mut world = World::new(row, seed, Erp::files()).await;
    world
        .erp
        .folder()
        .write(&(0..10).map(ndjson_invoice).collect::<Vec<_>>());
    let dir = tempfile::tempdir().expect("tempdir");
    let good = crate::newest::files_config_toml(&world, &world.erp_dir());
    let sandbox = world.b2b.base_url().to_string();
    let forbidding = forbidding_server().await;
    let cases = [
        (
            "wrong token",
            good.replace(&format!("token = \"{TOKEN}\""), "token = \"not-the-token\""),
            401,
        ),
        (
            "token without the scope",
            good.replace(&sandbox, &forbidding),
            403,
        ),
    ];
    for (case, config, status) in cases {
        assert_ne!(config, good, "[{case}] the config differs");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, &config).expect("config");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_b2b-invoice-sync"))
            .args([
                "sync",
                "--once",
                "--json",
                "--log-format",
                "json",
                "--config",
            ])
            .arg(&path)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("sync starts");
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("sync ends")
            .expect("sync runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "[{case}] {stdout}\n{stderr}");
        let reports: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("[{case}] sync --json prints JSON ({e}): {stdout}"));
        let runs = reports.as_array().expect("an array");
        assert_eq!(runs.len(), 1, "[{case}] one run, not repeated: {stdout}");
        assert_eq!(runs[0]["outcome"], "failed", "[{case}] {stdout}");
        let error = runs[0]["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("store acme: B2B Edition refused the credentials")
                && error.contains(&format!("HTTP {status}"))
                && error.contains("stores.acme.b2b.token"),
            "[{case}] one error naming the store, the answer and the key: {error}"
        );
        assert_eq!(
            runs[0]["counts"]["failed"], 0,
            "[{case}] no per-invoice failure: {stdout}"
        );
        assert_eq!(
            charged(&world).await,
            0,
            "[{case}] no invoice is charged an attempt"
        );
        // The token never shows, right or wrong.
        for text in [&stdout, &stderr] {
            assert!(
                !text.contains(TOKEN) && !text.contains("not-the-token"),
                "[{case}] {text}"
            );
        }
    }
    // The right config: everything syncs, nothing was burnt on the way.
    let engine = world.engine();
    world.until_quiet(&engine, 3).await;
    world.finish().await;
}

/// Two apps on one store (limit 150 a minute): this daemon (its share 120 a minute) creating
/// invoices, another app reading at 60 a minute. Returns the 429s each met over ten minutes.
async fn share_a_store_for_ten_minutes() -> (usize, usize, u64) {
    use std::sync::Arc;
    use std::time::Duration;

    use b2b_invoice_sync::b2b::{B2bClient, NewInvoice, RequestBudget};
    use b2b_invoice_sync::config::BudgetSettings;
    use b2b_invoice_sync::sandbox::b2b::{self as b2b_sandbox, B2bSandboxConfig, SandboxStore};
    use tokio::time::Instant;

    use crate::world::{store_settings, LEGACY_TOKEN, TOKEN};

    let sandbox = b2b_sandbox::start(
        B2bSandboxConfig {
            stores: vec![SandboxStore::new(STORE_HASH, TOKEN, LEGACY_TOKEN)],
            rate_limit: 150,
            rate_window: Duration::from_secs(60),
            seed_invoices: 1,
            ..B2bSandboxConfig::default()
        },
        "127.0.0.1:0".parse().expect("loopback"),
    )
    .await
    .expect("sandbox");
    let client = |rpm: u32, burst: u32| {
        let mut s = store_settings(&sandbox);
        s.budget = BudgetSettings {
            requests_per_minute: rpm.try_into().expect("non-zero"),
            burst: burst.try_into().expect("non-zero"),
            max_concurrent: 4.try_into().expect("non-zero"),
            default_retry_after: Duration::from_secs(60),
        };
        s.b2b.request_timeout = Duration::from_secs(24 * 3600);
        B2bClient::new(&s, Arc::new(RequestBudget::new(&s.budget))).expect("client")
    };
    let daemon = client(120, 4);
    let other = client(60, 1);
    let end = Instant::now() + Duration::from_secs(600);
    let creating = async {
        let mut i = 0u64;
        while Instant::now() < end {
            i += 1;
            let mut inv = NewInvoice::new(
                format!("SHARE-{i}"),
                "1",
                b2b_invoice_sync::b2b::Amount::new("USD", 10.into()),
                b2b_invoice_sync::b2b::Amount::new("USD", 10.into()),
            );
            inv.external_id = Some(format!("share-{i}"));
            let _ = daemon.create_invoice(&inv).await;
        }
    };
    let reading = async {
        while Instant::now() < end {
            let _ = other.get_invoice(1).await;
        }
    };
    tokio::join!(creating, reading);
    let log = sandbox.control().requests();
    let refused = |route: &str| {
        log.iter()
            .filter(|r| r.route == route && r.status == Some(429))
            .count()
    };
    let created = log
        .iter()
        .filter(|r| r.route == "POST /ip/invoices" && r.status == Some(200))
        .count() as u64;
    (
        refused("POST /ip/invoices"),
        refused("GET /ip/invoices/{id}"),
        created,
    )
}

#[tokio::test(start_paused = true)]
async fn the_budget_backs_off_when_other_apps_fill_the_store_and_recovers_slowly() {
    let (daemon_429s, other_429s, created) = share_a_store_for_ten_minutes().await;
    eprintln!("daemon met {daemon_429s} 429s, the other app {other_429s}; {created} created");
    // Without adapting, the daemon comes back at full rate after every pause and meets a 429
    // every minute or so (and so does the other app); adapting, it stays under what is left.
    assert!(daemon_429s <= 5, "the daemon met {daemon_429s} 429s");
    assert!(other_429s <= 5, "the other app met {other_429s} 429s");
    // ... while still using most of what the store leaves it (150 - 60 = 90 a minute).
    assert!(created >= 600, "only {created} created in ten minutes");
}

/// A pool named like a daemon process's (see `store::process_name`).
async fn daemon_pool(url: &str) -> sqlx::PgPool {
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    let options: PgConnectOptions = url.parse().expect("database URL");
    PgPoolOptions::new()
        .max_connections(5)
        .connect_with(options.application_name(b2b_invoice_sync::store::process_name()))
        .await
        .expect("connect")
}

#[tokio::test]
async fn a_cycle_that_loses_its_lease_stops_before_its_next_change() {
    use std::time::{Duration, Instant};

    use b2b_invoice_sync::sandbox::b2b::B2bSandboxConfig;
    use b2b_invoice_sync::sync::engine::Engine;

    let row = "lock_lost";
    let seed = seed_for(row);
    let n = 60;
    let b2b = B2bSandboxConfig {
        latency: Duration::from_millis(30),
        ..B2bSandboxConfig::default()
    };
    let mut world = World::with_b2b(row, seed, Erp::files(), b2b).await;
    world
        .erp
        .folder()
        .write(&(0..n).map(ndjson_invoice).collect::<Vec<_>>());
    let a = Engine::new(&world.settings, daemon_pool(&world.db.url).await).expect("engine A");
    let b = Engine::new(&world.settings, daemon_pool(&world.db.url).await).expect("engine B");
    let control = world.b2b.control();
    let pool = world.db.pool.clone();
    let posts = || {
        control
            .requests()
            .iter()
            .filter(|r| r.route == "POST /ip/invoices")
            .count()
    };
    // The cycles' log lines (both engines run on this test's thread), as JSON in a file.
    let logs = tempfile::tempdir().expect("tempdir");
    let log_path = logs.path().join("cycles.log");
    let subscriber = b2b_invoice_sync::telemetry::subscriber(
        b2b_invoice_sync::config::LogFormat::Json,
        // Info, as the daemon's default: the cycle's span (an info span) carries its fields.
        tracing_subscriber::EnvFilter::new("info"),
        std::sync::Arc::new(std::fs::File::create(&log_path).expect("log file")),
    );
    let logging = tracing::subscriber::set_default(subscriber);
    let first = a.run_cycle(crate::world::SOURCE);
    let takeover = async {
        let deadline = Instant::now() + Duration::from_secs(20);
        while posts() < 10 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // A's lease ends under it (its renewals no longer reach the database, a long pause):
        // the lease is expired by the database's clock, as if its time to live had passed.
        let expired = sqlx::query(
            "UPDATE store_leases SET expires_at = now() WHERE holder IS NOT NULL AND expires_at > now()",
        )
        .execute(&pool)
        .await
        .expect("expire A's lease")
        .rows_affected();
        assert_eq!(expired, 1, "A held its store's lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
        // A second process starts a second later and gets the source.
        b.run_cycle(crate::world::SOURCE).await
    };
    let (first, second) = tokio::join!(first, takeover);
    drop(logging);
    let (first, second) = (first.expect("A's cycle"), second.expect("B's cycle"));
    world.reports.push(first.clone());
    world.reports.push(second.clone());
    assert_eq!(first.outcome, Outcome::Failed, "{first:#?}");
    assert!(
        first
            .error
            .as_deref()
            .is_some_and(|e| e.contains("lost its store's lease")),
        "A says it lost its lease: {first:#?}"
    );
    // ... and says so at WARN, once, in A's cycle (its run id and source on the line).
    let log = std::fs::read_to_string(&log_path).expect("log");
    let lost: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("lost the store's lease mid-cycle"))
        })
        .collect();
    assert_eq!(lost.len(), 1, "one WARN line for the lost lease: {log}");
    assert_eq!(lost[0]["level"], "WARN", "{log}");
    assert_eq!(lost[0]["source"], crate::world::SOURCE, "{log}");
    assert_eq!(lost[0]["run_id"], first.run_id.to_string(), "{log}");
    assert_ne!(
        second.outcome,
        Outcome::Skipped,
        "B got the source: {second:#?}"
    );
    // Never two processes sending for one invoice: no create was refused as a duplicate.
    let duplicates = control
        .requests()
        .iter()
        .filter(|r| r.route == "POST /ip/invoices" && r.status == Some(400))
        .count();
    assert_eq!(duplicates, 0, "[{row}] creates sent twice");
    world.until_quiet(&b, 6).await;
    world.finish().await;
}

#[tokio::test]
async fn invoices_waiting_for_their_retry_are_counted_apart_from_unchanged_ones() {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use b2b_invoice_sync::config::{CustomerMapping, FailurePolicy};

    let row = "waiting_counted";
    let seed = seed_for(row);
    let n = 40;
    let mut world = World::new(row, seed, Erp::files()).await;
    let mut map: BTreeMap<String, String> = crate::world::customer_map();
    // No such company in B2B: a 400 for every invoice of that customer, retried in an hour.
    map.insert("CUST-00003".into(), "999".into());
    world.source_mut().customers = CustomerMapping::Static(map);
    world.source_mut().failures = FailurePolicy {
        max_attempts: 8,
        base_delay: Duration::from_secs(3600),
        max_delay: Duration::from_secs(3600),
    };
    let export: Vec<String> = (0..n).map(ndjson_invoice).collect();
    world.erp.folder().write(&export);
    let engine = world.engine();
    let first = world.cycle(&engine).await;
    let rejected = first.counts.failed;
    assert!(rejected > 0, "{first:#?}");
    // The ERP exports the same invoices again, unchanged (in another order: the very same file
    // would be recognised as imported already and set aside).
    let again: Vec<String> = export.iter().rev().cloned().collect();
    world.erp.folder().write(&again);
    let second = world.cycle(&engine).await;
    assert_eq!(second.counts.waiting, rejected, "{second:#?}");
    assert_eq!(second.counts.failed, 0, "{second:#?}");
    assert_eq!(
        second.counts.unchanged, first.counts.created,
        "unchanged counts only what B2B holds: {second:#?}"
    );
}

#[tokio::test]
async fn export_files_waiting_for_their_marker_are_named_in_the_run() {
    use b2b_invoice_sync::config::{AdapterSettings, ReadyRule};

    let row = "unmarked_exports";
    let seed = seed_for(row);
    let mut world = World::new(row, seed, Erp::files()).await;
    let mut files = world.erp.folder().settings();
    files.ready = ReadyRule::Marker;
    world.source_mut().adapter = AdapterSettings::Files(files);
    world.erp.folder().write(&[ndjson_invoice(1)]);
    let engine = world.engine();
    let report = world.cycle(&engine).await;
    assert_eq!(report.counts.created, 0, "{report:#?}");
    assert!(
        report
            .notices
            .iter()
            .any(|n| n.contains("export-0001.ndjson")
                && n.contains(".ready marker")
                && n.contains("sources.erp.files.ready")),
        "{report:#?}"
    );
}

#[tokio::test]
async fn a_database_outage_is_reported_as_itself_and_sync_json_still_prints_the_run() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    use b2b_invoice_sync::sandbox::b2b::B2bSandboxConfig;

    use crate::proxy::Proxy;
    use crate::world::{SOURCE, STORE, TOKEN};

    let row = "database_outage_reported";
    let seed = seed_for(row);
    let b2b = B2bSandboxConfig {
        latency: std::time::Duration::from_millis(20),
        ..B2bSandboxConfig::default()
    };
    let mut world = World::with_b2b(row, seed, Erp::files(), b2b).await;
    world
        .erp
        .folder()
        .write(&(0..30).map(ndjson_invoice).collect::<Vec<_>>());
    let authority = world.db.server_authority();
    let proxy = Proxy::start(0, &authority).await;
    let proxied = world
        .db
        .url
        .replace(&authority, &format!("127.0.0.1:{}", proxy.port));
    let customers = (1..=10)
        .map(|i| format!("\"CUST-{i:05}\" = \"{i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{proxied}\"\nmax_connections = 2\n\n\
             [stores.{STORE}.b2b]\nbase_url = \"{b2b}\"\nstore_hash = \"{STORE_HASH}\"\ntoken = \"{TOKEN}\"\n\n\
             [sources.{SOURCE}]\nkind = \"files\"\nstore = \"{STORE}\"\n\
             [sources.{SOURCE}.files]\ndir = \"{dir}\"\nready = \"atomic_rename\"\n\
             [sources.{SOURCE}.customers]\nstrategy = \"static\"\nmap = {{ {customers} }}\n",
            b2b = world.b2b.base_url(),
            dir = world.erp.folder().dir.path().display(),
        ),
    )
    .expect("config");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_b2b-invoice-sync"))
        .args([
            "sync",
            "--once",
            "--json",
            "--log-format",
            "json",
            "--config",
        ])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sync starts");
    // PostgreSQL goes away in the middle of the cycle.
    let control = world.b2b.control();
    let deadline = Instant::now() + Duration::from_secs(30);
    while control.stats().total < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    proxy.cut();
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("sync ends")
        .expect("sync runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let reports: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("sync --json prints JSON ({e}): {stdout}\n{stderr}"));
    let runs = reports.as_array().expect("an array");
    assert_eq!(runs.len(), 1, "the run is reported: {stdout}");
    assert_eq!(runs[0]["outcome"], "failed", "{stdout}");
    let error = runs[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("database: ") && !error.starts_with("database: recording a run's end"),
        "the outage itself comes first, then that the run could not be recorded: {error}"
    );
    assert!(
        runs[0]["counts"]["created"].as_i64().unwrap_or_default() > 0,
        "what was done before the outage is counted: {stdout}"
    );
}
