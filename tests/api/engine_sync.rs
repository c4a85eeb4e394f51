//! The engine against real PostgreSQL and the sandboxes: API economy, person's edits, plan.

use serde_json::json;

use crate::engine_world::*;
use crate::helpers::STORE_HASH;

fn live_count(world: &World) -> usize {
    // Seeded invoices the ERP has not deleted or voided.
    (1..=world.erp.control().invoice_count())
        .filter_map(|i| world.erp.control().invoice(&erp_id(i)))
        .filter(|inv| inv["remoteDeleted"] != json!(true) && !matches!(inv["invoiceStatus"].as_str(), Some(s) if s.eq_ignore_ascii_case("voided") || s.eq_ignore_ascii_case("void")))
        .count()
}

pub fn erp_id(i: u64) -> String {
    format!("rmt-{i:06}")
}

#[tokio::test]
async fn first_cycle_creates_with_one_post_each_then_nothing_changes_at_zero_calls() {
    let world = World::new(120).await;
    let engine = world.engine();
    let first = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(first.error, None, "{first:#?}");
    let n = live_count(&world);
    assert!(n > 100, "most seeded invoices are live ({n})");
    assert_eq!(first.counts.created as usize, n, "{first:#?}");
    assert_eq!(
        world.b2b_calls("POST /ip/invoices") as usize,
        n,
        "exactly one POST per invoice"
    );
    assert_eq!(world.b2b_total_calls() as usize, n, "and nothing else");
    assert_eq!(first.b2b_calls as usize, n);
    assert_eq!(world.b2b_by_external_id().len(), n);

    // Nothing changed in the ERP: the overlap window is re-read, and costs nothing in B2B.
    let before = world.b2b_total_calls();
    let second = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(second.b2b_calls, 0, "{second:#?}");
    assert_eq!(world.b2b_total_calls(), before);
    assert_eq!(second.counts.created + second.counts.updated, 0);
}

#[tokio::test]
async fn changing_k_invoices_costs_k_puts_and_one_bulk_read() {
    let world = World::new(60).await;
    let engine = world.engine();
    engine.run_cycle(SOURCE).await.expect("first cycle");
    let by_ext = world.b2b_by_external_id();
    // Change the balance of 7 live invoices in the ERP.
    let changed: Vec<String> = by_ext.keys().take(7).cloned().collect();
    for id in &changed {
        world
            .erp
            .control()
            .update_invoice(id, &json!({"balance": 1.25}))
            .expect("ERP edit");
    }
    let before_total = world.b2b_total_calls();
    let before_puts = world.b2b_calls("PUT /ip/invoices/{id}");
    let report = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(report.counts.updated, 7, "{report:#?}");
    assert_eq!(world.b2b_calls("PUT /ip/invoices/{id}") - before_puts, 7);
    let calls = world.b2b_total_calls() - before_total;
    assert!(
        calls <= 7 + 1,
        "at most ceil(k/250) + k calls, made {calls}"
    );
    assert_eq!(report.b2b_calls, calls);
    for id in &changed {
        let inv = &world.b2b_by_external_id()[id];
        assert_eq!(inv["openBalance"]["value"], json!("1.2500"), "{id}");
        assert_eq!(inv["status"], json!(1), "partially paid now");
    }
}

#[tokio::test]
async fn a_persons_edit_inside_details_survives_an_update_of_line_items() {
    let world = World::new(12).await;
    let engine = world.engine();
    engine.run_cycle(SOURCE).await.expect("first cycle");
    let (ext, b2b) = world
        .b2b_by_external_id()
        .into_iter()
        .next()
        .expect("an invoice");
    let id = b2b["id"].as_u64().expect("id");
    world
        .b2b
        .control()
        .edit_details(STORE_HASH, id, &json!({
            "personNote": "call before shipping",
            "details": {"shipments": [{"addressIndex": "0", "shipDate": "2026-11-20", "shipVia": "UPS", "trackingNumber": "1Z999", "comments": ""}]}
        }))
        .expect("person edit");

    // The ERP changes the first line's quantity.
    let mut lines = world.erp.control().invoice(&ext).expect("ERP invoice")["lineItems"].clone();
    lines[0]["quantity"] = json!(99);
    world
        .erp
        .control()
        .update_invoice(&ext, &json!({"lineItems": lines}))
        .expect("ERP edit");
    let report = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(report.counts.updated, 1, "{report:#?}");

    let after = world
        .b2b
        .control()
        .invoice(STORE_HASH, id)
        .expect("invoice");
    assert_eq!(
        after["details"]["details"]["lineItems"][0]["quantity"],
        json!("99")
    );
    assert_eq!(
        after["details"]["personNote"],
        json!("call before shipping")
    );
    assert_eq!(
        after["details"]["details"]["shipments"][0]["trackingNumber"],
        json!("1Z999")
    );
}

#[tokio::test]
async fn plan_lists_field_diffs_and_mutates_nothing() {
    let world = World::new(20).await;
    let engine = world.engine();
    engine.run_cycle(SOURCE).await.expect("first cycle");
    // An open invoice (status 0), so that a partial payment changes its status too (a partly
    // paid one would keep status 1, and the test would depend on which invoice came first).
    let ext = world
        .b2b_by_external_id()
        .into_iter()
        .filter(|(_, inv)| inv["status"] == json!(0))
        .map(|(ext, _)| ext)
        .min()
        .expect("an open invoice");
    world
        .erp
        .control()
        .update_invoice(&ext, &json!({"balance": 2.5}))
        .expect("ERP edit");
    let ledger_rows = |pool| async move {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM ledger")
            .fetch_one(pool)
            .await
            .expect("count")
    };
    let rows_before = ledger_rows(&world.db.pool).await;
    let calls_before = world.b2b_total_calls();

    let plan = engine.plan_only(SOURCE, false).await.expect("plan");
    let update = plan
        .invoices
        .iter()
        .find(|i| i.external_id == ext)
        .expect("the changed invoice");
    assert_eq!(update.action, "update");
    let fields: Vec<&str> = update.diff.iter().map(|d| d.field.as_str()).collect();
    assert!(
        fields.contains(&"open_balance") && fields.contains(&"status"),
        "{fields:?}"
    );
    assert_eq!(plan.counts.get("update"), Some(&1));
    assert!(plan.counts.get("skip").copied().unwrap_or(0) > 0);
    assert_eq!(world.b2b_total_calls(), calls_before, "no B2B call at all");
    assert_eq!(ledger_rows(&world.db.pool).await, rows_before);
    // And the change is still there to sync.
    let report = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(report.counts.updated, 1);
}

#[tokio::test]
async fn two_engines_at_once_one_does_the_work_and_nothing_is_duplicated() {
    let world = World::new(80).await;
    let (a, b) = (world.engine(), world.engine());
    let (ra, rb) = tokio::join!(a.run_cycle(SOURCE), b.run_cycle(SOURCE));
    let (ra, rb) = (ra.expect("a"), rb.expect("b"));
    let outcomes = [ra.outcome.as_str(), rb.outcome.as_str()];
    assert!(
        outcomes.contains(&"skipped"),
        "one of them skipped: {outcomes:?}"
    );
    assert_eq!(
        ra.counts.created + rb.counts.created,
        live_count(&world) as i32
    );
    world.b2b_by_external_id();
}

#[tokio::test]
async fn one_json_log_line_per_invoice_action_and_constant_logs_for_an_unchanged_cycle() {
    use b2b_invoice_sync::config::LogFormat;
    use tracing_subscriber::EnvFilter;
    let world = World::new(40).await;
    let engine = world.engine();
    let capture = crate::helpers::LogCapture::default();
    let subscriber = b2b_invoice_sync::telemetry::subscriber(
        LogFormat::Json,
        EnvFilter::new("info"),
        capture.clone(),
    );
    let _guard = tracing::subscriber::set_default(subscriber);

    let first = engine.run_cycle(SOURCE).await.expect("cycle");
    let lines: Vec<serde_json::Value> = capture
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let actions: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["message"] == json!("invoice action"))
        .collect();
    assert_eq!(
        actions.len() as i32,
        first.counts.created,
        "one line per action"
    );
    for a in &actions {
        // One fixed place: flat top-level fields, never nested in `span` / `spans`.
        assert!(a.get("span").is_none() && a.get("spans").is_none(), "{a}");
        for field in [
            "run_id",
            "source",
            "store",
            "external_id",
            "invoice_number",
            "action",
            "attempt",
            "b2b_invoice_id",
            "http_status",
        ] {
            assert!(
                a.get(field).is_some(),
                "{field} missing at the top level of {a}"
            );
        }
        assert_eq!(a["outcome"], json!("create"));
        assert!(a["latency_ms"].is_u64());
        assert!(a["budget_wait_ms"].is_u64(), "the budget wait apart: {a}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == json!("sync run finished")),
        "one summary line"
    );

    let before = capture.text().lines().count();
    engine.run_cycle(SOURCE).await.expect("unchanged cycle");
    let unchanged_lines = capture.text().lines().count() - before;
    assert!(
        unchanged_lines <= 3,
        "an unchanged cycle logs O(1) lines, not one per invoice: {unchanged_lines}"
    );
}

#[tokio::test]
async fn old_settled_ledger_rows_and_runs_are_pruned_but_in_flight_rows_never() {
    let mut world = World::new(5).await;
    world.settings.engine.ledger_retention = std::time::Duration::from_secs(7 * 86_400);
    world.settings.engine.runs_retention = std::time::Duration::from_secs(30 * 86_400);
    let engine = world.engine();
    engine.run_cycle(SOURCE).await.expect("cycle");
    let pool = &world.db.pool;
    // Age everything: settled ledger rows 8 days, runs 31 days; plus an old in-flight row.
    sqlx::query("UPDATE ledger SET created_at = now() - interval '8 days'")
        .execute(pool)
        .await
        .expect("age");
    sqlx::query("UPDATE sync_runs SET started_at = now() - interval '31 days'")
        .execute(pool)
        .await
        .expect("age");
    sqlx::query("INSERT INTO ledger (source, external_id, invoice_number, op, state, created_at) VALUES ('other', 'x', 'n', 'create', 'in_flight', now() - interval '100 days')")
        .execute(pool)
        .await
        .expect("old in-flight row");
    engine.run_cycle(SOURCE).await.expect("cycle");
    let settled: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger WHERE state <> 'in_flight'")
        .fetch_one(pool)
        .await
        .expect("count");
    let in_flight: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ledger WHERE state = 'in_flight'")
            .fetch_one(pool)
            .await
            .expect("count");
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_runs")
        .fetch_one(pool)
        .await
        .expect("count");
    assert_eq!(settled, 0, "old settled rows pruned");
    assert_eq!(in_flight, 1, "an in-flight row is kept whatever its age");
    assert_eq!(runs, 1, "only the new run is left");
}

/// Issue 14, item 4: an invoice action's `latency_ms` is its own time; the time it waited for
/// the store's request budget is `budget_wait_ms`, apart.
#[tokio::test]
async fn latency_leaves_out_the_wait_for_the_budget() {
    use b2b_invoice_sync::config::LogFormat;
    use std::num::NonZeroU32;
    use tracing_subscriber::EnvFilter;
    let mut world = World::new(8).await;
    let store = world.settings.stores.get_mut("acme").expect("store");
    // Two requests a second, no burst: concurrent creates queue for the budget.
    store.budget.requests_per_minute = NonZeroU32::new(120).expect("non-zero");
    store.budget.burst = NonZeroU32::MIN;
    let engine = world.engine();
    let capture = crate::helpers::LogCapture::default();
    let subscriber = b2b_invoice_sync::telemetry::subscriber(
        LogFormat::Json,
        EnvFilter::new("info"),
        capture.clone(),
    );
    let _guard = tracing::subscriber::set_default(subscriber);
    let report = engine.run_cycle(SOURCE).await.expect("cycle");
    assert!(report.counts.created >= 4, "{report:#?}");
    let actions: Vec<serde_json::Value> = capture
        .text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == json!("invoice action"))
        .collect();
    assert_eq!(actions.len() as i32, report.counts.created, "{actions:?}");
    let waited: Vec<u64> = actions
        .iter()
        .map(|a| a["budget_wait_ms"].as_u64().expect("budget_wait_ms"))
        .collect();
    assert!(
        waited.iter().any(|w| *w >= 400),
        "some creates waited for their turn: {waited:?}"
    );
    for a in &actions {
        let latency = a["latency_ms"].as_u64().expect("latency_ms");
        assert!(
            latency < 400,
            "the request alone, without the budget wait: {a}"
        );
    }
}

/// Issue 14, item 4: a cycle that failed says so at ERROR, so that a level filter finds it.
#[tokio::test]
async fn a_failed_cycle_logs_its_summary_at_error() {
    use b2b_invoice_sync::config::LogFormat;
    use b2b_invoice_sync::sandbox::unified::ErrorRates;
    use tracing_subscriber::EnvFilter;
    let world = World::new(3).await;
    world
        .erp
        .control()
        .set_error_rates(ErrorRates {
            status_500: 0.0,
            status_503: 1.0,
            status_429: 0.0,
        })
        .expect("rates");
    let engine = world.engine();
    let capture = crate::helpers::LogCapture::default();
    let subscriber = b2b_invoice_sync::telemetry::subscriber(
        LogFormat::Json,
        EnvFilter::new("info"),
        capture.clone(),
    );
    let _guard = tracing::subscriber::set_default(subscriber);
    let report = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(
        report.outcome,
        b2b_invoice_sync::store::runs::Outcome::Failed,
        "{report:#?}"
    );
    let finished: Vec<serde_json::Value> = capture
        .text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == json!("sync run finished"))
        .collect();
    assert_eq!(finished.len(), 1, "{}", capture.text());
    assert_eq!(finished[0]["level"], json!("ERROR"), "{}", finished[0]);
    assert_eq!(finished[0]["outcome"], json!("failed"));
    assert!(finished[0]["error"].is_string(), "{}", finished[0]);
}
