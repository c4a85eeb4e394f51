//! One Rebillia invoice (JSON, as `GET /invoices?include=detail` returns it) to a
//! [`SourceInvoice`].
//!
//! Work happens on `serde_json::Value` rather than a derived struct so that a bad value names
//! its field precisely (`line_items[2].unit_price`, with the wire name `detail[2].amount` in the
//! reason) and never takes the rest of the page down with it.

use chrono::{DateTime, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;

use super::amounts::{AmountPolicy, Reading, Wire, WireAmounts, WireLine};
use crate::domain::invoice::parse_date;
use crate::domain::money::parse_amount;
use crate::domain::{
    amount_text, Currency, RawAddress, RawInvoice, RawLineItem, RecordError, RecordLocator,
    SourceInvoice,
};

/// Rebillia's "cents" are hundredths of the currency unit, whatever the currency: the
/// reference client divides every cent amount by 100 (`(amount / 100).toFixed(2)`), so
/// ¥4,100 travels as `410000`. The conversion is exact for every `i64`.
pub fn cents_to_decimal(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

/// The reverse of [`cents_to_decimal`]: `None` for an amount finer than a cent or beyond `i64`.
pub fn decimal_to_cents(amount: Decimal) -> Option<i64> {
    let cents = amount.checked_mul(Decimal::ONE_HUNDRED)?;
    if !cents.fract().is_zero() {
        return None;
    }
    i64::try_from(cents.trunc()).ok()
}

/// How a Rebillia status maps to the canonical lifecycle (see the table in the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StatusClass {
    Active,
    Voided,
    Deleted,
}

/// Known statuses, compared without case. Only `posted` and `requestPayment` are confirmed by
/// the reference client (they are the updatable ones); `paid` and `void` are what the charge and
/// void endpoints leave behind; the others are the likely spellings of states a billing system
/// has. Anything else is refused rather than guessed: an unknown status might mean "void".
pub(super) fn classify_status(status: &str) -> Option<StatusClass> {
    const ACTIVE: [&str; 6] = [
        "posted",
        "requestPayment",
        "partiallyPaid",
        "paid",
        "refunded",
        "partiallyRefunded",
    ];
    const VOIDED: [&str; 2] = ["void", "voided"];
    const DELETED: [&str; 2] = ["deleted", "archived"];
    let is = |names: &[&str]| names.iter().any(|n| n.eq_ignore_ascii_case(status.trim()));
    if is(&ACTIVE) {
        Some(StatusClass::Active)
    } else if is(&VOIDED) {
        Some(StatusClass::Voided)
    } else if is(&DELETED) {
        Some(StatusClass::Deleted)
    } else {
        None
    }
}

/// Rebillia times: RFC 3339 (the normalizers' ATOM format), or a naive `YYYY-MM-DD HH:MM:SS`
/// (with a space or a `T`), taken as UTC.
pub(super) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(t) {
        return Some(time.with_timezone(&Utc));
    }
    ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(t, format).ok())
        .map(|naive| naive.and_utc())
}

/// When the invoice last changed: `updatedAt`, or `createdAt` for one never updated.
/// An `updatedAt` that is present but unreadable is not papered over with `createdAt`.
pub(super) fn updated_at(record: &Value) -> Option<DateTime<Utc>> {
    let key = match record.get("updatedAt") {
        None | Some(Value::Null) => "createdAt",
        Some(_) => "updatedAt",
    };
    record.get(key).and_then(Value::as_str).and_then(parse_time)
}

/// The invoice id as text (Rebillia renders ids as strings; numbers are taken too).
pub(super) fn record_id(record: &Value) -> Option<String> {
    record.get("id").and_then(scalar_text)
}

/// Converts one invoice of `source` with the default amount reading (`amount_unit = "auto"`,
/// cents for an invoice that adds up either way). Every problem is a [`RecordError`] naming
/// the invoice.
pub fn invoice_from_json(source: &str, record: &Value) -> Result<SourceInvoice, RecordError> {
    invoice_with(source, record, AmountPolicy::default())
}

/// [`invoice_from_json`] reading whole-number amounts as `policy` says (see `amounts`).
pub fn invoice_with(
    source: &str,
    record: &Value,
    policy: AmountPolicy,
) -> Result<SourceInvoice, RecordError> {
    let id = record_id(record);
    let locator = RecordLocator::id(id.as_deref().unwrap_or("(without id)"));
    if !record.is_object() {
        return Err(RecordError::whole(source, locator, "not a JSON object"));
    }
    let reader = Reader {
        source,
        locator: &locator,
        record,
        currency: currency_code(record).and_then(|code| Currency::parse(&code).ok()),
    };
    let raw = reader.raw(id, policy)?;
    SourceInvoice::parse(source, locator, raw)
}

/// The invoice's amounts as the wire wrote them (`None`: they cannot be read).
pub(super) fn wire_amounts(record: &Value) -> Option<WireAmounts> {
    with_bare_reader(record, |reader| reader.wire_amounts().ok())
}

/// Reads `record` outside a page (no source, no currency checked): for its amounts alone.
fn with_bare_reader<T>(record: &Value, read: impl FnOnce(&Reader<'_>) -> T) -> T {
    let locator = RecordLocator::id("");
    read(&Reader {
        source: "",
        locator: &locator,
        record,
        currency: None,
    })
}

/// The invoice's total and balance due as `policy` reads them (the payments write-back: it
/// must see the same amounts the sync pushed), or why they cannot be read.
pub(super) fn balance_amounts(
    record: &Value,
    policy: AmountPolicy,
) -> Result<(Decimal, Decimal), String> {
    let reason = |e: RecordError| match e.field {
        Some(field) => format!("{field}: {}", e.reason),
        None => e.reason.into(),
    };
    let reading = with_bare_reader(record, |reader| reader.reading(policy)).map_err(reason)?;
    let required = |value: Option<Decimal>, wire: &str| {
        value.ok_or_else(|| format!("Rebillia `{wire}` is missing"))
    };
    Ok((
        required(reading.total, "total")?,
        required(reading.balance, "balanceDue")?,
    ))
}

struct Reader<'a> {
    source: &'a str,
    locator: &'a RecordLocator,
    record: &'a Value,
    /// Known once the currency is valid; used to refuse amounts finer than its minor unit.
    currency: Option<Currency>,
}

type Checked<T> = Result<T, RecordError>;

impl Reader<'_> {
    fn fail(&self, field: &str, reason: impl Into<String>) -> RecordError {
        let reason: String = reason.into();
        RecordError::new(self.source, self.locator.clone(), Some(field), reason)
    }

    fn text(&self, key: &str) -> Option<String> {
        self.record.get(key).and_then(scalar_text)
    }

    fn raw(&self, id: Option<String>, policy: AmountPolicy) -> Checked<RawInvoice> {
        let status = self
            .text("status")
            .ok_or_else(|| self.fail("status", "Rebillia `status` is missing"))?;
        let class = classify_status(&status).ok_or_else(|| {
            self.fail(
                "status",
                format!("unknown Rebillia status `{status}`: update the adapter's status table"),
            )
        })?;
        let updated_at = match updated_at(self.record) {
            Some(time) => Some(time.to_rfc3339()),
            // Let the domain name the field with the text it could not read.
            None => self.text("updatedAt").or_else(|| self.text("createdAt")),
        };
        let amounts = self.reading(policy)?;
        // Lines first: a line finer than the currency's unit is the more precise complaint.
        let line_items = self.lines(&amounts)?;
        let money = |field: &str, wire: &str, amount: Option<Decimal>| {
            amount
                .map(|a| self.fits_currency(field, wire, a).map(|()| a.to_string()))
                .transpose()
        };
        Ok(RawInvoice {
            external_id: id,
            external_customer_id: customer_id(self.record),
            invoice_number: self.text("invoiceNo"),
            kind: None,
            issue_date: self.date("createdAt"),
            due_date: self.date("dateDue"),
            currency: currency_code(self.record),
            total: money("total", "total", amounts.total)?,
            open_balance: money("open_balance", "balanceDue", amounts.balance)?,
            subtotal: money("subtotal", "subtotalTaxExc", amounts.subtotal)?,
            tax: money("tax", "taxAmount", amounts.tax)?,
            discount: None,
            freight: money("freight", "shippingAmount", amounts.shipping)?,
            line_items,
            billing_address: self.record.get("billingAddress").and_then(address),
            shipping_addresses: self
                .record
                .get("shippingAddress")
                .and_then(address)
                .into_iter()
                .collect(),
            po_number: None,
            order_number: None,
            terms: self.text("terms"),
            memo: self.text("comments"),
            pdf_url: None,
            extra_fields: self.extra_fields(&status),
            updated_at,
            voided: class == StatusClass::Voided,
            deleted: class == StatusClass::Deleted,
        })
    }

    /// A date field as `YYYY-MM-DD` when readable; otherwise the text as written, so the
    /// domain refuses it with the field's name.
    fn date(&self, key: &str) -> Option<String> {
        let text = self.text(key)?;
        if parse_date(&text).is_some() {
            return Some(text);
        }
        Some(parse_time(&text).map_or(text, |time| time.date_naive().to_string()))
    }

    /// Every amount of the invoice as the wire wrote it; a value that is no amount names its
    /// field.
    fn wire_amounts(&self) -> Checked<WireAmounts> {
        let detail = self.detail()?;
        let lines = detail
            .iter()
            .enumerate()
            .map(|(index, line)| self.wire_line(index, line))
            .collect::<Checked<Vec<_>>>()?;
        let amount = |field: &str, wire: &str| match self.record.get(wire).filter(|v| !v.is_null())
        {
            None => Ok(None),
            Some(value) => Wire::read(value, wire)
                .map(Some)
                .map_err(|reason| self.fail(field, reason)),
        };
        Ok(WireAmounts {
            lines,
            shipping: amount("freight", "shippingAmount")?,
            tax: amount("tax", "taxAmount")?,
            subtotal: amount("subtotal", "subtotalTaxExc")?,
            total: amount("total", "total")?,
            balance: amount("open_balance", "balanceDue")?,
        })
    }

    /// The amounts as `policy` reads them; an invoice whose arithmetic holds in no reading is
    /// refused with the sums (field `total`), naming its invoice number.
    fn reading(&self, policy: AmountPolicy) -> Checked<Reading> {
        self.wire_amounts()?.resolve(policy).map_err(|e| {
            let reason = match (e.field.as_str(), self.text("invoiceNo")) {
                ("total", Some(number)) => format!("invoice {number}: {}", e.reason),
                _ => e.reason,
            };
            self.fail(&e.field, reason)
        })
    }

    fn detail(&self) -> Checked<&Vec<Value>> {
        match self.record.get("detail") {
            Some(Value::Array(lines)) => Ok(lines),
            // Without `detail` the invoice would look like it has no lines and wipe them in B2B.
            Some(_) | None => Err(self.fail(
                "line_items",
                "Rebillia `detail` is missing or not a list (the list must be read with include=detail)",
            )),
        }
    }

    fn wire_line(&self, index: usize, line: &Value) -> Checked<WireLine> {
        let field = |name: &str| format!("line_items[{index}].{name}");
        let wire = |name: &str| format!("detail[{index}].{name}");
        // A line's key, present and not null, or the record fails naming both sides' fields.
        let required = |key: &str, canonical: &str| {
            line.get(key).filter(|v| !v.is_null()).ok_or_else(|| {
                self.fail(
                    &field(canonical),
                    format!("Rebillia `{}` is missing", wire(key)),
                )
            })
        };
        let quantity = required("qty", "quantity").and_then(|v| {
            whole(v, "quantity").map_err(|reason| {
                self.fail(
                    &field("quantity"),
                    format!("Rebillia `{}`: {reason}", wire("qty")),
                )
            })
        })?;
        let amount = required("amount", "unit_price").and_then(|v| {
            Wire::read(v, &wire("amount")).map_err(|reason| self.fail(&field("unit_price"), reason))
        })?;
        Ok(WireLine {
            qty: quantity,
            amount,
        })
    }

    /// Refuses an amount finer than the currency's minor unit (12.34 JPY, 1.005 USD), which
    /// B2B Edition would show as a sum that does not exist in that currency.
    fn fits_currency(&self, field: &str, wire: &str, amount: Decimal) -> Checked<()> {
        let Some(currency) = self.currency else {
            return Ok(());
        };
        let digits = currency.minor_unit_digits();
        if amount.round_dp(digits) != amount {
            return Err(self.fail(
                field,
                format!("Rebillia `{wire}` is {amount} {currency}, finer than the currency's minor unit"),
            ));
        }
        Ok(())
    }

    fn lines(&self, amounts: &Reading) -> Checked<Vec<RawLineItem>> {
        let detail = self.detail()?;
        detail
            .iter()
            .zip(&amounts.lines)
            .enumerate()
            .map(|(index, (line, values))| {
                let field = |name: &str| format!("line_items[{index}].{name}");
                let wire = format!("detail[{index}].amount");
                self.fits_currency(&field("unit_price"), &wire, values.unit_price)?;
                self.fits_currency(&field("line_total"), &wire, values.line_total)?;
                let quantity = line.get("qty").and_then(|v| whole(v, "quantity").ok());
                let product_text = |key: &str| {
                    line.get("product")
                        .and_then(|p| p.get(key))
                        .and_then(scalar_text)
                };
                let description = line
                    .get("description")
                    .and_then(scalar_text)
                    .or_else(|| product_text("name"));
                Ok(RawLineItem {
                    sku: product_text("sku"),
                    description,
                    quantity: quantity.map(|q| q.to_string()),
                    unit_price: Some(values.unit_price.to_string()),
                    line_total: Some(values.line_total.to_string()),
                })
            })
            .collect()
    }

    fn extra_fields(&self, status: &str) -> std::collections::BTreeMap<String, String> {
        let mut fields = std::collections::BTreeMap::new();
        fields.insert("status".to_owned(), status.to_owned());
        for (wire, key) in [
            ("dateFrom", "date_from"),
            ("dateTo", "date_to"),
            ("paymentType", "payment_type"),
        ] {
            let value = if wire.starts_with("date") {
                self.date(wire)
            } else {
                self.text(wire)
            };
            if let Some(value) = value {
                fields.insert(key.to_owned(), value);
            }
        }
        fields
    }
}

/// A whole number (`what`: "cents", "quantity") from a JSON number or numeric string.
fn whole(value: &Value, what: &str) -> Result<i64, String> {
    if let Some(n) = value.as_i64() {
        return Ok(n);
    }
    let text = amount_text(value).ok_or_else(|| format!("`{value}` is not a number of {what}"))?;
    let number = parse_amount(&text)?;
    if !number.fract().is_zero() {
        return Err(format!("`{text}` is not a whole number of {what}"));
    }
    i64::try_from(number.trunc()).map_err(|_| format!("`{text}` {what} is out of range"))
}

/// Strings as they are, numbers as their text; anything else (null, objects) is absent.
fn scalar_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

pub(super) fn currency_code(record: &Value) -> Option<String> {
    let currency = record.get("currency")?;
    // `currency` is a GblCurrency object (`iso3`); a bare code is taken too.
    scalar_text(currency).or_else(|| currency.get("iso3").and_then(scalar_text))
}

/// The ERP customer id B2B companies are matched on: the merchant's own `customer.customerId`
/// (e.g. "CUST-00001"), falling back to Rebillia's internal `customer.id` when it is unset.
fn customer_id(record: &Value) -> Option<String> {
    let customer = record.get("customer")?;
    customer
        .get("customerId")
        .and_then(scalar_text)
        .or_else(|| customer.get("id").and_then(scalar_text))
}

/// An InvoiceAddress; `contactName` is split at its first space into first and last name.
fn address(value: &Value) -> Option<RawAddress> {
    if !value.is_object() {
        return None;
    }
    let text = |key: &str| value.get(key).and_then(scalar_text);
    let (first_name, last_name) = match text("contactName") {
        Some(name) => match name.split_once(char::is_whitespace) {
            Some((first, last)) => (Some(first.to_owned()), Some(last.trim().to_owned())),
            None => (Some(name), None),
        },
        None => (None, None),
    };
    let country = value.get("country").and_then(|c| {
        scalar_text(c)
            .or_else(|| c.get("alpha2Code").and_then(scalar_text))
            .or_else(|| c.get("name").and_then(scalar_text))
    });
    let raw = RawAddress {
        first_name,
        last_name,
        company: text("contactCompany"),
        street1: text("street1"),
        street2: text("street2"),
        city: text("city"),
        state: text("state"),
        zip: text("zip"),
        country,
    };
    (raw != RawAddress::default()).then_some(raw)
}

#[cfg(test)]
mod tests;
