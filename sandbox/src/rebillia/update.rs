//! `PUT /invoices/{id}` as api-docs 003 describes it: only `posted` / `requestPayment`
//! invoices, every body field optional, `billingAddress` refused, `shippingAmount` in cents,
//! `detail` replacing the line items (each `amount` either a dollar string like `"41.00"` or an
//! integer of cents, as the reference client sends both). Unknown fields are refused.
//! `shippingAddress` takes `countryCode` (what 003 documents) or `countryId` (what the upstream
//! API receives once the reference client has resolved the code).

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::api::{find, invoice_not_found};
use super::render;
use super::reply::{self, Reply};
use super::state::{Address, Data, Line, COUNTRIES};
use crate::wire;

const PAYMENT_TYPES: [&str; 3] = [
    "offlinePaymentProvider",
    "thirdPartyPaymentProvider",
    "walletPaymentProvider",
];

/// What a valid body changes.
#[derive(Default)]
struct Patch {
    customer: Option<u64>,
    customer_email: Option<String>,
    customer_name: Option<String>,
    customer_phone: Option<String>,
    date_due: Option<NaiveDate>,
    date_from: Option<NaiveDate>,
    date_to: Option<NaiveDate>,
    comments: Option<String>,
    payment_type: Option<String>,
    shipping: Option<Address>,
    shipping_cents: Option<i64>,
    /// `(description, qty, cents)`.
    lines: Option<Vec<(String, i64, i64)>>,
}

pub(crate) fn update(data: &mut Data, id: &str, body: &Map<String, Value>, now: i64) -> Reply {
    let Some(id) = find(data, id) else {
        return invoice_not_found();
    };
    if let Some(invoice) = data.invoices.get(&id) {
        if !invoice.updatable() {
            return reply::bad_request(&format!(
                "Only invoices with status 'posted' or 'requestPayment' can be updated (this one is '{}')",
                invoice.status
            ));
        }
    }
    let patch = match validate(data, body) {
        Ok(patch) => patch,
        Err(problems) => return reply::bad_request(&problems.join("; ")),
    };
    let line_ids: Vec<u64> = patch
        .lines
        .as_ref()
        .map(|lines| lines.iter().map(|_| data.allocate_line_id()).collect())
        .unwrap_or_default();
    let Some(invoice) = data.invoices.get_mut(&id) else {
        return invoice_not_found();
    };
    let set = |target: &mut Option<String>, value: Option<String>| {
        if value.is_some() {
            *target = value;
        }
    };
    invoice.customer = patch.customer.unwrap_or(invoice.customer);
    set(&mut invoice.customer_email, patch.customer_email);
    set(&mut invoice.customer_name, patch.customer_name);
    set(&mut invoice.customer_phone, patch.customer_phone);
    set(&mut invoice.comments, patch.comments);
    set(&mut invoice.payment_type, patch.payment_type);
    invoice.date_due = patch.date_due.unwrap_or(invoice.date_due);
    invoice.date_from = patch.date_from.unwrap_or(invoice.date_from);
    invoice.date_to = patch.date_to.unwrap_or(invoice.date_to);
    invoice.shipping = patch.shipping.or(invoice.shipping.take());
    invoice.shipping_cents = patch.shipping_cents.unwrap_or(invoice.shipping_cents);
    if let Some(lines) = patch.lines {
        invoice.lines = lines
            .into_iter()
            .zip(line_ids)
            .map(|((description, qty, amount), id)| Line {
                id,
                description,
                qty,
                amount,
            })
            .collect();
    }
    invoice.touch(now);
    let invoice = invoice.clone();
    Reply::ok(render::invoice(data, &invoice, true))
}

fn validate(data: &Data, body: &Map<String, Value>) -> Result<Patch, Vec<String>> {
    let mut patch = Patch::default();
    let mut problems = Vec::new();
    for (key, value) in body {
        let result = match key.as_str() {
            "companyGatewayId" | "customerPaymentMethodId" | "paymentMethodId" => {
                positive(value, key).map(|_| ())
            }
            "customerId" => positive(value, key).and_then(|id| {
                if data.customers.contains_key(&id) {
                    patch.customer = Some(id);
                    Ok(())
                } else {
                    Err(format!("customerId: customer {id} does not exist"))
                }
            }),
            "customerEmail" => short_text(value, key).map(|t| patch.customer_email = Some(t)),
            "customerName" => short_text(value, key).map(|t| patch.customer_name = Some(t)),
            "customerPhone" => short_text(value, key).map(|t| patch.customer_phone = Some(t)),
            "dateDue" => date(value, key).map(|d| patch.date_due = Some(d)),
            "dateFrom" => date(value, key).map(|d| patch.date_from = Some(d)),
            "dateTo" => date(value, key).map(|d| patch.date_to = Some(d)),
            "comments" => text(value, key).map(|t| patch.comments = Some(t)),
            "shippingServiceId" => text(value, key).map(|_| ()),
            "paymentType" => text(value, key).and_then(|t| {
                if PAYMENT_TYPES.contains(&t.as_str()) {
                    patch.payment_type = Some(t);
                    Ok(())
                } else {
                    Err(format!(
                        "paymentType must be one of {}",
                        PAYMENT_TYPES.join(", ")
                    ))
                }
            }),
            "shippingAmount" => match value.as_i64().filter(|&c| c >= 0) {
                Some(cents) => {
                    patch.shipping_cents = Some(cents);
                    Ok(())
                }
                None => Err("shippingAmount must be a non-negative integer of cents".to_owned()),
            },
            "shippingAddress" => address(value).map(|a| patch.shipping = Some(a)),
            "detail" => lines(value).map(|l| patch.lines = Some(l)),
            "billingAddress" => Err("billingAddress is not accepted on update".to_owned()),
            other => Err(format!("{other}: unknown field")),
        };
        if let Err(problem) = result {
            problems.push(problem);
        }
    }
    if problems.is_empty() {
        Ok(patch)
    } else {
        Err(problems)
    }
}

fn positive(value: &Value, key: &str) -> Result<u64, String> {
    value
        .as_u64()
        .filter(|&n| n >= 1)
        .ok_or_else(|| format!("{key} must be a positive integer"))
}

fn text(value: &Value, key: &str) -> Result<String, String> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{key} must be a string"))
}

fn short_text(value: &Value, key: &str) -> Result<String, String> {
    text(value, key).and_then(|t| {
        if t.chars().count() <= 45 {
            Ok(t)
        } else {
            Err(format!("{key} must be at most 45 characters"))
        }
    })
}

fn date(value: &Value, key: &str) -> Result<NaiveDate, String> {
    value
        .as_str()
        .and_then(wire::date)
        .ok_or_else(|| format!("{key} must be a valid date"))
}

fn address(value: &Value) -> Result<Address, String> {
    let Some(object) = value.as_object() else {
        return Err("shippingAddress must be an object".to_owned());
    };
    let field = |name: &str| object.get(name).and_then(Value::as_str).map(str::trim);
    let required = |name: &str| {
        field(name)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| format!("shippingAddress.{name} is required"))
    };
    let country = match (object.get("countryCode"), object.get("countryId")) {
        (Some(code), _) => code.as_str().and_then(|code| {
            COUNTRIES
                .iter()
                .find(|(_, alpha2, ..)| alpha2.eq_ignore_ascii_case(code.trim()))
        }),
        (None, Some(id)) => id
            .as_u64()
            .and_then(|id| COUNTRIES.iter().find(|(known, ..)| *known == id)),
        (None, None) => None,
    }
    .map(|(_, alpha2, ..)| *alpha2)
    .ok_or("shippingAddress needs a known countryCode (ISO 3166-1 alpha-2) or countryId")?;
    let kind = required("type")?;
    if kind != "residential" && kind != "commercial" {
        return Err("shippingAddress.type must be residential or commercial".to_owned());
    }
    let optional = |name: &str| field(name).filter(|t| !t.is_empty()).map(str::to_owned);
    Ok(Address {
        contact_name: required("contactName")?,
        contact_company: optional("contactCompany"),
        street1: required("street1")?,
        street2: optional("street2"),
        city: required("city")?,
        state: optional("state"),
        zip: required("zip")?,
        country,
        kind,
    })
}

fn lines(value: &Value) -> Result<Vec<(String, i64, i64)>, String> {
    let Some(items) = value.as_array().filter(|items| !items.is_empty()) else {
        return Err("detail must be a non-empty list of line items".to_owned());
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let fail = |what: &str| format!("detail[{index}].{what}");
            let amount = match item.get("amount") {
                Some(Value::String(dollars)) => dollars_to_cents(dollars),
                Some(cents) => cents.as_i64().filter(|&c| c >= 0),
                None => None,
            }
            .ok_or_else(|| fail("amount must be dollars like '41.00' or whole cents like 4100"))?;
            let qty = match item.get("qty") {
                None | Some(Value::Null) => 1,
                Some(qty) => qty
                    .as_i64()
                    .filter(|&q| q >= 1)
                    .ok_or_else(|| fail("qty must be a positive integer"))?,
            };
            let description = match item.get("description") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(d)) if d.chars().count() <= 255 => d.clone(),
                Some(_) => {
                    return Err(fail(
                        "description must be a string of at most 255 characters",
                    ))
                }
            };
            Ok((description, qty, amount))
        })
        .collect()
}

fn dollars_to_cents(text: &str) -> Option<i64> {
    let amount = wire::amount(text)?;
    let cents = amount.checked_mul(Decimal::ONE_HUNDRED)?;
    if !cents.fract().is_zero() || cents.is_sign_negative() {
        return None;
    }
    i64::try_from(cents).ok()
}
