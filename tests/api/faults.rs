//! Fault injection: what is retried, and what is handed back as ambiguous.

use std::time::Duration;

use b2b_invoice_sync::b2b::{B2bError, InvoiceUpdate};
use b2b_invoice_sync::sandbox::b2b::{ErrorRates, Fault, FaultRule};

use crate::helpers::*;

#[tokio::test]
async fn server_errors_on_get_are_retried_to_success() {
    let sandbox = spawn_unlimited_sandbox(1).await;
    let control = sandbox.control();
    let client = client(&sandbox, Auth::XAuthToken);
    control.push_fault(FaultRule::once(Fault::Status500).on_method("GET"));
    control.push_fault(FaultRule::once(Fault::Status503).on_method("GET"));
    control.push_fault(FaultRule::once(Fault::DropBeforeApply).on_method("GET"));

    let invoice = client.get_invoice(1).await.expect("retried to success");
    assert_eq!(invoice.id, 1);
    let stats = control.stats();
    let route = "GET /ip/invoices/{id}";
    assert_eq!(stats.count(route, Some(500)), 1, "{stats:?}");
    assert_eq!(stats.count(route, Some(503)), 1, "{stats:?}");
    assert_eq!(stats.count(route, None), 1, "{stats:?}");
    assert_eq!(stats.count(route, Some(200)), 1, "{stats:?}");
}

#[tokio::test]
async fn a_get_that_keeps_failing_gives_up_after_the_configured_attempts() {
    let sandbox = spawn_unlimited_sandbox(1).await;
    let control = sandbox.control();
    let client = client(&sandbox, Auth::XAuthToken);
    control.push_fault(FaultRule::once(Fault::Status503).times(10));
    let err = client.get_invoice(1).await.expect_err("still failing");
    assert!(
        matches!(
            err,
            B2bError::Server {
                status: 503,
                ambiguous: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(control.stats().total, u64::from(fast_retry().max_attempts));
}

#[tokio::test]
async fn random_error_rates_on_reads_are_absorbed_by_retries() {
    let sandbox = spawn_unlimited_sandbox(20).await;
    let control = sandbox.control();
    let mut settings = store_settings(
        &sandbox.base_url(),
        Auth::XAuthToken,
        generous_budget(),
        fast_retry(),
    );
    settings.retry.max_attempts = 10;
    let client = client_from(&settings);
    control
        .set_error_rates(ErrorRates {
            status_500: 0.2,
            status_503: 0.2,
            status_429: 0.0,
        })
        .expect("rates");
    for id in 1..=20 {
        client.get_invoice(id).await.expect("retried to success");
    }
    let stats = control.stats();
    assert!(
        stats.total > 20,
        "some calls failed and were retried: {stats:?}"
    );
}

#[tokio::test]
async fn apply_then_500_on_create_is_ambiguous_and_not_retried() {
    let sandbox = spawn_unlimited_sandbox(0).await;
    let control = sandbox.control();
    let client = client(&sandbox, Auth::XAuthToken);
    control.push_fault(FaultRule::once(Fault::ApplyThen500).on_method("POST"));

    let err = client
        .create_invoice(&new_invoice("AMB-1"))
        .await
        .expect_err("500 after applying");
    assert!(err.is_ambiguous(), "{err:?}");
    assert!(
        matches!(err, B2bError::Server { status: 500, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("may have been applied"), "{err}");
    // The invoice exists, exactly once: the client did not POST again.
    assert_eq!(control.invoices(STORE_HASH).expect("invoices").len(), 1);
    assert_eq!(control.stats().route_total("POST /ip/invoices"), 1);
}

#[tokio::test]
async fn apply_then_drop_on_create_is_ambiguous_and_not_retried() {
    let sandbox = spawn_unlimited_sandbox(0).await;
    let control = sandbox.control();
    let client = client(&sandbox, Auth::XAuthToken);
    control.push_fault(FaultRule::once(Fault::ApplyThenDrop).on_method("POST"));

    let err = client
        .create_invoice(&new_invoice("AMB-2"))
        .await
        .expect_err("connection dropped");
    assert!(err.is_ambiguous(), "{err:?}");
    assert!(matches!(err, B2bError::Transport { .. }), "{err:?}");
    assert_eq!(control.invoices(STORE_HASH).expect("invoices").len(), 1);
    assert_eq!(control.stats().route_total("POST /ip/invoices"), 1);
}

#[tokio::test]
async fn a_drop_before_applying_is_still_ambiguous_to_the_client() {
    // The client cannot tell a drop before from a drop after: both must go to the ledger.
    let sandbox = spawn_unlimited_sandbox(0).await;
    let control = sandbox.control();
    let client = client(&sandbox, Auth::XAuthToken);
    control.push_fault(FaultRule::once(Fault::DropBeforeApply).on_method("POST"));
    let err = client
        .create_invoice(&new_invoice("AMB-3"))
        .await
        .expect_err("dropped");
    assert!(err.is_ambiguous(), "{err:?}");
    assert!(control.invoices(STORE_HASH).expect("invoices").is_empty());
}

#[tokio::test]
async fn apply_then_500_on_update_is_ambiguous_and_the_update_is_applied() {
    let sandbox = spawn_unlimited_sandbox(1).await;
    let control = sandbox.control();
    let client = client(&sandbox, Auth::XAuthToken);
    control.push_fault(FaultRule::once(Fault::ApplyThen500).on_method("PUT"));
    let update = InvoiceUpdate {
        purchase_order_number: Some("PO-AMB".to_owned()),
        ..InvoiceUpdate::default()
    };
    let err = client
        .update_invoice(1, &update)
        .await
        .expect_err("500 after applying");
    assert!(err.is_ambiguous(), "{err:?}");
    let stored = control.invoice(STORE_HASH, 1).expect("invoice");
    assert_eq!(stored["purchaseOrderNumber"], "PO-AMB");
    assert_eq!(control.stats().route_total("PUT /ip/invoices/{id}"), 1);
}

#[tokio::test]
async fn a_timed_out_update_is_ambiguous_and_not_retried() {
    let sandbox = spawn_unlimited_sandbox(1).await;
    let control = sandbox.control();
    let mut settings = store_settings(
        &sandbox.base_url(),
        Auth::XAuthToken,
        generous_budget(),
        fast_retry(),
    );
    settings.b2b.request_timeout = Duration::from_millis(300);
    let client = client_from(&settings);
    control.push_fault(FaultRule::once(Fault::Delay { ms: 1500 }).on_method("PUT"));
    let update = InvoiceUpdate {
        purchase_order_number: Some("PO-SLOW".to_owned()),
        ..InvoiceUpdate::default()
    };
    let err = client
        .update_invoice(1, &update)
        .await
        .expect_err("timed out");
    assert!(
        matches!(
            err,
            B2bError::Timeout {
                ambiguous: true,
                ..
            }
        ),
        "{err:?}"
    );
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(
        control.stats().route_total("PUT /ip/invoices/{id}"),
        1,
        "not retried"
    );
}

#[tokio::test]
async fn a_refused_connection_is_definite_even_for_a_create() {
    // Nothing listens on this port once the sandbox is gone: the request never left.
    let sandbox = spawn_unlimited_sandbox(0).await;
    let base_url = sandbox.base_url();
    sandbox.shutdown().await;
    let settings = store_settings(&base_url, Auth::XAuthToken, generous_budget(), fast_retry());
    let err = client_from(&settings)
        .create_invoice(&new_invoice("NOPE-1"))
        .await
        .expect_err("nothing listens");
    // Its own kind since connection failures stop a cycle (nothing answers there).
    assert!(matches!(err, B2bError::Unreachable { .. }), "{err:?}");
    assert!(!err.is_ambiguous());
}
