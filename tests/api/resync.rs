//! `resync` (issue #16): the next cycle re-pushes exactly the chosen invoices although nothing
//! changed, from their current B2B details; a dry run changes nothing and sends nothing.

use serde_json::json;

use b2b_invoice_sync::store::cursors;
use b2b_invoice_sync::sync::resync::{resync, Selection};

use crate::engine_world::*;
use crate::helpers::*;

const B2B_PUT: &str = "PUT /ip/invoices/{id}";

async fn fingerprints(world: &World) -> Vec<(String, Option<String>)> {
    sqlx::query_as(
        "SELECT external_id, fingerprint FROM invoice_state WHERE source = $1 ORDER BY external_id",
    )
    .bind(SOURCE)
    .fetch_all(&world.db.pool)
    .await
    .expect("state rows")
}

#[tokio::test]
async fn resync_of_three_invoices_re_pushes_exactly_those_and_keeps_a_persons_details() {
    let world = World::new(20).await;
    let engine = world.engine();
    world.sync_until_quiet(&engine, 3).await;
    let b2b = world.b2b_by_external_id();
    let mut chosen: Vec<String> = b2b.keys().cloned().collect();
    chosen.sort();
    let chosen: Vec<String> = chosen.into_iter().take(3).collect();
    // A person adds a key inside the details of one of them.
    let edited = b2b[&chosen[0]]["id"].as_u64().expect("id");
    world
        .b2b
        .control()
        .edit_details(
            STORE_HASH,
            edited,
            &json!({"personNote": "call before shipping"}),
        )
        .expect("person edit");

    // Dry run: lists the three, changes nothing, sends nothing.
    let before = fingerprints(&world).await;
    let cursor = cursors::load(&world.db.pool, SOURCE).await.expect("cursor");
    world.b2b.control().reset_stats();
    let dry = resync(
        &world.db.pool,
        SOURCE,
        &Selection::Invoices(chosen.clone()),
        true,
    )
    .await
    .expect("dry run");
    assert!(dry.dry_run);
    let listed: Vec<&str> = dry
        .invoices
        .iter()
        .map(|r| r.external_id.as_str())
        .collect();
    assert_eq!(
        listed,
        chosen.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(dry.not_in_b2b.is_empty(), "{dry:?}");
    assert_eq!(
        fingerprints(&world).await,
        before,
        "a dry run changes no fingerprint"
    );
    assert_eq!(
        cursors::load(&world.db.pool, SOURCE).await.expect("cursor"),
        cursor,
        "a dry run keeps the cursor"
    );
    assert_eq!(world.b2b_total_calls(), 0, "a dry run sends nothing");
    let idle = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(idle.counts.updated, 0, "{idle:?}");
    assert_eq!(world.b2b_calls(B2B_PUT), 0);

    // The resync itself: the next cycle re-pushes exactly those three.
    let mut named = chosen.clone();
    named.push("NO-SUCH-INVOICE".to_owned());
    let done = resync(&world.db.pool, SOURCE, &Selection::Invoices(named), false)
        .await
        .expect("resync");
    assert_eq!(done.invoices.len(), 3);
    assert_eq!(done.not_in_b2b, ["NO-SUCH-INVOICE"]);
    world.b2b.control().reset_stats();
    let report = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(
        (
            report.counts.created,
            report.counts.updated,
            report.counts.failed
        ),
        (0, 3, 0),
        "{report:#?}"
    );
    assert_eq!(
        world.b2b_calls(B2B_PUT),
        3,
        "3 PUTs, one per chosen invoice"
    );
    let after = world
        .b2b
        .control()
        .invoice(STORE_HASH, edited)
        .expect("invoice");
    assert_eq!(
        after["details"]["personNote"],
        json!("call before shipping")
    );
    // Fingerprints are back, and the cycle after that is idle again.
    assert!(fingerprints(&world)
        .await
        .iter()
        .all(|(_, fp)| fp.is_some()));
    world.b2b.control().reset_stats();
    let idle = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(idle.counts.updated, 0, "{idle:?}");
    assert_eq!(world.b2b_calls(B2B_PUT), 0);
}

#[tokio::test]
async fn resync_all_re_pushes_every_invoice_b2b_holds() {
    let world = World::new(8).await;
    let engine = world.engine();
    world.sync_until_quiet(&engine, 3).await;
    // --since: by the ERP version B2B holds.
    let future = chrono::Utc::now() + chrono::Duration::days(365);
    let none = resync(&world.db.pool, SOURCE, &Selection::Since(future), true)
        .await
        .expect("dry run");
    assert!(none.invoices.is_empty(), "{none:?}");
    let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    let every = resync(&world.db.pool, SOURCE, &Selection::Since(epoch), true)
        .await
        .expect("dry run");
    assert_eq!(every.invoices.len(), 8, "{every:?}");
    let done = resync(&world.db.pool, SOURCE, &Selection::All, false)
        .await
        .expect("resync");
    assert_eq!(done.invoices.len(), 8);
    assert_eq!(done.cursor_after.watermark, None);
    world.b2b.control().reset_stats();
    let report = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(report.counts.updated, 8, "{report:#?}");
    assert_eq!(world.b2b_calls(B2B_PUT), 8);
}
