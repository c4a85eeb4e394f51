use super::*;
use crate::domain::Lifecycle;

const HEADER: &str = "external_id,external_customer_id,invoice_number,currency,total,open_balance,subtotal,line_sku,line_description,line_quantity,line_unit_price,line_total,billing_company,shipping_city,extra.Sales Rep,voided";

fn records(body: &str) -> Vec<Record> {
    let text = format!("{HEADER}\n{body}");
    let mut r = CsvRecords::new(
        "erp".into(),
        "a.csv".into(),
        text.as_bytes(),
        Arc::default(),
    )
    .unwrap();
    std::iter::from_fn(|| r.next_record().unwrap()).collect()
}

fn refused(text: &str) -> String {
    match CsvRecords::new(
        "erp".into(),
        "a.csv".into(),
        text.as_bytes(),
        Arc::default(),
    ) {
        Err(HeaderProblem::Refused { reason, .. }) => reason,
        Err(HeaderProblem::Io(e)) => panic!("io: {e}"),
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn consecutive_rows_make_one_invoice_with_invoice_columns_given_once_or_repeated() {
    let out = records(
        "A-1,CUST-1,1001,USD,30.00,30.00,30.00,W-1,Widget,1,10.00,10.00,Acme,Austin,Ann,\n\
         A-1,,,,,,,W-2,Gadget,2,10.00,20.00,,,,\n\
         \n\
         ,,,,,,,,,,,,,,,\n\
         A-2,CUST-2,1002,EUR,5,5,5,S-1,,1,5,,,,,true\n\
         A-2,CUST-2,1002,EUR,5,5,5,,,,,,,,,1\n",
    );
    assert_eq!(out.len(), 2);
    let a1 = out[0].as_ref().unwrap();
    assert_eq!(a1.line_items.len(), 2);
    assert_eq!(a1.line_items[1].description, "Gadget");
    assert_eq!(
        a1.billing_address.as_ref().map(|a| a.company.as_str()),
        Some("Acme")
    );
    assert_eq!(a1.shipping_addresses.len(), 1);
    assert_eq!(a1.shipping_addresses[0].city, "Austin");
    assert_eq!(
        a1.extra_fields.get("Sales Rep").map(String::as_str),
        Some("Ann")
    );
    let a2 = out[1].as_ref().unwrap();
    assert_eq!(
        a2.line_items.len(),
        1,
        "a row without line cells adds no line"
    );
    assert_eq!(a2.lifecycle, Lifecycle::Voided);
    assert!(a2.billing_address.is_none() && a2.shipping_addresses.is_empty());
}

#[test]
fn conflicting_invoice_values_refuse_the_invoice() {
    let out = records(
        "A-1,CUST-1,1001,USD,30.00,30.00,30.00,W-1,Widget,1,10.00,10.00,,,,\n\
         A-1,CUST-1,1001,EUR,30.00,30.00,30.00,W-2,Gadget,2,10.00,20.00,,,,\n",
    );
    let err = &out[0].as_ref().unwrap_err().error;
    assert_eq!(err.field.as_deref(), Some("currency"));
    assert!(
        err.reason
            .contains("`EUR` on line 3 differs from `USD` on line 2"),
        "{err}"
    );
    assert!(
        err.to_string().contains("record A-1 (a.csv line 2)"),
        "{err}"
    );
}

#[test]
fn a_malformed_row_spoils_its_whole_invoice_not_its_neighbours() {
    let out = records(
        "A-1,CUST-1,1001,USD,30.00,30.00,30.00,W-1,Widget,1,10.00,10.00,,,,\n\
         A-1,CUST-1,1001,USD,30.00,30.00,30.00,W-2,Gadget,2,10.00,20.00,,,,,extra\n\
         A-2,CUST-2,1002,USD,5,5,5,S-1,,1,5,,,,,\n",
    );
    assert_eq!(out.len(), 2);
    let rejected = out[0].as_ref().unwrap_err();
    assert!(rejected
        .error
        .reason
        .contains("line 3 has 17 fields where the header has 16"));
    assert_eq!(
        rejected.raw.lines().count(),
        2,
        "both rows are kept: {}",
        rejected.raw
    );
    assert!(out[1].is_ok());
}

#[test]
fn a_repeated_id_later_in_the_file_is_refused() {
    let out = records(
        "A-1,CUST-1,1001,USD,5,5,,,,,,,,,,\n\
         A-2,CUST-1,1002,USD,5,5,,,,,,,,,,\n\
         A-1,CUST-1,1001,USD,5,5,,,,,,,,,,\n",
    );
    assert!(out[0].is_ok() && out[1].is_ok());
    let err = &out[2].as_ref().unwrap_err().error;
    assert_eq!(err.field.as_deref(), Some("external_id"));
    assert!(err.reason.contains("already appeared at line 2"), "{err}");
}

#[test]
fn flags_and_line_numbers_with_quoted_newlines() {
    let out = records(
        "A-1,CUST-1,1001,USD,5,5,,,\"two\nlines\",1,5,,,,,\n\
         A-2,CUST-1,1002,USD,5,5,,,,,,,,,,maybe\n",
    );
    assert_eq!(
        out[0].as_ref().unwrap().line_items[0].description,
        "two\nlines"
    );
    let err = &out[1].as_ref().unwrap_err().error;
    assert_eq!(err.field.as_deref(), Some("voided"));
    assert!(err.to_string().contains("a.csv line 4"), "{err}");
    assert_eq!(
        out[1].as_ref().unwrap_err().raw,
        "A-2,CUST-1,1002,USD,5,5,,,,,,,,,,maybe"
    );
}

#[test]
fn parse_errors_name_the_line_item_of_the_invoice() {
    let out = records(
        "A-1,CUST-1,1001,USD,5,5,,W-1,,1,5,,,,,\n\
         A-1,,,,,,,W-2,,two,5,,,,,\n",
    );
    let err = &out[0].as_ref().unwrap_err().error;
    assert_eq!(err.field.as_deref(), Some("line_items[1].quantity"));
}

#[test]
fn bad_headers_refuse_the_file_with_every_problem() {
    let reason = refused("external_id,externl_customer_id,invoice_number,currency,total,total\n");
    assert!(
        reason.contains("unknown columns `externl_customer_id`"),
        "{reason}"
    );
    assert!(reason.contains("repeated columns `total`"), "{reason}");
    assert!(
        reason.contains("missing required columns `external_customer_id`, `open_balance`"),
        "{reason}"
    );
    assert!(refused("").contains("no header line"));
    assert!(refused("\u{feff}external_id,extra.\n").contains("unknown columns `extra.`"));
}
