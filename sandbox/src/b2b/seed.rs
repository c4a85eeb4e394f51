//! Deterministic starting data of a store: companies, orders, invoices and the invoice
//! extra-field configs. The same config always yields the same data (timestamps aside, which
//! are relative to the start).

use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::extra_fields::default_invoice_configs;
use super::money::render_amount;
use super::state::{Company, ExtraFieldValue, InvoiceRecord, Money, Order, StoreData};

/// The company extra field that carries the ERP's customer id (unique per company).
pub const ERP_CUSTOMER_ID_FIELD: &str = "ERP Customer ID";
/// Ids of seeded orders start after this, so they never look like invoice ids.
const ORDER_ID_BASE: u64 = 100;
const HOUR: i64 = 60 * 60;
const DAY: i64 = 24 * HOUR;

/// How much of each kind a store starts with.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SeedCounts {
    pub companies: usize,
    pub invoices: usize,
    pub orders: usize,
}

pub(crate) fn build_store(hash: &str, counts: SeedCounts, now: i64) -> StoreData {
    let mut store = StoreData::new(hash);
    store.invoice_extra_fields = default_invoice_configs(hash);
    let companies = counts.companies as u64;
    for id in 1..=companies {
        store.companies.insert(id, company(id, now));
    }
    if companies == 0 {
        // Orders and invoices need a company to belong to.
        return store;
    }
    for index in 1..=counts.orders as u64 {
        let id = ORDER_ID_BASE + index;
        let order = Order {
            id,
            company_id: (index - 1) % companies + 1,
            total: Decimal::new(10_000 + 2_550 * i64::try_from(index).unwrap_or(0), 2),
            currency: "USD".to_owned(),
            created_at: now - DAY,
            invoice_id: None,
        };
        store.orders.insert(id, order);
    }
    let invoices = counts.invoices as u64;
    for index in 1..=invoices {
        let id = store.allocate_invoice_id();
        let age = i64::try_from(invoices - index + 1).unwrap_or(0) * HOUR;
        store.invoices.insert(
            id,
            invoice(id, index, (index - 1) % companies + 1, now - age),
        );
    }
    store
}

fn company(id: u64, now: i64) -> Company {
    Company {
        id,
        name: format!("Sandbox Company {id}"),
        email: format!("ap@company{id}.example"),
        phone: format!("555-01{:02}", id % 100),
        uuid: format!("00000000-0000-4000-8000-{id:012}"),
        created_at: now - 30 * DAY,
        updated_at: now - 30 * DAY,
        extra_fields: vec![ExtraFieldValue {
            name: ERP_CUSTOMER_ID_FIELD.to_owned(),
            value: format!("CUST-{id:05}"),
        }],
    }
}

/// Seed invoice `index`: every fifth fully paid, every seventh partly paid.
fn invoice(id: u64, index: u64, company_id: u64, created_at: i64) -> InvoiceRecord {
    let index_i64 = i64::try_from(index).unwrap_or(0);
    let quantity = index_i64 % 5 + 1;
    let unit_price = Decimal::new(1_999 + (index_i64 * 731) % 50_000, 2);
    let subtotal = unit_price * Decimal::from(quantity);
    let freight = Decimal::new(1_500, 2);
    let total = subtotal + freight;
    let (open, status) = if index % 5 == 0 {
        (Decimal::ZERO, 2)
    } else if index % 7 == 0 {
        ((total / Decimal::from(2)).round_dp(2), 1)
    } else {
        (total, 0)
    };
    let usd = |value: Decimal| Money {
        code: "USD".to_owned(),
        value,
    };
    InvoiceRecord {
        id,
        customer_id: company_id,
        external_id: Some(format!("seed-{index}")),
        external_customer_id: Some(format!("CUST-{company_id:05}")),
        invoice_number: format!("SEED-{index:06}"),
        kind: "Invoice".to_owned(),
        due_date: created_at + 30 * DAY,
        status,
        order_number: None,
        purchase_order_number: Some(format!("PO-{index:05}")),
        details: details(index, quantity, unit_price, subtotal, freight, created_at),
        source: 1,
        original_balance: usd(total),
        open_balance: usd(open),
        created_at,
        updated_at: created_at,
        channel_id: 1,
        terms_conditions: None,
        external_pdf_url: None,
        extra_fields: Vec::new(),
    }
}

fn details(
    index: u64,
    quantity: i64,
    unit_price: Decimal,
    subtotal: Decimal,
    freight: Decimal,
    created_at: i64,
) -> Value {
    let amount = |value: Decimal| json!({ "code": "USD", "value": render_amount(value) });
    json!({
        "type": "StandardInvoiceDetails",
        "header": {
            "costLines": [
                { "amount": amount(subtotal), "description": "Subtotal" },
                { "amount": amount(freight), "description": "Freight" },
                { "amount": amount(Decimal::ZERO), "description": "Sales Tax" },
            ],
            "orderDate": created_at,
        },
        "details": {
            "lineItems": [{
                "sku": format!("SKU-{:03}", index % 40),
                "type": "physical",
                "comments": "",
                "quantity": quantity.to_string(),
                "unitPrice": amount(unit_price),
                "description": format!("Seed product {}", index % 40),
                "customFields": {},
                "unitDiscount": amount(Decimal::ZERO),
            }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const COUNTS: SeedCounts = SeedCounts {
        companies: 3,
        invoices: 10,
        orders: 2,
    };

    #[test]
    fn seeds_companies_orders_and_invoices_deterministically() {
        let store = build_store("s", COUNTS, 1_000_000);
        assert_eq!(store.companies.len(), 3);
        assert_eq!(store.companies[&2].name, "Sandbox Company 2");
        assert_eq!(store.companies[&2].extra_fields[0].value, "CUST-00002");
        assert_eq!(
            store.orders.keys().copied().collect::<Vec<_>>(),
            vec![101, 102]
        );
        assert_eq!(store.invoices.len(), 10);
        assert_eq!(store.next_invoice_id, 11);
        let fifth = &store.invoices[&5];
        assert_eq!(fifth.invoice_number, "SEED-000005");
        assert_eq!(fifth.external_id.as_deref(), Some("seed-5"));
        assert_eq!((fifth.status, fifth.open_balance.value), (2, Decimal::ZERO));
        assert_eq!(store.invoices[&7].status, 1);
        assert!(store.invoices[&1].created_at < store.invoices[&10].created_at);
        assert!(fifth.details["details"]["lineItems"][0]["sku"].is_string());
        let again = build_store("s", COUNTS, 1_000_000);
        assert_eq!(again.invoices[&3], store.invoices[&3]);
    }

    #[test]
    fn no_companies_means_no_orders_or_invoices() {
        let store = build_store(
            "s",
            SeedCounts {
                companies: 0,
                ..COUNTS
            },
            0,
        );
        assert!(store.orders.is_empty() && store.invoices.is_empty());
    }
}
