//! The CSV columns: invoice-level fields, line-item parts, address parts and `extra.<key>`.

use crate::domain::{RawAddress, RawInvoice, RawLineItem};

/// Invoice-level columns: the `RawInvoice` field of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    ExternalId,
    ExternalCustomerId,
    InvoiceNumber,
    Type,
    IssueDate,
    DueDate,
    Currency,
    Total,
    OpenBalance,
    Subtotal,
    Tax,
    Discount,
    Freight,
    PoNumber,
    OrderNumber,
    Terms,
    Memo,
    PdfUrl,
    UpdatedAt,
    Voided,
    Deleted,
}

impl Field {
    pub(super) const ALL: [Field; 21] = [
        Self::ExternalId,
        Self::ExternalCustomerId,
        Self::InvoiceNumber,
        Self::Type,
        Self::IssueDate,
        Self::DueDate,
        Self::Currency,
        Self::Total,
        Self::OpenBalance,
        Self::Subtotal,
        Self::Tax,
        Self::Discount,
        Self::Freight,
        Self::PoNumber,
        Self::OrderNumber,
        Self::Terms,
        Self::Memo,
        Self::PdfUrl,
        Self::UpdatedAt,
        Self::Voided,
        Self::Deleted,
    ];

    /// Without them every row would be refused: a missing one refuses the file instead.
    pub(super) const REQUIRED: [Field; 6] = [
        Self::ExternalId,
        Self::ExternalCustomerId,
        Self::InvoiceNumber,
        Self::Currency,
        Self::Total,
        Self::OpenBalance,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::ExternalId => "external_id",
            Self::ExternalCustomerId => "external_customer_id",
            Self::InvoiceNumber => "invoice_number",
            Self::Type => "type",
            Self::IssueDate => "issue_date",
            Self::DueDate => "due_date",
            Self::Currency => "currency",
            Self::Total => "total",
            Self::OpenBalance => "open_balance",
            Self::Subtotal => "subtotal",
            Self::Tax => "tax",
            Self::Discount => "discount",
            Self::Freight => "freight",
            Self::PoNumber => "po_number",
            Self::OrderNumber => "order_number",
            Self::Terms => "terms",
            Self::Memo => "memo",
            Self::PdfUrl => "pdf_url",
            Self::UpdatedAt => "updated_at",
            Self::Voided => "voided",
            Self::Deleted => "deleted",
        }
    }

    pub(super) fn set(self, raw: &mut RawInvoice, value: String) {
        let slot = match self {
            Self::ExternalId => &mut raw.external_id,
            Self::ExternalCustomerId => &mut raw.external_customer_id,
            Self::InvoiceNumber => &mut raw.invoice_number,
            Self::Type => &mut raw.kind,
            Self::IssueDate => &mut raw.issue_date,
            Self::DueDate => &mut raw.due_date,
            Self::Currency => &mut raw.currency,
            Self::Total => &mut raw.total,
            Self::OpenBalance => &mut raw.open_balance,
            Self::Subtotal => &mut raw.subtotal,
            Self::Tax => &mut raw.tax,
            Self::Discount => &mut raw.discount,
            Self::Freight => &mut raw.freight,
            Self::PoNumber => &mut raw.po_number,
            Self::OrderNumber => &mut raw.order_number,
            Self::Terms => &mut raw.terms,
            Self::Memo => &mut raw.memo,
            Self::PdfUrl => &mut raw.pdf_url,
            Self::UpdatedAt => &mut raw.updated_at,
            // Normalised to "true" / "false" when the cell was read.
            Self::Voided => {
                raw.voided = value == "true";
                return;
            }
            Self::Deleted => {
                raw.deleted = value == "true";
                return;
            }
        };
        *slot = Some(value);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LinePart {
    Sku,
    Description,
    Quantity,
    UnitPrice,
    Total,
}

impl LinePart {
    const ALL: [LinePart; 5] = [
        Self::Sku,
        Self::Description,
        Self::Quantity,
        Self::UnitPrice,
        Self::Total,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Sku => "line_sku",
            Self::Description => "line_description",
            Self::Quantity => "line_quantity",
            Self::UnitPrice => "line_unit_price",
            Self::Total => "line_total",
        }
    }

    pub(super) fn set(self, line: &mut RawLineItem, value: String) {
        *match self {
            Self::Sku => &mut line.sku,
            Self::Description => &mut line.description,
            Self::Quantity => &mut line.quantity,
            Self::UnitPrice => &mut line.unit_price,
            Self::Total => &mut line.line_total,
        } = Some(value);
    }
}

/// `billing_<part>` and `shipping_<part>`.
const ADDRESS_PARTS: [&str; 9] = [
    "first_name",
    "last_name",
    "company",
    "street1",
    "street2",
    "city",
    "state",
    "zip",
    "country",
];

pub(super) fn set_address_part(address: &mut RawAddress, part: usize, value: String) {
    let slot = match part {
        0 => &mut address.first_name,
        1 => &mut address.last_name,
        2 => &mut address.company,
        3 => &mut address.street1,
        4 => &mut address.street2,
        5 => &mut address.city,
        6 => &mut address.state,
        7 => &mut address.zip,
        _ => &mut address.country,
    };
    *slot = Some(value);
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Column {
    Invoice(Field),
    Line(LinePart),
    Billing(usize),
    Shipping(usize),
    Extra(Box<str>),
}

impl Column {
    pub(super) fn parse(name: &str) -> Option<Self> {
        if let Some(f) = Field::ALL.into_iter().find(|f| f.name() == name) {
            return Some(Self::Invoice(f));
        }
        if let Some(p) = LinePart::ALL.into_iter().find(|p| p.name() == name) {
            return Some(Self::Line(p));
        }
        let part = |rest: &str| ADDRESS_PARTS.iter().position(|p| *p == rest);
        if let Some(i) = name.strip_prefix("billing_").and_then(part) {
            return Some(Self::Billing(i));
        }
        if let Some(i) = name.strip_prefix("shipping_").and_then(part) {
            return Some(Self::Shipping(i));
        }
        let key = name.strip_prefix("extra.")?.trim();
        (!key.is_empty()).then(|| Self::Extra(key.into()))
    }
}

pub(super) fn column_name(column: &Column) -> String {
    match column {
        Column::Invoice(f) => f.name().to_owned(),
        Column::Line(p) => p.name().to_owned(),
        Column::Billing(i) => format!("billing_{}", ADDRESS_PARTS.get(*i).unwrap_or(&"")),
        Column::Shipping(i) => format!("shipping_{}", ADDRESS_PARTS.get(*i).unwrap_or(&"")),
        Column::Extra(key) => format!("extra.{key}"),
    }
}

/// `true`, `false` (any case), `1`, `0`, normalised to `true` / `false`.
pub(super) fn parse_flag(text: &str) -> Option<String> {
    if text.eq_ignore_ascii_case("true") || text == "1" {
        Some("true".to_owned())
    } else if text.eq_ignore_ascii_case("false") || text == "0" {
        Some("false".to_owned())
    } else {
        None
    }
}
