//! Deterministic starting data: customers `CUST-00001`.. and invoices in several statuses,
//! currencies and shapes. The same config always yields the same data (timestamps aside, which
//! are relative to the start).

use chrono::{DateTime, NaiveDate};

use super::state::{Address, Customer, Data, Invoice, Line};

const HOUR: i64 = 60 * 60;
const DAY: i64 = 24 * HOUR;
/// Rebillia ids of customers and invoices start here, so they never look alike.
const CUSTOMER_ID_BASE: u64 = 500;
pub(crate) const INVOICE_ID_BASE: u64 = 1000;

pub(crate) fn build(customers: usize, invoices: usize, now: i64) -> Data {
    let mut data = Data {
        next_invoice_id: INVOICE_ID_BASE,
        ..Data::default()
    };
    for index in 1..=customers as u64 {
        let customer = customer(index, now);
        data.customers.insert(customer.id, customer);
    }
    if customers == 0 {
        return data;
    }
    let count = invoices as u64;
    for index in 1..=count {
        let customer = CUSTOMER_ID_BASE + (index - 1) % customers as u64 + 1;
        // One hour apart, the last one newest.
        let age = i64::try_from(count - index + 1).unwrap_or(0) * HOUR;
        let invoice = invoice(&mut data, index, customer, now - age);
        data.invoices.insert(invoice.id, invoice);
    }
    data
}

fn customer(index: u64, now: i64) -> Customer {
    Customer {
        id: CUSTOMER_ID_BASE + index,
        customer_id: format!("CUST-{index:05}"),
        first_name: "Alex".to_owned(),
        last_name: format!("Buyer {index}"),
        email: format!("ap@company{index}.example"),
        business_name: format!("Sandbox Company {index}"),
        created_at: now - 60 * DAY,
    }
}

pub(crate) fn date_of(unix: i64) -> NaiveDate {
    DateTime::from_timestamp(unix, 0).map_or(NaiveDate::MIN, |t| t.date_naive())
}

/// Seed invoice `index`: every 9th void, every 10th paid, every 7th half paid, every 5th
/// awaiting payment (`requestPayment`), the rest `posted`; every 4th in EUR, every 6th in CAD;
/// one to three lines; shipping on even ones.
fn invoice(data: &mut Data, index: u64, customer: u64, created_at: i64) -> Invoice {
    let n = i64::try_from(index).unwrap_or(0);
    let line_count = index % 3 + 1;
    let lines = (1..=line_count)
        .map(|k| {
            let k = i64::try_from(k).unwrap_or(0);
            Line {
                id: data.allocate_line_id(),
                description: format!("Plan {} - item {k}", index % 7 + 1),
                qty: (n + k) % 4 + 1,
                amount: 1_999 + (n * 731 + k * 97) % 50_000,
            }
        })
        .collect();
    let currency = if index % 4 == 0 {
        "EUR"
    } else if index % 6 == 0 {
        "CAD"
    } else {
        "USD"
    };
    let mut invoice = Invoice {
        id: data.allocate_invoice_id(),
        invoice_no: format!("RB-{index:06}"),
        customer,
        currency,
        status: "posted".to_owned(),
        lines,
        shipping_cents: if index % 2 == 0 { 1_500 } else { 0 },
        tax_cents: 0,
        paid_cents: 0,
        date_due: date_of(created_at + 30 * DAY),
        date_from: date_of(created_at),
        date_to: date_of(created_at + 29 * DAY),
        created_at,
        updated_at: created_at,
        date_paid: None,
        date_void: None,
        comments: (index % 3 == 0).then(|| format!("Seed invoice {index}")),
        terms: Some("Net 30".to_owned()),
        payment_type: Some("offlinePaymentProvider".to_owned()),
        customer_email: None,
        customer_name: None,
        customer_phone: None,
        billing: Some(address(customer, "commercial")),
        shipping: (index % 2 == 0).then(|| address(customer, "residential")),
        overlay: None,
    };
    if index % 9 == 0 {
        invoice.status = "void".to_owned();
        invoice.date_void = Some(created_at);
    } else if index % 10 == 0 {
        invoice.status = "paid".to_owned();
        invoice.paid_cents = invoice.total();
        invoice.date_paid = Some(created_at);
    } else if index % 7 == 0 {
        invoice.paid_cents = invoice.total() / 2;
    } else if index % 5 == 0 {
        invoice.status = "requestPayment".to_owned();
    }
    invoice
}

pub(crate) fn address(customer: u64, kind: &str) -> Address {
    Address {
        contact_name: format!("Alex Buyer {}", customer - CUSTOMER_ID_BASE),
        contact_company: Some(format!("Sandbox Company {}", customer - CUSTOMER_ID_BASE)),
        street1: format!("{customer} Main St"),
        street2: None,
        city: "Springfield".to_owned(),
        state: Some("IL".to_owned()),
        zip: "62701".to_owned(),
        country: "US",
        kind: kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_deterministic_and_varied() {
        let data = build(3, 25, 2_000_000_000);
        assert_eq!(data.customers.len(), 3);
        assert_eq!(data.customers[&501].customer_id, "CUST-00001");
        assert_eq!(data.invoices.len(), 25);
        let first = &data.invoices[&1001];
        assert_eq!(first.invoice_no, "RB-000001");
        assert_eq!(data.invoices[&1009].status, "void");
        assert_eq!(data.invoices[&1010].status, "paid");
        assert_eq!(data.invoices[&1010].balance_due(), 0);
        assert_eq!(data.invoices[&1005].status, "requestPayment");
        assert!(data.invoices[&1007].paid_cents > 0);
        assert_eq!(data.invoices[&1004].currency, "EUR");
        assert_eq!(data.invoices[&1006].currency, "CAD");
        assert!(data.invoices.values().any(|i| i.lines.len() == 3));
        assert!(first.updated_at < data.invoices[&1025].updated_at);
        assert_eq!(
            build(3, 25, 2_000_000_000).invoices[&1011],
            data.invoices[&1011]
        );
        assert!(build(0, 5, 0).invoices.is_empty());
    }
}
