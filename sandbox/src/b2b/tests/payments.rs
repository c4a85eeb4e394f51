use std::time::Duration;

use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::json;

use super::{invoice_body, read, Harness, STORE};
use crate::b2b::{B2bSandboxConfig, Fault, FaultRule, SandboxError};

#[tokio::test(start_paused = true)]
async fn payments_are_served_like_invoices_and_move_balances_and_timestamps() {
    let h = Harness::default().await;
    h.create(&invoice_body("INV-1")).await;
    let created_at = h.control().invoice(STORE, 1).unwrap()["updatedAt"]
        .as_i64()
        .unwrap();
    tokio::time::advance(Duration::from_secs(60)).await;

    let id = h
        .control()
        .pay_invoice(STORE, 1, Decimal::new(40, 0))
        .unwrap();
    let invoice = h.control().invoice(STORE, 1).unwrap();
    assert_eq!(invoice["openBalance"]["value"], "60.0000");
    assert_eq!(invoice["status"], 1);
    assert_eq!(invoice["updatedAt"].as_i64().unwrap(), created_at + 60);

    let (status, body) = read(h.get("ip/payments?sortBy=updatedAt&orderBy=DESC").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["meta"]["pagination"]["totalCount"], 1);
    assert_eq!(body["data"][0]["id"], id);
    assert_eq!(body["data"][0]["createdAt"], created_at + 60);
    assert_eq!(body["data"][0]["storeHash"], STORE);
    assert_eq!(
        body["data"][0]["lineItems"],
        json!([{"paymentId": id, "invoiceId": 1, "invoiceNumber": "INV-1",
                "amount": {"code": "USD", "value": "40.0000"}}])
    );

    tokio::time::advance(Duration::from_secs(30)).await;
    h.control().refund_payment(STORE, id).unwrap();
    let (_, body) = read(h.get(&format!("ip/payments/{id}")).await).await;
    assert_eq!(body["data"]["processingStatus"], 4);
    assert_eq!(body["data"]["updatedAt"], created_at + 90);
    let invoice = h.control().invoice(STORE, 1).unwrap();
    assert_eq!(invoice["openBalance"]["value"], "100.0000");
    assert_eq!(invoice["status"], 0);

    let (status, body) = read(h.get("ip/payments/77").await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["data"]["errMsg"], "Payment does not exist");
    let (status, _) = read(h.get("ip/payments?processingStatus=7").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let stats = h.control().stats();
    assert_eq!(stats.count("GET /ip/payments", Some(200)), 1);
    assert_eq!(stats.count("GET /ip/payments", Some(400)), 1);
    assert_eq!(stats.count("GET /ip/payments/{id}", Some(200)), 1);
    assert_eq!(stats.count("GET /ip/payments/{id}", Some(404)), 1);
}

#[tokio::test]
async fn payments_need_auth_and_take_faults_and_the_rate_limit() {
    let h = Harness::start(B2bSandboxConfig {
        rate_limit: 2,
        ..B2bSandboxConfig::default()
    })
    .await;
    let anonymous = h.client.get(h.url("ip/payments")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    h.control()
        .push_fault(FaultRule::once(Fault::Status500).on_method("GET"));
    assert_eq!(
        h.get("ip/payments").await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(h.get("ip/payments/1").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        h.get("ip/payments").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn http_controls_pay_complete_and_refund() {
    let h = Harness::default().await;
    h.create(&invoice_body("INV-1")).await;
    h.create(&invoice_body("INV-2")).await;
    let post = |path: &str, body: serde_json::Value| h.client.post(h.root(path)).json(&body).send();

    let (status, body) = read(
        post(
            "/__sandbox/stores/sandbox/invoices/1/pay",
            json!({"amount": "12.5"}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"id": 1}));
    assert_eq!(
        h.control().invoice(STORE, 1).unwrap()["openBalance"]["value"],
        "87.5000"
    );

    let (status, body) = read(
        post(
            "/__sandbox/stores/sandbox/payments",
            json!({"lines": [{"invoice_id": 1, "amount": 7.5}, {"invoice_id": 2, "amount": "100"}],
                   "processing_status": 2}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"id": 2}));
    assert_eq!(
        h.control().invoice(STORE, 2).unwrap()["openBalance"]["value"],
        "100.0000",
        "a processing payment is not applied yet"
    );
    let completed = h
        .client
        .put(h.root("/__sandbox/stores/sandbox/payments/2/status"))
        .json(&json!({"processing_status": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(completed.status(), StatusCode::OK);
    assert_eq!(h.control().invoice(STORE, 2).unwrap()["status"], 2);
    assert_eq!(
        h.control().invoice(STORE, 1).unwrap()["openBalance"]["value"],
        "80.0000"
    );

    let refunded = post("/__sandbox/stores/sandbox/payments/2/refund", json!({}))
        .await
        .unwrap();
    assert_eq!(refunded.status(), StatusCode::OK);
    let (_, listed) = read(
        h.client
            .get(h.root("/__sandbox/stores/sandbox/payments"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(listed[1]["processingStatus"], 4);
    let (status, one) = read(
        h.client
            .get(h.root("/__sandbox/stores/sandbox/payments/1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, one["total"]["value"].clone()),
        (StatusCode::OK, json!("12.5000"))
    );

    let again = post("/__sandbox/stores/sandbox/payments/2/refund", json!({}))
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let too_much = post(
        "/__sandbox/stores/sandbox/invoices/1/pay",
        json!({"amount": 1000}),
    )
    .await
    .unwrap();
    assert_eq!(too_much.status(), StatusCode::BAD_REQUEST);
    let not_amount = post(
        "/__sandbox/stores/sandbox/invoices/1/pay",
        json!({"amount": "ten"}),
    )
    .await
    .unwrap();
    assert_eq!(not_amount.status(), StatusCode::BAD_REQUEST);
    let missing = h
        .client
        .get(h.root("/__sandbox/stores/sandbox/payments/9"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        h.control().refund_payment("nope", 1),
        Err(SandboxError::UnknownStore("nope".into()))
    );
}
