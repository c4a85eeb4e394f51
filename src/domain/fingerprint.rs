//! A stable hash of exactly the fields the daemon owns, so an unchanged ERP invoice costs no API
//! call and a change B2B makes (a payment, a person's note) never looks like ERP drift.
//!
//! The hash input is a canonical JSON document built from typed values: keys sorted, decimals
//! normalised (`10.0`, `10.00` and `10` hash alike), dates as Unix seconds. It does not depend on
//! the order of maps in the source, nor on how an ERP formats numbers.

use std::collections::BTreeMap;
use std::fmt;

use rust_decimal::Decimal;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::mapping::DesiredInvoice;
use crate::b2b::model::{Address, Amount, CostLine, LineItem};
use crate::config::OwnedField;

/// Bump when the canonical form changes: every invoice then differs once, deliberately.
const VERSION: &str = "v1";

/// `v1:<sha256 hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(String);

impl Fingerprint {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A fingerprint read back from storage.
    pub fn from_stored(text: impl Into<String>) -> Self {
        Self(text.into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn dec(d: Decimal) -> Value {
    Value::String(d.normalize().to_string())
}

fn amount(a: &Amount) -> Value {
    json!([a.code.to_ascii_uppercase(), dec(a.value)])
}

fn address(a: &Address) -> Value {
    let extra: BTreeMap<&String, &Value> = a.other.iter().collect();
    json!([
        a.first_name,
        a.last_name,
        a.street1,
        a.street2,
        a.city,
        a.state,
        a.zip_code,
        a.country,
        extra
    ])
}

fn cost_line(c: &CostLine) -> Value {
    json!([c.description, amount(&c.amount)])
}

fn line_item(l: &LineItem) -> Value {
    let extra: BTreeMap<&String, &Value> = l.other.iter().collect();
    json!([
        l.sku,
        l.kind,
        l.description,
        l.comments,
        dec(l.quantity),
        amount(&l.unit_price),
        l.unit_discount.as_ref().map(amount),
        extra
    ])
}

/// The canonical value of one owned field.
fn field(d: &DesiredInvoice, f: OwnedField) -> Value {
    let money = |v: Decimal| json!([d.currency.code(), dec(v)]);
    match f {
        OwnedField::InvoiceNumber => json!(d.invoice_number),
        OwnedField::Customer => json!([d.customer_id, d.external_customer_id]),
        OwnedField::Type => json!(d.kind),
        OwnedField::DueDate => json!(d.due_date.map(|t| t.timestamp())),
        OwnedField::OriginalBalance => money(d.original_balance),
        OwnedField::OpenBalance => money(d.open_balance),
        OwnedField::Status => json!(d.status.code()),
        OwnedField::PurchaseOrderNumber => json!(d.purchase_order_number),
        OwnedField::ExternalPdfUrl => json!(d.external_pdf_url),
        OwnedField::ExtraFields => json!(d.extra_fields),
        OwnedField::CostLines => Value::Array(d.cost_lines.iter().map(cost_line).collect()),
        OwnedField::BillingAddress => json!(d.billing_address.as_ref().map(address)),
        OwnedField::ShippingAddresses => {
            Value::Array(d.shipping_addresses.iter().map(address).collect())
        }
        OwnedField::LineItems => Value::Array(d.line_items.iter().map(line_item).collect()),
    }
}

/// The canonical document the fingerprint hashes (exposed for `plan` diffs and debugging).
pub fn canonical(d: &DesiredInvoice) -> BTreeMap<&'static str, Value> {
    d.owned.iter().map(|&f| (f.name(), field(d, f))).collect()
}

pub fn fingerprint(d: &DesiredInvoice) -> Fingerprint {
    let doc = canonical(d);
    // A BTreeMap serialises with sorted keys; serde_json's output for it is deterministic.
    let bytes = serde_json::to_vec(&doc).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    Fingerprint(format!("{VERSION}:{}", hex::encode(digest)))
}
