//! The API's rules, on the data directly (the HTTP path is covered by `tests/api`).

use axum::http::StatusCode;
use serde_json::{json, Map, Value};

use super::api::{self, Params};
use super::seed;
use super::state::Data;
use super::update::update;

const NOW: i64 = 2_000_000_000;

fn data() -> Data {
    seed::build(3, 25, NOW)
}

fn list(data: &Data, query: &str) -> (StatusCode, Value) {
    let reply = api::list(data, &Params::parse(Some(query)));
    (reply.status, reply.json_body().clone())
}

fn body(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

#[test]
fn pages_sort_and_include_detail_on_request() {
    let data = data();
    let (status, page) = list(
        &data,
        "pageNo=2&itemPerPage=10&orderBy=updatedAt&sortBy=DESC&include=detail",
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["currentPageNumber"], 2);
    assert_eq!(
        (page["totalItems"].as_u64(), page["totalPages"].as_u64()),
        (Some(25), Some(3))
    );
    let ids: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.first(), Some(&"1015"));
    assert_eq!(ids.last(), Some(&"1006"));
    assert!(page["data"][0]["detail"].is_array());
    let (_, plain) = list(&data, "itemPerPage=1");
    assert!(
        plain["data"][0].get("detail").is_none(),
        "no detail without include=detail"
    );
    assert_eq!(
        plain["data"][0]["id"], "1025",
        "default: newest createdAt first"
    );
    let (_, beyond) = list(&data, "pageNo=9&itemPerPage=10");
    assert_eq!(beyond["data"], json!([]));
    let (_, paid) = list(&data, "status=paid");
    assert_eq!(paid["totalItems"], 2);
}

#[test]
fn bad_paging_and_sorting_are_refused() {
    let data = data();
    for query in [
        "itemPerPage=251",
        "itemPerPage=0",
        "pageNo=0",
        "pageNo=x",
        "orderBy=color",
        "sortBy=up",
    ] {
        let (status, body) = list(&data, query);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["code"], "VALIDATION_ERROR");
    }
    assert_eq!(list(&data, "itemPerPage=250").0, StatusCode::OK);
}

#[test]
fn rendered_invoices_carry_cents_and_the_customer() {
    let data = data();
    let reply = api::get(&data, "1004", &Params::parse(Some("include=detail")));
    let invoice = reply.json_body();
    assert_eq!(invoice["currency"]["iso3"], "EUR");
    assert_eq!(invoice["customer"]["customerId"], "CUST-00001");
    assert_eq!(invoice["shippingAmount"], 1500);
    let lines = invoice["detail"].as_array().unwrap();
    let subtotal: i64 = lines
        .iter()
        .map(|l| l["amount"].as_i64().unwrap() * l["qty"].as_i64().unwrap())
        .sum();
    assert_eq!(invoice["total"].as_i64(), Some(subtotal + 1500));
    assert!(invoice["updatedAt"].as_str().unwrap().ends_with("+00:00"));
    assert_eq!(
        api::get(&data, "42", &Params::parse(None)).status,
        StatusCode::NOT_FOUND
    );
}

#[test]
fn updates_take_only_posted_or_request_payment_invoices() {
    let mut data = data();
    // 1010 is paid, 1009 void.
    for id in ["1010", "1009"] {
        let reply = update(&mut data, id, &body(json!({"comments": "x"})), NOW);
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{id}");
    }
    let reply = update(
        &mut data,
        "1005",
        &body(json!({
            "dateDue": "2033-06-01",
            "shippingAmount": 990,
            "detail": [{"amount": "41.00", "qty": 2, "description": "a"}, {"amount": 4100}],
            "shippingAddress": {"contactName": "Ann", "street1": "1 Calle", "city": "Madrid",
                                "zip": "28001", "countryCode": "ES", "type": "commercial"},
        })),
        NOW + 60,
    );
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json_body());
    let invoice = reply.json_body();
    assert_eq!(invoice["detail"][0]["amount"], 4100);
    assert_eq!(invoice["detail"][1]["qty"], 1);
    assert_eq!(invoice["total"], 4100 * 3 + 990);
    assert_eq!(invoice["shippingAddress"]["country"]["alpha2Code"], "ES");
    assert_eq!(invoice["dateDue"], "2033-06-01");
    assert_eq!(data.invoices[&1005].updated_at, NOW + 60);
}

#[test]
fn update_bodies_are_checked_field_by_field() {
    let mut data = data();
    let reply = update(
        &mut data,
        "1001",
        &body(json!({
            "billingAddress": {}, "customerName": "x".repeat(46), "shippingAmount": -1,
            "paymentType": "cash", "detail": [{"amount": "4.005"}], "dateDue": "soon", "color": 1,
            "customerId": 99,
        })),
        NOW,
    );
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let message = reply.json_body()["message"].as_str().unwrap().to_owned();
    for field in [
        "billingAddress",
        "customerName",
        "shippingAmount",
        "paymentType",
        "detail[0].amount",
        "dateDue",
        "color",
        "customerId",
    ] {
        assert!(message.contains(field), "{field} missing from: {message}");
    }
    assert_eq!(
        data.invoices[&1001].updated_at,
        seed::build(3, 25, NOW).invoices[&1001].updated_at
    );
}

#[test]
fn void_charge_and_delete_follow_the_invoice_state() {
    let mut data = data();
    assert_eq!(api::void(&mut data, "1001", NOW).status, StatusCode::OK);
    assert_eq!(data.invoices[&1001].status, "void");
    assert_eq!(
        api::void(&mut data, "1001", NOW).status,
        StatusCode::BAD_REQUEST
    );

    let due = data.invoices[&1002].balance_due();
    let pay =
        |amount: i64| body(json!({"amount": amount, "paymentType": "offlinePaymentProvider"}));
    assert_eq!(
        api::charge(&mut data, "1002", &pay(due + 1), NOW).status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        api::charge(&mut data, "1002", &pay(100), NOW).status,
        StatusCode::OK
    );
    assert_eq!(data.invoices[&1002].status, "posted");
    assert_eq!(
        api::charge(&mut data, "1002", &pay(due - 100), NOW).status,
        StatusCode::OK
    );
    assert_eq!(data.invoices[&1002].status, "paid");
    assert_eq!(
        api::delete(&mut data, "1002").status,
        StatusCode::BAD_REQUEST
    );

    assert_eq!(
        api::delete(&mut data, "1003").status,
        StatusCode::NO_CONTENT
    );
    assert!(!data.invoices.contains_key(&1003));
    assert_eq!(api::delete(&mut data, "1003").status, StatusCode::NOT_FOUND);
}

#[test]
fn amounts_are_written_in_cents_dollars_or_as_documented() {
    use super::state::AmountStyle;
    let mut data = data();
    let read = |data: &Data| {
        api::get(data, "1004", &Params::parse(Some("include=detail")))
            .json_body()
            .clone()
    };
    let cents = read(&data);
    assert_eq!(cents["shippingAmount"], 1500);
    let total = cents["total"].as_i64().unwrap();
    let line = cents["detail"][0]["amount"].as_i64().unwrap();
    let text = |c: i64| rust_decimal::Decimal::new(c, 2).to_string();

    data.amounts = AmountStyle::Dollars;
    let dollars = read(&data);
    assert_eq!(dollars["total"], json!(text(total)));
    assert_eq!(dollars["shippingAmount"], "15.00");
    assert_eq!(dollars["detail"][0]["amount"], json!(text(line)));
    assert_eq!(dollars["balanceDue"], json!(text(total)));
    assert_eq!(dollars["taxAmount"], "0.00");
    assert!(dollars["total"]
        .as_str()
        .unwrap()
        .ends_with(&format!(".{:02}", total % 100)));

    data.amounts = AmountStyle::Documented;
    let documented = read(&data);
    assert_eq!(documented["shippingAmount"], 1500, "documented in cents");
    assert_eq!(documented["total"], dollars["total"]);
    assert_eq!(documented["detail"], dollars["detail"]);

    // Charges are cents whatever the style; the invoice is held in cents.
    let due = data.invoices[&1002].balance_due();
    let reply = api::charge(
        &mut data,
        "1002",
        &body(json!({"amount": due, "paymentType": "offlinePaymentProvider"})),
        NOW,
    );
    assert_eq!(reply.json_body()["amount"], due);
    assert_eq!(read(&data)["total"], documented["total"]);
}

#[test]
fn an_ignored_sort_serves_newest_created_first_whatever_is_asked() {
    use super::state::ListOrder;
    let mut data = data();
    // 1003, created early, changes now: newest updatedAt.
    data.invoices.get_mut(&1003).unwrap().touch(NOW + 10);
    let first = |data: &Data, query: &str| list(data, query).1["data"][0]["id"].clone();
    assert_eq!(first(&data, "orderBy=updatedAt&sortBy=DESC"), "1003");
    data.list_order = ListOrder::Ignored;
    for query in [
        "orderBy=updatedAt&sortBy=DESC",
        "orderBy=updatedAt&sortBy=ASC",
        "orderBy=id&sortBy=ASC",
    ] {
        assert_eq!(first(&data, query), "1025", "{query}");
    }
    let (status, page) = list(&data, "orderBy=updatedAt&sortBy=DESC&itemPerPage=25");
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.last(), Some(&"1001"));
    assert_eq!(
        ids[22], "1003",
        "where it was created, not where it changed"
    );
    // Bad values are still refused.
    assert_eq!(list(&data, "orderBy=color").0, StatusCode::BAD_REQUEST);
}
