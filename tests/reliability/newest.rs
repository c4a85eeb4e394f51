//! B2B always ends at the ERP's newest version of every invoice (issue #11, defects 1 and 2):
//! an older export read again after a crash, an old export dropped again, and a newer version
//! that arrives while an older create's outcome is unknown.

use std::process::Stdio;
use std::time::{Duration, Instant};

use b2b_invoice_sync::domain::SourceInvoice;
use b2b_invoice_sync::sandbox::b2b::{B2bSandboxConfig, Fault, FaultRule};

use crate::erp::{ndjson_invoice, Erp};
use crate::world::{seed_for, World, SOURCE, STORE, STORE_HASH, TOKEN};

const BIN: &str = env!("CARGO_BIN_EXE_b2b-invoice-sync");

/// The row's world as an operator would configure it, with the export folder as the source.
pub(crate) fn files_config_toml(world: &World, dir: &std::path::Path) -> String {
    let customers = (1..=10)
        .map(|i| format!("\"CUST-{i:05}\" = \"{i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[database]\nurl = \"{db}\"\nmax_connections = 4\n\n\
         [stores.{STORE}.b2b]\nbase_url = \"{b2b}\"\nstore_hash = \"{STORE_HASH}\"\ntoken = \"{TOKEN}\"\n\
         request_timeout_secs = 5\n\
         [stores.{STORE}.budget]\nrequests_per_minute = 120\nburst = 30\nmax_concurrent = 4\n\
         default_retry_after_secs = 1\n\
         [stores.{STORE}.retry]\nmax_attempts = 4\nbase_delay_ms = 5\nmax_delay_ms = 50\n\n\
         [sources.{SOURCE}]\nkind = \"files\"\nstore = \"{STORE}\"\n\
         [sources.{SOURCE}.files]\ndir = \"{dir}\"\nready = \"atomic_rename\"\npage_size = 25\n\
         [sources.{SOURCE}.failures]\nmax_attempts = 1000\nbase_delay_secs = 1\nmax_delay_secs = 1\n\
         [sources.{SOURCE}.customers]\nstrategy = \"static\"\nmap = {{ {customers} }}\n",
        db = world.db.url,
        b2b = world.b2b.base_url(),
        dir = dir.display(),
    )
}

/// A second export of `invoices`, each changed (first line's quantity and the open balance),
/// written as one file.
fn changed_export(invoices: &[SourceInvoice], k: u64) -> Vec<String> {
    invoices
        .iter()
        .map(|inv| {
            let mut raw = inv.to_raw();
            raw.line_items[0].quantity = Some(format!("{}", 7 + k % 5));
            raw.line_items[0].line_total = None;
            raw.open_balance = Some("1".to_owned());
            serde_json::to_string(&raw).expect("JSON")
        })
        .collect()
}

/// B2B answered this many PUTs so far.
fn puts(world: &World) -> usize {
    world
        .b2b
        .control()
        .requests()
        .iter()
        .filter(|r| r.method == "PUT")
        .count()
}

#[tokio::test]
async fn an_older_export_read_again_after_a_kill_never_replaces_a_newer_version() {
    let row = "stale_replay_after_kill";
    let seed = seed_for(row);
    let n = 40;
    // Slow answers, so the kill lands between the update batch's PUTs.
    let b2b = B2bSandboxConfig {
        latency: Duration::from_millis(20),
        ..B2bSandboxConfig::default()
    };
    let mut world = World::with_b2b(row, seed, Erp::files(), b2b).await;
    let v1: Vec<String> = (0..n).map(ndjson_invoice).collect();
    let v1_file = world.erp.folder().write(&v1);
    let first: Vec<SourceInvoice> = world
        .erp
        .expected(SOURCE)
        .await
        .live
        .into_values()
        .collect();
    let v2_file = world.erp.folder().write(&changed_export(&first, 1));
    let name = |path: &std::path::Path| {
        path.file_name()
            .expect("a file name")
            .to_string_lossy()
            .into_owned()
    };
    let (v1_name, v2_name) = (name(&v1_file), name(&v2_file));

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let folder = world.erp.folder().dir.path().to_owned();
    std::fs::write(&config, files_config_toml(&world, &folder)).expect("write config");
    let log = dir.path().join("killed.log");
    let mut child = tokio::process::Command::new(BIN)
        .args(["sync", "--once", "--config"])
        .arg(&config)
        .args(["--log-format", "json"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    // One cycle reads both exports: 40 creates (v1), then v2's update batch. Killed after
    // 15 of v2's PUTs.
    let deadline = Instant::now() + Duration::from_secs(60);
    while puts(&world) < 15 && Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    child.start_kill().expect("kill");
    child.wait().await.expect("wait");
    let landed = puts(&world);
    eprintln!("fault row {row}: killed after {landed} PUTs");
    assert!(
        (15..n).contains(&landed),
        "the kill must land inside v2's update batch ({landed} PUTs): {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // Progress is durable per file: v1 was settled (its creates done, the page that ends it
    // flushed) before v2's batch began, so it is in processed/ although the cycle never ended,
    // and only v2, whose batch the kill cut short, still waits in the folder.
    let folder_dir = world.erp.folder().dir.path().to_owned();
    let waiting = world.erp.folder().waiting();
    assert!(
        folder_dir.join("processed").join(&v1_name).is_file() && !waiting.contains(&v1_name),
        "the export settled before the kill is in processed/ (waiting: {waiting:?}): {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        waiting.contains(&v2_name),
        "the export the kill cut short is read again (waiting: {waiting:?})"
    );

    // A clean run reads v2 again (not v1) and settles it; whatever the folder hands out, no
    // invoice goes back to v1.
    let engine = world.engine();
    world.until_quiet(&engine, 6).await;
    assert!(
        world.erp.folder().waiting().is_empty(),
        "every export is settled: {:?}",
        world.erp.folder().waiting()
    );
    world.finish().await;
}

#[tokio::test]
async fn an_old_export_dropped_again_never_replaces_a_newer_version() {
    let row = "old_export_dropped_again";
    let seed = seed_for(row);
    let n = 20;
    let mut world = World::new(row, seed, Erp::files()).await;
    let v1: Vec<String> = (0..n).map(ndjson_invoice).collect();
    world.erp.folder().write(&v1);
    let engine = world.engine();
    world.until_quiet(&engine, 4).await;
    let first: Vec<SourceInvoice> = world
        .erp
        .expected(SOURCE)
        .await
        .live
        .into_values()
        .collect();
    world.erp.folder().write(&changed_export(&first, 2));
    world.until_quiet(&engine, 4).await;

    // An operator drops the first export into the folder again (a fresh copy, a fresh mtime).
    let dropped = world
        .erp
        .folder()
        .dir
        .path()
        .join("export-0001-again.ndjson");
    std::fs::write(&dropped, format!("{}\n", v1.join("\n"))).expect("drop the old export");
    let report = world.cycle(&engine).await;
    assert_eq!(
        report.counts.updated, 0,
        "an old export must not be pushed over the newer one: {report:#?}"
    );
    assert!(
        report
            .notices
            .iter()
            .any(|n| n.contains("export-0001-again.ndjson") && n.contains("already imported")),
        "the re-dropped export is reported: {report:#?}"
    );
    // The expected state reads the archive (v1, then v2): the newest version of each invoice.
    world.finish().await;
}

#[tokio::test]
async fn records_older_than_what_b2b_holds_are_refused_and_reported() {
    let row = "older_records_refused";
    let seed = seed_for(row);
    let mut world = World::new(row, seed, Erp::files()).await;
    let stamped = |i: usize, at: &str, qty: &str| {
        let mut v: serde_json::Value = serde_json::from_str(&ndjson_invoice(i)).expect("JSON");
        v["updated_at"] = serde_json::json!(at);
        v["line_items"][0]["quantity"] = serde_json::json!(qty);
        v["line_items"][0]["line_total"] = serde_json::Value::Null;
        v.to_string()
    };
    world.erp.folder().write(&[
        stamped(1, "2026-11-02T10:00:00Z", "5"),
        stamped(2, "2026-11-02T10:00:00Z", "5"),
    ]);
    let engine = world.engine();
    world.until_quiet(&engine, 4).await;
    // A later file carries an older version of invoice 1 (stamped earlier by the ERP) and a
    // newer one of invoice 2.
    world.erp.folder().write(&[
        stamped(1, "2026-11-01T10:00:00Z", "9"),
        stamped(2, "2026-11-03T10:00:00Z", "9"),
    ]);
    let report = world.cycle(&engine).await;
    assert_eq!(report.counts.updated, 1, "{report:#?}");
    assert_eq!(report.counts.stale, 1, "{report:#?}");
    assert!(
        report
            .notices
            .iter()
            .any(|n| n.contains("EXP-000001") && n.contains("older than")),
        "the stale record is named: {report:#?}"
    );
    let held = world.b2b_by_external_id();
    assert_eq!(
        held["EXP-000001"]["details"]["details"]["lineItems"][0]["quantity"], "5",
        "B2B keeps the newer version of invoice 1"
    );
    assert_eq!(
        held["EXP-000002"]["details"]["details"]["lineItems"][0]["quantity"], "9",
        "invoice 2 moves to its newer version"
    );
}

#[tokio::test]
async fn a_newer_version_that_arrives_while_a_create_is_unknown_reaches_b2b() {
    let row = "newer_version_during_unknown_create";
    let seed = seed_for(row);
    let n = 5;
    let mut world = World::new(row, seed, Erp::files()).await;
    let v1: Vec<String> = (0..n).map(ndjson_invoice).collect();
    world.erp.folder().write(&v1);
    let control = world.b2b.control();
    // Every create is applied, and its answer lost.
    control.push_fault(
        FaultRule::once(Fault::ApplyThen500)
            .on_method("POST")
            .times(n as u32),
    );
    let engine = world.engine();
    let first = world.cycle(&engine).await;
    assert_eq!(first.counts.created, 0, "{first:#?}");
    assert_eq!(control.invoices(STORE_HASH).expect("store").len(), n);

    // The ERP's next export changes them all, while B2B cannot be asked about the creates.
    let v1_read: Vec<SourceInvoice> = world
        .erp
        .expected(SOURCE)
        .await
        .live
        .into_values()
        .collect();
    world.erp.folder().write(&changed_export(&v1_read, 3));
    control.push_fault(
        FaultRule::once(Fault::Status500)
            .on_method("GET")
            .times(1000),
    );
    let second = world.cycle(&engine).await;
    control.clear_faults();
    assert_eq!(
        second.counts.created + second.counts.updated + second.counts.recovered,
        0,
        "{second:#?}"
    );

    // B2B answers again: the creates are adopted, and the newer version is pushed over them.
    world.until_quiet(&engine, 5).await;
    world.finish().await;
}
