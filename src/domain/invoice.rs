//! The canonical invoice: what an ERP says about one invoice, whatever the ERP.
//!
//! Adapters translate their wire format into a [`RawInvoice`] (text as the ERP wrote it) and call
//! [`SourceInvoice::parse`]. Parsing is the only way to get a `SourceInvoice`, so one that exists
//! is valid: known currency, exact amounts, real dates, non-empty ids. A record that cannot be
//! parsed becomes a [`RecordError`] naming the source, the record, the field and the reason.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use url::Url;

use super::money::{parse_amount, Currency};
use super::record::{RecordError, RecordLocator};
use super::version::SourceVersion;

/// One invoice as an adapter read it, before validation. Amounts and dates are text as the ERP
/// wrote them (adapters turn numbers into text with [`amount_text`]); this is also the canonical
/// schema of the `files` adapter (NDJSON keys, CSV columns), hence `deny_unknown_fields`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawInvoice {
    pub external_id: Option<String>,
    pub external_customer_id: Option<String>,
    pub invoice_number: Option<String>,
    /// Invoice type, e.g. "Invoice", "Credit Memo".
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `YYYY-MM-DD` (or RFC 3339, whose date part is taken as written).
    pub issue_date: Option<String>,
    pub due_date: Option<String>,
    /// ISO 4217 code.
    pub currency: Option<String>,
    pub total: Option<String>,
    pub open_balance: Option<String>,
    pub subtotal: Option<String>,
    pub tax: Option<String>,
    pub discount: Option<String>,
    pub freight: Option<String>,
    pub line_items: Vec<RawLineItem>,
    pub billing_address: Option<RawAddress>,
    pub shipping_addresses: Vec<RawAddress>,
    pub po_number: Option<String>,
    pub order_number: Option<String>,
    pub terms: Option<String>,
    pub memo: Option<String>,
    pub pdf_url: Option<String>,
    pub extra_fields: BTreeMap<String, String>,
    /// RFC 3339 or Unix seconds.
    pub updated_at: Option<String>,
    pub voided: bool,
    pub deleted: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLineItem {
    pub sku: Option<String>,
    pub description: Option<String>,
    pub quantity: Option<String>,
    pub unit_price: Option<String>,
    /// When absent, quantity x unit price.
    pub line_total: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAddress {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub street1: Option<String>,
    pub street2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
    /// Country name or ISO 3166 code, as the ERP has it.
    pub country: Option<String>,
}

/// Whether the ERP still considers the invoice live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lifecycle {
    Active,
    Voided,
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLineItem {
    pub sku: Option<String>,
    pub description: String,
    pub quantity: Decimal,
    pub unit_price: Decimal,
    pub line_total: Decimal,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostalAddress {
    pub first_name: String,
    pub last_name: String,
    pub company: String,
    pub street1: String,
    pub street2: String,
    pub city: String,
    pub state: String,
    pub zip: String,
    pub country: String,
}

/// A valid invoice from an ERP. Fields are public to read; the only way to build one is
/// [`SourceInvoice::parse`], so every value in it has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInvoice {
    /// The config name of the source it came from.
    pub source: String,
    pub external_id: String,
    pub external_customer_id: String,
    pub invoice_number: String,
    pub kind: Option<String>,
    pub issue_date: Option<NaiveDate>,
    pub due_date: Option<NaiveDate>,
    /// Every amount of the invoice is in this currency.
    pub currency: Currency,
    pub total: Decimal,
    pub open_balance: Decimal,
    pub subtotal: Option<Decimal>,
    pub tax: Option<Decimal>,
    pub discount: Option<Decimal>,
    pub freight: Option<Decimal>,
    pub line_items: Vec<SourceLineItem>,
    pub billing_address: Option<PostalAddress>,
    pub shipping_addresses: Vec<PostalAddress>,
    pub po_number: Option<String>,
    pub order_number: Option<String>,
    pub terms: Option<String>,
    pub memo: Option<String>,
    pub pdf_url: Option<Url>,
    pub extra_fields: BTreeMap<String, String>,
    pub updated_at: Option<DateTime<Utc>>,
    /// Which record of this invoice is newer (see [`SourceVersion`]): the ERP's updated-at, or
    /// what the adapter knows better (an export's file time). `None`: unknown, taken as newest.
    pub version: Option<SourceVersion>,
    pub lifecycle: Lifecycle,
    _parsed: Parsed,
}

/// Private: proves a `SourceInvoice` came out of `parse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parsed;

/// Collects problems so one record reports its first bad field with a precise name.
struct Check<'a> {
    source: &'a str,
    locator: &'a RecordLocator,
}

type Checked<T> = Result<T, RecordError>;

impl Check<'_> {
    fn fail(&self, field: &str, reason: impl Into<String>) -> RecordError {
        let reason: String = reason.into();
        RecordError::new(self.source, self.locator.clone(), Some(field), reason)
    }

    fn required(&self, field: &str, value: Option<String>) -> Checked<String> {
        clean(value).ok_or_else(|| self.fail(field, "missing or empty"))
    }

    fn amount(&self, field: &str, value: Option<String>) -> Checked<Option<Decimal>> {
        clean(value)
            .map(|t| parse_amount(&t).map_err(|reason| self.fail(field, reason)))
            .transpose()
    }

    fn required_amount(&self, field: &str, value: Option<String>) -> Checked<Decimal> {
        self.amount(field, value)?
            .ok_or_else(|| self.fail(field, "missing or empty"))
    }

    fn date(&self, field: &str, value: Option<String>) -> Checked<Option<NaiveDate>> {
        let Some(text) = clean(value) else {
            return Ok(None);
        };
        parse_date(&text).map(Some).ok_or_else(|| {
            self.fail(
                field,
                format!("`{text}` is not a date (expected YYYY-MM-DD)"),
            )
        })
    }
}

/// Trims; empty text counts as absent.
fn clean(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// `YYYY-MM-DD`, or the date part of an RFC 3339 timestamp as written. Years 1900-2200 only:
/// anything else is a data-entry error (or a zero date) that would show up wrongly in B2B.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    let t = text.trim();
    let date = NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .or_else(|| DateTime::parse_from_rfc3339(t).ok().map(|d| d.date_naive()))?;
    (1900..=2200)
        .contains(&chrono::Datelike::year(&date))
        .then_some(date)
}

/// RFC 3339 or Unix seconds.
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<i64>() {
        return DateTime::from_timestamp(secs, 0);
    }
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// A JSON number or string as amount text, without a detour through binary floating point
/// beyond what JSON parsing already did (`f64` prints its shortest exact form).
pub fn amount_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

impl SourceInvoice {
    /// Validates `raw` from `source`; `locator` says which record it is for error messages.
    pub fn parse(
        source: &str,
        locator: RecordLocator,
        raw: RawInvoice,
    ) -> Result<Self, RecordError> {
        let c = Check {
            source,
            locator: &locator,
        };
        let external_id = c.required("external_id", raw.external_id)?;
        let external_customer_id = c.required("external_customer_id", raw.external_customer_id)?;
        let invoice_number = c.required("invoice_number", raw.invoice_number)?;
        let currency_text = c.required("currency", raw.currency)?;
        let currency =
            Currency::parse(&currency_text).map_err(|e| c.fail("currency", e.to_string()))?;
        let total = c.required_amount("total", raw.total)?;
        let open_balance = c.required_amount("open_balance", raw.open_balance)?;
        let line_items = raw
            .line_items
            .into_iter()
            .enumerate()
            .map(|(i, item)| parse_line(&c, i, item))
            .collect::<Checked<Vec<_>>>()?;
        // The lines' sum becomes the subtotal when the ERP gives none: it must fit too.
        line_items
            .iter()
            .try_fold(Decimal::ZERO, |sum, l| sum.checked_add(l.line_total))
            .ok_or_else(|| {
                c.fail(
                    "line_items",
                    "the line totals add up to more than can be represented",
                )
            })?;
        let pdf_url = match clean(raw.pdf_url) {
            None => None,
            Some(text) => Some(
                Url::parse(&text)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| c.fail("pdf_url", format!("`{text}` is not an http(s) URL")))?,
            ),
        };
        let updated_at = match clean(raw.updated_at) {
            None => None,
            Some(text) => Some(parse_timestamp(&text).ok_or_else(|| {
                c.fail(
                    "updated_at",
                    format!("`{text}` is not an RFC 3339 timestamp"),
                )
            })?),
        };
        let extra_fields = raw
            .extra_fields
            .into_iter()
            .filter_map(|(k, v)| Some((clean(Some(k))?, v.trim().to_owned())))
            .collect();
        Ok(Self {
            source: source.to_owned(),
            external_id,
            external_customer_id,
            invoice_number,
            kind: clean(raw.kind),
            issue_date: c.date("issue_date", raw.issue_date)?,
            due_date: c.date("due_date", raw.due_date)?,
            currency,
            total,
            open_balance,
            subtotal: c.amount("subtotal", raw.subtotal)?,
            tax: c.amount("tax", raw.tax)?,
            discount: c.amount("discount", raw.discount)?,
            freight: c.amount("freight", raw.freight)?,
            line_items,
            billing_address: raw.billing_address.map(address),
            shipping_addresses: raw.shipping_addresses.into_iter().map(address).collect(),
            po_number: clean(raw.po_number),
            order_number: clean(raw.order_number),
            terms: clean(raw.terms),
            memo: clean(raw.memo),
            pdf_url,
            extra_fields,
            version: updated_at.map(SourceVersion::at),
            updated_at,
            lifecycle: if raw.deleted {
                Lifecycle::Deleted
            } else if raw.voided {
                Lifecycle::Voided
            } else {
                Lifecycle::Active
            },
            _parsed: Parsed,
        })
    }

    /// The same record with the version its adapter assigns (see [`SourceVersion`]).
    pub fn with_version(mut self, version: Option<SourceVersion>) -> Self {
        self.version = version;
        self
    }

    /// Back to the canonical schema, losslessly: `parse(to_raw())` gives the same invoice (but
    /// for a version the adapter assigned, which the state table keeps beside the record). The
    /// engine keeps a failed invoice this way, to retry it without the ERP sending it again.
    pub fn to_raw(&self) -> RawInvoice {
        let text = |d: Option<Decimal>| d.map(|d| d.to_string());
        let date = |d: Option<NaiveDate>| d.map(|d| d.format("%Y-%m-%d").to_string());
        let addr = |a: &PostalAddress| RawAddress {
            first_name: Some(a.first_name.clone()),
            last_name: Some(a.last_name.clone()),
            company: Some(a.company.clone()),
            street1: Some(a.street1.clone()),
            street2: Some(a.street2.clone()),
            city: Some(a.city.clone()),
            state: Some(a.state.clone()),
            zip: Some(a.zip.clone()),
            country: Some(a.country.clone()),
        };
        RawInvoice {
            external_id: Some(self.external_id.clone()),
            external_customer_id: Some(self.external_customer_id.clone()),
            invoice_number: Some(self.invoice_number.clone()),
            kind: self.kind.clone(),
            issue_date: date(self.issue_date),
            due_date: date(self.due_date),
            currency: Some(self.currency.code().to_owned()),
            total: text(Some(self.total)),
            open_balance: text(Some(self.open_balance)),
            subtotal: text(self.subtotal),
            tax: text(self.tax),
            discount: text(self.discount),
            freight: text(self.freight),
            line_items: self
                .line_items
                .iter()
                .map(|l| RawLineItem {
                    sku: l.sku.clone(),
                    description: Some(l.description.clone()),
                    quantity: Some(l.quantity.to_string()),
                    unit_price: Some(l.unit_price.to_string()),
                    line_total: Some(l.line_total.to_string()),
                })
                .collect(),
            billing_address: self.billing_address.as_ref().map(addr),
            shipping_addresses: self.shipping_addresses.iter().map(addr).collect(),
            po_number: self.po_number.clone(),
            order_number: self.order_number.clone(),
            terms: self.terms.clone(),
            memo: self.memo.clone(),
            pdf_url: self.pdf_url.as_ref().map(|u| u.to_string()),
            extra_fields: self.extra_fields.clone(),
            updated_at: self.updated_at.map(|t| t.to_rfc3339()),
            voided: self.lifecycle == Lifecycle::Voided,
            deleted: self.lifecycle == Lifecycle::Deleted,
        }
    }

    /// The invoice's locator for messages about it.
    pub fn locator(&self) -> RecordLocator {
        RecordLocator::id(self.external_id.as_str())
    }
}

fn parse_line(c: &Check<'_>, index: usize, raw: RawLineItem) -> Checked<SourceLineItem> {
    let field = |name: &str| format!("line_items[{index}].{name}");
    let quantity = c.required_amount(&field("quantity"), raw.quantity)?;
    let unit_price = c.required_amount(&field("unit_price"), raw.unit_price)?;
    // Decimal's `*` panics on overflow: an absurd ERP value must be a record error, and
    // everything downstream may then multiply these two safely.
    let gross = quantity
        .checked_mul(unit_price)
        .ok_or_else(|| c.fail(&field("quantity"), "quantity x unit price is out of range"))?;
    let line_total = c
        .amount(&field("line_total"), raw.line_total)?
        .unwrap_or(gross);
    let sku = clean(raw.sku);
    let description = clean(raw.description)
        .or_else(|| sku.clone())
        .ok_or_else(|| c.fail(&field("description"), "missing (and no sku to use instead)"))?;
    Ok(SourceLineItem {
        sku,
        description,
        quantity,
        unit_price,
        line_total,
    })
}

fn address(raw: RawAddress) -> PostalAddress {
    let text = |v: Option<String>| clean(v).unwrap_or_default();
    PostalAddress {
        first_name: text(raw.first_name),
        last_name: text(raw.last_name),
        company: text(raw.company),
        street1: text(raw.street1),
        street2: text(raw.street2),
        city: text(raw.city),
        state: text(raw.state),
        zip: text(raw.zip),
        country: text(raw.country),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A complete, valid raw invoice for tests.
    pub fn raw() -> RawInvoice {
        RawInvoice {
            external_id: Some("INV-1".into()),
            external_customer_id: Some("C-1".into()),
            invoice_number: Some("1001".into()),
            currency: Some("usd".into()),
            total: Some("110.00".into()),
            open_balance: Some("110.00".into()),
            subtotal: Some("100.00".into()),
            tax: Some("10.00".into()),
            issue_date: Some("2026-11-01".into()),
            due_date: Some("2026-12-01T00:00:00-05:00".into()),
            line_items: vec![RawLineItem {
                sku: Some("W-1".into()),
                description: None,
                quantity: Some("4".into()),
                unit_price: Some("25.00".into()),
                line_total: None,
            }],
            updated_at: Some("2026-11-02T10:00:00Z".into()),
            ..RawInvoice::default()
        }
    }

    fn parse(raw: RawInvoice) -> Result<SourceInvoice, RecordError> {
        SourceInvoice::parse("erp", RecordLocator::id("INV-1"), raw)
    }

    #[test]
    fn a_valid_record_parses_with_derived_values() {
        let inv = parse(raw()).unwrap();
        assert_eq!(inv.currency.code(), "USD");
        assert_eq!(inv.line_items[0].description, "W-1");
        assert_eq!(inv.line_items[0].line_total, Decimal::new(10000, 2));
        assert_eq!(inv.due_date, NaiveDate::from_ymd_opt(2026, 12, 1));
        assert_eq!(inv.lifecycle, Lifecycle::Active);
    }

    #[test]
    fn each_bad_field_is_named() {
        type Breakage = fn(&mut RawInvoice);
        let cases: Vec<(Breakage, &str)> = vec![
            (|r| r.currency = Some("USX".into()), "currency"),
            (|r| r.external_id = Some("  ".into()), "external_id"),
            (|r| r.total = Some("1,000.00".into()), "total"),
            (|r| r.open_balance = None, "open_balance"),
            (|r| r.issue_date = Some("2026-02-30".into()), "issue_date"),
            (|r| r.due_date = Some("0000-00-00".into()), "due_date"),
            (
                |r| r.line_items[0].quantity = Some("two".into()),
                "line_items[0].quantity",
            ),
            (|r| r.line_items[0].sku = None, "line_items[0].description"),
            (|r| r.pdf_url = Some("ftp://x/y.pdf".into()), "pdf_url"),
            (|r| r.updated_at = Some("yesterday".into()), "updated_at"),
        ];
        for (break_it, field) in cases {
            let mut r = raw();
            break_it(&mut r);
            let err = parse(r).unwrap_err();
            assert_eq!(err.field.as_deref(), Some(field), "{err}");
            assert!(
                err.to_string().contains("source erp, record INV-1"),
                "{err}"
            );
        }
    }

    #[test]
    fn to_raw_round_trips() {
        let mut r = raw();
        r.billing_address = Some(RawAddress {
            city: Some("Austin".into()),
            ..RawAddress::default()
        });
        r.extra_fields.insert("k".into(), "v".into());
        r.voided = true;
        let inv = parse(r).unwrap();
        assert_eq!(parse(inv.to_raw()).unwrap(), inv);
    }

    #[test]
    fn absurd_amounts_are_record_errors_not_panics() {
        let mut r = raw();
        r.line_items[0].quantity = Some("79228162514264337593543950335".into());
        r.line_items[0].unit_price = Some("1000".into());
        let err = parse(r).unwrap_err();
        assert_eq!(
            err.field.as_deref(),
            Some("line_items[0].quantity"),
            "{err}"
        );
    }

    #[test]
    fn line_totals_whose_sum_overflows_are_record_errors() {
        let mut r = raw();
        let big = RawLineItem {
            sku: Some("B".into()),
            quantity: Some("1".into()),
            unit_price: Some("50000000000000000000000000000".into()),
            ..RawLineItem::default()
        };
        r.line_items = vec![big.clone(), big];
        let err = parse(r).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("line_items"), "{err}");
    }

    #[test]
    fn deleted_wins_over_voided() {
        let mut r = raw();
        r.voided = true;
        assert_eq!(parse(r.clone()).unwrap().lifecycle, Lifecycle::Voided);
        r.deleted = true;
        assert_eq!(parse(r).unwrap().lifecycle, Lifecycle::Deleted);
    }

    #[test]
    fn unknown_keys_in_the_canonical_schema_are_refused() {
        let err =
            serde_json::from_str::<RawInvoice>(r#"{"external_id":"1","totl":"5"}"#).unwrap_err();
        assert!(err.to_string().contains("totl"), "{err}");
    }
}
