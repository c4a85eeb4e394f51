//! Payments as `GET /payments` and `GET /payments/{paymentId}` return them, and the filters of
//! the list (`specs/api-v3/invoice-management.yaml`, section Payments).
//!
//! Buyers pay invoices in B2B Edition; the daemon only reads payments, to carry them back to the
//! ERP. Read leniently like invoices: what is not modelled lands in `other`.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::model::{Amount, InvoiceId};
use super::query::{list_pairs, SortOrder, MAX_PAGE_SIZE};
use super::wire;

/// The B2B Edition id of a payment.
pub type PaymentId = u64;

/// A payment: one amount paid by a company, spread over its invoices by `line_items`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    #[serde(deserialize_with = "wire::id")]
    pub id: PaymentId,
    /// Unix seconds.
    #[serde(deserialize_with = "unix_seconds")]
    pub created_at: i64,
    /// Unix seconds; moves when the status changes (a refund, for one).
    #[serde(deserialize_with = "unix_seconds")]
    pub updated_at: i64,
    /// 0 Incomplete, 1 Awaiting Processing, 2 Processing, 3 Completed, 4 Refunded (see the
    /// associated constants); an unknown code is kept as sent.
    #[serde(deserialize_with = "status_code")]
    pub processing_status: u8,
    pub total: Amount,
    #[serde(default, deserialize_with = "wire::null_as_empty")]
    pub line_items: Vec<PaymentLine>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub store_hash: Option<String>,
    /// The paying company's B2B id.
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub customer_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub external_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub external_customer_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub payer_name: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub payer_customer_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub customer_name: Option<String>,
    /// `{"memo": ...}` as sent.
    #[serde(default)]
    pub details: Value,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub module_name: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    pub applied_status: Option<i64>,
    #[serde(default, deserialize_with = "wire::opt_i64")]
    pub funding_status: Option<i64>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub channel_id: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_string")]
    pub channel_name: Option<String>,
    /// Keys this client does not model (`fees`, `moduleData`, `allowedStatuses`, ...), as sent.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Payment {
    pub const INCOMPLETE: u8 = 0;
    pub const AWAITING_PROCESSING: u8 = 1;
    pub const PROCESSING: u8 = 2;
    pub const COMPLETED: u8 = 3;
    pub const REFUNDED: u8 = 4;

    pub fn is_completed(&self) -> bool {
        self.processing_status == Self::COMPLETED
    }

    pub fn is_refunded(&self) -> bool {
        self.processing_status == Self::REFUNDED
    }
}

/// The part of a payment that went to one invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentLine {
    /// The payment's own id again; 0 when the API leaves it out.
    #[serde(default, deserialize_with = "id_or_zero")]
    pub payment_id: PaymentId,
    #[serde(deserialize_with = "wire::id")]
    pub invoice_id: InvoiceId,
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub invoice_number: String,
    pub amount: Amount,
}

fn unix_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    wire::opt_unix_time(d)?
        .map(|t| t.timestamp())
        .ok_or_else(|| serde::de::Error::custom("timestamp is missing"))
}

fn id_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let id = wire::opt_i64(d)?.unwrap_or(0);
    u64::try_from(id).map_err(|_| serde::de::Error::custom(format!("id {id} is negative")))
}

fn status_code<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let code =
        wire::opt_i64(d)?.ok_or_else(|| serde::de::Error::custom("processingStatus is missing"))?;
    u8::try_from(code)
        .map_err(|_| serde::de::Error::custom(format!("processingStatus {code} is out of range")))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentSortField {
    ModuleName,
    ProcessingStatus,
    AppliedStatus,
    CreatedAt,
    CustomerId,
    ExternalCustomerId,
    FundingStatus,
    UpdatedAt,
    TotalAmount,
}

impl PaymentSortField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ModuleName => "moduleName",
            Self::ProcessingStatus => "processingStatus",
            Self::AppliedStatus => "appliedStatus",
            Self::CreatedAt => "createdAt",
            Self::CustomerId => "customerId",
            Self::ExternalCustomerId => "externalCustomerId",
            Self::FundingStatus => "fundingStatus",
            Self::UpdatedAt => "updatedAt",
            Self::TotalAmount => "totalAmount",
        }
    }
}

/// The fields `searchBy` + `q` can search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentSearchField {
    Id,
    CustomerId,
    ExternalId,
    ExternalCustomerId,
}

impl PaymentSearchField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::CustomerId => "customerId",
            Self::ExternalId => "externalId",
            Self::ExternalCustomerId => "externalCustomerId",
        }
    }
}

/// What `GET /payments` lists. The default lists every payment, 250 a page, in the API's
/// default order (newest created first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentQuery {
    pub sort_by: Option<PaymentSortField>,
    pub order: Option<SortOrder>,
    /// `searchBy`; with `q` only, every searchable field is searched.
    pub search_by: Option<PaymentSearchField>,
    pub q: Option<String>,
    pub customer_name: Option<String>,
    /// Payments with a line on this invoice.
    pub invoice_id: Option<InvoiceId>,
    /// One of the `Payment::*` status codes.
    pub processing_status: Option<u8>,
    pub channel_ids: Vec<u64>,
    /// Payments per page, 1 to 250.
    pub page_size: u32,
}

impl Default for PaymentQuery {
    fn default() -> Self {
        Self {
            sort_by: None,
            order: None,
            search_by: None,
            q: None,
            customer_name: None,
            invoice_id: None,
            processing_status: None,
            channel_ids: Vec::new(),
            page_size: MAX_PAGE_SIZE,
        }
    }
}

impl PaymentQuery {
    /// Most recently changed first: the order to read new payments and refunds in, down to a
    /// watermark (the API has no updated-since filter).
    pub fn newest_updated_first(page_size: u32) -> Self {
        Self::default()
            .with_sort(PaymentSortField::UpdatedAt, SortOrder::Desc)
            .with_page_size(page_size)
    }

    pub fn with_sort(mut self, field: PaymentSortField, order: SortOrder) -> Self {
        self.sort_by = Some(field);
        self.order = Some(order);
        self
    }

    pub fn with_invoice_id(mut self, invoice_id: InvoiceId) -> Self {
        self.invoice_id = Some(invoice_id);
        self
    }

    pub fn with_processing_status(mut self, status: u8) -> Self {
        self.processing_status = Some(status);
        self
    }

    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size;
        self
    }

    pub fn page_size(&self) -> u32 {
        self.page_size.clamp(1, MAX_PAGE_SIZE)
    }

    /// Query-string pairs for one page.
    pub fn to_pairs(&self, offset: u64) -> Vec<(&'static str, String)> {
        let mut pairs = list_pairs(
            offset,
            self.page_size(),
            self.sort_by.map(|s| s.as_str()),
            self.order,
            self.search_by.map(|s| s.as_str()),
        );
        for (key, value) in [("q", &self.q), ("customerName", &self.customer_name)] {
            if let Some(value) = value {
                pairs.push((key, value.clone()));
            }
        }
        if let Some(id) = self.invoice_id {
            pairs.push(("invoiceId", id.to_string()));
        }
        if let Some(status) = self.processing_status {
            pairs.push(("processingStatus", status.to_string()));
        }
        pairs.extend(
            self.channel_ids
                .iter()
                .map(|id| ("channelIds", id.to_string())),
        );
        pairs
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;
    use serde_json::json;

    use super::*;

    /// The second example of the spec's `GET /payments`, which pays two invoices.
    fn documented() -> Value {
        json!({
            "id": 66, "createdAt": 1618590401, "updatedAt": 1618797215,
            "storeHash": "jexy81vb0h", "customerId": "3", "externalId": null,
            "externalCustomerId": null, "payerName": "Store offline payment",
            "payerCustomerId": "3", "details": {"memo": "Check#:12345"},
            "moduleName": "payments_offline", "fees": [],
            "moduleData": {"transactions": [{"memo": "k", "type": "OfflineTransaction", "rawTransaction": null}]},
            "processingStatus": 2, "appliedStatus": 1, "fundingStatus": 2,
            "total": {"code": "USD", "value": "30.0000"},
            "lineItems": [
                {"paymentId": 66, "invoiceId": 30, "invoiceNumber": "00000141",
                 "amount": {"code": "USD", "value": "10.0000"}},
                {"paymentId": 66, "invoiceId": 28, "invoiceNumber": "00000141",
                 "amount": {"code": "USD", "value": "20.0000"}}
            ],
            "customerName": "ABC123", "allowedOperations": [], "allowedStatuses": [1, 2, 3, 4]
        })
    }

    #[test]
    fn reads_the_documented_example() {
        let payment: Payment = serde_json::from_value(documented()).unwrap();
        assert_eq!(payment.id, 66);
        assert_eq!(
            (payment.created_at, payment.updated_at),
            (1618590401, 1618797215)
        );
        assert_eq!(payment.processing_status, Payment::PROCESSING);
        assert!(!payment.is_completed() && !payment.is_refunded());
        assert_eq!(payment.total, Amount::new("USD", Decimal::new(30, 0)));
        assert_eq!(payment.line_items.len(), 2);
        assert_eq!(payment.line_items[1].invoice_id, 28);
        assert_eq!(payment.line_items[1].amount.value, Decimal::new(20, 0));
        assert_eq!(payment.customer_id.as_deref(), Some("3"));
        assert_eq!(payment.external_customer_id, None);
        assert_eq!(payment.details["memo"], "Check#:12345");
        assert_eq!(payment.other["allowedStatuses"], json!([1, 2, 3, 4]));
        assert!(payment.channel_id.is_none());
    }

    #[test]
    fn tolerates_loose_types_and_missing_optional_fields() {
        let payment: Payment = serde_json::from_value(json!({
            "id": "7", "createdAt": "1618590401", "updatedAt": 1618590402.0,
            "processingStatus": "4", "total": {"code": "EUR", "value": 6},
            "lineItems": [{"paymentId": null, "invoiceId": 9, "invoiceNumber": 123, "amount": {"code": "EUR", "value": "6"}}],
            "channelId": 1, "somethingNew": true
        }))
        .unwrap();
        assert!(payment.is_refunded());
        assert_eq!(payment.updated_at, 1618590402);
        assert_eq!(payment.line_items[0].payment_id, 0);
        assert_eq!(payment.line_items[0].invoice_number, "123");
        assert_eq!(payment.channel_id.as_deref(), Some("1"));
        assert_eq!(payment.other["somethingNew"], true);
        let no_lines: Payment = serde_json::from_value(json!({
            "id": 8, "createdAt": 1, "updatedAt": 2, "processingStatus": 3,
            "total": {"code": "USD", "value": "0"}, "lineItems": null
        }))
        .unwrap();
        assert!(no_lines.line_items.is_empty());
    }

    #[test]
    fn refuses_what_it_cannot_place_in_time_or_status() {
        let mut missing = documented();
        missing.as_object_mut().unwrap().remove("updatedAt");
        assert!(serde_json::from_value::<Payment>(missing).is_err());
        let mut negative = documented();
        negative["processingStatus"] = json!(-1);
        assert!(serde_json::from_value::<Payment>(negative).is_err());
    }

    #[test]
    fn query_pairs() {
        assert_eq!(
            PaymentQuery::default().to_pairs(0),
            vec![("offset", "0".to_owned()), ("limit", "250".to_owned())]
        );
        let query = PaymentQuery::newest_updated_first(1000)
            .with_invoice_id(41)
            .with_processing_status(Payment::COMPLETED);
        assert_eq!(
            query.to_pairs(250),
            vec![
                ("offset", "250".to_owned()),
                ("limit", "250".to_owned()),
                ("sortBy", "updatedAt".to_owned()),
                ("orderBy", "DESC".to_owned()),
                ("invoiceId", "41".to_owned()),
                ("processingStatus", "3".to_owned()),
            ]
        );
        let query = PaymentQuery {
            search_by: Some(PaymentSearchField::CustomerId),
            q: Some("95".into()),
            channel_ids: vec![1, 2],
            ..PaymentQuery::default().with_page_size(0)
        };
        let pairs = query.to_pairs(0);
        assert!(pairs.contains(&("limit", "1".to_owned())));
        assert!(pairs.contains(&("searchBy", "customerId".to_owned())));
        assert!(pairs.contains(&("q", "95".to_owned())));
        assert_eq!(pairs.iter().filter(|(k, _)| *k == "channelIds").count(), 2);
    }
}
