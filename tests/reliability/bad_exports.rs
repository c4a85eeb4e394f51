//! Malformed export files never change or hide a good invoice: a broken CSV quote is refused on
//! its own line and reading resumes at the next line; an id repeated in one export (or spelt
//! twice, once with blanks around it) is refused and reported the same way in CSV and NDJSON.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::path::Path;

use futures::StreamExt;

use b2b_invoice_sync::config::{FilesSettings, ReadyRule};
use b2b_invoice_sync::domain::{RecordError, RecordLocator, SourceInvoice};
use b2b_invoice_sync::source::files::FilesSource;
use b2b_invoice_sync::source::{Cursor, Source};

const SOURCE: &str = "erp";

const HEADER: &str = "external_id,external_customer_id,invoice_number,currency,total,open_balance,memo,line_sku,line_description,line_quantity,line_unit_price,line_total,billing_company";

/// One CSV row of the test export, before it is written.
#[derive(Debug, Clone)]
struct Row {
    id: String,
    cells: Vec<String>,
}

/// An export of `invoices` invoices of 1 to 4 rows each, with quoted descriptions (commas,
/// escaped quotes), a memo spanning two lines and an empty quoted cell: every legitimate use of
/// quotes the format allows.
fn export_rows(invoices: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    for i in 0..invoices {
        let id = format!("{}", 100_001 + i);
        let lines = i % 4 + 1;
        let total = 12 * lines;
        for k in 0..lines {
            let first = k == 0;
            let description = match (i + k) % 4 {
                0 => "\"Steel widget, zinc plated\"".to_owned(),
                1 => "\"Hydraulic hose 2m, \"\"high pressure\"\"\"".to_owned(),
                2 => "Flange 2 in".to_owned(),
                _ => format!("\"Bolt kit {k}\""),
            };
            let memo = if first && i % 7 == 3 {
                "\"Deliver to dock 3,\nring twice\"".to_owned()
            } else if first && i % 5 == 1 {
                "\"\"".to_owned()
            } else {
                String::new()
            };
            let invoice_cell = |text: String| if first { text } else { String::new() };
            rows.push(Row {
                id: id.clone(),
                cells: vec![
                    id.clone(),
                    invoice_cell(format!("CUST-{:05}", i % 6 + 1)),
                    invoice_cell(format!("N-{id}")),
                    invoice_cell("USD".to_owned()),
                    invoice_cell(format!("{total}.00")),
                    invoice_cell(format!("{total}.00")),
                    memo,
                    format!("SKU-{k}"),
                    description,
                    "1".to_owned(),
                    "12.00".to_owned(),
                    "12.00".to_owned(),
                    invoice_cell("\"Northwind Traders, Inc.\"".to_owned()),
                ],
            });
        }
    }
    rows
}

/// The file's text, and the first physical line of each row (the header is line 1).
fn csv_text(rows: &[Row]) -> (String, Vec<u64>) {
    let mut text = format!("{HEADER}\n");
    let mut line = 2;
    let mut starts = Vec::new();
    for row in rows {
        starts.push(line);
        let joined = row.cells.join(",");
        line += 1 + joined.matches('\n').count() as u64;
        text.push_str(&joined);
        text.push('\n');
    }
    (text, starts)
}

fn settings(dir: &Path) -> FilesSettings {
    FilesSettings {
        dir: dir.to_owned(),
        ready: ReadyRule::AtomicRename,
        page_size: NonZeroU32::new(7).expect("non-zero"),
    }
}

/// Everything the `files` source reads from one export `name` holding `text`.
async fn read_export(name: &str, text: &str) -> Vec<Result<SourceInvoice, RecordError>> {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(name), text).expect("write export");
    let source = FilesSource::new(SOURCE, &settings(dir.path())).expect("folder");
    let mut records = Vec::new();
    let mut pages = source.pages(&Cursor::default());
    while let Some(page) = pages.next().await {
        let page = page.expect("the folder reads");
        source
            .page_committed(&page.receipt)
            .await
            .expect("the file settles");
        records.extend(page.records);
    }
    records
}

fn id_of(e: &RecordError) -> Option<&str> {
    match &e.record {
        RecordLocator::Id(id) | RecordLocator::IdAtLine { id, .. } => Some(id),
        RecordLocator::Line { .. } => None,
    }
}

/// The ways a row's quotes get broken in real exports.
#[derive(Debug, Clone, Copy)]
enum Breakage {
    /// The closing quote of the description is missing.
    UnclosedDescription,
    /// A stray quote opens the sku cell and is never closed.
    StrayQuoteOpensSku,
    /// Text follows the closing quote of the description.
    TextAfterClosingQuote,
    /// A stray quote opens the id cell: the row's invoice cannot be told.
    StrayQuoteOpensId,
}

/// `row` broken as `how`; `None` when this row has nothing to break that way.
fn broken(row: &Row, how: Breakage) -> Option<Row> {
    let mut row = row.clone();
    let description = &mut row.cells[8];
    match how {
        Breakage::UnclosedDescription => {
            if !description.ends_with('"') {
                return None;
            }
            description.pop();
        }
        Breakage::TextAfterClosingQuote => {
            if !description.ends_with('"') {
                return None;
            }
            description.push_str(" (2 pcs)");
        }
        Breakage::StrayQuoteOpensSku => row.cells[7].insert(0, '"'),
        Breakage::StrayQuoteOpensId => row.cells[0].insert(0, '"'),
    }
    Some(row)
}

/// Defect 5 (issue 11): an unclosed quote made the CSV parser swallow the next rows: one
/// invoice was never synced and nothing named it, another was synced with 1 of its 4 lines.
/// Now, whichever row is broken and however, every invoice that row does not belong to comes
/// out exactly as in the intact export, and the invoice it belongs to is refused naming the
/// broken line (both neighbours when the broken row's id cannot be read).
#[tokio::test]
async fn a_broken_csv_quote_never_changes_or_hides_another_invoice() {
    let rows = export_rows(24);
    let (clean_text, starts) = csv_text(&rows);
    let clean: BTreeMap<String, SourceInvoice> = read_export("export.csv", &clean_text)
        .await
        .into_iter()
        .map(|r| {
            let inv = r
                .expect("the intact export reads without a refusal")
                .with_version(None);
            (inv.external_id.clone(), inv)
        })
        .collect();
    assert_eq!(clean.len(), 24, "every invoice of the intact export");
    assert!(
        clean
            .values()
            .any(|inv| inv.memo.as_deref() == Some("Deliver to dock 3,\nring twice")),
        "a quoted field spanning lines is read whole"
    );

    let mut cases = 0;
    for how in [
        Breakage::UnclosedDescription,
        Breakage::StrayQuoteOpensSku,
        Breakage::TextAfterClosingQuote,
        Breakage::StrayQuoteOpensId,
    ] {
        for at in 0..rows.len() {
            let Some(bad) = broken(&rows[at], how) else {
                continue;
            };
            cases += 1;
            let mut damaged = rows.clone();
            damaged[at] = bad;
            let (text, _) = csv_text(&damaged);
            let line = starts[at];
            // A row whose id cannot be read may belong to the invoice before or after it.
            let touched: BTreeSet<&str> = match how {
                Breakage::StrayQuoteOpensId => [at.checked_sub(1), Some(at), Some(at + 1)]
                    .into_iter()
                    .flatten()
                    .filter_map(|i| rows.get(i))
                    .map(|r| r.id.as_str())
                    .collect(),
                _ => BTreeSet::from([rows[at].id.as_str()]),
            };
            let records = read_export("export.csv", &text).await;
            let context = format!("{how:?} at line {line}:\n{text}");
            let mut seen = BTreeSet::new();
            let mut names_line = false;
            for record in &records {
                match record {
                    Ok(inv) => {
                        assert!(
                            !touched.contains(inv.external_id.as_str()),
                            "{} was taken though its rows were touched; {context}",
                            inv.external_id
                        );
                        // The content, not the version (each read is another file).
                        assert_eq!(
                            Some(inv.clone().with_version(None)),
                            clean.get(&inv.external_id).cloned(),
                            "{} differs from the intact export; {context}",
                            inv.external_id
                        );
                        seen.insert(inv.external_id.clone());
                    }
                    Err(e) => {
                        match id_of(e) {
                            // A fragment of the broken row read as a row of its own (a stray
                            // quote on a row whose memo spans lines): refused too.
                            Some(id) if !clean.contains_key(id) => {}
                            Some(id) => {
                                assert!(
                                    touched.contains(id),
                                    "{id} refused though its rows are intact: {e}; {context}"
                                );
                                seen.insert(id.to_owned());
                            }
                            // The broken row itself, refused by its line.
                            None => {
                                seen.insert(rows[at].id.clone());
                            }
                        }
                        assert!(
                            matches!(
                                e.record,
                                RecordLocator::IdAtLine { .. } | RecordLocator::Line { .. }
                            ),
                            "a refusal names its line: {e}; {context}"
                        );
                        names_line |= e.to_string().contains(&format!("line {line}"));
                    }
                }
            }
            assert!(
                names_line,
                "a refusal names the broken line {line}; {context}"
            );
            for id in clean.keys() {
                assert!(
                    seen.contains(id),
                    "{id} is neither taken nor refused; {context}"
                );
            }
        }
    }
    assert!(cases > 60, "only {cases} cases");
}

/// NDJSON line of a valid invoice; `id` is written as given (blanks included).
fn ndjson_line(id: &str, total: &str) -> String {
    serde_json::json!({
        "external_id": id,
        "external_customer_id": "CUST-00001",
        "invoice_number": format!("N-{}", id.trim()),
        "currency": "USD",
        "total": total,
        "open_balance": total,
        "line_items": [{"sku": "W-1", "quantity": "1", "unit_price": total}],
    })
    .to_string()
}

fn csv_row(id: &str, total: &str) -> String {
    format!(
        "{id},CUST-00001,N-{},USD,{total},{total},,W-1,,1,{total},,",
        id.trim()
    )
}

/// What a read says about `id`: the totals it took, and the refusals naming it.
fn about(records: &[Result<SourceInvoice, RecordError>], id: &str) -> (Vec<String>, Vec<String>) {
    let taken = records
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|inv| inv.external_id == id)
        .map(|inv| inv.total.to_string())
        .collect();
    let refused = records
        .iter()
        .filter_map(|r| r.as_ref().err())
        .filter(|e| id_of(e).map(str::trim) == Some(id))
        .map(ToString::to_string)
        .collect();
    (taken, refused)
}

/// Defect 6 (issue 11): CSV refused the later rows of a repeated id while NDJSON let the later
/// line win silently; and an id with trailing blanks was trimmed into another id, so one of the
/// two invoices never synced and nothing said so. Now both formats follow one rule: the first
/// record of an id in an export stands, every later one (however its id is padded) is refused,
/// naming the line where the id first appeared.
#[tokio::test]
async fn a_repeated_or_padded_id_is_refused_alike_in_csv_and_ndjson() {
    let ndjson = [
        ndjson_line("INV-1", "10.00"),
        ndjson_line("INV-2", "20.00"),
        ndjson_line("INV-1", "11.00"),
        ndjson_line("INV-3", "30.00"),
        ndjson_line("INV-3 ", "31.00"),
    ]
    .join("\n");
    let csv = [
        HEADER.to_owned(),
        csv_row("INV-1", "10.00"),
        csv_row("INV-2", "20.00"),
        csv_row("INV-1", "11.00"),
        csv_row("INV-3", "30.00"),
        // Right after INV-3: read as another row of it today, though it is spelt differently.
        csv_row("INV-3 ", "31.00"),
    ]
    .join("\n");
    for (name, text, first_line) in [("export.ndjson", ndjson, 1), ("export.csv", csv, 2)] {
        let records = read_export(name, &text).await;
        let (taken, refused) = about(&records, "INV-1");
        assert_eq!(taken, ["10.00"], "{name}: the first INV-1 stands");
        assert_eq!(
            refused.len(),
            1,
            "{name}: the second INV-1 is refused: {refused:?}"
        );
        assert!(
            refused[0].contains(&format!("already appeared at line {first_line}")),
            "{name}: {refused:?}"
        );
        let (taken, refused) = about(&records, "INV-3");
        assert_eq!(taken, ["30.00"], "{name}: the first INV-3 stands, alone");
        assert_eq!(refused.len(), 1, "{name}: `INV-3 ` is refused: {refused:?}");
        assert!(
            refused[0].contains("already appeared at line"),
            "{name}: {refused:?}"
        );
        assert_eq!(about(&records, "INV-2").0, ["20.00"], "{name}");
    }
}
