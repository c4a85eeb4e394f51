//! `SourceInvoice` + mapping config -> `DesiredInvoice`: what B2B Edition should hold.
//!
//! Pure: the customer's B2B company id is resolved beforehand (it needs I/O) and passed in.
//! Amounts pass through exactly (no rounding, no `f64`), so the B2B invoice shows to the cent,
//! in every currency, what the ERP says.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::document::{
    details_path, Address, Amount, CostLine, InvoiceDetails, InvoiceStatus, LineItem,
};
use super::invoice::{PostalAddress, SourceInvoice, SourceLineItem};
use super::money::Currency;
use crate::domain::policy::{MappingSettings, OwnedField, SourceField};

/// The B2B invoice the ERP's invoice should become.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredInvoice {
    pub source: String,
    pub external_id: String,
    pub external_customer_id: String,
    /// The B2B Edition company id.
    pub customer_id: String,
    pub invoice_number: String,
    pub kind: String,
    pub issued_at: Option<DateTime<Utc>>,
    pub due_date: Option<DateTime<Utc>>,
    pub currency: Currency,
    pub original_balance: Decimal,
    pub open_balance: Decimal,
    pub status: InvoiceStatus,
    pub purchase_order_number: Option<String>,
    pub order_number: Option<String>,
    pub channel_id: Option<u64>,
    pub terms_conditions: Option<String>,
    pub external_pdf_url: Option<String>,
    pub extra_fields: BTreeMap<String, String>,
    pub cost_lines: Vec<CostLine>,
    pub billing_address: Option<Address>,
    pub shipping_addresses: Vec<Address>,
    pub line_items: Vec<LineItem>,
    /// What the daemon writes on update (and what the fingerprint covers).
    pub owned: BTreeSet<OwnedField>,
}

/// The status B2B should show for these balances: 2 paid, 1 partially paid, 0 open.
pub fn status_for(original: Decimal, open: Decimal) -> InvoiceStatus {
    if open <= Decimal::ZERO {
        InvoiceStatus::Completed
    } else if open < original {
        InvoiceStatus::PartiallyPaid
    } else {
        InvoiceStatus::Open
    }
}

/// Maps `invoice` for the B2B company `customer_id`.
pub fn map_invoice(
    invoice: &SourceInvoice,
    customer_id: &str,
    settings: &MappingSettings,
) -> DesiredInvoice {
    let text = |field: &Option<SourceField>| field.as_ref().and_then(|f| source_text(invoice, f));
    let extra_fields = settings
        .extra_fields
        .iter()
        .filter_map(|(b2b_name, field)| Some((b2b_name.clone(), source_text(invoice, field)?)))
        .collect();
    DesiredInvoice {
        source: invoice.source.clone(),
        external_id: invoice.external_id.clone(),
        external_customer_id: invoice.external_customer_id.clone(),
        customer_id: customer_id.to_owned(),
        invoice_number: invoice.invoice_number.clone(),
        kind: text(&settings.invoice_type).unwrap_or_else(|| settings.default_type.clone()),
        issued_at: invoice.issue_date.map(|d| midnight(d, settings.timezone)),
        due_date: invoice.due_date.map(|d| midnight(d, settings.timezone)),
        currency: invoice.currency,
        original_balance: invoice.total,
        open_balance: invoice.open_balance,
        status: status_for(invoice.total, invoice.open_balance),
        purchase_order_number: text(&settings.purchase_order_number),
        order_number: text(&settings.order_number),
        channel_id: settings.channel_id,
        terms_conditions: text(&settings.terms_conditions),
        external_pdf_url: text(&settings.external_pdf_url),
        extra_fields,
        cost_lines: cost_lines(invoice, settings),
        billing_address: invoice.billing_address.as_ref().map(address),
        shipping_addresses: invoice.shipping_addresses.iter().map(address).collect(),
        line_items: invoice
            .line_items
            .iter()
            .map(|l| line_item(l, invoice.currency))
            .collect(),
        owned: settings.owned.iter().copied().collect(),
    }
}

/// The text an ERP field holds for this invoice, if any.
pub fn source_text(invoice: &SourceInvoice, field: &SourceField) -> Option<String> {
    match field {
        SourceField::PoNumber => invoice.po_number.clone(),
        SourceField::OrderNumber => invoice.order_number.clone(),
        SourceField::Terms => invoice.terms.clone(),
        SourceField::Memo => invoice.memo.clone(),
        SourceField::PdfUrl => invoice.pdf_url.as_ref().map(|u| u.to_string()),
        SourceField::Type => invoice.kind.clone(),
        SourceField::InvoiceNumber => Some(invoice.invoice_number.clone()),
        SourceField::ExternalId => Some(invoice.external_id.clone()),
        SourceField::ExternalCustomerId => Some(invoice.external_customer_id.clone()),
        SourceField::SourceName => Some(invoice.source.clone()),
        SourceField::Extra(key) => invoice.extra_fields.get(key).cloned(),
    }
    .filter(|t| !t.is_empty())
}

/// A calendar date as the instant it begins in `tz` (DST gaps take the earliest valid instant).
fn midnight(date: NaiveDate, tz: chrono_tz::Tz) -> DateTime<Utc> {
    let naive = date.and_time(chrono::NaiveTime::MIN);
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        // Only a zone whose midnight never happens on that day gets here; a UTC midnight is
        // then the closest honest answer.
        .unwrap_or_else(|| Utc.from_utc_datetime(&naive))
}

/// Subtotal, freight, tax and discount as B2B cost lines. The discount is written negative so
/// that the cost lines add up to the invoice total, as they do on a printed invoice.
fn cost_lines(invoice: &SourceInvoice, settings: &MappingSettings) -> Vec<CostLine> {
    let labels = &settings.cost_line_labels;
    // Without an ERP subtotal, the line totals are the subtotal (when there are lines).
    // `parse` guarantees the sum fits; `checked_add` keeps this from ever panicking anyway.
    let subtotal = invoice.subtotal.or_else(|| {
        (!invoice.line_items.is_empty()).then(|| {
            invoice
                .line_items
                .iter()
                .try_fold(Decimal::ZERO, |sum, l| sum.checked_add(l.line_total))
        })?
    });
    [
        (&labels.subtotal, subtotal),
        (&labels.freight, invoice.freight),
        (&labels.tax, invoice.tax),
        (&labels.discount, invoice.discount.map(|d| -d)),
    ]
    .into_iter()
    .filter_map(|(label, amount)| {
        Some(CostLine {
            amount: Amount::new(invoice.currency.code(), amount?),
            description: label.clone(),
            other: Map::new(),
        })
    })
    .collect()
}

fn address(a: &PostalAddress) -> Address {
    let mut other = Map::new();
    // B2B addresses have no company line; keep it rather than lose it.
    if !a.company.is_empty() {
        other.insert("company".to_owned(), Value::String(a.company.clone()));
    }
    Address {
        first_name: a.first_name.clone(),
        last_name: a.last_name.clone(),
        street1: a.street1.clone(),
        street2: a.street2.clone(),
        city: a.city.clone(),
        state: a.state.clone(),
        zip_code: a.zip.clone(),
        country: a.country.clone(),
        other,
    }
}

/// B2B line items have a unit price and a unit discount but no line total: a line total below
/// quantity x unit price becomes a unit discount. When that discount cannot be written exactly
/// (a total not divisible by the quantity) it is rounded to 6 decimals and the exact ERP line total
/// is kept in `erpLineTotal` so nothing is lost.
fn line_item(line: &SourceLineItem, currency: Currency) -> LineItem {
    let mut other = Map::new();
    let unit_discount = unit_discount(line).unwrap_or_else(|| {
        other.insert(
            "erpLineTotal".to_owned(),
            Value::String(line.line_total.to_string()),
        );
        line.quantity
            .checked_mul(line.unit_price)
            .and_then(|gross| gross.checked_sub(line.line_total))
            .and_then(|d| d.checked_div(line.quantity))
            .map_or(Decimal::ZERO, |d| d.round_dp(6))
    });
    LineItem {
        sku: line.sku.clone().unwrap_or_default(),
        kind: "product".to_owned(),
        description: line.description.clone(),
        comments: String::new(),
        quantity: line.quantity,
        unit_price: Amount::new(currency.code(), line.unit_price),
        unit_discount: Some(Amount::new(currency.code(), unit_discount)),
        other,
    }
}

/// The exact per-unit discount that turns quantity x unit price into the line total, or `None`
/// when no exact one exists (a total not divisible by the quantity, a zero quantity with a
/// total, or out-of-range arithmetic).
fn unit_discount(line: &SourceLineItem) -> Option<Decimal> {
    let gross = line.quantity.checked_mul(line.unit_price)?;
    let off = gross.checked_sub(line.line_total)?;
    if off.is_zero() {
        return Some(Decimal::ZERO);
    }
    let exact = off.checked_div(line.quantity)?;
    (exact.checked_mul(line.quantity)? == off).then(|| exact.normalize())
}

/// The create and update requests for B2B Edition are built from a desired invoice one layer up,
/// in `b2b::requests` (`to_new_invoice`, `to_update`); what stays here is the rule both keep:
/// write the owned parts of `details` and leave every other key as it is.
impl DesiredInvoice {
    /// Replaces the owned parts of `details`, leaving every other key as it is.
    pub fn write_details(&self, details: &mut InvoiceDetails, owned: &BTreeSet<OwnedField>) {
        let set = |details: &mut InvoiceDetails, path: &[&str], value: Value| {
            details.set_path(path, value);
        };
        let json = |v: &dyn erased::Json| v.to_json();
        if owned.contains(&OwnedField::CostLines) {
            set(details, details_path::COST_LINES, json(&self.cost_lines));
        }
        if owned.contains(&OwnedField::BillingAddress) {
            match &self.billing_address {
                Some(a) => set(details, details_path::BILLING_ADDRESS, json(a)),
                None => details.remove_path(details_path::BILLING_ADDRESS),
            }
        }
        if owned.contains(&OwnedField::ShippingAddresses) {
            if self.shipping_addresses.is_empty() {
                details.remove_path(details_path::SHIPPING_ADDRESSES);
            } else {
                set(
                    details,
                    details_path::SHIPPING_ADDRESSES,
                    json(&self.shipping_addresses),
                );
            }
        }
        if owned.contains(&OwnedField::LineItems) {
            set(details, details_path::LINE_ITEMS, json(&self.line_items));
        }
    }
}

/// Serialising the model types cannot fail (no maps with non-string keys, no failing
/// serializers), so a failure is mapped to `null` rather than threaded through every caller.
mod erased {
    pub trait Json {
        fn to_json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;
