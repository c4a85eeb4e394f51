//! Payments flowing back to the ERP (issue #7), the adapters' side: each adapter built from its
//! settings writes payment events to its sandbox (or folder) through `payment_writer()`, and
//! reads the ERP's balance back; faults land in the right `WriteBackError`.

use std::fs;
use std::num::NonZeroU32;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::{json, Value};

use b2b_invoice_sync::config::{
    AdapterSettings, FilesSettings, HttpSettings, ReadyRule, RebilliaSettings, SourceSettings,
    UnifiedApi, UnifiedNames, UnifiedSettings,
};
use b2b_invoice_sync::domain::Currency;
use b2b_invoice_sync::sandbox::rebillia::{
    self, InvoiceEdit, LineSpec, NewInvoice, RebilliaSandboxConfig, RunningRebilliaSandbox,
};
use b2b_invoice_sync::sandbox::unified::{
    self, Fault, FaultRule, RunningUnifiedSandbox, UnifiedSandboxConfig,
};
use b2b_invoice_sync::source::files::{outbox_file_name, OUTBOX_DIR};
use b2b_invoice_sync::source::write_back::{
    ErpBalance, PaymentKind, PaymentWrite, PaymentWriter, WriteBackError,
};
use b2b_invoice_sync::source::{self, Source};

use crate::helpers::fast_retry;

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).expect("a decimal")
}

fn event(external_id: &str, kind: PaymentKind, amount: &str, target: &str) -> PaymentWrite {
    PaymentWrite {
        event_id: 501,
        external_id: external_id.to_owned(),
        invoice_number: format!("N-{external_id}"),
        kind,
        payment_id: 117,
        b2b_invoice_id: 9001,
        amount: dec(amount),
        currency: Currency::parse("USD").expect("USD"),
        target_balance: dec(target),
        reference: "b2b-payment-117".to_owned(),
        reference_field: None,
        occurred_at: chrono::DateTime::parse_from_rfc3339("2026-11-21T10:15:30Z")
            .expect("time")
            .with_timezone(&chrono::Utc),
    }
}

fn http(request_timeout: Duration) -> HttpSettings {
    HttpSettings {
        request_timeout,
        connect_timeout: Duration::from_secs(2),
        retry: fast_retry(),
        page_size: NonZeroU32::new(100).expect("non-zero"),
    }
}

fn built(adapter: AdapterSettings) -> Arc<dyn Source> {
    source::build(&SourceSettings::with_defaults("erp", "acme", adapter))
        .expect("the source builds")
}

fn writer(source: &Arc<dyn Source>) -> &dyn PaymentWriter {
    source
        .payment_writer()
        .expect("the adapter writes payments back")
}

// ---------------------------------------------------------------------------------------------
// unified

async fn unified_sandbox() -> RunningUnifiedSandbox {
    unified::start(
        UnifiedSandboxConfig::default(),
        "127.0.0.1:0".parse().expect("loopback"),
    )
    .await
    .expect("the sandbox starts")
}

fn unified_source(sandbox: &RunningUnifiedSandbox, request_timeout: Duration) -> Arc<dyn Source> {
    built(AdapterSettings::Unified(Box::new(UnifiedSettings {
        base_url: sandbox.base_url().parse().expect("sandbox URL"),
        api_key: SecretString::from(unified::DEFAULT_API_KEY),
        credential_id: unified::DEFAULT_CREDENTIAL_ID.to_owned(),
        http: http(request_timeout),
        names: UnifiedNames::default(),
        api: UnifiedApi::default(),
    })))
}

/// A USD invoice of 100.00, all open, with two lines.
fn erp_invoice(sandbox: &RunningUnifiedSandbox, id: &str) {
    sandbox
        .control()
        .insert_raw(json!({
            "id": id,
            "remoteId": id,
            "customerId": "CUST-00001",
            "invoiceNumber": format!("N-{id}"),
            "currency": "USD",
            "totalAmount": 100,
            "balance": 100,
            "invoiceStatus": "OPEN",
            "lineItems": [
                {"id": "l1", "remoteId": "l1", "description": "Widget", "unitPrice": 12.5,
                 "quantity": 4, "totalAmount": 50, "currency": "USD", "accountingItemId": "W-1",
                 "accountId": "4000"},
                {"id": "l2", "remoteId": "l2", "description": "Service", "totalAmount": "50.00"}
            ],
            "remoteFields": {"Terms": "Net 30"},
            "remoteDeleted": false
        }))
        .expect("the invoice is added");
}

fn balance_of(sandbox: &RunningUnifiedSandbox, id: &str) -> Decimal {
    sandbox.control().amounts(id).expect("the invoice").balance
}

fn put_count(sandbox: &RunningUnifiedSandbox) -> u64 {
    sandbox
        .control()
        .requests()
        .iter()
        .filter(|r| r.method == "PUT")
        .count() as u64
}

#[tokio::test]
async fn unified_put_sets_the_balance_keeps_the_lines_and_adds_the_reference() {
    let sandbox = unified_sandbox().await;
    erp_invoice(&sandbox, "pay-1");
    let source = unified_source(&sandbox, Duration::from_secs(10));
    let writer = writer(&source);

    assert_eq!(
        writer.current("pay-1").await.expect("current"),
        Some(ErpBalance {
            total: dec("100"),
            balance: dec("100"),
            status: Some("OPEN".to_owned()),
        })
    );
    let before = sandbox.control().invoice("pay-1").expect("invoice");
    let mut ev = event("pay-1", PaymentKind::Payment, "40", "60.00");
    ev.reference_field = Some("PaymentRef".to_owned());
    let written = writer.write(&ev).await.expect("written");
    assert!(
        written.note.starts_with("PUT balance 60.00"),
        "{}",
        written.note
    );

    let after = sandbox.control().invoice("pay-1").expect("invoice");
    assert_eq!(balance_of(&sandbox, "pay-1"), dec("60"));
    assert_eq!(after["invoiceStatus"], "PARTIALLY_PAID");
    assert_eq!(after["remoteFields"]["PaymentRef"], "b2b-payment-117");
    assert_eq!(
        after["remoteFields"]["Terms"], "Net 30",
        "other remote fields stay"
    );
    let lines = |invoice: &Value| -> Vec<(String, Decimal)> {
        invoice["lineItems"]
            .as_array()
            .expect("lines")
            .iter()
            .map(|l| {
                let total = match &l["totalAmount"] {
                    Value::String(s) => dec(s),
                    other => dec(&other.to_string()),
                };
                (l["description"].as_str().expect("text").to_owned(), total)
            })
            .collect()
    };
    assert_eq!(
        lines(&after),
        lines(&before),
        "the lines are sent back as they were"
    );
    assert!(
        after["remoteUpdatedAt"].as_str() > before["remoteUpdatedAt"].as_str(),
        "the write moves remoteUpdatedAt, so the invoice is read again"
    );

    let received = sandbox.control().received_writes();
    assert_eq!(received.len(), 1);
    let (id, body) = &received[0];
    assert_eq!(id, "pay-1");
    assert_eq!(body["balance"], json!(60.0));
    assert_eq!(
        body["remoteFields"],
        json!({"PaymentRef": "b2b-payment-117"})
    );
    assert_eq!(
        body["lineItems"][0],
        json!({"description": "Widget", "unitPrice": 12.5, "quantity": 4,
               "accountingItemId": "W-1", "accountId": "4000", "totalAmount": "50"})
    );
    assert_eq!(
        writer
            .current("pay-1")
            .await
            .expect("current")
            .map(|b| b.balance),
        Some(dec("60"))
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn unified_held_writes_are_answered_and_applied_on_acknowledgement() {
    let sandbox = unified_sandbox().await;
    erp_invoice(&sandbox, "pay-2");
    let source = unified_source(&sandbox, Duration::from_secs(10));
    sandbox.control().hold_writes(true);

    writer(&source)
        .write(&event("pay-2", PaymentKind::Payment, "100", "0"))
        .await
        .expect("answered");
    assert_eq!(balance_of(&sandbox, "pay-2"), dec("100"), "not applied yet");
    assert_eq!(sandbox.control().queued_writes().len(), 1);
    assert_eq!(sandbox.control().received_writes().len(), 1);

    assert_eq!(sandbox.control().acknowledge_writes(), 1);
    assert_eq!(balance_of(&sandbox, "pay-2"), dec("0"));
    assert_eq!(
        sandbox.control().amounts("pay-2").and_then(|a| a.status),
        Some("PAID".to_owned())
    );
    assert!(sandbox.control().queued_writes().is_empty());
    sandbox.shutdown().await;
}

#[tokio::test]
async fn unified_apply_then_500_is_ambiguous_and_the_erp_received_one_write() {
    let sandbox = unified_sandbox().await;
    erp_invoice(&sandbox, "pay-3");
    let source = unified_source(&sandbox, Duration::from_secs(10));
    sandbox
        .control()
        .push_fault(FaultRule::once(Fault::ApplyThen500).on_method("PUT"));

    let err = writer(&source)
        .write(&event("pay-3", PaymentKind::Payment, "40", "60.00"))
        .await
        .expect_err("a 500 after applying");
    assert!(matches!(err, WriteBackError::Ambiguous { .. }), "{err:?}");
    assert!(err.to_string().contains("pay-3"), "{err}");
    assert_eq!(put_count(&sandbox), 1, "an ambiguous PUT is not sent again");
    let received = sandbox.control().received_writes();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].1["balance"], json!(60.0));
    // Settling reads the ERP: the write did land.
    assert_eq!(
        writer(&source)
            .current("pay-3")
            .await
            .expect("current")
            .map(|b| b.balance),
        Some(dec("60"))
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn unified_failures_sort_into_not_sent_rejected_skip_and_ambiguous() {
    let sandbox = unified_sandbox().await;
    erp_invoice(&sandbox, "pay-4");
    let source = unified_source(&sandbox, Duration::from_secs(10));
    let writer = writer(&source);
    let ev = event("pay-4", PaymentKind::Payment, "40", "60.00");

    // Not applied at all: retried here, and the write goes through once.
    sandbox
        .control()
        .push_fault(FaultRule::once(Fault::Status503).on_method("PUT"));
    sandbox.control().push_fault(
        FaultRule::once(Fault::Status429 {
            retry_after_secs: Some(0),
        })
        .on_method("PUT"),
    );
    sandbox
        .control()
        .push_fault(FaultRule::once(Fault::Status500).on_method("GET"));
    writer.write(&ev).await.expect("written after retries");
    assert_eq!(sandbox.control().received_writes().len(), 1);
    assert_eq!(put_count(&sandbox), 3);

    // 503 on every try: NotSent, nothing received.
    sandbox
        .control()
        .push_fault(FaultRule::once(Fault::Status503).on_method("PUT").times(10));
    let err = writer.write(&ev).await.expect_err("unavailable");
    assert!(matches!(err, WriteBackError::NotSent { .. }), "{err:?}");
    sandbox.control().clear_faults();
    assert_eq!(sandbox.control().received_writes().len(), 1);

    // The connection dropped after the PUT went out: unknown.
    sandbox
        .control()
        .push_fault(FaultRule::once(Fault::DropBeforeApply).on_method("PUT"));
    let err = writer.write(&ev).await.expect_err("dropped");
    assert!(matches!(err, WriteBackError::Ambiguous { .. }), "{err:?}");

    // A GET that keeps failing is never ambiguous: nothing was written.
    sandbox
        .control()
        .push_fault(FaultRule::once(Fault::Status500).on_method("GET").times(10));
    let err = writer.write(&ev).await.expect_err("the read fails");
    assert!(matches!(err, WriteBackError::NotSent { .. }), "{err:?}");
    sandbox.control().clear_faults();

    // Gone from the ERP.
    let err = writer
        .write(&event("nope", PaymentKind::Payment, "1", "0"))
        .await
        .expect_err("unknown invoice");
    assert!(
        matches!(err, WriteBackError::Rejected { status: 404, .. }),
        "{err:?}"
    );
    assert!(matches!(
        writer.current("nope").await,
        Err(WriteBackError::Rejected { status: 404, .. })
    ));

    // A voided invoice, and one with a line the PUT cannot carry, are skipped unsent.
    sandbox.control().void_invoice("pay-4").expect("void");
    let err = writer.write(&ev).await.expect_err("voided");
    assert!(
        matches!(&err, WriteBackError::Skip { reason } if reason.contains("VOIDED")),
        "{err:?}"
    );
    erp_invoice(&sandbox, "pay-5");
    sandbox
        .control()
        .update_invoice("pay-5", &json!({"lineItems": [{"totalAmount": 100}]}))
        .expect("edit");
    let err = writer
        .write(&event("pay-5", PaymentKind::Payment, "1", "99"))
        .await
        .expect_err("no description");
    assert!(
        matches!(&err, WriteBackError::Skip { reason } if reason.contains("line 1 has no description")),
        "{err:?}"
    );
    assert_eq!(sandbox.control().received_writes().len(), 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn unified_a_timeout_after_sending_is_ambiguous_and_the_erp_still_applies_it() {
    let sandbox = unified_sandbox().await;
    erp_invoice(&sandbox, "pay-6");
    let source = unified_source(&sandbox, Duration::from_millis(300));
    sandbox
        .control()
        .push_fault(FaultRule::once(Fault::Delay { ms: 800 }).on_method("PUT"));
    let err = writer(&source)
        .write(&event("pay-6", PaymentKind::Refund, "10", "60.00"))
        .await
        .expect_err("timed out");
    assert!(matches!(err, WriteBackError::Ambiguous { .. }), "{err:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while balance_of(&sandbox, "pay-6") != dec("60") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the write never landed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(put_count(&sandbox), 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn unified_sandbox_put_validates_like_004() {
    let sandbox = unified_sandbox().await;
    erp_invoice(&sandbox, "pay-7");
    let url = format!(
        "{}accounting/invoices/pay-7?credentialId={}",
        sandbox.base_url(),
        unified::DEFAULT_CREDENTIAL_ID
    );
    let http = reqwest::Client::new();
    let put = |body: Value| {
        http.put(&url)
            .bearer_auth(unified::DEFAULT_API_KEY)
            .json(&body)
            .send()
    };
    for refused in [
        json!({"balance": 1}),
        json!({"lineItems": [{"description": "x"}], "balance": 1}),
        json!({"lineItems": [{"description": "x", "totalAmount": "5"}], "nope": 1}),
    ] {
        let answer = put(refused.clone()).await.expect("answer");
        assert_eq!(answer.status().as_u16(), 400, "{refused}");
    }
    let answer = put(json!({
        "lineItems": [{"description": "Only line", "totalAmount": "80.00", "quantity": 1}],
        "totalAmount": "80.00",
        "balance": "30.00"
    }))
    .await
    .expect("answer");
    assert_eq!(answer.status().as_u16(), 200);
    let body: Value = answer.json().await.expect("JSON");
    assert_eq!(body["invoice"]["balance"], json!(30));
    assert_eq!(body["invoice"]["lineItems"][0]["totalAmount"], json!(80));
    assert_eq!(
        sandbox.control().received_writes().len(),
        1,
        "refused bodies are not received"
    );
    let unauthorized = http
        .put(&url)
        .json(&json!({}))
        .send()
        .await
        .expect("answer");
    assert_eq!(unauthorized.status().as_u16(), 401);
    let stats = sandbox.control().stats();
    assert_eq!(stats.count("PUT /accounting/invoices/{id}", Some(200)), 1);
    assert_eq!(stats.count("PUT /accounting/invoices/{id}", Some(400)), 3);
    sandbox.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Rebillia

const RB_TOKEN: &str = "rb_TEST_SECRET_payments";

async fn rebillia_sandbox() -> RunningRebilliaSandbox {
    rebillia::start(
        RebilliaSandboxConfig {
            token: RB_TOKEN.to_owned(),
            seed_invoices: 3,
            ..RebilliaSandboxConfig::default()
        },
        "127.0.0.1:0".parse().expect("loopback"),
    )
    .await
    .expect("the sandbox starts")
}

fn rebillia_source(sandbox: &RunningRebilliaSandbox) -> Arc<dyn Source> {
    built(AdapterSettings::Rebillia(RebilliaSettings {
        base_url: sandbox.base_url().parse().expect("sandbox URL"),
        token: SecretString::from(RB_TOKEN),
        http: http(Duration::from_secs(10)),
        amount_unit: Default::default(),
    }))
}

/// A posted USD invoice of 100.00; its id.
fn rebillia_invoice(sandbox: &RunningRebilliaSandbox) -> u64 {
    sandbox
        .control()
        .add_invoice(&NewInvoice {
            lines: vec![LineSpec {
                description: "Plan".to_owned(),
                qty: 2,
                amount_cents: 5_000,
            }],
            ..NewInvoice::default()
        })
        .expect("invoice added")
}

fn balance_due(sandbox: &RunningRebilliaSandbox, id: u64) -> i64 {
    sandbox.control().invoice(id).expect("invoice")["balanceDue"]
        .as_i64()
        .expect("cents")
}

fn posts(sandbox: &RunningRebilliaSandbox) -> usize {
    sandbox
        .control()
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count()
}

#[tokio::test]
async fn rebillia_charges_a_posted_invoice_and_notes_the_reference() {
    let sandbox = rebillia_sandbox().await;
    let id = rebillia_invoice(&sandbox);
    let source = rebillia_source(&sandbox);
    let writer = writer(&source);
    let external = id.to_string();

    assert_eq!(
        writer.current(&external).await.expect("current"),
        Some(ErpBalance {
            total: dec("100.00"),
            balance: dec("100.00"),
            status: Some("posted".to_owned()),
        })
    );
    let mut ev = event(&external, PaymentKind::Payment, "40.50", "59.50");
    ev.reference_field = Some("comments".to_owned());
    let written = writer.write(&ev).await.expect("charged");
    assert!(
        written.note.starts_with("POST charge 4050 cents"),
        "{}",
        written.note
    );
    assert_eq!(balance_due(&sandbox, id), 5_950);
    assert_eq!(sandbox.control().received_charges(), vec![(id, 4_050)]);
    let invoice = sandbox.control().invoice(id).expect("invoice");
    assert_eq!(invoice["comments"], "b2b-payment-117");
    assert_eq!(invoice["paymentType"], "offlinePaymentProvider");

    // The rest pays it in full: the reference is added before the charge turns it `paid`.
    let mut rest = event(&external, PaymentKind::Payment, "59.50", "0");
    rest.reference = "b2b-payment-118".to_owned();
    rest.reference_field = Some("comments".to_owned());
    writer.write(&rest).await.expect("charged");
    let invoice = sandbox.control().invoice(id).expect("invoice");
    assert_eq!(invoice["status"], "paid");
    assert_eq!(invoice["comments"], "b2b-payment-117 | b2b-payment-118");
    assert_eq!(
        writer.current(&external).await.expect("current"),
        Some(ErpBalance {
            total: dec("100.00"),
            balance: dec("0.00"),
            status: Some("paid".to_owned()),
        })
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn rebillia_skips_paid_and_void_invoices_and_refunds() {
    let sandbox = rebillia_sandbox().await;
    let paid = rebillia_invoice(&sandbox);
    sandbox
        .control()
        .edit_invoice(
            paid,
            &InvoiceEdit {
                status: Some("paid".to_owned()),
                ..InvoiceEdit::default()
            },
        )
        .expect("paid");
    let void = rebillia_invoice(&sandbox);
    sandbox.control().void_invoice(void).expect("void");
    let source = rebillia_source(&sandbox);
    let writer = writer(&source);

    for (id, status) in [(paid, "paid"), (void, "void")] {
        let err = writer
            .write(&event(&id.to_string(), PaymentKind::Payment, "1", "0"))
            .await
            .expect_err("skipped");
        let WriteBackError::Skip { reason } = err else {
            panic!("expected a skip, got {err:?}");
        };
        let number = sandbox.control().invoice(id).expect("invoice")["invoiceNo"]
            .as_str()
            .expect("number")
            .to_owned();
        assert_eq!(
            reason,
            format!(
                "Rebillia invoice {id} (number {number}) is {status}: Rebillia takes payments \
                 only on posted or requestPayment invoices"
            )
        );
    }
    let open = rebillia_invoice(&sandbox);
    sandbox.control().reset_stats();
    let err = writer
        .write(&event(&open.to_string(), PaymentKind::Refund, "10", "100"))
        .await
        .expect_err("skipped");
    assert!(
        matches!(&err, WriteBackError::Skip { reason } if reason.starts_with("refunds must be entered in Rebillia by hand")),
        "{err:?}"
    );
    assert!(
        sandbox.control().requests().is_empty(),
        "a refund sends nothing"
    );
    assert!(sandbox.control().received_charges().is_empty());
    assert_eq!(posts(&sandbox), 0);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn rebillia_held_charges_and_ambiguous_charges() {
    let sandbox = rebillia_sandbox().await;
    let id = rebillia_invoice(&sandbox);
    let source = rebillia_source(&sandbox);
    let writer = writer(&source);
    let external = id.to_string();

    sandbox.control().hold_charges(true);
    writer
        .write(&event(&external, PaymentKind::Payment, "10", "90"))
        .await
        .expect("answered");
    assert_eq!(balance_due(&sandbox, id), 10_000, "held");
    assert_eq!(sandbox.control().queued_charges(), vec![(id, 1_000)]);
    assert_eq!(sandbox.control().acknowledge_charges(), 1);
    assert_eq!(balance_due(&sandbox, id), 9_000);
    sandbox.control().hold_charges(false);

    sandbox
        .control()
        .push_fault(FaultRule::once(Fault::ApplyThen500).on_method("POST"));
    let err = writer
        .write(&event(&external, PaymentKind::Payment, "20", "70"))
        .await
        .expect_err("a 500 after charging");
    assert!(matches!(err, WriteBackError::Ambiguous { .. }), "{err:?}");
    assert_eq!(posts(&sandbox), 2, "an ambiguous charge is not sent again");
    assert_eq!(
        sandbox.control().received_charges(),
        vec![(id, 1_000), (id, 2_000)]
    );
    assert_eq!(balance_due(&sandbox, id), 7_000);

    // A 503 applied nothing: retried, charged once.
    sandbox
        .control()
        .push_fault(FaultRule::once(Fault::Status503).on_method("POST"));
    writer
        .write(&event(&external, PaymentKind::Payment, "5", "65"))
        .await
        .expect("charged after a retry");
    assert_eq!(balance_due(&sandbox, id), 6_500);
    assert_eq!(sandbox.control().received_charges().len(), 3);

    // More than is due: skipped before anything is sent.
    let err = writer
        .write(&event(&external, PaymentKind::Payment, "70", "0"))
        .await
        .expect_err("overpayment");
    assert!(matches!(err, WriteBackError::Skip { .. }), "{err:?}");
    let err = writer
        .write(&event("999999", PaymentKind::Payment, "1", "0"))
        .await
        .expect_err("unknown");
    assert!(
        matches!(err, WriteBackError::Rejected { status: 404, .. }),
        "{err:?}"
    );
    sandbox.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// files

fn files_source(dir: &Path) -> Arc<dyn Source> {
    built(AdapterSettings::Files(FilesSettings {
        dir: dir.to_owned(),
        ready: ReadyRule::Marker,
        page_size: NonZeroU32::new(100).expect("non-zero"),
    }))
}

#[tokio::test]
async fn files_write_one_outbox_file_per_event_atomically() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = files_source(dir.path());
    let writer = writer(&source);
    let mut ev = event("E-1", PaymentKind::Payment, "40.50", "59.50");
    ev.event_id = 77;

    assert_eq!(writer.current("E-1").await.expect("current"), None);
    assert_eq!(writer.already_written(&ev).await, Some(false));
    let written = writer.write(&ev).await.expect("written");
    assert_eq!(written.note, "outbox/payments-77.ndjson");
    assert_eq!(outbox_file_name(77), "payments-77.ndjson");
    assert_eq!(writer.already_written(&ev).await, Some(true));

    let outbox = dir.path().join(OUTBOX_DIR);
    let names: Vec<String> = fs::read_dir(&outbox)
        .expect("outbox")
        .map(|e| e.expect("entry").file_name().into_string().expect("UTF-8"))
        .collect();
    assert_eq!(
        names,
        vec!["payments-77.ndjson"],
        "no temporary file is left"
    );
    let text = fs::read_to_string(outbox.join("payments-77.ndjson")).expect("file");
    assert_eq!(text.lines().count(), 1);
    assert!(text.ends_with('\n'));
    let line: Value = serde_json::from_str(text.trim_end()).expect("JSON line");
    assert_eq!(
        line,
        json!({
            "event_id": 77, "kind": "payment", "payment_id": 117, "b2b_invoice_id": 9001,
            "external_id": "E-1", "invoice_number": "N-E-1", "amount": "40.50",
            "currency": "USD", "target_balance": "59.50", "reference": "b2b-payment-117",
            "occurred_at": "2026-11-21T10:15:30Z"
        })
    );

    // Written once: a second write of the same event leaves the file alone.
    let mut again = ev.clone();
    again.amount = dec("1");
    writer.write(&again).await.expect("written");
    assert_eq!(
        fs::read_to_string(outbox.join("payments-77.ndjson")).expect("file"),
        text
    );

    // The outbox is not an export: the folder still reads as empty.
    let pages: Vec<_> = source
        .pages(&b2b_invoice_sync::source::Cursor::default())
        .collect()
        .await;
    assert!(pages.is_empty(), "{pages:?}");
}

#[tokio::test]
async fn files_io_errors_are_not_sent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = files_source(dir.path());
    // A file where the outbox folder should be.
    fs::write(dir.path().join(OUTBOX_DIR), "in the way").expect("file");
    let err = writer(&source)
        .write(&event("E-2", PaymentKind::Refund, "1", "1"))
        .await
        .expect_err("cannot write");
    assert!(matches!(err, WriteBackError::NotSent { .. }), "{err:?}");
    assert!(err.to_string().contains("E-2"), "{err}");
}
