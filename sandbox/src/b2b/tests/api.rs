use reqwest::StatusCode;
use serde_json::json;

use super::{invoice_body, read, Harness, STORE};
use crate::b2b::B2bSandboxConfig;

#[tokio::test]
async fn create_get_and_duplicate_number() {
    let h = Harness::default().await;
    let (status, body) = read(h.create(&invoice_body("INV-1")).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"code": 200, "data": {"id": 1}, "meta": {"message": "Success"}})
    );

    let (status, body) = read(h.get("ip/invoices/1").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["invoiceNumber"], "INV-1");
    assert_eq!(
        body["data"]["openBalance"],
        json!({"code": "USD", "value": "100.0000"})
    );
    assert_eq!(body["data"]["customerName"], "Sandbox Company 1");
    assert_eq!(body["meta"], json!({"message": "SUCCESS"}));

    let (status, body) = read(h.create(&invoice_body("INV-1")).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"code": 400, "data": {"errMsg": "The invoice number already exists."}, "meta": {"message": "Bad Requests Error"}})
    );
    // Numbers compare without case, ASCII or not.
    for taken in ["inv-1", "Inv-1"] {
        let (status, _) = read(h.create(&invoice_body(taken)).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{taken}");
    }
    let (status, _) = read(h.create(&invoice_body("ÄB-7")).await).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = read(h.create(&invoice_body("äb-7")).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = read(h.get("ip/invoices/3").await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"code": 404, "data": {"errMsg": "Invoice does not exist"}, "meta": {"message": "Not Found Error"}})
    );
}

#[tokio::test]
async fn update_over_http_replaces_details_and_reports_type_errors() {
    let h = Harness::default().await;
    let mut body = invoice_body("INV-1");
    body["details"] = json!({"header": {"costLines": []}, "details": {"lineItems": []}});
    h.create(&body).await;
    let put = |payload: serde_json::Value| {
        h.authed(h.client.put(h.url("ip/invoices/1")))
            .json(&payload)
            .send()
    };
    let (status, reply) = read(
        put(json!({"details": {"note": "only this"}}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        reply,
        json!({"code": 200, "data": {"id": 1}, "meta": {"message": "SUCCESS"}})
    );
    let (_, invoice) = read(h.get("ip/invoices/1").await).await;
    assert_eq!(invoice["data"]["details"], json!({"note": "only this"}));

    let (status, reply) = read(put(json!({"dueDate": "next week"})).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply["meta"]["errors"],
        "dueDate: Please enter a valid number; "
    );
    assert_eq!(reply["data"], json!({"id": 1}));

    let no_type = h
        .authed(h.client.put(h.url("ip/invoices/1")))
        .body(r#"{"status": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(no_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn list_filters_by_repeated_external_ids_and_pages() {
    let h = Harness::start(B2bSandboxConfig {
        seed_invoices: 30,
        ..B2bSandboxConfig::default()
    })
    .await;
    let list = h
        .authed(h.client.get(h.url("ip/invoices")))
        .query(&[
            ("externalId[]", "seed-3"),
            ("externalId[]", "seed-17"),
            ("sortBy", "invoiceNumber"),
            ("orderBy", "ASC"),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = read(list).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["meta"]["pagination"],
        json!({"totalCount": 2, "limit": 10, "offset": 0})
    );
    assert_eq!(body["data"][0]["invoiceNumber"], "SEED-000003");
    assert_eq!(body["data"][1]["invoiceNumber"], "SEED-000017");

    let (_, page) = read(h.get("ip/invoices?limit=25&offset=25").await).await;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(5));
    let (status, _) = read(h.get("ip/invoices?limit=251").await).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _) = read(h.get("ip/invoices?sortBy=total").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn extra_fields_route_is_not_taken_for_an_invoice_id() {
    let h = Harness::default().await;
    let (status, body) = read(h.get("ip/invoices/extra-fields").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"][0]["fieldName"], "ERP Sync Source");
    assert_eq!(body["meta"]["pagination"]["totalCount"], 4);
    assert_eq!(
        h.control()
            .stats()
            .count("GET /ip/invoices/extra-fields", Some(200)),
        1
    );
}

#[tokio::test]
async fn companies_are_found_by_their_erp_customer_id() {
    let h = Harness::default().await;
    let found = h
        .authed(h.client.get(h.url("companies")))
        .query(&[
            ("extraFields", "ERP Customer ID:CUST-00004"),
            ("extraFieldFilterType", "exact-match"),
            ("isIncludeExtraFields", "1"),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = read(found).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["data"][0]["companyId"], 4);
    assert_eq!(
        body["data"][0]["extraFields"][0]["fieldValue"],
        "CUST-00004"
    );
}

#[tokio::test]
async fn orders_pdf_and_delete() {
    let h = Harness::default().await;
    let invoiced = h
        .authed(h.client.post(h.url("ip/orders/102/invoices")))
        .send()
        .await
        .unwrap();
    let (status, body) = read(invoiced).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["data"],
        json!({"invoiceNumber": "00000001", "invoiceId": 1})
    );

    let (_, pdf) = read(h.get("ip/invoices/1/download-pdf").await).await;
    let url = pdf["data"]["url"].as_str().unwrap().to_owned();
    assert_eq!(
        url,
        format!("http://{}/sandbox-pdf/{STORE}/1.pdf", h.sandbox.addr())
    );
    let file = h.client.get(&url).send().await.unwrap();
    assert_eq!(file.headers()["content-type"], "application/pdf");
    assert!(file.bytes().await.unwrap().starts_with(b"%PDF"));

    let deleted = h
        .authed(h.client.delete(h.url("ip/invoices/1")))
        .send()
        .await
        .unwrap();
    let (status, body) = read(deleted).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"code": 200, "data": {"id": 1}, "meta": {"message": "Success"}})
    );
    let again = h
        .authed(h.client.delete(h.url("ip/invoices/1")))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn stores_are_isolated() {
    use crate::b2b::SandboxStore;
    let h = Harness::start(B2bSandboxConfig {
        stores: vec![
            SandboxStore::new(STORE, "sandbox-token", "sandbox-legacy-token"),
            SandboxStore::new("other", "other-token", "other-legacy"),
        ],
        ..B2bSandboxConfig::default()
    })
    .await;
    h.create(&invoice_body("INV-1")).await;
    let other = h
        .client
        .get(h.url("ip/invoices/1"))
        .header("authToken", "other-legacy")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    let other_token_wrong_hash = h
        .client
        .get(h.url("ip/invoices/1"))
        .header("X-Auth-Token", "other-token")
        .header("X-Store-Hash", STORE)
        .send()
        .await
        .unwrap();
    assert_eq!(other_token_wrong_hash.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_paths_are_enveloped_404s_and_shutdown_stops_serving() {
    let h = Harness::default().await;
    let (status, body) = read(h.get("ip/nothing-here").await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 404);
    let addr = h.sandbox.addr();
    h.sandbox.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}
