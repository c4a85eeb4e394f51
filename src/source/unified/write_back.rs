//! Payments written back to the unified API (api-docs 004, Alloy's "Update Invoice"):
//! `PUT {invoices_path}/{id}` with the invoice's new `balance`. `{id}` is the API's own id of
//! the invoice (Alloy's `id` UUID), looked up by the ERP id the payment names (`remoteId`, the
//! B2B `externalId`) in what scans recorded; an invoice no scan has shown yet is `NotSent` and
//! retried later. The `GET` before and the `PUT` go through the source's request budget.
//!
//! 004 requires `lineItems` (each with `description` and `totalAmount`) on every `PUT`, so a
//! write reads the invoice first and sends its current lines back as they are, mapped to the
//! request shape (`description`, `unitPrice`, `quantity`, `totalAmount`, `accountingItemId`,
//! `accountId`). Choices where 004 is vague:
//! - `balance` is written as a JSON number with exactly the target's digits (004 types it as a
//!   float; it never goes through `f64` here). A line's `totalAmount` is sent as a decimal
//!   string, which is how the request schema types it; `unitPrice` and `quantity` go back as
//!   the API served them.
//! - The reference goes into `remoteFields` under the configured key, alone: the other remote
//!   fields are not sent back (some are read-only in the remote app).
//! - An invoice the ERP has deleted or voided, a line without a description or total, and a
//!   currency other than the payment's are skipped with the reason, rather than written.
//!
//! Failures: a refusal (4xx) is `Rejected`, a 404 meaning the invoice is gone from the ERP;
//! failures that applied nothing (no connection, 408, 429, 503) are `NotSent`; a `PUT` that
//! timed out after sending, lost its connection or got another 5xx is `Ambiguous`, and is not
//! sent again here. Failures of the first `GET` never are `Ambiguous`: nothing was written.

use reqwest::Method;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::call::{call, CallError};
use super::{wire, UnifiedSource};
use crate::domain::amount_text;
use crate::domain::money::{parse_amount, Currency};
use crate::source::write_back::{ErpBalance, PaymentWrite, PaymentWriter, WriteBackError, Written};

/// Line fields 004's `PUT` takes besides `description` and `totalAmount`, copied when present.
const LINE_PASSTHROUGH: [&str; 4] = ["unitPrice", "quantity", "accountingItemId", "accountId"];

/// The `PUT` body.
#[derive(Debug, Serialize)]
struct PutBody {
    #[serde(rename = "lineItems")]
    line_items: Vec<Map<String, Value>>,
    /// Raw, so the decimal's digits are written as they are.
    balance: Box<RawValue>,
    #[serde(rename = "remoteFields", skip_serializing_if = "Option::is_none")]
    remote_fields: Option<Map<String, Value>>,
}

/// The body of a `PUT` that sets `balance` on `invoice` (as `GET` served it), keeping its lines;
/// `reference` is `(remoteFields key, value)`. `Err`: why this invoice cannot be written.
pub(super) fn put_body(
    invoice: &Value,
    balance: Decimal,
    reference: Option<(&str, &str)>,
) -> Result<Vec<u8>, String> {
    let lines: Vec<&Value> = match invoice.get("lineItems") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(lines)) => lines.iter().collect(),
        Some(line @ Value::Object(_)) => vec![line],
        Some(_) => return Err("its `lineItems` is not a list".to_owned()),
    };
    if lines.is_empty() {
        // 004 requires lineItems; an empty list would also wipe the lines in some ERPs.
        return Err(
            "it has no line items, and the unified API takes no update without them".to_owned(),
        );
    }
    let line_items = lines
        .iter()
        .enumerate()
        .map(|(index, line)| request_line(index, line))
        .collect::<Result<Vec<_>, _>>()?;
    let balance = RawValue::from_string(balance.to_string())
        .map_err(|e| format!("the balance {balance} cannot be written as JSON: {e}"))?;
    let remote_fields = reference.map(|(key, value)| {
        let mut fields = Map::new();
        fields.insert(key.to_owned(), Value::String(value.to_owned()));
        fields
    });
    serde_json::to_vec(&PutBody {
        line_items,
        balance,
        remote_fields,
    })
    .map_err(|e| format!("the update cannot be encoded: {e}"))
}

/// One line of the invoice in the `PUT` request's shape.
fn request_line(index: usize, line: &Value) -> Result<Map<String, Value>, String> {
    let position = index + 1;
    let Value::Object(line) = line else {
        return Err(format!("line {position} is not an object"));
    };
    let present = |key: &str| line.get(key).filter(|v| !v.is_null());
    let description = present("description")
        .and_then(Value::as_str)
        .filter(|d| !d.trim().is_empty())
        .ok_or_else(|| {
            format!(
                "line {position} has no description, which the unified API requires on every \
                 update: add one in the ERP"
            )
        })?;
    let total = line_total(line).ok_or_else(|| {
        format!("line {position} has no readable totalAmount (nor unitPrice x quantity)")
    })?;
    let mut out = Map::new();
    out.insert(
        "description".to_owned(),
        Value::String(description.to_owned()),
    );
    for key in LINE_PASSTHROUGH {
        if let Some(value) = present(key) {
            out.insert(key.to_owned(), value.clone());
        }
    }
    out.insert("totalAmount".to_owned(), Value::String(total.to_string()));
    Ok(out)
}

/// `totalAmount`, else `unitPrice x quantity`, exactly.
fn line_total(line: &Map<String, Value>) -> Option<Decimal> {
    let amount = |key: &str| {
        line.get(key)
            .and_then(amount_text)
            .and_then(|text| parse_amount(&text).ok())
    };
    amount("totalAmount").or_else(|| amount("unitPrice")?.checked_mul(amount("quantity")?))
}

/// An amount field of the invoice.
fn amount(invoice: &Value, key: &str) -> Result<Decimal, String> {
    let value = invoice
        .get(key)
        .filter(|v| !v.is_null())
        .ok_or_else(|| format!("the invoice has no `{key}`"))?;
    let text = amount_text(value).ok_or_else(|| format!("`{key}` is {value}, not an amount"))?;
    parse_amount(&text).map_err(|reason| format!("`{key}`: {reason}"))
}

/// The invoice's `invoiceStatus`, when it is text.
fn status(invoice: &Value) -> Option<String> {
    invoice
        .get("invoiceStatus")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Why the ERP would not (or should not) take a payment on this invoice, if it would not.
fn refusal(invoice: &Value, event: &PaymentWrite) -> Option<String> {
    let deleted = match invoice.get("remoteDeleted") {
        Some(Value::Bool(flag)) => *flag,
        Some(Value::String(text)) => text.trim().eq_ignore_ascii_case("true"),
        _ => false,
    };
    if deleted {
        return Some("it is deleted in the ERP".to_owned());
    }
    if let Some(status) = status(invoice) {
        let folded: String = status
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .flat_map(|c| c.to_lowercase())
            .collect();
        if matches!(
            folded.as_str(),
            "void" | "voided" | "cancelled" | "canceled" | "deleted"
        ) {
            return Some(format!("it is {status} in the ERP"));
        }
    }
    let currency = invoice
        .get("currency")
        .and_then(Value::as_str)
        .and_then(|code| Currency::parse(code).ok());
    match currency {
        Some(currency) if currency != event.currency => Some(format!(
            "it is in {currency} but the payment is in {}",
            event.currency
        )),
        _ => None,
    }
}

impl UnifiedSource {
    /// The id that addresses invoice `external_id` in `{invoices_path}/{id}`.
    async fn address(&self, external_id: &str, who: &str) -> Result<String, WriteBackError> {
        match self.api_id(external_id).await {
            Ok(Some(id)) => Ok(id),
            Ok(None) => Err(WriteBackError::NotSent {
                message: format!(
                    "{who}: the API's own id of this invoice is not known yet (a scan of the \
                     source records it); sent once it is"
                ),
            }),
            Err(e) => Err(WriteBackError::NotSent {
                message: format!("{who}: {e}"),
            }),
        }
    }

    /// `GET` of the invoice for the write-back: never `Ambiguous` (nothing is written by it).
    async fn fetch_for_write_back(&self, api_id: &str, who: &str) -> Result<Value, WriteBackError> {
        let url = self
            .client
            .invoice_url(api_id)
            .map_err(|e| no_url(who, &e))?;
        let endpoint = self.client.get_endpoint().to_owned();
        let body = call(&self.client, &endpoint, Method::GET, url, None)
            .await
            .map_err(|err| match err {
                CallError::Refused {
                    status: 404,
                    message,
                } => WriteBackError::Rejected {
                    status: 404,
                    message: format!("{who} is gone from the ERP ({message})"),
                },
                CallError::Refused { status, message } => WriteBackError::Rejected {
                    status,
                    message: format!("{who}: {message}"),
                },
                CallError::NotSent { message } | CallError::Unknown { message } => {
                    WriteBackError::NotSent {
                        message: format!("{who}: {message}"),
                    }
                }
                CallError::Unreadable { message } => unreadable(who, message),
            })?;
        wire::single_in(body, &self.client.names().single_field)
            .map_err(|message| unreadable(who, message))
    }
}

/// The invoice's URL cannot be built (a `base_url` that cannot hold a path): a config problem,
/// with no HTTP status (0).
fn no_url(who: &str, err: &crate::source::SourceError) -> WriteBackError {
    WriteBackError::Rejected {
        status: 0,
        message: format!("{who}: {err}"),
    }
}

/// A `GET` answered 200 with something this adapter cannot read.
fn unreadable(who: &str, message: String) -> WriteBackError {
    WriteBackError::Rejected {
        status: 200,
        message: format!("{who}: unexpected answer: {message}"),
    }
}

fn who(event: &PaymentWrite) -> String {
    format!(
        "unified invoice {} ({})",
        event.external_id, event.invoice_number
    )
}

#[async_trait::async_trait]
impl PaymentWriter for UnifiedSource {
    async fn current(&self, external_id: &str) -> Result<Option<ErpBalance>, WriteBackError> {
        let who = format!("unified invoice {external_id}");
        let api_id = self.address(external_id, &who).await?;
        let invoice = self.fetch_for_write_back(&api_id, &who).await?;
        let read = |key: &str| amount(&invoice, key).map_err(|m| unreadable(&who, m));
        Ok(Some(ErpBalance {
            total: read("totalAmount")?,
            balance: read("balance")?,
            status: status(&invoice),
        }))
    }

    async fn write(&self, event: &PaymentWrite) -> Result<Written, WriteBackError> {
        let who = who(event);
        let api_id = self.address(&event.external_id, &who).await?;
        let invoice = self.fetch_for_write_back(&api_id, &who).await?;
        let skip = |reason: String| WriteBackError::Skip {
            reason: format!(
                "{who}: the {} of {} {} cannot be written: {reason}",
                event.kind.as_str(),
                event.amount,
                event.currency
            ),
        };
        if let Some(reason) = refusal(&invoice, event) {
            return Err(skip(reason));
        }
        let reference = event
            .reference_field
            .as_deref()
            .map(|key| (key, event.reference.as_str()));
        let body = put_body(&invoice, event.target_balance, reference).map_err(skip)?;
        let url = self
            .client
            .invoice_url(&api_id)
            .map_err(|e| no_url(&who, &e))?;
        let endpoint = self.client.put_endpoint();
        let mut note = format!("PUT balance {}", event.target_balance);
        if let Some(key) = &event.reference_field {
            note.push_str(&format!(" (remoteFields.{key} = {})", event.reference));
        }
        match call(&self.client, &endpoint, Method::PUT, url, Some(&body)).await {
            Ok(_) => {}
            // A 2xx is applied whatever its body says.
            Err(CallError::Unreadable { message }) => {
                tracing::warn!(source = %self.name, invoice = %who, %message, "unified PUT answered 2xx with an unreadable body");
            }
            Err(CallError::Refused {
                status: 404,
                message,
            }) => {
                return Err(WriteBackError::Rejected {
                    status: 404,
                    message: format!("{who} is gone from the ERP ({message})"),
                })
            }
            Err(CallError::Refused { status, message }) => {
                return Err(WriteBackError::Rejected {
                    status,
                    message: format!("{who}: {message}"),
                })
            }
            Err(CallError::NotSent { message }) => {
                return Err(WriteBackError::NotSent {
                    message: format!("{who}: {message}"),
                })
            }
            Err(CallError::Unknown { message }) => {
                return Err(WriteBackError::Ambiguous {
                    message: format!("{who}: {note}: {message}"),
                })
            }
        }
        tracing::info!(source = %self.name, invoice = %who, kind = event.kind.as_str(), event_id = event.event_id, %note, "payment written to the unified API");
        Ok(Written { note })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use serde_json::json;

    use super::*;

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    fn invoice() -> Value {
        json!({
            "remoteId": "rmt-1",
            "currency": "USD",
            "totalAmount": 100.5,
            "balance": 100.5,
            "invoiceStatus": "OPEN",
            "lineItems": [
                {"id": "l1", "remoteId": "l1", "description": "Widget", "unitPrice": 12.25,
                 "quantity": 2, "totalAmount": 24.5, "currency": "USD", "accountingItemId": "ITEM-1",
                 "accountId": "4000", "trackingCategoryIds": []},
                {"description": "Service", "totalAmount": "76.00", "accountId": null}
            ],
            "remoteFields": {"Terms": "Net 30"}
        })
    }

    fn event() -> PaymentWrite {
        PaymentWrite {
            event_id: 7,
            external_id: "rmt-1".to_owned(),
            invoice_number: "INV-1".to_owned(),
            kind: crate::source::write_back::PaymentKind::Payment,
            payment_id: 117,
            b2b_invoice_id: 9,
            amount: dec("40.50"),
            currency: Currency::parse("USD").unwrap(),
            target_balance: dec("60.00"),
            reference: "b2b-payment-117".to_owned(),
            reference_field: Some("PaymentRef".to_owned()),
            occurred_at: chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap(),
        }
    }

    #[test]
    fn the_body_keeps_the_lines_and_writes_the_balance_exactly() {
        let body = put_body(
            &invoice(),
            dec("60.00"),
            Some(("PaymentRef", "b2b-payment-117")),
        )
        .unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains(r#""balance":60.00"#), "{text}");
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            json,
            json!({
                "lineItems": [
                    {"description": "Widget", "unitPrice": 12.25, "quantity": 2,
                     "accountingItemId": "ITEM-1", "accountId": "4000", "totalAmount": "24.5"},
                    {"description": "Service", "totalAmount": "76.00"}
                ],
                "balance": 60.0,
                "remoteFields": {"PaymentRef": "b2b-payment-117"}
            })
        );
        let without = put_body(&invoice(), dec("0"), None).unwrap();
        let json: Value = serde_json::from_slice(&without).unwrap();
        assert!(json.get("remoteFields").is_none());
        assert_eq!(json["balance"], 0);
    }

    #[test]
    fn a_line_total_can_come_from_price_and_quantity() {
        let mut inv = invoice();
        inv["lineItems"] = json!({"description": "One", "unitPrice": "3.335", "quantity": 3});
        let json: Value = serde_json::from_slice(&put_body(&inv, dec("1"), None).unwrap()).unwrap();
        assert_eq!(json["lineItems"][0]["totalAmount"], "10.005");
    }

    #[test]
    fn invoices_that_cannot_be_written_say_why() {
        let mut inv = invoice();
        inv["lineItems"][1]["description"] = Value::Null;
        assert!(put_body(&inv, dec("1"), None)
            .unwrap_err()
            .contains("line 2 has no description"));
        inv["lineItems"] = json!([]);
        assert!(put_body(&inv, dec("1"), None)
            .unwrap_err()
            .contains("no line items"));
        let mut inv = invoice();
        inv["lineItems"][0] = json!({"description": "x"});
        assert!(put_body(&inv, dec("1"), None)
            .unwrap_err()
            .contains("line 1 has no readable totalAmount"));
    }

    #[test]
    fn deleted_voided_and_foreign_currency_invoices_are_refused() {
        let ev = event();
        assert_eq!(refusal(&invoice(), &ev), None);
        let mut inv = invoice();
        inv["remoteDeleted"] = json!(true);
        assert_eq!(
            refusal(&inv, &ev).as_deref(),
            Some("it is deleted in the ERP")
        );
        let mut inv = invoice();
        inv["invoiceStatus"] = json!("VOIDED");
        assert_eq!(
            refusal(&inv, &ev).as_deref(),
            Some("it is VOIDED in the ERP")
        );
        let mut inv = invoice();
        inv["currency"] = json!("EUR");
        assert_eq!(
            refusal(&inv, &ev).as_deref(),
            Some("it is in EUR but the payment is in USD")
        );
    }

    #[test]
    fn amounts_read_from_numbers_and_strings() {
        let inv = json!({"totalAmount": 100.5, "balance": "60.10", "x": true});
        assert_eq!(amount(&inv, "totalAmount"), Ok(dec("100.5")));
        assert_eq!(amount(&inv, "balance"), Ok(dec("60.10")));
        assert!(amount(&inv, "x").is_err());
        assert!(amount(&inv, "missing")
            .unwrap_err()
            .contains("no `missing`"));
    }
}
