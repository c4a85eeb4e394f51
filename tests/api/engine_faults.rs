//! Crash safety and fault tolerance: every ERP invoice ends up in B2B exactly once.

use std::time::Duration;

use serde_json::{json, Value};

use b2b_invoice_sync::sandbox::b2b::{ErrorRates, Fault, FaultRule};
use b2b_invoice_sync::sandbox::unified::UnifiedSandboxControl;

use crate::engine_world::*;

/// The live ERP invoices (not deleted or voided), by id.
fn live_erp(erp: &UnifiedSandboxControl) -> Vec<(String, Value)> {
    (1..=erp.invoice_count())
        .filter_map(|i| {
            let id = format!("rmt-{i:06}");
            erp.invoice(&id).map(|inv| (id, inv))
        })
        .filter(|(_, inv)| {
            inv["remoteDeleted"] != json!(true)
                && !inv["invoiceStatus"]
                    .as_str()
                    .is_some_and(|s| s.to_ascii_lowercase().starts_with("void"))
        })
        .collect()
}

/// Every live ERP invoice exists in B2B exactly once, with its number and balances.
fn assert_exactly_once_with_content(world: &World) {
    let b2b = world.b2b_by_external_id();
    let live = live_erp(&world.erp.control());
    assert_eq!(
        b2b.len(),
        live.len(),
        "B2B holds exactly the live ERP invoices"
    );
    for (id, erp) in live {
        let inv = b2b
            .get(&id)
            .unwrap_or_else(|| panic!("{id} missing in B2B"));
        assert_eq!(inv["invoiceNumber"], erp["invoiceNumber"], "{id}");
        let erp_total: rust_decimal::Decimal = erp["totalAmount"]
            .to_string()
            .trim_matches('"')
            .parse()
            .expect("total");
        let b2b_total: rust_decimal::Decimal = inv["originalBalance"]["value"]
            .as_str()
            .expect("value")
            .parse()
            .expect("decimal");
        assert_eq!(b2b_total, erp_total, "{id}");
    }
}

#[tokio::test]
async fn apply_then_500_on_create_is_recovered_without_a_duplicate() {
    let world = World::new(15).await;
    world
        .b2b
        .control()
        .push_fault(FaultRule::once(Fault::ApplyThen500).on_method("POST"));
    let engine = world.engine();
    let first = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(first.counts.failed, 1, "{first:#?}");
    assert!(
        first.failures[0].contains("may have been applied"),
        "{:?}",
        first.failures
    );
    let reports = world.sync_until_quiet(&engine, 4).await;
    assert_eq!(total(&reports).recovered, 1, "{reports:#?}");
    assert_exactly_once_with_content(&world);
}

#[tokio::test]
async fn apply_then_drop_on_create_is_recovered_without_a_duplicate() {
    let world = World::new(15).await;
    world.b2b.control().push_fault(
        FaultRule::once(Fault::ApplyThenDrop)
            .on_method("POST")
            .times(2),
    );
    let engine = world.engine();
    engine.run_cycle(SOURCE).await.expect("cycle");
    let reports = world.sync_until_quiet(&engine, 4).await;
    assert_eq!(total(&reports).recovered, 2, "{reports:#?}");
    assert_exactly_once_with_content(&world);
}

#[tokio::test]
async fn a_crash_between_post_and_commit_is_recovered_without_a_duplicate() {
    let world = World::new(15).await;
    let engine = world.engine();
    // The third create's POST succeeds, then the process "dies" before committing it.
    engine.failpoints().arm("after_create", 3);
    let first = engine.run_cycle(SOURCE).await.expect("cycle");
    assert!(
        first
            .error
            .as_deref()
            .is_some_and(|e| e.contains("failpoint")),
        "{first:#?}"
    );
    let in_flight: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ledger WHERE state = 'in_flight'")
            .fetch_one(&world.db.pool)
            .await
            .expect("count");
    // The crashed create, and the ones running beside it, are left in flight.
    let concurrency = world.settings.stores["acme"].budget.max_concurrent.get() as i64;
    assert!(
        (1..=concurrency).contains(&in_flight),
        "{in_flight} in flight"
    );
    // A new process (a new engine) picks up.
    let engine = world.engine();
    let reports = world.sync_until_quiet(&engine, 4).await;
    assert!(
        reports[0].counts.recovered >= 1,
        "the applied create is adopted: {reports:#?}"
    );
    assert_exactly_once_with_content(&world);
    assert_eq!(
        world.b2b_calls("POST /ip/invoices") as usize,
        live_erp(&world.erp.control()).len(),
        "no POST twice"
    );
}

#[tokio::test]
async fn a_cycle_dropped_mid_post_is_recovered_without_a_duplicate() {
    let world = World::new(15).await;
    // The POSTs are slow; the cycle is dropped (like a killed process) while they are on the wire.
    world.b2b.control().push_fault(
        FaultRule::once(Fault::Delay { ms: 800 })
            .on_method("POST")
            .times(4),
    );
    let engine = world.engine();
    let dropped = tokio::time::timeout(Duration::from_millis(300), engine.run_cycle(SOURCE)).await;
    assert!(dropped.is_err(), "the cycle was cut off");
    drop(engine);
    // The sandbox finishes the requests it received.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let engine = world.engine();
    let reports = world.sync_until_quiet(&engine, 5).await;
    assert!(total(&reports).recovered >= 1, "{reports:#?}");
    assert_exactly_once_with_content(&world);
}

#[tokio::test]
async fn storms_of_500s_and_429s_end_with_every_invoice_synced_once() {
    let world = World::new(500).await;
    world
        .b2b
        .control()
        .set_error_rates(ErrorRates {
            status_500: 0.2,
            status_503: 0.0,
            status_429: 0.1,
        })
        .expect("rates");
    let engine = world.engine();
    let reports = world.sync_until_quiet(&engine, 12).await;
    let t = total(&reports);
    let live = live_erp(&world.erp.control()).len() as i32;
    assert_eq!(
        t.created + t.recovered,
        live,
        "every live invoice created once: {t:?}"
    );
    for r in &reports {
        assert_eq!(r.error, None, "{r:#?}");
        assert_eq!(
            r.counts.failed as usize,
            r.failures.len().min(100).max(r.counts.failed as usize),
            "counts add up"
        );
    }
    assert_exactly_once_with_content(&world);
}
