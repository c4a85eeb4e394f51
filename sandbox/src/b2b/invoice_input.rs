//! Request bodies of create (`POST /ip/invoices`) and update (`PUT /ip/invoices/{id}`).
//!
//! Each operation reads only the keys its spec documents: update has no `orderNumber`,
//! `channelId`, `termsConditions` or `issuedAt`, so they are ignored there (a client relying
//! on changing them would otherwise pass here and silently do nothing in production).
//! Types are checked strictly, and `null` is refused rather than read as "absent".

use serde_json::{Map, Value};

use super::extra_fields;
use super::fields::{self, FieldErrors, Text};
use super::money::parse_money;
use super::state::{ExtraFieldConfig, ExtraFieldValue, Money};

const REQUIRED: &str = "This field is required";
const STATUSES: &[u8] = &[0, 1, 2];
const SOURCES: &[u8] = &[0, 1];

/// The fields a request sets; `None` leaves a field as it is (update) or defaulted (create).
#[derive(Debug, Default)]
pub(crate) struct InvoicePatch {
    pub customer_id: Option<u64>,
    pub external_id: Option<String>,
    pub external_customer_id: Option<String>,
    pub invoice_number: Option<String>,
    pub kind: Option<String>,
    pub due_date: Option<i64>,
    pub status: Option<u8>,
    pub order_number: Option<String>,
    pub purchase_order_number: Option<String>,
    pub details: Option<Value>,
    pub source: Option<u8>,
    pub original_balance: Option<Money>,
    pub open_balance: Option<Money>,
    /// `issuedAt` on create, `createdAt` on update.
    pub created_at: Option<i64>,
    pub channel_id: Option<i64>,
    pub terms_conditions: Option<String>,
    /// On update, `Some("")` removes the link.
    pub external_pdf_url: Option<String>,
    pub extra_fields: Option<Vec<ExtraFieldValue>>,
}

/// A create request with its required fields present.
#[derive(Debug)]
pub(crate) struct NewInvoice {
    pub invoice_number: String,
    pub customer_id: u64,
    pub original_balance: Money,
    pub open_balance: Money,
    /// The optional fields (their required counterparts above are taken out).
    pub rest: InvoicePatch,
}

pub(crate) fn parse_create(
    body: &Map<String, Value>,
    configs: &[ExtraFieldConfig],
) -> Result<NewInvoice, FieldErrors> {
    let mut errors = FieldErrors::default();
    for key in [
        "invoiceNumber",
        "originalBalance",
        "openBalance",
        "customerId",
    ] {
        if !body.contains_key(key) {
            errors.push(key, REQUIRED);
        }
    }
    let mut rest = InvoicePatch {
        invoice_number: fields::string(body, "invoiceNumber", Text::NonEmpty, &mut errors),
        customer_id: fields::company_id(body, "customerId", &mut errors),
        original_balance: money(body, "originalBalance", &mut errors),
        open_balance: money(body, "openBalance", &mut errors),
        kind: fields::string(body, "type", Text::NonEmpty, &mut errors),
        due_date: fields::integer(body, "dueDate", &mut errors),
        status: fields::choice(body, "status", STATUSES, &mut errors),
        order_number: fields::string(body, "orderNumber", Text::AnyLength, &mut errors),
        purchase_order_number: fields::string(
            body,
            "purchaseOrderNumber",
            Text::AnyLength,
            &mut errors,
        ),
        created_at: fields::integer(body, "issuedAt", &mut errors),
        details: fields::object(body, "details", &mut errors),
        source: fields::choice(body, "source", SOURCES, &mut errors),
        external_id: fields::string(body, "externalId", Text::AnyLength, &mut errors),
        external_customer_id: fields::string(
            body,
            "externalCustomerId",
            Text::AnyLength,
            &mut errors,
        ),
        channel_id: channel_id(body, &mut errors),
        external_pdf_url: pdf_url(body, &mut errors),
        terms_conditions: fields::string(body, "termsConditions", Text::AnyLength, &mut errors),
        extra_fields: extra_fields::parse_values(body, configs, true, &mut errors),
    };
    let required = (
        rest.invoice_number.take(),
        rest.customer_id.take(),
        rest.original_balance.take(),
        rest.open_balance.take(),
    );
    match required {
        (Some(invoice_number), Some(customer_id), Some(original_balance), Some(open_balance))
            if errors.is_empty() =>
        {
            Ok(NewInvoice {
                invoice_number,
                customer_id,
                original_balance,
                open_balance,
                rest,
            })
        }
        _ => Err(errors),
    }
}

pub(crate) fn parse_update(
    body: &Map<String, Value>,
    configs: &[ExtraFieldConfig],
) -> Result<InvoicePatch, FieldErrors> {
    let mut errors = FieldErrors::default();
    let patch = InvoicePatch {
        customer_id: fields::company_id(body, "customerId", &mut errors),
        external_customer_id: fields::string(
            body,
            "externalCustomerId",
            Text::NonEmpty,
            &mut errors,
        ),
        external_id: fields::string(body, "externalId", Text::NonEmpty, &mut errors),
        invoice_number: fields::string(body, "invoiceNumber", Text::NonEmpty, &mut errors),
        kind: fields::string(body, "type", Text::NonEmpty, &mut errors),
        due_date: fields::integer(body, "dueDate", &mut errors),
        status: fields::choice(body, "status", STATUSES, &mut errors),
        purchase_order_number: fields::string(
            body,
            "purchaseOrderNumber",
            Text::NonEmpty,
            &mut errors,
        ),
        details: fields::object(body, "details", &mut errors),
        source: fields::choice(body, "source", SOURCES, &mut errors),
        original_balance: money(body, "originalBalance", &mut errors),
        open_balance: money(body, "openBalance", &mut errors),
        created_at: fields::integer(body, "createdAt", &mut errors),
        external_pdf_url: pdf_url(body, &mut errors),
        extra_fields: extra_fields::parse_values(body, configs, false, &mut errors),
        order_number: None,
        channel_id: None,
        terms_conditions: None,
    };
    if errors.is_empty() {
        Ok(patch)
    } else {
        Err(errors)
    }
}

fn money(body: &Map<String, Value>, key: &str, errors: &mut FieldErrors) -> Option<Money> {
    match body.get(key)? {
        Value::Null => {
            errors.push(key, fields::NOT_NULL);
            None
        }
        value => parse_money(key, value, errors),
    }
}

fn channel_id(body: &Map<String, Value>, errors: &mut FieldErrors) -> Option<i64> {
    let id = fields::integer(body, "channelId", errors)?;
    if id < 1 {
        errors.push("channelId", "Please enter a valid channel id");
        return None;
    }
    Some(id)
}

/// An http(s) URL, or `""` (which removes the link on update and means none on create).
fn pdf_url(body: &Map<String, Value>, errors: &mut FieldErrors) -> Option<String> {
    let url = fields::string(body, "externalPdfUrl", Text::AnyLength, errors)?;
    let valid = url.is_empty()
        || url::Url::parse(&url).is_ok_and(|parsed| matches!(parsed.scheme(), "http" | "https"));
    if !valid {
        errors.push("externalPdfUrl", "Please enter a valid URL");
        return None;
    }
    Some(url)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::b2b::extra_fields::default_invoice_configs;

    fn body(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("test bodies are objects"),
        }
    }

    #[test]
    fn create_needs_the_four_required_fields() {
        let errors = parse_create(&body(json!({"type": "Invoice"})), &[]).unwrap_err();
        assert_eq!(
            errors.render(),
            "invoiceNumber: This field is required; originalBalance: This field is required; \
             openBalance: This field is required; customerId: This field is required; "
        );
    }

    #[test]
    fn create_reads_the_documented_example() {
        let example = body(json!({
            "invoiceNumber": "0000001", "dueDate": 1619161808, "status": 0,
            "originalBalance": {"code": "USD", "value": 100}, "openBalance": {"code": "USD", "value": 100},
            "issuedAt": 1619161808, "details": {"header": {"costLines": []}},
            "customerId": "12345", "channelId": 1,
            "extraFields": [{"fieldName": "Payment Terms", "fieldValue": "Net 30"}]
        }));
        let new = parse_create(&example, &default_invoice_configs("s")).unwrap();
        assert_eq!(new.invoice_number, "0000001");
        assert_eq!(new.customer_id, 12345);
        assert_eq!(new.rest.created_at, Some(1_619_161_808));
        assert_eq!(new.rest.channel_id, Some(1));
        assert_eq!(new.rest.details, Some(json!({"header": {"costLines": []}})));
        assert_eq!(new.rest.extra_fields.map(|values| values.len()), Some(1));
    }

    #[test]
    fn update_reports_type_errors_and_ignores_undocumented_keys() {
        let errors = parse_update(
            &body(json!({"dueDate": "tomorrow", "openBalance": {"code": "USD", "value": "12,00"}})),
            &[],
        )
        .unwrap_err();
        assert_eq!(
            errors.render(),
            "dueDate: Please enter a valid number; openBalance.value: Please enter a valid number; "
        );
        let patch = parse_update(
            &body(json!({"orderNumber": "9", "channelId": 2, "termsConditions": "x", "externalPdfUrl": ""})),
            &[],
        )
        .unwrap();
        assert!(
            patch.order_number.is_none()
                && patch.channel_id.is_none()
                && patch.terms_conditions.is_none()
        );
        assert_eq!(patch.external_pdf_url.as_deref(), Some(""));
    }

    #[test]
    fn pdf_urls_must_be_http() {
        let errors =
            parse_update(&body(json!({"externalPdfUrl": "ftp://x/y.pdf"})), &[]).unwrap_err();
        assert_eq!(
            errors.render(),
            "externalPdfUrl: Please enter a valid URL; "
        );
        assert!(parse_update(
            &body(json!({"externalPdfUrl": "https://cdn.example/x.pdf"})),
            &[]
        )
        .is_ok());
    }
}
