//! `PUT /{invoices_path}/{id}` (api-docs 004): the payments write-back's target.
//!
//! - The body must be a JSON object of 004's update fields (anything else is a 400, so a client
//!   sending a misspelt field finds out here rather than in production). `lineItems` is
//!   required (an array, or one object as 004's request schema has it); each line needs
//!   `description` (text) and `totalAmount` (a number or a decimal string). Amounts may be
//!   numbers or decimal strings.
//! - Applying replaces the lines (served back in the response's shape, amounts as numbers),
//!   sets `totalAmount`, `balance` and the other fields given, merges `remoteFields` key by key,
//!   moves `invoiceStatus` between `OPEN`, `PARTIALLY_PAID` and `PAID` with the balance (other
//!   statuses stay), and stamps `remoteUpdatedAt`, so the invoice is listed again as changed.
//! - While writes are held (`UnifiedSandboxControl::hold_writes`), a valid `PUT` is answered
//!   200 with the invoice as it still is, and queued until `acknowledge_writes`: an ERP that
//!   imports the payment later.
//! - Every accepted body (applied or queued, even when a fault then replaces the answer) is
//!   kept in order for `received_writes`; refused ones are not.

use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

use super::reply::{self, Reply};
use super::seed::number;
use super::state::{lock, Invoices, Shared};
use crate::wire::json_amount;

use axum::http::StatusCode;

/// Top-level fields of 004's update request.
const FIELDS: [&str; 11] = [
    "customerId",
    "lineItems",
    "invoiceNumber",
    "issueDate",
    "dueDate",
    "memo",
    "currency",
    "exchangeRate",
    "totalAmount",
    "balance",
    "remoteFields",
];
/// Fields of one line of 004's update request.
const LINE_FIELDS: [&str; 6] = [
    "description",
    "unitPrice",
    "quantity",
    "totalAmount",
    "accountingItemId",
    "accountId",
];
const AMOUNTS: [&str; 3] = ["totalAmount", "balance", "exchangeRate"];
const TEXTS: [&str; 6] = [
    "customerId",
    "invoiceNumber",
    "issueDate",
    "dueDate",
    "memo",
    "currency",
];

/// The write-back's bookkeeping: what arrived and what waits.
#[derive(Debug, Default)]
pub(crate) struct Writes {
    pub held: bool,
    /// Accepted while held, in arrival order: `(internal id, id in the URL, body)`.
    pub queue: Vec<(String, String, Value)>,
    /// Every accepted body, in arrival order, by the id in the URL.
    pub received: Vec<(String, Value)>,
}

/// How a `PUT` is taken: what the URL named, and the API's rules.
pub(crate) struct PutRules<'a> {
    /// The id in the URL (Alloy: its UUID), as recorded for tests.
    pub shown: &'a str,
    /// `lineItems` must be present (004; Alloy's reference marks them required).
    pub require_lines: bool,
    /// The invoice as served (Alloy's rendering; identity for the generic API).
    pub render: &'a dyn Fn(Value) -> Value,
}

/// Handles one `PUT` of the generic API: validates, records, then applies or queues.
pub(crate) fn put(shared: &Shared, id: &str, body: &[u8]) -> Reply {
    let rules = PutRules {
        shown: id,
        require_lines: true,
        render: &|v| v,
    };
    put_with(shared, id, body, &rules)
}

/// Handles one `PUT` of invoice `id` (the sandbox's own id) under `rules`.
pub(crate) fn put_with(shared: &Shared, id: &str, body: &[u8], rules: &PutRules<'_>) -> Reply {
    let body: Value = match serde_json::from_slice(body) {
        Ok(body) => body,
        Err(_) => {
            return reply::error(
                StatusCode::BAD_REQUEST,
                "The request body is not valid JSON",
            )
        }
    };
    if let Err(message) = validate_with(&body, rules.require_lines) {
        return reply::error(StatusCode::BAD_REQUEST, &message);
    }
    let now = shared.harness.clock.now_ms();
    // Lock order: invoices, then writes (the controls never hold both the other way).
    let mut invoices = lock(&shared.invoices);
    let Some(current) = invoices.get(id) else {
        return reply::error(StatusCode::NOT_FOUND, &format!("Invoice {id} not found"));
    };
    if !current.is_object() {
        return reply::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("Invoice {id} cannot be updated"),
        );
    }
    let mut writes = lock(&shared.writes);
    writes.received.push((rules.shown.to_owned(), body.clone()));
    let served = if writes.held {
        writes
            .queue
            .push((id.to_owned(), rules.shown.to_owned(), body));
        current
    } else {
        drop(writes);
        apply(&mut invoices, id, &body, now).unwrap_or(current)
    };
    let mut answer = Map::new();
    let field = match &shared.api {
        super::SandboxApi::Alloy(_) => "invoice".to_owned(),
        super::SandboxApi::Generic => shared.names.single_field.clone(),
    };
    answer.insert(field, (rules.render)(served));
    reply::ok(Value::Object(answer))
}

/// Applies a validated body to invoice `id`, stamped now; the invoice as it is afterwards.
pub(crate) fn apply(invoices: &mut Invoices, id: &str, body: &Value, now_ms: i64) -> Option<Value> {
    let mut invoice = invoices.get(id)?;
    let object = invoice.as_object_mut()?;
    let body = body.as_object()?;
    let currency = object.get("currency").cloned().unwrap_or(Value::Null);
    if let Some(lines) = body.get("lineItems") {
        object.insert("lineItems".to_owned(), stored_lines(id, lines, &currency));
    }
    for key in AMOUNTS {
        if let Some(amount) = body.get(key).and_then(decimal) {
            object.insert(key.to_owned(), number(amount));
        }
    }
    for key in TEXTS {
        if let Some(value) = body.get(key) {
            object.insert(key.to_owned(), value.clone());
        }
    }
    if let Some(Value::Object(fields)) = body.get("remoteFields") {
        let merged = match object.get_mut("remoteFields") {
            Some(Value::Object(existing)) => existing,
            _ => {
                object.insert("remoteFields".to_owned(), Value::Object(Map::new()));
                object.get_mut("remoteFields")?.as_object_mut()?
            }
        };
        for (key, value) in fields {
            merged.insert(key.clone(), value.clone());
        }
    }
    if body.contains_key("balance") || body.contains_key("totalAmount") {
        follow_balance(object);
    }
    let stamp = invoices.next_stamp(now_ms);
    invoices.put(id, stamp, invoice);
    invoices.get(id)
}

/// `OPEN` / `PARTIALLY_PAID` / `PAID` from the balance; other statuses (voided, drafts) stay.
fn follow_balance(invoice: &mut Map<String, Value>) {
    let status = invoice
        .get("invoiceStatus")
        .and_then(Value::as_str)
        .unwrap_or("OPEN");
    if !["OPEN", "PARTIALLY_PAID", "PAID"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(status))
    {
        return;
    }
    let (Some(total), Some(balance)) = (
        invoice.get("totalAmount").and_then(decimal),
        invoice.get("balance").and_then(decimal),
    ) else {
        return;
    };
    let next = if balance <= Decimal::ZERO {
        "PAID"
    } else if balance >= total {
        "OPEN"
    } else {
        "PARTIALLY_PAID"
    };
    invoice.insert("invoiceStatus".to_owned(), json!(next));
}

/// The request's lines in the response's shape.
fn stored_lines(id: &str, lines: &Value, currency: &Value) -> Value {
    let lines: Vec<&Value> = match lines {
        Value::Array(lines) => lines.iter().collect(),
        line => vec![line],
    };
    let stored = lines
        .iter()
        .enumerate()
        .map(|(k, line)| {
            let field = |key: &str| line.get(key).cloned().unwrap_or(Value::Null);
            let amount = |key: &str| line.get(key).and_then(decimal).map_or(Value::Null, number);
            json!({
                "id": format!("{id}-L{}", k + 1),
                "remoteId": format!("{id}-L{}", k + 1),
                "description": field("description"),
                "unitPrice": amount("unitPrice"),
                "quantity": amount("quantity"),
                "totalAmount": amount("totalAmount"),
                "currency": currency,
                "exchangeRate": null,
                "accountingItemId": field("accountingItemId"),
                "accountId": field("accountId"),
                "trackingCategoryId": null,
                "trackingCategoryIds": [],
                "companyId": null,
            })
        })
        .collect();
    Value::Array(stored)
}

fn decimal(value: &Value) -> Option<Decimal> {
    json_amount(value)
}

/// 004's rules for an update body; the message of the first problem.
#[cfg(test)]
pub(crate) fn validate(body: &Value) -> Result<(), String> {
    validate_with(body, true)
}

/// [`validate`], `lineItems` optional unless `require_lines`.
pub(crate) fn validate_with(body: &Value, require_lines: bool) -> Result<(), String> {
    let Value::Object(body) = body else {
        return Err("The request body must be a JSON object".to_owned());
    };
    if let Some(unknown) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!("`{unknown}` is not a field of an invoice update"));
    }
    let lines: Vec<&Value> = match body.get("lineItems") {
        None | Some(Value::Null) if !require_lines => Vec::new(),
        None | Some(Value::Null) => return Err("lineItems is required".to_owned()),
        Some(Value::Array(lines)) => lines.iter().collect(),
        Some(line @ Value::Object(_)) => vec![line],
        Some(_) => return Err("lineItems must be an array of line items".to_owned()),
    };
    for (index, line) in lines.iter().enumerate() {
        validate_line(index, line)?;
    }
    for key in AMOUNTS {
        check_amount(body, key, key)?;
    }
    for key in TEXTS {
        match body.get(key) {
            None | Some(Value::Null | Value::String(_)) => {}
            Some(_) => return Err(format!("{key} must be a string")),
        }
    }
    match body.get("remoteFields") {
        None | Some(Value::Null | Value::Object(_)) => Ok(()),
        Some(_) => Err("remoteFields must be an object".to_owned()),
    }
}

fn validate_line(index: usize, line: &Value) -> Result<(), String> {
    let Value::Object(line) = line else {
        return Err(format!("lineItems[{index}] must be an object"));
    };
    if let Some(unknown) = line.keys().find(|k| !LINE_FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "lineItems[{index}].{unknown} is not a field of a line item"
        ));
    }
    match line.get("description") {
        Some(Value::String(_)) => {}
        _ => return Err(format!("lineItems[{index}].description is required")),
    }
    if line.get("totalAmount").is_none_or(Value::is_null) {
        return Err(format!("lineItems[{index}].totalAmount is required"));
    }
    for key in ["totalAmount", "unitPrice", "quantity"] {
        check_amount(line, key, &format!("lineItems[{index}].{key}"))?;
    }
    for key in ["accountingItemId", "accountId"] {
        match line.get(key) {
            None | Some(Value::Null | Value::String(_)) => {}
            Some(_) => return Err(format!("lineItems[{index}].{key} must be a string")),
        }
    }
    Ok(())
}

/// An optional amount: a number or a decimal string.
fn check_amount(object: &Map<String, Value>, key: &str, name: &str) -> Result<(), String> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(value) if decimal(value).is_some() => Ok(()),
        Some(_) => Err(format!("{name} must be a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Value {
        json!({
            "lineItems": [{"description": "A", "totalAmount": "10.50", "unitPrice": 5.25, "quantity": 2}],
            "balance": 4.5,
            "remoteFields": {"Ref": "x"}
        })
    }

    #[test]
    fn update_bodies_follow_004() {
        assert_eq!(validate(&valid()), Ok(()));
        let one_line = json!({"lineItems": {"description": "A", "totalAmount": 1}});
        assert_eq!(validate(&one_line), Ok(()));
        let refused = |body: Value| validate(&body).unwrap_err();
        assert_eq!(refused(json!([])), "The request body must be a JSON object");
        assert_eq!(refused(json!({"balance": 1})), "lineItems is required");
        assert_eq!(
            refused(json!({"lineItems": [{"totalAmount": 1}]})),
            "lineItems[0].description is required"
        );
        assert_eq!(
            refused(json!({"lineItems": [{"description": "A"}]})),
            "lineItems[0].totalAmount is required"
        );
        assert_eq!(
            refused(json!({"lineItems": [{"description": "A", "totalAmount": "1,5"}]})),
            "lineItems[0].totalAmount must be a number"
        );
        assert_eq!(
            refused(json!({"lineItems": [], "balanceDue": 1})),
            "`balanceDue` is not a field of an invoice update"
        );
        assert_eq!(
            refused(json!({"lineItems": [], "balance": "abc"})),
            "balance must be a number"
        );
        assert_eq!(
            refused(json!({"lineItems": [{"description": "A", "totalAmount": 1, "id": "x"}]})),
            "lineItems[0].id is not a field of a line item"
        );
    }

    #[test]
    fn the_status_follows_the_balance() {
        let mut invoice = json!({"invoiceStatus": "OPEN", "totalAmount": 100, "balance": 40})
            .as_object()
            .cloned()
            .unwrap();
        follow_balance(&mut invoice);
        assert_eq!(invoice["invoiceStatus"], "PARTIALLY_PAID");
        invoice.insert("balance".to_owned(), json!("0.00"));
        follow_balance(&mut invoice);
        assert_eq!(invoice["invoiceStatus"], "PAID");
        invoice.insert("balance".to_owned(), json!(100));
        follow_balance(&mut invoice);
        assert_eq!(invoice["invoiceStatus"], "OPEN");
        invoice.insert("invoiceStatus".to_owned(), json!("VOIDED"));
        invoice.insert("balance".to_owned(), json!(0));
        follow_balance(&mut invoice);
        assert_eq!(invoice["invoiceStatus"], "VOIDED");
    }
}
