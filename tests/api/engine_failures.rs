//! Per-invoice failures: isolated, recorded with the API's message, retried, dead-lettered,
//! brought back; and the deletion and missing-in-B2B policies.

use std::time::Duration;

use serde_json::json;

use b2b_invoice_sync::b2b::{Amount, InvoiceUpdate};
use b2b_invoice_sync::config::{CustomerMapping, DeletedPolicy, FailurePolicy, MissingPolicy};
use b2b_invoice_sync::store::state;

use crate::engine_world::*;
use crate::helpers::*;

/// ERP ids of the live seeded invoices of one customer.
fn invoices_of(world: &World, customer: &str) -> Vec<String> {
    let erp = world.erp.control();
    (1..=erp.invoice_count())
        .map(|i| format!("rmt-{i:06}"))
        .filter(|id| {
            erp.invoice(id).is_some_and(|inv| {
                inv["customerId"] == json!(customer)
                    && inv["remoteDeleted"] != json!(true)
                    && inv["invoiceStatus"]
                        .as_str()
                        .is_none_or(|s| !s.to_ascii_lowercase().starts_with("void"))
            })
        })
        .collect()
}

#[tokio::test]
async fn a_rejected_invoice_is_isolated_retried_dead_lettered_and_brought_back() {
    let mut world = World::new(30).await;
    let mut map = customer_map();
    map.insert("CUST-00003".into(), "999".into()); // no such company in B2B: a 400
    world.source_mut().customers = CustomerMapping::Static(map);
    world.source_mut().failures = FailurePolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(1000),
        max_delay: Duration::from_millis(1000),
    };
    let bad = invoices_of(&world, "CUST-00003");
    assert!(bad.len() >= 2, "{bad:?}");
    let engine = world.engine();

    let first = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(first.counts.failed as usize, bad.len(), "{first:#?}");
    assert!(
        first
            .failures
            .iter()
            .all(|f| f.contains("Company 999 does not exist")),
        "{:?}",
        first.failures
    );
    assert_eq!(first.outcome.as_str(), "partial");
    let b2b = world.b2b_by_external_id();
    assert!(bad.iter().all(|id| !b2b.contains_key(id)));
    assert_eq!(
        b2b.len(),
        invoices_of_all(&world) - bad.len(),
        "the others completed"
    );
    let problems = state::problems(&world.db.pool, Some(SOURCE))
        .await
        .expect("problems");
    assert_eq!(problems.len(), bad.len());
    assert!(problems.iter().all(|p| p
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("Company 999"))));

    // Not due yet: nothing is retried, nothing is called.
    let calls = world.b2b_total_calls();
    let second = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(second.counts.failed, 0);
    assert_eq!(world.b2b_total_calls(), calls);

    // The ERP fixes the first one (another customer): the next cycle syncs it at once.
    world
        .erp
        .control()
        .update_invoice(&bad[0], &json!({"customerId": "CUST-00004"}))
        .expect("ERP fix");
    let third = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(third.counts.created, 1, "{third:#?}");
    assert_eq!(
        world.b2b_by_external_id()[&bad[0]]["customerId"],
        json!("4")
    );

    // The others: due after 1 s, fail again, and with max_attempts 2 land in the dead letter.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fourth = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(fourth.counts.failed as usize, bad.len() - 1, "{fourth:#?}");
    assert!(
        fourth.failures.iter().all(|f| f.contains("dead letter")),
        "{:?}",
        fourth.failures
    );
    let dead: Vec<_> = state::problems(&world.db.pool, Some(SOURCE))
        .await
        .expect("problems")
        .into_iter()
        .filter(|p| p.status == state::Status::Dead)
        .collect();
    assert_eq!(dead.len(), bad.len() - 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let calls = world.b2b_total_calls();
    engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(
        world.b2b_total_calls(),
        calls,
        "dead letters are not retried by themselves"
    );

    // The mapping is fixed and an operator retries them all: they sync.
    let mut fixed = world.settings.clone();
    fixed.sources.get_mut(SOURCE).expect("source").customers =
        CustomerMapping::Static(customer_map());
    let engine =
        b2b_invoice_sync::sync::engine::Engine::new(&fixed, world.db.pool.clone()).expect("engine");
    assert_eq!(
        state::retry(&world.db.pool, None).await.expect("retry") as usize,
        bad.len() - 1
    );
    let fifth = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(fifth.counts.created as usize, bad.len() - 1, "{fifth:#?}");
    assert!(state::problems(&world.db.pool, Some(SOURCE))
        .await
        .expect("problems")
        .is_empty());
    world.b2b_by_external_id();
}

fn invoices_of_all(world: &World) -> usize {
    (1..=10)
        .map(|i| invoices_of(world, &format!("CUST-{i:05}")).len())
        .sum()
}

#[tokio::test]
async fn deleted_in_the_erp_is_deleted_in_b2b_unless_paid_there() {
    let world = World::new(20).await;
    let engine = world.engine();
    engine.run_cycle(SOURCE).await.expect("first cycle");
    let b2b = world.b2b_by_external_id();
    // Invoices with something open, so that a payment is visible.
    let mut ids = b2b
        .iter()
        .filter(|(_, inv)| inv["openBalance"]["value"] != json!("0.0000"))
        .map(|(k, _)| k.clone());
    let (plain, paid) = (ids.next().expect("one"), ids.next().expect("two"));
    // A buyer pays part of `paid` in B2B.
    let client = client(&world.b2b, Auth::XAuthToken);
    let paid_id = b2b[&paid]["id"].as_u64().expect("id");
    let open: rust_decimal::Decimal = b2b[&paid]["openBalance"]["value"]
        .as_str()
        .expect("v")
        .parse()
        .expect("decimal");
    let code = b2b[&paid]["openBalance"]["code"]
        .as_str()
        .expect("code")
        .to_owned();
    client
        .update_invoice(
            paid_id,
            &InvoiceUpdate {
                open_balance: Some(Amount::new(code, open / rust_decimal::Decimal::from(2))),
                ..InvoiceUpdate::default()
            },
        )
        .await
        .expect("payment");
    world
        .erp
        .control()
        .delete_invoice(&plain)
        .expect("ERP delete");
    world
        .erp
        .control()
        .delete_invoice(&paid)
        .expect("ERP delete");

    let report = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(report.counts.deleted, 1, "{report:#?}");
    let now = world.b2b_by_external_id();
    assert!(!now.contains_key(&plain), "deleted in B2B");
    assert!(now.contains_key(&paid), "kept: a payment was made in B2B");
    let flagged = state::problems(&world.db.pool, Some(SOURCE))
        .await
        .expect("problems");
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0].status, state::Status::Flagged);
    assert!(
        flagged[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("was paid in B2B")),
        "{flagged:?}"
    );
    // Handled: the next cycle does nothing about either.
    let calls = world.b2b_total_calls();
    engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(world.b2b_total_calls(), calls);
}

#[tokio::test]
async fn zero_balance_and_ignore_policies() {
    let mut world = World::new(10).await;
    world.source_mut().on_deleted = DeletedPolicy::ZeroBalance;
    let engine = world.engine();
    engine.run_cycle(SOURCE).await.expect("first cycle");
    // An invoice with something still open (zeroing a paid one is rightly a no-op).
    let ext = world
        .b2b_by_external_id()
        .into_iter()
        .find(|(_, inv)| inv["openBalance"]["value"] != json!("0.0000"))
        .map(|(ext, _)| ext)
        .expect("an open invoice");
    world.erp.control().void_invoice(&ext).expect("ERP void");
    let report = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(report.counts.deleted, 1, "{report:#?}");
    let inv = &world.b2b_by_external_id()[&ext];
    assert_eq!(inv["openBalance"]["value"], json!("0.0000"));
    assert_eq!(inv["status"], json!(2));

    world.source_mut().on_deleted = DeletedPolicy::Ignore;
    let engine = world.engine();
    let other = world
        .b2b_by_external_id()
        .into_keys()
        .find(|k| *k != ext)
        .expect("another");
    world
        .erp
        .control()
        .delete_invoice(&other)
        .expect("ERP delete");
    let calls = world.b2b_total_calls();
    engine.run_cycle(SOURCE).await.expect("cycle");
    assert!(world.b2b_by_external_id().contains_key(&other), "ignored");
    assert_eq!(
        world.b2b_total_calls() - calls,
        1,
        "one bulk read, no mutation"
    );
}

#[tokio::test]
async fn an_invoice_deleted_in_b2b_fails_or_is_recreated_by_policy() {
    let mut world = World::new(10).await;
    let engine = world.engine();
    engine.run_cycle(SOURCE).await.expect("first cycle");
    let (ext, inv) = world.b2b_by_external_id().into_iter().next().expect("one");
    world
        .b2b
        .control()
        .delete_invoice_as_person(STORE_HASH, inv["id"].as_u64().expect("id"))
        .expect("person deletes");
    world
        .erp
        .control()
        .update_invoice(&ext, &json!({"balance": 3}))
        .expect("ERP edit");
    let report = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(report.counts.failed, 1, "{report:#?}");
    assert!(
        report.failures[0].contains("on_missing_in_b2b"),
        "{:?}",
        report.failures
    );

    world.source_mut().on_missing_in_b2b = MissingPolicy::Recreate;
    world
        .erp
        .control()
        .update_invoice(&ext, &json!({"balance": 4}))
        .expect("ERP edit");
    let engine = world.engine();
    let report = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(report.counts.created, 1, "{report:#?}");
    assert_eq!(
        world.b2b_by_external_id()[&ext]["openBalance"]["value"],
        json!("4.0000")
    );
}

/// Defect 7 (issue 11), for API sources: a record the unified adapter refuses is recorded where
/// operators look (with the Prometheus counter and gauge), and leaves once the ERP fixes it and
/// it syncs.
#[tokio::test]
async fn a_refused_api_record_is_recorded_with_metrics_and_cleared_once_it_syncs() {
    let metrics = b2b_invoice_sync::telemetry_metrics::install().expect("recorder");
    let world = World::new(3).await;
    let erp = world.erp.control();
    let bad = erp.insert_malformed(b2b_invoice_sync::sandbox::unified::Malformation::BadDate);
    let engine = world.engine();
    let first = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(first.counts.failed, 1, "{first:#?}");

    let rows = b2b_invoice_sync::store::refused::list(&world.db.pool, Some(SOURCE))
        .await
        .expect("refused records");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].external_id.as_deref(), Some(bad.as_str()));
    assert_eq!(rows[0].file, None);
    assert_eq!(rows[0].field.as_deref(), Some("issue_date"));
    assert!(rows[0].reason.contains("2026-02-30"), "{rows:?}");
    let text = metrics.render();
    assert!(
        text.contains("b2bsync_records_refused_total{source=\"erp\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("b2bsync_refused_records{source=\"erp\"} 1"),
        "{text}"
    );

    // The same refusal next cycle is one record still (seen again), not two.
    erp.update_invoice(&bad, &json!({ "memo": "touched" }))
        .expect("ERP change");
    engine.run_cycle(SOURCE).await.expect("cycle");
    let rows = b2b_invoice_sync::store::refused::list(&world.db.pool, Some(SOURCE))
        .await
        .expect("refused records");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].times_refused, 2, "{rows:?}");

    erp.update_invoice(&bad, &json!({ "issueDate": "2026-02-28" }))
        .expect("ERP fix");
    let fixed = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(fixed.counts.created, 1, "{fixed:#?}");
    assert!(world.b2b_by_external_id().contains_key(&bad));
    let rows = b2b_invoice_sync::store::refused::list(&world.db.pool, Some(SOURCE))
        .await
        .expect("refused records");
    assert!(rows.is_empty(), "{rows:?}");
    assert!(
        metrics
            .render()
            .contains("b2bsync_refused_records{source=\"erp\"} 0"),
        "the gauge follows"
    );
}

/// Issue 14, item 2 (the ERP side): the ERP's requests, their latency and its 429s per source,
/// from the one request path of the API adapters; the run reports the same ERP calls.
#[tokio::test]
async fn erp_requests_latency_and_429s_are_metrics_per_source() {
    use b2b_invoice_sync::sandbox::unified::{Fault, FaultRule};
    let metrics = b2b_invoice_sync::telemetry_metrics::install().expect("recorder");
    let world = World::new(3).await;
    let erp = world.erp.control();
    erp.push_fault(
        FaultRule::once(Fault::Status429 {
            retry_after_secs: Some(1),
        })
        .on_method("GET"),
    );
    let engine = world.engine();
    let report = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(report.counts.created, 3, "{report:#?}");
    let stats = erp.stats();
    assert_eq!(report.erp_calls, stats.total, "{report:#?} {stats:?}");
    let text = metrics.render();
    let value = |series: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    assert_eq!(
        value("b2bsync_erp_requests_total{source=\"erp\",status=\"429\"}"),
        1.0
    );
    assert_eq!(value("b2bsync_erp_rate_limited_total{source=\"erp\"}"), 1.0);
    let ok = value("b2bsync_erp_requests_total{source=\"erp\",status=\"200\"}");
    assert_eq!(ok + 1.0, stats.total as f64, "{text}");
    assert_eq!(
        value("b2bsync_erp_request_duration_seconds_count{source=\"erp\"}"),
        stats.total as f64
    );
}
