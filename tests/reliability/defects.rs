//! Issue #11's smaller defects, each with the test that failed before its fix: ambiguous creates
//! settled in bulk, misconfigurations that stop a cycle instead of failing every invoice, the
//! budget adapting to other apps' load, counts and errors that say what happened.

use b2b_invoice_sync::sandbox::b2b::{Fault, FaultRule};

use crate::erp::{ndjson_invoice, Erp};
use crate::world::{seed_for, World};

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
    // ceil(300 / 250) filtered reads, plus one look at the store to trust an empty answer.
    assert!(
        reads <= 3,
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
        reads <= 2,
        "{reads} list reads to adopt {n} creates: {fourth:#?}"
    );
    assert_eq!(fourth.counts.recovered, n as i32, "{fourth:#?}");
    world.until_quiet(&engine, 3).await;
    world.finish().await;
}
