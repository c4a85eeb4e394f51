//! The client's payment endpoints against the sandbox, with payments made through its controls.

use futures::TryStreamExt;
use rust_decimal::Decimal;

use b2b_invoice_sync::b2b::{
    B2bError, InvoiceStatus, Payment, PaymentQuery, PaymentSortField, SortOrder,
};

use crate::helpers::*;

fn dec(text: &str) -> Decimal {
    text.parse().expect("decimal literal")
}

#[tokio::test]
async fn payments_made_in_b2b_are_read_back_and_refunds_restore_the_balance() {
    let sandbox = spawn_unlimited_sandbox(0).await;
    let client = client(&sandbox, Auth::XAuthToken);
    let control = sandbox.control();
    let paid = client
        .create_invoice(&new_invoice("PAY-1"))
        .await
        .expect("create");
    let other = client
        .create_invoice(&new_invoice("PAY-2"))
        .await
        .expect("create");

    let first = control
        .pay_invoice(STORE_HASH, paid, dec("40"))
        .expect("pay 40 of 100");
    let invoice = client.get_invoice(paid).await.expect("get");
    assert_eq!(invoice.open_balance, usd("60"));
    assert_eq!(invoice.status, Some(InvoiceStatus::PartiallyPaid));
    let second = control
        .pay_invoices(STORE_HASH, &[(other, dec("100")), (paid, dec("10"))])
        .expect("one payment over two invoices");
    let pending = control
        .create_payment(STORE_HASH, &[(other, dec("1"))], Payment::PROCESSING)
        .expect_err("nothing left open on PAY-2");
    assert!(pending.to_string().contains("PAY-2"), "{pending}");
    assert_eq!(
        client.get_invoice(other).await.expect("get").status,
        Some(InvoiceStatus::Completed)
    );

    let newest_first = PaymentQuery::newest_updated_first(1);
    let pages: Vec<_> = client
        .list_payment_pages(&newest_first)
        .try_collect()
        .await
        .expect("pages");
    assert_eq!(pages.len(), 2, "one payment a page");
    assert_eq!(pages[0].total_count, Some(2));
    let ids: Vec<u64> = pages
        .iter()
        .flat_map(|p| p.items.iter().map(|x| x.id))
        .collect();
    assert_eq!(ids, vec![second, first]);

    let by_invoice = PaymentQuery::default().with_invoice_id(other);
    let listed: Vec<Payment> = client
        .list_payments(&by_invoice)
        .try_collect()
        .await
        .expect("list by invoice");
    assert_eq!(listed.len(), 1);
    let two = &listed[0];
    assert_eq!(two.id, second);
    assert_eq!(two.total, usd("110"));
    assert_eq!(two.line_items.len(), 2);
    assert_eq!(two.line_items[0].payment_id, second);
    assert_eq!(two.line_items[0].invoice_number, "PAY-2");
    assert_eq!(two.line_items[1].amount, usd("10"));
    assert_eq!(two.customer_id.as_deref(), Some("1"));
    assert_eq!(two.customer_name.as_deref(), Some("Sandbox Company 1"));
    assert!(two.payer_name.is_some());

    let got = client.get_payment(first).await.expect("get payment");
    assert!(got.is_completed());
    assert_eq!(got.line_items[0].invoice_id, paid);
    assert_eq!(got.line_items[0].amount, usd("40"));
    assert!(got.updated_at >= got.created_at);

    control.refund_payment(STORE_HASH, first).expect("refund");
    let refunded = client.get_payment(first).await.expect("get refunded");
    assert_eq!(refunded.processing_status, Payment::REFUNDED);
    assert!(
        refunded.updated_at > got.updated_at,
        "a refund moves updatedAt"
    );
    let invoice = client.get_invoice(paid).await.expect("get");
    assert_eq!(invoice.open_balance, usd("90"));
    assert_eq!(invoice.status, Some(InvoiceStatus::PartiallyPaid));

    let newest: Vec<Payment> = client
        .list_payments(&PaymentQuery::newest_updated_first(250))
        .try_collect()
        .await
        .expect("list");
    assert_eq!(newest[0].id, first, "the refund made it the latest change");
    let completed: Vec<Payment> = client
        .list_payments(
            &PaymentQuery::default()
                .with_processing_status(Payment::COMPLETED)
                .with_sort(PaymentSortField::CreatedAt, SortOrder::Asc),
        )
        .try_collect()
        .await
        .expect("list completed");
    assert_eq!(
        completed.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![second]
    );

    control.refund_payment(STORE_HASH, second).expect("refund");
    let invoice = client.get_invoice(paid).await.expect("get");
    assert_eq!(invoice.open_balance, usd("100"));
    assert_eq!(invoice.status, Some(InvoiceStatus::Open));
    assert_eq!(
        client.get_invoice(other).await.expect("get").status,
        Some(InvoiceStatus::Open)
    );

    let missing = client.get_payment(999).await.expect_err("no such payment");
    assert!(matches!(missing, B2bError::NotFound { .. }), "{missing:?}");
    // Every call went through the client's counter, as the invoice calls do.
    assert!(client.calls_made() >= 12);
    let routes: Vec<String> = control.requests().into_iter().map(|r| r.route).collect();
    assert!(routes.iter().any(|r| r == "GET /ip/payments"));
    assert!(routes.iter().any(|r| r == "GET /ip/payments/{id}"));
    sandbox.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_processing_payment_changes_the_balance_when_it_completes() {
    let sandbox = spawn_unlimited_sandbox(0).await;
    let client = client(&sandbox, Auth::Legacy);
    let control = sandbox.control();
    let id = client
        .create_invoice(&new_invoice("PROC-1"))
        .await
        .expect("create");
    let payment = control
        .create_payment(STORE_HASH, &[(id, dec("100"))], Payment::PROCESSING)
        .expect("processing payment");
    let processing: Vec<Payment> = client
        .list_payments(&PaymentQuery::default().with_processing_status(Payment::PROCESSING))
        .try_collect()
        .await
        .expect("list processing");
    assert_eq!(processing.len(), 1);
    let before = processing[0].updated_at;
    assert_eq!(
        client.get_invoice(id).await.expect("get").open_balance,
        usd("100")
    );

    tokio::time::advance(std::time::Duration::from_secs(120)).await;
    control
        .set_payment_status(STORE_HASH, payment, Payment::COMPLETED)
        .expect("complete");
    let done = client.get_payment(payment).await.expect("get");
    assert!(done.is_completed());
    assert_eq!(done.updated_at - before, 120);
    let invoice = client.get_invoice(id).await.expect("get");
    assert_eq!(invoice.open_balance, usd("0"));
    assert_eq!(invoice.status, Some(InvoiceStatus::Completed));
    sandbox.shutdown().await;
}
