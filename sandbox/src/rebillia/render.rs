//! Invoices as the InvoiceNormalizer renders them (the reference client's `types.ts`): ids as
//! strings, amounts as integer cents (or dollar strings, see [`AmountStyle`]), times in
//! RFC 3339 (`+00:00`, PHP's ATOM format), calendar dates as `YYYY-MM-DD`, `detail` only with
//! `include=detail`.

use chrono::DateTime;
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

use super::state::{Address, AmountStyle, Customer, Data, Invoice, COUNTRIES, CURRENCIES};

/// An amount held in cents, written in `style`; `shipping` is documented in cents.
fn money(style: AmountStyle, cents: i64, shipping: bool) -> Value {
    match style {
        AmountStyle::Cents => json!(cents),
        AmountStyle::Documented if shipping => json!(cents),
        AmountStyle::Dollars | AmountStyle::Documented => {
            Value::String(Decimal::new(cents, 2).to_string())
        }
    }
}

pub(crate) fn time(unix: i64) -> Value {
    DateTime::from_timestamp(unix, 0).map_or(Value::Null, |t| {
        Value::String(t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string())
    })
}

pub(crate) fn invoice(data: &Data, invoice: &Invoice, with_detail: bool) -> Value {
    let customer = data.customers.get(&invoice.customer);
    let amount = |cents: i64| money(data.amounts, cents, false);
    let mut object = json!({
        "autoCollection": false,
        "balanceDue": amount(invoice.balance_due()),
        "billingAddress": invoice.billing.as_ref().map_or_else(empty_address, address),
        "comments": invoice.comments,
        "companyGateway": null,
        "createdAt": time(invoice.created_at),
        "currency": currency(invoice.currency),
        "customer": customer.map_or(Value::Null, render_customer),
        "customerEmail": invoice.customer_email.clone().or_else(|| customer.map(|c| c.email.clone())),
        "customerName": invoice.customer_name.clone()
            .or_else(|| customer.map(|c| format!("{} {}", c.first_name, c.last_name))),
        "customerPaymentMethod": null,
        "customerPhone": invoice.customer_phone,
        "dateDue": invoice.date_due.to_string(),
        "dateFrom": invoice.date_from.to_string(),
        "datePaid": invoice.date_paid.map_or(Value::Null, time),
        "datePaymentRetry": null,
        "dateRefund": null,
        "dateTo": invoice.date_to.to_string(),
        "dateVoid": invoice.date_void.map_or(Value::Null, time),
        "id": invoice.id.to_string(),
        "invoiceNo": invoice.invoice_no,
        "offlinePaymentId": null,
        "paymentType": invoice.payment_type,
        "refundAmount": amount(0),
        "shippingAddress": invoice.shipping.as_ref().map_or_else(empty_address, address),
        "shippingAmount": money(data.amounts, invoice.shipping_cents, true),
        "shippingCompanyIntegration": null,
        "shippingServiceId": null,
        "shippingServiceName": "",
        "status": invoice.status,
        "subtotalTaxExc": amount(invoice.subtotal()),
        "subtotalTaxInc": amount(invoice.subtotal().saturating_add(invoice.tax_cents)),
        "taxAmount": amount(invoice.tax_cents),
        "taxCompanyIntegration": null,
        "taxRate": null,
        "terms": invoice.terms,
        "total": amount(invoice.total()),
        "updatedAt": time(invoice.updated_at),
    });
    if with_detail {
        object["detail"] = invoice
            .lines
            .iter()
            .map(|line| {
                let total = line.qty.saturating_mul(line.amount);
                json!({
                    "amount": amount(line.amount),
                    "chargeCredit": null,
                    "description": line.description,
                    "id": line.id.to_string(),
                    "qty": line.qty,
                    "taxAmount": amount(0),
                    "taxRate": null,
                    "totalTaxExc": amount(total),
                    "totalTaxInc": amount(total),
                    "product": null,
                    "productRatePlanCharge": null,
                    "ratePlanCharge": null,
                    "subscription": null,
                })
            })
            .collect();
    }
    if let (Some(overlay), Value::Object(target)) = (&invoice.overlay, &mut object) {
        merge(target, overlay);
    }
    object
}

/// Deep merge: objects merge key by key, anything else replaces.
pub(crate) fn merge(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match (target.get_mut(key), value) {
            (Some(Value::Object(inner)), Value::Object(patch)) => merge(inner, patch),
            _ => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
}

fn render_customer(customer: &Customer) -> Value {
    json!({
        "agent": null,
        "businessName": customer.business_name,
        "createdAt": time(customer.created_at),
        "customerId": customer.customer_id,
        "email": customer.email,
        "firstName": customer.first_name,
        "id": customer.id.to_string(),
        "lastName": customer.last_name,
        "locale": "en",
        "phoneExt": null,
        "phoneNum": null,
        "preferredCurrency": null,
        "status": "active",
        "taxExempt": false,
        "updatedAt": time(customer.created_at),
    })
}

pub(crate) fn currency(code: &str) -> Value {
    CURRENCIES
        .iter()
        .find(|(_, iso3, ..)| *iso3 == code)
        .map_or(Value::Null, |(id, iso3, name, symbol, numeric)| {
            json!({"flag": null, "id": id.to_string(), "iso3": iso3, "name": name,
                   "numericCode": numeric, "symbol": symbol})
        })
}

fn country(code: &str) -> Value {
    COUNTRIES
        .iter()
        .find(|(_, alpha2, ..)| *alpha2 == code)
        .map_or(Value::Null, |(id, alpha2, alpha3, numeric, name)| {
            json!({"alpha2Code": alpha2, "alpha3Code": alpha3, "flag": null, "id": id.to_string(),
                   "name": name, "numericCode": numeric})
        })
}

fn address(a: &Address) -> Value {
    json!({
        "city": a.city, "contactCompany": a.contact_company, "contactEmail": null,
        "contactName": a.contact_name, "contactPhone": null, "country": country(a.country),
        "state": a.state, "street1": a.street1, "street2": a.street2, "type": a.kind, "zip": a.zip,
    })
}

/// The normalizer always renders the address block; without an address every field is null.
fn empty_address() -> Value {
    json!({
        "city": null, "contactCompany": null, "contactEmail": null, "contactName": null,
        "contactPhone": null, "country": "", "state": null, "street1": null, "street2": null,
        "type": null, "zip": null,
    })
}
