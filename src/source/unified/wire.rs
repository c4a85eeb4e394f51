//! Lenient reading of the unified API's JSON (api-docs 004) into [`RawInvoice`]s.
//!
//! Records are read from `serde_json::Value`, never through a typed struct: a typed struct would
//! fail the whole page on one odd field, where one odd record must become a [`RecordError`] while
//! the rest of the page flows. Only a page whose envelope is wrong is a page-level failure.
//!
//! Choices where 004 is vague (see also the module docs of `super`):
//! - Dates: the request docs say `YYYY-MM-DD`, the response schema says integer (default 0).
//!   Accepted: `YYYY-MM-DD`, RFC 3339 (its date as written), and Unix seconds as a number or a
//!   numeric string (milliseconds when the value is beyond year 5000 in seconds), read as UTC.
//!   `0`, `null` and `""` mean absent.
//! - `remoteDeleted` is documented with "default true"; a missing or null value is read as
//!   `false`, because reading it as `true` would delete every invoice of a vendor that omits it.
//! - `invoiceStatus` (compared case-insensitively, ignoring blanks, `_` and `-`): `VOID`,
//!   `VOIDED`, `CANCELLED`, `CANCELED` mean voided; `DELETED` (Xero's status) means deleted.
//! - `purchaseOrders`: the first element gives the PO number: a string as it is, or an object's
//!   `number`, `purchaseOrderNumber`, `poNumber`, `remoteId` or `id` (the first present).
//! - Line items: `sku` is `accountingItemId`. A line with neither `quantity` nor `unitPrice` but a
//!   `totalAmount` is a one-unit line at that amount (service lines often carry only a total).
//!   A line whose `currency` differs from the invoice's is refused (amounts would be wrong).
//! - `remoteFields`: string and number values become extra fields under their own key; other
//!   values (booleans, arrays, objects) are left out.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::config::{PagingStyle, UnifiedNames};
use crate::domain::document::wire::kind_of;
use crate::domain::{amount_text, Currency, RawInvoice, RawLineItem, RecordError, RecordLocator};

/// Seconds beyond this are taken as milliseconds (in seconds it is about the year 5138).
const MILLIS_THRESHOLD: i64 = 100_000_000_000;

/// The wire name of the record id, also used as the record's locator.
const REMOTE_ID: &str = "remoteId";
const REMOTE_UPDATED_AT: &str = "remoteUpdatedAt";
/// Alloy 2023-12's name of the ERP's update time (milliseconds), read when `remoteUpdatedAt`
/// is absent.
const UPDATED_TIMESTAMP: &str = "updatedTimestamp";

/// One page of a list as the API sent it.
#[derive(Debug)]
pub(crate) struct ListPage {
    pub records: Vec<Value>,
    /// The cursor of the next page (cursor paging); `None` at the end and for page-number and
    /// offset paging.
    pub next: Option<String>,
    /// Whether another page follows: a cursor came, or (page number, offset) the page was full.
    pub more: bool,
}

/// Reads the list envelope `{"<list_field>": [...], "<next_field>": "..." | null}` of
/// [`PagingStyle::NextField`] paging.
///
/// A missing `next` field ends the list only on a short page: a full page without it more
/// likely means a renamed field, and stopping there would silently skip the rest of the list.
#[cfg(test)]
pub(crate) fn list_page(body: Value, names: &UnifiedNames, limit: u32) -> Result<ListPage, String> {
    list_page_in(
        body,
        names,
        PagingStyle::NextField,
        limit,
        &names.list_field,
    )
}

/// Reads one page of a list whose records are under `list_field`, paged in `paging` style with
/// `limit` records asked per page:
/// - `NextField`: the cursor in `names.next_field` (see [`list_page`]);
/// - `BodyCursor`: the cursor at the dotted `names.next_cursor_path` and, when configured, a
///   has-more flag at `names.has_more_path` (`pageInfo {hasNext, nextCursor}`); `hasNext`
///   false ends the list whatever the cursor says, true without a cursor is an error; without
///   either, a full page is an error (a renamed field would silently end the list);
/// - `PageNumber`, `Offset`: no cursor; a short or empty page is the last.
pub(crate) fn list_page_in(
    body: Value,
    names: &UnifiedNames,
    paging: PagingStyle,
    limit: u32,
    list_field: &str,
) -> Result<ListPage, String> {
    let Value::Object(mut object) = body else {
        return Err(format!(
            "the list answer is {}, not an object",
            kind_of(&body)
        ));
    };
    let records = match object.remove(list_field) {
        Some(Value::Array(records)) => records,
        Some(other) => {
            return Err(format!(
                "`{list_field}` is {}, not an array of records",
                kind_of(&other)
            ))
        }
        None => {
            return Err(format!(
                "the list answer has no `{list_field}` field (fields: {}); check the names \
                 (names.list_field / names.customers_field) or the preset",
                field_list(&object)
            ))
        }
    };
    let full = records.len() >= usize::try_from(limit).unwrap_or(usize::MAX);
    let next = match paging {
        PagingStyle::PageNumber | PagingStyle::Offset => {
            return Ok(ListPage {
                records,
                next: None,
                more: full && limit > 0,
            })
        }
        PagingStyle::BodyCursor => body_cursor(&object, names, records.len(), full)?,
        PagingStyle::NextField => next_field(object, names, records.len(), full)?,
    };
    Ok(ListPage {
        records,
        more: next.is_some(),
        next,
    })
}

/// The value at a dotted path (`pageInfo.nextCursor`) of an object.
pub(crate) fn at_path<'a>(object: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = object.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// A cursor value: text (blank: none) or a number; `Err` for other kinds.
fn cursor_value(value: &Value, name: &str) -> Result<Option<String>, String> {
    match value {
        Value::String(text) if text.trim().is_empty() => Ok(None),
        Value::String(text) => Ok(Some(text.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Null => Ok(None),
        other => Err(format!(
            "`{name}` is {}, not a cursor string",
            kind_of(other)
        )),
    }
}

fn body_cursor(
    object: &Map<String, Value>,
    names: &UnifiedNames,
    count: usize,
    full: bool,
) -> Result<Option<String>, String> {
    let path = names.next_cursor_path.as_str();
    let has_more = match names.has_more_path.as_str() {
        "" => None,
        flag => match at_path(object, flag) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                return Err(format!("`{flag}` is {}, not true or false", kind_of(other)));
            }
        },
    };
    let cursor = at_path(object, path)
        .map(|v| cursor_value(v, path))
        .transpose()?;
    match (has_more, cursor) {
        (Some(false), _) => Ok(None),
        (Some(true), Some(Some(cursor))) => Ok(Some(cursor)),
        (Some(true), _) => Err(format!(
            "`{}` is true but `{path}` holds no cursor: the rest of the list cannot be read",
            names.has_more_path
        )),
        (None, Some(cursor)) => Ok(cursor),
        (None, None) if !full => Ok(None),
        (None, None) => Err(format!(
            "a full page of {count} records came without `{path}`; check the paging names \
             (names.next_cursor_path) or the preset"
        )),
    }
}

fn next_field(
    mut object: Map<String, Value>,
    names: &UnifiedNames,
    count: usize,
    full: bool,
) -> Result<Option<String>, String> {
    Ok(match object.remove(&names.next_field) {
        Some(value) => cursor_value(&value, &names.next_field)?,
        None if !full => None,
        None => {
            return Err(format!(
                "a full page of {count} invoices came without a `{}` field; check \
                 names.next_field",
                names.next_field
            ))
        }
    })
}

/// Reads the single-invoice envelope `{"<single_field>": {...}}`.
#[cfg(test)]
pub(crate) fn single(body: Value, names: &UnifiedNames) -> Result<Value, String> {
    single_in(body, &names.single_field)
}

/// Reads a single-record envelope `{"<field>": {...}}` (`invoice`, `customer`).
pub(crate) fn single_in(body: Value, field: &str) -> Result<Value, String> {
    let Value::Object(mut object) = body else {
        return Err(format!("the answer is {}, not an object", kind_of(&body)));
    };
    object.remove(field).ok_or_else(|| {
        format!(
            "the answer has no `{field}` field (fields: {}); check the names or the preset",
            field_list(&object)
        )
    })
}

/// Who the record is, for error messages: its `remoteId`, else its `id`, else its position.
#[cfg(test)]
pub(crate) fn locator(record: &Value, position: usize) -> RecordLocator {
    locator_by(record, position, REMOTE_ID)
}

/// Who the record is: its ERP id (`external_id_field`), else its `id`, else its position.
pub(crate) fn locator_by(
    record: &Value,
    position: usize,
    external_id_field: &str,
) -> RecordLocator {
    match text_field(record, external_id_field).or_else(|| text_field(record, "id")) {
        Some(id) => RecordLocator::id(id),
        None => RecordLocator::id(format!(
            "#{} of the page (no {external_id_field})",
            position + 1
        )),
    }
}

/// A string or number field of a record as text; blank text names nothing.
pub(crate) fn text_field(record: &Value, key: &str) -> Option<String> {
    record
        .get(key)
        .and_then(scalar_text)
        .filter(|t| !t.trim().is_empty())
}

/// The field holding the ERP's update time: `remoteUpdatedAt`, else (Alloy 2023-12)
/// `updatedTimestamp`.
fn updated_key(record: &Value) -> &'static str {
    match record.get(REMOTE_UPDATED_AT) {
        Some(v) if !v.is_null() => REMOTE_UPDATED_AT,
        _ if record.get(UPDATED_TIMESTAMP).is_some_and(|v| !v.is_null()) => UPDATED_TIMESTAMP,
        _ => REMOTE_UPDATED_AT,
    }
}

/// `remoteUpdatedAt`, when readable, whatever else is wrong with the record: the cursor moves
/// past bad records too, since the engine records them as failed.
pub(crate) fn updated_at(record: &Value) -> Option<DateTime<Utc>> {
    let text = timestamp_text(record.get(updated_key(record))?).ok()??;
    crate::domain::invoice::parse_timestamp(&text)
}

/// Reads one 004 invoice into a [`RawInvoice`]; type problems name the canonical field.
#[cfg(test)]
pub(crate) fn raw_invoice(
    source: &str,
    locator: &RecordLocator,
    record: &Value,
) -> Result<RawInvoice, RecordError> {
    raw_invoice_by(source, locator, record, REMOTE_ID)
}

/// [`raw_invoice`] with the ERP id read from `external_id_field`.
pub(crate) fn raw_invoice_by(
    source: &str,
    locator: &RecordLocator,
    record: &Value,
    external_id_field: &str,
) -> Result<RawInvoice, RecordError> {
    let Value::Object(object) = record else {
        return Err(RecordError::whole(
            source,
            locator.clone(),
            format!("the invoice is {}, not an object", kind_of(record)),
        ));
    };
    let r = Reader {
        object,
        source,
        locator,
        prefix: String::new(),
    };
    let currency = r.text("currency", "currency")?;
    let status = r.text("invoiceStatus", "invoiceStatus")?;
    let status = status.as_deref().map(status_kind);
    let line_items = line_items(&r, currency.as_deref())?;
    Ok(RawInvoice {
        external_id: r.text(external_id_field, "external_id")?,
        external_customer_id: r.text("customerId", "external_customer_id")?,
        invoice_number: r.text("invoiceNumber", "invoice_number")?,
        issue_date: r.date("issueDate", "issue_date")?,
        due_date: r.date("dueDate", "due_date")?,
        currency,
        total: r.amount("totalAmount", "total")?,
        open_balance: r.amount("balance", "open_balance")?,
        subtotal: r.amount("subTotal", "subtotal")?,
        tax: r.amount("totalTaxAmount", "tax")?,
        discount: r.amount("totalDiscount", "discount")?,
        line_items,
        po_number: po_number(&r)?,
        memo: r.text("memo", "memo")?,
        extra_fields: extra_fields(&r)?,
        updated_at: r.timestamp(updated_key(record), "updated_at")?,
        voided: status == Some(StatusKind::Voided),
        deleted: r.flag("remoteDeleted", "deleted")? || status == Some(StatusKind::Deleted),
        ..RawInvoice::default()
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusKind {
    Voided,
    Deleted,
    Other,
}

fn status_kind(status: &str) -> StatusKind {
    let folded: String = status
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    match folded.as_str() {
        "void" | "voided" | "cancelled" | "canceled" => StatusKind::Voided,
        "deleted" => StatusKind::Deleted,
        _ => StatusKind::Other,
    }
}

fn line_items(
    r: &Reader<'_>,
    invoice_currency: Option<&str>,
) -> Result<Vec<RawLineItem>, RecordError> {
    let lines: Vec<&Value> = match r.object.get("lineItems") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(lines)) => lines.iter().collect(),
        // The request docs type `lineItems` as an object: one line.
        Some(line @ Value::Object(_)) => vec![line],
        Some(other) => {
            return Err(r.fail(
                "line_items",
                format!("`lineItems` is {}, not an array", kind_of(other)),
            ))
        }
    };
    lines
        .into_iter()
        .enumerate()
        .map(|(index, line)| line_item(r, index, line, invoice_currency))
        .collect()
}

fn line_item(
    r: &Reader<'_>,
    index: usize,
    line: &Value,
    invoice_currency: Option<&str>,
) -> Result<RawLineItem, RecordError> {
    let prefix = format!("line_items[{index}]");
    let Value::Object(object) = line else {
        return Err(r.fail(
            &prefix,
            format!("`lineItems[{index}]` is {}, not an object", kind_of(line)),
        ));
    };
    let l = Reader {
        object,
        source: r.source,
        locator: r.locator,
        prefix: format!("{prefix}."),
    };
    // Checked only against a valid invoice currency: a bad one is reported as `currency`.
    let invoice_currency = invoice_currency.and_then(|c| Currency::parse(c).ok());
    if let (Some(line_currency), Some(invoice_currency)) =
        (l.text("currency", "currency")?, invoice_currency)
    {
        if Currency::parse(&line_currency).ok() != Some(invoice_currency) {
            return Err(l.fail(
                "currency",
                format!(
                    "the line is in `{}` but the invoice in `{}`",
                    line_currency.trim(),
                    invoice_currency.code()
                ),
            ));
        }
    }
    let mut quantity = l.amount("quantity", "quantity")?;
    let mut unit_price = l.amount("unitPrice", "unit_price")?;
    let line_total = l.amount("totalAmount", "line_total")?;
    if quantity.is_none() && unit_price.is_none() && line_total.is_some() {
        quantity = Some("1".to_owned());
        unit_price = line_total.clone();
    }
    Ok(RawLineItem {
        sku: l.text("accountingItemId", "sku")?,
        description: l.text("description", "description")?,
        quantity,
        unit_price,
        line_total,
    })
}

fn po_number(r: &Reader<'_>) -> Result<Option<String>, RecordError> {
    let first = match r.object.get("purchaseOrders") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(orders)) => orders.first(),
        Some(other) => {
            return Err(r.fail(
                "po_number",
                format!("`purchaseOrders` is {}, not an array", kind_of(other)),
            ))
        }
    };
    Ok(match first {
        None | Some(Value::Null) => None,
        Some(Value::Object(order)) => {
            ["number", "purchaseOrderNumber", "poNumber", REMOTE_ID, "id"]
                .iter()
                .find_map(|key| order.get(*key).and_then(scalar_text))
        }
        Some(other) => scalar_text(other),
    })
}

fn extra_fields(r: &Reader<'_>) -> Result<std::collections::BTreeMap<String, String>, RecordError> {
    match r.object.get("remoteFields") {
        None | Some(Value::Null) => Ok(Default::default()),
        Some(Value::Object(fields)) => Ok(fields
            .iter()
            .filter_map(|(key, value)| match value {
                Value::String(text) => Some((key.clone(), text.clone())),
                Value::Number(n) => Some((key.clone(), n.to_string())),
                _ => None,
            })
            .collect()),
        Some(other) => Err(r.fail(
            "extra_fields",
            format!("`remoteFields` is {}, not an object", kind_of(other)),
        )),
    }
}

/// Reads fields of one JSON object, naming the canonical field in errors.
struct Reader<'a> {
    object: &'a Map<String, Value>,
    source: &'a str,
    locator: &'a RecordLocator,
    /// `line_items[2].` inside a line.
    prefix: String,
}

impl Reader<'_> {
    fn fail(&self, field: &str, reason: String) -> RecordError {
        let field = if field.starts_with(&self.prefix) {
            field.to_owned()
        } else {
            format!("{}{field}", self.prefix)
        };
        RecordError::new(self.source, self.locator.clone(), Some(&field), reason)
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.object.get(key).filter(|v| !v.is_null())
    }

    /// A string, or a number as its text (ids often arrive as numbers).
    fn text(&self, key: &str, field: &str) -> Result<Option<String>, RecordError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => scalar_text(value).map(Some).ok_or_else(|| {
                self.fail(
                    field,
                    format!("`{key}` is {}, expected text", kind_of(value)),
                )
            }),
        }
    }

    /// A number or a decimal string, as exact text; validation of the text is the domain's.
    fn amount(&self, key: &str, field: &str) -> Result<Option<String>, RecordError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => amount_text(value).map(Some).ok_or_else(|| {
                self.fail(
                    field,
                    format!(
                        "`{key}` is {}, expected a number or a decimal string",
                        kind_of(value)
                    ),
                )
            }),
        }
    }

    fn date(&self, key: &str, field: &str) -> Result<Option<String>, RecordError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let unix = |secs: i64| {
            unix_time(secs)
                .map(|t| t.date_naive().to_string())
                .ok_or_else(|| self.fail(field, format!("`{key}` {secs} is out of range")))
        };
        match value {
            Value::Number(n) => match n.as_i64() {
                Some(0) => Ok(None),
                Some(secs) => unix(secs).map(Some),
                None => Err(self.fail(
                    field,
                    format!("`{key}` {n} is not a whole number of seconds"),
                )),
            },
            Value::String(text) => match text.trim().parse::<i64>() {
                Ok(0) => Ok(None),
                Ok(secs) => unix(secs).map(Some),
                // Dates as text are checked by the domain, which names the field.
                Err(_) => Ok(Some(text.clone())),
            },
            other => Err(self.fail(
                field,
                format!("`{key}` is {}, expected a date", kind_of(other)),
            )),
        }
    }

    fn timestamp(&self, key: &str, field: &str) -> Result<Option<String>, RecordError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => timestamp_text(value).map_err(|reason| self.fail(field, reason)),
        }
    }

    /// A boolean; also `"true"`/`"false"` and `1`/`0`, which some connectors send.
    fn flag(&self, key: &str, field: &str) -> Result<bool, RecordError> {
        let bad = |value: &Value| {
            self.fail(
                field,
                format!("`{key}` is {}, expected true or false", kind_of(value)),
            )
        };
        match self.get(key) {
            None => Ok(false),
            Some(Value::Bool(flag)) => Ok(*flag),
            Some(value @ Value::String(text)) => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" | "" => Ok(false),
                _ => Err(bad(value)),
            },
            Some(value @ Value::Number(n)) => match n.as_u64() {
                Some(1) => Ok(true),
                Some(0) => Ok(false),
                _ => Err(bad(value)),
            },
            Some(value) => Err(bad(value)),
        }
    }
}

/// A timestamp as RFC 3339 text: strings pass through (the domain checks them), numbers are
/// Unix seconds (or milliseconds, see [`MILLIS_THRESHOLD`]).
fn timestamp_text(value: &Value) -> Result<Option<String>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text.clone())),
        Value::Number(n) => {
            let secs = n
                .as_i64()
                .ok_or_else(|| format!("`{n}` is not a whole number of seconds"))?;
            unix_time(secs)
                .map(|t| Some(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)))
                .ok_or_else(|| format!("`{secs}` is out of range"))
        }
        other => Err(format!("a timestamp cannot be {}", kind_of(other))),
    }
}

fn unix_time(value: i64) -> Option<DateTime<Utc>> {
    if value.abs() >= MILLIS_THRESHOLD {
        DateTime::from_timestamp_millis(value)
    } else {
        DateTime::from_timestamp(value, 0)
    }
}

/// Strings and numbers as text; other values have none.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn field_list(object: &Map<String, Value>) -> String {
    const SHOWN: usize = 8;
    let mut keys: Vec<&str> = object.keys().map(String::as_str).take(SHOWN).collect();
    if object.len() > SHOWN {
        keys.push("...");
    }
    if keys.is_empty() {
        "none".to_owned()
    } else {
        keys.join(", ")
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
