//! Alloy webhooks into `run` (issue #16): the sandbox in Alloy mode POSTs `accounting/invoices`
//! events to the address registered with `webhooks register`; a changed invoice reaches B2B
//! within 2 s without waiting for the schedule; a wrong secret is refused and syncs nothing; an
//! oversized body is refused; 1 000 events in a burst make a bounded number of cycles inside
//! the budget; a lost webhook is caught by the next scheduled cycle.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::TcpListener;

use b2b_invoice_sync::sandbox::b2b::{B2bSandboxConfig, RunningB2bSandbox};
use b2b_invoice_sync::sandbox::unified::{
    self, alloy_remote_id, AlloyVersion, RunningUnifiedSandbox,
};

use crate::alloy_world::alloy_sandbox;
use crate::db::TestDb;
use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_b2b-invoice-sync");
const SECRET: &str = "webhook-secret-for-tests-0123456789";
const INVOICES: usize = 40;

struct Daemon {
    db: TestDb,
    b2b: RunningB2bSandbox,
    erp: RunningUnifiedSandbox,
    port: u16,
    config: String,
    _dir: tempfile::TempDir,
    child: tokio::process::Child,
}

async fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr").port()
}

impl Daemon {
    async fn start(schedule: &str) -> Self {
        let db = TestDb::new().await;
        let b2b = spawn_sandbox(B2bSandboxConfig {
            latency: Duration::from_millis(20),
            ..B2bSandboxConfig::default()
        })
        .await;
        let erp = alloy_sandbox(AlloyVersion::V2024_03, INVOICES, 10, |_| {}).await;
        let port = free_port().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let map = (1..=10)
            .map(|i| format!("\"CUST-{i:05}\" = \"{i}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[database]\nurl = \"{}\"\n\n[daemon]\nhttp_address = \"127.0.0.1:{port}\"\nshutdown_deadline_secs = 8\n\
                 webhook_secret = \"{SECRET}\"\nwebhook_max_body_bytes = 4096\n\n\
                 [stores.s.b2b]\nbase_url = \"{}\"\nstore_hash = \"{STORE_HASH}\"\ntoken = \"{TOKEN}\"\n\
                 [stores.s.budget]\nrequests_per_minute = 120\nburst = 30\n\n\
                 [sources.erp]\nkind = \"unified\"\nstore = \"s\"\nschedule = \"{schedule}\"\n\
                 [sources.erp.unified]\npreset = \"alloy-2024-03\"\nbase_url = \"{}\"\napi_key = \"{}\"\ncredential_id = \"{}\"\n\
                 [sources.erp.customers]\nstrategy = \"static\"\nmap = {{ {map} }}\n",
                db.url,
                b2b.base_url(),
                erp.base_url(),
                unified::DEFAULT_API_KEY,
                unified::DEFAULT_CREDENTIAL_ID,
            ),
        )
        .expect("config");
        let config = config.display().to_string();
        let child = tokio::process::Command::new(BIN)
            .args([
                "run",
                "--run-now",
                "--config",
                &config,
                "--log-format",
                "json",
            ])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the daemon starts");
        let d = Self {
            db,
            b2b,
            erp,
            port,
            config,
            _dir: dir,
            child,
        };
        assert!(
            d.until(30, || d.b2b_count() == INVOICES).await,
            "the first cycle syncs every invoice"
        );
        // The first cycle is recorded before the next test step counts cycles.
        tokio::time::sleep(Duration::from_millis(300)).await;
        d
    }

    fn b2b_count(&self) -> usize {
        self.b2b
            .control()
            .invoices(STORE_HASH)
            .map(|v| v.len())
            .unwrap_or(0)
    }

    fn po_of(&self, remote: &str) -> Option<String> {
        self.b2b
            .control()
            .invoices(STORE_HASH)
            .ok()?
            .into_iter()
            .find(|i| i["externalId"] == json!(remote))
            .and_then(|i| i["purchaseOrderNumber"].as_str().map(str::to_owned))
    }

    async fn until<F: FnMut() -> bool>(&self, secs: u64, mut check: F) -> bool {
        for _ in 0..secs * 20 {
            if check() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    async fn runs(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM sync_runs WHERE source = 'erp'")
            .fetch_one(&self.db.pool)
            .await
            .expect("runs")
    }

    async fn cli(&self, args: &[&str]) -> (i32, String) {
        let out = tokio::process::Command::new(BIN)
            .args(args)
            .args(["--config", &self.config, "--log-format", "json"])
            .env_remove("RUST_LOG")
            .output()
            .await
            .expect("the CLI runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !stdout.contains(SECRET) && !stderr.contains(SECRET),
            "secret leaked"
        );
        (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
    }

    async fn post(&self, path: &str, body: &Value, header: Option<&str>) -> u16 {
        let mut req = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}{path}", self.port))
            .json(body)
            .timeout(Duration::from_secs(10));
        if let Some(h) = header {
            req = req.header("x-webhook-secret", h);
        }
        req.send().await.expect("answers").status().as_u16()
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

fn event(remote: &str) -> Value {
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "topic": "accounting/invoices",
        "event": "updated",
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "data": { "remoteId": remote },
    })
}

#[tokio::test]
async fn a_webhook_brings_a_change_to_b2b_within_two_seconds_and_a_wrong_secret_syncs_nothing() {
    // The schedule never fires during the test: only the webhook can bring the change.
    let d = Daemon::start("0 0 1 1 *").await;
    let (code, out) = d
        .cli(&[
            "webhooks",
            "register",
            "--source",
            "erp",
            "--url",
            &format!("http://127.0.0.1:{}", d.port),
        ])
        .await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = d.cli(&["webhooks", "list", "--source", "erp"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("accounting/invoices") && out.contains("/v1/webhooks/alloy/erp/<secret>"),
        "{out}"
    );
    assert_eq!(d.erp.control().webhook_subscriptions().len(), 1);

    // One ERP change: Alloy's webhook, the GET by id, the PUT.
    let remote = alloy_remote_id(7);
    let started = Instant::now();
    d.erp
        .control()
        .update_invoice(
            &remote,
            &json!({"purchaseOrders": [{"number": "PO-WEBHOOK"}]}),
        )
        .expect("ERP change");
    assert!(
        d.until(5, || d.po_of(&remote).as_deref() == Some("PO-WEBHOOK"))
            .await,
        "the change reaches B2B"
    );
    let took = started.elapsed();
    assert!(
        took <= Duration::from_secs(2),
        "ERP change to B2B took {took:?}"
    );
    eprintln!("ERP change to B2B by webhook: {took:?}");
    // A run of the named invoice only: kept out of "last success".
    let scopes: Vec<String> =
        sqlx::query_scalar("SELECT scope FROM sync_runs WHERE source = 'erp' ORDER BY started_at")
            .fetch_all(&d.db.pool)
            .await
            .expect("runs");
    assert_eq!(
        scopes,
        ["full", "invoices"],
        "the first cycle, then the webhook's"
    );

    // Wrong secrets: refused, nothing synced.
    d.erp.control().lose_webhooks(true);
    let other = alloy_remote_id(9);
    d.erp
        .control()
        .update_invoice(
            &other,
            &json!({"purchaseOrders": [{"number": "PO-FORGED"}]}),
        )
        .expect("ERP change");
    let runs = d.runs().await;
    assert_eq!(
        d.post("/v1/webhooks/alloy/erp/wrong-secret", &event(&other), None)
            .await,
        401
    );
    assert_eq!(
        d.post(
            "/v1/webhooks/alloy/erp",
            &event(&other),
            Some("wrong-secret")
        )
        .await,
        401
    );
    assert_eq!(
        d.post("/v1/webhooks/alloy/erp", &event(&other), None).await,
        401
    );
    // Too large, even with the right secret.
    let big = json!({"topic": "accounting/invoices", "pad": "x".repeat(8192), "data": {"remoteId": other}});
    assert_eq!(
        d.post("/v1/webhooks/alloy/erp", &big, Some(SECRET)).await,
        413
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_ne!(
        d.po_of(&other).as_deref(),
        Some("PO-FORGED"),
        "nothing synced"
    );
    assert_eq!(d.runs().await, runs, "no cycle ran");

    // The same event twice: the second is a replay.
    let e = event(&other);
    assert_eq!(
        d.post("/v1/webhooks/alloy/erp", &e, Some(SECRET)).await,
        202
    );
    assert_eq!(
        d.post("/v1/webhooks/alloy/erp", &e, Some(SECRET)).await,
        200
    );
    assert!(
        d.until(5, || d.po_of(&other).as_deref() == Some("PO-FORGED"))
            .await
    );
    d.stop().await;
}

#[tokio::test]
async fn a_burst_of_1000_webhooks_makes_a_bounded_number_of_cycles_inside_the_budget() {
    let d = Daemon::start("0 0 1 1 *").await;
    let changed: Vec<String> = (1..=20).map(alloy_remote_id).collect();
    for (i, remote) in changed.iter().enumerate() {
        d.erp
            .control()
            .update_invoice(
                remote,
                &json!({"purchaseOrders": [{"number": format!("PO-BURST-{i}")}]}),
            )
            .expect("ERP change");
    }
    let runs = d.runs().await;
    d.b2b.control().reset_stats();
    let client = reqwest::Client::new();
    let sends = (0..1000).map(|i| {
        let client = client.clone();
        let url = format!("http://127.0.0.1:{}/v1/webhooks/alloy/erp/{SECRET}", d.port);
        let body = event(&changed[i % changed.len()]);
        async move {
            client
                .post(url)
                .json(&body)
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    });
    let statuses = futures::future::join_all(sends).await;
    assert!(
        statuses.iter().all(|s| *s == 202),
        "{:?}",
        statuses
            .iter()
            .filter(|s| **s != 202)
            .take(5)
            .collect::<Vec<_>>()
    );
    assert!(
        d.until(20, || changed
            .iter()
            .enumerate()
            .all(|(i, r)| d.po_of(r) == Some(format!("PO-BURST-{i}"))))
            .await,
        "every change reaches B2B"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cycles = d.runs().await - runs;
    assert!(
        (1..=20).contains(&cycles),
        "1 000 webhooks made {cycles} cycles"
    );
    let stats = d.b2b.control().stats();
    assert_eq!(stats.rate_limited, 0, "never over the store's limit");
    assert!(
        stats.total <= 120,
        "inside the budget: {} B2B calls",
        stats.total
    );
    eprintln!("1 000 webhooks: {cycles} cycles, {} B2B calls", stats.total);
    d.stop().await;
}

#[tokio::test]
async fn with_the_webhook_lost_the_next_scheduled_cycle_syncs_the_change() {
    let d = Daemon::start("*/5 * * * * *").await;
    d.erp.control().subscribe_webhook(
        &format!("http://127.0.0.1:{}/v1/webhooks/alloy/erp/{SECRET}", d.port),
        "accounting/invoices",
    );
    d.erp.control().lose_webhooks(true);
    let remote = alloy_remote_id(3);
    d.erp
        .control()
        .update_invoice(&remote, &json!({"purchaseOrders": [{"number": "PO-LOST"}]}))
        .expect("ERP change");
    assert!(
        d.until(20, || d.po_of(&remote).as_deref() == Some("PO-LOST"))
            .await,
        "the scheduled cycle catches what the lost webhook missed"
    );
    assert_eq!(
        d.erp.control().webhook_counts().0,
        0,
        "no webhook was delivered"
    );
    d.stop().await;
}
