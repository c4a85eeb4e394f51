//! Synthetic ERP invoices for the planner benchmark: invoice `i` is a pure function of `i`
//! (and of whether it is the changed version), so a million of them cost no memory and the
//! state rows can be filled with exactly the fingerprints the invoices will produce.

use rust_decimal::Decimal;

use crate::domain::{
    RawAddress, RawInvoice, RawLineItem, RecordError, RecordLocator, SourceInvoice,
};

/// Customers `CUST-00001..=CUST-00010`, as the sandboxes seed them.
pub const CUSTOMERS: u64 = 10;

pub fn external_id(i: u64) -> String {
    format!("syn-{i:07}")
}

pub fn customer(i: u64) -> String {
    format!("CUST-{:05}", i % CUSTOMERS + 1)
}

/// The B2B company of [`customer`]`(i)`.
pub fn company(i: u64) -> String {
    (i % CUSTOMERS + 1).to_string()
}

/// Invoice `i` as an ERP adapter would fill it: 1-3 lines, 8 % tax, a billing address, a PO
/// number (another one when `changed`), half paid every seventh.
pub fn raw_invoice(i: u64, changed: bool) -> RawInvoice {
    let lines: Vec<(u64, Decimal)> = (0..1 + i % 3)
        .map(|k| {
            let quantity = 1 + (i + k) % 5;
            let unit = Decimal::new(1_999 + ((i * 731 + k * 97) % 50_000) as i64, 2);
            (quantity, unit)
        })
        .collect();
    let subtotal: Decimal = lines.iter().map(|(q, u)| *u * Decimal::from(*q)).sum();
    let tax = (subtotal * Decimal::new(8, 2)).round_dp(2);
    let total = subtotal + tax;
    let open = if i % 7 == 0 {
        (total / Decimal::from(2)).round_dp(2)
    } else {
        total
    };
    let day = 1 + i % 28;
    let month = 1 + (i / 28) % 12;
    RawInvoice {
        external_id: Some(external_id(i)),
        external_customer_id: Some(customer(i)),
        invoice_number: Some(format!("SYN-{i:07}")),
        issue_date: Some(format!("2026-{month:02}-{day:02}")),
        due_date: Some(format!("2027-{month:02}-{day:02}")),
        currency: Some("USD".to_owned()),
        total: Some(total.to_string()),
        open_balance: Some(open.to_string()),
        subtotal: Some(subtotal.to_string()),
        tax: Some(tax.to_string()),
        line_items: lines
            .iter()
            .enumerate()
            .map(|(k, (quantity, unit))| RawLineItem {
                sku: Some(format!("SKU-{:04}", (i + k as u64) % 500)),
                description: Some(format!("Synthetic product {}", (i + k as u64) % 500)),
                quantity: Some(quantity.to_string()),
                unit_price: Some(unit.to_string()),
                line_total: None,
            })
            .collect(),
        billing_address: Some(RawAddress {
            first_name: Some("Alex".to_owned()),
            last_name: Some(format!("Buyer {}", i % 1000)),
            company: Some(format!("Customer {}", i % CUSTOMERS + 1)),
            street1: Some(format!("{} Market Street", 1 + i % 900)),
            city: Some("Springfield".to_owned()),
            state: Some("IL".to_owned()),
            zip: Some(format!("{:05}", 60_000 + i % 1000)),
            country: Some("US".to_owned()),
            ..RawAddress::default()
        }),
        po_number: Some(if changed {
            format!("PO-CHANGED-{i}")
        } else {
            format!("PO-{i:07}")
        }),
        terms: Some("Net 30".to_owned()),
        updated_at: Some("2026-11-01T00:00:00Z".to_owned()),
        ..RawInvoice::default()
    }
}

/// [`raw_invoice`] through `SourceInvoice::parse`, as an adapter hands it over.
pub fn source_invoice(source: &str, i: u64, changed: bool) -> Result<SourceInvoice, RecordError> {
    SourceInvoice::parse(
        source,
        RecordLocator::id(external_id(i)),
        raw_invoice(i, changed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MappingSettings;
    use crate::domain::{fingerprint, map_invoice};

    #[test]
    fn invoices_parse_and_only_the_changed_version_differs() {
        let mapping = MappingSettings::default();
        let fp = |i, changed| {
            let invoice = source_invoice("erp", i, changed).unwrap();
            fingerprint(&map_invoice(&invoice, &company(i), &mapping))
        };
        for i in [1, 2, 3, 7, 999_999] {
            assert_eq!(fp(i, false), fp(i, false));
            assert_ne!(fp(i, false), fp(i, true));
        }
        assert_ne!(fp(1, false), fp(2, false));
    }
}
