//! The invoice endpoints: list, get, void, delete and charge (`PUT /invoices/{id}` is in
//! `update`).
//!
//! Where the reference client is silent, the sandbox is strict, so a client that passes here
//! does not fail against Rebillia: `itemPerPage` above 250 is refused (not clamped); an unknown
//! `orderBy` column or `sortBy` direction is refused; without `orderBy` the list is newest
//! `createdAt` first; ties are broken by id in the same direction. Unknown query parameters are
//! ignored, as most APIs do. With [`ListOrder::Ignored`] the list is always in that default
//! order, whatever `orderBy` / `sortBy` ask.

use std::cmp::Ordering;

use serde_json::{json, Map, Value};

use super::render;
use super::reply::{self, Reply};
use super::state::{Data, Invoice, ListOrder, QueuedCharge, UPDATABLE};

const MAX_PAGE_SIZE: u64 = 250;
const DEFAULT_PAGE_SIZE: u64 = 25;
const PAYMENT_TYPES: [&str; 4] = [
    "offlinePaymentProvider",
    "thirdPartyPaymentProvider",
    "walletPaymentProvider",
    "otherPayment",
];

/// Query parameters; the first occurrence of a name counts.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(query: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn positive(&self, name: &str, default: u64) -> Result<u64, Reply> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => text
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|&n| n >= 1)
                .ok_or_else(|| reply::bad_request(&format!("{name} must be a positive integer"))),
        }
    }

    fn includes_detail(&self) -> bool {
        self.get("include").is_some_and(|list| {
            list.split(',')
                .any(|part| part.trim().eq_ignore_ascii_case("detail"))
        })
    }
}

pub(crate) fn list(data: &Data, params: &Params) -> Reply {
    list_page(data, params).unwrap_or_else(|refused| refused)
}

fn list_page(data: &Data, params: &Params) -> Result<Reply, Reply> {
    let page_no = params.positive("pageNo", 1)?;
    let per_page = params.positive("itemPerPage", DEFAULT_PAGE_SIZE)?;
    if per_page > MAX_PAGE_SIZE {
        return Err(reply::bad_request("itemPerPage must be between 1 and 250"));
    }
    let mut order = sort_order(params.get("orderBy").unwrap_or("createdAt"))?;
    let mut descending = match params.get("sortBy").map(str::trim) {
        None => true,
        Some(d) if d.eq_ignore_ascii_case("DESC") => true,
        Some(d) if d.eq_ignore_ascii_case("ASC") => false,
        Some(_) => return Err(reply::bad_request("sortBy must be ASC or DESC")),
    };
    if data.list_order == ListOrder::Ignored {
        (order, descending) = (
            |a: &Invoice, b: &Invoice| a.created_at.cmp(&b.created_at),
            true,
        );
    }
    let status = params.get("status");
    let search = params.get("query").map(str::to_lowercase);
    let mut rows: Vec<&Invoice> = data
        .invoices
        .values()
        .filter(|i| status.is_none_or(|s| i.status.eq_ignore_ascii_case(s)))
        .filter(|i| search.as_deref().is_none_or(|q| matches_search(data, i, q)))
        .collect();
    rows.sort_by(|a, b| {
        let ordering = order(a, b).then(a.id.cmp(&b.id));
        if descending {
            ordering.reverse()
        } else {
            ordering
        }
    });
    let total = rows.len() as u64;
    let skip = usize::try_from((page_no - 1).saturating_mul(per_page)).unwrap_or(usize::MAX);
    let take = usize::try_from(per_page).unwrap_or(usize::MAX);
    let with_detail = params.includes_detail();
    let page: Vec<Value> = rows
        .into_iter()
        .skip(skip)
        .take(take)
        .map(|i| render::invoice(data, i, with_detail))
        .collect();
    Ok(Reply::ok(json!({
        "currentPageNumber": page_no,
        "itemsPerPage": per_page,
        "totalItems": total,
        "totalPages": total.div_ceil(per_page),
        "data": page,
    })))
}

type Order = fn(&Invoice, &Invoice) -> Ordering;

fn sort_order(column: &str) -> Result<Order, Reply> {
    Ok(match column.trim() {
        "id" => |a, b| a.id.cmp(&b.id),
        "createdAt" => |a, b| a.created_at.cmp(&b.created_at),
        "updatedAt" => |a, b| a.updated_at.cmp(&b.updated_at),
        "invoiceNo" => |a, b| a.invoice_no.cmp(&b.invoice_no),
        "dateDue" => |a, b| a.date_due.cmp(&b.date_due),
        "total" => |a, b| a.total().cmp(&b.total()),
        "status" => |a, b| a.status.cmp(&b.status),
        other => {
            return Err(reply::bad_request(&format!(
                "orderBy `{other}` is not a sortable column (id, createdAt, updatedAt, invoiceNo, dateDue, total, status)"
            )))
        }
    })
}

fn matches_search(data: &Data, invoice: &Invoice, query: &str) -> bool {
    let customer = data.customers.get(&invoice.customer);
    invoice.invoice_no.to_lowercase().contains(query)
        || customer.is_some_and(|c| {
            [
                &c.email,
                &c.first_name,
                &c.last_name,
                &c.business_name,
                &c.customer_id,
            ]
            .iter()
            .any(|field| field.to_lowercase().contains(query))
        })
}

/// An invoice id of the path, if it names an invoice.
pub(crate) fn find(data: &Data, id: &str) -> Option<u64> {
    let id = id.trim().parse::<u64>().ok()?;
    data.invoices.contains_key(&id).then_some(id)
}

pub(crate) fn invoice_not_found() -> Reply {
    reply::not_found("Invoice not found")
}

pub(crate) fn get(data: &Data, id: &str, params: &Params) -> Reply {
    match find(data, id).and_then(|id| data.invoices.get(&id)) {
        Some(invoice) => Reply::ok(render::invoice(data, invoice, params.includes_detail())),
        None => invoice_not_found(),
    }
}

/// `PUT /invoices/{id}/void`: irreversible; only unpaid invoices awaiting payment.
pub(crate) fn void(data: &mut Data, id: &str, now: i64) -> Reply {
    let Some(invoice) = find(data, id).and_then(|id| data.invoices.get_mut(&id)) else {
        return invoice_not_found();
    };
    if !invoice.updatable() {
        return reply::bad_request(&format!(
            "Only invoices with status 'posted' or 'requestPayment' can be voided (this one is '{}')",
            invoice.status
        ));
    }
    if invoice.paid_cents > 0 {
        return reply::bad_request("The invoice has payments; refund them before voiding it");
    }
    invoice.status = "void".to_owned();
    invoice.date_void = Some(now);
    invoice.touch(now);
    let invoice = invoice.clone();
    Reply::ok(render::invoice(data, &invoice, true))
}

/// `DELETE /invoices/{id}`: gone for good (it leaves the list too); refused once paid into.
pub(crate) fn delete(data: &mut Data, id: &str) -> Reply {
    let Some(id) = find(data, id) else {
        return invoice_not_found();
    };
    if data.invoices.get(&id).is_some_and(|i| i.paid_cents > 0) {
        return reply::bad_request("The invoice has payments and cannot be deleted");
    }
    data.invoices.remove(&id);
    Reply::no_content()
}

/// `POST /invoices/{id}/charge` `{amount (cents), paymentType}`: a payment; the invoice turns
/// `paid` when nothing is left due. While charges are held, an accepted charge is answered
/// (`"status": "pending"`) and queued instead (see `RebilliaSandboxControl::hold_charges`).
pub(crate) fn charge(data: &mut Data, id: &str, body: &Map<String, Value>, now: i64) -> Reply {
    let Some(invoice_id) = find(data, id) else {
        return invoice_not_found();
    };
    let amount = body
        .get("amount")
        .and_then(Value::as_i64)
        .filter(|&a| a >= 1);
    let payment_type = body
        .get("paymentType")
        .and_then(Value::as_str)
        .filter(|t| PAYMENT_TYPES.contains(t));
    let (Some(amount), Some(payment_type)) = (amount, payment_type) else {
        return reply::bad_request(
            "amount (a positive integer of cents) and paymentType (offlinePaymentProvider, thirdPartyPaymentProvider, walletPaymentProvider or otherPayment) are required",
        );
    };
    let transaction_id = data.allocate_line_id();
    let Some(invoice) = data.invoices.get_mut(&invoice_id) else {
        return invoice_not_found();
    };
    if !UPDATABLE.contains(&invoice.status.as_str()) {
        return reply::bad_request(&format!(
            "Only invoices with status 'posted' or 'requestPayment' can be charged (this one is '{}')",
            invoice.status
        ));
    }
    if amount > invoice.balance_due() {
        return reply::bad_request("amount is more than the balance due");
    }
    data.charges.received.push((invoice_id, amount));
    let status = if data.charges.held {
        data.charges.queue.push(QueuedCharge {
            invoice_id,
            cents: amount,
            payment_type: payment_type.to_owned(),
        });
        "pending"
    } else {
        settle_charge(invoice, amount, payment_type, now);
        "settled"
    };
    let Some(invoice) = data.invoices.get(&invoice_id) else {
        return invoice_not_found();
    };
    Reply::ok(json!({
        "amount": amount,
        "createdAt": render::time(now),
        "currency": render::currency(invoice.currency),
        "id": transaction_id.to_string(),
        "invoiceId": invoice.id.to_string(),
        "kind": "payment",
        "paymentType": payment_type,
        "status": status,
        "type": "sale",
        "updatedAt": render::time(now),
    }))
}

/// Books a charge the API accepted: the invoice turns `paid` when nothing is left due.
pub(crate) fn settle_charge(invoice: &mut Invoice, cents: i64, payment_type: &str, now: i64) {
    invoice.paid_cents += cents;
    if invoice.balance_due() == 0 {
        invoice.status = "paid".to_owned();
        invoice.date_paid = Some(now);
    }
    invoice.payment_type = Some(payment_type.to_owned());
    invoice.touch(now);
}
