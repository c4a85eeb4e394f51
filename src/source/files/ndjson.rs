//! NDJSON exports: one `RawInvoice` JSON object per line, read line by line.

use std::io::{self, BufRead, Read};
use std::sync::Arc;

use crate::config::RecordLimits;
use crate::domain::{RawInvoice, RecordError};

use super::reader::{locator, take, Record, Records};
use super::rejects::{RawText, Rejection};
use super::seen::SeenIds;

/// A longer line is refused without being held in memory (a thousand-line invoice is ~300 KiB).
pub(super) const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

pub(super) struct NdjsonRecords<R> {
    source: Arc<str>,
    file: Arc<str>,
    input: R,
    line: u64,
    buf: Vec<u8>,
    /// Ids seen in this file: the first record of an id stands, later ones are refused.
    seen: SeenIds,
    limits: Arc<RecordLimits>,
}

impl<R: BufRead + Send> NdjsonRecords<R> {
    pub(super) fn new(
        source: Arc<str>,
        file: Arc<str>,
        input: R,
        limits: Arc<RecordLimits>,
    ) -> Self {
        Self {
            source,
            file,
            input,
            line: 0,
            buf: Vec::new(),
            seen: SeenIds::default(),
            limits,
        }
    }

    fn reject(&self, id: Option<&str>, reason: String, raw: &str) -> Record {
        Err(Rejection {
            error: RecordError::whole(
                self.source.clone(),
                locator(&self.file, self.line, id),
                reason,
            ),
            raw: RawText::of(raw),
        })
    }
}

impl<R: BufRead + Send> Records for NdjsonRecords<R> {
    fn next_record(&mut self) -> io::Result<Option<Record>> {
        loop {
            self.buf.clear();
            let complete = match read_line(&mut self.input, &mut self.buf)? {
                Line::End => return Ok(None),
                Line::Complete => true,
                Line::TooLong => false,
            };
            self.line += 1;
            if !complete {
                let raw = String::from_utf8_lossy(&self.buf[..self.buf.len().min(1024)]);
                let reason = format!("line longer than {MAX_LINE_BYTES} bytes; split the invoice");
                return Ok(Some(self.reject(None, reason, &raw)));
            }
            let bytes = trim_line_end(&self.buf);
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let text = match std::str::from_utf8(bytes) {
                Ok(text) => text,
                Err(e) => {
                    let raw = String::from_utf8_lossy(bytes).into_owned();
                    let reason = format!(
                        "not UTF-8 text (bad byte at column {})",
                        e.valid_up_to() + 1
                    );
                    return Ok(Some(self.reject(None, reason, &raw)));
                }
            };
            let (raw, spelt) = match read_raw(text) {
                Ok(raw) => {
                    let spelt = raw.external_id.clone();
                    (Ok(raw), spelt)
                }
                Err(bad) => {
                    let spelt = bad.external_id.clone();
                    (Err(bad), spelt)
                }
            };
            let id = spelt.as_deref().map(str::trim).filter(|id| !id.is_empty());
            if let (Some(id), Some(spelt)) = (id, spelt.as_deref()) {
                if let Err(reason) = self.seen.first(id, spelt, self.line) {
                    return Ok(Some(Err(Rejection {
                        error: RecordError::new(
                            self.source.clone(),
                            locator(&self.file, self.line, Some(id)),
                            Some("external_id"),
                            reason,
                        ),
                        raw: RawText::of(text),
                    })));
                }
            }
            return Ok(Some(match raw {
                Ok(raw) => {
                    let at = locator(&self.file, self.line, id);
                    take(&self.source, at, raw, &self.limits).map_err(|error| Rejection {
                        error,
                        raw: RawText::of(text),
                    })
                }
                Err(bad) => self.reject(id, bad.reason, text),
            }));
        }
    }
}

/// Why a line is not a `RawInvoice`, and its id when the JSON at least says it.
#[derive(Debug)]
pub(super) struct BadLine {
    pub external_id: Option<String>,
    pub reason: String,
}

/// One line of the canonical schema; the reason reads well for an operator.
pub(super) fn read_raw(text: &str) -> Result<RawInvoice, BadLine> {
    serde_json::from_str::<RawInvoice>(text).map_err(|e| {
        let external_id = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| {
                v.get("external_id")?
                    .as_str()
                    .map(|id| id.trim().to_owned())
            })
            .filter(|id| !id.is_empty());
        BadLine {
            external_id,
            reason: describe(&e),
        }
    })
}

fn describe(e: &serde_json::Error) -> String {
    let full = e.to_string();
    // serde_json counts lines inside the text it was given: always "line 1" here.
    let message = full
        .rsplit_once(" at line ")
        .map_or(full.as_str(), |(m, _)| m);
    let kind = if e.is_data() {
        "not a record of the canonical schema"
    } else {
        "not valid JSON"
    };
    let hint = if message.starts_with("invalid type: integer")
        || message.starts_with("invalid type: floating point")
    {
        " (values are JSON strings: amounts too, such as \"110.00\", so that their digits stay exact)"
    } else {
        ""
    };
    format!("{kind}: {message}{hint} (column {})", e.column())
}

enum Line {
    End,
    Complete,
    TooLong,
}

/// Reads up to and including the next `\n`, holding at most [`MAX_LINE_BYTES`]: the rest of a
/// longer line is skipped without being kept.
fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Line> {
    let limit = u64::try_from(MAX_LINE_BYTES).unwrap_or(u64::MAX);
    let n = input.by_ref().take(limit + 1).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(Line::End);
    }
    if buf.len() <= MAX_LINE_BYTES || buf.last() == Some(&b'\n') {
        return Ok(Line::Complete);
    }
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        if let Some(pos) = chunk.iter().position(|&b| b == b'\n') {
            input.consume(pos + 1);
            break;
        }
        let len = chunk.len();
        input.consume(len);
    }
    Ok(Line::TooLong)
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RawAddress, RawLineItem};
    use proptest::prelude::*;
    use serde_json::{json, Map, Value};

    /// The canonical NDJSON line of `raw` (the schema is `RawInvoice`'s serde names).
    pub fn to_line(raw: &RawInvoice) -> String {
        fn opt(map: &mut Map<String, Value>, key: &str, value: &Option<String>) {
            if let Some(v) = value {
                map.insert(key.to_owned(), json!(v));
            }
        }
        fn address(a: &RawAddress) -> Value {
            let mut m = Map::new();
            opt(&mut m, "first_name", &a.first_name);
            opt(&mut m, "last_name", &a.last_name);
            opt(&mut m, "company", &a.company);
            opt(&mut m, "street1", &a.street1);
            opt(&mut m, "street2", &a.street2);
            opt(&mut m, "city", &a.city);
            opt(&mut m, "state", &a.state);
            opt(&mut m, "zip", &a.zip);
            opt(&mut m, "country", &a.country);
            Value::Object(m)
        }
        let mut m = Map::new();
        opt(&mut m, "external_id", &raw.external_id);
        opt(&mut m, "external_customer_id", &raw.external_customer_id);
        opt(&mut m, "invoice_number", &raw.invoice_number);
        opt(&mut m, "type", &raw.kind);
        opt(&mut m, "issue_date", &raw.issue_date);
        opt(&mut m, "due_date", &raw.due_date);
        opt(&mut m, "currency", &raw.currency);
        opt(&mut m, "total", &raw.total);
        opt(&mut m, "open_balance", &raw.open_balance);
        opt(&mut m, "subtotal", &raw.subtotal);
        opt(&mut m, "tax", &raw.tax);
        opt(&mut m, "discount", &raw.discount);
        opt(&mut m, "freight", &raw.freight);
        let lines: Vec<Value> = raw
            .line_items
            .iter()
            .map(|l: &RawLineItem| {
                let mut li = Map::new();
                opt(&mut li, "sku", &l.sku);
                opt(&mut li, "description", &l.description);
                opt(&mut li, "quantity", &l.quantity);
                opt(&mut li, "unit_price", &l.unit_price);
                opt(&mut li, "line_total", &l.line_total);
                Value::Object(li)
            })
            .collect();
        m.insert("line_items".into(), Value::Array(lines));
        if let Some(b) = &raw.billing_address {
            m.insert("billing_address".into(), address(b));
        }
        m.insert(
            "shipping_addresses".into(),
            Value::Array(raw.shipping_addresses.iter().map(address).collect()),
        );
        opt(&mut m, "po_number", &raw.po_number);
        opt(&mut m, "order_number", &raw.order_number);
        opt(&mut m, "terms", &raw.terms);
        opt(&mut m, "memo", &raw.memo);
        opt(&mut m, "pdf_url", &raw.pdf_url);
        m.insert("extra_fields".into(), json!(raw.extra_fields));
        opt(&mut m, "updated_at", &raw.updated_at);
        m.insert("voided".into(), json!(raw.voided));
        m.insert("deleted".into(), json!(raw.deleted));
        Value::Object(m).to_string()
    }

    fn text() -> impl Strategy<Value = Option<String>> {
        prop::option::of("\\PC{0,12}|[\"\\\\\n\t\u{2028}]{1,3}")
    }

    fn address() -> impl Strategy<Value = RawAddress> {
        (
            text(),
            text(),
            text(),
            text(),
            text(),
            text(),
            text(),
            text(),
            text(),
        )
            .prop_map(
                |(first_name, last_name, company, street1, street2, city, state, zip, country)| {
                    RawAddress {
                        first_name,
                        last_name,
                        company,
                        street1,
                        street2,
                        city,
                        state,
                        zip,
                        country,
                    }
                },
            )
    }

    fn line_item() -> impl Strategy<Value = RawLineItem> {
        (text(), text(), text(), text(), text()).prop_map(
            |(sku, description, quantity, unit_price, line_total)| RawLineItem {
                sku,
                description,
                quantity,
                unit_price,
                line_total,
            },
        )
    }

    fn raw_invoice() -> impl Strategy<Value = RawInvoice> {
        let ids = (
            text(),
            text(),
            text(),
            text(),
            text(),
            text(),
            text(),
            text(),
        );
        let amounts = (text(), text(), text(), text(), text(), text(), text());
        let rest = (
            prop::collection::vec(line_item(), 0..4),
            prop::option::of(address()),
            prop::collection::vec(address(), 0..3),
            prop::collection::btree_map("\\PC{0,8}", "\\PC{0,8}", 0..4),
            any::<bool>(),
            any::<bool>(),
        );
        let texts = (text(), text(), text(), text());
        (ids, amounts, rest, texts).prop_map(
            |(
                (
                    external_id,
                    external_customer_id,
                    invoice_number,
                    kind,
                    issue_date,
                    due_date,
                    currency,
                    po_number,
                ),
                (total, open_balance, subtotal, tax, discount, freight, memo),
                (line_items, billing_address, shipping_addresses, extra_fields, voided, deleted),
                (order_number, terms, pdf_url, updated_at),
            )| RawInvoice {
                external_id,
                external_customer_id,
                invoice_number,
                kind,
                issue_date,
                due_date,
                currency,
                total,
                open_balance,
                subtotal,
                tax,
                discount,
                freight,
                line_items,
                billing_address,
                shipping_addresses,
                po_number,
                order_number,
                terms,
                memo,
                pdf_url,
                extra_fields,
                updated_at,
                voided,
                deleted,
            },
        )
    }

    proptest! {
        #[test]
        fn any_raw_invoice_round_trips_through_a_line(raw in raw_invoice()) {
            let line = to_line(&raw);
            prop_assert!(!line.contains('\n'), "one record, one line");
            prop_assert_eq!(read_raw(&line).unwrap(), raw);
        }
    }

    fn records(input: &[u8]) -> Vec<Record> {
        let mut r = NdjsonRecords::new("erp".into(), "a.ndjson".into(), input, Arc::default());
        std::iter::from_fn(|| r.next_record().unwrap()).collect()
    }

    #[test]
    fn blank_lines_are_skipped_and_lines_counted() {
        let good = to_line(&crate::domain::invoice::tests::raw());
        let input = format!("\n{good}\r\n   \n{{\"external_id\":\"X-9\",\"totl\":\"1\"}}\n");
        let out = records(input.as_bytes());
        assert_eq!(out.len(), 2);
        assert!(out[0].is_ok());
        let bad = out[1].as_ref().unwrap_err();
        assert_eq!(
            bad.error.to_string().split(':').next(),
            Some("source erp, record X-9 (a.ndjson line 4)")
        );
        assert!(
            bad.error.reason.contains("unknown field `totl`"),
            "{}",
            bad.error.reason
        );
        assert!(!bad.error.reason.contains("line 1"), "{}", bad.error.reason);
    }

    #[test]
    fn numbers_for_amounts_get_a_hint_and_bad_bytes_a_row_error() {
        let out = records(b"{\"total\": 12.5}\n\xff\xfe{}\n");
        let hint = &out[0].as_ref().unwrap_err().error.reason;
        assert!(hint.contains("amounts too"), "{hint}");
        let utf8 = &out[1].as_ref().unwrap_err().error;
        assert!(utf8.reason.contains("not UTF-8"), "{utf8}");
    }

    #[test]
    fn an_overlong_line_is_skipped_without_losing_the_next() {
        let good = to_line(&crate::domain::invoice::tests::raw());
        let mut input = vec![b'x'; MAX_LINE_BYTES + 10];
        input.push(b'\n');
        input.extend_from_slice(good.as_bytes());
        let out = records(&input);
        assert_eq!(out.len(), 2);
        assert!(out[0]
            .as_ref()
            .unwrap_err()
            .error
            .reason
            .contains("longer than"));
        assert!(out[1].is_ok());
    }
}
