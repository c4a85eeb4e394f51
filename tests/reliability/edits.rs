//! A person's edit made while an update batch runs (issue #11, defect 3). B2B has no conditional
//! update, so the time between reading an invoice and writing it back is the risk; the daemon
//! keeps it under `update_freshness`. The test counts the edits that land inside that window of
//! a PUT of their invoice, and asserts that no edit outside it is ever lost.

use std::collections::HashMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use b2b_invoice_sync::domain::SourceInvoice;

use crate::erp::{ndjson_invoice, Erp};
use crate::world::{seed_for, World, STORE_HASH};

/// Loopback, scheduling and the sandbox's own handling between a request leaving the daemon
/// and being applied: a generous allowance on top of the bound.
const SLACK: Duration = Duration::from_millis(150);

#[tokio::test]
async fn a_persons_edit_during_an_update_batch_is_lost_only_inside_the_freshness_bound() {
    let row = "edits_during_update_batch";
    let seed = seed_for(row);
    let n = 100;
    let edits = 25;
    let bound = Duration::from_millis(500);
    let mut world = World::new(row, seed, Erp::files()).await;
    // A paced budget (20 a second, bursts of 4) so the batch takes seconds, as it would at a
    // store's real rate, and a fast bound to keep the test short; the ratio is what matters.
    {
        let store = world.store_mut();
        store.budget.requests_per_minute = 1200.try_into().expect("non-zero");
        store.budget.burst = 4.try_into().expect("non-zero");
    }
    world.source_mut().update_freshness = bound;
    world
        .erp
        .folder()
        .write(&(0..n).map(ndjson_invoice).collect::<Vec<_>>());
    let engine = world.engine();
    world.until_quiet(&engine, 3).await;

    // The ERP changes all of them; a person edits 25 while the update batch runs.
    let synced: Vec<SourceInvoice> = world
        .erp
        .expected(crate::world::SOURCE)
        .await
        .live
        .into_values()
        .collect();
    let lines: Vec<String> = synced
        .iter()
        .map(|inv| {
            let mut raw = inv.to_raw();
            raw.open_balance = Some("2".to_owned());
            serde_json::to_string(&raw).expect("JSON")
        })
        .collect();
    world.erp.folder().write(&lines);
    let b2b_ids: HashMap<String, u64> = world
        .b2b_by_external_id()
        .into_iter()
        .map(|(ext, inv)| (ext, inv["id"].as_u64().expect("id")))
        .collect();
    let control = world.b2b.control();
    control.reset_stats();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut order: Vec<&SourceInvoice> = synced.iter().collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let targets: Vec<(String, u64)> = order
        .iter()
        .take(edits)
        .map(|inv| (inv.external_id.clone(), b2b_ids[&inv.external_id]))
        .collect();
    let gaps: Vec<u64> = (0..edits).map(|_| rng.random_range(50..300)).collect();
    let person = async {
        // Starts once the batch does (its first read), then edits at random moments.
        while !control
            .requests()
            .iter()
            .any(|r| r.route == "GET /ip/invoices")
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut made = Vec::new();
        for ((ext, id), gap) in targets.iter().zip(&gaps) {
            tokio::time::sleep(Duration::from_millis(*gap)).await;
            control
                .edit_details(
                    STORE_HASH,
                    *id,
                    &json!({ "personNote": format!("note-{ext}") }),
                )
                .expect("a person edits");
            made.push((ext.clone(), *id, control.since_start()));
        }
        made
    };
    let (report, made) = tokio::join!(engine.run_cycle(crate::world::SOURCE), person);
    let report = report.expect("the cycle runs");
    assert_eq!(report.counts.updated, n as i32, "{report:#?}");

    // When each invoice's PUT reached B2B.
    let log = control.requests();
    let puts: HashMap<u64, Vec<Duration>> = log
        .iter()
        .filter(|r| r.route == "PUT /ip/invoices/{id}" && r.status == Some(200))
        .fold(HashMap::new(), |mut acc, r| {
            let id = r
                .target
                .as_deref()
                .and_then(|p| p.rsplit('/').next())
                .and_then(|id| id.parse().ok())
                .expect("the PUT's invoice id");
            acc.entry(id).or_insert_with(Vec::new).push(r.at);
            acc
        });
    let first_put = puts.values().flatten().min().copied().expect("PUTs");
    let last_put = puts.values().flatten().max().copied().expect("PUTs");
    let held = world.b2b_by_external_id();
    let (mut lost, mut inside, mut during) = (0, 0, 0);
    for (ext, id, at) in &made {
        if *at > first_put && *at < last_put {
            during += 1;
        }
        let in_window = puts
            .get(id)
            .into_iter()
            .flatten()
            .any(|put| *at + bound + SLACK >= *put && *at <= *put + SLACK);
        if in_window {
            inside += 1;
        }
        let kept = held[ext]["details"]["personNote"] == format!("note-{ext}").as_str();
        if !kept {
            lost += 1;
            assert!(
                in_window,
                "[{row}] the edit of {ext} at {at:?} was lost although no PUT of it came within \
                 {bound:?} after it (its PUTs: {:?})",
                puts.get(id)
            );
        }
    }
    eprintln!(
        "fault row {row}: {edits} edits, {during} while the batch ran, {inside} inside a PUT's \
         freshness window, {lost} lost; {} calls for {n} updates",
        report.b2b_calls
    );
    assert!(
        lost <= inside,
        "[{row}] {lost} lost, {inside} inside the window"
    );
    assert!(
        during >= edits * 3 / 4,
        "[{row}] the edits must land while the batch runs ({during} of {edits} did)"
    );
    // The state each PUT was built from was never older than the bound when it went out.
    let ages: Vec<i32> = sqlx::query_scalar(
        "SELECT state_age_ms FROM ledger WHERE op = 'update' AND state = 'succeeded'",
    )
    .fetch_all(&world.db.pool)
    .await
    .expect("ages");
    assert_eq!(ages.len(), n);
    let oldest = ages.iter().max().copied().unwrap_or_default();
    assert!(
        Duration::from_millis(u64::try_from(oldest).unwrap_or(u64::MAX)) <= bound,
        "[{row}] a PUT went out from state {oldest} ms old"
    );
    world.finish().await;
}
