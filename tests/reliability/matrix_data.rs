//! Fault rows about the data: malformed ERP records, two ERP invoices with one invoice number,
//! a customer without a mapping; and the other sources (an export folder, Rebillia) under B2B
//! faults, so the invariants hold whatever feeds the engine.

use std::time::{Duration, Instant};

use serde_json::json;

use b2b_invoice_sync::config::CustomerMapping;
use b2b_invoice_sync::sandbox::b2b::{ErrorRates, Fault, FaultRule};
use b2b_invoice_sync::sandbox::rebillia::AmountStyle;
use b2b_invoice_sync::sandbox::unified::Malformation;
use b2b_invoice_sync::store::state;

use crate::erp::{ndjson_bad_currency, ndjson_invoice, Erp};
use crate::world::{customer_map, faults_n, seed_for, World, SOURCE};

const MAX_CYCLES: usize = 15;

fn b2b_500s(world: &World, rate: f64) {
    world
        .b2b
        .control()
        .set_error_rates(ErrorRates {
            status_500: rate,
            ..ErrorRates::default()
        })
        .expect("rates");
}

/// The reasons of the records the ERP now holds that no adapter can take.
async fn refused_reasons(world: &World) -> Vec<String> {
    world
        .erp
        .expected(SOURCE)
        .await
        .refused
        .iter()
        .map(|e| e.reason.to_string())
        .collect()
}

#[tokio::test]
async fn malformed_erp_rows() {
    let row = "malformed_erp_rows";
    let seed = seed_for(row);
    let n = faults_n();
    let mut world = World::new(row, seed, Erp::unified(n, seed).await).await;
    world.synced_then_changed(5, n / 4).await;
    let erp = world.erp.unified_sandbox().control();
    for kind in [
        Malformation::BadCurrency,
        Malformation::NonNumericAmount,
        Malformation::BadDate,
        Malformation::NotAnObject,
    ] {
        erp.insert_malformed(kind);
    }
    // Records that are objects but nothing like an invoice.
    erp.insert_raw(json!({"remoteId": "junk-1", "invoiceNumber": 12}))
        .expect("raw record");
    erp.insert_raw(json!({"remoteId": "junk-2", "lineItems": "none", "currency": "EUR"}))
        .expect("raw record");
    world.known_bad = refused_reasons(&world).await;
    assert_eq!(world.known_bad.len(), 6, "{:?}", world.known_bad);
    b2b_500s(&world, 0.15);
    let engine = world.engine();
    let started = Instant::now();
    let cycles = world.until_quiet(&engine, MAX_CYCLES).await;
    world.finish().await;
    eprintln!(
        "fault row {row}: quiet after {cycles} cycles, {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn duplicate_invoice_number() {
    let row = "duplicate_invoice_number";
    let seed = seed_for(row);
    let n = faults_n();
    let mut world = World::new(row, seed, Erp::unified(n, seed).await).await;
    world.synced_then_changed(5, n / 4).await;
    let erp = world.erp.unified_sandbox().control();
    // A new ERP invoice reuses the number of one already in B2B...
    let mut copy = erp.invoice("rmt-000002").expect("seeded invoice");
    copy["remoteId"] = json!("dup-of-2");
    copy["id"] = json!("dup-of-2");
    erp.insert_raw(copy).expect("raw record");
    // ...and two new ones share a number: whichever is created first, the other is refused.
    let fresh = erp.create_invoice();
    let mut twin = erp.invoice(&fresh).expect("new invoice");
    twin["remoteId"] = json!("twin-of-new");
    twin["id"] = json!("twin-of-new");
    twin["customerId"] = json!("CUST-00007");
    erp.insert_raw(twin).expect("raw record");
    world.known_bad = vec!["already exists in B2B Edition".to_owned()];
    world.b2b.control().push_fault(
        FaultRule::once(Fault::ApplyThenDrop)
            .on_method("POST")
            .times(3),
    );
    b2b_500s(&world, 0.1);
    let engine = world.engine();
    let started = Instant::now();
    let cycles = world.until_quiet(&engine, MAX_CYCLES).await;
    world.finish().await;
    let b2b = world.b2b_by_external_id();
    assert!(b2b.contains_key("rmt-000002") && !b2b.contains_key("dup-of-2"));
    assert!(
        b2b.contains_key(&fresh) != b2b.contains_key("twin-of-new"),
        "exactly one of the twins"
    );
    eprintln!(
        "fault row {row}: quiet after {cycles} cycles, {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn customer_without_a_mapping() {
    let row = "customer_without_a_mapping";
    let seed = seed_for(row);
    let n = faults_n();
    let mut world = World::new(row, seed, Erp::unified(n, seed).await).await;
    world.source_mut().customers = CustomerMapping::Table;
    let dir = tempfile::tempdir().expect("tempdir");
    let import = |skip: Option<&str>| {
        let csv: String = std::iter::once("external_customer_id,company_id".to_owned())
            .chain(
                customer_map()
                    .into_iter()
                    .filter(|(c, _)| Some(c.as_str()) != skip)
                    .map(|(c, id)| format!("{c},{id}")),
            )
            .collect::<Vec<_>>()
            .join("\n");
        let path = dir.path().join("customers.csv");
        std::fs::write(&path, csv).expect("write CSV");
        path
    };
    let path = import(Some("CUST-00003"));
    b2b_invoice_sync::customers::import::import_file(&world.db.pool, SOURCE, &path)
        .await
        .expect("import");
    world.known_bad = vec!["ERP customer CUST-00003 is not in the customer map".to_owned()];
    world.synced_then_changed(5, n / 4).await;

    // Reported with the reason, in the run and in `failures list`.
    let first = &world.reports[0];
    assert!(
        first
            .failures
            .iter()
            .any(|f| f.contains("ERP customer CUST-00003 is not in the customer map")),
        "{first:#?}"
    );
    let problems = state::problems(&world.db.pool, Some(SOURCE))
        .await
        .expect("failures list");
    assert!(!problems.is_empty());
    assert!(problems.iter().all(|p| p
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("CUST-00003") && e.contains("customers import"))));
    let unmapped = problems.len();

    // Retried (and failing) under B2B faults while the rest syncs.
    b2b_500s(&world, 0.2);
    let engine = world.engine();
    let started = Instant::now();
    let cycles = world.until_quiet(&engine, MAX_CYCLES).await;
    assert!(world
        .b2b_by_external_id()
        .values()
        .all(|i| i["customerId"] != "3"));

    // The mapping arrives: the next cycles sync them, with no restart.
    let path = import(None);
    b2b_invoice_sync::customers::import::import_file(&world.db.pool, SOURCE, &path)
        .await
        .expect("import");
    world.known_bad.clear();
    let more = world.until_quiet(&engine, MAX_CYCLES).await;
    let now_in_b2b = world
        .b2b_by_external_id()
        .values()
        .filter(|i| i["customerId"] == "3")
        .count();
    assert!(now_in_b2b >= unmapped, "{now_in_b2b} of {unmapped} synced");
    assert!(state::problems(&world.db.pool, Some(SOURCE))
        .await
        .expect("failures list")
        .is_empty());
    world.finish().await;
    eprintln!(
        "fault row {row}: quiet after {cycles} + {more} cycles, {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn files_source_under_b2b_faults_and_a_crash() {
    let row = "files_source";
    let seed = seed_for(row);
    let n = faults_n();
    let mut world = World::new(row, seed, Erp::files()).await;
    let mut lines: Vec<String> = (0..n).map(ndjson_invoice).collect();
    lines.insert(n / 3, ndjson_bad_currency(900));
    lines.insert(
        n / 2,
        "{\"external_id\": \"EXP-broken\", \"total\": ".to_owned(),
    );
    world.erp.folder().write(&lines);
    world.known_bad = refused_reasons(&world).await;
    assert_eq!(world.known_bad.len(), 2, "{:?}", world.known_bad);

    // The first cycle dies (its future dropped, as the process would be) while POSTs are on
    // the wire: the file stays and is read again; the ledger settles what was sent.
    world.b2b.control().push_fault(
        FaultRule::once(Fault::Delay { ms: 500 })
            .on_method("POST")
            .times(4),
    );
    let engine = world.engine();
    let crashed = tokio::time::timeout(Duration::from_millis(200), engine.run_cycle(SOURCE)).await;
    assert!(crashed.is_err(), "the cycle was cut off");
    drop(engine);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        world.erp.folder().waiting().len(),
        1,
        "the export stays until committed"
    );
    world.b2b.control().push_fault(
        FaultRule::once(Fault::ApplyThenDrop)
            .on_method("POST")
            .times(3),
    );
    b2b_500s(&world, 0.15);
    let engine = world.engine();
    let started = Instant::now();
    let cycles = world.until_quiet(&engine, MAX_CYCLES).await;
    world.clear_faults();

    // People edit, the ERP exports changes and new invoices, B2B fails again.
    world.people_edit_then_erp_changes(5).await;
    world.erp.create(n / 4);
    world.b2b.control().push_fault(
        FaultRule::once(Fault::ApplyThen500)
            .on_method("PUT")
            .times(2),
    );
    b2b_500s(&world, 0.15);
    let more = world.until_quiet(&engine, MAX_CYCLES).await;
    assert!(
        world.erp.folder().waiting().is_empty(),
        "every export processed"
    );
    world.finish().await;
    eprintln!(
        "fault row {row}: quiet after {cycles} + {more} cycles, {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn rebillia_source_under_faults() {
    rebillia_row("rebillia_source", AmountStyle::Cents).await;
}

/// The same row with Rebillia writing every amount as a dollar string.
#[tokio::test]
async fn rebillia_source_in_dollars_under_faults() {
    rebillia_row("rebillia_source_in_dollars", AmountStyle::Dollars).await;
}

/// The same row with Rebillia writing amounts as its requests are documented: dollar strings,
/// `shippingAmount` in cents.
#[tokio::test]
async fn rebillia_source_as_documented_under_faults() {
    rebillia_row("rebillia_source_as_documented", AmountStyle::Documented).await;
}

async fn rebillia_row(row: &'static str, amounts: AmountStyle) {
    let seed = seed_for(row);
    let n = faults_n();
    let mut world = World::new(row, seed, Erp::rebillia(n, seed, amounts).await).await;
    world.synced_then_changed(5, n / 4).await;
    let erp = world.erp.rebillia_sandbox().control();
    erp.insert_malformed(&json!({"currency": {"iso3": "USX"}}))
        .expect("malformed record");
    world.known_bad = refused_reasons(&world).await;
    assert_eq!(world.known_bad.len(), 1, "{:?}", world.known_bad);
    let pass = || FaultRule::once(Fault::Delay { ms: 0 }).on_method("GET");
    erp.push_fault(pass());
    erp.push_fault(FaultRule::once(Fault::Status500).on_method("GET").times(2));
    erp.push_fault(pass());
    erp.push_fault(
        FaultRule::once(Fault::DropBeforeApply)
            .on_method("GET")
            .times(5),
    );
    erp.set_error_rates(ErrorRates {
        status_500: 0.1,
        ..ErrorRates::default()
    })
    .expect("rates");
    world.b2b.control().push_fault(
        FaultRule::once(Fault::ApplyThenDrop)
            .on_method("POST")
            .times(3),
    );
    b2b_500s(&world, 0.15);
    let engine = world.engine();
    let started = Instant::now();
    let cycles = world.until_quiet(&engine, MAX_CYCLES).await;
    world.finish().await;
    eprintln!(
        "fault row {row}: quiet after {cycles} cycles, {:?}",
        started.elapsed()
    );
}

/// One statement failing mid-batch (here a constraint that refuses one invoice's ledger row;
/// in production a connection reset or a statement timeout) stops the cycle. The invoices it had
/// already created and committed are in B2B and in `invoice_state`, but the run records
/// `created = 0`: the outcomes collected so far are dropped with the error, and no later run
/// counts them either (they are not in flight, so recovery does not adopt them).
#[tokio::test]
async fn run_counts_survive_a_database_error_mid_batch() {
    let row = "counts_after_a_database_error";
    let seed = seed_for(row);
    let mut world = World::new(row, seed, Erp::unified(30, seed).await).await;
    sqlx::query(
        "ALTER TABLE ledger ADD CONSTRAINT reliability_poison CHECK (external_id <> 'rmt-000009')",
    )
    .execute(&world.db.pool)
    .await
    .expect("poison one invoice's ledger row");
    let engine = world.engine();
    let first = world.cycle(&engine).await;
    assert!(first.error.is_some(), "the cycle stopped: {first:#?}");
    sqlx::query("ALTER TABLE ledger DROP CONSTRAINT reliability_poison")
        .execute(&world.db.pool)
        .await
        .expect("cure");
    world.until_quiet(&engine, MAX_CYCLES).await;
    let total: i32 = world
        .reports
        .iter()
        .map(|r| r.counts.created + r.counts.recovered)
        .sum();
    assert_eq!(
        total as usize,
        world.b2b_invoices().len(),
        "every invoice in B2B is counted once as created or recovered; the first run: {first:#?}"
    );
    world.finish().await;
}

/// One ERP record whose line totals add up beyond Decimal's range passes `SourceInvoice::parse`
/// (each line is in range) and then panics the cycle in `map_invoice`: every cycle of the
/// source dies on it until the ERP changes the record, and `sync` exits with a panic.
#[tokio::test]
async fn a_record_whose_line_totals_overflow_is_refused_not_a_panic() {
    let row = "line_totals_overflow";
    let seed = seed_for(row);
    let mut world = World::new(row, seed, Erp::files()).await;
    let mut lines: Vec<String> = (0..5).map(ndjson_invoice).collect();
    let mut poison: serde_json::Value = serde_json::from_str(&ndjson_invoice(7)).expect("JSON");
    poison["external_id"] = json!("EXP-poison");
    poison["invoice_number"] = json!("X-poison");
    // Without an ERP subtotal, the mapping adds the line totals up to make one.
    poison.as_object_mut().expect("object").remove("subtotal");
    poison["line_items"] = json!([
        {"sku": "BIG", "quantity": "1", "unit_price": "50000000000000000000000000000"},
        {"sku": "BIG", "quantity": "1", "unit_price": "50000000000000000000000000000"},
    ]);
    lines.push(poison.to_string());
    world.erp.folder().write(&lines);
    let engine = world.engine();
    let cycle = tokio::spawn(async move { engine.run_cycle(SOURCE).await });
    let report = match cycle.await {
        Ok(report) => report.expect("the cycle runs"),
        Err(e) => panic!("the cycle panicked on one ERP record: {e}"),
    };
    let b2b = world.b2b_by_external_id();
    for i in 0..5 {
        assert!(b2b.contains_key(&format!("EXP-{i:06}")), "{report:#?}");
    }
    assert!(
        b2b.contains_key("EXP-poison") || report.failures.iter().any(|f| f.contains("EXP-poison")),
        "the record is synced or refused with a reason: {report:#?}"
    );
}
