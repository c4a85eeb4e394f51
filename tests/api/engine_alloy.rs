//! The engine with an Alloy source (issue #12's acceptance), against the sandbox's Alloy API,
//! the B2B sandbox and a fresh database: 1 000 invoices over 300 customers in each version,
//! five ERP changes, an idle cycle, an edit Alloy's cache learns late, and ERP faults mid-scan.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::json;

use b2b_invoice_sync::sandbox::unified::{
    alloy_remote_id, remote_id, AlloyCounters, AlloyVersion, Fault, FaultRule,
};
use b2b_invoice_sync::store::runs::Outcome;

use crate::alloy_world::*;
use crate::engine_world::World as GenericWorld;

const LIST: &str = "GET /accounting/invoices";
const CUSTOMERS: &str = "GET /accounting/customers";
const B2B_LIST: &str = "GET /ip/invoices";
const B2B_PUT: &str = "PUT /ip/invoices/{id}";
const B2B_POST: &str = "POST /ip/invoices";

/// The first cycle creates every live invoice once (externalId = remoteId, externalCustomerId
/// = the customer's remoteId, company mapped from it) and none that is deleted or voided;
/// five ERP changes make exactly five PUTs (and the one bulk read of their current state);
/// an idle cycle makes no B2B call and reads the ERP inside its budget; the sandbox never
/// sees a lookup by remoteId or a clamped page.
async fn acceptance(version: AlloyVersion) {
    let world = AlloyWorld::new(version, 1000, 300, |_| {}).await;
    let erp = world.erp.control();
    let deleted: BTreeSet<u64> = (1..=10).map(|k| k * 97).collect();
    let voided: BTreeSet<u64> = (1..=5).map(|k| k * 131 + 1).collect();
    for i in &deleted {
        erp.delete_invoice(&alloy_remote_id(*i)).expect("delete");
    }
    for i in &voided {
        erp.void_invoice(&alloy_remote_id(*i)).expect("void");
    }
    let live: Vec<u64> = (1..=1000)
        .filter(|i| !deleted.contains(i) && !voided.contains(i))
        .collect();
    let engine = world.engine();

    let first = engine.run_cycle(SOURCE).await.expect("first cycle");
    assert_eq!(first.outcome, Outcome::Ok, "{version:?}: {first:?}");
    assert_eq!(first.counts.created, 985, "{version:?}: {first:?}");
    assert_eq!(first.counts.failed, 0);
    let b2b = world.b2b_by_external_id();
    assert_eq!(b2b.len(), live.len(), "{version:?}: each live invoice once");
    for i in &live {
        let inv = &b2b[&alloy_remote_id(*i)];
        let k = customer_of(*i, 300);
        assert_eq!(inv["externalCustomerId"], format!("CUST-{k:05}"), "{inv}");
        assert_eq!(inv["customerId"], k.to_string(), "company {k}: {inv}");
        assert_eq!(inv["invoiceNumber"], format!("INV-{i:06}"));
    }
    for i in deleted.iter().chain(&voided) {
        assert!(!b2b.contains_key(&alloy_remote_id(*i)), "{i} reached B2B");
    }
    let routes = world.b2b_routes();
    assert_eq!(routes.get(B2B_POST), Some(&985), "{routes:?}");
    assert!(
        !routes.keys().any(|r| r.starts_with("DELETE")),
        "{routes:?}"
    );
    assert_eq!(
        erp.alloy_counters(),
        AlloyCounters::default(),
        "{version:?}"
    );

    // The ERP changes five invoices.
    let changed = [3u64, 250, 501, 777, 999];
    for i in changed {
        erp.update_invoice(
            &alloy_remote_id(i),
            &json!({ "purchaseOrders": [{ "number": format!("PO-CHANGED-{i}") }] }),
        )
        .expect("ERP change");
    }
    world.b2b.control().reset_stats();
    let second = engine.run_cycle(SOURCE).await.expect("second cycle");
    assert_eq!(
        (
            second.counts.created,
            second.counts.updated,
            second.counts.failed
        ),
        (0, 5, 0),
        "{version:?}: {second:?}"
    );
    assert_eq!(
        world.b2b_routes(),
        BTreeMap::from([(B2B_LIST.to_owned(), 1), (B2B_PUT.to_owned(), 5)]),
        "{version:?}: 5 PUTs after one bulk read of their current state, nothing else"
    );
    let b2b = world.b2b_by_external_id();
    for i in changed {
        assert_eq!(
            b2b[&alloy_remote_id(i)]["purchaseOrderNumber"],
            format!("PO-CHANGED-{i}")
        );
    }

    // Nothing changes: no B2B call; the ERP is read within its budget.
    world.b2b.control().reset_stats();
    erp.reset_stats();
    let started = Instant::now();
    let idle = engine.run_cycle(SOURCE).await.expect("idle cycle");
    let took = started.elapsed();
    assert_eq!(idle.counts.unchanged, 1000, "{version:?}: {idle:?}");
    assert_eq!(idle.b2b_calls, 0);
    assert_eq!(
        world.b2b.control().stats().total,
        0,
        "{version:?}: no B2B call"
    );
    let stats = erp.stats();
    let pages = match version {
        AlloyVersion::V2024_03 => 11,
        AlloyVersion::V2023_12 => 10,
    };
    assert_eq!(stats.route_total(LIST), pages, "{version:?}: {stats:?}");
    assert_eq!(
        stats.route_total(CUSTOMERS),
        0,
        "customers come from the cache"
    );
    assert_eq!(stats.total, pages);
    // The run names its ERP calls apart from its B2B calls: each one the ERP answered.
    assert_eq!(idle.erp_calls, pages, "{version:?}: {idle:?}");
    assert_eq!(stats.rate_limited, 0, "never over Alloy's 150 a minute");
    // 150 a minute, no burst: the pages are paced, ~0.4 s apart.
    assert!(
        took >= Duration::from_millis(400 * (pages - 1)),
        "{version:?}: {took:?}"
    );
    assert_eq!(
        erp.alloy_counters(),
        AlloyCounters::default(),
        "{version:?}"
    );
}

#[tokio::test]
async fn alloy_2024_03_creates_once_updates_five_and_idles_at_zero_b2b_calls() {
    acceptance(AlloyVersion::V2024_03).await;
}

#[tokio::test]
async fn alloy_2023_12_creates_once_updates_five_and_idles_at_zero_b2b_calls() {
    acceptance(AlloyVersion::V2023_12).await;
}

const LATE_PO: &str = "PO-EDITED-BEFORE-B";

/// An invoice (A) is edited in the ERP; another (B) is created afterwards, and Alloy lists it
/// before A. Alloy's cache learns of B first and of A's edit a poll later, still stamped with
/// the edit's own time, an hour before B's. Syncs run in between.
#[tokio::test]
async fn an_edit_the_cache_learns_late_is_synced_where_a_watermark_walk_misses_it() {
    // Alloy: a full scan per cycle.
    let world = AlloyWorld::new(AlloyVersion::V2024_03, 50, 10, |_| {}).await;
    let erp = world.erp.control();
    let engine = world.engine();
    let a = alloy_remote_id(20);
    assert_eq!(
        engine.run_cycle(SOURCE).await.expect("c1").counts.created,
        50
    );
    let b = erp.create_invoice_before(&a).expect("B listed before A");
    assert_eq!(
        engine.run_cycle(SOURCE).await.expect("c2").counts.created,
        1
    );
    let b_stamp = erp.invoice(&b).expect("B")["remoteUpdatedAt"]
        .as_str()
        .expect("stamp")
        .parse::<chrono::DateTime<chrono::Utc>>()
        .expect("RFC 3339");
    erp.update_invoice_at(
        &a,
        &json!({ "purchaseOrders": [{ "number": LATE_PO }] }),
        b_stamp - chrono::Duration::hours(1),
    )
    .expect("A's edit reaches the cache");
    let third = engine.run_cycle(SOURCE).await.expect("c3");
    assert_eq!(third.counts.updated, 1, "{third:?}");
    assert_eq!(
        world.b2b_by_external_id()[&a]["purchaseOrderNumber"],
        LATE_PO
    );

    // The same story read by an updated-since watermark (the generic API, sorted and
    // filtered by remoteUpdatedAt, with the adapter's 300 s overlap): A's edit is behind the
    // watermark B moved, and is never read.
    let generic = GenericWorld::new(50).await;
    let erp = generic.erp.control();
    let engine = generic.engine();
    let a = remote_id(20);
    assert_eq!(
        engine.run_cycle("erp").await.expect("c1").counts.created,
        50
    );
    let b = erp.create_invoice();
    assert_eq!(engine.run_cycle("erp").await.expect("c2").counts.created, 1);
    let b_stamp = erp.invoice(&b).expect("B")["remoteUpdatedAt"]
        .as_str()
        .expect("stamp")
        .parse::<chrono::DateTime<chrono::Utc>>()
        .expect("RFC 3339");
    erp.update_invoice_at(
        &a,
        &json!({ "purchaseOrders": [{ "number": LATE_PO }] }),
        b_stamp - chrono::Duration::hours(1),
    )
    .expect("A's edit");
    let third = engine.run_cycle("erp").await.expect("c3");
    assert_eq!(third.counts.updated, 0, "the watermark walk is blind to it");
    assert_ne!(
        generic.b2b_by_external_id()[&a]["purchaseOrderNumber"],
        LATE_PO
    );
}

/// 429s with Retry-After, a 429 without, 5xx and a dropped connection while a cycle scans:
/// it slows down, loses nothing, and never sends more than the source's budget allows (the
/// sandbox refuses a fifth request within any 6 s; the budget is 40 a minute, one per 1.54 s).
#[tokio::test]
async fn erp_429s_and_5xx_mid_scan_slow_the_cycle_and_lose_nothing() {
    let mut world = AlloyWorld::new(AlloyVersion::V2024_03, 500, 100, |c| {
        c.rate_limit = 4;
        c.rate_window = Duration::from_secs(6);
    })
    .await;
    world.unified_mut().api.requests_per_minute = std::num::NonZeroU32::new(40);
    let erp = world.erp.control();
    for fault in [
        Fault::Status429 {
            retry_after_secs: Some(3),
        },
        Fault::Status500,
        Fault::Status503,
        Fault::DropBeforeApply,
        Fault::Status429 {
            retry_after_secs: None,
        },
    ] {
        erp.push_fault(FaultRule::once(fault).on_method("GET"));
    }
    let engine = world.engine();
    let started = Instant::now();
    let report = engine.run_cycle(SOURCE).await.expect("cycle");
    let took = started.elapsed();
    assert_eq!(report.outcome, Outcome::Ok, "{report:?}");
    assert_eq!((report.counts.created, report.counts.failed), (500, 0));
    assert_eq!(world.b2b_by_external_id().len(), 500, "nothing lost");
    assert!(erp.pending_faults().is_empty(), "every fault hit");
    let stats = erp.stats();
    assert_eq!(
        stats.rate_limited, 0,
        "the budget was never exceeded: {stats:?}"
    );
    assert_eq!(stats.too_many_requests, 2, "only the injected 429s");
    let log = erp.requests();
    for (i, r) in log.iter().enumerate() {
        let in_window = log[i..]
            .iter()
            .take_while(|u| u.at < r.at + Duration::from_secs(6))
            .count();
        assert!(
            in_window <= 4,
            "{in_window} requests within 6 s of {:?}",
            r.at
        );
        if r.status == Some(429) && i == 0 {
            // The first request got the Retry-After: 3 s.
            assert!(log[1].at >= r.at + Duration::from_secs(3), "{log:?}");
        }
    }
    assert!(took >= Duration::from_secs(3), "slowed down: {took:?}");
}

/// Whatever the strategy, [customers] maps the ERP's customer number (Alloy's customer
/// `remoteId`), never Alloy's UUID.
#[tokio::test]
async fn every_customer_strategy_maps_the_erp_customer_number() {
    use b2b_invoice_sync::config::CustomerMapping;
    let map: BTreeMap<String, String> = (1..=5)
        .map(|k| (format!("CUST-{k:05}"), k.to_string()))
        .collect();
    for strategy in ["static", "table"] {
        let mut world = AlloyWorld::new(AlloyVersion::V2023_12, 30, 5, |_| {}).await;
        let mapping = match strategy {
            "static" => CustomerMapping::Static(map.clone()),
            _ => {
                for (customer, company) in &map {
                    sqlx::query(
                        "INSERT INTO customer_map (source, external_customer_id, company_id, origin)
                         VALUES ($1, $2, $3, 'import')",
                    )
                    .bind(SOURCE)
                    .bind(customer)
                    .bind(company)
                    .execute(&world.db.pool)
                    .await
                    .expect("import a customer");
                }
                CustomerMapping::Table
            }
        };
        world
            .settings
            .sources
            .get_mut(SOURCE)
            .expect("source")
            .customers = mapping;
        let report = world.engine().run_cycle(SOURCE).await.expect("cycle");
        assert_eq!(
            (report.counts.created, report.counts.failed),
            (30, 0),
            "{strategy}: {report:?}"
        );
        for (external, inv) in world.b2b_by_external_id() {
            let index: u64 = external.parse::<u64>().expect("numeric remoteId") - 1000;
            let k = customer_of(index, 5);
            assert_eq!(inv["customerId"], k.to_string(), "{strategy}: {inv}");
            assert_eq!(inv["externalCustomerId"], format!("CUST-{k:05}"));
        }
    }
}

/// What the adapter keeps in PostgreSQL serves a new process (a new Engine on the same
/// database, nothing in memory): Alloy's ids (`unified_refs`) address an invoice a webhook
/// names without a scan, and the customers (`unified_customers`) resolve without a customer
/// read; once the list is older than `customers_refresh_secs`, the next scan reads it whole
/// again, once.
#[tokio::test]
async fn alloy_ids_and_customers_kept_in_postgres_serve_a_new_process_until_the_refresh_is_due() {
    const ONE: &str = "GET /accounting/invoices/{id}";
    const CUSTOMER: &str = "GET /accounting/customers/{id}";
    let (invoices, customers) = (30usize, 10usize);
    let world = AlloyWorld::new(AlloyVersion::V2024_03, invoices, customers, |_| {}).await;
    let erp = world.erp.control();
    let every = match &world.settings.sources[SOURCE].adapter {
        b2b_invoice_sync::config::AdapterSettings::Unified(u) => u
            .api
            .customer_lookup
            .expect("the Alloy presets resolve customers"),
        _ => panic!("an Alloy source"),
    };

    let first = world.engine().run_cycle(SOURCE).await.expect("first cycle");
    assert_eq!(first.counts.created as usize, invoices, "{first:?}");
    let list_reads = erp.stats().route_total(CUSTOMERS);
    assert!(list_reads >= 1, "the first scan reads the customers list");
    let kept: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM unified_refs WHERE source = $1),
                (SELECT count(*) FROM unified_customers WHERE source = $1)",
    )
    .bind(SOURCE)
    .fetch_one(&world.db.pool)
    .await
    .expect("count kept rows");
    assert_eq!(kept, (invoices as i64, customers as i64));

    // A new process: a webhook names one changed invoice. It is read by its Alloy id (kept) and
    // its customer resolved from the kept ones: one ERP request, no list, no customer read.
    let i = 7u64;
    erp.update_invoice(
        &alloy_remote_id(i),
        &json!({ "purchaseOrders": [{ "number": "PO-KEPT-7" }] }),
    )
    .expect("ERP change");
    erp.reset_stats();
    let named = world
        .engine()
        .sync_invoices(SOURCE, &[alloy_remote_id(i)])
        .await
        .expect("a cycle over one invoice");
    assert_eq!(
        (named.counts.updated, named.counts.failed),
        (1, 0),
        "{named:?}"
    );
    let stats = erp.stats();
    assert_eq!(stats.route_total(ONE), 1, "{stats:?}");
    assert_eq!(stats.total, 1, "nothing but the invoice itself: {stats:?}");
    assert_eq!(
        world.b2b_by_external_id()[&alloy_remote_id(i)]["purchaseOrderNumber"],
        "PO-KEPT-7"
    );

    // Another new process's full scan: the customers are kept, none is read.
    erp.reset_stats();
    let idle = world.engine().run_cycle(SOURCE).await.expect("idle cycle");
    assert_eq!(idle.counts.unchanged as usize, invoices, "{idle:?}");
    let stats = erp.stats();
    assert_eq!(
        (stats.route_total(CUSTOMERS), stats.route_total(CUSTOMER)),
        (0, 0),
        "{stats:?}"
    );

    // The list read longer ago than customers_refresh_secs: the next scan reads it whole, once.
    sqlx::query(
        "UPDATE unified_customer_refreshes SET refreshed_at = now() - make_interval(secs => $2)
          WHERE source = $1",
    )
    .bind(SOURCE)
    .bind(every.as_secs_f64() + 60.0)
    .execute(&world.db.pool)
    .await
    .expect("age the customer list");
    erp.reset_stats();
    let due = world
        .engine()
        .run_cycle(SOURCE)
        .await
        .expect("refresh cycle");
    assert_eq!(due.counts.failed, 0, "{due:?}");
    assert_eq!(erp.stats().route_total(CUSTOMERS), list_reads);
    erp.reset_stats();
    world.engine().run_cycle(SOURCE).await.expect("next cycle");
    assert_eq!(
        erp.stats().route_total(CUSTOMERS),
        0,
        "refreshed: not read again until due"
    );
}
