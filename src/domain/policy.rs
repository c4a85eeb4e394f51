//! What a source's settings decide about its records, as the domain reads them: the sanity
//! limits, the mapping to B2B fields, which fields the daemon owns and what a deleted invoice
//! does. The config layer reads them from the file (`config::schema`); they live here so the
//! pure layer needs nothing above it.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

/// `[sources.<name>.limits]`: sanity limits on what the ERP sends. A record beyond them is
/// refused with the field named (`domain::limits`), like any invalid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordLimits {
    /// Largest absolute value of any amount (total, open balance, subtotal, tax, discount,
    /// freight, unit prices, line totals), in the invoice's currency (default 10^12: above any
    /// real invoice even in currencies of small value, far below a data error like 10^15).
    pub max_amount: Decimal,
    /// Largest absolute line quantity (default 10^9).
    pub max_quantity: Decimal,
    /// Most digits after the point in an amount or quantity; trailing zeros do not count
    /// (default 6: unit prices of small parts, not floating-point artefacts like
    /// 0.30000000000000004).
    pub max_decimal_places: u32,
    /// Lines may have a negative quantity: returns and credit lines (default true).
    pub negative_quantities: bool,
    /// Invoices may have a negative total: credit memos (default true).
    pub negative_totals: bool,
    /// A line's total and its quantity x unit price may not have opposite signs (a quantity of
    /// -5 with a positive line total is a data error; default true).
    pub line_signs_agree: bool,
}

impl Default for RecordLimits {
    fn default() -> Self {
        Self {
            max_amount: Decimal::from(1_000_000_000_000_i64),
            max_quantity: Decimal::from(1_000_000_000_i64),
            max_decimal_places: 6,
            negative_quantities: true,
            negative_totals: true,
            line_signs_agree: true,
        }
    }
}

/// A canonical `SourceInvoice` field that can feed a B2B text field (`[sources.x.mapping.fields]`
/// and `.extra_fields` values): `po_number`, `order_number`, `terms`, `memo`, `pdf_url`, `type`,
/// `invoice_number`, `external_id`, `external_customer_id`, `source`, or `extra.<key>` for one of
/// the ERP's extra fields.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SourceField {
    PoNumber,
    OrderNumber,
    Terms,
    Memo,
    PdfUrl,
    Type,
    InvoiceNumber,
    ExternalId,
    ExternalCustomerId,
    SourceName,
    Extra(String),
}

impl SourceField {
    /// Parses the config spelling; `None` for an unknown name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.trim() {
            "po_number" => Self::PoNumber,
            "order_number" => Self::OrderNumber,
            "terms" => Self::Terms,
            "memo" => Self::Memo,
            "pdf_url" => Self::PdfUrl,
            "type" => Self::Type,
            "invoice_number" => Self::InvoiceNumber,
            "external_id" => Self::ExternalId,
            "external_customer_id" => Self::ExternalCustomerId,
            "source" => Self::SourceName,
            other => {
                let key = other.strip_prefix("extra.")?;
                if key.is_empty() {
                    return None;
                }
                Self::Extra(key.to_owned())
            }
        })
    }
}

/// B2B fields the daemon can own: it writes them on create and, when owned, on update too.
/// Only fields `PUT /invoices/{id}` accepts can be owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OwnedField {
    InvoiceNumber,
    Customer,
    Type,
    DueDate,
    OriginalBalance,
    OpenBalance,
    Status,
    PurchaseOrderNumber,
    ExternalPdfUrl,
    ExtraFields,
    CostLines,
    BillingAddress,
    ShippingAddresses,
    LineItems,
}

impl OwnedField {
    pub const ALL: [OwnedField; 14] = [
        Self::InvoiceNumber,
        Self::Customer,
        Self::Type,
        Self::DueDate,
        Self::OriginalBalance,
        Self::OpenBalance,
        Self::Status,
        Self::PurchaseOrderNumber,
        Self::ExternalPdfUrl,
        Self::ExtraFields,
        Self::CostLines,
        Self::BillingAddress,
        Self::ShippingAddresses,
        Self::LineItems,
    ];

    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::InvoiceNumber => "invoice_number",
            Self::Customer => "customer",
            Self::Type => "type",
            Self::DueDate => "due_date",
            Self::OriginalBalance => "original_balance",
            Self::OpenBalance => "open_balance",
            Self::Status => "status",
            Self::PurchaseOrderNumber => "purchase_order_number",
            Self::ExternalPdfUrl => "external_pdf_url",
            Self::ExtraFields => "extra_fields",
            Self::CostLines => "cost_lines",
            Self::BillingAddress => "billing_address",
            Self::ShippingAddresses => "shipping_addresses",
            Self::LineItems => "line_items",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == text.trim())
    }
}

/// Labels of the cost lines in `details.header.costLines`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostLineLabels {
    pub subtotal: String,
    pub freight: String,
    pub tax: String,
    pub discount: String,
}

impl Default for CostLineLabels {
    fn default() -> Self {
        Self {
            subtotal: "Subtotal".to_owned(),
            freight: "Freight".to_owned(),
            tax: "Sales Tax".to_owned(),
            discount: "Discount".to_owned(),
        }
    }
}

/// `[sources.<name>.mapping]`: how a `SourceInvoice` becomes the B2B invoice.
#[derive(Debug, Clone)]
pub struct MappingSettings {
    /// Calendar dates (issue, due) become Unix seconds at midnight in this zone (default UTC).
    pub timezone: chrono_tz::Tz,
    /// B2B `type` when the ERP gives none (default "Invoice").
    pub default_type: String,
    /// BigCommerce channel of new invoices (create only; default none: B2B's default).
    pub channel_id: Option<u64>,
    pub cost_line_labels: CostLineLabels,
    /// B2B text fields and the ERP field that feeds each; `None` leaves the B2B field unset.
    /// Defaults: purchase_order_number <- po_number, order_number <- order_number,
    /// terms_conditions <- terms, external_pdf_url <- pdf_url, type <- type.
    pub purchase_order_number: Option<SourceField>,
    pub order_number: Option<SourceField>,
    pub terms_conditions: Option<SourceField>,
    pub external_pdf_url: Option<SourceField>,
    pub invoice_type: Option<SourceField>,
    /// B2B invoice extra field name -> the ERP field that feeds it (default none).
    pub extra_fields: BTreeMap<String, SourceField>,
    /// Fields the daemon owns on update (default: all of [`OwnedField::ALL`]).
    pub owned: Vec<OwnedField>,
}

impl Default for MappingSettings {
    fn default() -> Self {
        Self {
            timezone: chrono_tz::UTC,
            default_type: "Invoice".to_owned(),
            channel_id: None,
            cost_line_labels: CostLineLabels::default(),
            purchase_order_number: Some(SourceField::PoNumber),
            order_number: Some(SourceField::OrderNumber),
            terms_conditions: Some(SourceField::Terms),
            external_pdf_url: Some(SourceField::PdfUrl),
            invoice_type: Some(SourceField::Type),
            extra_fields: BTreeMap::new(),
            owned: OwnedField::ALL.to_vec(),
        }
    }
}

/// What a deleted or voided ERP invoice does in B2B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeletedPolicy {
    /// Delete it in B2B, unless a payment was made there (then flag it for a person).
    #[default]
    Delete,
    /// Keep it and set its open balance to zero.
    ZeroBalance,
    /// Leave B2B alone.
    Ignore,
}
