//! Fault rows over HTTP: B2B answering 500s, 503s, 429 storms, too slowly, or applying and then
//! failing; the ERP failing mid-paging. Every row starts from a clean sync, then people's edits
//! and ERP changes plus new ERP invoices meet the fault, so creates and updates both face it.

use std::time::{Duration, Instant};

use b2b_invoice_sync::sandbox::b2b::{
    B2bSandboxConfig, ErrorRates, ExternalIdFilter, Fault, FaultRule, Readings,
};

use crate::erp::Erp;
use crate::world::{faults_n, seed_for, World};

/// Cycles a faulty row may take before it must be quiet.
const MAX_CYCLES: usize = 15;

async fn unified_world(row: &'static str) -> World {
    unified_world_reading(row, Readings::default()).await
}

/// [`unified_world`] with a B2B sandbox that reads the documents' open points as given.
async fn unified_world_reading(row: &'static str, readings: Readings) -> World {
    let seed = seed_for(row);
    let n = faults_n();
    let b2b = B2bSandboxConfig {
        readings,
        ..B2bSandboxConfig::default()
    };
    let mut world = World::with_b2b(row, seed, Erp::unified(n, seed).await, b2b).await;
    world.synced_then_changed(5, n / 2).await;
    world
}

/// The strict readings: `externalId[]` refused (400) or dropped for ids that are not numbers
/// (the unified sandbox's ids are `rmt-000001`), pages capped at 100.
fn strict(filter: ExternalIdFilter) -> Readings {
    Readings {
        external_id_filter: filter,
        max_page_size: Some(100),
        ..Readings::default()
    }
}

/// The faulty cycles, then the invariants; returns the world to check what the fault did.
async fn run(mut world: World) -> World {
    let started = Instant::now();
    let engine = world.engine();
    let cycles = world.until_quiet(&engine, MAX_CYCLES).await;
    world.finish().await;
    eprintln!(
        "fault row {}: quiet after {cycles} faulty cycles, {:?}",
        world.row,
        started.elapsed()
    );
    world
}

#[tokio::test]
async fn b2b_500s() {
    let world = unified_world("b2b_500s").await;
    world
        .b2b
        .control()
        .set_error_rates(ErrorRates {
            status_500: 0.25,
            ..ErrorRates::default()
        })
        .expect("rates");
    let world = run(world).await;
    assert!(world.b2b_served(500) > 0);
}

#[tokio::test]
async fn b2b_503s() {
    let world = unified_world("b2b_503s").await;
    world
        .b2b
        .control()
        .set_error_rates(ErrorRates {
            status_503: 0.25,
            ..ErrorRates::default()
        })
        .expect("rates");
    let world = run(world).await;
    assert!(world.b2b_served(503) > 0);
}

#[tokio::test]
async fn b2b_429_storms() {
    let world = unified_world("b2b_429_storms").await;
    let b2b = world.b2b.control();
    // A storm: every request refused for a while (some without Retry-After, which pauses the
    // store for the budget's default), then sporadic 429s with `Retry-After: 1`.
    b2b.push_fault(
        FaultRule::once(Fault::Status429 {
            retry_after_secs: Some(0),
        })
        .times(20),
    );
    b2b.push_fault(
        FaultRule::once(Fault::Status429 {
            retry_after_secs: None,
        })
        .times(2),
    );
    b2b.push_fault(
        FaultRule::once(Fault::Status429 {
            retry_after_secs: Some(0),
        })
        .on_method("PUT")
        .times(6),
    );
    b2b.set_error_rates(ErrorRates {
        status_429: 0.1,
        ..ErrorRates::default()
    })
    .expect("rates");
    let world = run(world).await;
    assert!(world.b2b_served(429) > 28);
}

#[tokio::test]
async fn b2b_timeouts() {
    let mut world = unified_world("b2b_timeouts").await;
    world.store_mut().b2b.request_timeout = Duration::from_millis(300);
    let b2b = world.b2b.control();
    // Slower than the client waits; the sandbox still applies them afterwards, as a server would.
    let slow = Fault::Delay { ms: 900 };
    b2b.push_fault(FaultRule::once(slow.clone()).on_method("POST").times(4));
    b2b.push_fault(FaultRule::once(slow.clone()).on_method("PUT").times(3));
    b2b.push_fault(FaultRule::once(slow).on_method("GET").times(2));
    let engine = world.engine();
    let started = Instant::now();
    let cycles = world.until_quiet(&engine, MAX_CYCLES).await;
    // The late requests land after the client gave up: they must change nothing that matters.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let more = world.until_quiet(&engine, MAX_CYCLES).await;
    world.finish().await;
    eprintln!(
        "fault row b2b_timeouts: quiet after {cycles} + {more} cycles, {:?}",
        started.elapsed()
    );
}

async fn apply_then_500(row: &'static str, readings: Readings) {
    let world = unified_world_reading(row, readings).await;
    let b2b = world.b2b.control();
    b2b.push_fault(
        FaultRule::once(Fault::ApplyThen500)
            .on_method("POST")
            .times(5),
    );
    b2b.push_fault(
        FaultRule::once(Fault::ApplyThen500)
            .on_method("PUT")
            .times(3),
    );
    let world = run(world).await;
    assert!(world.recovered() >= 5, "the applied creates are adopted");
}

#[tokio::test]
async fn b2b_apply_then_500() {
    apply_then_500("b2b_apply_then_500", Readings::default()).await;
}

#[tokio::test]
async fn b2b_apply_then_500_external_id_400() {
    apply_then_500(
        "b2b_apply_then_500_external_id_400",
        strict(ExternalIdFilter::Numeric400),
    )
    .await;
}

#[tokio::test]
async fn b2b_apply_then_500_external_id_ignored() {
    apply_then_500(
        "b2b_apply_then_500_external_id_ignored",
        strict(ExternalIdFilter::NumericIgnore),
    )
    .await;
}

async fn apply_then_drop(row: &'static str, readings: Readings) {
    let world = unified_world_reading(row, readings).await;
    let b2b = world.b2b.control();
    b2b.push_fault(
        FaultRule::once(Fault::ApplyThenDrop)
            .on_method("POST")
            .times(5),
    );
    b2b.push_fault(
        FaultRule::once(Fault::ApplyThenDrop)
            .on_method("PUT")
            .times(3),
    );
    // And the reads recovery and updates depend on.
    b2b.push_fault(
        FaultRule::once(Fault::ApplyThenDrop)
            .on_method("GET")
            .times(3),
    );
    let world = run(world).await;
    assert!(world.recovered() >= 5, "the applied creates are adopted");
}

#[tokio::test]
async fn b2b_apply_then_drop() {
    apply_then_drop("b2b_apply_then_drop", Readings::default()).await;
}

#[tokio::test]
async fn b2b_apply_then_drop_external_id_400() {
    apply_then_drop(
        "b2b_apply_then_drop_external_id_400",
        strict(ExternalIdFilter::Numeric400),
    )
    .await;
}

#[tokio::test]
async fn b2b_apply_then_drop_external_id_ignored() {
    apply_then_drop(
        "b2b_apply_then_drop_external_id_ignored",
        strict(ExternalIdFilter::NumericIgnore),
    )
    .await;
}

#[tokio::test]
async fn erp_paging_errors() {
    let world = unified_world("erp_paging_errors").await;
    let erp = world.erp.unified_sandbox().control();
    let list = "accounting/invoices";
    let pass = || FaultRule::once(Fault::Delay { ms: 0 }).on_path_containing(list);
    // The first page reads; the second fails twice (retried within the cycle); the third fails
    // more often than the adapter retries (the cycle stops, keeping what it did); then random
    // 500s and dropped connections all along.
    erp.push_fault(pass());
    erp.push_fault(
        FaultRule::once(Fault::Status500)
            .on_path_containing(list)
            .times(2),
    );
    erp.push_fault(pass());
    erp.push_fault(
        FaultRule::once(Fault::DropBeforeApply)
            .on_path_containing(list)
            .times(5),
    );
    erp.set_error_rates(ErrorRates {
        status_500: 0.15,
        status_503: 0.1,
        ..ErrorRates::default()
    })
    .expect("rates");
    // B2B is not spared either.
    world
        .b2b
        .control()
        .set_error_rates(ErrorRates {
            status_500: 0.1,
            ..ErrorRates::default()
        })
        .expect("rates");
    let world = run(world).await;
    assert!(
        world.reports.iter().any(|r| r.error.is_some()),
        "a cycle stopped on the ERP"
    );
}
