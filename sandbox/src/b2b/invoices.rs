//! Single-invoice operations: create, get, update, delete, create from order, download PDF.
//!
//! Behaviour where the docs are silent, chosen to be at least as strict as production:
//! - `extraFields` on update are upserted by `fieldName` (fields not sent keep their value).
//! - An open balance raised above zero again does not reopen a completed invoice; only an
//!   explicit `status` does.
//! - Unknown or non-numeric invoice ids are 404 "Invoice does not exist".

use serde_json::{json, Map, Value};

use super::extra_fields;
use super::invoice_input::{parse_create, parse_update};
use super::render;
use super::reply::{self, ApiReply};
use super::state::{InvoiceRecord, Money, Order, StoreData};

/// Default payment term when a create has no `dueDate` (the control panel's setting).
const DEFAULT_TERM_SECS: i64 = 30 * 24 * 60 * 60;
const DUPLICATE_NUMBER: &str = "The invoice number already exists.";

fn find<'s>(store: &'s StoreData, id: &str) -> Option<&'s InvoiceRecord> {
    store.invoices.get(&parse_id(id)?)
}

fn parse_id(id: &str) -> Option<u64> {
    id.parse().ok().filter(|id| *id > 0)
}

fn unknown_company(id: u64) -> ApiReply {
    reply::bad_request(&format!("Company {id} does not exist."))
}

/// `POST /ip/invoices`.
pub(crate) fn create(store: &mut StoreData, body: &Map<String, Value>, now: i64) -> ApiReply {
    let new = match parse_create(body, &store.invoice_extra_fields) {
        Ok(new) => new,
        Err(errors) => return reply::bad_request(&errors.render()),
    };
    if store.invoice_number_taken(&new.invoice_number, None) {
        return reply::bad_request(DUPLICATE_NUMBER);
    }
    if !store.companies.contains_key(&new.customer_id) {
        return unknown_company(new.customer_id);
    }
    let id = store.allocate_invoice_id();
    let rest = new.rest;
    let mut invoice = InvoiceRecord {
        id,
        customer_id: new.customer_id,
        external_id: rest.external_id,
        external_customer_id: rest.external_customer_id,
        invoice_number: new.invoice_number,
        kind: rest.kind.unwrap_or_else(|| "Invoice".to_owned()),
        due_date: rest.due_date.unwrap_or(now + DEFAULT_TERM_SECS),
        status: rest.status.unwrap_or(0),
        order_number: rest.order_number,
        purchase_order_number: rest.purchase_order_number,
        details: rest.details.unwrap_or_else(|| json!({})),
        source: rest.source.unwrap_or(0),
        original_balance: new.original_balance,
        open_balance: new.open_balance,
        created_at: rest.created_at.unwrap_or(now),
        updated_at: now,
        channel_id: rest.channel_id.unwrap_or(1),
        terms_conditions: rest.terms_conditions,
        external_pdf_url: rest.external_pdf_url.filter(|url| !url.is_empty()),
        extra_fields: rest.extra_fields.unwrap_or_default(),
    };
    invoice.apply_status_rule();
    store.invoices.insert(id, invoice);
    // The docs' create example answers "Success" (not "SUCCESS").
    reply::success_titled(json!({ "id": id }))
}

/// `GET /ip/invoices/{id}`.
pub(crate) fn get(store: &StoreData, id: &str) -> ApiReply {
    match find(store, id) {
        Some(invoice) => reply::success(render::invoice(
            invoice,
            store.company_name(invoice.customer_id),
            true,
        )),
        None => reply::invoice_not_found(),
    }
}

/// `PUT /ip/invoices/{id}`: partial at the top level, `details` replaced whole.
pub(crate) fn update(
    store: &mut StoreData,
    id: &str,
    body: &Map<String, Value>,
    now: i64,
) -> ApiReply {
    let Some(id) = parse_id(id).filter(|id| store.invoices.contains_key(id)) else {
        return reply::invoice_not_found();
    };
    let patch = match parse_update(body, &store.invoice_extra_fields) {
        Ok(patch) => patch,
        Err(errors) => return reply::invalid_fields(errors.render(), json!({ "id": id })),
    };
    if let Some(number) = &patch.invoice_number {
        if store.invoice_number_taken(number, Some(id)) {
            return reply::bad_request(DUPLICATE_NUMBER);
        }
    }
    if let Some(company) = patch
        .customer_id
        .filter(|company| !store.companies.contains_key(company))
    {
        return unknown_company(company);
    }
    let Some(invoice) = store.invoices.get_mut(&id) else {
        return reply::invoice_not_found();
    };
    let set = |target: &mut String, value: Option<String>| {
        if let Some(value) = value {
            *target = value;
        }
    };
    set(&mut invoice.invoice_number, patch.invoice_number);
    set(&mut invoice.kind, patch.kind);
    if let Some(customer_id) = patch.customer_id {
        invoice.customer_id = customer_id;
    }
    invoice.external_id = patch.external_id.or(invoice.external_id.take());
    invoice.external_customer_id = patch
        .external_customer_id
        .or(invoice.external_customer_id.take());
    invoice.purchase_order_number = patch
        .purchase_order_number
        .or(invoice.purchase_order_number.take());
    invoice.due_date = patch.due_date.unwrap_or(invoice.due_date);
    invoice.status = patch.status.unwrap_or(invoice.status);
    invoice.source = patch.source.unwrap_or(invoice.source);
    invoice.created_at = patch.created_at.unwrap_or(invoice.created_at);
    if let Some(details) = patch.details {
        invoice.details = details;
    }
    if let Some(balance) = patch.original_balance {
        invoice.original_balance = balance;
    }
    if let Some(balance) = patch.open_balance {
        invoice.open_balance = balance;
    }
    if let Some(url) = patch.external_pdf_url {
        invoice.external_pdf_url = Some(url).filter(|url| !url.is_empty());
    }
    if let Some(values) = patch.extra_fields {
        extra_fields::upsert(&mut invoice.extra_fields, values);
    }
    invoice.updated_at = now;
    invoice.apply_status_rule();
    reply::success(json!({ "id": id }))
}

/// `DELETE /ip/invoices/{id}`.
pub(crate) fn delete(store: &mut StoreData, id: &str) -> ApiReply {
    let Some(id) = parse_id(id).filter(|id| store.invoices.remove(id).is_some()) else {
        return reply::invoice_not_found();
    };
    forget_order_link(store, id);
    reply::success_titled(json!({ "id": id }))
}

/// An order whose invoice was deleted may be invoiced again.
pub(crate) fn forget_order_link(store: &mut StoreData, invoice_id: u64) {
    for order in store.orders.values_mut() {
        if order.invoice_id == Some(invoice_id) {
            order.invoice_id = None;
        }
    }
}

/// `POST /ip/orders/{orderId}/invoices`.
pub(crate) fn create_from_order(store: &mut StoreData, order_id: &str, now: i64) -> ApiReply {
    let Some(order) = order_id
        .parse::<u64>()
        .ok()
        .and_then(|id| store.orders.get(&id))
        .cloned()
    else {
        return reply::not_found("Order does not exist");
    };
    if order
        .invoice_id
        .is_some_and(|id| store.invoices.contains_key(&id))
    {
        return reply::bad_request("The invoice for this order already exists.");
    }
    let number = format!("{:08}", store.next_invoice_id);
    if store.invoice_number_taken(&number, None) {
        return reply::bad_request(DUPLICATE_NUMBER);
    }
    let id = store.allocate_invoice_id();
    let mut invoice = invoice_for_order(&order, id, number.clone(), now);
    invoice.apply_status_rule();
    store.invoices.insert(id, invoice);
    if let Some(stored) = store.orders.get_mut(&order.id) {
        stored.invoice_id = Some(id);
    }
    reply::success(json!({ "invoiceNumber": number, "invoiceId": id }))
}

fn invoice_for_order(order: &Order, id: u64, invoice_number: String, now: i64) -> InvoiceRecord {
    let total = Money {
        code: order.currency.clone(),
        value: order.total,
    };
    let amount = |value: &str| json!({ "code": order.currency, "value": value });
    let total_text = super::money::render_amount(order.total);
    InvoiceRecord {
        id,
        customer_id: order.company_id,
        external_id: None,
        external_customer_id: None,
        invoice_number,
        kind: "Invoice".to_owned(),
        due_date: now + DEFAULT_TERM_SECS,
        status: 0,
        order_number: Some(order.id.to_string()),
        purchase_order_number: None,
        details: json!({
            "type": "StandardInvoiceDetails",
            "header": {
                "costLines": [
                    { "amount": amount(&total_text), "description": "Subtotal" },
                    { "amount": amount("0.0000"), "description": "Freight" },
                    { "amount": amount("0.0000"), "description": "Sales Tax" },
                ],
                "orderDate": order.created_at,
            },
            "details": {
                "lineItems": [{
                    "sku": format!("ORDER-{}", order.id),
                    "type": "physical",
                    "comments": "",
                    "quantity": "1",
                    "unitPrice": amount(&total_text),
                    "description": format!("Order {}", order.id),
                    "customFields": {},
                    "unitDiscount": amount("0.0000"),
                }],
            },
        }),
        source: 0,
        original_balance: total.clone(),
        open_balance: total,
        created_at: now,
        updated_at: now,
        channel_id: 1,
        terms_conditions: None,
        external_pdf_url: None,
        extra_fields: Vec::new(),
    }
}

/// `GET /ip/invoices/{id}/download-pdf`: a link to the sandbox's own (tiny) PDF, plus the
/// external link when the invoice has one.
pub(crate) fn download_pdf(store: &StoreData, id: &str, public_base: &str) -> ApiReply {
    let Some(invoice) = find(store, id) else {
        return reply::invoice_not_found();
    };
    let mut data =
        json!({ "url": format!("{public_base}/sandbox-pdf/{}/{}.pdf", store.hash, invoice.id) });
    if let Some(url) = &invoice.external_pdf_url {
        data["externalPdfUrl"] = json!(url);
    }
    reply::success(data)
}

#[cfg(test)]
mod tests;
