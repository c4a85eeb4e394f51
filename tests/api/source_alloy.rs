//! The unified adapter with an Alloy preset against the sandbox's Alloy API, both versions, over
//! real HTTP: full scans in the cache's order, ids, customers resolved to their `remoteId`,
//! the open readings of the docs (dates, amounts, `connectionId`), paging guards, the payments
//! write-back on Alloy's own id, and the source's request budget.

use std::str::FromStr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use b2b_invoice_sync::config::{PagingStyle, ScanMode, UnifiedNames, UnifiedPreset};
use b2b_invoice_sync::domain::{Currency, Lifecycle, RecordError, SourceInvoice};
use b2b_invoice_sync::sandbox::unified::{
    self as unified, alloy_customer_id, alloy_invoice_id, alloy_remote_id, AlloyCounters,
    AlloyVersion, RunningUnifiedSandbox, UnifiedSandboxConfig,
};
use b2b_invoice_sync::source::unified::UnifiedSource;
use b2b_invoice_sync::source::write_back::{PaymentKind, PaymentWrite, PaymentWriter};
use b2b_invoice_sync::source::{Cursor, PageReceipt, Source, SourceError};

use crate::alloy_world::*;

const VERSIONS: [AlloyVersion; 2] = [AlloyVersion::V2024_03, AlloyVersion::V2023_12];
const LIST: &str = "GET /accounting/invoices";
const CUSTOMERS: &str = "GET /accounting/customers";
const CUSTOMER: &str = "GET /accounting/customers/{id}";

struct Read {
    records: Vec<Result<SourceInvoice, RecordError>>,
    receipts: Vec<PageReceipt>,
}

impl Read {
    fn invoices(&self) -> Vec<&SourceInvoice> {
        self.records
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .collect()
    }

    fn errors(&self) -> Vec<&RecordError> {
        self.records
            .iter()
            .filter_map(|r| r.as_ref().err())
            .collect()
    }

    fn by_id(&self, external_id: &str) -> Option<&SourceInvoice> {
        self.invoices()
            .into_iter()
            .find(|i| i.external_id == external_id)
    }
}

async fn read(source: &UnifiedSource) -> Result<Read, SourceError> {
    let mut read = Read {
        records: Vec::new(),
        receipts: Vec::new(),
    };
    let mut pages = source.pages(&Cursor::default());
    while let Some(page) = pages.next().await {
        let page = page?;
        read.records.extend(page.records);
        read.receipts.push(page.receipt);
    }
    Ok(read)
}

fn adapter(sandbox: &RunningUnifiedSandbox, version: AlloyVersion) -> UnifiedSource {
    UnifiedSource::new(
        SOURCE,
        &alloy_settings(sandbox, version),
        Duration::from_secs(300),
    )
    .expect("the adapter builds")
}

#[tokio::test]
async fn both_versions_scan_every_invoice_once_with_remote_ids_and_resolved_customers() {
    for version in VERSIONS {
        let sandbox = alloy_sandbox(version, 1000, 300, |_| {}).await;
        let control = sandbox.control();
        control.delete_invoice(&alloy_remote_id(7)).expect("delete");
        let source = adapter(&sandbox, version);
        let first = read(&source).await.expect("a full scan");
        assert!(
            first.errors().is_empty(),
            "{version:?}: {:?}",
            first.errors()
        );
        let ids: Vec<String> = first
            .invoices()
            .iter()
            .map(|i| i.external_id.clone())
            .collect();
        let expected: Vec<String> = (1..=1000).map(alloy_remote_id).collect();
        assert_eq!(
            ids, expected,
            "{version:?}: every invoice once, in the cache's order"
        );
        let inv = first.by_id(&alloy_remote_id(302)).expect("invoice 1302");
        assert_eq!(inv.external_customer_id, "CUST-00002", "{version:?}");
        assert_eq!(
            inv.extra_fields.get("customerName").map(String::as_str),
            Some("Customer 00002")
        );
        assert_eq!(inv.invoice_number, "INV-000302");
        assert!(
            inv.updated_at.is_some(),
            "{version:?}: the ERP's update time is read"
        );
        assert_eq!(
            first.by_id(&alloy_remote_id(7)).map(|i| i.lifecycle),
            Some(Lifecycle::Deleted)
        );

        let stats = control.stats();
        let (pages, customer_pages) = match version {
            // 10 full pages, then an empty one ends the list.
            AlloyVersion::V2024_03 => (11, 4),
            // pageInfo.hasNext is false on the 10th.
            AlloyVersion::V2023_12 => (10, 3),
        };
        assert_eq!(stats.route_total(LIST), pages, "{version:?}: {stats:?}");
        assert_eq!(stats.route_total(CUSTOMERS), customer_pages, "{version:?}");
        assert_eq!(stats.route_total(CUSTOMER), 0, "{version:?}");
        assert_eq!(
            control.alloy_counters(),
            AlloyCounters::default(),
            "{version:?}"
        );
        // Only the finished scan moves the cursor, to when it started.
        assert!(first.receipts[..first.receipts.len() - 1]
            .iter()
            .all(|r| r.cursor.watermark.is_none()));
        assert!(first
            .receipts
            .last()
            .and_then(|r| r.cursor.watermark)
            .is_some());

        // The next scan reads the invoices again, and the customers from the cache.
        control.reset_stats();
        let second = read(&source).await.expect("a second scan");
        assert_eq!(second.invoices().len(), 1000);
        let stats = control.stats();
        assert_eq!(stats.route_total(LIST), pages);
        assert_eq!(stats.route_total(CUSTOMERS), 0, "{version:?}: cached");
        assert_eq!(control.alloy_counters(), AlloyCounters::default());
    }
}

#[tokio::test]
async fn dates_as_integers_amounts_as_strings_and_connection_id_read_the_same() {
    let plain = alloy_sandbox(AlloyVersion::V2024_03, 60, 7, |_| {}).await;
    let odd = alloy_sandbox(AlloyVersion::V2024_03, 60, 7, |c| {
        let o = options(c);
        o.unix_dates = true;
        o.string_amounts = true;
        o.accept_connection_id = true;
    })
    .await;
    let sample = odd.control().invoice(&alloy_remote_id(4)).expect("invoice");
    assert!(sample["issueDate"].is_i64() && sample["totalAmount"].is_string());
    let expected = read(&adapter(&plain, AlloyVersion::V2024_03))
        .await
        .expect("read");
    let mut settings = alloy_settings(&odd, AlloyVersion::V2024_03);
    settings.names.credential_param = "connectionId".to_owned();
    let source = UnifiedSource::new(SOURCE, &settings, Duration::ZERO).expect("adapter");
    let got = read(&source).await.expect("read with the other readings");
    let strip = |r: &Read| {
        r.invoices()
            .into_iter()
            .map(|i| {
                let mut i = i.clone();
                i.updated_at = None;
                i
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&got), strip(&expected));

    // Without the alias, 2024-03 wants credentialId: a clear refusal, counted by the sandbox.
    let strict = alloy_sandbox(AlloyVersion::V2024_03, 5, 2, |_| {}).await;
    let mut settings = alloy_settings(&strict, AlloyVersion::V2024_03);
    settings.names.credential_param = "connectionId".to_owned();
    let source = UnifiedSource::new(SOURCE, &settings, Duration::ZERO).expect("adapter");
    let err = read(&source).await.err().expect("refused");
    assert!(
        err.to_string().contains("credentialId is required"),
        "{err}"
    );
    assert_eq!(strict.control().alloy_counters().wrong_credential_params, 1);
}

#[tokio::test]
async fn an_unknown_customer_fails_only_its_invoice_and_names_the_customer() {
    for version in VERSIONS {
        let sandbox = alloy_sandbox(version, 30, 5, |_| {}).await;
        let control = sandbox.control();
        let stranger = alloy_customer_id(77);
        control
            .update_invoice(&alloy_remote_id(3), &json!({ "customerId": stranger }))
            .expect("patch");
        let source = adapter(&sandbox, version);
        let scan = read(&source).await.expect("the scan goes on");
        assert_eq!(scan.invoices().len(), 29, "{version:?}");
        let errors = scan.errors();
        assert_eq!(errors.len(), 1, "{errors:?}");
        let text = errors[0].to_string();
        assert!(
            text.contains(&alloy_remote_id(3)) && text.contains(&stranger),
            "{version:?}: {text}"
        );
        assert_eq!(control.stats().route_total(CUSTOMER), 1, "asked once");

        // The ERP's customer reaches Alloy: the next scan asks for it alone and takes it.
        let id = control.create_customer("CUST-NEW-1", "New Customer Ltd");
        control
            .update_invoice(&alloy_remote_id(3), &json!({ "customerId": id }))
            .expect("patch");
        control.reset_stats();
        let scan = read(&source).await.expect("scan");
        assert!(scan.errors().is_empty(), "{:?}", scan.errors());
        let inv = scan.by_id(&alloy_remote_id(3)).expect("invoice");
        assert_eq!(inv.external_customer_id, "CUST-NEW-1");
        let stats = control.stats();
        assert_eq!(stats.route_total(CUSTOMER), 1, "{version:?}: {stats:?}");
        assert_eq!(
            stats.route_total(CUSTOMERS),
            0,
            "{version:?}: not the whole list"
        );
    }
}

#[tokio::test]
async fn many_unknown_customers_on_a_page_read_the_list_whole_once() {
    let sandbox = alloy_sandbox(AlloyVersion::V2024_03, 40, 40, |_| {}).await;
    let control = sandbox.control();
    let source = adapter(&sandbox, AlloyVersion::V2024_03);
    read(&source).await.expect("first scan");
    // 12 new customers, each on an invoice.
    for k in 1..=12u64 {
        let id = control.create_customer(&format!("CUST-LATE-{k}"), "Late");
        control
            .update_invoice(&alloy_remote_id(k), &json!({ "customerId": id }))
            .expect("patch");
    }
    control.reset_stats();
    let scan = read(&source).await.expect("scan");
    assert!(scan.errors().is_empty());
    let stats = control.stats();
    assert_eq!(
        stats.route_total(CUSTOMERS),
        1,
        "one page of 52 customers: {stats:?}"
    );
    assert_eq!(stats.route_total(CUSTOMER), 0);
}

#[tokio::test]
async fn a_page_parameter_the_api_ignores_is_an_error_not_an_endless_scan() {
    // The generic sandbox knows no `page` parameter: it serves page one for every number.
    let sandbox = unified::start(
        UnifiedSandboxConfig {
            seed_invoices: 30,
            ..UnifiedSandboxConfig::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("sandbox");
    let mut settings = alloy_settings(&sandbox, AlloyVersion::V2024_03);
    settings.names = UnifiedNames {
        limit_param: "limit".to_owned(),
        page_param: "page".to_owned(),
        ..UnifiedNames::default()
    };
    settings.api.preset = UnifiedPreset::Custom;
    settings.api.paging = PagingStyle::PageNumber;
    settings.api.scan = ScanMode::Full;
    settings.api.customer_lookup = None;
    settings.http.page_size = std::num::NonZeroU32::new(10).expect("non-zero");
    let source = UnifiedSource::new(SOURCE, &settings, Duration::ZERO).expect("adapter");
    let err = read(&source).await.err().expect("a protocol error");
    assert!(
        matches!(err, SourceError::Protocol { .. }) && err.to_string().contains("`page`"),
        "{err}"
    );
    assert_eq!(
        sandbox.control().stats().total,
        2,
        "stopped at the second page"
    );
}

#[tokio::test]
async fn custom_paging_by_page_number_reads_alloy_like_the_preset() {
    let sandbox = alloy_sandbox(AlloyVersion::V2024_03, 250, 10, |_| {}).await;
    let mut settings = alloy_settings(&sandbox, AlloyVersion::V2024_03);
    settings.api.preset = UnifiedPreset::Custom;
    let source = UnifiedSource::new(SOURCE, &settings, Duration::ZERO).expect("adapter");
    let scan = read(&source).await.expect("scan");
    assert_eq!(scan.invoices().len(), 250);
    // 100 + 100 + 50: the short page ends the list.
    assert_eq!(sandbox.control().stats().route_total(LIST), 3);
}

fn payment(external_id: &str, target: &str) -> PaymentWrite {
    PaymentWrite {
        event_id: 1,
        external_id: external_id.to_owned(),
        invoice_number: "INV-000003".to_owned(),
        kind: PaymentKind::Payment,
        payment_id: 501,
        b2b_invoice_id: 9,
        amount: Decimal::new(1000, 2),
        currency: Currency::parse("USD").expect("USD"),
        target_balance: target.parse().expect("decimal"),
        reference: "b2b-payment-501".to_owned(),
        reference_field: Some("B2BPaymentRef".to_owned()),
        occurred_at: chrono::Utc::now(),
    }
}

#[tokio::test]
async fn payments_are_written_to_alloys_own_id_with_a_numeric_balance() {
    for version in VERSIONS {
        let sandbox = alloy_sandbox(version, 20, 4, |_| {}).await;
        let control = sandbox.control();
        let remote = alloy_remote_id(3);
        let source = adapter(&sandbox, version);
        // Before any scan, the Alloy id is unknown: nothing is sent, it is retried later.
        let early = source.current(&remote).await.expect_err("not yet");
        assert!(early.to_string().contains("not known yet"), "{early}");
        assert_eq!(control.stats().total, 0);

        read(&source).await.expect("a scan learns the ids");
        let before = source
            .current(&remote)
            .await
            .expect("read back")
            .expect("readable");
        let target = (before.balance - Decimal::new(1000, 2)).round_dp(2);
        let event = payment(&remote, &target.to_string());
        source.write(&event).await.expect("written");
        let writes = control.received_writes();
        assert_eq!(writes.len(), 1);
        assert_eq!(
            writes[0].0,
            alloy_invoice_id(3),
            "{version:?}: PUT on Alloy's id"
        );
        let body: &Value = &writes[0].1;
        assert!(body["balance"].is_number(), "{body}");
        assert_eq!(
            Decimal::from_str(&body["balance"].to_string()).expect("a decimal"),
            target
        );
        assert_eq!(body["remoteFields"]["B2BPaymentRef"], "b2b-payment-501");
        let after = source.current(&remote).await.expect("read").expect("some");
        assert_eq!(after.balance, target);
        assert_eq!(
            control.alloy_counters(),
            AlloyCounters::default(),
            "{version:?}"
        );
    }
}

#[tokio::test]
async fn every_request_keeps_to_the_sources_budget_and_429s_pause_it() {
    let sandbox = alloy_sandbox(AlloyVersion::V2024_03, 500, 10, |c| {
        // 4 requests per 6 s: an unpaced scan of 6 + 1 requests would be refused.
        c.rate_limit = 4;
        c.rate_window = Duration::from_secs(6);
    })
    .await;
    let mut settings = alloy_settings(&sandbox, AlloyVersion::V2024_03);
    // 40 a minute: one request every 1.54 s, at most 4 in any 6 s.
    settings.api.requests_per_minute = std::num::NonZeroU32::new(40);
    let source = UnifiedSource::new(SOURCE, &settings, Duration::ZERO).expect("adapter");
    let started = Instant::now();
    let scan = read(&source).await.expect("scan");
    assert_eq!(scan.invoices().len(), 500);
    let stats = sandbox.control().stats();
    assert_eq!(stats.rate_limited, 0, "never over the limit: {stats:?}");
    let sent = stats.total;
    assert_eq!(sent, 6 + 1, "6 invoice pages and 1 customer page");
    assert!(
        started.elapsed() >= Duration::from_millis(1500 * (sent - 1)),
        "paced: {:?}",
        started.elapsed()
    );
    let times: Vec<Duration> = sandbox.control().requests().iter().map(|r| r.at).collect();
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..]
            .iter()
            .take_while(|u| **u < *t + Duration::from_secs(6))
            .count();
        assert!(in_window <= 4, "{in_window} requests within 6 s of {t:?}");
    }
}
