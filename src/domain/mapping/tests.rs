use std::collections::BTreeMap;

use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;

use super::*;
use crate::domain::fingerprint::{fingerprint, fingerprint_of_document};
use crate::domain::invoice::{RawAddress, RawInvoice, RawLineItem};
use crate::domain::record::RecordLocator;

fn parse(raw: RawInvoice) -> SourceInvoice {
    SourceInvoice::parse("erp", RecordLocator::id("x"), raw).expect("valid raw invoice")
}

fn sample_raw() -> RawInvoice {
    RawInvoice {
        external_id: Some("INV-1".into()),
        external_customer_id: Some("CUST-00001".into()),
        invoice_number: Some("1001".into()),
        kind: None,
        currency: Some("EUR".into()),
        issue_date: Some("2026-11-01".into()),
        due_date: Some("2026-12-01".into()),
        total: Some("118.00".into()),
        open_balance: Some("50.00".into()),
        subtotal: Some("100.00".into()),
        tax: Some("19.00".into()),
        freight: Some("4.00".into()),
        discount: Some("5.00".into()),
        line_items: vec![
            RawLineItem {
                sku: Some("A".into()),
                description: Some("Widget".into()),
                quantity: Some("3".into()),
                unit_price: Some("20.00".into()),
                line_total: Some("54.00".into()),
            },
            RawLineItem {
                sku: Some("B".into()),
                description: Some("Gadget".into()),
                quantity: Some("2".into()),
                unit_price: Some("23.00".into()),
                line_total: None,
            },
        ],
        billing_address: Some(RawAddress {
            first_name: Some("Ann".into()),
            company: Some("Acme GmbH".into()),
            city: Some("Berlin".into()),
            ..RawAddress::default()
        }),
        po_number: Some("PO-9".into()),
        terms: Some("Net 30".into()),
        memo: Some("thanks".into()),
        pdf_url: Some("https://erp.example/1.pdf".into()),
        extra_fields: BTreeMap::from([("rep".to_owned(), "Jo".to_owned())]),
        ..RawInvoice::default()
    }
}

fn settings() -> MappingSettings {
    MappingSettings {
        timezone: chrono_tz::Europe::Berlin,
        extra_fields: BTreeMap::from([
            ("Sales Rep".to_owned(), SourceField::Extra("rep".into())),
            ("ERP Sync Source".to_owned(), SourceField::SourceName),
        ]),
        ..MappingSettings::default()
    }
}

#[test]
fn maps_every_field() {
    let d = map_invoice(&parse(sample_raw()), "7", &settings());
    assert_eq!(d.customer_id, "7");
    assert_eq!(d.kind, "Invoice");
    assert_eq!(d.status, InvoiceStatus::PartiallyPaid);
    // Midnight in Berlin (CET, UTC+1 in November).
    assert_eq!(
        d.issued_at.map(|t| t.to_rfc3339()),
        Some("2026-10-31T23:00:00+00:00".into())
    );
    assert_eq!(d.purchase_order_number.as_deref(), Some("PO-9"));
    assert_eq!(d.terms_conditions.as_deref(), Some("Net 30"));
    assert_eq!(
        d.external_pdf_url.as_deref(),
        Some("https://erp.example/1.pdf")
    );
    assert_eq!(
        d.extra_fields.get("Sales Rep").map(String::as_str),
        Some("Jo")
    );
    assert_eq!(
        d.extra_fields.get("ERP Sync Source").map(String::as_str),
        Some("erp")
    );
    let labels: Vec<_> = d
        .cost_lines
        .iter()
        .map(|c| (c.description.as_str(), c.amount.value.to_string()))
        .collect();
    assert_eq!(
        labels,
        [
            ("Subtotal", "100.00".into()),
            ("Freight", "4.00".into()),
            ("Sales Tax", "19.00".into()),
            ("Discount", "-5.00".into())
        ]
    );
    // 3 x 20 = 60 with a line total of 54: a unit discount of 2.
    assert_eq!(
        d.line_items[0].unit_discount.as_ref().map(|a| a.value),
        Some(Decimal::from(2))
    );
    assert_eq!(
        d.billing_address
            .as_ref()
            .and_then(|a| a.other.get("company")),
        Some(&json!("Acme GmbH"))
    );

    let new = d.to_new_invoice();
    assert_eq!(new.source, Some(crate::b2b::model::InvoiceSource::External));
    assert_eq!(new.external_id.as_deref(), Some("INV-1"));
    let body = serde_json::to_value(&new).expect("json");
    assert_eq!(
        body["details"]["details"]["lineItems"][1]["quantity"],
        json!("2")
    );
    assert_eq!(
        body["originalBalance"],
        json!({"code": "EUR", "value": 118.00})
    );
}

#[test]
fn statuses_follow_balances() {
    let s = |t: i64, o: i64| status_for(Decimal::from(t), Decimal::from(o));
    assert_eq!(s(100, 100), InvoiceStatus::Open);
    assert_eq!(s(100, 40), InvoiceStatus::PartiallyPaid);
    assert_eq!(s(100, 0), InvoiceStatus::Completed);
    assert_eq!(
        s(-20, -20),
        InvoiceStatus::Completed,
        "a credit memo owes nothing"
    );
}

#[test]
fn an_update_touches_only_owned_fields_and_keeps_foreign_details() {
    let mut s = settings();
    s.owned = vec![OwnedField::LineItems, OwnedField::OpenBalance];
    let d = map_invoice(&parse(sample_raw()), "7", &s);
    let current: InvoiceDetails = serde_json::from_value(json!({
        "type": "StandardInvoiceDetails",
        "header": {"costLines": [{"amount": {"code": "EUR", "value": "1"}, "description": "Old"}], "note": "by a person"},
        "details": {"lineItems": [], "shipments": [{"trackingNumber": "1Z"}]}
    }))
    .expect("details");
    let update = d.to_update(&current);
    let body = serde_json::to_value(&update).expect("json");
    let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["details", "openBalance"]);
    let details = &body["details"];
    assert_eq!(
        details["header"]["costLines"][0]["description"],
        json!("Old"),
        "cost lines not owned here"
    );
    assert_eq!(details["header"]["note"], json!("by a person"));
    assert_eq!(
        details["details"]["shipments"][0]["trackingNumber"],
        json!("1Z")
    );
    assert_eq!(
        details["details"]["lineItems"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(details["type"], json!("StandardInvoiceDetails"));
}

#[test]
fn an_erp_without_a_pdf_or_billing_address_clears_them_when_owned() {
    let mut raw = sample_raw();
    raw.pdf_url = None;
    raw.billing_address = None;
    let d = map_invoice(&parse(raw), "7", &settings());
    let current: InvoiceDetails =
        serde_json::from_value(json!({"header": {"billingAddress": {"city": "Old"}}}))
            .expect("details");
    let body = serde_json::to_value(d.to_update(&current)).expect("json");
    assert_eq!(body["externalPdfUrl"], json!(""));
    assert!(body["details"]["header"].get("billingAddress").is_none());
}

#[test]
fn fingerprints_ignore_number_formatting_and_map_order() {
    let mut a = sample_raw();
    let mut b = sample_raw();
    a.total = Some("118".into());
    b.total = Some("118.000".into());
    a.line_items[0].quantity = Some("3.0".into());
    b.extra_fields = a
        .extra_fields
        .iter()
        .rev()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let fa = fingerprint(&map_invoice(&parse(a), "7", &settings()));
    let fb = fingerprint(&map_invoice(&parse(b), "7", &settings()));
    assert_eq!(fa, fb);
    assert!(fa.as_str().starts_with("v1:"));
}

#[test]
fn fingerprints_ignore_fields_not_owned() {
    let mut s = settings();
    s.owned.retain(|f| *f != OwnedField::PurchaseOrderNumber);
    let mut other = sample_raw();
    other.po_number = Some("PO-CHANGED".into());
    let fa = fingerprint(&map_invoice(&parse(sample_raw()), "7", &s));
    let fb = fingerprint(&map_invoice(&parse(other), "7", &s));
    assert_eq!(fa, fb);
}

const CURRENCIES: [&str; 6] = ["USD", "EUR", "JPY", "KWD", "BHD", "CLP"];

/// A consistent invoice in minor units: line totals with per-unit discounts, subtotal = sum of
/// lines, total = subtotal + freight + tax - discount.
fn arb_invoice() -> impl Strategy<Value = RawInvoice> {
    let line = (1i64..500, 0i64..10_000_000, 0i64..100)
        .prop_map(|(qty, price, disc_pct)| (qty, price, price * disc_pct / 100));
    (
        prop::sample::select(CURRENCIES.to_vec()),
        prop::collection::vec(line, 0..6),
        0i64..1_000_000,
        0i64..1_000_000,
        0i64..1_000_000,
        0u8..=100,
    )
        .prop_map(|(code, lines, tax, freight, discount, open_pct)| {
            let c = Currency::parse(code).expect("known code");
            let m = |minor: i64| c.from_minor_units(minor).to_string();
            let subtotal: i64 = lines.iter().map(|(q, p, d)| q * (p - d)).sum();
            let total = subtotal + tax + freight - discount;
            let open = total * i64::from(open_pct) / 100;
            RawInvoice {
                external_id: Some("P-1".into()),
                external_customer_id: Some("C".into()),
                invoice_number: Some("N-1".into()),
                currency: Some(code.into()),
                total: Some(m(total)),
                open_balance: Some(m(open)),
                subtotal: Some(m(subtotal)),
                tax: Some(m(tax)),
                freight: Some(m(freight)),
                discount: Some(m(discount)),
                line_items: lines
                    .iter()
                    .map(|(q, p, d)| RawLineItem {
                        sku: Some("S".into()),
                        description: None,
                        quantity: Some(q.to_string()),
                        unit_price: Some(m(*p)),
                        line_total: Some(m(q * (p - d))),
                    })
                    .collect(),
                ..RawInvoice::default()
            }
        })
}

fn mutate(d: &mut DesiredInvoice, field: OwnedField) {
    let bump = |v: &mut Decimal| *v += Decimal::new(1, d_scale());
    fn d_scale() -> u32 {
        2
    }
    match field {
        OwnedField::InvoiceNumber => d.invoice_number.push('X'),
        OwnedField::Customer => d.customer_id.push('9'),
        OwnedField::Type => d.kind.push('X'),
        OwnedField::DueDate => {
            d.due_date = Some(d.due_date.unwrap_or_default() + chrono::Duration::days(1))
        }
        OwnedField::OriginalBalance => bump(&mut d.original_balance),
        OwnedField::OpenBalance => bump(&mut d.open_balance),
        OwnedField::Status => {
            d.status = if d.status == InvoiceStatus::Open {
                InvoiceStatus::Completed
            } else {
                InvoiceStatus::Open
            }
        }
        OwnedField::PurchaseOrderNumber => {
            d.purchase_order_number = Some(format!(
                "{}X",
                d.purchase_order_number.clone().unwrap_or_default()
            ))
        }
        OwnedField::ExternalPdfUrl => {
            d.external_pdf_url = Some(format!(
                "{}x",
                d.external_pdf_url.clone().unwrap_or_default()
            ))
        }
        OwnedField::ExtraFields => {
            d.extra_fields.insert("k".into(), "changed".into());
        }
        OwnedField::CostLines => d.cost_lines.push(CostLine {
            amount: Amount::new("USD", Decimal::ONE),
            description: "Fee".into(),
            other: Map::new(),
        }),
        OwnedField::BillingAddress => {
            d.billing_address = Some(Address {
                city: format!("{}x", d.billing_address.clone().unwrap_or_default().city),
                ..Address::default()
            })
        }
        OwnedField::ShippingAddresses => d.shipping_addresses.push(Address::default()),
        OwnedField::LineItems => match d.line_items.first_mut() {
            Some(l) => l.quantity += Decimal::ONE,
            None => d.line_items.push(LineItem {
                sku: "S".into(),
                kind: "product".into(),
                description: "d".into(),
                comments: String::new(),
                quantity: Decimal::ONE,
                unit_price: Amount::new("USD", Decimal::ONE),
                unit_discount: None,
                other: Map::new(),
            }),
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mapping_never_loses_a_cent(raw in arb_invoice()) {
        let src = parse(raw);
        let d = map_invoice(&src, "1", &MappingSettings::default());
        let digits = src.currency.minor_unit_digits();
        prop_assert_eq!(d.original_balance, src.total);
        prop_assert_eq!(d.open_balance, src.open_balance);
        // Cost lines add up to the total.
        let sum: Decimal = d.cost_lines.iter().map(|c| c.amount.value).sum();
        prop_assert_eq!(sum, src.total);
        for (line, item) in src.line_items.iter().zip(&d.line_items) {
            let discount = item.unit_discount.as_ref().map_or(Decimal::ZERO, |a| a.value);
            prop_assert_eq!(item.quantity * item.unit_price.value - item.quantity * discount, line.line_total);
            prop_assert!(discount.scale() <= digits.max(1) + 6);
            prop_assert!(item.unit_price.value.scale() <= digits);
        }
        for c in &d.cost_lines {
            prop_assert!(c.amount.value.scale() <= digits, "{} has more digits than {}", c.amount.value, src.currency);
            prop_assert_eq!(c.amount.code.as_str(), src.currency.code());
        }
        // And the wire body carries the same digits.
        let body = serde_json::to_value(d.to_new_invoice()).expect("json");
        let total_text = body["originalBalance"]["value"].to_string();
        prop_assert_eq!(total_text.parse::<Decimal>().ok(), Some(src.total));
    }

    #[test]
    fn the_streamed_fingerprint_hashes_the_canonical_document(
        raw in arb_invoice(),
        which in 0usize..OwnedField::ALL.len(),
        extra in proptest::collection::btree_map("[a-zA-Z\"\\\\é ]{0,6}", "[ -~é\u{1F600}]{0,6}", 0..3),
    ) {
        let mut d = map_invoice(&parse(raw), "1", &MappingSettings::default());
        prop_assert_eq!(fingerprint(&d), fingerprint_of_document(&d));
        mutate(&mut d, OwnedField::ALL[which]);
        // Keys a B2B model does not know, in any order, on lines and addresses.
        for (k, v) in extra.iter().rev() {
            if let Some(line) = d.line_items.first_mut() {
                line.other.insert(k.clone(), json!(v));
            }
            if let Some(address) = d.billing_address.as_mut() {
                address.other.insert(k.clone(), json!({"z": v, "a": [1, v]}));
            }
            d.extra_fields.insert(k.clone(), v.clone());
        }
        prop_assert_eq!(fingerprint(&d), fingerprint_of_document(&d));
    }

    #[test]
    fn equal_owned_content_has_equal_fingerprints(raw in arb_invoice()) {
        let a = map_invoice(&parse(raw.clone()), "1", &MappingSettings::default());
        let b = map_invoice(&parse(raw), "1", &MappingSettings::default());
        prop_assert_eq!(fingerprint(&a), fingerprint(&b));
    }

    #[test]
    fn any_owned_change_changes_the_fingerprint(raw in arb_invoice(), which in 0usize..OwnedField::ALL.len()) {
        let field = OwnedField::ALL[which];
        let d = map_invoice(&parse(raw), "1", &MappingSettings::default());
        let mut changed = d.clone();
        mutate(&mut changed, field);
        prop_assert_ne!(fingerprint(&d), fingerprint(&changed), "{:?} changed but the fingerprint did not", field);
        // The same change to a field that is not owned goes unnoticed.
        let mut not_owned = d.clone();
        not_owned.owned.remove(&field);
        let mut changed_not_owned = not_owned.clone();
        mutate(&mut changed_not_owned, field);
        prop_assert_eq!(fingerprint(&not_owned), fingerprint(&changed_not_owned));
    }
}
