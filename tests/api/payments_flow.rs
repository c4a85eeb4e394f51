//! Payments flow back (issue 7), end to end: the engine against the B2B sandbox (a buyer pays in
//! the portal), the unified ERP sandbox (takes the write-back, perhaps later) and real PostgreSQL.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::json;

use b2b_invoice_sync::config::PaymentSettings;
use b2b_invoice_sync::payments::events::{self, WriteState};
use b2b_invoice_sync::sandbox::unified::{remote_id, Fault, FaultRule};
use b2b_invoice_sync::source::write_back::PaymentKind;
use b2b_invoice_sync::sync::engine::{Engine, RunReport};

use crate::engine_world::{World, SOURCE};
use crate::helpers::STORE_HASH;

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).expect("decimal")
}

/// One ERP invoice of 100.00 USD, open, synced to B2B; payments watched.
async fn world(write_back: bool) -> (World, String, u64) {
    let mut world = World::new(1).await;
    world.source_mut().payments = PaymentSettings {
        enabled: true,
        write_back,
        reference_field: Some("B2BPaymentRef".to_owned()),
        ..PaymentSettings::default()
    };
    let rid = remote_id(1);
    world
        .erp
        .control()
        .update_invoice(&rid, &hundred("Widget"))
        .expect("ERP invoice edited");
    let engine = world.engine();
    quiet(&engine).await;
    let b2b_id = b2b_id(&world, &rid);
    assert_eq!(b2b_open(&world, b2b_id), dec("100"));
    (world, rid, b2b_id)
}

/// An invoice of 100.00 with one line; `description` tells versions apart.
fn hundred(description: &str) -> serde_json::Value {
    json!({
        "currency": "USD",
        "lineItems": [{
            "id": "L1", "remoteId": "L1", "description": description, "unitPrice": 50,
            "quantity": 2, "totalAmount": 100, "currency": "USD", "accountingItemId": "ITEM-1",
            "accountId": "4000"
        }],
        "subTotal": "100.00", "totalTaxAmount": 0, "totalDiscount": "0.00",
        "totalAmount": 100, "balance": 100, "invoiceStatus": "OPEN",
    })
}

fn b2b_id(world: &World, rid: &str) -> u64 {
    world.b2b_by_external_id()[rid]["id"]
        .as_u64()
        .expect("B2B invoice id")
}

fn b2b_invoice(world: &World, id: u64) -> serde_json::Value {
    world
        .b2b
        .control()
        .invoice(STORE_HASH, id)
        .expect("B2B invoice")
}

fn b2b_open(world: &World, id: u64) -> Decimal {
    let inv = b2b_invoice(world, id);
    dec(inv["openBalance"]["value"].as_str().expect("openBalance"))
}

fn erp_balance(world: &World, rid: &str) -> Decimal {
    world
        .erp
        .control()
        .amounts(rid)
        .expect("ERP invoice")
        .balance
}

/// The `balance` of every PUT the ERP received for `rid`.
fn balances_received(world: &World, rid: &str) -> Vec<Decimal> {
    world
        .erp
        .control()
        .received_writes()
        .into_iter()
        .filter(|(id, _)| id == rid)
        .map(|(_, body)| dec(&body["balance"].to_string().replace('"', "")))
        .collect()
}

fn busy(r: &RunReport) -> bool {
    let c = &r.counts;
    let p = &r.payments;
    c.created + c.updated + c.deleted + c.failed + c.recovered > 0
        || p.detected + p.written + p.failed > 0
        || r.error.is_some()
}

/// Cycles until one does nothing (at most 8).
async fn quiet(engine: &Engine) -> Vec<RunReport> {
    let mut reports = Vec::new();
    for _ in 0..8 {
        let r = engine.run_cycle(SOURCE).await.expect("cycle runs");
        let done = !busy(&r);
        reports.push(r);
        if done {
            return reports;
        }
    }
    panic!("not quiet after 8 cycles: {reports:#?}");
}

async fn events_of(world: &World) -> Vec<events::Event> {
    events::list(&world.db.pool, Some(SOURCE), false, 100)
        .await
        .expect("events")
}

#[tokio::test]
async fn a_payment_reaches_the_erp_exactly_once_through_an_apply_then_500() {
    let (world, rid, id) = world(true).await;
    world
        .b2b
        .control()
        .pay_invoice(STORE_HASH, id, dec("40"))
        .expect("buyer pays");
    assert_eq!(b2b_open(&world, id), dec("60"));
    world
        .erp
        .control()
        .push_fault(FaultRule::once(Fault::ApplyThen500).on_method("PUT"));

    let reports = quiet(&world.engine()).await;
    assert_eq!(
        balances_received(&world, &rid),
        vec![dec("60")],
        "{reports:#?}"
    );
    assert_eq!(erp_balance(&world, &rid), dec("60"));
    assert_eq!(b2b_open(&world, id), dec("60"));
    let evs = events_of(&world).await;
    assert_eq!(evs.len(), 1, "{evs:#?}");
    assert_eq!(evs[0].write_state, WriteState::Written);
    assert_eq!(evs[0].kind, PaymentKind::Payment);
    assert_eq!(evs[0].amount, dec("40"));
    assert!(evs[0].acknowledged_at.is_some(), "{evs:#?}");
    // The reference went where configured.
    let body = &world.erp.control().received_writes()[0].1;
    assert_eq!(
        body["remoteFields"]["B2BPaymentRef"],
        json!(format!("b2b-payment-{}", evs[0].payment_id))
    );
}

#[tokio::test]
async fn a_payment_reaches_the_erp_exactly_once_when_the_process_dies_mid_call() {
    let (world, rid, id) = world(true).await;
    world
        .b2b
        .control()
        .pay_invoice(STORE_HASH, id, dec("40"))
        .expect("buyer pays");
    {
        // The PUT is sent and applied, then the process dies before it records the outcome.
        let engine = world.engine();
        engine.failpoints().arm("after_payment_write", 1);
        let r = engine.run_cycle(SOURCE).await.expect("cycle runs");
        assert!(
            r.error
                .as_deref()
                .unwrap_or_default()
                .contains("after_payment_write"),
            "{r:#?}"
        );
        let evs = events_of(&world).await;
        assert_eq!(evs[0].write_state, WriteState::InFlight);
    }
    // A new process settles the write from the ERP's balance instead of sending it again.
    quiet(&world.engine()).await;
    assert_eq!(balances_received(&world, &rid), vec![dec("60")]);
    assert_eq!(erp_balance(&world, &rid), dec("60"));
    assert_eq!(events_of(&world).await[0].write_state, WriteState::Written);

    // Killed before the request left: the next process sends it (once).
    let _ = world
        .b2b
        .control()
        .pay_invoice(STORE_HASH, id, dec("10"))
        .expect("second payment");
    {
        let engine = world.engine();
        engine.failpoints().arm("before_payment_write", 1);
        let r = engine.run_cycle(SOURCE).await.expect("cycle runs");
        assert!(r.error.is_some());
    }
    quiet(&world.engine()).await;
    assert_eq!(balances_received(&world, &rid), vec![dec("60"), dec("50")]);
    assert_eq!(b2b_open(&world, id), dec("50"));
}

#[tokio::test]
async fn an_erp_change_before_it_acknowledges_the_payment_does_not_undo_it() {
    let (world, rid, id) = world(true).await;
    let erp = world.erp.control();
    erp.hold_writes(true);
    world
        .b2b
        .control()
        .pay_invoice(STORE_HASH, id, dec("40"))
        .expect("buyer pays");
    let engine = world.engine();
    quiet(&engine).await;
    assert_eq!(balances_received(&world, &rid), vec![dec("60")]);
    assert_eq!(
        erp_balance(&world, &rid),
        dec("100"),
        "the ERP has not imported it yet"
    );

    // The ERP changes the line items (same total) before it imports the payment.
    erp.update_invoice(&rid, &hundred("Widget, blue"))
        .expect("ERP edit");
    quiet(&engine).await;
    let inv = b2b_invoice(&world, id);
    assert_eq!(
        inv["details"]["details"]["lineItems"][0]["description"],
        json!("Widget, blue"),
        "{inv:#}"
    );
    assert_eq!(b2b_open(&world, id), dec("60"), "the payment stays in B2B");
    assert!(events_of(&world).await[0].acknowledged_at.is_none());

    // The ERP imports it: the adjustment ends, the balance is the ERP's own.
    assert_eq!(erp.acknowledge_writes(), 1);
    quiet(&engine).await;
    assert_eq!(erp_balance(&world, &rid), dec("60"));
    assert_eq!(b2b_open(&world, id), dec("60"));
    assert!(events_of(&world).await[0].acknowledged_at.is_some());
    // Later ERP changes push the ERP's balance as it is.
    erp.update_invoice(&rid, &json!({ "memo": "thanks" }))
        .expect("ERP edit");
    quiet(&engine).await;
    assert_eq!(b2b_open(&world, id), dec("60"));
    assert_eq!(balances_received(&world, &rid).len(), 1);
}

#[tokio::test]
async fn a_full_payment_and_its_refund_reach_both_sides() {
    let (world, rid, id) = world(true).await;
    let payment = world
        .b2b
        .control()
        .pay_invoice(STORE_HASH, id, dec("100"))
        .expect("buyer pays all");
    let engine = world.engine();
    quiet(&engine).await;
    assert_eq!(erp_balance(&world, &rid), dec("0"));
    let inv = b2b_invoice(&world, id);
    assert_eq!(inv["status"], json!(2), "{inv:#}");
    assert_eq!(b2b_open(&world, id), dec("0"));

    world
        .b2b
        .control()
        .refund_payment(STORE_HASH, payment)
        .expect("refund");
    quiet(&engine).await;
    assert_eq!(erp_balance(&world, &rid), dec("100"));
    assert_eq!(b2b_open(&world, id), dec("100"));
    assert_eq!(b2b_invoice(&world, id)["status"], json!(0));
    assert_eq!(balances_received(&world, &rid), vec![dec("0"), dec("100")]);
    let evs = events_of(&world).await;
    assert_eq!(evs.len(), 2);
    assert!(
        evs.iter()
            .all(|e| e.write_state == WriteState::Written && e.acknowledged_at.is_some()),
        "{evs:#?}"
    );
    assert!(evs.iter().any(|e| e.kind == PaymentKind::Refund));
}

#[tokio::test]
async fn with_write_back_off_nothing_reaches_the_erp_and_the_payment_still_holds() {
    let (world, rid, id) = world(false).await;
    world
        .b2b
        .control()
        .pay_invoice(STORE_HASH, id, dec("40"))
        .expect("buyer pays");
    let engine = world.engine();
    quiet(&engine).await;
    world
        .erp
        .control()
        .update_invoice(&rid, &hundred("Widget, red"))
        .expect("ERP edit");
    quiet(&engine).await;
    assert!(world.erp.control().received_writes().is_empty());
    assert_eq!(b2b_open(&world, id), dec("60"));
    assert_eq!(
        b2b_invoice(&world, id)["details"]["details"]["lineItems"][0]["description"],
        json!("Widget, red")
    );
    let evs = events_of(&world).await;
    assert_eq!(evs[0].write_state, WriteState::Off);
    // Finance keys the payment into the ERP by hand: the adjustment ends there.
    world
        .erp
        .control()
        .update_invoice(
            &rid,
            &json!({ "balance": 60, "invoiceStatus": "PARTIALLY_PAID" }),
        )
        .expect("ERP records it");
    quiet(&engine).await;
    assert_eq!(b2b_open(&world, id), dec("60"));
    assert!(events_of(&world).await[0].acknowledged_at.is_some());
}

#[tokio::test]
async fn payments_made_before_the_daemon_watched_are_taken_as_known() {
    let mut world = World::new(1).await;
    let engine = world.engine();
    quiet(&engine).await;
    let rid = remote_id(1);
    let id = b2b_id(&world, &rid);
    let open = b2b_open(&world, id);
    let part = (open / Decimal::from(4)).round_dp(2);
    world
        .b2b
        .control()
        .pay_invoice(STORE_HASH, id, part)
        .expect("paid before");
    world.source_mut().payments = PaymentSettings {
        enabled: true,
        write_back: true,
        ..PaymentSettings::default()
    };
    quiet(&world.engine()).await;
    assert!(world.erp.control().received_writes().is_empty());
    let evs = events_of(&world).await;
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].write_state, WriteState::Skipped);
    assert!(evs[0].acknowledged_at.is_some());
}

mod rebillia {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use secrecy::SecretString;

    use b2b_invoice_sync::config::{AdapterSettings, HttpSettings, RebilliaSettings};
    use b2b_invoice_sync::sandbox::rebillia::{
        self as sandbox, InvoiceEdit, NewInvoice, RebilliaSandboxConfig, RunningRebilliaSandbox,
    };

    use super::*;
    use crate::helpers::fast_retry;

    /// Two posted Rebillia invoices of 100.00 synced to B2B, payments written back.
    async fn world() -> (World, RunningRebilliaSandbox, u64, u64) {
        let mut world = World::new(1).await;
        let rb = sandbox::start(
            RebilliaSandboxConfig {
                seed_invoices: 0,
                ..RebilliaSandboxConfig::default()
            },
            "127.0.0.1:0".parse().expect("addr"),
        )
        .await
        .expect("Rebillia sandbox starts");
        let a = rb
            .control()
            .add_invoice(&NewInvoice::default())
            .expect("invoice");
        let b = rb
            .control()
            .add_invoice(&NewInvoice::default())
            .expect("invoice");
        let src = world.source_mut();
        src.adapter = AdapterSettings::Rebillia(RebilliaSettings {
            base_url: rb.base_url().parse().expect("URL"),
            token: SecretString::from(RebilliaSandboxConfig::default().token),
            http: HttpSettings {
                request_timeout: Duration::from_secs(10),
                connect_timeout: Duration::from_secs(2),
                retry: fast_retry(),
                page_size: NonZeroU32::new(50).expect("non-zero"),
            },
            amount_unit: Default::default(),
        });
        src.payments = PaymentSettings {
            enabled: true,
            write_back: true,
            ..PaymentSettings::default()
        };
        quiet(&world.engine()).await;
        (world, rb, a, b)
    }

    #[tokio::test]
    async fn a_posted_invoice_is_charged_and_a_paid_or_void_one_is_skipped_with_its_reason() {
        let (world, rb, a, b) = world().await;
        let ids = world.b2b_by_external_id();
        let (ba, bb) = (
            ids[&a.to_string()]["id"].as_u64().expect("id"),
            ids[&b.to_string()]["id"].as_u64().expect("id"),
        );
        let b2b = world.b2b.control();
        b2b.pay_invoice(STORE_HASH, ba, dec("40")).expect("pays a");
        b2b.pay_invoice(STORE_HASH, bb, dec("40")).expect("pays b");
        // Meanwhile b is voided in Rebillia.
        rb.control().void_invoice(b).expect("void");

        let engine = world.engine();
        let first = engine.run_cycle(SOURCE).await.expect("cycle");
        assert_eq!(first.payments.detected, 2, "{first:#?}");
        assert_eq!(rb.control().received_charges(), vec![(a, 4000)]);
        let evs = events_of(&world).await;
        let on_b = evs
            .iter()
            .find(|e| e.external_id == b.to_string())
            .expect("event of b");
        assert_eq!(on_b.write_state, WriteState::Skipped, "{on_b:#?}");
        let reason = on_b.note.clone().unwrap_or_default();
        assert!(
            reason.contains("void") && reason.contains("posted"),
            "{reason}"
        );

        // Never retried: later cycles send nothing more, the reason stays.
        for _ in 0..3 {
            engine.run_cycle(SOURCE).await.expect("cycle");
        }
        assert_eq!(rb.control().received_charges(), vec![(a, 4000)]);
        let again = events::get(&world.db.pool, on_b.id)
            .await
            .expect("read")
            .expect("event");
        assert_eq!(again.write_state, WriteState::Skipped);
        assert_eq!(again.attempts, on_b.attempts);

        // A paid one too: marked paid in Rebillia (written off, say) before the B2B payment is
        // written back.
        let c = rb
            .control()
            .add_invoice(&NewInvoice::default())
            .expect("invoice");
        quiet(&engine).await;
        let bc = world.b2b_by_external_id()[&c.to_string()]["id"]
            .as_u64()
            .expect("id");
        let paid = InvoiceEdit {
            status: Some("paid".to_owned()),
            paid_cents: Some(0),
            ..InvoiceEdit::default()
        };
        rb.control()
            .edit_invoice(c, &paid)
            .expect("paid in Rebillia");
        b2b.pay_invoice(STORE_HASH, bc, dec("25")).expect("pays c");
        engine.run_cycle(SOURCE).await.expect("cycle");
        let evs = events_of(&world).await;
        let on_c = evs
            .iter()
            .find(|e| e.external_id == c.to_string())
            .expect("event of c");
        assert_eq!(on_c.write_state, WriteState::Skipped);
        assert!(
            on_c.note.as_deref().unwrap_or_default().contains("paid"),
            "{on_c:#?}"
        );
        assert_eq!(rb.control().received_charges().len(), 1);
    }
}

/// The payment metrics, as `/metrics` serves them (nextest runs each test in its own process,
/// so the recorder holds this test's numbers only).
#[tokio::test]
async fn payment_metrics_count_detected_written_failed_and_pending() {
    let handle = b2b_invoice_sync::telemetry_metrics::install().expect("recorder");
    let (world, rid, id) = world(true).await;
    world
        .b2b
        .control()
        .pay_invoice(STORE_HASH, id, dec("40"))
        .expect("buyer pays");
    // The first write gets a 500 (not applied): failed once, settled and sent again next cycle.
    world
        .erp
        .control()
        .push_fault(FaultRule::once(Fault::Status500).on_method("PUT"));
    let engine = world.engine();
    let first = engine.run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(
        (
            first.payments.detected,
            first.payments.written,
            first.payments.failed
        ),
        (1, 0, 1)
    );
    let text = handle.render();
    let value = |name: &str| metric(&text, name);
    assert_eq!(
        value("b2bsync_payments_detected_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value("b2bsync_payments_failed_total"), Some(1.0), "{text}");
    assert_eq!(value("b2bsync_payments_pending"), Some(1.0), "{text}");
    assert_eq!(value("b2bsync_payments_written_total"), None, "{text}");

    quiet(&engine).await;
    let text = handle.render();
    let value = |name: &str| metric(&text, name);
    assert_eq!(value("b2bsync_payments_written_total"), Some(1.0), "{text}");
    assert_eq!(value("b2bsync_payments_pending"), Some(0.0), "{text}");
    assert_eq!(value("b2bsync_payments_stuck"), Some(0.0), "{text}");
    assert_eq!(balances_received(&world, &rid), vec![dec("60")]);
}

/// The value of `name` for source "erp" in Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l.contains("source=\"erp\""))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse::<f64>().ok())
}

/// A payment the cycle's scan of the payment list missed (made after it read the list) is
/// still not undone: before raising a balance B2B lowered, the invoice's payments are read.
#[tokio::test]
async fn a_payment_made_after_the_scan_is_not_undone_by_the_same_cycle() {
    let (world, rid, id) = world(true).await;
    world
        .b2b
        .control()
        .pay_invoice(STORE_HASH, id, dec("40"))
        .expect("buyer pays");
    // The list scan will not see it: its cursor is past the payment (as if it came just after).
    sqlx::query(
        "UPDATE payment_cursors SET watermark = extract(epoch from now())::bigint + 100000",
    )
    .execute(&world.db.pool)
    .await
    .expect("cursor moved");
    // The ERP adds a line (total 120) before it knows of the payment.
    let mut bigger = hundred("Widget");
    bigger["lineItems"].as_array_mut().expect("lines").push(
        json!({"id": "L2", "remoteId": "L2", "description": "Fee", "unitPrice": 20,
            "quantity": 1, "totalAmount": 20, "currency": "USD"}),
    );
    bigger["subTotal"] = json!("120.00");
    bigger["totalAmount"] = json!(120);
    bigger["balance"] = json!(120);
    world
        .erp
        .control()
        .update_invoice(&rid, &bigger)
        .expect("ERP edit");
    let r = world.engine().run_cycle(SOURCE).await.expect("cycle");
    assert_eq!(r.counts.updated, 1, "{r:#?}");
    assert_eq!(
        b2b_open(&world, id),
        dec("80"),
        "120 from the ERP minus the 40 paid in B2B"
    );
    let evs = events_of(&world).await;
    assert_eq!(evs.len(), 1, "{evs:#?}");
    assert_eq!(evs[0].amount, dec("40"));
}

/// Invoices synced before payments were tracked (no `erp_paid` yet): the ERP's first import of
/// a B2B payment still ends the adjustment.
#[tokio::test]
async fn invoices_synced_before_payments_were_tracked_are_acknowledged_too() {
    let (world, rid, id) = world(true).await;
    sqlx::query("UPDATE invoice_state SET erp_paid = NULL, erp_balance = NULL")
        .execute(&world.db.pool)
        .await
        .expect("as before the migration");
    world
        .b2b
        .control()
        .pay_invoice(STORE_HASH, id, dec("40"))
        .expect("buyer pays");
    quiet(&world.engine()).await;
    assert_eq!(erp_balance(&world, &rid), dec("60"));
    assert_eq!(b2b_open(&world, id), dec("60"));
    assert!(events_of(&world).await[0].acknowledged_at.is_some());
    // Later ERP changes keep the ERP's own balance.
    world
        .erp
        .control()
        .update_invoice(&rid, &json!({ "memo": "later" }))
        .expect("ERP edit");
    quiet(&world.engine()).await;
    assert_eq!(b2b_open(&world, id), dec("60"));
}

/// Many payments through ERP and B2B faults: every payment reaches the ERP exactly once, with
/// the right balance, and B2B keeps every payment.
#[tokio::test]
async fn payments_under_faults_reach_the_erp_exactly_once() {
    use b2b_invoice_sync::config::FailurePolicy;
    use b2b_invoice_sync::sandbox::b2b::{Fault as B2bFault, FaultRule as B2bRule};
    use std::time::Duration;

    let mut world = World::new(24).await;
    world.source_mut().payments = PaymentSettings {
        enabled: true,
        write_back: true,
        ..PaymentSettings::default()
    };
    world.source_mut().failures = FailurePolicy {
        max_attempts: 50,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };
    let engine = world.engine();
    quiet(&engine).await;
    // Open invoices (balance = total), a third of each paid in B2B.
    let mut paid = Vec::new();
    for (rid, inv) in world.b2b_by_external_id() {
        let Some(amounts) = world.erp.control().amounts(&rid) else {
            continue;
        };
        if amounts.balance != amounts.total || paid.len() >= 10 {
            continue;
        }
        let id = inv["id"].as_u64().expect("id");
        let part = (amounts.balance / Decimal::from(3))
            .round_dp(0)
            .max(Decimal::ONE);
        world
            .b2b
            .control()
            .pay_invoice(STORE_HASH, id, part)
            .expect("buyer pays");
        paid.push((rid, id, amounts.balance - part));
    }
    assert!(paid.len() >= 6, "enough open invoices: {}", paid.len());
    let erp = world.erp.control();
    for fault in [
        Fault::ApplyThen500,
        Fault::ApplyThenDrop,
        Fault::Status500,
        Fault::DropBeforeApply,
        Fault::Status503,
        Fault::ApplyThen500,
    ] {
        erp.push_fault(FaultRule::once(fault).on_method("PUT"));
    }
    erp.push_fault(FaultRule::once(Fault::Status500).on_method("GET").times(2));
    let b2b = world.b2b.control();
    b2b.push_fault(B2bRule::once(B2bFault::Status500).on_path_containing("/ip/payments"));
    b2b.push_fault(
        B2bRule::once(B2bFault::Status429 {
            retry_after_secs: Some(1),
        })
        .on_path_containing("/ip/payments"),
    );

    let mut reports = Vec::new();
    for _ in 0..20 {
        let r = engine.run_cycle(SOURCE).await.expect("cycle runs");
        let done = !busy(&r);
        reports.push(r);
        if done {
            break;
        }
    }
    assert!(!busy(reports.last().expect("a cycle")), "{reports:#?}");
    for (rid, id, left) in &paid {
        assert_eq!(
            balances_received(&world, rid),
            vec![*left],
            "invoice {rid}: {reports:#?}"
        );
        assert_eq!(erp_balance(&world, rid), *left, "invoice {rid}");
        assert_eq!(b2b_open(&world, *id), *left, "invoice {rid}");
    }
    let evs = events_of(&world).await;
    assert_eq!(evs.len(), paid.len());
    assert!(
        evs.iter()
            .all(|e| e.write_state == WriteState::Written && e.acknowledged_at.is_some()),
        "{evs:#?}"
    );
}

/// The real binary, SIGKILLed at random moments while it writes payments back to a slow ERP:
/// every payment still reaches the ERP exactly once.
#[tokio::test]
async fn payments_reach_the_erp_exactly_once_when_the_binary_is_killed_at_random_points() {
    use rand::{Rng, SeedableRng};
    use std::time::Duration;

    let mut world = World::new(12).await;
    world.source_mut().payments = PaymentSettings {
        enabled: true,
        write_back: true,
        ..PaymentSettings::default()
    };
    let engine = world.engine();
    quiet(&engine).await;
    let mut paid = Vec::new();
    for (rid, inv) in world.b2b_by_external_id() {
        let Some(a) = world.erp.control().amounts(&rid) else {
            continue;
        };
        if a.balance != a.total {
            continue;
        }
        let part = (a.balance / Decimal::from(4)).round_dp(0).max(Decimal::ONE);
        let id = inv["id"].as_u64().expect("id");
        world
            .b2b
            .control()
            .pay_invoice(STORE_HASH, id, part)
            .expect("buyer pays");
        paid.push((rid, id, a.balance - part));
    }
    assert!(paid.len() >= 5, "{}", paid.len());
    // A slow ERP: most kills land while a write-back is on the wire.
    world
        .erp
        .control()
        .set_latency(Duration::from_millis(150), Duration::from_millis(100));

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[telemetry]\nlog_filter = \"warn\"\n[database]\nurl = \"{db}\"\n\
             [stores.acme.b2b]\nbase_url = \"{b2b}\"\nstore_hash = \"{STORE_HASH}\"\ntoken = \"{token}\"\n\
             [sources.{SOURCE}]\nkind = \"unified\"\nstore = \"acme\"\n\
             [sources.{SOURCE}.unified]\nbase_url = \"{erp}\"\napi_key = \"{key}\"\ncredential_id = \"{cred}\"\n\
             [sources.{SOURCE}.customers]\nstrategy = \"static\"\nmap = {{ {map} }}\n\
             [sources.{SOURCE}.payments]\nenabled = true\nwrite_back = true\n",
            db = world.db.url,
            b2b = world.b2b.base_url(),
            token = crate::helpers::TOKEN,
            erp = world.erp.base_url(),
            key = b2b_invoice_sync::sandbox::unified::DEFAULT_API_KEY,
            cred = b2b_invoice_sync::sandbox::unified::DEFAULT_CREDENTIAL_ID,
            map = (1..=10)
                .map(|i| format!("\"CUST-{i:05}\" = \"{i}\""))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    )
    .expect("config");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut killed_mid_write = 0;
    let mut kills = 0;
    // Until two kills have landed mid-write (each does about a third of the time), at most 25.
    while killed_mid_write < 2 && kills < 25 {
        kills += 1;
        let before = world.erp.control().received_writes().len();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_b2b-invoice-sync"))
            .args(["sync", "--once", "--config"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the binary starts");
        tokio::time::sleep(Duration::from_millis(rng.random_range(150..1500))).await;
        let _ = child.start_kill();
        let _ = child.wait().await;
        // What the killed process had sent lands before the next one starts.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let in_flight: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM payment_events WHERE write_state = 'in_flight'",
        )
        .fetch_one(&world.db.pool)
        .await
        .expect("count");
        if in_flight > 0 && world.erp.control().received_writes().len() > before {
            killed_mid_write += 1;
        }
    }
    world
        .erp
        .control()
        .set_latency(Duration::ZERO, Duration::ZERO);
    quiet(&engine).await;
    for (rid, id, left) in &paid {
        assert_eq!(balances_received(&world, rid), vec![*left], "invoice {rid}");
        assert_eq!(erp_balance(&world, rid), *left);
        assert_eq!(b2b_open(&world, *id), *left);
    }
    eprintln!(
        "{killed_mid_write} of {kills} kills left a write-back in flight after the ERP took it"
    );
    assert!(
        killed_mid_write >= 1,
        "no kill landed mid-write in {kills} tries"
    );
}

#[tokio::test]
async fn a_failing_write_back_keeps_its_retry_schedule_and_its_attempt_limit() {
    use b2b_invoice_sync::config::FailurePolicy;
    use std::time::Duration;

    let (mut world, _rid, id) = world(true).await;
    world.source_mut().failures = FailurePolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(1500),
        max_delay: Duration::from_millis(1500),
    };
    world
        .b2b
        .control()
        .pay_invoice(STORE_HASH, id, dec("40"))
        .expect("buyer pays");
    // The ERP refuses every write for a while.
    world.erp.control().push_fault(
        FaultRule::once(Fault::Status503)
            .on_method("PUT")
            .times(10_000),
    );
    let engine = world.engine();
    let mut seen: Vec<(
        i32,
        chrono::DateTime<chrono::Utc>,
        Option<chrono::DateTime<chrono::Utc>>,
    )> = Vec::new();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        engine.run_cycle(SOURCE).await.expect("cycle");
        let ev = events_of(&world)
            .await
            .into_iter()
            .next()
            .expect("the event");
        let attempted_at = chrono::Utc::now();
        if seen.last().is_none_or(|(a, _, _)| *a != ev.attempts) {
            if let Some((_, _, Some(due))) = seen.last() {
                assert!(
                    attempted_at >= *due,
                    "attempt {} ran before its retry was due ({due})",
                    ev.attempts
                );
            }
            seen.push((ev.attempts, attempted_at, ev.next_attempt_at));
        }
        assert!(ev.attempts <= 3, "attempts beyond max_attempts: {ev:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ev = events_of(&world)
        .await
        .into_iter()
        .next()
        .expect("the event");
    assert_eq!(ev.write_state, WriteState::Dead, "{ev:#?}");
    assert_eq!(ev.attempts, 3, "{ev:#?}");
    assert_eq!(
        seen.len(),
        3,
        "three attempts, spaced by the backoff: {seen:?}"
    );
}
