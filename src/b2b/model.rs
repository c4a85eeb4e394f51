//! Request and response types of the B2B Edition Invoice API, after BigCommerce's OpenAPI spec
//! (`specs/api-v3/invoice-management.yaml`) and the company API's `GET /companies`.
//!
//! Responses are read leniently (see [`wire`]); anything the daemon does not model is kept,
//! never dropped: unknown top-level keys land in `other`, and `details` is kept whole as JSON with
//! typed views over the parts the daemon owns.
//!
//! The invoice document's value types (amounts, status, `details` and its parts) are the domain's
//! own ([`crate::domain::document`]), since the desired invoice and its fingerprint are written in
//! them; they are re-exported here because they are also what the wire carries.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::document::wire;
pub use crate::domain::document::{
    details_path, Address, Amount, CostLine, InvoiceDetails, InvoiceStatus, LineItem,
};

/// The B2B Edition id of an invoice.
pub type InvoiceId = u64;

/// `Create Invoice` takes balances with a numeric `value`.
mod amount_as_number {
    use super::*;
    use serde::ser::SerializeStruct;
    use serde::Serializer;

    struct Number<'a>(&'a Decimal);

    impl Serialize for Number<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            wire::decimal_as_number(self.0, s)
        }
    }

    pub fn serialize<S: Serializer>(a: &Amount, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Amount", 2)?;
        st.serialize_field("code", &a.code)?;
        st.serialize_field("value", &Number(&a.value))?;
        st.end()
    }
}

/// Where an invoice was born: B2B Edition itself (0) or an external system (1). The daemon writes 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceSource {
    B2bEdition,
    External,
}

impl Serialize for InvoiceSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(match self {
            Self::B2bEdition => 0,
            Self::External => 1,
        })
    }
}

/// `{fieldName, fieldValue}` of an invoice extra field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtraFieldValue {
    #[serde(deserialize_with = "wire::string")]
    pub field_name: String,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub field_value: Option<String>,
}

/// An invoice as `GET /invoices/{id}` and `GET /invoices` return it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invoice {
    #[serde(deserialize_with = "wire::id")]
    pub id: InvoiceId,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub customer_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub external_customer_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub external_id: Option<String>,
    #[serde(deserialize_with = "wire::string")]
    pub invoice_number: String,
    #[serde(rename = "type", default, deserialize_with = "wire::opt_string")]
    pub kind: Option<String>,
    #[serde(
        default,
        deserialize_with = "wire::opt_unix_time",
        serialize_with = "wire::opt_unix_time_out"
    )]
    pub due_date: Option<DateTime<Utc>>,
    #[serde(default)]
    pub status: Option<InvoiceStatus>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub order_number: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub purchase_order_number: Option<String>,
    #[serde(default)]
    pub details: InvoiceDetails,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    pub is_pending_payment: Option<i64>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    pub source: Option<i64>,
    pub original_balance: Amount,
    pub open_balance: Amount,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub customer_name: Option<String>,
    #[serde(
        default,
        deserialize_with = "wire::opt_unix_time",
        serialize_with = "wire::opt_unix_time_out"
    )]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(
        default,
        deserialize_with = "wire::opt_unix_time",
        serialize_with = "wire::opt_unix_time_out"
    )]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub channel_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub channel_name: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub terms_conditions: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub external_pdf_url: Option<String>,
    #[serde(default, deserialize_with = "wire::null_as_empty")]
    pub extra_fields: Vec<ExtraFieldValue>,
    /// Keys this client does not model (e.g. `issuedAt`), kept as sent.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `POST /invoices`. Required: number, balances, company; the rest is optional.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewInvoice {
    pub invoice_number: String,
    #[serde(with = "amount_as_number")]
    pub original_balance: Amount,
    #[serde(with = "amount_as_number")]
    pub open_balance: Amount,
    /// The B2B Edition company id.
    pub customer_id: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::opt_unix_time_out"
    )]
    pub due_date: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<InvoiceStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purchase_order_number: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::opt_unix_time_out"
    )]
    pub issued_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<InvoiceDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<InvoiceSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_customer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_pdf_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terms_conditions: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_fields: Vec<ExtraFieldValue>,
}

impl NewInvoice {
    /// The four required fields; everything else starts empty.
    pub fn new(
        invoice_number: impl Into<String>,
        customer_id: impl Into<String>,
        original_balance: Amount,
        open_balance: Amount,
    ) -> Self {
        Self {
            invoice_number: invoice_number.into(),
            original_balance,
            open_balance,
            customer_id: customer_id.into(),
            kind: None,
            due_date: None,
            status: None,
            order_number: None,
            purchase_order_number: None,
            issued_at: None,
            details: None,
            source: None,
            external_id: None,
            external_customer_id: None,
            channel_id: None,
            external_pdf_url: None,
            terms_conditions: None,
            extra_fields: Vec::new(),
        }
    }
}

/// `PUT /invoices/{id}`: partial at the top level, only `Some` fields are sent.
///
/// `details`, when sent, replaces the stored details entirely: build it from the invoice's current
/// details (see [`InvoiceDetails`]). `external_pdf_url: Some("")` removes the PDF link.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_customer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoice_number: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::opt_unix_time_out"
    )]
    pub due_date: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<InvoiceStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purchase_order_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<InvoiceDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<InvoiceSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_balance: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_balance: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_pdf_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_fields: Option<Vec<ExtraFieldValue>>,
}

/// `POST /orders/{orderId}/invoices` answers with the new invoice's id and number.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedFromOrder {
    #[serde(deserialize_with = "wire::id")]
    pub invoice_id: InvoiceId,
    #[serde(deserialize_with = "wire::string")]
    pub invoice_number: String,
}

/// `GET /invoices/{id}/download-pdf`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoicePdf {
    /// Where the PDF can be downloaded.
    #[serde(deserialize_with = "wire::string")]
    pub url: String,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub external_pdf_url: Option<String>,
}

/// An invoice extra-field definition (`GET /invoices/extra-fields`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtraFieldConfig {
    #[serde(default, deserialize_with = "wire::opt_i64")]
    pub id: Option<i64>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub uuid: Option<String>,
    #[serde(deserialize_with = "wire::string")]
    pub field_name: String,
    /// 0 text, 1 textarea, 2 number, 3 dropdown.
    #[serde(default, deserialize_with = "wire::opt_i64")]
    pub field_type: Option<i64>,
    #[serde(default)]
    pub is_required: Option<bool>,
    #[serde(default)]
    pub is_unique: Option<bool>,
    #[serde(default)]
    pub visible_to_enduser: Option<bool>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub default_value: Option<String>,
    #[serde(default, deserialize_with = "wire::null_as_empty")]
    pub list_of_value: Vec<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A company as `GET /companies` returns it; the daemon needs its id and extra fields.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Company {
    #[serde(deserialize_with = "wire::id")]
    pub company_id: u64,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub company_name: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub company_email: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub company_status: Option<String>,
    #[serde(default, deserialize_with = "wire::null_as_empty")]
    pub extra_fields: Vec<ExtraFieldValue>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `meta.pagination` of list responses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    #[serde(default, deserialize_with = "wire::opt_i64")]
    pub total_count: Option<i64>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    pub limit: Option<i64>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    pub offset: Option<i64>,
}

/// One page of a list endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub offset: u64,
    pub limit: u32,
    /// `meta.pagination.totalCount`, when the API sent it.
    pub total_count: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn invoice_json() -> Value {
        json!({
            "id": 9, "customerId": "95075", "externalId": "23", "externalCustomerId": "123",
            "invoiceNumber": "00000009", "type": "Invoice on Shipment", "dueDate": 1617675497,
            "status": 1, "orderNumber": "104", "purchaseOrderNumber": "123",
            "details": {
                "type": "StandardInvoiceDetails",
                "header": {
                    "costLines": [{"amount": {"code": "USD", "value": "349.5000"}, "description": "Subtotal"}],
                    "orderDate": 1616809386,
                    "billingAddress": {"city": "San Francisco", "state": "California", "country": "United States",
                        "street1": "123 Main Street", "street2": "Suite 200", "zipCode": "94102",
                        "lastName": "Smith", "firstName": "John", "customFields": {}},
                    "customerFields": {"approvedBy": "Jane"}
                },
                "details": {
                    "lineItems": [{"sku": "DPB", "type": "physical", "comments": "c", "quantity": "10",
                        "unitPrice": {"code": "USD", "value": "34.95"}, "description": "Dustpan",
                        "customFields": {}, "unitDiscount": {"code": "USD", "value": "12"}}],
                    "noteFromAccounting": "call before shipping"
                },
                "addedByAnotherApp": {"x": [1, 2.5, "three"]}
            },
            "isPendingPayment": 1, "source": 0,
            "originalBalance": {"code": "USD", "value": "349.5000"},
            "openBalance": {"code": "USD", "value": 349.5},
            "customerName": "silk", "createdAt": "1617675000", "updatedAt": 1617675497,
            "channelId": 1, "issuedAt": 1617675000
        })
    }

    #[test]
    fn spec_example_reads_with_number_and_string_balances() {
        let inv: Invoice = serde_json::from_value(invoice_json()).unwrap();
        assert_eq!(inv.id, 9);
        assert_eq!(inv.original_balance.value, inv.open_balance.value);
        assert_eq!(inv.status, Some(InvoiceStatus::PartiallyPaid));
        assert_eq!(inv.channel_id.as_deref(), Some("1"));
        assert_eq!(inv.created_at.map(|t| t.timestamp()), Some(1617675000));
        assert_eq!(inv.other.get("issuedAt"), Some(&json!(1617675000)));
        let items = inv.details.line_items().unwrap().unwrap();
        assert_eq!(items[0].quantity, Decimal::from(10));
        assert_eq!(items[0].other.get("customFields"), Some(&json!({})));
    }

    #[test]
    fn replacing_owned_parts_keeps_every_other_key() {
        let inv: Invoice = serde_json::from_value(invoice_json()).unwrap();
        let mut details = inv.details.clone();
        let mut items = details.line_items().unwrap().unwrap();
        items[0].quantity = Decimal::from(11);
        details.set_typed(details_path::LINE_ITEMS, &items).unwrap();
        let after = serde_json::to_value(&details).unwrap();
        let before = serde_json::to_value(&inv.details).unwrap();
        assert_eq!(after["details"]["lineItems"][0]["quantity"], json!("11"));
        assert_eq!(
            after["details"]["noteFromAccounting"],
            before["details"]["noteFromAccounting"]
        );
        assert_eq!(after["addedByAnotherApp"], before["addedByAnotherApp"]);
        assert_eq!(after["header"], before["header"]);
        assert_eq!(after["details"]["lineItems"][0]["customFields"], json!({}));
    }

    #[test]
    fn details_round_trip_unchanged() {
        let inv: Invoice = serde_json::from_value(invoice_json()).unwrap();
        assert_eq!(
            serde_json::to_value(&inv.details).unwrap(),
            invoice_json()["details"]
        );
    }

    #[test]
    fn create_sends_numeric_balances_and_omits_unset_fields() {
        let mut inv = NewInvoice::new(
            "INV-1",
            "12",
            Amount::new("USD", "100.10".parse().unwrap()),
            Amount::new("USD", "40.00".parse().unwrap()),
        );
        inv.source = Some(InvoiceSource::External);
        let json = serde_json::to_string(&inv).unwrap();
        assert_eq!(
            json,
            r#"{"invoiceNumber":"INV-1","originalBalance":{"code":"USD","value":100.10},"openBalance":{"code":"USD","value":40.00},"customerId":"12","source":1}"#
        );
    }

    #[test]
    fn update_sends_only_what_is_set_with_string_balances() {
        let upd = InvoiceUpdate {
            open_balance: Some(Amount::new("USD", "12.0000".parse().unwrap())),
            external_pdf_url: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&upd).unwrap(),
            json!({"openBalance": {"code": "USD", "value": "12.0000"}, "externalPdfUrl": ""})
        );
    }
}
