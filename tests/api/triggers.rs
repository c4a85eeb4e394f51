//! `run`'s trigger endpoint (issue #16): `POST /v1/sources/{name}/sync` with a bearer token
//! starts a cycle now; without the token (or with a wrong one) 401 and nothing runs; two calls
//! at once start exactly one cycle.

use std::process::Stdio;
use std::time::Duration;

use tokio::net::TcpListener;

use b2b_invoice_sync::sandbox::b2b::B2bSandboxConfig;
use b2b_invoice_sync::sandbox::unified::{self, UnifiedSandboxConfig};

use crate::db::TestDb;
use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_b2b-invoice-sync");
const TRIGGER_TOKEN: &str = "trigger-token-for-tests-0123456789";

async fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr").port()
}

async fn runs(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM sync_runs WHERE source = 'erp'")
        .fetch_one(&db.pool)
        .await
        .expect("runs")
}

async fn lease_held(db: &TestDb) -> bool {
    sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM store_leases WHERE holder IS NOT NULL AND expires_at > now()",
    )
    .fetch_one(&db.pool)
    .await
    .map(|n| n > 0)
    .unwrap_or(false)
}

async fn post(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}{path}"))
        .timeout(Duration::from_secs(10));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("the endpoint answers");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

#[tokio::test]
async fn the_trigger_needs_its_token_and_two_calls_at_once_start_one_cycle() {
    let db = TestDb::new().await;
    let b2b = spawn_sandbox(B2bSandboxConfig {
        rate_limit: 1_000_000,
        ..B2bSandboxConfig::default()
    })
    .await;
    let erp = unified::start(
        UnifiedSandboxConfig {
            seed_invoices: 30,
            latency: Duration::from_millis(50),
            ..UnifiedSandboxConfig::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("ERP sandbox");
    let port = free_port().await;
    let map = (1..=10)
        .map(|i| format!("\"CUST-{i:05}\" = \"{i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("trigger-token");
    std::fs::write(&token_file, format!("{TRIGGER_TOKEN}\n")).expect("token file");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{}\"\n\n[daemon]\nhttp_address = \"127.0.0.1:{port}\"\nshutdown_deadline_secs = 8\n\
             trigger_token_file = \"{}\"\n\n\
             [stores.s.b2b]\nbase_url = \"{}\"\nstore_hash = \"{STORE_HASH}\"\ntoken = \"{TOKEN}\"\n\
             [stores.s.budget]\nrequests_per_minute = 120\nburst = 30\n\n\
             [sources.erp]\nkind = \"unified\"\nstore = \"s\"\nschedule = \"0 0 1 1 *\"\n\
             [sources.erp.unified]\nbase_url = \"{}\"\napi_key = \"{}\"\ncredential_id = \"{}\"\n\
             [sources.erp.customers]\nstrategy = \"static\"\nmap = {{ {map} }}\n",
            db.url,
            token_file.display(),
            b2b.base_url(),
            erp.base_url(),
            unified::DEFAULT_API_KEY,
            unified::DEFAULT_CREDENTIAL_ID,
        ),
    )
    .expect("config");
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "run",
            "--config",
            &config.display().to_string(),
            "--log-format",
            "json",
        ])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the daemon starts");
    let mut held = false;
    for _ in 0..100 {
        if lease_held(&db).await {
            held = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(held, "the daemon takes its store's lease");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let path = "/v1/sources/erp/sync";
    assert_eq!(post(port, path, None).await.0, 401, "no token");
    assert_eq!(
        post(port, path, Some("wrong-token")).await.0,
        401,
        "wrong token"
    );
    assert_eq!(
        post(port, path, Some(&TRIGGER_TOKEN[..TRIGGER_TOKEN.len() - 1]))
            .await
            .0,
        401,
        "a prefix of the token"
    );
    assert_eq!(
        post(port, "/v1/sources/nope/sync", Some(TRIGGER_TOKEN))
            .await
            .0,
        404
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(runs(&db).await, 0, "a refused trigger runs nothing");

    let (a, b) = tokio::join!(
        post(port, path, Some(TRIGGER_TOKEN)),
        post(port, path, Some(TRIGGER_TOKEN))
    );
    assert_eq!((a.0, b.0), (202, 202), "{a:?} {b:?}");
    let mut synced = false;
    for _ in 0..200 {
        if b2b
            .control()
            .invoices(STORE_HASH)
            .map(|v| v.len())
            .unwrap_or(0)
            == 30
        {
            synced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(synced, "the triggered cycle syncs the ERP");
    // Whatever a second cycle would need to start, give it time.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        runs(&db).await,
        1,
        "two calls at once: one cycle ({a:?}, {b:?})"
    );

    // Later, one more call: one more cycle.
    let (c, _) = post(port, path, Some(TRIGGER_TOKEN)).await;
    assert_eq!(c, 202);
    let mut second = false;
    for _ in 0..100 {
        if runs(&db).await == 2 {
            second = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(second, "a later call starts a new cycle");
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(r#"b2bsync_triggers_total{kind="api",result="unauthorized"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"b2bsync_triggers_total{kind="api",result="unknown_source"} 1"#),
        "{metrics}"
    );
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// Two replicas: a trigger sent to the one that does not hold the store is handed to the one
/// that does (NOTIFY b2bsync_trigger), which runs the cycle.
#[tokio::test]
async fn a_trigger_at_the_replica_without_the_store_runs_at_the_holder() {
    let db = TestDb::new().await;
    let b2b = spawn_sandbox(B2bSandboxConfig {
        rate_limit: 1_000_000,
        ..B2bSandboxConfig::default()
    })
    .await;
    let erp = unified::start(
        UnifiedSandboxConfig {
            seed_invoices: 10,
            ..UnifiedSandboxConfig::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("ERP sandbox");
    let map = (1..=10)
        .map(|i| format!("\"CUST-{i:05}\" = \"{i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut replicas = Vec::new();
    for r in 0..2 {
        let port = free_port().await;
        let config = dir.path().join(format!("config{r}.toml"));
        std::fs::write(
            &config,
            format!(
                "[database]\nurl = \"{}\"\n\n[daemon]\nhttp_address = \"127.0.0.1:{port}\"\nshutdown_deadline_secs = 8\n\
                 trigger_token = \"{TRIGGER_TOKEN}\"\n\n\
                 [stores.s.b2b]\nbase_url = \"{}\"\nstore_hash = \"{STORE_HASH}\"\ntoken = \"{TOKEN}\"\n\
                 [stores.s.budget]\nrequests_per_minute = 120\nburst = 30\n\n\
                 [sources.erp]\nkind = \"unified\"\nstore = \"s\"\nschedule = \"0 0 1 1 *\"\n\
                 [sources.erp.unified]\nbase_url = \"{}\"\napi_key = \"{}\"\ncredential_id = \"{}\"\n\
                 [sources.erp.customers]\nstrategy = \"static\"\nmap = {{ {map} }}\n",
                db.url,
                b2b.base_url(),
                erp.base_url(),
                unified::DEFAULT_API_KEY,
                unified::DEFAULT_CREDENTIAL_ID,
            ),
        )
        .expect("config");
        let child = tokio::process::Command::new(BIN)
            .args([
                "run",
                "--config",
                &config.display().to_string(),
                "--log-format",
                "json",
            ])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("a replica starts");
        replicas.push((port, child));
        if r == 0 {
            let mut held = false;
            for _ in 0..100 {
                if lease_held(&db).await {
                    held = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(held, "the first replica takes the store");
        }
    }
    // The second replica is up (its endpoint answers) and listening.
    let (other_port, _) = &replicas[1];
    let mut up = false;
    for _ in 0..100 {
        if reqwest::get(format!("http://127.0.0.1:{other_port}/healthz"))
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the second replica serves");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let holder: i32 = sqlx::query_scalar("SELECT holder_pid FROM store_leases WHERE store = 's'")
        .fetch_one(&db.pool)
        .await
        .expect("holder");
    let first_pid = replicas[0].1.id().and_then(|p| i32::try_from(p).ok());
    assert_eq!(Some(holder), first_pid, "the first replica holds the store");

    let (status, body) = post(*other_port, "/v1/sources/erp/sync", Some(TRIGGER_TOKEN)).await;
    assert_eq!(status, 202, "{body}");
    assert!(body.contains("not_here"), "{body}");
    let mut synced = false;
    for _ in 0..100 {
        if b2b
            .control()
            .invoices(STORE_HASH)
            .map(|v| v.len())
            .unwrap_or(0)
            == 10
        {
            synced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(synced, "the holder ran the cycle");
    assert_eq!(runs(&db).await, 1);
    for (_, mut child) in replicas {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}
