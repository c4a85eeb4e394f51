use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::*;
use crate::config::RebilliaAmountUnit;
use crate::domain::Lifecycle;
use crate::source::rebillia::amounts::AmountUnit;

/// An invoice shaped like the InvoiceNormalizer output (types.ts of the reference client).
fn invoice() -> Value {
    json!({
        "id": "1007",
        "invoiceNo": "RB-000007",
        "status": "posted",
        "customer": {"id": "503", "customerId": "CUST-00003", "firstName": "Ann"},
        "currency": {"id": "2", "iso3": "EUR", "name": "Euro", "symbol": "€"},
        "createdAt": "2026-11-01T09:30:00+00:00",
        "updatedAt": "2026-11-02T10:00:00+00:00",
        "dateDue": "2026-12-01",
        "dateFrom": "2026-11-01",
        "dateTo": "2026-11-30",
        "detail": [
            {"id": "1", "amount": 4100, "qty": 2, "description": "Gold plan"},
            {"id": "2", "amount": 199, "qty": 3, "description": null, "product": {"name": "Add-on", "sku": "AO-1"}}
        ],
        "shippingAmount": 1500,
        "taxAmount": 0,
        "subtotalTaxExc": 8797,
        "total": 10297,
        "balanceDue": 5000,
        "comments": "Thanks",
        "terms": "Net 30",
        "billingAddress": {"contactName": "Ann Lee Smith", "street1": "1 Main St", "city": "Berlin",
                           "zip": "10115", "country": {"alpha2Code": "DE", "name": "Germany"}},
        "shippingAddress": {"contactName": null, "street1": null, "city": null, "country": ""}
    })
}

fn convert(value: &Value) -> Result<SourceInvoice, RecordError> {
    invoice_from_json("rb", value)
}

fn error_field(value: &Value) -> String {
    let err = convert(value).unwrap_err();
    assert!(err.to_string().starts_with("source rb, record "), "{err}");
    err.field.as_deref().unwrap_or("").to_owned()
}

#[test]
fn a_rebillia_invoice_becomes_a_source_invoice_with_exact_cents() {
    let inv = convert(&invoice()).unwrap();
    assert_eq!(inv.external_id, "1007");
    assert_eq!(inv.external_customer_id, "CUST-00003");
    assert_eq!(inv.invoice_number, "RB-000007");
    assert_eq!(inv.currency.code(), "EUR");
    assert_eq!(inv.total, Decimal::new(10297, 2));
    assert_eq!(inv.open_balance, Decimal::new(5000, 2));
    assert_eq!(inv.freight, Some(Decimal::new(1500, 2)));
    assert_eq!(inv.subtotal, Some(Decimal::new(8797, 2)));
    assert_eq!(inv.line_items.len(), 2);
    assert_eq!(inv.line_items[0].unit_price, Decimal::new(4100, 2));
    assert_eq!(inv.line_items[0].line_total, Decimal::new(8200, 2));
    assert_eq!(inv.line_items[1].description, "Add-on");
    assert_eq!(inv.line_items[1].sku.as_deref(), Some("AO-1"));
    assert_eq!(inv.line_items[1].line_total, Decimal::new(597, 2));
    assert_eq!(
        inv.issue_date.map(|d| d.to_string()).as_deref(),
        Some("2026-11-01")
    );
    assert_eq!(
        inv.due_date.map(|d| d.to_string()).as_deref(),
        Some("2026-12-01")
    );
    assert_eq!(
        inv.updated_at.map(|t| t.to_rfc3339()).as_deref(),
        Some("2026-11-02T10:00:00+00:00")
    );
    let billing = inv.billing_address.as_ref().unwrap();
    assert_eq!(
        (billing.first_name.as_str(), billing.last_name.as_str()),
        ("Ann", "Lee Smith")
    );
    assert_eq!(billing.country, "DE");
    assert!(
        inv.shipping_addresses.is_empty(),
        "an empty address is no address"
    );
    assert_eq!(inv.memo.as_deref(), Some("Thanks"));
    assert_eq!(inv.extra_fields["status"], "posted");
    assert_eq!(inv.extra_fields["date_to"], "2026-11-30");
    assert_eq!(inv.lifecycle, Lifecycle::Active);
}

#[test]
fn statuses_map_to_lifecycles_and_unknown_ones_are_refused() {
    for (status, lifecycle) in [
        ("posted", Lifecycle::Active),
        ("requestPayment", Lifecycle::Active),
        ("REQUESTPAYMENT", Lifecycle::Active),
        ("paid", Lifecycle::Active),
        ("partiallyPaid", Lifecycle::Active),
        ("refunded", Lifecycle::Active),
        ("void", Lifecycle::Voided),
        ("voided", Lifecycle::Voided),
        ("deleted", Lifecycle::Deleted),
        ("archived", Lifecycle::Deleted),
    ] {
        let mut v = invoice();
        v["status"] = json!(status);
        assert_eq!(convert(&v).unwrap().lifecycle, lifecycle, "{status}");
    }
    let mut v = invoice();
    v["status"] = json!("draft");
    assert_eq!(error_field(&v), "status");
    v.as_object_mut().unwrap().remove("status");
    assert_eq!(error_field(&v), "status");
}

#[test]
fn bad_values_name_the_canonical_field_and_the_wire_field() {
    let mut v = invoice();
    v["detail"][1]["amount"] = json!(12.5);
    let err = convert(&v).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("line_items[1].unit_price"));
    assert!(err.reason.contains("detail[1].amount"), "{err}");
    assert!(err.reason.contains("whole number of cents"), "{err}");
    assert!(err.to_string().contains("record 1007"), "{err}");

    type Breakage = fn(&mut Value);
    let cases: Vec<(Breakage, &str)> = vec![
        (|v| v["currency"]["iso3"] = json!("USX"), "currency"),
        (|v| v["currency"] = Value::Null, "currency"),
        (|v| v["total"] = json!("lots"), "total"),
        (|v| v["balanceDue"] = json!(1e30), "open_balance"),
        // Neither whole cents nor a dollar string (a decimal string is dollars: see below).
        (|v| v["shippingAmount"] = json!(15.5), "freight"),
        (
            |v| v["detail"][0]["qty"] = json!(1.5),
            "line_items[0].quantity",
        ),
        (
            |v| v["detail"][0]["qty"] = Value::Null,
            "line_items[0].quantity",
        ),
        (|v| v["detail"] = Value::Null, "line_items"),
        (|v| v["customer"] = Value::Null, "external_customer_id"),
        (|v| v["invoiceNo"] = Value::Null, "invoice_number"),
        (|v| v["dateDue"] = json!("someday"), "due_date"),
        (|v| v["updatedAt"] = json!("yesterday"), "updated_at"),
        (
            |v| {
                v["detail"][0]["amount"] = json!(i64::MAX);
                v["detail"][0]["qty"] = json!(i64::MAX);
            },
            "line_items[0].line_total",
        ),
    ];
    for (break_it, field) in cases {
        let mut v = invoice();
        break_it(&mut v);
        assert_eq!(error_field(&v), field, "{v}");
    }
}

#[test]
fn zero_decimal_currencies_take_whole_units_only() {
    let mut v = invoice();
    v["currency"] = json!({"iso3": "JPY"});
    v["detail"] = json!([{"amount": 205_000, "qty": 2, "description": "Plan"}]);
    v["subtotalTaxExc"] = json!(410_000);
    v["shippingAmount"] = Value::Null;
    v["total"] = json!(410_000);
    v["balanceDue"] = json!(410_000);
    let inv = convert(&v).unwrap();
    assert_eq!(inv.total, Decimal::new(4100, 0));
    // 41.50 JPY in cents (the invoice adds up either way; cents until the source shows
    // otherwise), a sum that does not exist in yen.
    v["detail"][0]["amount"] = json!(4150);
    for key in ["subtotalTaxExc", "total", "balanceDue"] {
        v[key] = json!(8300);
    }
    assert_eq!(error_field(&v), "line_items[0].unit_price");
    // So is a dollar string finer than a cent.
    let mut v = invoice();
    v["currency"] = json!({"iso3": "USD"});
    v["detail"] = json!([{"amount": "1.005", "qty": 1, "description": "Plan"}]);
    v["subtotalTaxExc"] = json!("1.005");
    v["shippingAmount"] = Value::Null;
    v["total"] = json!("1.005");
    assert_eq!(error_field(&v), "line_items[0].unit_price");
}

/// The invoice of [`invoice`] with every amount a dollar string but `shippingAmount`, which
/// stays in cents as documented.
fn in_dollars() -> Value {
    let mut v = invoice();
    v["detail"][0]["amount"] = json!("41.00");
    v["detail"][1]["amount"] = json!("1.99");
    v["taxAmount"] = json!("0.00");
    v["subtotalTaxExc"] = json!("87.97");
    v["total"] = json!("102.97");
    v["balanceDue"] = json!("50.00");
    v
}

#[test]
fn the_same_invoice_in_cents_and_in_dollars_converts_to_the_same_amounts() {
    let cents = convert(&invoice()).unwrap();
    let dollars = convert(&in_dollars()).unwrap();
    assert_eq!(dollars, cents);
    assert_eq!(
        dollars.to_raw(),
        cents.to_raw(),
        "the same text, not only the same numbers"
    );
    assert_eq!(cents.to_raw().total.as_deref(), Some("102.97"));
    assert_eq!(
        cents.to_raw().line_items[0].unit_price.as_deref(),
        Some("41.00")
    );

    // Shipping as a dollar string too.
    let mut v = in_dollars();
    v["shippingAmount"] = json!("15.00");
    assert_eq!(convert(&v).unwrap(), cents);
    // Whole dollars in lines and totals, documented cents in shipping: only dollars add up.
    let mut v = in_dollars();
    v["detail"][0]["amount"] = json!(41);
    v["detail"][1] = json!({"amount": 2, "qty": 3, "description": null, "product": {"name": "Add-on", "sku": "AO-1"}});
    for (key, value) in [("subtotalTaxExc", 88), ("total", 103), ("balanceDue", 50)] {
        v[key] = json!(value);
    }
    v["shippingAmount"] = json!(1500);
    let inv = convert(&v).unwrap();
    assert_eq!(inv.total, Decimal::new(10300, 2));
    assert_eq!(inv.line_items[0].unit_price.to_string(), "41.00");
    assert_eq!(inv.freight, Some(Decimal::new(1500, 2)));
}

#[test]
fn an_invoice_that_adds_up_in_neither_unit_is_refused_with_both_sums() {
    let mut v = invoice();
    v["total"] = json!(10298);
    let err = convert(&v).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("total"));
    assert_eq!(
        err.to_string(),
        "source rb, record 1007: field `total`: invoice RB-000007: the amounts add up neither in \
         cents nor in dollars: in cents, lines 87.97 + shipping 15.00 + tax 0.00 = 102.97, \
         total 102.98; in dollars, lines 8797.00 + shipping 15.00 + tax 0.00 = 8812.00, total \
         10298.00"
    );
    // A decimal string in shipping is dollars: 15.50 does not add up either.
    let mut v = invoice();
    v["shippingAmount"] = json!("15.5");
    let err = convert(&v).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("total"));
    assert!(err.reason.contains("shipping 15.50"), "{err}");
    // Dollar strings that do not add up: one sum, it does not depend on the unit.
    let mut v = in_dollars();
    v["total"] = json!("103.00");
    let err = convert(&v).unwrap_err();
    assert!(
        err.reason.ends_with(
            "the amounts do not add up: lines 87.97 + shipping 15.00 + tax 0.00 = 102.97, total 103.00"
        ),
        "{err}"
    );
}

#[test]
fn a_forced_unit_reads_whole_numbers_its_way() {
    let forced = |unit| AmountPolicy {
        configured: unit,
        fallback: AmountUnit::Cents,
    };
    // One line, no shipping: 4100 adds up as cents and as dollars.
    let mut v = invoice();
    v["detail"] = json!([{"amount": 4100, "qty": 1, "description": "Plan"}]);
    v["shippingAmount"] = Value::Null;
    for key in ["subtotalTaxExc", "total", "balanceDue"] {
        v[key] = json!(4100);
    }
    let total = |policy| invoice_with("rb", &v, policy).map(|i| i.total.to_string());
    assert_eq!(total(AmountPolicy::default()), Ok("41.00".to_owned()));
    assert_eq!(
        total(forced(RebilliaAmountUnit::Cents)),
        Ok("41.00".to_owned())
    );
    assert_eq!(
        total(forced(RebilliaAmountUnit::Dollars)),
        Ok("4100.00".to_owned())
    );
    let shown_dollars = AmountPolicy {
        fallback: AmountUnit::Dollars,
        ..AmountPolicy::default()
    };
    assert_eq!(total(shown_dollars), Ok("4100.00".to_owned()));
    // Documented cents in shipping tell: forcing dollars is refused with the reason.
    let err = invoice_with("rb", &invoice(), forced(RebilliaAmountUnit::Dollars)).unwrap_err();
    assert!(
        err.reason
            .contains("do not add up in dollars (amount_unit = \"dollars\")")
            && err
                .reason
                .ends_with("they add up in cents: check amount_unit"),
        "{err}"
    );
}

#[test]
fn ids_customers_and_times_are_read_leniently() {
    let mut v = invoice();
    v["id"] = json!(1007);
    v["customer"] = json!({"id": 503, "customerId": ""});
    v["updatedAt"] = Value::Null;
    v["createdAt"] = json!("2026-11-01 09:30:00");
    let inv = convert(&v).unwrap();
    assert_eq!(inv.external_id, "1007");
    assert_eq!(
        inv.external_customer_id, "503",
        "falls back to Rebillia's own id"
    );
    assert_eq!(
        inv.updated_at.map(|t| t.to_rfc3339()).as_deref(),
        Some("2026-11-01T09:30:00+00:00"),
        "createdAt stands in for a missing updatedAt"
    );
    assert_eq!(
        inv.issue_date.map(|d| d.to_string()).as_deref(),
        Some("2026-11-01")
    );
}

#[test]
fn not_an_object_is_a_whole_record_error() {
    let err = convert(&json!(["x"])).unwrap_err();
    assert_eq!(err.field, None);
    assert!(err.to_string().contains("(without id)"), "{err}");
}
