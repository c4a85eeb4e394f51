//! `reconcile` (issue 16): 5 000 ERP invoices synced, then ten differences of every kind seeded
//! in the sandboxes; the report names exactly those, with the right kind, diff and totals, reads
//! B2B in ceil(n/250) requests, validates against docs/reconcile.schema.json, and `--repair`
//! followed by a sync leaves only what a person must decide.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::{json, Value};

use b2b_invoice_sync::config::PaymentSettings;
use b2b_invoice_sync::reconcile::{read, render, Kind, Remedy, Report};
use b2b_invoice_sync::sandbox::b2b::PersonEdit;

use crate::engine_world::{World, SOURCE};
use crate::helpers::STORE_HASH;

const INVOICES: usize = 5_000;
const EACH: usize = 10;

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).expect("decimal")
}

fn open_of(inv: &Value) -> Decimal {
    dec(inv["openBalance"]["value"].as_str().expect("openBalance"))
}

/// The ERP ids of every difference of `kind`.
fn ids_of(report: &Report, kind: Kind) -> BTreeSet<String> {
    report
        .differences
        .iter()
        .filter(|d| d.kind == kind)
        .map(|d| d.external_id.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_reports_exactly_the_seeded_differences_and_repair_leaves_only_a_persons_work() {
    let mut w = World::new(INVOICES).await;
    w.source_mut().payments = PaymentSettings {
        enabled: true,
        ..PaymentSettings::default()
    };
    w.settings
        .stores
        .get_mut("acme")
        .expect("store")
        .b2b
        .page_size = 250;
    let engine = w.engine();
    w.sync_until_quiet(&engine, 4).await;
    let clean = read::reconcile(&engine, SOURCE, false)
        .await
        .expect("reconcile runs");
    assert!(
        clean.differences.is_empty(),
        "freshly synced: {:#?}",
        &clean.differences[..clean.differences.len().min(5)]
    );
    let synced = clean.summary.erp_invoices;
    assert!(synced >= 4_900, "{:?}", clean.summary);

    // Invoices with something open to pay or edit, in a stable order, ten per kind.
    let by_ext = w.b2b_by_external_id();
    let mut candidates: Vec<(String, u64, Value)> = by_ext
        .iter()
        .filter(|(_, inv)| open_of(inv) > dec("10"))
        .map(|(ext, inv)| (ext.clone(), inv["id"].as_u64().expect("id"), inv.clone()))
        .collect();
    candidates.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(candidates.len() >= 6 * EACH);
    let mut groups = candidates.chunks(EACH);
    let mut next = || groups.next().expect("enough invoices").to_vec();
    let (paid, stale, drifted, unexplained, orphan_from, duplicated) =
        (next(), next(), next(), next(), next(), next());
    let (drift_type, drift_lines) = drifted.split_at(EACH / 2);
    let b2b = w.b2b.control();
    let ids = |group: &[(String, u64, Value)]| -> BTreeSet<String> {
        group.iter().map(|(ext, _, _)| ext.clone()).collect()
    };

    // Explained: a buyer pays 1.00 in B2B; a cycle sees the payment, the ERP has not taken it in.
    for (_, id, _) in &paid {
        b2b.pay_invoice(STORE_HASH, *id, dec("1.00")).expect("paid");
    }
    w.sync_until_quiet(&engine, 4).await;

    // Missing: the ERP creates ten invoices no cycle has read yet.
    let missing: BTreeSet<String> = (0..EACH)
        .map(|_| w.erp.control().create_invoice())
        .collect();
    // Stale state: a person deletes ten synced invoices in B2B.
    for (_, id, _) in &stale {
        b2b.delete_invoice_as_person(STORE_HASH, *id)
            .expect("deleted");
    }
    // Drift: a person edits owned fields (the type; a line's description in details).
    for (_, id, _) in drift_type {
        let edit = PersonEdit {
            kind: Some("Edited by a person".to_owned()),
            ..PersonEdit::default()
        };
        b2b.edit_invoice_as_person(STORE_HASH, *id, &edit)
            .expect("edited");
    }
    for (_, id, inv) in drift_lines {
        let mut lines = inv["details"]["details"]["lineItems"].clone();
        lines[0]["description"] = json!("changed by a person");
        b2b.edit_details(STORE_HASH, *id, &json!({"details": {"lineItems": lines}}))
            .expect("edited");
    }
    // Unexplained balance: a person lowers the open balance by 5.00 with no payment.
    for (_, id, inv) in &unexplained {
        let edit = PersonEdit {
            open_balance: Some(open_of(inv) - dec("5")),
            ..PersonEdit::default()
        };
        b2b.edit_invoice_as_person(STORE_HASH, *id, &edit)
            .expect("edited");
    }
    // Orphans: invoices keyed in by hand under ERP ids the ERP never had.
    let mut orphan_open = Decimal::ZERO;
    let mut orphans = BTreeSet::new();
    let mut person_made = Vec::new();
    for (i, (_, id, inv)) in orphan_from.iter().enumerate() {
        let ext = format!("HAND-{i}");
        let copy = b2b
            .copy_invoice_as_person(STORE_HASH, *id, &format!("HAND-N-{i}"), Some(&ext))
            .expect("copied");
        orphan_open += open_of(inv);
        orphans.insert(ext);
        person_made.push(copy);
    }
    // Duplicates: the same ERP id keyed in twice.
    let mut duplicate_open = Decimal::ZERO;
    for (i, (_, id, inv)) in duplicated.iter().enumerate() {
        let copy = b2b
            .copy_invoice_as_person(STORE_HASH, *id, &format!("DUP-N-{i}"), None)
            .expect("copied");
        duplicate_open += open_of(inv);
        person_made.push(copy);
    }

    let erp_before = w.erp.control().stats().total;
    b2b.reset_stats();
    let report = read::reconcile(&engine, SOURCE, false)
        .await
        .expect("reconcile runs");
    let b2b_held = w.b2b_invoices().len() as u64;
    assert_eq!(
        w.b2b_total_calls(),
        b2b_held.div_ceil(250),
        "one GET per 250 B2B invoices"
    );
    assert_eq!(
        w.b2b_calls("GET /ip/invoices"),
        b2b_held.div_ceil(250),
        "nothing but the bulk list"
    );
    let erp_pages = w.erp.control().stats().total - erp_before;
    let erp_held = synced + EACH as u64;
    assert!(
        erp_pages >= erp_held.div_ceil(100) && erp_pages <= erp_held.div_ceil(100) + 2,
        "ERP pages: {erp_pages}"
    );

    let s = &report.summary;
    let counts: BTreeMap<Kind, u64> = [
        (Kind::Missing, 10),
        (Kind::Orphan, 10),
        (Kind::Duplicate, 10),
        (Kind::Drift, 10),
        (Kind::Balance, 20),
        (Kind::StaleState, 10),
    ]
    .into_iter()
    .collect();
    assert_eq!(s.counts, counts, "{}", render::table(&report));
    assert_eq!(ids_of(&report, Kind::Missing), missing);
    assert_eq!(ids_of(&report, Kind::Orphan), orphans);
    assert_eq!(ids_of(&report, Kind::Duplicate), ids(&duplicated));
    assert_eq!(ids_of(&report, Kind::StaleState), ids(&stale));
    assert_eq!(ids_of(&report, Kind::Drift), ids(&drifted));
    let balances: BTreeSet<String> = ids(&paid).union(&ids(&unexplained)).cloned().collect();
    assert_eq!(ids_of(&report, Kind::Balance), balances);
    for d in report.differences.iter().filter(|d| d.kind == Kind::Drift) {
        assert_eq!(d.diff.len(), 1, "{d:?}");
        let change = &d.diff[0];
        if ids(drift_type).contains(&d.external_id) {
            assert_eq!(change.path, "type");
            assert_eq!(change.b2b, json!("Edited by a person"));
        } else {
            assert_eq!(change.path, "line_items[0].description");
            assert_eq!(change.b2b, json!("changed by a person"));
            assert_ne!(change.erp, change.b2b);
        }
    }
    for d in report
        .differences
        .iter()
        .filter(|d| d.kind == Kind::Balance)
    {
        if ids(&paid).contains(&d.external_id) {
            assert!(!d.unexplained, "{d:?}");
            assert_eq!(d.explained_amount, Some(dec("1")));
            assert_eq!(d.remedy, Remedy::None);
        } else {
            assert!(d.unexplained, "{d:?}");
            assert_eq!(d.unexplained_amount, Some(dec("5")));
            assert_eq!(d.explained_amount, Some(dec("0")));
        }
    }
    // Missing, drift, stale state and the unexplained balances; orphans and duplicates are for
    // a person.
    assert_eq!(s.unexplained, 40);
    assert_eq!(s.for_a_person, 20);
    // Totals per currency (the ERP invoices come in several).
    let code = |inv: &Value| {
        inv["openBalance"]["code"]
            .as_str()
            .expect("code")
            .to_owned()
    };
    let mut want: BTreeMap<String, [Decimal; 5]> = BTreeMap::new();
    let mut add = |c: String, i: usize, v: Decimal| want.entry(c).or_default()[i] += v;
    paid.iter()
        .for_each(|(_, _, inv)| add(code(inv), 0, dec("1")));
    unexplained
        .iter()
        .for_each(|(_, _, inv)| add(code(inv), 1, dec("5")));
    orphan_from
        .iter()
        .for_each(|(_, _, inv)| add(code(inv), 2, open_of(inv)));
    duplicated
        .iter()
        .for_each(|(_, _, inv)| add(code(inv), 3, open_of(inv)));
    stale
        .iter()
        .for_each(|(_, _, inv)| add(code(inv), 4, open_of(inv)));
    for ext in &missing {
        let d = report
            .differences
            .iter()
            .find(|d| &d.external_id == ext)
            .expect("missing entry");
        let balance = w.erp.control().amounts(ext).expect("ERP invoice").balance;
        assert_eq!(d.erp_open_balance, Some(balance));
        add(d.currency.clone().expect("currency"), 4, balance);
    }
    let got: BTreeMap<String, [Decimal; 5]> = s
        .totals
        .iter()
        .map(|(c, t)| {
            let t = [
                t.balance_explained,
                t.balance_unexplained,
                t.orphan_open,
                t.duplicate_open,
                t.missing_open,
            ];
            (c.clone(), t)
        })
        .filter(|(_, t)| t.iter().any(|v| !v.is_zero()))
        .collect();
    let want: BTreeMap<String, [Decimal; 5]> = want
        .into_iter()
        .map(|(c, t)| (c, t.map(|v| v.normalize())))
        .collect();
    let got: BTreeMap<String, [Decimal; 5]> = got
        .into_iter()
        .map(|(c, t)| (c, t.map(|v| v.normalize())))
        .collect();
    assert_eq!(got, want);
    assert_eq!(s.b2b_invoices, b2b_held);

    // The JSON validates against the documented schema.
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reconcile.schema.json"),
        )
        .expect("schema"),
    )
    .expect("schema is JSON");
    let doc: Value = serde_json::from_str(&render::json(&report).expect("json")).expect("JSON");
    let problems = crate::schema_check::validate(&schema, &doc);
    assert!(problems.is_empty(), "{problems:#?}");

    // --repair queues missing, drifted, stale and unexplained balances; a sync fixes them.
    let repaired = read::reconcile(&engine, SOURCE, true)
        .await
        .expect("repair runs");
    assert_eq!(repaired.summary.repaired, Some(40));
    assert_eq!(
        w.b2b_total_calls(),
        2 * b2b_held.div_ceil(250),
        "repair sends B2B nothing but its reads"
    );
    w.sync_until_quiet(&engine, 4).await;
    let after = read::reconcile(&engine, SOURCE, false)
        .await
        .expect("reconcile runs");
    let left: BTreeMap<Kind, u64> = after
        .summary
        .counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| (*k, *n))
        .collect();
    assert_eq!(
        left,
        [
            (Kind::Orphan, 10),
            (Kind::Duplicate, 10),
            (Kind::Balance, 10)
        ]
        .into_iter()
        .collect(),
        "{}",
        render::table(&after)
    );
    // The acceptance: nothing unexplained remains; orphans and duplicates wait for a person.
    assert!(after.is_clean(), "{}", render::table(&after));
    assert_eq!(after.summary.unexplained, 0, "{}", render::table(&after));
    assert_eq!(
        after.summary.for_a_person, 20,
        "orphans and duplicates wait for a person"
    );
    assert!(after
        .differences
        .iter()
        .all(|d| d.remedy != Remedy::Requeue));

    // A person deletes what was keyed in by hand: nothing is left for a person either.
    for id in person_made {
        b2b.delete_invoice_as_person(STORE_HASH, id)
            .expect("deleted");
    }
    let done = read::reconcile(&engine, SOURCE, false)
        .await
        .expect("reconcile runs");
    assert!(done.is_clean(), "{}", render::table(&done));
    assert_eq!(done.summary.for_a_person, 0, "{}", render::table(&done));
    assert_eq!(done.summary.counts[&Kind::Balance], 10);
    let explained: Decimal = done
        .summary
        .totals
        .values()
        .map(|t| t.balance_explained)
        .sum();
    assert_eq!(explained, dec("10"));
}

/// The binary's `reconcile` over the same world: exit codes, formats, `--output`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_command_exits_1_while_anything_is_unexplained_and_writes_each_format() {
    let w = World::new(12).await;
    let engine = w.engine();
    w.sync_until_quiet(&engine, 3).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let map: Vec<String> = crate::engine_world::customer_map()
        .iter()
        .map(|(k, v)| format!("\"{k}\" = \"{v}\""))
        .collect();
    std::fs::write(
        &config,
        format!(
            r#"
[telemetry]
log_filter = "warn"

[database]
url = "{db_url}"

[stores.acme.b2b]
base_url = "{b2b}"
store_hash = "{STORE_HASH}"
token = "{token}"

[sources.{SOURCE}]
kind = "unified"
store = "acme"
on_deleted = "delete"

[sources.{SOURCE}.unified]
base_url = "{erp}"
api_key = "{key}"
credential_id = "{credential}"

[sources.{SOURCE}.customers]
strategy = "static"
map = {{ {map} }}
"#,
            db_url = w.db.url,
            b2b = w.b2b.base_url(),
            token = crate::helpers::TOKEN,
            erp = w.erp.base_url(),
            key = b2b_invoice_sync::sandbox::unified::DEFAULT_API_KEY,
            credential = b2b_invoice_sync::sandbox::unified::DEFAULT_CREDENTIAL_ID,
            map = map.join(", "),
        ),
    )
    .expect("config");
    let run = |args: Vec<String>| {
        let config = config.clone();
        async move {
            let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_b2b-invoice-sync"));
            cmd.args(&args)
                .arg("--config")
                .arg(&config)
                .args(["--log-format", "json"])
                .env_remove("RUST_LOG");
            for (k, _) in std::env::vars() {
                if k.starts_with("B2BSYNC") {
                    cmd.env_remove(k);
                }
            }
            cmd.output().await.expect("the binary runs")
        }
    };
    let args = |extra: &[&str]| -> Vec<String> {
        ["reconcile", "--source", SOURCE]
            .iter()
            .chain(extra)
            .map(|s| (*s).to_owned())
            .collect()
    };

    let out = run(args(&[])).await;
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{table}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(table.contains("ERP and B2B agree"), "{table}");

    let id = w.b2b_by_external_id()[&b2b_invoice_sync::sandbox::unified::remote_id(1)]["id"]
        .as_u64()
        .expect("id");
    w.b2b
        .control()
        .edit_invoice_as_person(
            STORE_HASH,
            id,
            &PersonEdit {
                kind: Some("Edited".to_owned()),
                ..PersonEdit::default()
            },
        )
        .expect("edited");
    let report = dir.path().join("report.json");
    let out = run(args(&[
        "--format",
        "json",
        "--output",
        &report.to_string_lossy(),
    ]))
    .await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "the report went to the file");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    assert_eq!(doc["summary"]["counts"]["drift"], 1);
    assert_eq!(doc["differences"][0]["diff"][0]["path"], "type");

    let out = run(args(&["--format", "csv"])).await;
    assert_eq!(out.status.code(), Some(1));
    let csv = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(csv.starts_with("kind,external_id,invoice_number,"), "{csv}");
    assert!(
        csv.lines()
            .any(|l| l.starts_with("drift,") && l.contains(",type,") && l.contains(",Edited,")),
        "{csv}"
    );

    // --repair queues it; a sync puts the ERP's value back; the next report is clean.
    let out = run(args(&["--repair"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("repair: 1 invoices queued"));
    w.sync_until_quiet(&engine, 3).await;
    let out = run(args(&[])).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let out = run(vec!["reconcile".into(), "--source".into(), "nope".into()]).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown source is a usage error"
    );
}

#[tokio::test]
async fn reconcile_reads_b2b_only_while_its_process_holds_the_store() {
    // Invariant 5: the store's budget is spent by the one process holding its lease; a
    // reconcile from a second process must not read B2B beside it.
    let w = World::new(20).await;
    let (daemon, tool) = (w.engine(), w.engine());
    w.sync_until_quiet(&daemon, 4).await;
    let hold = daemon
        .ownership()
        .enter("acme")
        .await
        .expect("lease query")
        .expect("the store is free");
    w.b2b.control().reset_stats();
    let refused = read::reconcile(&tool, SOURCE, true).await;
    assert!(
        matches!(refused, Err(read::ReconcileError::StoreHeld { .. })),
        "{refused:?}"
    );
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains(SOURCE) && message.contains("reconcile_schedule"),
        "{message}"
    );
    assert_eq!(
        w.b2b.control().stats().total,
        0,
        "nothing was sent to the store"
    );
    daemon.ownership().leave(hold).await;
    let report = read::reconcile(&tool, SOURCE, false)
        .await
        .expect("the store is free again");
    assert!(report.differences.is_empty(), "{:?}", report.differences);
}
