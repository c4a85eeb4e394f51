use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::json;

use super::{invoice_body, read, Harness, STORE};

#[tokio::test]
async fn http_controls_drive_the_same_state() {
    let h = Harness::default().await;
    let fault = json!({"method": "GET", "path_contains": "/ip/invoices", "fault": {"kind": "Status503"}, "count": 2});
    let pushed = h
        .client
        .post(h.root("/__sandbox/faults"))
        .json(&fault)
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), StatusCode::OK);
    assert_eq!(h.control().pending_faults().len(), 1);
    assert_eq!(
        h.get("ip/invoices").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        h.get("ip/invoices").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(h.get("ip/invoices").await.status(), StatusCode::OK);

    let (_, stats) = read(
        h.client
            .get(h.root("/__sandbox/stats"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(stats["total"], 3, "control requests are not counted");
    assert!(stats["by_route"]
        .as_array()
        .unwrap()
        .contains(&json!({"route": "GET /ip/invoices", "status": 503, "count": 2})));

    let limit = h
        .client
        .put(h.root("/__sandbox/rate-limit"))
        .json(&json!({"limit": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(limit.status(), StatusCode::OK);
    let bad = h
        .client
        .put(h.root("/__sandbox/error-rates"))
        .json(&json!({"status_500": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let latency = h
        .client
        .put(h.root("/__sandbox/latency"))
        .json(&json!({"fixed_ms": 0, "jitter_ms": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(latency.status(), StatusCode::OK);

    let reset = h
        .client
        .post(h.root("/__sandbox/reset-stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::OK);
    assert_eq!(h.control().stats().total, 0);
}

#[tokio::test(start_paused = true)]
async fn person_edits_merge_into_details_and_bump_updated_at() {
    let h = Harness::default().await;
    let mut body = invoice_body("INV-1");
    body["details"] = json!({"header": {"costLines": [1]}});
    h.create(&body).await;
    let before = h.control().invoice(STORE, 1).unwrap();
    tokio::time::advance(std::time::Duration::from_secs(90)).await;

    let edited = h
        .client
        .post(h.root("/__sandbox/stores/sandbox/invoices/1/edit-details"))
        .json(&json!({"header": {"memo": "disputed"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(edited.status(), StatusCode::OK);
    let after = h.control().invoice(STORE, 1).unwrap();
    assert_eq!(
        after["details"],
        json!({"header": {"costLines": [1], "memo": "disputed"}})
    );
    assert_eq!(
        after["updatedAt"].as_i64().unwrap() - before["updatedAt"].as_i64().unwrap(),
        90
    );

    let (_, listed) = read(
        h.client
            .get(h.root("/__sandbox/stores/sandbox/invoices"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(listed[0]["details"], after["details"]);

    let missing = h
        .client
        .post(h.root("/__sandbox/stores/nope/invoices/1/edit-details"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let not_object = h
        .client
        .post(h.root("/__sandbox/stores/sandbox/invoices/1/edit-details"))
        .json(&json!([1]))
        .send()
        .await
        .unwrap();
    assert_eq!(not_object.status(), StatusCode::BAD_REQUEST);

    h.control().delete_invoice_as_person(STORE, 1).unwrap();
    assert_eq!(h.get("ip/invoices/1").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(start_paused = true)]
async fn a_person_edits_owned_fields_and_keys_in_copies_over_http() {
    let h = Harness::default().await;
    let mut body = invoice_body("INV-1");
    body["externalId"] = json!("ERP-1");
    h.create(&body).await;

    let edited = h
        .client
        .post(h.root("/__sandbox/stores/sandbox/invoices/1/edit"))
        .json(&json!({"purchaseOrderNumber": "PO-HAND", "openBalance": "12.50", "type": "Edited"}))
        .send()
        .await
        .unwrap();
    assert_eq!(edited.status(), StatusCode::OK);
    let after = h.control().invoice(STORE, 1).unwrap();
    assert_eq!(after["purchaseOrderNumber"], "PO-HAND");
    assert_eq!(after["type"], "Edited");
    assert_eq!(
        after["openBalance"]["value"]
            .as_str()
            .unwrap()
            .parse::<Decimal>()
            .unwrap(),
        Decimal::new(1250, 2)
    );
    let unknown = h
        .client
        .post(h.root("/__sandbox/stores/sandbox/invoices/1/edit"))
        .json(&json!({"colour": "red"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);

    let copy = |number: &str, ext: Option<&str>| {
        let mut body = json!({"invoiceNumber": number});
        if let Some(ext) = ext {
            body["externalId"] = json!(ext);
        }
        h.client
            .post(h.root("/__sandbox/stores/sandbox/invoices/1/copy"))
            .json(&body)
            .send()
    };
    let (status, dup) = read(copy("DUP-1", None).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let dup = dup["id"].as_u64().unwrap();
    assert_eq!(
        h.control().invoice(STORE, dup).unwrap()["externalId"],
        "ERP-1"
    );
    let (_, orphan) = read(copy("HAND-1", Some("HAND-EXT")).await.unwrap()).await;
    let orphan = orphan["id"].as_u64().unwrap();
    assert_eq!(
        h.control().invoice(STORE, orphan).unwrap()["externalId"],
        "HAND-EXT"
    );
    let taken = copy("DUP-1", None).await.unwrap();
    assert_eq!(taken.status(), StatusCode::BAD_REQUEST);
}
