//! CSV exports: one row per line item; consecutive rows with the same `external_id` are one
//! invoice. Invoice-level columns may be repeated on every row or given once: their non-empty
//! values must agree. Read record by record; only the current invoice's rows are held.
//!
//! Records are split by [`split`], which refuses a malformed row on its own line and reads on
//! from the next line, so that a broken quote never takes good rows with it. A malformed row
//! still spoils the invoice it belongs to (taking that invoice without the row would silently
//! drop a line); when its id cannot be read, both neighbouring invoices are refused, since it
//! may belong to either.

mod columns;
mod split;

use std::io::{self, Read};
use std::sync::Arc;

use crate::config::RecordLimits;
use crate::domain::{RawAddress, RawInvoice, RawLineItem, RecordError};

use self::columns::{column_name, parse_flag, set_address_part, Column, Field};
use self::split::{RawRecord, Splitter};

use super::reader::{locator, take, Record, Records};
use super::rejects::{RawText, Rejection};
use super::seen::SeenIds;

/// An invoice with more rows is refused (and its rows skipped) rather than held in memory.
pub(super) const MAX_ROWS_PER_INVOICE: usize = 10_000;

/// A header the adapter cannot read the rows of.
#[derive(Debug)]
pub(super) enum HeaderProblem {
    Io(io::Error),
    Refused { reason: String, raw: String },
}

/// Why a row cannot be used, with the column when one is at fault.
#[derive(Debug)]
struct Fault {
    field: Option<String>,
    reason: String,
}

struct Row {
    line: u64,
    /// Read even from a malformed row when its id cell is readable, so the row still joins
    /// (and spoils) its invoice instead of leaving it quietly short of a line.
    id: Option<Box<str>>,
    /// The id cell as written, blanks included: rows of one invoice spell it the same way.
    spelt: Box<str>,
    cells: Result<Vec<String>, Fault>,
    raw: String,
    /// Malformed, and its id cannot be read: it may belong to the invoice before or after it.
    orphan: bool,
}

/// The rows of one invoice so far.
struct Group {
    id: Option<Box<str>>,
    line: u64,
    /// Per column: the first non-empty value and its line (line-item columns stay empty).
    values: Vec<Option<(String, u64)>>,
    lines: Vec<RawLineItem>,
    fault: Option<Fault>,
    raw: RawText,
    rows: usize,
}

pub(super) struct CsvRecords<R: Read> {
    source: Arc<str>,
    file: Arc<str>,
    rows: Splitter<R>,
    columns: Vec<Column>,
    id_at: usize,
    /// The first row of the next invoice, read to know the current one had ended.
    pending: Option<Row>,
    /// Ids seen in this file and their first line: an invoice's rows must be consecutive.
    seen: SeenIds,
    /// The line of an orphan row just handed out: the invoice after it is refused too.
    orphan_before: Option<u64>,
    limits: Arc<RecordLimits>,
}

impl<R: Read + Send> CsvRecords<R> {
    pub(super) fn new(
        source: Arc<str>,
        file: Arc<str>,
        input: R,
        limits: Arc<RecordLimits>,
    ) -> Result<Self, HeaderProblem> {
        let mut rows = Splitter::new(input);
        let header = rows.next_record().map_err(HeaderProblem::Io)?;
        let raw = header
            .as_ref()
            .map(|h| String::from_utf8_lossy(&h.text).into_owned())
            .unwrap_or_default();
        let refuse = |reason: String| HeaderProblem::Refused {
            reason: format!("file refused: {reason}"),
            raw: RawText::of(&raw),
        };
        let header = match header {
            Some(RawRecord {
                malformed: Some(why),
                ..
            }) => return Err(refuse(format!("the header line is malformed: {why}"))),
            Some(header) => header.cells,
            None => Vec::new(),
        };
        if header.iter().all(|h| h.iter().all(u8::is_ascii_whitespace)) {
            return Err(refuse(
                "no header line (the first line names the columns)".into(),
            ));
        }
        let mut columns = Vec::with_capacity(header.len());
        let (mut unknown, mut duplicate) = (Vec::new(), Vec::new());
        for cell in &header {
            let name = std::str::from_utf8(cell.as_slice())
                .map_err(|_| refuse("the header line is not UTF-8 text".into()))?
                .trim_start_matches('\u{feff}')
                .trim();
            match Column::parse(name) {
                Some(column) if columns.contains(&column) => duplicate.push(format!("`{name}`")),
                Some(column) => columns.push(column),
                None => {
                    unknown.push(format!("`{name}`"));
                    // Keeps positions aligned; the file is refused anyway.
                    columns.push(Column::Extra("".into()));
                }
            }
        }
        let missing: Vec<String> = Field::REQUIRED
            .into_iter()
            .filter(|f| !columns.contains(&Column::Invoice(*f)))
            .map(|f| format!("`{}`", f.name()))
            .collect();
        let mut problems = Vec::new();
        if !unknown.is_empty() {
            problems.push(format!(
                "unknown columns {} (a misspelt column must not silently drop data; see docs/erp-export-format.md)",
                unknown.join(", ")
            ));
        }
        if !duplicate.is_empty() {
            problems.push(format!("repeated columns {}", duplicate.join(", ")));
        }
        if !missing.is_empty() {
            problems.push(format!("missing required columns {}", missing.join(", ")));
        }
        if !problems.is_empty() {
            return Err(refuse(problems.join("; ")));
        }
        let id_at = columns
            .iter()
            .position(|c| *c == Column::Invoice(Field::ExternalId))
            .unwrap_or(0);
        rows.set_width(columns.len());
        Ok(Self {
            source,
            file,
            rows,
            columns,
            id_at,
            pending: None,
            seen: SeenIds::default(),
            orphan_before: None,
            limits,
        })
    }

    /// The next row that is not blank (Excel pads sheets with rows of bare commas).
    fn read_row(&mut self) -> io::Result<Option<Row>> {
        loop {
            let Some(record) = self.rows.next_record()? else {
                return Ok(None);
            };
            let blank = record
                .cells
                .iter()
                .all(|c| c.iter().all(u8::is_ascii_whitespace));
            if blank && record.malformed.is_none() {
                continue;
            }
            let line = record.line;
            let spelt = record
                .cells
                .get(self.id_at)
                .filter(|_| self.id_at < record.sound)
                .and_then(|c| std::str::from_utf8(c).ok());
            let id = spelt
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(Box::from);
            let spelt: Box<str> = spelt.unwrap_or_default().into();
            let orphan = record.malformed.is_some() && id.is_none();
            let cells = if let Some(why) = record.malformed {
                Err(Fault {
                    field: None,
                    reason: why,
                })
            } else if record.cells.len() != self.columns.len() {
                Err(Fault {
                    field: None,
                    reason: format!(
                        "line {line} has {} fields where the header has {}",
                        record.cells.len(),
                        self.columns.len()
                    ),
                })
            } else {
                record
                    .cells
                    .into_iter()
                    .zip(&self.columns)
                    .map(|(cell, column)| {
                        String::from_utf8(cell)
                            .map(|text| text.trim().to_owned())
                            .map_err(|_| Fault {
                                field: Some(column_name(column)),
                                reason: format!("line {line}: not UTF-8 text"),
                            })
                    })
                    .collect()
            };
            return Ok(Some(Row {
                line,
                id,
                spelt,
                cells,
                raw: String::from_utf8_lossy(&record.text).into_owned(),
                orphan,
            }));
        }
    }

    fn start(&mut self, first: &Row) -> Group {
        let mut group = Group {
            id: first.id.clone(),
            line: first.line,
            values: vec![None; self.columns.len()],
            lines: Vec::new(),
            fault: None,
            raw: RawText::default(),
            rows: 0,
        };
        if let Some(id) = &first.id {
            if let Err(reason) = self.seen.first(id, &first.spelt, first.line) {
                group.fault = Some(Fault {
                    field: Some(Field::ExternalId.name().to_owned()),
                    reason,
                });
            }
            // The cause, also when the row split an invoice in two (then a repeated id too).
            if let Some(orphan) = self.orphan_before.take() {
                group.fault = Some(orphan_fault(orphan, "before"));
            }
        }
        group
    }

    fn add(&self, group: &mut Group, row: Row) {
        group.rows += 1;
        group.raw.push_line(&row.raw);
        if group.fault.is_some() {
            return;
        }
        if group.rows > MAX_ROWS_PER_INVOICE {
            group.fault = Some(Fault {
                field: None,
                reason: format!("more than {MAX_ROWS_PER_INVOICE} rows for one invoice; split it"),
            });
            group.lines = Vec::new();
            return;
        }
        let cells = match row.cells {
            Ok(cells) => cells,
            Err(fault) => {
                group.fault = Some(fault);
                return;
            }
        };
        if let Err(fault) = self.take_cells(group, row.line, cells) {
            group.fault = Some(fault);
        }
    }

    fn take_cells(&self, group: &mut Group, line: u64, cells: Vec<String>) -> Result<(), Fault> {
        let mut item: Option<RawLineItem> = None;
        for (at, (cell, column)) in cells.into_iter().zip(&self.columns).enumerate() {
            if cell.is_empty() {
                continue;
            }
            let value = match column {
                Column::Line(part) => {
                    part.set(item.get_or_insert_with(RawLineItem::default), cell);
                    continue;
                }
                Column::Invoice(f @ (Field::Voided | Field::Deleted)) => parse_flag(&cell)
                    .ok_or_else(|| Fault {
                        field: Some(f.name().to_owned()),
                        reason: format!(
                            "line {line}: `{cell}` is not a boolean (true, false, 1, 0 or empty)"
                        ),
                    })?,
                _ => cell,
            };
            match &group.values[at] {
                None => group.values[at] = Some((value, line)),
                Some((earlier, _)) if *earlier == value => {}
                Some((earlier, earlier_line)) => {
                    return Err(Fault {
                        field: Some(column_name(column)),
                        reason: format!(
                            "`{value}` on line {line} differs from `{earlier}` on line {earlier_line}: \
                             invoice-level columns must be empty or the same on every row of an invoice"
                        ),
                    })
                }
            }
        }
        group.lines.extend(item);
        Ok(())
    }

    fn finish(&self, group: Group) -> Record {
        let at = locator(&self.file, group.line, group.id.as_deref());
        let raw_text = group.raw.into_string();
        if let Some(fault) = group.fault {
            return Err(Rejection {
                error: RecordError::new(
                    self.source.clone(),
                    at,
                    fault.field.as_deref(),
                    fault.reason,
                ),
                raw: raw_text,
            });
        }
        let mut raw = RawInvoice {
            line_items: group.lines,
            ..RawInvoice::default()
        };
        for (value, column) in group.values.into_iter().zip(&self.columns) {
            let Some((value, _)) = value else {
                continue;
            };
            match column {
                Column::Invoice(f) => f.set(&mut raw, value),
                Column::Line(_) => {}
                Column::Billing(part) => set_address_part(
                    raw.billing_address.get_or_insert_with(RawAddress::default),
                    *part,
                    value,
                ),
                Column::Shipping(part) => {
                    if raw.shipping_addresses.is_empty() {
                        raw.shipping_addresses.push(RawAddress::default());
                    }
                    if let Some(address) = raw.shipping_addresses.first_mut() {
                        set_address_part(address, *part, value);
                    }
                }
                Column::Extra(key) => {
                    raw.extra_fields.insert(key.to_string(), value);
                }
            }
        }
        take(&self.source, at, raw, &self.limits).map_err(|error| Rejection {
            error,
            raw: raw_text,
        })
    }
}

impl<R: Read + Send> Records for CsvRecords<R> {
    fn next_record(&mut self) -> io::Result<Option<Record>> {
        let first = match self.pending.take() {
            Some(row) => row,
            None => match self.read_row()? {
                Some(row) => row,
                None => return Ok(None),
            },
        };
        if first.orphan {
            self.orphan_before = Some(first.line);
        } else if first.id.is_none() {
            // A blank id cell on a well-formed row is that row's own problem.
            self.orphan_before = None;
        }
        let mut group = self.start(&first);
        let (id, spelt) = (first.id.clone(), first.spelt.clone());
        self.add(&mut group, first);
        // A row without an id is a record of its own: nothing says it belongs to a neighbour.
        if id.is_some() {
            while let Some(row) = self.read_row()? {
                if row.id != id || row.spelt != spelt {
                    if row.orphan {
                        group
                            .fault
                            .get_or_insert_with(|| orphan_fault(row.line, "after"));
                    }
                    self.pending = Some(row);
                    break;
                }
                self.add(&mut group, row);
            }
        }
        Ok(Some(self.finish(group)))
    }
}

/// Why an invoice next to a malformed row whose id cannot be read is refused.
fn orphan_fault(line: u64, side: &str) -> Fault {
    Fault {
        field: None,
        reason: format!(
            "line {line}, right {side} this invoice's rows, is malformed and its external_id \
             cannot be read: it may be a row of this invoice, which is refused rather than \
             taken without it"
        ),
    }
}

#[cfg(test)]
mod tests;
