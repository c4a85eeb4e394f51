//! Fault rows under the strict readings of what B2B Edition's documents leave open (issue #13):
//! `externalId[]` typed `array[number]` answered with a 400 for a value that is not a number, or
//! with the value dropped (an unfiltered list), and pages capped at 100 items. ERP ids are
//! alphanumeric (`EXP-000001`). Every first POST and PUT is applied and its answer dropped, so
//! recovery and the update path must find invoices by number. Each row ends with the shared
//! invariants (B2B at the ERP's newest version, once).

use b2b_invoice_sync::domain::SourceInvoice;
use b2b_invoice_sync::sandbox::b2b::{
    B2bSandboxConfig, ExternalIdFilter, Fault, FaultRule, Readings,
};

use crate::erp::{ndjson_invoice, Erp};
use crate::world::{faults_n, seed_for, World, SOURCE};

fn strict(filter: ExternalIdFilter) -> B2bSandboxConfig {
    B2bSandboxConfig {
        readings: Readings {
            external_id_filter: filter,
            max_page_size: Some(100),
            ..Readings::default()
        },
        ..B2bSandboxConfig::default()
    }
}

/// A new export of `invoices`, each changed.
fn changed(invoices: &[SourceInvoice], k: u64) -> Vec<String> {
    invoices
        .iter()
        .map(|inv| {
            let mut raw = inv.to_raw();
            raw.line_items[0].quantity = Some(format!("{}", 3 + k % 5));
            raw.line_items[0].line_total = None;
            raw.open_balance = Some(format!("{}", 1 + k % 4));
            serde_json::to_string(&raw).expect("JSON")
        })
        .collect()
}

async fn live(world: &World) -> Vec<SourceInvoice> {
    world
        .erp
        .expected(SOURCE)
        .await
        .live
        .into_values()
        .collect()
}

/// The row: creates and updates applied then dropped, then a clean update cycle measured.
async fn applied_then_dropped_under(row: &'static str, filter: ExternalIdFilter) -> f64 {
    let seed = seed_for(row);
    let n = faults_n();
    let mut world = World::with_b2b(row, seed, Erp::files(), strict(filter)).await;
    let control = world.b2b.control();
    world
        .erp
        .folder()
        .write(&(0..n).map(ndjson_invoice).collect::<Vec<_>>());
    control.push_fault(
        FaultRule::once(Fault::ApplyThenDrop)
            .on_method("POST")
            .times(n as u32),
    );
    let engine = world.engine();
    world.cycle(&engine).await;
    // The ERP changes them all while their creates' outcomes are unknown; then every first PUT
    // is applied and dropped too.
    let first = live(&world).await;
    world.erp.folder().write(&changed(&first, 1));
    control.push_fault(
        FaultRule::once(Fault::ApplyThenDrop)
            .on_method("PUT")
            .times(n as u32),
    );
    let cycles = world.until_quiet(&engine, 5).await;
    assert!(cycles <= 5, "[{row}] quiet after {cycles} cycles");
    let failed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM invoice_state WHERE status <> 'synced'")
            .fetch_one(&world.db.pool)
            .await
            .expect("count");
    assert_eq!(failed, 0, "[{row}] no invoice left failed");
    world.finish().await;

    // A clean update of every invoice: what an update costs under this reading.
    let now = live(&world).await;
    world.erp.folder().write(&changed(&now, 2));
    control.reset_stats();
    let report = world.cycle(&engine).await;
    assert_eq!(report.counts.updated, n as i32, "{report:#?}");
    let per_update = control.stats().total as f64 / n as f64;
    eprintln!("fault row {row}: {n} updates cost {per_update:.3} calls each");
    world.finish().await;
    per_update
}

#[tokio::test]
async fn strict_external_id_400_with_pages_of_100() {
    let per_update =
        applied_then_dropped_under("strict_external_id_400", ExternalIdFilter::Numeric400).await;
    assert!(per_update <= 1.1, "{per_update:.3} calls per update");
}

#[tokio::test]
async fn strict_external_id_ignored_with_pages_of_100() {
    let per_update = applied_then_dropped_under(
        "strict_external_id_ignored",
        ExternalIdFilter::NumericIgnore,
    )
    .await;
    assert!(per_update <= 1.1, "{per_update:.3} calls per update");
}

#[tokio::test]
async fn an_ignored_filter_costs_one_page_read_before_it_is_detected() {
    let row = "ignored_filter_detected";
    let seed = seed_for(row);
    let b2b = B2bSandboxConfig {
        seed_invoices: 1000,
        ..strict(ExternalIdFilter::NumericIgnore)
    };
    let mut world = World::with_b2b(row, seed, Erp::files(), b2b).await;
    let control = world.b2b.control();
    world
        .erp
        .folder()
        .write(&(0..5).map(ndjson_invoice).collect::<Vec<_>>());
    control.push_fault(
        FaultRule::once(Fault::ApplyThenDrop)
            .on_method("POST")
            .times(5),
    );
    let engine = world.engine();
    world.cycle(&engine).await;
    control.reset_stats();
    let report = world.cycle(&engine).await;
    assert_eq!(report.counts.recovered, 5, "{report:#?}");
    let reads: Vec<String> = control
        .requests()
        .iter()
        .filter(|r| r.route == "GET /ip/invoices")
        .filter_map(|r| r.target.clone())
        .collect();
    let filtered: Vec<&String> = reads.iter().filter(|t| t.contains("externalId")).collect();
    assert_eq!(
        filtered.len(),
        1,
        "one filtered read, then the filter is known to be ignored: {reads:#?}"
    );
    assert!(
        !filtered[0].contains("offset=100"),
        "never a second page of an unfiltered list: {reads:#?}"
    );
    assert!(
        reads.len() <= 2,
        "the five invoices found by number in one search: {reads:#?}"
    );
    // The next cycle knows it: no filtered read at all.
    world.erp.folder().write(&[ndjson_invoice(7)]);
    control.push_fault(FaultRule::once(Fault::ApplyThenDrop).on_method("POST"));
    world.cycle(&engine).await;
    control.reset_stats();
    world.cycle(&engine).await;
    assert!(
        control
            .requests()
            .iter()
            .filter_map(|r| r.target.as_deref())
            .all(|t| !t.contains("externalId")),
        "the learned reading is used"
    );
    world.until_quiet(&engine, 3).await;
    // The seeded invoices are not the ERP's, so the shared invariants do not apply; the ERP's
    // six are there once each.
    let held = world.b2b_by_external_id();
    for id in (0..5).chain([7]) {
        assert!(
            held.contains_key(&format!("EXP-{id:06}")),
            "EXP-{id:06} in B2B"
        );
    }
    assert_eq!(world.in_flight().await, 0);
}

#[tokio::test]
async fn friendly_external_ids_with_pages_of_100() {
    // The same row under the friendly reading, for the cost side by side (BENCHMARKS.md).
    let per_update =
        applied_then_dropped_under("friendly_external_ids", ExternalIdFilter::Strings).await;
    assert!(per_update <= 1.1, "{per_update:.3} calls per update");
}

/// The `externalId[]` reads since the stats were reset: (target, status).
fn filtered_reads(world: &World) -> Vec<(String, Option<u16>)> {
    world
        .b2b
        .control()
        .requests()
        .iter()
        .filter(|r| r.route == "GET /ip/invoices")
        .filter_map(|r| r.target.clone().map(|t| (t, r.status)))
        .filter(|(t, _)| t.contains("externalId"))
        .collect()
}

/// The ERP changes every invoice and a new process (a new Engine: nothing in memory, the same
/// database) updates them, reading their current B2B state first. Returns its filtered reads.
async fn update_all_in_a_new_process(world: &mut World, k: u64) -> Vec<(String, Option<u16>)> {
    let now = live(world).await;
    let n = now.len();
    world.erp.folder().write(&changed(&now, k));
    world.b2b.control().reset_stats();
    let engine = world.engine();
    let report = world.cycle(&engine).await;
    assert_eq!(report.counts.updated, n as i32, "{report:#?}");
    filtered_reads(world)
}

/// The store's stored reading, and whether it was checked in the last minute.
async fn stored_reading(world: &World) -> (String, bool) {
    sqlx::query_as(
        "SELECT external_id_filter, checked_at > now() - interval '1 minute' FROM b2b_capabilities",
    )
    .fetch_one(&world.db.pool)
    .await
    .expect("the reading is stored")
}

#[tokio::test]
async fn the_learned_reading_is_kept_in_postgres_for_a_new_process_and_learned_again_once_aged() {
    use b2b_invoice_sync::sync::lookup::RECHECK;

    let row = "reading_kept_and_rechecked";
    let seed = seed_for(row);
    let refused =
        |reads: &[(String, Option<u16>)]| reads.iter().filter(|(_, s)| *s == Some(400)).count();
    let mut world = World::with_b2b(
        row,
        seed,
        Erp::files(),
        strict(ExternalIdFilter::Numeric400),
    )
    .await;
    world
        .erp
        .folder()
        .write(&(0..5).map(ndjson_invoice).collect::<Vec<_>>());
    let first = world.engine();
    world.until_quiet(&first, 3).await;

    // The first process meets the 400 once and learns the reading; the store's row says so.
    let reads = update_all_in_a_new_process(&mut world, 1).await;
    assert_eq!(
        refused(&reads),
        1,
        "learned from one refused read: {reads:#?}"
    );
    assert_eq!(
        stored_reading(&world).await,
        ("numbers_only".to_owned(), true)
    );

    // A new process takes the stored reading: no `externalId[]` read at all, the invoices are
    // found by number at once.
    let reads = update_all_in_a_new_process(&mut world, 2).await;
    assert!(reads.is_empty(), "the stored reading is used: {reads:#?}");

    // A reading older than RECHECK is not trusted: the next process asks again (one refused
    // read) and stores the answer afresh.
    let aged = RECHECK.as_secs_f64() + 3600.0;
    sqlx::query("UPDATE b2b_capabilities SET checked_at = now() - make_interval(secs => $1)")
        .bind(aged)
        .execute(&world.db.pool)
        .await
        .expect("age the reading");
    assert_eq!(
        stored_reading(&world).await,
        ("numbers_only".to_owned(), false)
    );
    let reads = update_all_in_a_new_process(&mut world, 3).await;
    assert_eq!(
        refused(&reads),
        1,
        "an aged reading is learned again: {reads:#?}"
    );
    assert_eq!(
        stored_reading(&world).await,
        ("numbers_only".to_owned(), true),
        "the re-learned reading is stored with a new checked_at"
    );
    world.finish().await;
}
