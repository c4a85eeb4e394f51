//! The invoice document as B2B Edition stores it: amounts, the status, `details` kept whole and
//! the parts of it the daemon owns (cost lines, addresses, line items).
//!
//! These are the domain's value types: the desired invoice ([`super::mapping::DesiredInvoice`]) is
//! written in them and its fingerprint hashes them, so they sit at the bottom layer. The B2B
//! client re-exports them (`b2b::model`) because the wire carries them as they are; their serde
//! attributes are the wire format, so they must not change without the API changing.
//!
//! [`wire`] holds the lenient readers and exact writers of this JSON, shared with the B2B wire
//! types that are not part of the document.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub mod wire;

/// An amount as B2B Edition writes it: `{"code": "USD", "value": "349.5000"}`.
///
/// `code` is kept as the API sent it; the domain layer validates currencies (ISO 4217).
/// `value` reads from a number or a decimal string and keeps its precision; it is written as a
/// string (the form of updates and responses) unless a request type says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    #[serde(deserialize_with = "wire::string")]
    pub code: String,
    #[serde(
        deserialize_with = "wire::decimal",
        serialize_with = "wire::decimal_as_string"
    )]
    pub value: Decimal,
}

impl Amount {
    pub fn new(code: impl Into<String>, value: Decimal) -> Self {
        Self {
            code: code.into(),
            value,
        }
    }
}

/// Invoice status. B2B Edition sets `Completed` itself once the open balance is <= 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvoiceStatus {
    Open,
    PartiallyPaid,
    Completed,
    /// A code this client does not know yet; kept rather than failing the read.
    Other(i64),
}

impl InvoiceStatus {
    pub fn code(self) -> i64 {
        match self {
            Self::Open => 0,
            Self::PartiallyPaid => 1,
            Self::Completed => 2,
            Self::Other(n) => n,
        }
    }

    pub fn from_code(code: i64) -> Self {
        match code {
            0 => Self::Open,
            1 => Self::PartiallyPaid,
            2 => Self::Completed,
            n => Self::Other(n),
        }
    }
}

impl Serialize for InvoiceStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.code())
    }
}

impl<'de> Deserialize<'de> for InvoiceStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        wire::opt_i64(d)?
            .map(Self::from_code)
            .ok_or_else(|| serde::de::Error::custom("status is null"))
    }
}

/// `details` of an invoice, kept whole.
///
/// B2B Edition replaces `details` entirely on update, and people or other apps may have added
/// keys the daemon knows nothing about; so this type is the raw JSON object, with typed views
/// over the parts the daemon owns. Setting one part leaves every other key as it was.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct InvoiceDetails(pub Map<String, Value>);

impl<'de> Deserialize<'de> for InvoiceDetails {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Some PHP-backed responses write an empty object as `[]`; null means none either.
        match Value::deserialize(d)? {
            Value::Object(map) => Ok(Self(map)),
            Value::Null => Ok(Self::default()),
            Value::Array(items) if items.is_empty() => Ok(Self::default()),
            other => Err(serde::de::Error::custom(format!(
                "details must be an object, found {}",
                wire::kind_of(&other)
            ))),
        }
    }
}

/// Where the owned parts live inside `details`.
pub mod details_path {
    pub const COST_LINES: &[&str] = &["header", "costLines"];
    pub const BILLING_ADDRESS: &[&str] = &["header", "billingAddress"];
    pub const SHIPPING_ADDRESSES: &[&str] = &["header", "shippingAddresses"];
    pub const LINE_ITEMS: &[&str] = &["details", "lineItems"];
    pub const SHIPMENTS: &[&str] = &["details", "shipments"];
}

impl InvoiceDetails {
    pub fn get_path(&self, path: &[&str]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        rest.iter()
            .try_fold(self.0.get(*first)?, |v, key| v.as_object()?.get(*key))
    }

    /// Sets the value at `path`, creating objects on the way; a non-object in the way is replaced.
    pub fn set_path(&mut self, path: &[&str], value: Value) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut map = &mut self.0;
        for key in parents {
            let slot = map
                .entry((*key).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            map = match slot {
                Value::Object(m) => m,
                _ => return,
            };
        }
        map.insert((*last).to_owned(), value);
    }

    /// Removes the value at `path`, if there is one; parents are kept.
    pub fn remove_path(&mut self, path: &[&str]) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut map = &mut self.0;
        for key in parents {
            match map.get_mut(*key) {
                Some(Value::Object(m)) => map = m,
                _ => return,
            }
        }
        map.shift_remove(*last);
    }

    /// The typed value at `path`; `Ok(None)` when absent.
    pub fn typed<T: serde::de::DeserializeOwned>(
        &self,
        path: &[&str],
    ) -> Result<Option<T>, serde_json::Error> {
        self.get_path(path)
            .filter(|v| !v.is_null())
            .map(|v| T::deserialize(v))
            .transpose()
    }

    /// Replaces the part at `path` with `value`, leaving every other key untouched.
    pub fn set_typed<T: Serialize>(
        &mut self,
        path: &[&str],
        value: &T,
    ) -> Result<(), serde_json::Error> {
        self.set_path(path, serde_json::to_value(value)?);
        Ok(())
    }

    pub fn cost_lines(&self) -> Result<Option<Vec<CostLine>>, serde_json::Error> {
        self.typed(details_path::COST_LINES)
    }

    pub fn line_items(&self) -> Result<Option<Vec<LineItem>>, serde_json::Error> {
        self.typed(details_path::LINE_ITEMS)
    }

    pub fn billing_address(&self) -> Result<Option<Address>, serde_json::Error> {
        self.typed(details_path::BILLING_ADDRESS)
    }

    pub fn shipping_addresses(&self) -> Result<Option<Vec<Address>>, serde_json::Error> {
        self.typed(details_path::SHIPPING_ADDRESSES)
    }
}

/// A line of `details.header.costLines` (subtotal, freight, tax, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostLine {
    pub amount: Amount,
    #[serde(deserialize_with = "wire::string")]
    pub description: String,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A billing or shipping address inside `details.header`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub first_name: String,
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub last_name: String,
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub street1: String,
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub street2: String,
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub city: String,
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub state: String,
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub zip_code: String,
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub country: String,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A product line of `details.details.lineItems`. The API writes quantities as strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineItem {
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub sku: String,
    #[serde(rename = "type", default, deserialize_with = "wire::string_or_empty")]
    pub kind: String,
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub description: String,
    #[serde(default, deserialize_with = "wire::string_or_empty")]
    pub comments: String,
    #[serde(
        deserialize_with = "wire::decimal",
        serialize_with = "wire::decimal_as_string"
    )]
    pub quantity: Decimal,
    pub unit_price: Amount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_discount: Option<Amount>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_path_creates_missing_objects() {
        let mut d = InvoiceDetails::default();
        d.set_path(details_path::COST_LINES, json!([]));
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"header": {"costLines": []}})
        );
    }

    #[test]
    fn empty_array_details_read_as_empty() {
        let d: InvoiceDetails = serde_json::from_value(json!([])).unwrap();
        assert!(d.0.is_empty());
        assert!(serde_json::from_value::<InvoiceDetails>(json!("x")).is_err());
    }
}
