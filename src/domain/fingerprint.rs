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

use super::document::{Address, Amount, CostLine, LineItem};
use super::mapping::DesiredInvoice;
use crate::domain::policy::OwnedField;

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
    // The canonical document's exact bytes, serialised straight into the hash: building it as
    // `Value`s first cost most of a steady-state cycle's CPU (see BENCHMARKS.md).
    let mut hash = HashWriter(Sha256::new());
    let mut fields: Vec<OwnedField> = d.owned.iter().copied().collect();
    fields.sort_by_key(|f| f.name());
    hash.put(b"{");
    for (i, f) in fields.into_iter().enumerate() {
        if i > 0 {
            hash.put(b",");
        }
        write(&mut hash, &f.name());
        hash.put(b":");
        write_field(&mut hash, d, f);
    }
    hash.put(b"}");
    Fingerprint(format!("{VERSION}:{}", hex::encode(hash.0.finalize())))
}

/// `io::Write` into a running SHA-256.
struct HashWriter(Sha256);

impl HashWriter {
    fn put(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn write(out: &mut HashWriter, value: &impl serde::Serialize) {
    // Writing into a hash cannot fail, and these types always serialise.
    let _ = serde_json::to_writer(out, value);
}

/// A decimal as the canonical form writes it: a normalised string.
struct Dec(Decimal);

impl serde::Serialize for Dec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0.normalize())
    }
}

/// `[CODE, "value"]`.
struct Money<'a>(&'a str, Decimal);

impl serde::Serialize for Money<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(self.0)?;
        t.serialize_element(&Dec(self.1))?;
        t.end()
    }
}

fn money_of(a: &Amount) -> (String, Dec) {
    (a.code.to_ascii_uppercase(), Dec(a.value))
}

fn sorted(other: &serde_json::Map<String, Value>) -> BTreeMap<&String, &Value> {
    other.iter().collect()
}

type AddressParts<'a> = (
    &'a String,
    &'a String,
    &'a String,
    &'a String,
    &'a String,
    &'a String,
    &'a String,
    &'a String,
    BTreeMap<&'a String, &'a Value>,
);

fn address_parts(a: &Address) -> AddressParts<'_> {
    (
        &a.first_name,
        &a.last_name,
        &a.street1,
        &a.street2,
        &a.city,
        &a.state,
        &a.zip_code,
        &a.country,
        sorted(&a.other),
    )
}

/// [`field`]'s value, serialised without building it.
fn write_field(out: &mut HashWriter, d: &DesiredInvoice, f: OwnedField) {
    match f {
        OwnedField::InvoiceNumber => write(out, &d.invoice_number),
        OwnedField::Customer => write(out, &(&d.customer_id, &d.external_customer_id)),
        OwnedField::Type => write(out, &d.kind),
        OwnedField::DueDate => write(out, &d.due_date.map(|t| t.timestamp())),
        OwnedField::OriginalBalance => write(out, &Money(d.currency.code(), d.original_balance)),
        OwnedField::OpenBalance => write(out, &Money(d.currency.code(), d.open_balance)),
        OwnedField::Status => write(out, &d.status.code()),
        OwnedField::PurchaseOrderNumber => write(out, &d.purchase_order_number),
        OwnedField::ExternalPdfUrl => write(out, &d.external_pdf_url),
        OwnedField::ExtraFields => write(out, &d.extra_fields),
        OwnedField::CostLines => {
            let lines: Vec<_> = d
                .cost_lines
                .iter()
                .map(|c| (&c.description, money_of(&c.amount)))
                .collect();
            write(out, &lines);
        }
        OwnedField::BillingAddress => write(out, &d.billing_address.as_ref().map(address_parts)),
        OwnedField::ShippingAddresses => {
            let all: Vec<_> = d.shipping_addresses.iter().map(address_parts).collect();
            write(out, &all);
        }
        OwnedField::LineItems => {
            let lines: Vec<_> = d
                .line_items
                .iter()
                .map(|l| {
                    (
                        &l.sku,
                        &l.kind,
                        &l.description,
                        &l.comments,
                        Dec(l.quantity),
                        money_of(&l.unit_price),
                        l.unit_discount.as_ref().map(money_of),
                        sorted(&l.other),
                    )
                })
                .collect();
            write(out, &lines);
        }
    }
}

/// The fingerprint as first written: the canonical document built as `Value`s, then hashed.
/// The streaming [`fingerprint`] must give the same bytes (tests compare the two).
#[cfg(test)]
pub(crate) fn fingerprint_of_document(d: &DesiredInvoice) -> Fingerprint {
    let doc = canonical(d);
    let bytes = serde_json::to_vec(&doc).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    Fingerprint(format!("{VERSION}:{}", hex::encode(digest)))
}
