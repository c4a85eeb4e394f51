use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::json;

use super::*;
use crate::domain::{Lifecycle, SourceInvoice};

/// An invoice as 004's response documents it (dates as integers, amounts mixed).
fn invoice() -> Value {
    json!({
        "id": "u-1",
        "remoteId": "1042",
        "customerId": 77,
        "invoiceNumber": "INV-1042",
        "issueDate": 1_763_683_200,
        "dueDate": 0,
        "paidOnDate": null,
        "memo": "thanks",
        "companyId": null,
        "currency": "KWD",
        "exchangeRate": 0.307,
        "totalDiscount": "1.000",
        "subTotal": "20.500",
        "invoiceStatus": "OPEN",
        "totalTaxAmount": 0.125,
        "totalAmount": 19.625,
        "balance": "19.625",
        "trackingCategories": [],
        "lineItems": [
            {"id": "l1", "remoteId": "l1", "description": "Widget", "unitPrice": 10.25,
             "quantity": 2, "totalAmount": 20.5, "currency": "kwd", "accountingItemId": "ITEM-9"},
            {"description": "Service fee", "totalAmount": "0"}
        ],
        "purchaseOrders": [{"id": "po-1", "number": "PO-555"}, {"number": "PO-556"}],
        "remoteCreatedAt": "2026-11-20T08:00:00Z",
        "remoteUpdatedAt": "2026-11-21T09:00:00.123Z",
        "remoteDeleted": false,
        "remoteFields": {"Terms": "Net 30", "ClassId": 12, "Flag": true, "Nested": {"a": 1}},
        "createdAt": "2026-11-20T08:00:01Z",
        "updatedAt": "2026-11-21T09:00:01Z"
    })
}

fn read(value: &Value) -> Result<SourceInvoice, RecordError> {
    let locator = locator(value, 0);
    let raw = raw_invoice("erp", &locator, value)?;
    SourceInvoice::parse("erp", locator, raw)
}

fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

#[test]
fn a_documented_invoice_maps_to_every_canonical_field() {
    let inv = read(&invoice()).unwrap();
    assert_eq!(inv.external_id, "1042");
    assert_eq!(inv.external_customer_id, "77");
    assert_eq!(inv.invoice_number, "INV-1042");
    assert_eq!(inv.issue_date, NaiveDate::from_ymd_opt(2025, 11, 21));
    assert_eq!(inv.due_date, None, "0 means absent");
    assert_eq!(inv.currency.code(), "KWD");
    assert_eq!(inv.total, dec("19.625"));
    assert_eq!(inv.open_balance, dec("19.625"));
    assert_eq!(inv.subtotal, Some(dec("20.500")));
    assert_eq!(inv.tax, Some(dec("0.125")));
    assert_eq!(inv.discount, Some(dec("1.000")));
    assert_eq!(inv.po_number.as_deref(), Some("PO-555"));
    assert_eq!(inv.memo.as_deref(), Some("thanks"));
    assert_eq!(inv.lifecycle, Lifecycle::Active);
    assert_eq!(
        inv.updated_at.map(|t| t.to_rfc3339()),
        Some("2026-11-21T09:00:00.123+00:00".to_owned())
    );
    let first = &inv.line_items[0];
    assert_eq!(first.sku.as_deref(), Some("ITEM-9"));
    assert_eq!(first.description, "Widget");
    assert_eq!(
        (first.quantity, first.unit_price, first.line_total),
        (dec("2"), dec("10.25"), dec("20.5"))
    );
    let fee = &inv.line_items[1];
    assert_eq!((fee.quantity, fee.unit_price), (dec("1"), dec("0")));
    let extra: Vec<(&str, &str)> = inv
        .extra_fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(extra, vec![("ClassId", "12"), ("Terms", "Net 30")]);
}

#[test]
fn dates_read_from_text_rfc3339_seconds_and_millis() {
    let cases = [
        (json!("2026-03-04"), Some("2026-03-04")),
        (json!("2026-03-04T23:30:00-05:00"), Some("2026-03-04")),
        (json!(1_772_582_400), Some("2026-03-04")),
        (json!("1772582400"), Some("2026-03-04")),
        (json!(1_772_582_400_000_i64), Some("2026-03-04")),
        (json!(0), None),
        (json!("0"), None),
        (json!(""), None),
        (Value::Null, None),
    ];
    for (value, expected) in cases {
        let mut record = invoice();
        record["dueDate"] = value.clone();
        let inv = read(&record).unwrap();
        assert_eq!(
            inv.due_date.map(|d| d.to_string()).as_deref(),
            expected,
            "{value}"
        );
    }
}

#[test]
fn voided_and_deleted_statuses_set_the_lifecycle() {
    for (status, deleted, lifecycle) in [
        ("VOIDED", false, Lifecycle::Voided),
        ("void", false, Lifecycle::Voided),
        ("Cancelled", false, Lifecycle::Voided),
        ("DELETED", false, Lifecycle::Deleted),
        ("PAID", true, Lifecycle::Deleted),
        ("VOIDED", true, Lifecycle::Deleted),
        ("PARTIALLY_PAID", false, Lifecycle::Active),
    ] {
        let mut record = invoice();
        record["invoiceStatus"] = json!(status);
        record["remoteDeleted"] = json!(deleted);
        assert_eq!(read(&record).unwrap().lifecycle, lifecycle, "{status}");
    }
    let mut record = invoice();
    record.as_object_mut().unwrap().remove("remoteDeleted");
    assert_eq!(
        read(&record).unwrap().lifecycle,
        Lifecycle::Active,
        "a missing remoteDeleted is not a deletion"
    );
}

#[test]
fn odd_records_are_record_errors_naming_the_field() {
    type Breakage = fn(&mut Value);
    let cases: Vec<(Breakage, &str, &str)> = vec![
        (|r| r["currency"] = json!("USX"), "currency", "USX"),
        (|r| r["totalAmount"] = json!("12O.00"), "total", "12O.00"),
        (
            |r| r["balance"] = json!(true),
            "open_balance",
            "`balance` is a boolean",
        ),
        (
            |r| r["issueDate"] = json!("2026-02-30"),
            "issue_date",
            "2026-02-30",
        ),
        (
            |r| r["issueDate"] = json!(1.5),
            "issue_date",
            "whole number",
        ),
        (
            |r| r["lineItems"][0]["quantity"] = json!("two"),
            "line_items[0].quantity",
            "two",
        ),
        (
            |r| r["lineItems"][0]["currency"] = json!("USD"),
            "line_items[0].currency",
            "`USD`",
        ),
        (
            |r| r["lineItems"][1] = json!("x"),
            "line_items[1]",
            "a string",
        ),
        (|r| r["lineItems"] = json!(3), "line_items", "a number"),
        (
            |r| r["purchaseOrders"] = json!("PO"),
            "po_number",
            "not an array",
        ),
        (
            |r| r["remoteFields"] = json!([1]),
            "extra_fields",
            "not an object",
        ),
        (
            |r| r["remoteDeleted"] = json!("maybe"),
            "deleted",
            "true or false",
        ),
        (
            |r| r["customerId"] = json!({"id": 1}),
            "external_customer_id",
            "an object",
        ),
        (
            |r| r["remoteUpdatedAt"] = json!("yesterday"),
            "updated_at",
            "yesterday",
        ),
    ];
    for (break_it, field, reason) in cases {
        let mut record = invoice();
        break_it(&mut record);
        let err = read(&record).unwrap_err();
        assert_eq!(err.field.as_deref(), Some(field), "{err}");
        assert!(err.to_string().contains(reason), "{err}");
        assert!(err.to_string().contains("source erp, record 1042"), "{err}");
    }
}

#[test]
fn records_without_ids_are_located_by_position() {
    let err = read(&json!("not an invoice")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "source erp, record #1 of the page (no remoteId): the invoice is a string, not an object"
    );
    let mut record = invoice();
    record.as_object_mut().unwrap().remove("remoteId");
    let err = read(&record).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("external_id"));
    assert!(
        err.to_string().contains("record u-1"),
        "falls back to id: {err}"
    );
}

#[test]
fn po_numbers_come_from_strings_or_the_first_object_key_present() {
    for (orders, expected) in [
        (json!(["PO-1", "PO-2"]), Some("PO-1")),
        (
            json!([{"purchaseOrderNumber": "P-9", "id": "x"}]),
            Some("P-9"),
        ),
        (json!([{"id": 17}]), Some("17")),
        (json!([]), None),
        (Value::Null, None),
    ] {
        let mut record = invoice();
        record["purchaseOrders"] = orders;
        assert_eq!(read(&record).unwrap().po_number.as_deref(), expected);
    }
}

#[test]
fn updated_at_is_read_even_from_bad_records() {
    let mut record = invoice();
    record["currency"] = json!("USX");
    assert_eq!(
        updated_at(&record).map(|t| t.timestamp_millis()),
        Some(1_795_251_600_123)
    );
    record["remoteUpdatedAt"] = json!(1_795_251_600);
    assert_eq!(
        updated_at(&record).map(|t| t.timestamp()),
        Some(1_795_251_600)
    );
    record["remoteUpdatedAt"] = json!("soon");
    assert_eq!(updated_at(&record), None);
}

#[test]
fn list_envelopes_follow_the_names_and_refuse_wrong_shapes() {
    let names = UnifiedNames::default();
    let page = list_page(json!({"invoices": [1, 2], "next": "c2"}), &names, 2).unwrap();
    assert_eq!((page.records.len(), page.next.as_deref()), (2, Some("c2")));
    let last = list_page(json!({"invoices": [1], "next": null}), &names, 2).unwrap();
    assert_eq!(last.next, None);
    let short = list_page(json!({"invoices": [1]}), &names, 2).unwrap();
    assert_eq!(short.next, None, "a short page without next is the last");
    let empty_next = list_page(json!({"invoices": [], "next": ""}), &names, 2).unwrap();
    assert_eq!(empty_next.next, None);

    let error = |body: Value| list_page(body, &names, 2).unwrap_err();
    assert!(error(json!([1])).contains("not an object"));
    assert!(error(json!({"data": []})).contains("no `invoices` field (fields: data)"));
    assert!(error(json!({"invoices": {}})).contains("not an array"));
    assert!(error(json!({"invoices": [], "next": true})).contains("not a cursor"));
    assert!(error(json!({"invoices": [1, 2]})).contains("names.next_field"));

    let renamed = UnifiedNames {
        list_field: "data".to_owned(),
        next_field: "cursor".to_owned(),
        single_field: "item".to_owned(),
        ..UnifiedNames::default()
    };
    let page = list_page(json!({"data": [1], "cursor": 5}), &renamed, 1).unwrap();
    assert_eq!(page.next.as_deref(), Some("5"));
    assert_eq!(
        single(json!({"item": {"a": 1}}), &renamed).unwrap(),
        json!({"a": 1})
    );
    assert!(single(json!({"invoice": {}}), &renamed)
        .unwrap_err()
        .contains("no `item` field"));
}

#[test]
fn body_cursors_follow_has_next_and_page_numbers_end_on_a_short_page() {
    use crate::config::{PagingStyle, UnifiedPreset};
    let names = UnifiedNames::for_preset(UnifiedPreset::Alloy2023_12);
    let page = |body: Value| list_page_in(body, &names, PagingStyle::BodyCursor, 2, "invoices");
    let more = page(json!({"invoices": [1, 2], "pageInfo": {"hasNext": true, "nextCursor": "c2"}}))
        .unwrap();
    assert_eq!((more.next.as_deref(), more.more), (Some("c2"), true));
    let end = page(json!({"invoices": [1, 2], "pageInfo": {"hasNext": false, "nextCursor": "c3"}}))
        .unwrap();
    assert_eq!(
        (end.next, end.more),
        (None, false),
        "hasNext false ends the list"
    );
    let null = page(json!({"invoices": [1], "pageInfo": {"nextCursor": null}})).unwrap();
    assert!(!null.more);
    assert!(
        page(json!({"invoices": [1, 2], "pageInfo": {"hasNext": true}}))
            .unwrap_err()
            .contains("holds no cursor")
    );
    assert!(page(json!({"invoices": [1, 2]}))
        .unwrap_err()
        .contains("came without `pageInfo.nextCursor`"));
    assert!(
        !page(json!({"invoices": [1]})).unwrap().more,
        "a short page"
    );
    assert!(
        page(json!({"invoices": [], "pageInfo": {"hasNext": "yes"}}))
            .unwrap_err()
            .contains("not true or false")
    );

    for paging in [PagingStyle::PageNumber, PagingStyle::Offset] {
        let full =
            list_page_in(json!({"invoices": [1, 2]}), &names, paging, 2, "invoices").unwrap();
        assert!(full.more && full.next.is_none(), "{paging:?}");
        let short = list_page_in(json!({"invoices": [1]}), &names, paging, 2, "invoices").unwrap();
        assert!(!short.more);
        let empty = list_page_in(json!({"invoices": []}), &names, paging, 2, "invoices").unwrap();
        assert!(!empty.more);
    }
    let customers = list_page_in(
        json!({"customers": [{"id": "c"}]}),
        &names,
        PagingStyle::PageNumber,
        100,
        "customers",
    )
    .unwrap();
    assert_eq!(customers.records.len(), 1);
}

#[test]
fn the_erp_update_time_falls_back_to_2023_12s_milliseconds() {
    let mut record = invoice();
    record.as_object_mut().unwrap().remove("remoteUpdatedAt");
    record["updatedTimestamp"] = json!(1_795_251_600_123_i64);
    assert_eq!(
        updated_at(&record).map(|t| t.timestamp_millis()),
        Some(1_795_251_600_123)
    );
    assert!(read(&record).unwrap().updated_at.is_some());
    let by_number = raw_invoice_by(
        "erp",
        &locator_by(&record, 0, "invoiceNumber"),
        &record,
        "invoiceNumber",
    )
    .unwrap();
    assert_eq!(by_number.external_id.as_deref(), Some("INV-1042"));
}
