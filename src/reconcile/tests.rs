use std::str::FromStr;

use serde_json::json;

use super::*;

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}

fn owned_all() -> BTreeSet<OwnedField> {
    OwnedField::ALL.into_iter().collect()
}

/// A B2B invoice as `GET /invoices` returns it.
fn b2b(id: u64, ext: &str, open: &str) -> Invoice {
    serde_json::from_value(json!({
        "id": id,
        "customerId": "3",
        "externalCustomerId": "CUST-3",
        "externalId": ext,
        "invoiceNumber": format!("N-{ext}-{id}"),
        "type": "Invoice",
        "dueDate": 1_767_225_600,
        "status": if open == "100" { 0 } else { 1 },
        "purchaseOrderNumber": "PO-1",
        "details": {
            "header": {"costLines": [{"amount": {"code": "USD", "value": "100"}, "description": "Subtotal"}]},
            "details": {"lineItems": [{
                "sku": "S", "type": "product", "description": "Widget", "comments": "",
                "quantity": "2", "unitPrice": {"code": "USD", "value": "50"},
                "unitDiscount": {"code": "USD", "value": "0"}
            }]},
            "personNote": "kept"
        },
        "originalBalance": {"code": "USD", "value": "100"},
        "openBalance": {"code": "USD", "value": open},
        "extraFields": []
    }))
    .unwrap()
}

/// The ERP's view of what `b2b(.., "100")` holds: they agree.
fn erp(ext: &str, open: &str) -> ErpInvoice {
    let agreeing = b2b(1, ext, open);
    let mut owned = observed(&agreeing, usd(), &owned_all());
    owned.insert("invoice_number", json!(format!("N-{ext}")));
    ErpInvoice {
        external_id: ext.to_owned(),
        invoice_number: format!("N-{ext}"),
        currency: usd(),
        erp_open: dec(open),
        expected_open: dec(open),
        owned: Some(owned),
        owned_fields: owned_all(),
        note: None,
    }
}

/// `b2b(id, ext, open)` numbered as the ERP numbers it.
fn held(id: u64, ext: &str, open: &str) -> Invoice {
    let mut inv = b2b(id, ext, open);
    inv.invoice_number = format!("N-{ext}");
    inv
}

fn state(ext: &str, b2b_id: Option<u64>) -> StateRow {
    StateRow {
        id: 0,
        source: "erp".into(),
        external_id: ext.into(),
        invoice_number: format!("N-{ext}"),
        b2b_invoice_id: b2b_id,
        fingerprint: Some("v1:x".into()),
        owned: None,
        written_open: None,
        erp_version: None,
        status: Status::Synced,
        pending: None,
        pending_fingerprint: None,
        pending_version: None,
        last_synced_at: None,
        last_attempted_at: None,
        attempts: 0,
        next_attempt_at: None,
        last_error: None,
    }
}

fn kinds(report: &Report) -> Vec<(Kind, String)> {
    report
        .differences
        .iter()
        .map(|d| (d.kind, d.external_id.clone()))
        .collect()
}

#[test]
fn agreeing_ledgers_report_nothing() {
    let inputs = Inputs {
        source: "erp".into(),
        erp: vec![erp("A", "100"), erp("B", "40")],
        b2b: vec![held(1, "A", "100"), held(2, "B", "40")],
        state: vec![state("A", Some(1)), state("B", Some(2))],
        ..Inputs::default()
    };
    let report = compare(&inputs, Utc::now());
    assert_eq!(report.differences, vec![]);
    assert!(report.is_clean());
    assert_eq!(report.summary.counts.len(), Kind::ALL.len());
    assert_eq!(report.summary.b2b_invoices, 2);
    assert_eq!(report.summary.totals["USD"].erp_open, dec("140"));
    assert_eq!(report.summary.totals["USD"].b2b_open, dec("140"));
}

#[test]
fn every_kind_is_told_apart() {
    let mut drifted = held(4, "D", "100");
    drifted.purchase_order_number = Some("PO-EDITED".into());
    if let Some(Value::Object(line)) = drifted
        .details
        .0
        .get_mut("details")
        .and_then(|d| d.get_mut("lineItems"))
        .and_then(|l| l.get_mut(0))
    {
        line.insert("quantity".into(), json!("3"));
    }
    let inputs = Inputs {
        source: "erp".into(),
        erp: vec![
            erp("M", "10"),
            erp("S", "20"),
            erp("D", "100"),
            erp("U", "100"),
            erp("X", "100"),
            erp("DUP", "100"),
        ],
        b2b: vec![
            drifted,
            held(5, "U", "70"),
            held(6, "X", "100"),
            held(7, "DUP", "100"),
            b2b(8, "DUP", "100"),
            b2b(9, "ORPHAN", "55"),
            b2b(10, "FOREIGN", "1"),
        ],
        state: vec![
            state("S", Some(99)),
            state("D", Some(4)),
            state("U", Some(5)),
            state("X", Some(6)),
            state("DUP", Some(7)),
            state("GONE", Some(98)),
        ],
        foreign_ids: ["FOREIGN".to_owned()].into_iter().collect(),
        ..Inputs::default()
    };
    let report = compare(&inputs, Utc::now());
    assert_eq!(
        kinds(&report),
        vec![
            (Kind::Missing, "M".into()),
            (Kind::Orphan, "ORPHAN".into()),
            (Kind::Duplicate, "DUP".into()),
            (Kind::Drift, "D".into()),
            (Kind::Balance, "U".into()),
            (Kind::StaleState, "GONE".into()),
            (Kind::StaleState, "S".into()),
        ]
    );
    let drift = &report.differences[3];
    let paths: Vec<(&str, &Value, &Value)> = drift
        .diff
        .iter()
        .map(|c| (c.path.as_str(), &c.erp, &c.b2b))
        .collect();
    assert_eq!(
        paths,
        vec![
            ("line_items[0].quantity", &json!("2"), &json!("3")),
            ("purchase_order_number", &json!("PO-1"), &json!("PO-EDITED")),
        ]
    );
    let dup = &report.differences[2];
    assert_eq!(dup.b2b_invoice_ids, vec![7, 8]);
    assert_eq!(dup.remedy, Remedy::Person);
    let balance = &report.differences[4];
    assert!(balance.unexplained);
    assert_eq!(balance.unexplained_amount, Some(dec("30")));
    assert_eq!(balance.explained_amount, Some(dec("0")));
    // The stale row of an invoice the ERP still has is recreated; the other is for a person.
    assert_eq!(report.differences[6].remedy, Remedy::Requeue);
    assert_eq!(report.differences[5].remedy, Remedy::Person);
    let (requeue, recreate) = report.repairs();
    assert_eq!(requeue, vec!["D", "M", "U"]);
    assert_eq!(recreate, vec!["S"]);

    let s = &report.summary;
    // The orphan, the duplicate and the stale row of an invoice gone from both sides are for a
    // person, named and explained; the other four are unexplained until repaired.
    assert_eq!(s.unexplained, 4);
    assert_eq!(s.for_a_person, 3);
    assert!(report
        .differences
        .iter()
        .all(|d| d.unexplained != (d.remedy == Remedy::Person || d.remedy == Remedy::None)));
    assert_eq!(s.b2b_invoices, 6, "the foreign invoice is another source's");
    let t = &s.totals["USD"];
    assert_eq!(t.missing_open, dec("30"));
    assert_eq!(t.orphan_open, dec("55"));
    assert_eq!(t.duplicate_open, dec("100"));
    assert_eq!(t.balance_unexplained, dec("30"));
    assert_eq!(t.erp_open, dec("430"));
}

#[test]
fn b2b_payments_the_erp_has_not_taken_in_explain_a_balance() {
    // The ERP says 100 open; a 40 payment in B2B it does not show yet: the daemon pushes 60.
    let mut e = erp("P", "100");
    e.expected_open = dec("60");
    if let Some(owned) = e.owned.as_mut() {
        owned.insert("open_balance", json!(["USD", "60"]));
        owned.insert("status", json!(1));
    }
    let mut partly = e.clone();
    partly.external_id = "Q".into();
    partly.invoice_number = "N-Q".into();
    if let Some(owned) = partly.owned.as_mut() {
        owned.insert("invoice_number", json!("N-Q"));
    }
    let inputs = Inputs {
        source: "erp".into(),
        erp: vec![e, partly],
        // P holds exactly what was pushed; Q was also lowered by another 10 nobody explains.
        b2b: vec![held(1, "P", "60"), held(2, "Q", "50")],
        state: vec![state("P", Some(1)), state("Q", Some(2))],
        ..Inputs::default()
    };
    let report = compare(&inputs, Utc::now());
    assert_eq!(
        kinds(&report),
        vec![(Kind::Balance, "P".into()), (Kind::Balance, "Q".into())]
    );
    let p = &report.differences[0];
    assert!(!p.unexplained);
    assert_eq!(p.remedy, Remedy::None);
    assert_eq!(p.explained_amount, Some(dec("40")));
    assert_eq!(p.unexplained_amount, Some(dec("0")));
    let q = &report.differences[1];
    assert!(q.unexplained);
    assert_eq!(q.explained_amount, Some(dec("40")));
    assert_eq!(q.unexplained_amount, Some(dec("10")));
    assert_eq!(report.summary.unexplained, 1);
    assert_eq!(report.summary.totals["USD"].balance_explained, dec("80"));
    assert_eq!(report.summary.totals["USD"].balance_unexplained, dec("10"));
    let (requeue, recreate) = report.repairs();
    assert_eq!((requeue, recreate), (vec!["Q".to_owned()], vec![]));
}

#[test]
fn an_unmapped_invoice_is_missing_with_why_and_never_drifts() {
    let mut e = erp("U", "100");
    e.owned = None;
    e.note = Some("ERP customer CUST-9 has no B2B company".into());
    let mut absent = e.clone();
    absent.external_id = "V".into();
    let inputs = Inputs {
        source: "erp".into(),
        erp: vec![e, absent],
        b2b: vec![b2b(1, "U", "100")],
        ..Inputs::default()
    };
    let report = compare(&inputs, Utc::now());
    assert_eq!(kinds(&report), vec![(Kind::Missing, "V".into())]);
    assert_eq!(
        report.differences[0].note.as_deref(),
        Some("ERP customer CUST-9 has no B2B company")
    );
}

#[test]
fn what_an_update_cannot_clear_is_no_drift_while_the_erp_has_nothing() {
    let mut e = erp("A", "100");
    if let Some(owned) = e.owned.as_mut() {
        owned.insert("due_date", Value::Null);
        owned.insert("purchase_order_number", Value::Null);
    }
    let inputs = Inputs {
        source: "erp".into(),
        erp: vec![e],
        b2b: vec![held(1, "A", "100")],
        ..Inputs::default()
    };
    assert_eq!(compare(&inputs, Utc::now()).differences, vec![]);
}

#[test]
fn the_report_renders_as_table_csv_and_json() {
    let mut drifted = held(4, "D", "100");
    drifted.purchase_order_number = None;
    let inputs = Inputs {
        source: "erp".into(),
        erp: vec![erp("D", "100"), erp("M", "12.50")],
        b2b: vec![drifted],
        ..Inputs::default()
    };
    let report = compare(&inputs, Utc::now());
    let table = render::table(&report);
    assert!(table.contains("missing 1"), "{table}");
    assert!(
        table.contains("purchase_order_number: ERP PO-1 | B2B (none)"),
        "{table}"
    );
    assert!(table.contains("USD 12.50"), "{table}");
    let csv = String::from_utf8(render::csv(&report).unwrap()).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.contains("drift,D,N-D,4,true,requeue,,,,,,purchase_order_number,PO-1,(none),"));
    let json: Value = serde_json::from_str(&render::json(&report).unwrap()).unwrap();
    assert_eq!(json["summary"]["counts"]["drift"], 1);
    assert_eq!(json["summary"]["totals"]["USD"]["missing_open"], "12.50");
    let back: Report = serde_json::from_value(json).unwrap();
    assert_eq!(back, report);
}

#[test]
fn amounts_read_in_the_currencys_minor_unit_and_are_never_rounded() {
    assert_eq!(render::shown_amount("USD", dec("1571.2000")), "1571.20");
    assert_eq!(render::shown_amount("USD", dec("5")), "5.00");
    assert_eq!(render::shown_amount("USD", dec("0.125")), "0.125");
    assert_eq!(render::shown_amount("JPY", dec("133069.0000")), "133069");
    assert_eq!(render::shown_amount("KWD", dec("85.368")), "85.368");
    assert_eq!(render::shown_amount("XXQ", dec("1.50")), "1.5");
}
