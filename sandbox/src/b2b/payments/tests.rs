use std::str::FromStr;

use axum::http::StatusCode;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::apply::{create, refund, set_status};
use super::*;
use crate::b2b::control::SandboxError;
use crate::b2b::invoices;
use crate::b2b::seed::{build_store, SeedCounts};

const NOW: i64 = 1_700_000_000;

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

/// Companies 1-2; invoices 1-3 of 100 USD (1 and 2 of company 1, 3 of company 2), invoice 4
/// of 50 EUR for company 1. All created at `NOW`.
fn store() -> StoreData {
    let mut store = build_store(
        "s",
        SeedCounts {
            companies: 2,
            invoices: 0,
            orders: 0,
        },
        NOW - 100,
    );
    for (number, company, code, value) in [
        ("INV-1", "1", "USD", "100"),
        ("INV-2", "1", "USD", "100"),
        ("INV-3", "2", "USD", "100"),
        ("INV-4", "1", "EUR", "50"),
    ] {
        let body = json!({
            "invoiceNumber": number,
            "originalBalance": {"code": code, "value": value},
            "openBalance": {"code": code, "value": value},
            "customerId": company,
            "externalCustomerId": format!("C{company}"),
        });
        let Value::Object(body) = body else {
            unreachable!()
        };
        let reply = invoices::create(&mut store, &body, NOW);
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    }
    store
}

fn open(store: &StoreData, invoice: u64) -> (Decimal, u8) {
    let invoice = &store.invoices[&invoice];
    (invoice.open_balance.value, invoice.status)
}

fn pay(store: &mut StoreData, lines: &[(u64, &str)], status: u8, now: i64) -> u64 {
    let lines: Vec<(u64, Decimal)> = lines.iter().map(|(id, v)| (*id, dec(v))).collect();
    create(store, &lines, status, now).unwrap()
}

#[test]
fn paying_lowers_the_open_balance_and_sets_the_status() {
    let mut store = store();
    let id = pay(&mut store, &[(1, "40")], STATUS_COMPLETED, NOW);
    assert_eq!(id, 1);
    assert_eq!(open(&store, 1), (dec("60"), 1));
    // The clock has not moved since the create: updatedAt still moves.
    assert_eq!(store.invoices[&1].updated_at, NOW + 1);
    assert_eq!(open(&store, 2), (dec("100"), 0), "other invoices untouched");

    let second = pay(&mut store, &[(1, "60.00")], STATUS_COMPLETED, NOW + 50);
    assert_eq!(second, 2);
    assert_eq!(open(&store, 1), (Decimal::ZERO, 2));
    assert_eq!(store.invoices[&1].updated_at, NOW + 50);

    let payment = render(&store.payments[&1], &store);
    assert_eq!(
        payment,
        json!({
            "id": 1,
            "createdAt": NOW,
            "updatedAt": NOW,
            "storeHash": "s",
            "customerId": "1",
            "externalId": null,
            "externalCustomerId": "C1",
            "payerName": "Sandbox Buyer",
            "payerCustomerId": "1",
            "details": {"memo": "Paid in the buyer portal"},
            "moduleName": "payments_offline",
            "fees": [],
            "moduleData": {"transactions": [
                {"memo": "Paid in the buyer portal", "type": "OfflineTransaction", "rawTransaction": null}
            ]},
            "processingStatus": 3,
            "appliedStatus": 1,
            "fundingStatus": 2,
            "total": {"code": "USD", "value": "40.0000"},
            "lineItems": [{"paymentId": 1, "invoiceId": 1, "invoiceNumber": "INV-1",
                           "amount": {"code": "USD", "value": "40.0000"}}],
            "customerName": "Sandbox Company 1",
            "allowedOperations": [],
            "allowedStatuses": [1, 2, 3, 4],
            "channelId": "1",
            "channelName": "Sandbox Storefront",
        })
    );
}

#[test]
fn one_payment_over_several_invoices_has_a_line_each() {
    let mut store = store();
    let id = pay(&mut store, &[(1, "10"), (2, "100")], STATUS_COMPLETED, NOW);
    let payment = &store.payments[&id];
    assert_eq!(payment.total.value, dec("110"));
    assert_eq!(payment.lines.len(), 2);
    assert_eq!(payment.lines[1].invoice_number, "INV-2");
    assert_eq!(open(&store, 1), (dec("90"), 1));
    assert_eq!(open(&store, 2), (Decimal::ZERO, 2));
}

#[test]
fn refused_payments_change_nothing() {
    let mut store = store();
    let before = store.invoices.clone();
    let cases: Vec<(Vec<(u64, &str)>, u8)> = vec![
        (vec![], 3),
        (vec![(1, "0")], 3),
        (vec![(1, "-5")], 3),
        (vec![(1, "100.01")], 3),
        (vec![(1, "1.00001")], 3),
        (vec![(1, "10"), (1, "10")], 3),
        (vec![(1, "10"), (3, "10")], 3),
        (vec![(1, "10"), (4, "10")], 3),
        // The second line is bad: the first must not have been applied.
        (vec![(2, "10"), (1, "500")], 3),
        (vec![(1, "10")], 4),
        (vec![(1, "10")], 9),
    ];
    for (lines, status) in cases {
        let lines: Vec<(u64, Decimal)> = lines.iter().map(|(id, v)| (*id, dec(v))).collect();
        let result = create(&mut store, &lines, status, NOW + 10);
        assert!(
            matches!(result, Err(SandboxError::Invalid(_))),
            "{lines:?} status {status}: {result:?}"
        );
    }
    assert_eq!(
        create(&mut store, &[(99, dec("1"))], 3, NOW),
        Err(SandboxError::UnknownInvoice {
            store: "s".into(),
            id: 99
        })
    );
    assert_eq!(store.invoices, before);
    assert!(store.payments.is_empty());
    assert_eq!(store.next_payment_id, 1);
    // Each refusal names the invoice it is about.
    let err = create(&mut store, &[(1, dec("100.01"))], 3, NOW).unwrap_err();
    assert!(err.to_string().contains("INV-1"), "{err}");
}

#[test]
fn refund_gives_the_amount_back_and_recomputes_the_status() {
    let mut store = store();
    let first = pay(&mut store, &[(1, "40")], STATUS_COMPLETED, NOW);
    let second = pay(&mut store, &[(1, "30")], STATUS_COMPLETED, NOW);
    assert_eq!(open(&store, 1), (dec("30"), 1));
    let invoice_updated = store.invoices[&1].updated_at;

    refund(&mut store, first, NOW).unwrap();
    assert_eq!(open(&store, 1), (dec("70"), 1));
    let payment = &store.payments[&first];
    assert_eq!(payment.processing_status, STATUS_REFUNDED);
    assert_eq!(
        payment.updated_at,
        NOW + 1,
        "moves although the clock did not"
    );
    assert!(store.invoices[&1].updated_at > invoice_updated);
    assert_eq!(render(payment, &store)["appliedStatus"], 0);

    refund(&mut store, second, NOW + 100).unwrap();
    assert_eq!(open(&store, 1), (dec("100"), 0));
    assert_eq!(store.payments[&second].updated_at, NOW + 100);

    assert!(matches!(
        refund(&mut store, first, NOW),
        Err(SandboxError::Invalid(_))
    ));
    assert!(matches!(
        refund(&mut store, 42, NOW),
        Err(SandboxError::UnknownPayment { id: 42, .. })
    ));
}

#[test]
fn a_paid_off_invoice_refunded_is_open_again_even_if_deleted_meanwhile() {
    let mut store = store();
    let whole = pay(&mut store, &[(2, "100")], STATUS_COMPLETED, NOW);
    assert_eq!(open(&store, 2), (Decimal::ZERO, 2));
    refund(&mut store, whole, NOW).unwrap();
    assert_eq!(open(&store, 2), (dec("100"), 0));

    let gone = pay(&mut store, &[(1, "5"), (2, "5")], STATUS_COMPLETED, NOW);
    store.invoices.remove(&1);
    refund(&mut store, gone, NOW).unwrap();
    assert_eq!(open(&store, 2), (dec("100"), 0));
}

#[test]
fn balances_follow_the_payment_into_and_out_of_completed() {
    let mut store = store();
    let id = pay(&mut store, &[(1, "25")], 2, NOW);
    assert_eq!(open(&store, 1), (dec("100"), 0), "processing: not applied");
    assert_eq!(render(&store.payments[&id], &store)["appliedStatus"], 0);
    set_status(&mut store, id, 1, NOW).unwrap();
    assert_eq!(open(&store, 1), (dec("100"), 0));

    set_status(&mut store, id, STATUS_COMPLETED, NOW + 5).unwrap();
    assert_eq!(open(&store, 1), (dec("75"), 1));
    assert_eq!(store.payments[&id].updated_at, NOW + 5);
    // The same status again is no change at all.
    set_status(&mut store, id, STATUS_COMPLETED, NOW + 9).unwrap();
    assert_eq!(store.payments[&id].updated_at, NOW + 5);
    assert_eq!(open(&store, 1), (dec("75"), 1));

    set_status(&mut store, id, 2, NOW + 5).unwrap();
    assert_eq!(open(&store, 1), (dec("100"), 0));
    assert_eq!(store.payments[&id].updated_at, NOW + 6);

    // Meanwhile someone else paid: completing now would overpay, so it is refused whole.
    pay(&mut store, &[(1, "90")], STATUS_COMPLETED, NOW + 7);
    assert!(matches!(
        set_status(&mut store, id, STATUS_COMPLETED, NOW + 8),
        Err(SandboxError::Invalid(_))
    ));
    assert_eq!(store.payments[&id].processing_status, 2);
    assert_eq!(open(&store, 1), (dec("10"), 1));
    assert!(matches!(
        set_status(&mut store, id, 5, NOW),
        Err(SandboxError::Invalid(_))
    ));
}

fn listed(store: &StoreData, raw: &str) -> (usize, Vec<u64>) {
    let query = PaymentListQuery::parse(&RawQuery::parse(Some(raw))).unwrap();
    let (total, page) = select(store, &query);
    (total, page.into_iter().map(|payment| payment.id).collect())
}

/// Payments 1-4: 1 (40 on invoice 1) and 2 (5 on invoice 2) at NOW, 1 refunded at NOW + 30;
/// 3 (70 on invoice 3, company 2) still processing at NOW + 10; 4 (10 + 20 on invoices 1 and
/// 2) at NOW + 20.
fn store_with_payments() -> StoreData {
    let mut store = store();
    pay(&mut store, &[(1, "40")], STATUS_COMPLETED, NOW);
    pay(&mut store, &[(2, "5")], STATUS_COMPLETED, NOW);
    pay(&mut store, &[(3, "70")], 2, NOW + 10);
    pay(
        &mut store,
        &[(1, "10"), (2, "20")],
        STATUS_COMPLETED,
        NOW + 20,
    );
    refund(&mut store, 1, NOW + 30).unwrap();
    store
}

#[test]
fn list_sorts_filters_and_pages() {
    let store = store_with_payments();
    assert_eq!(listed(&store, ""), (4, vec![4, 3, 2, 1]));
    assert_eq!(listed(&store, "orderBy=ASC").1, vec![1, 2, 3, 4]);
    assert_eq!(listed(&store, "sortBy=updatedAt").1, vec![1, 4, 3, 2]);
    assert_eq!(
        listed(&store, "sortBy=totalAmount&orderBy=ASC").1,
        vec![2, 4, 1, 3]
    );
    assert_eq!(
        listed(&store, "sortBy=processingStatus&orderBy=ASC").1,
        vec![3, 2, 4, 1]
    );
    assert_eq!(listed(&store, "sortBy=appliedStatus").1, vec![4, 2, 3, 1]);
    assert_eq!(listed(&store, "invoiceId=1").1, vec![4, 1]);
    assert_eq!(
        listed(&store, "invoiceId=2&processingStatus=3").1,
        vec![4, 2]
    );
    assert_eq!(listed(&store, "processingStatus=4").1, vec![1]);
    assert_eq!(listed(&store, "processingStatus=0").0, 0);
    assert_eq!(listed(&store, "customerName=company 2").1, vec![3]);
    assert_eq!(listed(&store, "searchBy=customerId&q=2").1, vec![3]);
    assert_eq!(
        listed(&store, "searchBy=externalCustomerId&q=c1").1,
        vec![4, 2, 1]
    );
    assert_eq!(listed(&store, "q=4").1, vec![4]);
    assert_eq!(listed(&store, "channelIds=1").0, 4);
    assert_eq!(listed(&store, "channelIds=2").0, 0);
    assert_eq!(listed(&store, "limit=2&offset=1"), (4, vec![3, 2]));
}

#[test]
fn list_refuses_bad_parameters_like_the_invoice_list() {
    let status = |raw| {
        PaymentListQuery::parse(&RawQuery::parse(Some(raw)))
            .unwrap_err()
            .status
    };
    assert_eq!(status("sortBy=status"), StatusCode::BAD_REQUEST);
    assert_eq!(status("orderBy=desc"), StatusCode::BAD_REQUEST);
    assert_eq!(status("searchBy=invoiceNumber"), StatusCode::BAD_REQUEST);
    assert_eq!(status("processingStatus=5"), StatusCode::BAD_REQUEST);
    assert_eq!(status("processingStatus=done"), StatusCode::BAD_REQUEST);
    assert_eq!(status("invoiceId=abc"), StatusCode::BAD_REQUEST);
    assert_eq!(status("invoiceId=-1"), StatusCode::BAD_REQUEST);
    assert_eq!(status("channelIds=x"), StatusCode::BAD_REQUEST);
    assert_eq!(status("limit=0"), StatusCode::BAD_REQUEST);
    assert_eq!(status("limit=251"), StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn list_and_get_answer_in_the_envelope() {
    let store = store_with_payments();
    let reply = list(&store, &RawQuery::parse(Some("limit=1")));
    let body = reply.json_body();
    assert_eq!(
        body["meta"],
        json!({"message": "SUCCESS", "pagination": {"totalCount": 4, "limit": 1, "offset": 0}})
    );
    assert_eq!(body["data"][0]["id"], 4);
    assert_eq!(
        body["data"][0]["lineItems"].as_array().map(Vec::len),
        Some(2)
    );

    let reply = get(&store, "3");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json_body()["data"]["processingStatus"], 2);
    assert_eq!(reply.json_body()["meta"], json!({"message": "SUCCESS"}));
    for missing in ["9", "0", "abc", "-1"] {
        let reply = get(&store, missing);
        assert_eq!(
            reply.json_body(),
            &json!({"code": 404, "data": {"errMsg": "Payment does not exist"}, "meta": {"message": "Not Found Error"}}),
            "{missing}"
        );
    }
    let empty = list(&StoreData::new("e"), &RawQuery::parse(None));
    assert_eq!(empty.json_body()["data"], json!([]));
}
