use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;

use super::fixtures::{arb_invoice, parse, sample_raw, settings};
use super::*;
use crate::domain::fingerprint::{fingerprint, fingerprint_of_document};

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
