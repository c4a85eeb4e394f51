//! The `files` adapter against real folders: completeness rules, paging, moving files only once
//! their last page is committed, rejected rows on disk, garbled files set aside, the samples.

use std::collections::BTreeSet;
use std::fs;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use b2b_invoice_sync::config::{FilesSettings, ReadyRule};
use b2b_invoice_sync::domain::{Lifecycle, RecordError, RecordLocator, SourceInvoice};
use b2b_invoice_sync::source::files::FilesSource;
use b2b_invoice_sync::source::{Cursor, Source, SourceError, SourcePage};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use rust_decimal::Decimal;
use serde_json::Value;

fn settings(dir: &Path, ready: ReadyRule, page_size: u32) -> FilesSettings {
    FilesSettings {
        dir: dir.to_owned(),
        ready,
        page_size: NonZeroU32::new(page_size).expect("non-zero"),
    }
}

fn source(dir: &Path, page_size: u32) -> FilesSource {
    FilesSource::new("erp", &settings(dir, ReadyRule::Marker, page_size)).expect("folder opens")
}

/// An NDJSON line of a valid invoice `id` (the canonical schema: amounts as strings).
fn ndjson_line(id: &str, currency: &str) -> String {
    serde_json::json!({
        "external_id": id,
        "external_customer_id": "CUST-00001",
        "invoice_number": format!("N-{id}"),
        "currency": currency,
        "total": "10.00",
        "open_balance": "10.00",
        "line_items": [{"sku": "W-1", "quantity": "1", "unit_price": "10.00"}],
    })
    .to_string()
}

/// Writes `name` with `lines` and, for the marker rule, its `.ready` marker; `age` orders files.
fn export(dir: &Path, name: &str, lines: &[String], age_secs: u64) -> PathBuf {
    let path = dir.join(name);
    let mut text = lines.join("\n");
    text.push('\n');
    fs::write(&path, text).expect("write export");
    set_age(&path, age_secs);
    fs::write(dir.join(format!("{name}.ready")), "").expect("write marker");
    path
}

fn set_age(path: &Path, age_secs: u64) {
    let when = SystemTime::now() - Duration::from_secs(age_secs);
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(when))
        .expect("set mtime");
}

/// What an engine does: every page, then its commit.
async fn run_cycle(source: &FilesSource) -> Vec<SourcePage> {
    let mut pages = Vec::new();
    let mut stream = source.pages(&Cursor::default());
    while let Some(page) = stream.next().await {
        let page = page.expect("page");
        source.page_committed(&page.receipt).await.expect("commit");
        pages.push(page);
    }
    pages
}

fn invoices(pages: &[SourcePage]) -> Vec<&SourceInvoice> {
    pages
        .iter()
        .flat_map(|p| &p.records)
        .filter_map(|r| r.as_ref().ok())
        .collect()
}

fn errors(pages: &[SourcePage]) -> Vec<&RecordError> {
    pages
        .iter()
        .flat_map(|p| &p.records)
        .filter_map(|r| r.as_ref().err())
        .collect()
}

fn error_lines(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .expect("errors file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[tokio::test]
async fn a_bad_row_is_rejected_with_its_reason_and_the_rest_flows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = [
        ndjson_line("A-1", "USD"),
        ndjson_line("A-2", "USX"),
        ndjson_line("A-3", "JPY"),
    ];
    let file = export(dir.path(), "day.ndjson", &lines, 10);
    let source = source(dir.path(), 100);
    let pages = run_cycle(&source).await;

    assert_eq!(pages.len(), 1);
    assert_eq!(
        pages[0].receipt.finished_file.as_deref(),
        Some(file.as_path())
    );
    assert_eq!(
        pages[0].receipt.cursor,
        Cursor::default(),
        "files carry no watermark"
    );
    let ids: Vec<&str> = invoices(&pages)
        .iter()
        .map(|i| i.external_id.as_str())
        .collect();
    assert_eq!(ids, ["A-1", "A-3"]);
    let errs = errors(&pages);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field.as_deref(), Some("currency"));
    assert_eq!(
        errs[0].record,
        RecordLocator::IdAtLine {
            id: "A-2".into(),
            file: "day.ndjson".into(),
            line: 2
        }
    );

    assert!(!file.exists());
    assert!(dir.path().join("processed/day.ndjson").exists());
    assert!(dir.path().join("processed/day.ndjson.ready").exists());
    assert!(!dir.path().join("day.ndjson.ready").exists());
    let rows = error_lines(&dir.path().join("rejected/day.ndjson.errors.ndjson"));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["line"], 2);
    assert_eq!(rows[0]["external_id"], "A-2");
    assert_eq!(rows[0]["field"], "currency");
    assert!(rows[0]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("USX")));
    assert_eq!(rows[0]["raw"], lines[1].as_str());
    assert!(!dir
        .path()
        .join("rejected/day.ndjson.errors.ndjson.partial")
        .exists());

    // A later export under the same name keeps the earlier one's files intact.
    export(dir.path(), "day.ndjson", &[ndjson_line("B-1", "USX")], 5);
    run_cycle(&source).await;
    assert!(dir.path().join("processed/day~1.ndjson").exists());
    assert!(dir
        .path()
        .join("rejected/day~1.ndjson.errors.ndjson")
        .exists());
    assert_eq!(
        error_lines(&dir.path().join("rejected/day.ndjson.errors.ndjson")).len(),
        1
    );
}

#[tokio::test]
async fn a_file_is_taken_only_once_its_marker_exists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("late.ndjson");
    fs::write(&path, ndjson_line("A-1", "EUR")).expect("write");
    let source = source(dir.path(), 100);

    assert!(run_cycle(&source).await.is_empty(), "no marker, not taken");
    assert!(path.exists());

    fs::write(dir.path().join("late.ndjson.ready"), "").expect("marker");
    let pages = run_cycle(&source).await;
    assert_eq!(invoices(&pages).len(), 1);
    assert!(!path.exists());
}

#[tokio::test]
async fn with_atomic_rename_temporary_names_are_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("b.ndjson.tmp"), ndjson_line("T-1", "USD")).expect("write");
    fs::write(dir.path().join("a.csv.part"), "garbage").expect("write");
    fs::write(dir.path().join("c.ndjson"), ndjson_line("C-1", "USD")).expect("write");
    let source = FilesSource::new("erp", &settings(dir.path(), ReadyRule::AtomicRename, 10))
        .expect("folder opens");

    let pages = run_cycle(&source).await;
    let ids: Vec<&str> = invoices(&pages)
        .iter()
        .map(|i| i.external_id.as_str())
        .collect();
    assert_eq!(ids, ["C-1"]);
    assert!(dir.path().join("b.ndjson.tmp").exists());
    assert!(dir.path().join("processed/c.ndjson").exists());

    fs::rename(dir.path().join("b.ndjson.tmp"), dir.path().join("b.ndjson")).expect("rename");
    let ids: Vec<String> = invoices(&run_cycle(&source).await)
        .iter()
        .map(|i| i.external_id.clone())
        .collect();
    assert_eq!(ids, ["T-1"]);
}

#[tokio::test]
async fn a_file_moves_only_after_its_last_page_and_is_read_again_after_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut lines: Vec<String> = (1..=5)
        .map(|i| ndjson_line(&format!("A-{i}"), "USD"))
        .collect();
    lines.insert(1, ndjson_line("BAD", "USX"));
    let file = export(dir.path(), "big.ndjson", &lines, 10);
    let partial = dir.path().join("rejected/big.ndjson.errors.ndjson.partial");
    let source = source(dir.path(), 2);

    {
        // Commit every page but the last, then "crash": drop the stream.
        let mut stream = source.pages(&Cursor::default());
        for _ in 0..2 {
            let page = stream.next().await.expect("a page").expect("ok");
            assert!(page.receipt.finished_file.is_none());
            source.page_committed(&page.receipt).await.expect("commit");
            assert!(file.exists(), "not moved before the last page is committed");
        }
        let last = stream.next().await.expect("last page").expect("ok");
        assert_eq!(last.receipt.finished_file.as_deref(), Some(file.as_path()));
        assert!(file.exists());
        assert_eq!(
            fs::read_to_string(&partial)
                .expect("partial")
                .lines()
                .count(),
            1
        );
    }

    // Next cycle: the same file from the start, its partial errors rewritten, not appended.
    let pages = run_cycle(&source).await;
    let sizes: Vec<usize> = pages.iter().map(|p| p.records.len()).collect();
    assert_eq!(sizes, [2, 2, 2]);
    assert_eq!(invoices(&pages).len(), 5);
    assert!(!file.exists());
    assert!(!partial.exists());
    assert_eq!(
        error_lines(&dir.path().join("rejected/big.ndjson.errors.ndjson")).len(),
        1
    );
}

#[tokio::test]
async fn pages_respect_the_size_never_span_files_and_go_oldest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let newer: Vec<String> = ["N-1", "N-2"]
        .iter()
        .map(|id| ndjson_line(id, "USD"))
        .collect();
    let older: Vec<String> = ["O-1", "O-2", "O-3"]
        .iter()
        .map(|id| ndjson_line(id, "USD"))
        .collect();
    let newer = export(dir.path(), "a-newer.ndjson", &newer, 10);
    let older = export(dir.path(), "z-older.ndjson", &older, 100);
    fs::write(dir.path().join("empty.ndjson"), "\n\n").expect("write");
    set_age(&dir.path().join("empty.ndjson"), 5);
    fs::write(dir.path().join("empty.ndjson.ready"), "").expect("marker");
    let source = source(dir.path(), 2);

    let pages = run_cycle(&source).await;
    let shape: Vec<(Vec<&str>, Option<&Path>)> = pages
        .iter()
        .map(|p| {
            let ids = p
                .records
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .map(|i| i.external_id.as_str())
                .collect();
            (ids, p.receipt.finished_file.as_deref())
        })
        .collect();
    let empty = dir.path().join("empty.ndjson");
    assert_eq!(
        shape,
        vec![
            (vec!["O-1", "O-2"], None),
            (vec!["O-3"], Some(older.as_path())),
            (vec!["N-1", "N-2"], Some(newer.as_path())),
            (vec![], Some(empty.as_path())),
        ]
    );
    assert!(
        dir.path().join("processed/empty.ndjson").exists(),
        "an empty file is finished too"
    );
}

const CSV_HEADER: &str = "external_id,external_customer_id,invoice_number,currency,total,open_balance,subtotal,line_sku,line_description,line_quantity,line_unit_price,line_total,shipping_city,extra.Sales Rep";

#[tokio::test]
async fn a_csv_invoice_of_several_rows_is_one_invoice_with_its_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = [
        CSV_HEADER.to_owned(),
        "C-1,CUST-00002,5001,KWD,1.500,1.500,1.500,K-1,Valve,1,1.000,1.000,Kuwait City,Ann"
            .to_owned(),
        "C-1,,,,,,,K-2,\"Gasket, 2 in\",2,0.250,0.500,,".to_owned(),
        "C-2,CUST-00003,5002,JPY,300,0,300,J-1,Bit,3,100,300,,".to_owned(),
    ];
    export(dir.path(), "x.csv", &lines, 10);
    let pages = run_cycle(&source(dir.path(), 10)).await;
    assert!(errors(&pages).is_empty(), "{:?}", errors(&pages));
    let found = invoices(&pages);
    assert_eq!(found.len(), 2);
    let c1 = found[0];
    assert_eq!(c1.external_id, "C-1");
    assert_eq!(c1.line_items.len(), 2);
    assert_eq!(c1.line_items[1].description, "Gasket, 2 in");
    assert_eq!(c1.line_items[1].line_total, Decimal::new(500, 3));
    assert_eq!(c1.currency.code(), "KWD");
    assert_eq!(c1.shipping_addresses[0].city, "Kuwait City");
    assert_eq!(c1.extra_fields["Sales Rep"], "Ann");
    assert_eq!(found[1].open_balance, Decimal::ZERO);
}

#[tokio::test]
async fn garbled_files_are_set_aside_while_the_next_file_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    export(
        dir.path(),
        "typo.csv",
        &[
            "external_id,external_customer_id,invoice_number,currency,totl,open_balance".to_owned(),
            "T-1,CUST-00001,1,USD,5,5".to_owned(),
        ],
        30,
    );
    let binary = dir.path().join("binary.ndjson");
    fs::write(&binary, b"\xff\xd8\xff\xe0garbage\n{}\n").expect("write");
    set_age(&binary, 20);
    fs::write(dir.path().join("binary.ndjson.ready"), "").expect("marker");
    export(dir.path(), "good.ndjson", &[ndjson_line("G-1", "EUR")], 10);

    let pages = run_cycle(&source(dir.path(), 10)).await;
    assert_eq!(pages.len(), 3, "one page per file");
    let ids: Vec<&str> = invoices(&pages)
        .iter()
        .map(|i| i.external_id.as_str())
        .collect();
    assert_eq!(ids, ["G-1"]);
    let errs = errors(&pages);
    assert_eq!(errs.len(), 2);
    assert!(
        errs[0].reason.contains("unknown columns `totl`"),
        "{}",
        errs[0]
    );
    assert!(
        errs[0].to_string().contains("typo.csv line 1"),
        "{}",
        errs[0]
    );
    assert!(errs[1].reason.contains("not UTF-8"), "{}", errs[1]);

    for name in ["typo.csv", "binary.ndjson"] {
        assert!(
            dir.path().join("rejected").join(name).exists(),
            "{name} set aside"
        );
        assert!(dir.path().join(format!("rejected/{name}.ready")).exists());
        assert!(!dir.path().join(name).exists());
        let rows = error_lines(&dir.path().join(format!("rejected/{name}.errors.ndjson")));
        assert_eq!(rows.len(), 1, "{name}: a single error line");
        assert_eq!(rows[0]["line"], 1);
    }
    assert!(dir.path().join("processed/good.ndjson").exists());
}

#[tokio::test]
async fn a_missing_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope");
    let err = FilesSource::new("erp", &settings(&missing, ReadyRule::Marker, 10)).unwrap_err();
    assert!(matches!(err, SourceError::Io { .. }));
    let text = err.to_string();
    assert!(
        text.contains("nope") && text.contains("sources.erp.files.dir"),
        "{text}"
    );
    assert!(!missing.exists(), "a typo must not create a folder");
}

/// The samples in examples/erp-export, as their README documents them.
#[tokio::test]
async fn the_sample_exports_parse_as_documented() {
    let dir = tempfile::tempdir().expect("tempdir");
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/erp-export");
    for (age, name) in [
        (20, "invoices-2026-11-01.ndjson"),
        (10, "invoices-2026-11-02.csv"),
    ] {
        fs::copy(samples.join(name), dir.path().join(name)).expect("copy sample");
        set_age(&dir.path().join(name), age);
        fs::copy(
            samples.join(format!("{name}.ready")),
            dir.path().join(format!("{name}.ready")),
        )
        .expect("copy marker");
    }
    let pages = run_cycle(&source(dir.path(), 500)).await;
    let found = invoices(&pages);
    let errs = errors(&pages);

    assert_eq!(found.len(), 22);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field.as_deref(), Some("currency"));
    assert_eq!(
        errs[0].record,
        RecordLocator::IdAtLine {
            id: "ERP-INV-20023".into(),
            file: "invoices-2026-11-02.csv".into(),
            line: 11
        }
    );

    let currencies: BTreeSet<&str> = found.iter().map(|i| i.currency.code()).collect();
    for code in ["USD", "EUR", "JPY", "KWD"] {
        assert!(currencies.contains(code), "{code} in {currencies:?}");
    }
    let customers: BTreeSet<&str> = found
        .iter()
        .map(|i| i.external_customer_id.as_str())
        .collect();
    let expected: BTreeSet<String> = (1..=10).map(|i| format!("CUST-{i:05}")).collect();
    assert_eq!(customers, expected.iter().map(String::as_str).collect());
    let count = |l: Lifecycle| found.iter().filter(|i| i.lifecycle == l).count();
    assert_eq!(
        (count(Lifecycle::Voided), count(Lifecycle::Deleted)),
        (1, 1)
    );
    assert_eq!(
        found.iter().filter(|i| i.line_items.len() > 1).count(),
        15,
        "multi-line invoices"
    );
    assert!(found
        .iter()
        .all(|i| i.billing_address.is_some() && i.po_number.is_some() && i.terms.is_some()));
    let ids: BTreeSet<&str> = found.iter().map(|i| i.invoice_number.as_str()).collect();
    assert_eq!(ids.len(), 22, "invoice numbers are unique");

    for inv in &found {
        let zero = Decimal::ZERO;
        let lines: Decimal = inv.line_items.iter().map(|l| l.line_total).sum();
        for line in &inv.line_items {
            assert_eq!(
                line.quantity * line.unit_price,
                line.line_total,
                "{}",
                inv.external_id
            );
        }
        let subtotal = inv.subtotal.expect("subtotal");
        assert_eq!(lines, subtotal, "{}", inv.external_id);
        let computed = subtotal + inv.tax.unwrap_or(zero) + inv.freight.unwrap_or(zero)
            - inv.discount.unwrap_or(zero);
        assert_eq!(computed, inv.total, "{}", inv.external_id);
        assert!(
            zero <= inv.open_balance && inv.open_balance <= inv.total,
            "{}",
            inv.external_id
        );
        assert_eq!(
            inv.total.scale(),
            inv.currency.minor_unit_digits(),
            "{}: amounts in the currency's minor units",
            inv.external_id
        );
        let stamp: Option<DateTime<Utc>> = inv.updated_at;
        assert!(stamp.is_some(), "{}", inv.external_id);
    }
    assert!(dir
        .path()
        .join("processed/invoices-2026-11-02.csv")
        .exists());
    let rows = error_lines(
        &dir.path()
            .join("rejected/invoices-2026-11-02.csv.errors.ndjson"),
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["reason"], "`EURO` is not an ISO 4217 currency code");

    // As the README says, the bad row is otherwise sound: fixed, it is accepted.
    let raw = rows[0]["raw"]
        .as_str()
        .expect("raw row")
        .replace(",EURO,", ",EUR,");
    let header = fs::read_to_string(samples.join("invoices-2026-11-02.csv"))
        .expect("sample")
        .lines()
        .next()
        .expect("header")
        .to_owned();
    export(dir.path(), "fixed.csv", &[header, raw], 1);
    let pages = run_cycle(&source(dir.path(), 500)).await;
    assert!(errors(&pages).is_empty(), "{:?}", errors(&pages));
    assert_eq!(invoices(&pages)[0].total, Decimal::new(111384, 2));
}

/// The fenced examples of docs/erp-export-format.md.
fn documented_example(fence: &str, containing: &str) -> String {
    let doc =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/erp-export-format.md"))
            .expect("the format doc");
    doc.split(&format!("```{fence}\n"))
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .find(|block| block.contains(containing))
        .expect("the example")
        .trim()
        .to_owned()
}

#[tokio::test]
async fn the_documented_examples_parse() {
    let dir = tempfile::tempdir().expect("tempdir");
    export(
        dir.path(),
        "doc.csv",
        &[documented_example("csv", "external_id")],
        20,
    );
    export(
        dir.path(),
        "doc.ndjson",
        &[documented_example("json", "line_items")],
        10,
    );
    let pages = run_cycle(&source(dir.path(), 10)).await;
    assert!(errors(&pages).is_empty(), "{:?}", errors(&pages));
    let found = invoices(&pages);
    let numbers: Vec<&str> = found.iter().map(|i| i.invoice_number.as_str()).collect();
    assert_eq!(numbers, ["20012", "20013", "20001"]);
    assert_eq!(found[0].line_items.len(), 2);
    assert_eq!(
        found[1].line_items[0].description,
        "Hydraulic hose 2m, \"high pressure\""
    );
    assert_eq!(found[2].extra_fields["sales_rep"], "J. Alvarez");
}
