//! The Rebillia adapter against the Rebillia sandbox over real HTTP: the newest-first walk,
//! its cursor, faults, malformed records, credentials, and exact cents.

use std::num::NonZeroU32;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use proptest::prelude::*;
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::{json, Value};
use tracing_subscriber::EnvFilter;

use b2b_invoice_sync::config::{HttpSettings, LogFormat, RebilliaAmountUnit, RebilliaSettings};
use b2b_invoice_sync::domain::{Lifecycle, SourceInvoice};
use b2b_invoice_sync::sandbox::rebillia::{
    self, AmountStyle, Fault, FaultRule, InvoiceEdit, NewInvoice, RebilliaSandboxConfig,
    RunningRebilliaSandbox,
};
use b2b_invoice_sync::source::rebillia::{invoice_from_json, AmountUnit, RebilliaSource};
use b2b_invoice_sync::source::{Cursor, Source, SourceError, SourcePage};
use b2b_invoice_sync::telemetry;

use crate::helpers::{fast_retry, LogCapture};

/// Distinctive, so that a scan of logs and errors finds any leak.
const TOKEN: &str = "rb_TEST_SECRET_7d41e2";
const SOURCE: &str = "billing";

async fn spawn(invoices: usize) -> RunningRebilliaSandbox {
    let config = RebilliaSandboxConfig {
        token: TOKEN.to_owned(),
        seed_customers: 5,
        seed_invoices: invoices,
        ..RebilliaSandboxConfig::default()
    };
    rebillia::start(config, "127.0.0.1:0".parse().expect("loopback"))
        .await
        .expect("the sandbox starts")
}

fn settings(sandbox: &RunningRebilliaSandbox, token: &str, page_size: u32) -> RebilliaSettings {
    RebilliaSettings {
        base_url: sandbox.base_url().parse().expect("sandbox URL"),
        token: SecretString::from(token),
        http: HttpSettings {
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            retry: fast_retry(),
            page_size: NonZeroU32::new(page_size).expect("non-zero"),
        },
        amount_unit: Default::default(),
    }
}

fn source(sandbox: &RunningRebilliaSandbox, page_size: u32, overlap: Duration) -> RebilliaSource {
    RebilliaSource::new(SOURCE, &settings(sandbox, TOKEN, page_size), overlap).expect("source")
}

async fn read(source: &RebilliaSource, cursor: &Cursor) -> Vec<SourcePage> {
    source
        .pages(cursor)
        .try_collect()
        .await
        .expect("every page reads")
}

fn valid(pages: &[SourcePage]) -> Vec<&SourceInvoice> {
    pages
        .iter()
        .flat_map(|page| &page.records)
        .map(|record| record.as_ref().expect("a valid record"))
        .collect()
}

fn ids(pages: &[SourcePage]) -> Vec<String> {
    valid(pages).iter().map(|i| i.external_id.clone()).collect()
}

fn committed(pages: &[SourcePage]) -> Cursor {
    pages
        .last()
        .expect("at least one page")
        .receipt
        .cursor
        .clone()
}

fn updated_at(sandbox: &RunningRebilliaSandbox, id: u64) -> DateTime<Utc> {
    let invoice = sandbox.control().invoice(id).expect("invoice exists");
    DateTime::parse_from_rfc3339(invoice["updatedAt"].as_str().expect("updatedAt"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

fn range(ids: std::ops::RangeInclusive<u64>) -> Vec<String> {
    ids.rev().map(|id| id.to_string()).collect()
}

#[tokio::test]
async fn pages_walk_every_invoice_newest_first() {
    let sandbox = spawn(25).await;
    let control = sandbox.control();
    let pages = read(
        &source(&sandbox, 10, Duration::from_secs(300)),
        &Cursor::default(),
    )
    .await;

    assert_eq!(pages.len(), 3);
    assert_eq!(ids(&pages), range(1001..=1025));
    for page in &pages[..2] {
        assert_eq!(
            page.receipt.cursor,
            Cursor::default(),
            "not before the walk ends"
        );
    }
    assert_eq!(committed(&pages), Cursor::at(updated_at(&sandbox, 1025)));
    assert_eq!(control.stats().count("GET /invoices", Some(200)), 3);

    let invoices = valid(&pages);
    let eur = invoices
        .iter()
        .find(|i| i.external_id == "1004")
        .expect("1004");
    assert_eq!(eur.currency.code(), "EUR");
    assert_eq!(eur.external_customer_id, "CUST-00004");
    assert_eq!(eur.invoice_number, "RB-000004");
    assert_eq!(eur.freight, Some(Decimal::new(1500, 2)));
    let raw = control.invoice(1004).expect("1004");
    let lines = raw["detail"].as_array().expect("detail");
    assert_eq!(eur.line_items.len(), lines.len());
    for (line, wire) in eur.line_items.iter().zip(lines) {
        let cents = wire["amount"].as_i64().expect("cents");
        let qty = wire["qty"].as_i64().expect("qty");
        assert_eq!(line.unit_price, Decimal::new(cents, 2));
        assert_eq!(line.line_total, Decimal::new(cents * qty, 2));
    }
    assert_eq!(
        eur.total,
        Decimal::new(raw["total"].as_i64().expect("total"), 2)
    );
    let lifecycle = |id: &str| {
        invoices
            .iter()
            .find(|i| i.external_id == id)
            .map(|i| i.lifecycle)
    };
    assert_eq!(lifecycle("1009"), Some(Lifecycle::Voided));
    assert_eq!(lifecycle("1010"), Some(Lifecycle::Active));

    // A page size above Rebillia's 250 is lowered, not refused by the API.
    control.reset_stats();
    let big = read(&source(&sandbox, 1000, Duration::ZERO), &Cursor::default()).await;
    assert_eq!((big.len(), ids(&big).len()), (1, 25));
    assert_eq!(control.stats().count("GET /invoices", Some(200)), 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_committed_cursor_brings_only_changes_and_the_boundary() {
    let sandbox = spawn(25).await;
    let control = sandbox.control();
    let source = source(&sandbox, 10, Duration::ZERO);
    let first = committed(&read(&source, &Cursor::default()).await);

    control
        .edit_invoice(
            1003,
            &InvoiceEdit {
                comments: Some("changed".into()),
                ..InvoiceEdit::default()
            },
        )
        .expect("edit");
    control.record_payment(1012, 100).expect("payment");
    let added = control
        .add_invoice(&NewInvoice::default())
        .expect("new invoice");
    control.reset_stats();

    let pages = read(&source, &first).await;
    let mut seen = ids(&pages);
    seen.sort();
    // 1025 sits exactly at the watermark: the window includes its boundary.
    let mut expected = vec![
        "1003".to_owned(),
        "1012".to_owned(),
        "1025".to_owned(),
        added.to_string(),
    ];
    expected.sort();
    assert_eq!(seen, expected);
    assert_eq!(
        control.stats().count("GET /invoices", Some(200)),
        2,
        "stopped at the window, after one audit page further down"
    );
    let memo = valid(&pages)
        .into_iter()
        .find(|i| i.external_id == "1003")
        .and_then(|i| i.memo.clone());
    assert_eq!(memo.as_deref(), Some("changed"));
    let second = committed(&pages);
    assert_eq!(second, Cursor::at(updated_at(&sandbox, 1003)));
    assert!(second.watermark > first.watermark);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_overlap_window_is_read_again() {
    let sandbox = spawn(25).await;
    let source = source(&sandbox, 10, Duration::from_secs(150 * 60));
    let cursor = committed(&read(&source, &Cursor::default()).await);
    let again = read(&source, &cursor).await;
    // Seeds are an hour apart: 2.5 hours before the newest reach two more.
    assert_eq!(ids(&again), range(1023..=1025));
    assert_eq!(committed(&again), cursor, "nothing new: the cursor stays");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn voided_and_deleted_invoices_carry_their_lifecycle() {
    let sandbox = spawn(25).await;
    let control = sandbox.control();
    let source = source(&sandbox, 50, Duration::ZERO);
    let cursor = committed(&read(&source, &Cursor::default()).await);

    control.void_invoice(1001).expect("void as an operator");
    control
        .edit_invoice(
            1004,
            &InvoiceEdit {
                status: Some("archived".into()),
                ..InvoiceEdit::default()
            },
        )
        .expect("archive");
    // Through the API, as a client would.
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", sandbox.base_url());
    let voided = http
        .put(url("/invoices/1002/void"))
        .header("X-AUTH-TOKEN", TOKEN)
        .header("Content-Type", "application/json")
        .send()
        .await
        .expect("void call");
    assert_eq!(voided.status(), 200);
    let paid = http
        .put(url("/invoices/1010/void"))
        .header("X-AUTH-TOKEN", TOKEN)
        .send()
        .await
        .expect("call");
    assert_eq!(paid.status(), 400, "a paid invoice cannot be voided");
    // Deleted outright through the admin route: it leaves the list.
    let admin = format!("http://{}/__sandbox/invoices/1003", sandbox.addr());
    assert_eq!(
        http.delete(&admin)
            .send()
            .await
            .expect("admin call")
            .status(),
        200
    );

    let pages = read(&source, &cursor).await;
    let by_id = |id: &str| {
        valid(&pages)
            .into_iter()
            .find(|i| i.external_id == id)
            .map(|i| (i.lifecycle, i.open_balance))
    };
    let balance = |id: u64| {
        Decimal::new(
            control.invoice(id).expect("exists")["balanceDue"]
                .as_i64()
                .expect("cents"),
            2,
        )
    };
    assert_eq!(by_id("1001"), Some((Lifecycle::Voided, balance(1001))));
    assert_eq!(by_id("1002"), Some((Lifecycle::Voided, balance(1002))));
    assert_eq!(by_id("1004").map(|(l, _)| l), Some(Lifecycle::Deleted));
    assert!(by_id("1003").is_none());

    let one = source
        .get_invoice("1002")
        .await
        .expect("reads")
        .expect("valid");
    assert_eq!(one.lifecycle, Lifecycle::Voided);
    assert!(!one.line_items.is_empty(), "read with include=detail");
    let gone = source
        .get_invoice("1003")
        .await
        .expect("reads")
        .expect_err("deleted");
    assert!(
        gone.to_string().contains("source billing, record 1003"),
        "{gone}"
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_failure_mid_paging_is_retried_without_gaps_or_duplicates() {
    let sandbox = spawn(25).await;
    let control = sandbox.control();
    let source = source(&sandbox, 10, Duration::ZERO);
    let mut pages = source.pages(&Cursor::default());
    let first = pages.next().await.expect("a page").expect("reads");
    control.push_fault(
        FaultRule::once(Fault::Status500)
            .times(2)
            .on_path_containing("/v1/invoices"),
    );
    control.push_fault(FaultRule::once(Fault::DropBeforeApply).on_method("GET"));
    let rest: Vec<SourcePage> = pages.try_collect().await.expect("retried to success");

    let all: Vec<SourcePage> = std::iter::once(first).chain(rest).collect();
    assert_eq!(
        ids(&all),
        range(1001..=1025),
        "every invoice once, in order"
    );
    let stats = control.stats();
    assert_eq!(stats.count("GET /invoices", Some(500)), 2, "{stats:?}");
    assert_eq!(stats.count("GET /invoices", None), 1, "{stats:?}");
    assert_eq!(stats.count("GET /invoices", Some(200)), 3, "{stats:?}");

    // A page that keeps failing ends the walk with Unavailable, after the configured attempts.
    control.reset_stats();
    control.push_fault(FaultRule::once(Fault::Status503).times(20));
    let mut pages = source.pages(&Cursor::default());
    let err = pages
        .next()
        .await
        .expect("an item")
        .expect_err("unavailable");
    assert!(matches!(err, SourceError::Unavailable { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(
        pages.next().await.is_none(),
        "the stream ends after the error"
    );
    assert_eq!(control.stats().total, u64::from(fast_retry().max_attempts));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_deletion_during_the_walk_hides_no_invoice() {
    let sandbox = spawn(25).await;
    let control = sandbox.control();
    let source = source(&sandbox, 10, Duration::ZERO);
    let mut pages = source.pages(&Cursor::default());
    let first = pages.next().await.expect("a page").expect("reads");
    // 1020 was on page 1; everything behind it moves up a place.
    control.delete_invoice(1020).expect("delete");
    let rest: Vec<SourcePage> = pages.try_collect().await.expect("reads");
    let all: Vec<SourcePage> = std::iter::once(first).chain(rest).collect();
    let mut seen = ids(&all);
    seen.sort();
    seen.dedup();
    let mut expected = range(1001..=1025);
    expected.sort();
    // Without stepping back, 1015 (slid from page 2 onto page 1) would be missed.
    assert_eq!(
        seen, expected,
        "re-reading may repeat invoices, never skip one"
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_malformed_record_is_a_record_error_and_the_page_flows() {
    let sandbox = spawn(5).await;
    let control = sandbox.control();
    let bad_cents = control
        .insert_malformed(
            &json!({"detail": [{"amount": 12.5, "qty": 1, "description": "half a cent"}]}),
        )
        .expect("insert");
    control
        .corrupt_invoice(1002, &json!({"currency": {"iso3": "USX"}}))
        .expect("corrupt");

    let pages = read(&source(&sandbox, 10, Duration::ZERO), &Cursor::default()).await;
    assert_eq!(pages.len(), 1);
    let records = &pages[0].records;
    assert_eq!(records.len(), 6);
    assert_eq!(
        records.iter().filter(|r| r.is_ok()).count(),
        4,
        "the rest of the page flows"
    );
    let errors: Vec<_> = records.iter().filter_map(|r| r.as_ref().err()).collect();
    let error = |id: &str| {
        errors
            .iter()
            .find(|e| e.to_string().contains(&format!("record {id}:")))
            .expect("error")
    };

    let cents = error(&bad_cents.to_string());
    assert_eq!(&*cents.source_name, SOURCE);
    assert_eq!(cents.field.as_deref(), Some("line_items[0].unit_price"));
    assert!(
        cents.reason.contains("detail[0].amount") && cents.reason.contains("whole number of cents"),
        "{cents}"
    );
    let currency = error("1002");
    assert_eq!(currency.field.as_deref(), Some("currency"));
    assert!(currency.to_string().contains("USX"), "{currency}");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized_without_retries() {
    let sandbox = spawn(3).await;
    let wrong = RebilliaSource::new(
        SOURCE,
        &settings(&sandbox, "not-the-token", 10),
        Duration::ZERO,
    )
    .expect("source");
    let mut pages = wrong.pages(&Cursor::default());
    let err = pages.next().await.expect("an item").expect_err("refused");
    assert!(
        matches!(err, SourceError::Unauthorized { ref source_name, .. } if source_name == SOURCE),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert!(pages.next().await.is_none());
    let err = wrong.get_invoice("1001").await.expect_err("refused");
    assert!(matches!(err, SourceError::Unauthorized { .. }), "{err:?}");
    assert_eq!(
        sandbox.control().stats().count("GET /invoices", Some(401)),
        1
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_token_never_appears_in_logs_or_errors() {
    let capture = LogCapture::default();
    // Everything at TRACE, this crate and every dependency (reqwest, hyper).
    let subscriber =
        telemetry::subscriber(LogFormat::Json, EnvFilter::new("trace"), capture.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let sandbox = spawn(12).await;
    let control = sandbox.control();
    let good = source(&sandbox, 5, Duration::ZERO);
    let mut seen = vec![
        format!("{good:?}"),
        format!("{:?}", settings(&sandbox, TOKEN, 5)),
        format!(
            "{:?}",
            RebilliaSandboxConfig {
                token: TOKEN.into(),
                ..RebilliaSandboxConfig::default()
            }
        ),
    ];
    control.push_fault(FaultRule::once(Fault::Status500).on_method("GET"));
    control.push_fault(FaultRule::once(Fault::ApplyThenDrop).on_method("GET"));
    let _ = read(&good, &Cursor::default()).await;
    control.push_fault(FaultRule::once(Fault::Status503).times(20));
    let err = good
        .pages(&Cursor::default())
        .next()
        .await
        .expect("item")
        .expect_err("unavailable");
    seen.push(format!("{err} | {err:?}"));
    control.clear_faults();
    let missing = good
        .get_invoice("404404")
        .await
        .expect("reads")
        .expect_err("missing");
    seen.push(format!("{missing} | {missing:?}"));
    let wrong_token = format!("{TOKEN}x");
    let wrong = RebilliaSource::new(SOURCE, &settings(&sandbox, &wrong_token, 5), Duration::ZERO)
        .expect("source");
    let err = wrong
        .pages(&Cursor::default())
        .next()
        .await
        .expect("item")
        .expect_err("refused");
    seen.push(format!("{err} | {err:?} | {wrong:?}"));
    sandbox.shutdown().await;

    let logs = capture.text();
    assert!(
        logs.contains("Rebillia response"),
        "the capture saw the adapter's logs"
    );
    assert!(logs.contains(SOURCE), "logs name the source");
    for text in seen.iter().map(String::as_str).chain([logs.as_str()]) {
        assert!(!text.contains(TOKEN), "token leaked: {text}");
    }
}

#[tokio::test]
async fn the_sandbox_api_follows_the_docs() {
    let sandbox = spawn(12).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", sandbox.base_url());
    let get = |path: &str, token: &str| http.get(url(path)).header("X-AUTH-TOKEN", token).send();

    let refused = get("/invoices", "wrong").await.expect("call");
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.expect("JSON error");
    assert_eq!(body["code"], "UNAUTHORIZED");
    assert_eq!(
        get("/invoices?itemPerPage=251", TOKEN)
            .await
            .expect("call")
            .status(),
        400
    );
    let page: Value = get("/invoices?itemPerPage=5&pageNo=3", TOKEN)
        .await
        .expect("call")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        (
            &page["currentPageNumber"],
            &page["itemsPerPage"],
            &page["totalItems"],
            &page["totalPages"]
        ),
        (&json!(3), &json!(5), &json!(12), &json!(3))
    );
    assert_eq!(page["data"].as_array().map(Vec::len), Some(2));

    let put = |id: &str, body: Value| {
        http.put(url(&format!("/invoices/{id}")))
            .header("X-AUTH-TOKEN", TOKEN)
            .json(&body)
            .send()
    };
    // 1001 is posted, 1010 paid (only posted and requestPayment invoices can be updated).
    let updated = put(
        "1001",
        json!({"detail": [{"amount": 4100, "qty": 2}], "shippingAmount": 0}),
    )
    .await
    .expect("call");
    assert_eq!(updated.status(), 200);
    let invoice: Value = updated.json().await.expect("JSON");
    assert_eq!(
        (
            invoice["total"].as_i64(),
            invoice["detail"][0]["amount"].as_i64()
        ),
        (Some(8200), Some(4100))
    );
    assert_eq!(
        put("1010", json!({"comments": "x"}))
            .await
            .expect("call")
            .status(),
        400
    );
    assert_eq!(
        put("1002", json!({"billingAddress": {}}))
            .await
            .expect("call")
            .status(),
        400
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_first_page_tells_the_amount_unit() {
    for (style, want) in [
        (AmountStyle::Cents, Some(AmountUnit::Cents)),
        (AmountStyle::Dollars, None),
        (AmountStyle::Documented, None),
    ] {
        let sandbox = rebillia::start(
            RebilliaSandboxConfig {
                token: TOKEN.to_owned(),
                seed_customers: 5,
                seed_invoices: 25,
                amounts: style,
                ..RebilliaSandboxConfig::default()
            },
            "127.0.0.1:0".parse().expect("loopback"),
        )
        .await
        .expect("the sandbox starts");
        let control = sandbox.control();
        let found = source(&sandbox, 10, Duration::ZERO)
            .detect_amount_unit()
            .await
            .expect("reads");
        assert_eq!(found.detected(), want, "{style:?}: {found}");
        assert_eq!(found.evidence.invoices(), 10, "{found}");
        assert_eq!(found.evidence.neither, 0, "{found}");
        match style {
            // 1016..1025: the even ones ship (documented cents tell), the odd ones do not.
            AmountStyle::Cents => {
                assert_eq!(
                    (found.evidence.cents, found.evidence.either),
                    (5, 5),
                    "{found}"
                );
                assert!(
                    found
                        .to_string()
                        .starts_with("amounts: whole numbers are cents: of 10 invoices"),
                    "{found}"
                );
            }
            _ => {
                assert_eq!(found.evidence.dollar_strings, 10, "{found}");
                assert!(
                    found
                        .to_string()
                        .starts_with("amounts: dollar strings (no whole number to tell)"),
                    "{found}"
                );
            }
        }
        assert!(
            found
                .to_string()
                .ends_with("(first page, amount_unit = \"auto\")"),
            "{found}"
        );
        assert!(!found.conflicts());
        assert_eq!(
            control.stats().count("GET /invoices", Some(200)),
            1,
            "one read, no write"
        );
        assert_eq!(control.stats().total, 1);
        sandbox.shutdown().await;
    }
    // A forced unit the invoices contradict is named.
    let sandbox = spawn(25).await;
    let mut forced = settings(&sandbox, TOKEN, 10);
    forced.amount_unit = RebilliaAmountUnit::Dollars;
    let found = RebilliaSource::new(SOURCE, &forced, Duration::ZERO)
        .expect("source")
        .detect_amount_unit()
        .await
        .expect("reads");
    assert!(found.conflicts(), "{found}");
    assert!(
        found.to_string().ends_with(
            "(first page, amount_unit = \"dollars\"); the configured unit contradicts them"
        ),
        "{found}"
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_sandbox_command_line_serves_dollars_and_ignores_the_sort() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_b2b-invoice-sync"))
        .args(["--log-format", "json", "sandbox", "rebillia", "--port", "0"])
        .args(["--seed-invoices", "5", "--token", TOKEN])
        .args(["--amounts", "dollars", "--ignore-sort"])
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
    let http = reqwest::Client::new();
    let first = || async {
        let page: Value = http
            .get(format!(
                "{base_url}/invoices?orderBy=updatedAt&sortBy=ASC&include=detail"
            ))
            .header("X-AUTH-TOKEN", TOKEN)
            .send()
            .await
            .expect("call")
            .json()
            .await
            .expect("JSON");
        page["data"][0].clone()
    };
    let invoice = first().await;
    assert_eq!(
        invoice["id"], "1005",
        "newest created first, whatever is asked"
    );
    assert!(
        invoice["total"].as_str().is_some_and(|t| t.contains('.')),
        "{invoice}"
    );
    assert!(invoice["detail"][0]["amount"].is_string(), "{invoice}");

    // The same modes over the admin routes.
    let admin = base_url.replace("/v1", "/__sandbox/modes");
    let put = http
        .put(&admin)
        .json(&json!({"amounts": "cents", "list_order": "honoured"}))
        .send()
        .await
        .expect("admin call");
    assert_eq!(put.status(), 200);
    let invoice = first().await;
    assert_eq!(invoice["id"], "1001", "sorted as asked again");
    assert!(invoice["total"].is_i64(), "{invoice}");
    let bad = http
        .put(&admin)
        .json(&json!({"amounts": "euros"}))
        .send()
        .await
        .expect("admin call");
    assert_eq!(bad.status(), 400);
    child.kill().await.expect("stop the sandbox");
}

/// A Rebillia invoice with one line of `qty` x `cents`, shipping and amounts all in cents; its
/// total is the line and the shipping, as Rebillia's would be (a digit string when beyond what
/// a JSON integer holds, 0 when beyond what an amount holds).
fn cents_invoice(cents: i64, qty: i64, shipping: i64, balance: i64) -> Value {
    let total = (i128::from(qty) * i128::from(cents))
        .checked_add(i128::from(shipping))
        .filter(|t| Decimal::try_from_i128_with_scale(*t, 2).is_ok());
    let total = match total.map(i64::try_from) {
        Some(Ok(fits)) => json!(fits),
        Some(Err(_)) => json!(total.unwrap_or_default().to_string()),
        None => json!(0),
    };
    json!({
        "id": "7", "invoiceNo": "RB-7", "status": "posted",
        "customer": {"id": "501", "customerId": "CUST-00001"}, "currency": {"iso3": "USD"},
        "updatedAt": "2026-11-02T10:00:00+00:00",
        "detail": [{"amount": cents, "qty": qty, "description": "line"}],
        "shippingAmount": shipping, "total": total, "balanceDue": balance,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rebillia_cents_convert_exactly(
        cents in any::<i64>(),
        qty in 1i64..1_000_000,
        shipping in any::<i64>(),
        balance in any::<i64>(),
    ) {
        let invoice = invoice_from_json(SOURCE, &cents_invoice(cents, qty, shipping, balance))
            .expect("valid");
        let line = &invoice.line_items[0];
        prop_assert_eq!(line.unit_price, Decimal::new(cents, 2));
        prop_assert_eq!((line.unit_price.mantissa(), line.unit_price.scale()), (i128::from(cents), 2));
        let product = i128::from(qty) * i128::from(cents);
        prop_assert_eq!(line.line_total.mantissa(), product);
        prop_assert_eq!(line.line_total.scale(), 2);
        prop_assert_eq!(line.quantity, Decimal::from(qty));
        prop_assert_eq!(invoice.freight, Some(Decimal::new(shipping, 2)));
        let total = product + i128::from(shipping);
        prop_assert_eq!((invoice.total.mantissa(), invoice.total.scale()), (total, 2));
        prop_assert_eq!(invoice.open_balance, Decimal::new(balance, 2));
        prop_assert_eq!(invoice.currency.to_minor_units(invoice.open_balance), Some(balance));
    }

    #[test]
    fn amounts_that_cannot_be_exact_are_refused_not_rounded(
        cents in any::<i64>(),
        qty in any::<i64>(),
        fraction in 1u32..100,
    ) {
        // A product beyond Decimal's 96 bits is an error, never a panic or a rounded total.
        let result = invoice_from_json(SOURCE, &cents_invoice(cents, qty, 0, 0));
        let product = i128::from(qty) * i128::from(cents);
        match result {
            Ok(invoice) => prop_assert_eq!(invoice.line_items[0].line_total.mantissa(), product),
            Err(err) => prop_assert_eq!(err.field.as_deref(), Some("line_items[0].line_total")),
        }
        // Fractional cents: a JSON number with a fraction is neither whole cents nor a dollar
        // string, and is refused naming the field.
        let text = format!("{cents}.{fraction:02}");
        let mut value = cents_invoice(1, 1, 0, 0);
        value["shippingAmount"] = json!(text.parse::<f64>().expect("a number"));
        let err = invoice_from_json(SOURCE, &value).expect_err("fractional cents");
        prop_assert_eq!(err.field.as_deref(), Some("freight"));
        // A decimal string is dollars: read exactly, and refused here because the invoice
        // does not add up with it (the reason shows it).
        value["shippingAmount"] = json!(text);
        let err = invoice_from_json(SOURCE, &value).expect_err("does not add up");
        prop_assert_eq!(err.field.as_deref(), Some("total"));
        prop_assert!(err.reason.contains(&format!("shipping {text}")), "{}", err);
    }
}
