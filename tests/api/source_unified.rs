//! The unified accounting API adapter (api-docs 004) against its sandbox over real HTTP: paging,
//! the cursor and its overlap, lifecycles, retries mid-paging, record errors, auth, secrets,
//! configurable wire names, and memory while streaming 100 000 invoices.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use secrecy::SecretString;
use serde_json::json;
use tracing_subscriber::EnvFilter;

use b2b_invoice_sync::config::{
    HttpSettings, LogFormat, RetrySettings, UnifiedApi, UnifiedNames, UnifiedSettings,
};
use b2b_invoice_sync::domain::{Lifecycle, RecordError, SourceInvoice};
use b2b_invoice_sync::sandbox::unified::{
    self as sandbox, remote_id, Fault, FaultRule, Malformation, RunningUnifiedSandbox,
    SandboxNames, UnifiedSandboxConfig,
};
use b2b_invoice_sync::source::unified::UnifiedSource;
use b2b_invoice_sync::source::{Cursor, PageReceipt, Source, SourceError};
use b2b_invoice_sync::telemetry;

use crate::helpers::LogCapture;

const SOURCE: &str = "erp";
/// Distinctive, so that a scan of logs and errors finds any leak.
const KEY: &str = "unified_TEST_SECRET_7c1e9d";
const CREDENTIAL: &str = "cred-42";
const ROUTE: &str = "GET /accounting/invoices";
const OVERLAP: Duration = Duration::from_secs(300);

async fn spawn(config: UnifiedSandboxConfig) -> RunningUnifiedSandbox {
    let config = UnifiedSandboxConfig {
        api_key: KEY.to_owned(),
        credential_ids: vec![CREDENTIAL.to_owned()],
        ..config
    };
    sandbox::start(config, "127.0.0.1:0".parse().expect("loopback address"))
        .await
        .expect("the sandbox starts")
}

async fn seeded(count: usize) -> RunningUnifiedSandbox {
    spawn(UnifiedSandboxConfig {
        seed_invoices: count,
        ..UnifiedSandboxConfig::default()
    })
    .await
}

fn settings(base_url: &str, page_size: u32) -> UnifiedSettings {
    UnifiedSettings {
        base_url: base_url.parse().expect("sandbox URL"),
        api_key: SecretString::from(KEY),
        credential_id: CREDENTIAL.to_owned(),
        http: HttpSettings {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            retry: RetrySettings {
                max_attempts: 4,
                base_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(50),
            },
            page_size: NonZeroU32::new(page_size).expect("non-zero page size"),
        },
        names: UnifiedNames::default(),
        api: UnifiedApi::default(),
    }
}

fn source(sandbox: &RunningUnifiedSandbox, page_size: u32) -> UnifiedSource {
    UnifiedSource::new(SOURCE, &settings(&sandbox.base_url(), page_size), OVERLAP)
        .expect("the source builds")
}

/// What one read returned: every record by page, and the page receipts.
struct Read {
    pages: Vec<Vec<Result<SourceInvoice, RecordError>>>,
    receipts: Vec<PageReceipt>,
}

impl Read {
    fn invoices(&self) -> Vec<&SourceInvoice> {
        self.pages
            .iter()
            .flatten()
            .filter_map(|r| r.as_ref().ok())
            .collect()
    }

    fn ids(&self) -> Vec<String> {
        self.invoices()
            .iter()
            .map(|i| i.external_id.clone())
            .collect()
    }

    fn errors(&self) -> Vec<&RecordError> {
        self.pages
            .iter()
            .flatten()
            .filter_map(|r| r.as_ref().err())
            .collect()
    }

    fn cursor(&self) -> Cursor {
        self.receipts
            .last()
            .map(|r| r.cursor.clone())
            .unwrap_or_default()
    }
}

/// Reads every page from `cursor`, as the engine would (commit = keep the receipt).
async fn read(source: &UnifiedSource, cursor: &Cursor) -> Result<Read, SourceError> {
    let mut read = Read {
        pages: Vec::new(),
        receipts: Vec::new(),
    };
    let mut pages = source.pages(cursor);
    while let Some(page) = pages.next().await {
        let page = page?;
        source.page_committed(&page.receipt).await?;
        read.pages.push(page.records);
        read.receipts.push(page.receipt);
    }
    Ok(read)
}

fn ids(range: impl IntoIterator<Item = u64>) -> Vec<String> {
    range.into_iter().map(remote_id).collect()
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339 literal")
        .with_timezone(&Utc)
}

fn stamp_of(sandbox: &RunningUnifiedSandbox, id: &str) -> DateTime<Utc> {
    let invoice = sandbox.control().invoice(id).expect("invoice exists");
    at(invoice["remoteUpdatedAt"].as_str().expect("stamp"))
}

#[tokio::test]
async fn pages_walk_every_invoice_in_order_with_advancing_receipts() {
    let sandbox = seeded(25).await;
    let source = source(&sandbox, 10);
    let read = read(&source, &Cursor::default()).await.expect("read");
    assert_eq!(
        read.pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [10, 10, 5]
    );
    assert!(read.errors().is_empty(), "{:?}", read.errors());
    assert_eq!(read.ids(), ids(1..=25));
    let first = read.invoices()[0];
    assert_eq!(first.source, SOURCE);
    assert_eq!(first.invoice_number, "INV-000001");
    assert_eq!(first.external_customer_id, "CUST-00001");
    assert!(!first.line_items.is_empty());

    let watermarks: Vec<_> = read.receipts.iter().map(|r| r.cursor.watermark).collect();
    assert_eq!(watermarks[0], Some(stamp_of(&sandbox, &remote_id(10))));
    assert_eq!(watermarks[2], Some(stamp_of(&sandbox, &remote_id(25))));
    assert!(watermarks.windows(2).all(|w| w[0] < w[1]));
    assert!(read.receipts.iter().all(|r| r.finished_file.is_none()));
    assert_eq!(sandbox.control().stats().count(ROUTE, Some(200)), 3);
}

#[tokio::test]
async fn a_second_read_returns_only_newer_changes_plus_the_overlap_window() {
    // Seeded invoices are a minute apart: a 5 minute overlap re-reads the last 5.
    let sandbox = seeded(20).await;
    let control = sandbox.control();
    let source = source(&sandbox, 4);
    let first = read(&source, &Cursor::default()).await.expect("first read");
    let cursor = first.cursor();
    assert_eq!(cursor.watermark, Some(stamp_of(&sandbox, &remote_id(20))));

    let unchanged = read(&source, &cursor).await.expect("re-read");
    assert_eq!(unchanged.ids(), ids(16..=20), "only the overlap window");
    assert_eq!(
        unchanged.cursor(),
        cursor,
        "nothing newer: the cursor stays"
    );

    let changed_at = control
        .update_invoice(&remote_id(3), &json!({"memo": "changed in the ERP"}))
        .expect("update");
    let created = control.create_invoice();
    let second = read(&source, &cursor).await.expect("second read");
    let mut expected = ids(16..=20);
    expected.extend([remote_id(3), created.clone()]);
    assert_eq!(second.ids(), expected);
    let memo = second
        .invoices()
        .iter()
        .find(|i| i.external_id == remote_id(3))
        .and_then(|i| i.memo.clone());
    assert_eq!(memo.as_deref(), Some("changed in the ERP"));
    let latest = second.cursor().watermark.expect("a watermark");
    assert!(latest > changed_at && latest == stamp_of(&sandbox, &created));

    let third = read(&source, &second.cursor()).await.expect("third read");
    assert!(
        third
            .ids()
            .iter()
            .all(|id| *id == remote_id(3) || *id == created),
        "only what is inside the overlap of the new cursor: {:?}",
        third.ids()
    );
}

#[tokio::test]
async fn an_invoice_committed_late_within_the_overlap_is_reread() {
    let sandbox = seeded(10).await;
    let control = sandbox.control();
    let source = source(&sandbox, 100);
    let cursor = read(&source, &Cursor::default())
        .await
        .expect("read")
        .cursor();
    let watermark = cursor.watermark.expect("a watermark");

    // The ERP commits a change stamped a minute before what was already read.
    let late = watermark - chrono::Duration::seconds(60);
    control
        .update_invoice_at(&remote_id(2), &json!({"memo": "late commit"}), late)
        .expect("update");
    let again = read(&source, &cursor).await.expect("read again");
    let reread = again
        .invoices()
        .into_iter()
        .find(|i| i.external_id == remote_id(2));
    assert_eq!(
        reread.and_then(|i| i.memo.clone()).as_deref(),
        Some("late commit")
    );
    assert_eq!(
        again.cursor(),
        cursor,
        "a late commit does not move the cursor back"
    );

    let no_overlap =
        UnifiedSource::new(SOURCE, &settings(&sandbox.base_url(), 100), Duration::ZERO)
            .expect("source");
    let missed = read(&no_overlap, &cursor)
        .await
        .expect("read without overlap");
    assert!(
        missed.ids().is_empty(),
        "without the overlap the late commit is missed"
    );
}

#[tokio::test]
async fn a_far_future_timestamp_does_not_carry_the_cursor_away() {
    let sandbox = seeded(5).await;
    let control = sandbox.control();
    control
        .update_invoice_at(
            &remote_id(2),
            &json!({"memo": "clock"}),
            at("2099-01-01T00:00:00Z"),
        )
        .expect("update");
    let source = source(&sandbox, 100);
    let read = read(&source, &Cursor::default()).await.expect("read");
    assert_eq!(
        read.ids().last(),
        Some(&remote_id(2)),
        "the record still flows"
    );
    assert_eq!(
        read.cursor().watermark,
        Some(stamp_of(&sandbox, &remote_id(5))),
        "one bad clock must not make every later change invisible"
    );
}

#[tokio::test]
async fn deleted_and_voided_invoices_come_through_with_their_lifecycle() {
    let sandbox = seeded(6).await;
    let control = sandbox.control();
    let source = source(&sandbox, 100);
    let cursor = read(&source, &Cursor::default())
        .await
        .expect("read")
        .cursor();
    control.delete_invoice(&remote_id(2)).expect("delete");
    control.void_invoice(&remote_id(4)).expect("void");
    let changes = read(&source, &cursor).await.expect("read changes");
    let lifecycle = |id: u64| {
        changes
            .invoices()
            .into_iter()
            .find(|i| i.external_id == remote_id(id))
            .map(|i| i.lifecycle)
    };
    assert_eq!(lifecycle(2), Some(Lifecycle::Deleted));
    assert_eq!(lifecycle(4), Some(Lifecycle::Voided));
    assert_eq!(lifecycle(6), Some(Lifecycle::Active));
}

#[tokio::test]
async fn failures_mid_paging_are_retried_without_duplicates_or_gaps() {
    let sandbox = seeded(50).await;
    let control = sandbox.control();
    let source = source(&sandbox, 10);
    let mut pages = source.pages(&Cursor::default());
    let mut seen = Vec::new();
    let first = pages.next().await.expect("a first page").expect("page 1");
    seen.extend(
        first
            .records
            .into_iter()
            .map(|r| r.expect("valid").external_id),
    );

    // The next page request gets a 500, then a dropped connection, then a 429.
    control.push_fault(FaultRule::once(Fault::Status500).on_method("GET"));
    control.push_fault(FaultRule::once(Fault::DropBeforeApply).on_method("GET"));
    control.push_fault(FaultRule::once(Fault::Status429 {
        retry_after_secs: Some(1),
    }));
    let started = Instant::now();
    let second = pages
        .next()
        .await
        .expect("a second page")
        .expect("page 2 after retries");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honored"
    );
    seen.extend(
        second
            .records
            .into_iter()
            .map(|r| r.expect("valid").external_id),
    );
    // And a 503 on a later page.
    control.push_fault(FaultRule::once(Fault::Status503));
    while let Some(page) = pages.next().await {
        seen.extend(
            page.expect("page")
                .records
                .into_iter()
                .map(|r| r.expect("valid").external_id),
        );
    }
    assert_eq!(seen, ids(1..=50), "no duplicates, no gaps");
    let stats = control.stats();
    assert_eq!(stats.count(ROUTE, Some(500)), 1, "{stats:?}");
    assert_eq!(stats.count(ROUTE, None), 1, "{stats:?}");
    assert_eq!(stats.count(ROUTE, Some(429)), 1, "{stats:?}");
    assert_eq!(stats.count(ROUTE, Some(503)), 1, "{stats:?}");
    assert_eq!(
        stats.count(ROUTE, Some(200)),
        5,
        "each page fetched once: {stats:?}"
    );
}

#[tokio::test]
async fn retries_give_up_as_unavailable() {
    let sandbox = seeded(3).await;
    let control = sandbox.control();
    control.push_fault(FaultRule::once(Fault::Status503).times(10));
    let err = read(&source(&sandbox, 10), &Cursor::default())
        .await
        .err()
        .expect("still failing");
    assert!(matches!(err, SourceError::Unavailable { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(err.to_string().contains("HTTP 503"), "{err}");
    assert_eq!(control.stats().total, 4, "max_attempts in all");
}

#[tokio::test]
async fn malformed_records_are_record_errors_while_the_page_flows() {
    let sandbox = seeded(4).await;
    let control = sandbox.control();
    let bad_currency = control.insert_malformed(Malformation::BadCurrency);
    control.create_invoice();
    let bad_amount = control.insert_malformed(Malformation::NonNumericAmount);
    let bad_date = control.insert_malformed(Malformation::BadDate);
    control.insert_malformed(Malformation::NotAnObject);
    let last = control.create_invoice();
    let read = read(&source(&sandbox, 100), &Cursor::default())
        .await
        .expect("read");
    assert_eq!(read.pages.len(), 1);
    assert_eq!(read.pages[0].len(), 10, "every record is on the page");
    assert_eq!(read.invoices().len(), 6);

    let errors = read.errors();
    let described: Vec<(String, Option<&str>)> = errors
        .iter()
        .map(|e| (e.record.to_string(), e.field.as_deref()))
        .collect();
    assert_eq!(
        described,
        [
            (format!("record {bad_currency}"), Some("currency")),
            (format!("record {bad_amount}"), Some("total")),
            (format!("record {bad_date}"), Some("issue_date")),
            ("record #9 of the page (no remoteId)".to_owned(), None),
        ]
    );
    for error in &errors {
        assert_eq!(&*error.source_name, SOURCE);
    }
    assert_eq!(
        errors[0].to_string(),
        format!("source erp, record {bad_currency}: field `currency`: `USX` is not an ISO 4217 currency code")
    );
    assert!(errors[1].reason.contains("12O.00"), "{}", errors[1]);
    assert_eq!(
        read.cursor().watermark,
        Some(stamp_of(&sandbox, &last)),
        "the cursor moves past records recorded as failed"
    );
}

#[tokio::test]
async fn get_invoice_reads_one_invoice_or_says_why_not() {
    let sandbox = seeded(3).await;
    let control = sandbox.control();
    let source = source(&sandbox, 10);
    let invoice = source
        .get_invoice(&remote_id(2))
        .await
        .expect("answered")
        .expect("valid");
    assert_eq!(invoice.invoice_number, "INV-000002");
    let bad = control.insert_malformed(Malformation::BadCurrency);
    let refused = source
        .get_invoice(&bad)
        .await
        .expect("answered")
        .expect_err("bad");
    assert_eq!(refused.field.as_deref(), Some("currency"));
    let missing = source.get_invoice("rmt-999999").await.expect_err("missing");
    assert!(
        matches!(missing, SourceError::Protocol { .. }),
        "{missing:?}"
    );
    assert!(missing.to_string().contains("404"), "{missing}");
}

#[tokio::test]
async fn a_wrong_api_key_is_unauthorized_and_a_wrong_credential_a_protocol_error() {
    let sandbox = seeded(3).await;
    let mut wrong_key = settings(&sandbox.base_url(), 10);
    wrong_key.api_key = SecretString::from("not-the-key");
    let source = UnifiedSource::new(SOURCE, &wrong_key, OVERLAP).expect("source");
    let err = read(&source, &Cursor::default())
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, SourceError::Unauthorized { .. }), "{err:?}");
    assert!(!err.is_transient());
    assert_eq!(sandbox.control().stats().total, 1, "a 401 is not retried");

    let mut wrong_credential = settings(&sandbox.base_url(), 10);
    wrong_credential.credential_id = "cred-0".to_owned();
    let source = UnifiedSource::new(SOURCE, &wrong_credential, OVERLAP).expect("source");
    let err = read(&source, &Cursor::default())
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, SourceError::Protocol { .. }), "{err:?}");
    assert!(
        err.to_string().contains("Credential cred-0 not found"),
        "{err}"
    );
}

#[tokio::test]
async fn a_wrong_page_shape_is_a_protocol_error() {
    let sandbox = seeded(3).await;
    let mut renamed = settings(&sandbox.base_url(), 10);
    renamed.names.list_field = "data".to_owned();
    let source = UnifiedSource::new(SOURCE, &renamed, OVERLAP).expect("source");
    let err = read(&source, &Cursor::default())
        .await
        .err()
        .expect("wrong shape");
    assert!(matches!(err, SourceError::Protocol { .. }), "{err:?}");
    assert!(err.to_string().contains("no `data` field"), "{err}");
}

#[tokio::test]
async fn renamed_wire_names_come_from_the_settings() {
    let sandbox = spawn(UnifiedSandboxConfig {
        seed_invoices: 7,
        names: SandboxNames {
            invoices_path: "v2/erp/bills".to_owned(),
            credential_param: "connection".to_owned(),
            limit_param: "pageSize".to_owned(),
            cursor_param: "pageToken".to_owned(),
            updated_after_param: "modifiedSince".to_owned(),
            list_field: "data".to_owned(),
            next_field: "nextPageToken".to_owned(),
            single_field: "bill".to_owned(),
        },
        ..UnifiedSandboxConfig::default()
    })
    .await;
    let mut renamed = settings(&sandbox.base_url(), 3);
    renamed.names = UnifiedNames {
        invoices_path: "v2/erp/bills".to_owned(),
        credential_param: "connection".to_owned(),
        limit_param: "pageSize".to_owned(),
        cursor_param: "pageToken".to_owned(),
        updated_after_param: "modifiedSince".to_owned(),
        list_field: "data".to_owned(),
        next_field: "nextPageToken".to_owned(),
        single_field: "bill".to_owned(),
        ..UnifiedNames::default()
    };
    let source = UnifiedSource::new(SOURCE, &renamed, OVERLAP).expect("source");
    let first = read(&source, &Cursor::default()).await.expect("read");
    assert_eq!(first.ids(), ids(1..=7));
    assert_eq!(first.pages.len(), 3);
    let again = read(&source, &first.cursor())
        .await
        .expect("read from the cursor");
    assert_eq!(again.ids(), ids(3..=7), "modifiedSince was sent");
    let one = source
        .get_invoice(&remote_id(5))
        .await
        .expect("answered")
        .expect("valid");
    assert_eq!(one.external_id, remote_id(5));
    assert_eq!(
        sandbox
            .control()
            .stats()
            .count("GET /v2/erp/bills", Some(200)),
        5
    );

    let defaults =
        UnifiedSource::new(SOURCE, &settings(&sandbox.base_url(), 3), OVERLAP).expect("source");
    let err = read(&defaults, &Cursor::default())
        .await
        .err()
        .expect("wrong path");
    assert!(matches!(err, SourceError::Protocol { .. }), "{err:?}");
}

#[tokio::test]
async fn the_api_key_never_appears_in_logs_or_errors() {
    let capture = LogCapture::default();
    for format in [LogFormat::Json, LogFormat::Pretty] {
        // Everything at TRACE: this crate and every dependency (reqwest, hyper).
        let subscriber = telemetry::subscriber(format, EnvFilter::new("trace"), capture.clone());
        let _guard = tracing::subscriber::set_default(subscriber);
        let sandbox = seeded(5).await;
        let control = sandbox.control();
        let settings = settings(&sandbox.base_url(), 2);
        let source = UnifiedSource::new(SOURCE, &settings, OVERLAP).expect("source");
        let mut seen = vec![format!("{settings:?}"), format!("{source:?}")];

        control.push_fault(FaultRule::once(Fault::Status500).on_method("GET"));
        control.push_fault(FaultRule::once(Fault::DropBeforeApply).on_method("GET"));
        let read = read(&source, &Cursor::default())
            .await
            .expect("read with retries");
        assert_eq!(read.ids().len(), 5);
        control.insert_malformed(Malformation::BadCurrency);
        let again = read_errors(&source).await;
        seen.extend(again);

        control.push_fault(FaultRule::once(Fault::Status503).times(10));
        let e = source
            .get_invoice(&remote_id(1))
            .await
            .expect_err("unavailable");
        seen.push(format!("{e} | {e:?}"));
        control.clear_faults();

        let mut wrong = settings.clone();
        wrong.api_key = SecretString::from(format!("{KEY}x"));
        seen.push(format!("{wrong:?}"));
        let wrong_source = UnifiedSource::new(SOURCE, &wrong, OVERLAP).expect("source");
        let e = wrong_source
            .pages(&Cursor::default())
            .try_collect::<Vec<_>>()
            .await
            .expect_err("401");
        seen.push(format!("{e} | {e:?}"));
        sandbox.shutdown().await;

        let logs = capture.text();
        assert!(
            logs.contains("unified API response"),
            "the capture saw the adapter's logs"
        );
        assert!(logs.contains("retrying unified API request"));
        for text in seen.iter().map(String::as_str).chain([logs.as_str()]) {
            assert!(!text.contains(KEY), "API key leaked: {text}");
        }
    }
}

/// The record errors of a full read, as text.
async fn read_errors(source: &UnifiedSource) -> Vec<String> {
    let read = read(source, &Cursor::default()).await.expect("read");
    read.errors()
        .iter()
        .map(|e| format!("{e} | {e:?}"))
        .collect()
}

/// Peak resident memory of this process (`VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// Streaming 100 000 invoices holds one page at a time. The sandbox runs as its own process so
/// this process's memory is the adapter's alone. Bound: a page of 1 000 invoices is about 2 MB of
/// JSON and ~20 MB parsed (JSON values, then SourceInvoices); 64 MiB leaves room for allocator
/// slack, while keeping all 100 000 invoices would need well over 100 MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_while_streaming_100k_invoices() {
    const COUNT: u64 = 100_000;
    const BOUND_KIB: u64 = 64 * 1024;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_b2b-invoice-sync"))
        .args(["--log-format", "json", "sandbox", "unified", "--port", "0"])
        .args(["--seed-invoices", &COUNT.to_string(), "--api-key", KEY])
        .args(["--credential-id", CREDENTIAL])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the sandbox process starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let base_url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("stdout") {
            if let Some((_, url)) = line.split_once("listening on ") {
                return url.trim().to_owned();
            }
        }
        panic!("the sandbox exited before listening");
    })
    .await
    .expect("the sandbox listens within 30 s");

    let source = UnifiedSource::new(SOURCE, &settings(&base_url, 1000), OVERLAP).expect("source");
    let before = peak_rss_kib();
    let started = Instant::now();
    let mut count = 0u64;
    let mut pages = 0u64;
    let mut last_stamp = None;
    let mut stream = source.pages(&Cursor::default());
    while let Some(page) = stream.next().await {
        let page = page.expect("page");
        pages += 1;
        for record in page.records {
            let invoice = record.expect("seeded invoices are valid");
            assert!(invoice.updated_at > last_stamp, "ascending, no duplicates");
            last_stamp = invoice.updated_at;
            count += 1;
        }
    }
    let grown = peak_rss_kib().saturating_sub(before);
    child.kill().await.expect("stop the sandbox");
    assert_eq!((count, pages), (COUNT, 100));
    assert!(
        grown < BOUND_KIB,
        "peak RSS grew by {grown} KiB streaming {COUNT} invoices (bound {BOUND_KIB} KiB)"
    );
    eprintln!(
        "streamed {count} invoices in {pages} pages in {:?}; peak RSS grew by {grown} KiB",
        started.elapsed()
    );
}
