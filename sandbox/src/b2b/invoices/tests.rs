use axum::http::StatusCode;
use serde_json::{json, Map, Value};

use super::*;
use crate::b2b::seed::{build_store, SeedCounts};

const NOW: i64 = 1_700_000_000;

fn store() -> StoreData {
    build_store(
        "s",
        SeedCounts {
            companies: 3,
            invoices: 0,
            orders: 2,
        },
        NOW - 100,
    )
}

fn body(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("test bodies are objects"),
    }
}

fn minimal(number: &str) -> Map<String, Value> {
    body(json!({
        "invoiceNumber": number,
        "originalBalance": {"code": "USD", "value": 349.5},
        "openBalance": {"code": "USD", "value": "349.5"},
        "customerId": "2",
    }))
}

fn created_id(reply: &ApiReply) -> u64 {
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.json_body()["data"]["id"].as_u64().unwrap()
}

fn data(store: &StoreData, id: u64) -> Value {
    get(store, &id.to_string()).json_body()["data"].clone()
}

#[test]
fn create_applies_documented_defaults() {
    let mut store = store();
    let reply = create(&mut store, &minimal("INV-1"), NOW);
    assert_eq!(
        reply.json_body(),
        &json!({"code": 200, "data": {"id": 1}, "meta": {"message": "Success"}})
    );
    let invoice = data(&store, 1);
    assert_eq!(invoice["type"], "Invoice");
    assert_eq!(invoice["status"], 0);
    assert_eq!(invoice["source"], 0);
    assert_eq!(invoice["dueDate"], NOW + 30 * 24 * 3600);
    assert_eq!(invoice["createdAt"], NOW);
    assert_eq!(invoice["updatedAt"], NOW);
    assert_eq!(invoice["details"], json!({}));
    assert_eq!(invoice["customerId"], "2");
    assert_eq!(invoice["customerName"], "Sandbox Company 2");
    assert_eq!(
        invoice["originalBalance"],
        json!({"code": "USD", "value": "349.5000"})
    );
    assert_eq!(
        invoice["openBalance"],
        json!({"code": "USD", "value": "349.5000"})
    );
    assert_eq!(invoice["isPendingPayment"], 0);
    assert_eq!(invoice["extraFields"], json!([]));
    assert_eq!(created_id(&create(&mut store, &minimal("INV-2"), NOW)), 2);
}

#[test]
fn create_keeps_details_and_optional_fields_as_given() {
    let mut store = store();
    let mut request = minimal("INV-1");
    let details = json!({"header": {"costLines": [{"amount": {"code": "USD", "value": "90.00"}, "description": "Subtotal"}]}, "custom": [1, {"x": null}]});
    request.insert("details".into(), details.clone());
    request.insert("issuedAt".into(), json!(1_600_000_000));
    request.insert("externalId".into(), json!("erp-9"));
    request.insert(
        "externalPdfUrl".into(),
        json!("https://files.example/9.pdf"),
    );
    request.insert("channelId".into(), json!(1));
    let id = created_id(&create(&mut store, &request, NOW));
    let invoice = data(&store, id);
    assert_eq!(invoice["details"], details);
    assert_eq!(invoice["createdAt"], 1_600_000_000);
    assert_eq!(invoice["externalId"], "erp-9");
    assert_eq!(invoice["externalPdfUrl"], "https://files.example/9.pdf");
}

#[test]
fn create_refuses_duplicates_unknown_companies_and_bad_types() {
    let mut store = store();
    created_id(&create(&mut store, &minimal("INV-1"), NOW));
    assert_eq!(
        create(&mut store, &minimal("INV-1"), NOW).json_body(),
        &json!({"code": 400, "data": {"errMsg": "The invoice number already exists."}, "meta": {"message": "Bad Requests Error"}})
    );
    let reply = create(&mut store, &minimal("inv-1"), NOW);
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "numbers are unique without case"
    );
    let mut stranger = minimal("INV-2");
    stranger.insert("customerId".into(), json!(99));
    let reply = create(&mut store, &stranger, NOW);
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.json_body()["data"]["errMsg"],
        "Company 99 does not exist."
    );
    let mut wrong = minimal("INV-3");
    wrong.insert("dueDate".into(), json!("2024-01-01"));
    wrong.insert("invoiceNumber".into(), json!(""));
    let reply = create(&mut store, &wrong, NOW);
    assert_eq!(
        reply.json_body()["data"]["errMsg"],
        "invoiceNumber: Ensure this field has at least 1 characters; dueDate: Please enter a valid number; "
    );
    assert_eq!(store.invoices.len(), 1, "failed creates store nothing");
    assert_eq!(store.next_invoice_id, 2, "failed creates use no id");
}

#[test]
fn zero_or_negative_open_balance_completes_the_invoice() {
    let mut store = store();
    let mut paid = minimal("INV-1");
    paid.insert("openBalance".into(), json!({"code": "USD", "value": 0}));
    paid.insert("status".into(), json!(0));
    let id = created_id(&create(&mut store, &paid, NOW));
    assert_eq!(data(&store, id)["status"], 2);

    let id = created_id(&create(&mut store, &minimal("INV-2"), NOW));
    update(
        &mut store,
        &id.to_string(),
        &body(json!({"openBalance": {"code": "USD", "value": "-1.5"}})),
        NOW,
    );
    assert_eq!(data(&store, id)["status"], 2);
    assert_eq!(data(&store, id)["openBalance"]["value"], "-1.5000");
}

#[test]
fn update_is_partial_but_replaces_details() {
    let mut store = store();
    let mut request = minimal("INV-1");
    request.insert(
        "details".into(),
        json!({"header": {"a": 1}, "details": {"lineItems": [1]}}),
    );
    request.insert("purchaseOrderNumber".into(), json!("PO-1"));
    request.insert(
        "externalPdfUrl".into(),
        json!("https://files.example/1.pdf"),
    );
    let id = created_id(&create(&mut store, &request, NOW));
    let reply = update(
        &mut store,
        &id.to_string(),
        &body(
            json!({"details": {"header": {"b": 2}}, "dueDate": 1_800_000_000, "externalPdfUrl": ""}),
        ),
        NOW + 60,
    );
    assert_eq!(
        reply.json_body(),
        &json!({"code": 200, "data": {"id": id}, "meta": {"message": "SUCCESS"}})
    );
    let invoice = data(&store, id);
    assert_eq!(
        invoice["details"],
        json!({"header": {"b": 2}}),
        "details are replaced, not merged"
    );
    assert_eq!(invoice["dueDate"], 1_800_000_000);
    assert_eq!(
        invoice["purchaseOrderNumber"], "PO-1",
        "absent keys are untouched"
    );
    assert_eq!(invoice["openBalance"]["value"], "349.5000");
    assert!(
        invoice.get("externalPdfUrl").is_none(),
        "empty string removes the link"
    );
    assert_eq!(invoice["updatedAt"], NOW + 60);
    assert_eq!(invoice["createdAt"], NOW);
}

#[test]
fn update_checks_types_uniqueness_companies_and_existence() {
    let mut store = store();
    let first = created_id(&create(&mut store, &minimal("INV-1"), NOW));
    let second = created_id(&create(&mut store, &minimal("INV-2"), NOW));
    let reply = update(
        &mut store,
        &first.to_string(),
        &body(json!({"dueDate": "soon"})),
        NOW,
    );
    assert_eq!(
        reply.json_body(),
        &json!({"code": 400, "meta": {"message": "Bad Requests Error", "errors": "dueDate: Please enter a valid number; "}, "data": {"id": first}})
    );
    let reply = update(
        &mut store,
        &second.to_string(),
        &body(json!({"invoiceNumber": "INV-1"})),
        NOW,
    );
    assert_eq!(
        reply.json_body()["data"]["errMsg"],
        "The invoice number already exists."
    );
    let reply = update(
        &mut store,
        &first.to_string(),
        &body(json!({"invoiceNumber": "INV-1"})),
        NOW,
    );
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "an invoice keeps its own number"
    );
    let reply = update(
        &mut store,
        &first.to_string(),
        &body(json!({"customerId": "77"})),
        NOW,
    );
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    for missing in ["999", "abc", "0"] {
        let reply = update(&mut store, missing, &body(json!({})), NOW);
        assert_eq!(reply, reply::invoice_not_found());
    }
    assert_eq!(
        data(&store, first)["updatedAt"],
        NOW,
        "refused updates change nothing"
    );
}

#[test]
fn delete_answers_404_for_missing_invoices() {
    let mut store = store();
    let id = created_id(&create(&mut store, &minimal("INV-1"), NOW));
    assert_eq!(
        delete(&mut store, &id.to_string()).json_body(),
        &json!({"code": 200, "data": {"id": id}, "meta": {"message": "Success"}})
    );
    assert_eq!(
        delete(&mut store, &id.to_string()).status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(&store, &id.to_string()).status, StatusCode::NOT_FOUND);
}

#[test]
fn orders_are_invoiced_once() {
    let mut store = store();
    created_id(&create(&mut store, &minimal("INV-1"), NOW));
    let reply = create_from_order(&mut store, "101", NOW);
    assert_eq!(
        reply.json_body(),
        &json!({"code": 200, "data": {"invoiceNumber": "00000002", "invoiceId": 2}, "meta": {"message": "SUCCESS"}})
    );
    let invoice = data(&store, 2);
    assert_eq!(invoice["orderNumber"], "101");
    assert_eq!(invoice["customerId"], "1");
    assert_eq!(invoice["openBalance"]["value"], "125.5000");
    let again = create_from_order(&mut store, "101", NOW);
    assert_eq!(
        again.json_body()["data"]["errMsg"],
        "The invoice for this order already exists."
    );
    let unknown = create_from_order(&mut store, "5", NOW);
    assert_eq!(
        unknown.json_body(),
        &json!({"code": 404, "data": {"errMsg": "Order does not exist"}, "meta": {"message": "Not Found Error"}})
    );
    delete(&mut store, "2");
    assert_eq!(
        create_from_order(&mut store, "101", NOW).status,
        StatusCode::OK
    );
}

#[test]
fn pdf_link_points_at_the_sandbox_and_keeps_the_external_one() {
    let mut store = store();
    let mut request = minimal("INV-1");
    request.insert(
        "externalPdfUrl".into(),
        json!("https://files.example/1.pdf"),
    );
    let id = created_id(&create(&mut store, &request, NOW));
    let reply = download_pdf(&store, &id.to_string(), "http://127.0.0.1:9");
    assert_eq!(
        reply.json_body()["data"],
        json!({"url": "http://127.0.0.1:9/sandbox-pdf/s/1.pdf", "externalPdfUrl": "https://files.example/1.pdf"})
    );
    assert_eq!(
        download_pdf(&store, "2", "http://x").status,
        StatusCode::NOT_FOUND
    );
}
