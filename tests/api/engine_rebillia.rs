//! The engine against the Rebillia sandbox in its strict readings (issue 13, item 4): amounts
//! served in cents, as dollar strings or as the documents have them sync to the same B2B
//! amounts; an invoice whose arithmetic fits neither unit is refused with the sums; a list that
//! ignores `orderBy=updatedAt` still brings every changed invoice.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{json, Value};

use b2b_invoice_sync::config::{AdapterSettings, HttpSettings, RebilliaSettings};
use b2b_invoice_sync::sandbox::rebillia::{
    self as sandbox, AmountStyle, InvoiceEdit, LineSpec, ListOrder, RebilliaSandboxConfig,
    RunningRebilliaSandbox,
};
use b2b_invoice_sync::store::refused;
use b2b_invoice_sync::sync::engine::RunReport;

use crate::engine_world::{World, SOURCE};
use crate::helpers::fast_retry;

/// A world whose source is a Rebillia sandbox of 25 seeded invoices, read 10 a page.
async fn world(amounts: AmountStyle, list_order: ListOrder) -> (World, RunningRebilliaSandbox) {
    let mut world = World::new(0).await;
    let rb = sandbox::start(
        RebilliaSandboxConfig {
            seed_invoices: 25,
            amounts,
            list_order,
            ..RebilliaSandboxConfig::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("Rebillia sandbox starts");
    world.source_mut().adapter = AdapterSettings::Rebillia(RebilliaSettings {
        base_url: rb.base_url().parse().expect("URL"),
        token: SecretString::from(RebilliaSandboxConfig::default().token),
        http: HttpSettings {
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            retry: fast_retry(),
            page_size: NonZeroU32::new(10).expect("non-zero"),
        },
        amount_unit: Default::default(),
    });
    (world, rb)
}

/// What B2B holds of each invoice's amounts, by external id.
fn b2b_amounts(world: &World) -> BTreeMap<String, Value> {
    world
        .b2b_by_external_id()
        .into_iter()
        .map(|(id, inv)| {
            let amounts = json!({
                "originalBalance": inv["originalBalance"],
                "openBalance": inv["openBalance"],
                "costLines": inv["details"]["header"]["costLines"],
                "lineItems": inv["details"]["details"]["lineItems"],
            });
            (id, amounts)
        })
        .collect()
}

#[tokio::test]
async fn the_same_invoices_in_cents_and_in_dollars_sync_to_the_same_b2b_amounts() {
    let mut seen = Vec::new();
    for style in [
        AmountStyle::Cents,
        AmountStyle::Dollars,
        AmountStyle::Documented,
    ] {
        let (world, rb) = world(style, ListOrder::Honoured).await;
        let engine = world.engine();
        let reports = world.sync_until_quiet(&engine, 5).await;
        for r in &reports {
            assert!(r.failures.is_empty(), "{style:?}: {r:#?}");
        }
        let refused = refused::list(&world.db.pool, Some(SOURCE))
            .await
            .expect("refused records");
        assert!(refused.is_empty(), "{style:?}: {refused:#?}");
        let amounts = b2b_amounts(&world);
        // 25 seeded, less the void ones (1009, 1018), which are never created.
        assert_eq!(amounts.len(), 23, "{style:?}");
        seen.push((style, amounts));
        rb.shutdown().await;
    }
    let (_, cents) = &seen[0];
    for (style, amounts) in &seen[1..] {
        assert_eq!(amounts, cents, "{style:?} differs from cents");
    }
}

#[tokio::test]
async fn the_b2b_amounts_are_the_sandboxes_cents_over_100() {
    let (world, rb) = world(AmountStyle::Dollars, ListOrder::Honoured).await;
    let engine = world.engine();
    world.sync_until_quiet(&engine, 5).await;
    // The sandbox holds cents; in dollars mode it writes them as "41.00": read them back in
    // cents mode to check what B2B got.
    rb.control().set_amount_style(AmountStyle::Cents);
    let b2b = world.b2b_by_external_id();
    let mut checked = 0;
    for invoice in rb.control().invoices() {
        let id = invoice["id"].as_str().expect("id");
        let Some(pushed) = b2b.get(id) else {
            continue;
        };
        let total = rust_decimal::Decimal::new(invoice["total"].as_i64().expect("cents"), 2);
        let original: rust_decimal::Decimal = pushed["originalBalance"]["value"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| pushed["originalBalance"]["value"].to_string())
            .parse()
            .expect("decimal");
        assert_eq!(original, total, "invoice {id}");
        checked += 1;
    }
    assert_eq!(checked, 23);
    rb.shutdown().await;
}

#[tokio::test]
async fn an_invoice_whose_arithmetic_fits_neither_unit_is_refused_with_the_sums() {
    let (world, rb) = world(AmountStyle::Cents, ListOrder::Honoured).await;
    // One line of 100.00, no shipping or tax, and a total of 12345: 123.45 in cents, 12345 in
    // dollars; the lines make 100.00 or 10000.
    let bad = rb
        .control()
        .insert_malformed(&json!({"total": 12345}))
        .expect("insert");
    let engine = world.engine();
    // It stays in the window (the newest invoice): refused again each cycle, never pushed.
    let mut reports = Vec::new();
    for _ in 0..2 {
        reports.push(engine.run_cycle(SOURCE).await.expect("cycle"));
    }
    let refused = refused::list(&world.db.pool, Some(SOURCE))
        .await
        .expect("refused records");
    assert_eq!(refused.len(), 1, "{refused:#?}");
    let row = &refused[0];
    assert_eq!(row.external_id.as_deref(), Some(bad.to_string().as_str()));
    assert_eq!(row.field.as_deref(), Some("total"));
    let number = rb.control().invoice(bad).expect("invoice")["invoiceNo"]
        .as_str()
        .expect("invoiceNo")
        .to_owned();
    assert_eq!(
        row.reason,
        format!(
            "invoice {number}: the amounts add up neither in cents nor in dollars: in cents, \
             lines 100.00 + shipping 0.00 + tax 0.00 = 100.00, total 123.45; in dollars, lines \
             10000.00 + shipping 0.00 + tax 0.00 = 10000.00, total 12345.00"
        )
    );
    assert!(
        !world.b2b_by_external_id().contains_key(&bad.to_string()),
        "never pushed"
    );
    assert_eq!(world.b2b_by_external_id().len(), 23, "the others are");
    let first: &RunReport = &reports[0];
    assert_eq!(first.counts.created, 23, "{first:#?}");
    assert!(
        first.failures.iter().any(|f| f.ends_with(&row.reason)),
        "the run report names it: {first:#?}"
    );
    assert_eq!(reports[1].counts.created + reports[1].counts.updated, 0);

    // Fixed in Rebillia (the total is its lines again): taken, and off the refused list.
    rb.control()
        .corrupt_invoice(bad, &json!({"total": 10000}))
        .expect("fix");
    world.sync_until_quiet(&engine, 5).await;
    assert!(world.b2b_by_external_id().contains_key(&bad.to_string()));
    assert!(refused::list(&world.db.pool, Some(SOURCE))
        .await
        .expect("refused records")
        .is_empty());
    rb.shutdown().await;
}

/// The change `edit` makes: new lines and tax, so the total moves.
fn change(k: i64) -> InvoiceEdit {
    InvoiceEdit {
        lines: Some(vec![LineSpec {
            description: format!("Changed plan {k}"),
            qty: 2,
            amount_cents: 1_250 + k,
        }]),
        tax_cents: Some(77),
        ..InvoiceEdit::default()
    }
}

fn b2b_total(world: &World, id: u64) -> String {
    let inv = &world.b2b_by_external_id()[&id.to_string()];
    let value = &inv["originalBalance"]["value"];
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

/// The invoice's total in Rebillia (a sandbox serving cents).
fn erp_total(rb: &RunningRebilliaSandbox, id: u64) -> String {
    let cents = rb.control().invoice(id).expect("invoice")["total"]
        .as_i64()
        .expect("cents");
    rust_decimal::Decimal::new(cents, 2).to_string()
}

fn same_amount(b2b: &str, want: &str) -> bool {
    b2b.parse::<rust_decimal::Decimal>().ok() == want.parse().ok()
}

#[tokio::test]
async fn a_list_that_ignores_the_sort_still_syncs_every_changed_invoice() {
    // Newest *created* first whatever is asked: the first page looks sorted by updatedAt, and
    // an old invoice changed now sits on the last page. The walk's early stop alone would
    // never reach it.
    let (world, rb) = world(AmountStyle::Cents, ListOrder::Ignored).await;
    let engine = world.engine();
    world.sync_until_quiet(&engine, 5).await;
    assert_eq!(world.b2b_by_external_id().len(), 23);

    // 1003 is on page 3 of 3 (1025..1016, 1015..1006, 1005..1001).
    rb.control().edit_invoice(1003, &change(3)).expect("edit");
    let mut reports = Vec::new();
    for _ in 0..3 {
        let r = engine.run_cycle(SOURCE).await.expect("cycle");
        let done = r.counts.updated > 0;
        reports.push(r);
        if done {
            break;
        }
    }
    assert!(
        same_amount(&b2b_total(&world, 1003), &erp_total(&rb, 1003)),
        "1003 synced within as many cycles as pages below the first: {reports:#?}"
    );
    let told = reports
        .iter()
        .flat_map(|r| &r.notices)
        .find(|n| n.contains("did not sort invoices by updatedAt"))
        .unwrap_or_else(|| panic!("the run report says so: {reports:#?}"));
    assert!(told.contains("invoice 1003"), "{told}");

    // From now on every cycle reads every page: a change anywhere is taken at once.
    rb.control().edit_invoice(1012, &change(12)).expect("edit");
    rb.control().edit_invoice(1001, &change(1)).expect("edit");
    let r = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(r.counts.updated, 2, "{r:#?}");
    assert!(same_amount(&b2b_total(&world, 1012), &erp_total(&rb, 1012)));
    assert!(same_amount(&b2b_total(&world, 1001), &erp_total(&rb, 1001)));
    let quiet = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(
        quiet.counts.created + quiet.counts.updated + quiet.counts.failed,
        0,
        "{quiet:#?}"
    );
    rb.shutdown().await;
}
