//! Issue #11's smaller defects, each with the test that failed before its fix: ambiguous creates
//! settled in bulk, misconfigurations that stop a cycle instead of failing every invoice, the
//! budget adapting to other apps' load, counts and errors that say what happened.

use b2b_invoice_sync::config::{B2bAuth, B2bSettings};
use b2b_invoice_sync::sandbox::b2b::{Fault, FaultRule};
use b2b_invoice_sync::store::runs::Outcome;

use crate::erp::{ndjson_invoice, Erp};
use crate::world::{seed_for, World, STORE_HASH};

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

/// Invoices charged an attempt (failed, dead) so far.
async fn charged(world: &World) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM invoice_state WHERE attempts > 0 OR status IN ('failed', 'dead')",
    )
    .fetch_one(&world.db.pool)
    .await
    .expect("count charged invoices")
}

#[tokio::test]
async fn a_misconfigured_store_stops_the_cycle_with_one_error_and_charges_no_invoice() {
    let row = "misconfigured_store";
    let seed = seed_for(row);
    let mut world = World::new(row, seed, Erp::files()).await;
    world
        .erp
        .folder()
        .write(&(0..30).map(ndjson_invoice).collect::<Vec<_>>());
    let good = world.store_mut().b2b.clone();
    let sandbox = good.base_url.to_string();
    let with = |change: &dyn Fn(&mut B2bSettings)| {
        let mut b2b = good.clone();
        change(&mut b2b);
        b2b
    };
    let cases = [
        (
            "wrong token",
            with(&|b| {
                b.auth = B2bAuth::XAuthToken {
                    store_hash: STORE_HASH.to_owned(),
                    token: "not-the-token".into(),
                }
            }),
            "stores.acme.b2b.token",
        ),
        (
            "base_url ending in /ip",
            with(&|b| {
                b.base_url = format!("{}/ip", sandbox.trim_end_matches('/'))
                    .parse()
                    .expect("URL")
            }),
            "base_url must stop at /api/v3/io",
        ),
        (
            "nothing listening",
            with(&|b| b.base_url = "http://127.0.0.1:9/api/v3/io".parse().expect("URL")),
            "nothing answers at stores.acme.b2b.base_url",
        ),
    ];
    for (case, b2b, names) in cases {
        world.store_mut().b2b = b2b;
        let engine = world.engine();
        let report = world.cycle(&engine).await;
        assert_eq!(report.outcome, Outcome::Failed, "[{case}] {report:#?}");
        let error = report.error.clone().unwrap_or_default();
        assert!(
            error.contains("store acme") && error.contains(names),
            "[{case}] one error naming the store and the fix: {error}"
        );
        eprintln!("[{case}] {error}");
        assert_eq!(report.counts.failed, 0, "[{case}] {report:#?}");
        assert_eq!(
            charged(&world).await,
            0,
            "[{case}] no invoice is charged an attempt"
        );
        assert_eq!(
            world.in_flight().await,
            0,
            "[{case}] nothing left in flight"
        );
    }
    // Fixed: everything syncs, nothing was burnt on the way.
    world.store_mut().b2b = good;
    let engine = world.engine();
    world.until_quiet(&engine, 3).await;
    world.finish().await;
}
