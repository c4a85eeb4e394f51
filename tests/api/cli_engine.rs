//! The engine's commands (`sync`, `plan`, `status`, `failures`) run as an operator would: the
//! binary with a TOML config pointing at a per-test database, an in-process B2B sandbox and a
//! `files` source in a temp folder.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{json, Value};

use b2b_invoice_sync::sandbox::b2b::RunningB2bSandbox;

use crate::db::TestDb;
use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_b2b-invoice-sync");

struct World {
    db: TestDb,
    sandbox: RunningB2bSandbox,
    _dir: tempfile::TempDir,
    erp: PathBuf,
    config: String,
}

impl World {
    /// `customers` is the body of `[sources.erp.customers]`.
    async fn new(customers: &str) -> Self {
        Self::with(customers, "").await
    }

    /// `extra` is appended to the config.
    async fn with(customers: &str, extra: &str) -> Self {
        let db = TestDb::new().await;
        let sandbox = spawn_unlimited_sandbox(0).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let erp = dir.path().join("erp");
        std::fs::create_dir(&erp).expect("export folder");
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[telemetry]
log_filter = "warn"

[database]
url = "{db_url}"

[stores.test.b2b]
base_url = "{base_url}"
store_hash = "{STORE_HASH}"
token = "{TOKEN}"

[stores.test.budget]
requests_per_minute = 120
burst = 30
max_concurrent = 8

[sources.erp]
kind = "files"
store = "test"

[sources.erp.files]
dir = "{erp}"

[sources.erp.customers]
{customers}

{extra}
"#,
                db_url = db.url,
                base_url = sandbox.base_url(),
                erp = erp.display(),
            ),
        )
        .expect("write config");
        Self {
            db,
            sandbox,
            _dir: dir,
            erp,
            config: config.to_string_lossy().into_owned(),
        }
    }

    async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.args(args)
            .args(["--config", &self.config, "--log-format", "json"])
            .env_remove("RUST_LOG");
        for (k, _) in std::env::vars() {
            if k.starts_with("B2BSYNC") {
                cmd.env_remove(k);
            }
        }
        cmd.output().await.expect("the binary runs")
    }

    /// Runs and expects `code`; returns stdout.
    async fn expect(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args).await;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        assert!(
            !stdout.contains(TOKEN) && !stderr.contains(TOKEN),
            "token leaked"
        );
        stdout
    }

    fn export(&self, name: &str, invoices: &[Value]) {
        write_export(&self.erp, name, invoices);
    }

    fn b2b_invoices(&self) -> Vec<Value> {
        self.sandbox
            .control()
            .invoices(STORE_HASH)
            .expect("the sandbox store")
    }
}

fn write_export(dir: &Path, name: &str, invoices: &[Value]) {
    let text: String = invoices.iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(dir.join(name), text).expect("write export");
    std::fs::write(dir.join(format!("{name}.ready")), "").expect("write marker");
}

/// An ERP invoice of `quantity` widgets at 10.00.
fn invoice(n: u32, customer: &str, quantity: u32) -> Value {
    let total = format!("{}.00", quantity * 10);
    json!({
        "external_id": format!("INV-{n}"),
        "external_customer_id": customer,
        "invoice_number": format!("CLI-{n}"),
        "currency": "USD",
        "total": total,
        "open_balance": total,
        "line_items": [{"sku": "WID", "description": "Widget", "quantity": quantity.to_string(), "unit_price": "10.00"}],
        "updated_at": "2026-11-01T10:00:00Z",
    })
}

const LOOKUP: &str = r#"strategy = "company_extra_field""#;

/// Rows of the engine's tables that a dry run must not touch.
async fn snapshot(db: &TestDb) -> Vec<String> {
    let mut out = Vec::new();
    for query in [
        "SELECT coalesce(string_agg(concat_ws('|', source, external_id, status, fingerprint, attempts, b2b_invoice_id), ',' ORDER BY id), '') FROM invoice_state",
        "SELECT coalesce(string_agg(concat_ws('|', id, state), ',' ORDER BY id), '') FROM ledger",
        "SELECT count(*)::text FROM sync_runs",
        "SELECT coalesce(string_agg(concat_ws('|', name, cursor::text), ','), '') FROM sources",
    ] {
        out.push(
            sqlx::query_scalar::<_, String>(query)
                .fetch_one(&db.pool)
                .await
                .expect("snapshot query"),
        );
    }
    out
}

#[tokio::test]
async fn sync_once_creates_the_invoices_and_prints_a_summary() {
    let w = World::new(LOOKUP).await;
    w.export(
        "a.ndjson",
        &[
            invoice(1, "CUST-00001", 2),
            invoice(2, "CUST-00002", 3),
            invoice(3, "CUST-00003", 1),
        ],
    );
    let stdout = w.expect(&["sync", "--once"], 0).await;
    assert!(
        stdout.starts_with("erp: ok in ")
            && stdout.contains(
                ": 3 created, 0 updated, 0 unchanged, 0 deleted, 0 failed, 0 recovered; "
            ),
        "{stdout}"
    );
    let numbers: Vec<String> = w
        .b2b_invoices()
        .iter()
        .map(|v| v["invoiceNumber"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(numbers.len(), 3, "{numbers:?}");
    for n in ["CLI-1", "CLI-2", "CLI-3"] {
        assert!(numbers.iter().any(|x| x == n), "{n} not in {numbers:?}");
    }

    // --json: the run reports as an array; nothing new to read, nothing done.
    let stdout = w
        .expect(&["sync", "--once", "--json", "--source", "erp"], 0)
        .await;
    let reports: Value = serde_json::from_str(&stdout).expect("JSON output");
    assert_eq!(reports.as_array().map(Vec::len), Some(1), "{stdout}");
    assert_eq!(reports[0]["source"], "erp");
    assert_eq!(reports[0]["outcome"], "ok");
    assert_eq!(reports[0]["counts"]["created"], 0);

    // A source that is not configured is a usage error.
    let out = w.run(&["sync", "--source", "nope"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--source nope: no such source"));
}

#[tokio::test]
async fn plan_json_lists_field_diffs_and_changes_nothing() {
    let w = World::new(LOOKUP).await;
    w.export(
        "a.ndjson",
        &[invoice(1, "CUST-00001", 2), invoice(2, "CUST-00002", 3)],
    );
    w.expect(&["sync", "--once"], 0).await;

    // The ERP changes invoice 1 and adds one for a customer not looked up yet.
    let mut changed = invoice(1, "CUST-00001", 5);
    changed["updated_at"] = json!("2026-11-02T10:00:00Z");
    w.export(
        "b.ndjson",
        &[
            changed,
            invoice(2, "CUST-00002", 3),
            invoice(4, "CUST-00004", 1),
        ],
    );
    let before = snapshot(&w.db).await;
    w.sandbox.control().reset_stats();

    let stdout = w.expect(&["plan", "--json"], 0).await;
    let plans: Value = serde_json::from_str(&stdout).expect("JSON output");
    let plan = &plans[0];
    assert_eq!(plan["source"], "erp");
    assert_eq!(plan["counts"]["update"], 1, "{plan:#}");
    assert_eq!(plan["counts"]["create"], 1, "{plan:#}");
    assert_eq!(plan["counts"]["skip"], 1, "{plan:#}");
    let invoices = plan["invoices"].as_array().expect("invoices");
    // Unchanged invoices are listed only with --all.
    assert_eq!(invoices.len(), 2, "{plan:#}");
    let update = invoices
        .iter()
        .find(|i| i["action"] == "update")
        .expect("an update");
    assert_eq!(update["external_id"], "INV-1");
    let fields: Vec<&str> = update["diff"]
        .as_array()
        .expect("diff")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    for field in ["line_items", "original_balance", "open_balance"] {
        assert!(fields.contains(&field), "{field} not in {fields:?}");
    }
    // Each diff carries its changed leaves by path, as the text form shows them.
    let changes: Vec<&Value> = update["diff"]
        .as_array()
        .expect("diff")
        .iter()
        .flat_map(|d| d["changes"].as_array().into_iter().flatten())
        .collect();
    for (path, old, new) in [
        ("line_items[0].quantity", "\"2\"", "\"5\""),
        ("open_balance", "USD 20.00", "USD 50.00"),
    ] {
        assert!(
            changes
                .iter()
                .any(|c| c["path"] == path && c["old"] == old && c["new"] == new),
            "{path} missing in {changes:?}"
        );
    }

    // Only reads reached B2B (the new customer's lookup), and no table changed.
    let requests = w.sandbox.control().requests();
    assert!(!requests.is_empty(), "the new customer is looked up");
    assert!(
        requests.iter().all(|r| r.method == "GET"),
        "{:?}",
        requests.iter().map(|r| &r.route).collect::<Vec<_>>()
    );
    assert_eq!(snapshot(&w.db).await, before);
    assert!(w.erp.join("b.ndjson").exists(), "a dry run moves no file");

    // The human form shows the changed leaf; --all lists the unchanged invoice too.
    let stdout = w.expect(&["plan", "--all"], 0).await;
    for line in [
        "      line_items[0].quantity: \"2\" -> \"5\"\n",
        "      open_balance: USD 20.00 -> USD 50.00\n",
    ] {
        assert!(stdout.contains(line), "{line:?} missing:\n{stdout}");
    }
    assert!(
        stdout.contains("skip    invoice CLI-2  INV-2 (unchanged)"),
        "{stdout}"
    );
    assert_eq!(snapshot(&w.db).await, before);
}

#[tokio::test]
async fn status_shows_the_runs_and_what_waits() {
    let w = World::new(LOOKUP).await;
    let stdout = w.expect(&["status"], 0).await;
    assert!(stdout.contains("no runs yet"), "{stdout}");

    w.export(
        "a.ndjson",
        &[invoice(1, "CUST-00001", 2), invoice(2, "CUST-00077", 1)],
    );
    w.expect(&["sync", "--once"], 0).await;
    let stdout = w.expect(&["status"], 0).await;
    let header = stdout.lines().next().unwrap_or_default();
    for column in [
        "SOURCE",
        "KIND",
        "WATERMARK",
        "FAILED",
        "DEAD",
        "FLAGGED",
        "IN FLIGHT",
        "PAYMENTS",
        "LAST RUN",
    ] {
        assert!(header.contains(column), "{header}");
    }
    let row = stdout.lines().nth(1).unwrap_or_default();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[..9],
        ["erp", "files", "test", "-", "1", "0", "0", "0", "-"],
        "{stdout}"
    );
    assert!(row.ends_with("partial"), "{row}");
    assert!(stdout.contains("Recent runs"), "{stdout}");
    assert!(stdout.contains("failures list"), "{stdout}");

    let stdout = w.expect(&["status", "--json"], 0).await;
    let status: Value = serde_json::from_str(&stdout).expect("JSON output");
    let erp = &status["sources"][0];
    assert_eq!(erp["source"], "erp");
    assert_eq!(erp["kind"], "files");
    assert_eq!(erp["failed"], 1);
    assert_eq!(erp["in_flight"], 0);
    assert_eq!(erp["payments_pending"], 0);
    assert_eq!(erp["runs"][0]["outcome"], "partial");
    assert_eq!(erp["runs"][0]["counts"]["created"], 1);
    assert_eq!(erp["runs"][0]["counts"]["failed"], 1);
}

#[tokio::test]
async fn failures_list_retry_and_discard() {
    let w = World::new(r#"strategy = "table""#).await;
    let map = w.erp.parent().expect("temp dir").join("map.csv");
    std::fs::write(&map, "external_customer_id,company_id\nCUST-00001,1\n").expect("write map");
    let map = map.to_string_lossy().into_owned();
    w.expect(&["customers", "import", &map, "--source", "erp"], 0)
        .await;
    w.export(
        "a.ndjson",
        &[
            invoice(1, "CUST-00001", 2),
            invoice(2, "CUST-00003", 1),
            invoice(3, "CUST-00004", 4),
        ],
    );
    let stdout = w.expect(&["sync", "--once"], 0).await;
    assert!(stdout.starts_with("erp: partial"), "{stdout}");
    assert!(stdout.contains("2 failed"), "{stdout}");
    assert!(stdout.contains("CUST-00003"), "{stdout}");

    let stdout = w.expect(&["failures", "list"], 0).await;
    for text in [
        "ID",
        "EXTERNAL ID",
        "NEXT ATTEMPT",
        "LAST ERROR",
        "INV-2",
        "INV-3",
        "CUST-00003",
        "customers import",
    ] {
        assert!(stdout.contains(text), "{text} missing:\n{stdout}");
    }
    let rows: Value = serde_json::from_str(
        &w.expect(&["failures", "list", "--source", "erp", "--json"], 0)
            .await,
    )
    .expect("JSON output");
    let rows = rows.as_array().expect("an array");
    assert_eq!(rows.len(), 2, "{rows:?}");
    let id_of = |external: &str| {
        rows.iter()
            .find(|r| r["external_id"] == external)
            .and_then(|r| r["id"].as_i64())
            .expect("a failure row")
    };
    let (second, third) = (id_of("INV-2"), id_of("INV-3"));
    for r in rows {
        assert_eq!(r["status"], "failed");
        assert_eq!(r["attempts"], 1);
        assert!(r["next_attempt_at"].is_string(), "{r}");
    }

    // The operator maps the customer and retries: due now, and the next sync creates it.
    std::fs::write(&map, "external_customer_id,company_id\nCUST-00003,3\n").expect("write map");
    w.expect(&["customers", "import", &map, "--source", "erp"], 0)
        .await;
    let stdout = w
        .expect(&["failures", "retry", &second.to_string()], 0)
        .await;
    assert!(
        stdout.contains(&format!(
            "retry {second} (source erp, INV-2, invoice CLI-2): due now, attempts 1 -> 0;"
        )),
        "{stdout}"
    );
    let stdout = w.expect(&["sync", "--once"], 0).await;
    assert!(stdout.contains("1 created"), "{stdout}");
    assert!(w
        .b2b_invoices()
        .iter()
        .any(|v| v["invoiceNumber"] == "CLI-2"));

    // The other one is set aside; it leaves the list and --all does not bring it back.
    let stdout = w
        .expect(&["failures", "discard", &third.to_string()], 0)
        .await;
    assert!(stdout.contains("failed -> discarded"), "{stdout}");
    let stdout = w.expect(&["failures", "list"], 0).await;
    assert!(
        stdout.contains("no failed, dead-lettered or flagged invoices"),
        "{stdout}"
    );
    let stdout = w.expect(&["failures", "retry", "--all"], 0).await;
    assert!(stdout.contains("nothing to retry"), "{stdout}");

    // Ids that match nothing retryable: exit 1 with a message naming the id.
    for args in [
        vec!["failures", "retry", "999999"],
        vec!["failures", "discard", "999999"],
    ] {
        let out = w.run(&args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("has id 999999"), "{stderr}");
    }
    let out = w.run(&["failures", "discard", &third.to_string()]).await;
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test]
async fn commands_without_a_database_name_the_config_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[stores.test.b2b]\nstore_hash = \"{STORE_HASH}\"\ntoken = \"{TOKEN}\"\n"),
    )
    .expect("write config");
    let config = config.to_string_lossy().into_owned();
    for args in [vec!["status"], vec!["failures", "list"], vec!["sync"]] {
        let out = tokio::process::Command::new(BIN)
            .args(&args)
            .args(["--config", &config])
            .env_remove("RUST_LOG")
            .output()
            .await
            .expect("the binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("database.url: missing") || stderr.contains("sources: none configured"),
            "{args:?}: {stderr}"
        );
    }
}

#[tokio::test]
async fn without_auto_migrate_an_old_schema_is_refused_until_migrate() {
    let w = World::with(LOOKUP, "[engine]\nauto_migrate = false").await;
    // An empty database, as before the first `migrate`.
    sqlx::query("DROP SCHEMA public CASCADE")
        .execute(&w.db.pool)
        .await
        .expect("drop schema");
    sqlx::query("CREATE SCHEMA public")
        .execute(&w.db.pool)
        .await
        .expect("create schema");
    let out = w.run(&["status"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the schema is not current")
            && stderr.contains("engine.auto_migrate is false")
            && stderr.contains("b2b-invoice-sync migrate"),
        "{stderr}"
    );
    assert!(w
        .expect(&["migrate"], 0)
        .await
        .contains("migrations applied"));
    assert!(w.expect(&["status"], 0).await.contains("no runs yet"));
}

/// `payments list [--pending]` and `payments retry ID`, with the files source's outbox.
#[tokio::test]
async fn payments_list_and_retry_follow_a_write_back_to_the_outbox() {
    let w = World::with(
        LOOKUP,
        "[sources.erp.payments]\nenabled = true\nwrite_back = true\n",
    )
    .await;
    w.export("a.ndjson", &[invoice(1, "CUST-00001", 10)]);
    w.expect(&["sync", "--once"], 0).await;
    assert_eq!(
        w.expect(&["payments", "list"], 0).await.trim(),
        "no payments recorded"
    );
    let id = w.b2b_invoices()[0]["id"].as_u64().expect("B2B id");
    w.sandbox
        .control()
        .pay_invoice(STORE_HASH, id, "40".parse().expect("amount"))
        .expect("buyer pays");
    // The outbox cannot be written yet: a file stands where its folder goes.
    let outbox = w.erp.join("outbox");
    std::fs::write(&outbox, "not a folder").expect("blocker");
    let stdout = w.expect(&["sync", "--once"], 0).await;
    assert!(
        stdout.contains("payments: 1 new in B2B, 0 written back to the ERP, 1 write-back failed"),
        "{stdout}"
    );
    let pending: Vec<Value> = serde_json::from_str(
        &w.expect(&["payments", "list", "--pending", "--json"], 0)
            .await,
    )
    .expect("JSON");
    assert_eq!(pending.len(), 1, "{pending:#?}");
    assert_eq!(pending[0]["write_state"], json!("failed"));
    assert_eq!(pending[0]["external_id"], json!("INV-1"));
    assert_eq!(pending[0]["amount"], json!("40.00"));
    let event = pending[0]["id"].as_i64().expect("event id");
    let table = w.expect(&["payments", "list", "--pending"], 0).await;
    assert!(
        table.contains("INV-1") && table.contains("failed"),
        "{table}"
    );

    // Fixed: retried at once rather than after the backoff.
    std::fs::remove_file(&outbox).expect("blocker removed");
    let retried = w
        .expect(&["payments", "retry", &event.to_string()], 0)
        .await;
    assert!(retried.contains("failed -> pending"), "{retried}");
    let stdout = w.expect(&["sync", "--once"], 0).await;
    assert!(stdout.contains("1 written back to the ERP"), "{stdout}");
    let file = outbox.join(format!("payments-{event}.ndjson"));
    let line: Value =
        serde_json::from_str(std::fs::read_to_string(&file).expect("outbox file").trim())
            .expect("one JSON line");
    assert_eq!(line["event_id"], json!(event));
    assert_eq!(line["external_id"], json!("INV-1"));
    assert_eq!(line["target_balance"], json!("60.00"));
    assert_eq!(line["kind"], json!("payment"));
    // Written, but the ERP's export does not show it yet: still pending in the balance sense.
    let pending: Vec<Value> = serde_json::from_str(
        &w.expect(&["payments", "list", "--pending", "--json"], 0)
            .await,
    )
    .expect("JSON");
    assert_eq!(pending[0]["write_state"], json!("written"));
    // A written payment cannot be retried; an unknown id is named.
    let out = w.run(&["payments", "retry", &event.to_string()]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already written"));
    let out = w.run(&["payments", "retry", "999999"]).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("no payment has id 999999"));

    // The ERP imports it: its next export shows balance 60; nothing is pending any more.
    let mut next = invoice(1, "CUST-00001", 10);
    next["open_balance"] = json!("60.00");
    next["updated_at"] = json!("2026-11-02T10:00:00Z");
    w.export("b.ndjson", &[next]);
    w.expect(&["sync", "--once"], 0).await;
    let stdout = w.expect(&["payments", "list", "--pending"], 0).await;
    assert!(stdout.contains("no payments waiting"), "{stdout}");
    let open = &w.b2b_invoices()[0]["openBalance"]["value"];
    assert_eq!(
        open.as_str().map(|v| v.parse::<f64>().ok()),
        Some(Some(60.0))
    );
}

/// Defect 7 (issue 11): `sync` said "`failures list` shows them" and the export format says
/// refused rows are recorded as failures, but `failures list` and `status` showed nothing.
/// Now every refused record is listed (source, file, line, external id, field, reason) by
/// `failures list`, its --json and `status`, until the ERP sends the invoice in a form that can
/// be taken; a record without a readable id stays until an operator dismisses it.
#[tokio::test]
async fn refused_records_are_listed_by_failures_and_status_until_the_erp_sends_them_right() {
    let w = World::new(LOOKUP).await;
    let mut bad = invoice(2, "CUST-00002", 1);
    bad["currency"] = json!("USX");
    let text = format!("{}\n{bad}\nnot json at all\n", invoice(1, "CUST-00001", 2));
    std::fs::write(w.erp.join("a.ndjson"), text).expect("write export");
    std::fs::write(w.erp.join("a.ndjson.ready"), "").expect("write marker");
    let stdout = w.expect(&["sync", "--once"], 0).await;
    assert!(stdout.starts_with("erp: partial"), "{stdout}");
    assert!(stdout.contains("failures list"), "{stdout}");

    let stdout = w.expect(&["failures", "list"], 0).await;
    for text in [
        "Refused ERP records",
        "FILE",
        "LINE",
        "INV-2",
        "a.ndjson",
        "currency",
        "`USX` is not an ISO 4217 currency code",
        "not valid JSON",
    ] {
        assert!(stdout.contains(text), "{text} missing:\n{stdout}");
    }
    let rows: Value = serde_json::from_str(&w.expect(&["failures", "list", "--json"], 0).await)
        .expect("JSON output");
    let refused: Vec<&Value> = rows
        .as_array()
        .expect("an array")
        .iter()
        .filter(|r| r["status"] == "refused")
        .collect();
    assert_eq!(refused.len(), 2, "{rows}");
    let inv2 = refused
        .iter()
        .find(|r| r["external_id"] == "INV-2")
        .expect("INV-2 is listed");
    assert_eq!(inv2["source"], "erp");
    assert_eq!(inv2["file"], "a.ndjson");
    assert_eq!(inv2["line"], 2);
    assert_eq!(inv2["field"], "currency");
    assert!(
        inv2["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("USX")),
        "{inv2}"
    );
    let garbage = refused
        .iter()
        .find(|r| r["external_id"].is_null())
        .expect("the line without an id is listed");
    assert_eq!(garbage["line"], 3);

    let stdout = w.expect(&["status"], 0).await;
    assert!(
        stdout
            .lines()
            .next()
            .unwrap_or_default()
            .contains("REFUSED"),
        "{stdout}"
    );
    assert!(stdout.contains("2 ERP record(s) refused"), "{stdout}");
    let status: Value =
        serde_json::from_str(&w.expect(&["status", "--json"], 0).await).expect("JSON output");
    assert_eq!(status["sources"][0]["refused"], 2, "{status}");

    // The ERP sends INV-2 again, right: it syncs and leaves the list.
    w.export("b.ndjson", &[invoice(2, "CUST-00002", 1)]);
    let stdout = w.expect(&["sync", "--once"], 0).await;
    assert!(stdout.contains("1 created"), "{stdout}");
    let rows: Value = serde_json::from_str(&w.expect(&["failures", "list", "--json"], 0).await)
        .expect("JSON output");
    let left: Vec<&Value> = rows.as_array().expect("an array").iter().collect();
    assert_eq!(left.len(), 1, "{rows}");
    assert!(left[0]["external_id"].is_null(), "{rows}");

    // The line without an id: an operator dismisses it.
    let id = left[0]["id"].as_i64().expect("an id").to_string();
    let stdout = w.expect(&["failures", "dismiss", &id], 0).await;
    assert!(stdout.contains("a.ndjson line 3"), "{stdout}");
    let stdout = w.expect(&["failures", "list"], 0).await;
    assert!(stdout.contains("no failed"), "{stdout}");
    let status: Value =
        serde_json::from_str(&w.expect(&["status", "--json"], 0).await).expect("JSON output");
    assert_eq!(status["sources"][0]["refused"], 0, "{status}");
}

/// A JSON object whose keys are all distinct (serde_json keeps the last of duplicates).
struct UniqueKeys(serde_json::Map<String, Value>);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = UniqueKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<UniqueKeys, A::Error> {
                let mut out = serde_json::Map::new();
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    if out.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!("duplicate key {key}")));
                    }
                    out.insert(key, value);
                }
                Ok(UniqueKeys(out))
            }
        }
        d.deserialize_map(Keys)
    }
}

/// Every stderr line of a JSON run: one object with unique keys (panics naming the line).
fn json_lines(stderr: &str) -> Vec<serde_json::Map<String, Value>> {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<UniqueKeys>(l)
                .unwrap_or_else(|e| panic!("not one JSON object with unique keys ({e}): {l}"))
                .0
        })
        .collect()
}

#[tokio::test]
async fn a_json_run_logs_flat_lines_with_unique_keys_and_run_id_at_the_top_level() {
    let w = World::new(LOOKUP).await;
    w.export(
        "a.ndjson",
        &[invoice(1, "CUST-00001", 2), invoice(2, "CUST-00077", 1)],
    );
    let run = |args: &'static [&'static str]| {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.args(args)
            .args(["--config", &w.config, "--log-format", "json"])
            .env("RUST_LOG", "info");
        for (k, _) in std::env::vars() {
            if k.starts_with("B2BSYNC") {
                cmd.env_remove(k);
            }
        }
        async move { cmd.output().await.expect("the binary runs") }
    };
    // Twice: the second start finds the migrations table there (PostgreSQL's notice).
    for round in 1..=2 {
        let out = run(&["sync", "--once"]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let lines = json_lines(&stderr);
        for line in &lines {
            for key in ["timestamp", "level", "target", "message"] {
                assert!(line.contains_key(key), "{key} missing: {line:?}");
            }
            assert!(
                !line.contains_key("span") && !line.contains_key("spans"),
                "fields are flat: {line:?}"
            );
            assert!(
                !line["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("_sqlx_migrations"),
                "the migrations notice is not INFO: {line:?}"
            );
        }
        let finished: Vec<_> = lines
            .iter()
            .filter(|l| l["message"] == "sync run finished")
            .collect();
        assert_eq!(finished.len(), 1, "{stderr}");
        for line in lines.iter().filter(|l| {
            l["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("b2b_invoice_sync::sync"))
        }) {
            assert!(
                line["run_id"].is_string(),
                "run_id at the top level: {line:?}"
            );
            assert_eq!(line["source"], "erp", "{line:?}");
        }
        if round == 1 {
            // One invoice created, one waiting for its company: a partial cycle is a WARN.
            assert_eq!(finished[0]["level"], "WARN", "{stderr}");
            let actions: Vec<_> = lines
                .iter()
                .filter(|l| l["message"] == "invoice action")
                .collect();
            assert!(!actions.is_empty(), "{stderr}");
            for a in actions {
                assert!(a["external_id"].is_string(), "{a:?}");
                assert!(a["run_id"].is_string(), "{a:?}");
                assert!(a["budget_wait_ms"].is_u64(), "{a:?}");
            }
        }
    }
    // A failed command: its error is a JSON line too, not a plain `error: ...`.
    let out = run(&["sync", "--source", "nope"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines = json_lines(&stderr);
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "command failed" && l["level"] == "ERROR"),
        "{stderr}"
    );
}

#[tokio::test]
async fn resync_dry_run_lists_and_changes_nothing_then_the_next_sync_re_pushes_those() {
    let w = World::new(LOOKUP).await;
    w.export(
        "a.ndjson",
        &[
            invoice(1, "CUST-00001", 2),
            invoice(2, "CUST-00002", 3),
            invoice(3, "CUST-00003", 1),
        ],
    );
    w.expect(&["sync", "--once"], 0).await;

    let before = snapshot(&w.db).await;
    w.sandbox.control().reset_stats();
    let stdout = w
        .expect(
            &[
                "resync",
                "--source",
                "erp",
                "--invoice",
                "INV-1,INV-2",
                "--dry-run",
            ],
            0,
        )
        .await;
    assert!(
        stdout
            .starts_with("erp: dry run, nothing changed: the next cycle would re-push 2 invoices"),
        "{stdout}"
    );
    assert!(
        stdout.contains("INV-1") && stdout.contains("INV-2") && !stdout.contains("INV-3"),
        "{stdout}"
    );
    assert!(
        stdout.contains("drop the exports holding these invoices again"),
        "{stdout}"
    );
    assert_eq!(snapshot(&w.db).await, before, "a dry run changes nothing");
    assert_eq!(
        w.sandbox.control().stats().total,
        0,
        "a dry run sends nothing"
    );
    // Exactly one of --all, --since, --invoice.
    w.expect(&["resync", "--source", "erp"], 2).await;
    w.expect(
        &["resync", "--source", "erp", "--all", "--invoice", "INV-1"],
        2,
    )
    .await;

    let stdout = w
        .expect(
            &[
                "resync",
                "--source",
                "erp",
                "--invoice",
                "INV-1",
                "--invoice",
                "INV-2",
            ],
            0,
        )
        .await;
    assert!(
        stdout.starts_with("erp: the next cycle re-pushes 2 invoices"),
        "{stdout}"
    );
    // The ERP sends the same three again, with a new one.
    w.export(
        "b.ndjson",
        &[
            invoice(1, "CUST-00001", 2),
            invoice(2, "CUST-00002", 3),
            invoice(3, "CUST-00003", 1),
            invoice(4, "CUST-00004", 5),
        ],
    );
    w.sandbox.control().reset_stats();
    let stdout = w.expect(&["sync", "--once"], 0).await;
    assert!(
        stdout.contains(": 1 created, 2 updated, 1 unchanged, 0 deleted, 0 failed"),
        "{stdout}"
    );
    assert_eq!(
        w.sandbox
            .control()
            .stats()
            .route_total("PUT /ip/invoices/{id}"),
        2,
        "exactly the two resynced invoices are PUT"
    );
}

#[tokio::test]
async fn reconcile_refuses_a_files_source_with_exit_2() {
    let w = World::new(LOOKUP).await;
    let out = w
        .run(&["reconcile", "--source", "erp", "--format", "json"])
        .await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("a files source cannot be reconciled"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}
