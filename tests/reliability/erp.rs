//! The ERP side of a row: a unified-API sandbox, a Rebillia sandbox or an export folder, with
//! what the ERP says should be in B2B ([`Expected`]) read back through a fresh adapter.

use std::collections::BTreeMap;
use std::fs;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::{json, Value};

use b2b_invoice_sync::config::{
    AdapterSettings, FilesSettings, HttpSettings, ReadyRule, RebilliaSettings, RetrySettings,
    UnifiedApi, UnifiedNames, UnifiedPreset, UnifiedSettings,
};
use b2b_invoice_sync::domain::{
    Lifecycle, RawInvoice, RawLineItem, RecordError, RecordLocator, SourceInvoice, SourceVersion,
};
use b2b_invoice_sync::sandbox::rebillia::{
    self, AmountStyle, InvoiceEdit, LineSpec, NewInvoice, RebilliaSandboxConfig,
    RunningRebilliaSandbox,
};
use b2b_invoice_sync::sandbox::unified::{
    self, AlloyVersion, RunningUnifiedSandbox, UnifiedSandboxConfig,
};
use b2b_invoice_sync::source::files::FilesSource;
use b2b_invoice_sync::source::rebillia::RebilliaSource;
use b2b_invoice_sync::source::unified::UnifiedSource;
use b2b_invoice_sync::source::{Cursor, Source};

pub const REBILLIA_TOKEN: &str = "rebillia_REL_SECRET_77c1";

/// Quick retries for the ERP adapters too: a fault row must not wait on real backoff.
pub fn erp_retry() -> RetrySettings {
    RetrySettings {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(40),
    }
}

fn http(page_size: u32) -> HttpSettings {
    HttpSettings {
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        retry: erp_retry(),
        page_size: NonZeroU32::new(page_size).expect("non-zero"),
    }
}

/// What the ERP says, read from scratch: the live valid invoices (latest version of each) that
/// B2B must hold, and the records no adapter can take (each must be reported).
#[derive(Debug, Default)]
pub struct Expected {
    pub live: BTreeMap<String, SourceInvoice>,
    pub refused: Vec<RecordError>,
    /// The newest version seen of every invoice, live or not.
    latest: BTreeMap<String, Option<SourceVersion>>,
}

impl Expected {
    /// How many invoices the ERP has deleted or voided (in their newest version).
    pub fn gone(&self) -> usize {
        self.latest.len().saturating_sub(self.live.len())
    }

    /// The newest version of each invoice wins (of equal or unknown versions, the later read).
    fn take(&mut self, record: Result<SourceInvoice, RecordError>) {
        match record {
            Ok(inv) => {
                let older = self.latest.get(&inv.external_id).is_some_and(
                    |seen| matches!((&inv.version, seen), (Some(v), Some(s)) if v < s),
                );
                if older {
                    return;
                }
                self.latest
                    .insert(inv.external_id.clone(), inv.version.clone());
                if inv.lifecycle == Lifecycle::Active {
                    self.live.insert(inv.external_id.clone(), inv);
                } else {
                    self.live.remove(&inv.external_id);
                }
            }
            Err(e) => self.refused.push(e),
        }
    }
}

/// An export folder fed by the test, with a copy of every file written (the adapter moves the
/// originals to `processed/`), so that the expected state can be read again from scratch.
pub struct ExportFolder {
    pub dir: tempfile::TempDir,
    archive: tempfile::TempDir,
    written: usize,
}

impl ExportFolder {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            archive: tempfile::tempdir().expect("tempdir"),
            written: 0,
        }
    }

    /// Writes the next export file (names and mtimes keep the write order).
    pub fn write(&mut self, lines: &[String]) -> PathBuf {
        self.written += 1;
        let name = format!("export-{:04}.ndjson", self.written);
        let mut text = lines.join("\n");
        text.push('\n');
        let mtime = SystemTime::now() - Duration::from_secs(86_400)
            + Duration::from_secs(self.written as u64);
        for dir in [self.archive.path(), self.dir.path()] {
            // Written under another name and renamed: the folder uses `atomic_rename`.
            let tmp = dir.join(format!(".{name}.tmp"));
            fs::write(&tmp, &text).expect("write export");
            set_mtime(&tmp, mtime);
            fs::rename(&tmp, dir.join(&name)).expect("rename export");
        }
        self.dir.path().join(name)
    }

    pub fn settings(&self) -> FilesSettings {
        files_settings(self.dir.path())
    }

    /// Every refused row the adapter wrote to `rejected/*.errors.ndjson`.
    pub fn rejected_rows(&self) -> Vec<Value> {
        let Ok(entries) = fs::read_dir(self.dir.path().join("rejected")) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".errors.ndjson"))
            .flat_map(|e| {
                fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Files still waiting in the folder (not yet processed or rejected).
    pub fn waiting(&self) -> Vec<String> {
        fs::read_dir(self.dir.path())
            .expect("export folder")
            .filter_map(Result::ok)
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    async fn expected(&self, source: &str) -> Expected {
        // Read a fresh copy of the archive: the real reader, nothing moved in the live folder.
        let copy = tempfile::tempdir().expect("tempdir");
        let mut names: Vec<PathBuf> = fs::read_dir(self.archive.path())
            .expect("archive")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        names.sort();
        for path in &names {
            let target = copy.path().join(path.file_name().expect("file name"));
            fs::copy(path, &target).expect("copy export");
            // The archive's times are the folder's: the copy's records get the same versions.
            let mtime = fs::metadata(path)
                .and_then(|m| m.modified())
                .expect("archive mtime");
            set_mtime(&target, mtime);
        }
        let reader = FilesSource::new(source, &files_settings(copy.path())).expect("folder");
        read_all(&reader).await
    }
}

fn set_mtime(path: &Path, when: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(when))
        .expect("set mtime");
}

fn files_settings(dir: &Path) -> FilesSettings {
    FilesSettings {
        dir: dir.to_owned(),
        ready: ReadyRule::AtomicRename,
        page_size: NonZeroU32::new(25).expect("non-zero"),
    }
}

async fn read_all(source: &dyn Source) -> Expected {
    let mut expected = Expected::default();
    let mut pages = source.pages(&Cursor::default());
    while let Some(page) = pages.next().await {
        let page = page.expect("the ERP reads cleanly once the faults are gone");
        for record in page.records {
            expected.take(record);
        }
    }
    expected
}

pub enum Erp {
    Unified(RunningUnifiedSandbox),
    Rebillia(RunningRebilliaSandbox),
    Files(ExportFolder),
}

impl Erp {
    pub async fn unified(invoices: usize, seed: u64) -> Self {
        let sandbox = unified::start(
            UnifiedSandboxConfig {
                seed_invoices: invoices,
                rng_seed: Some(seed),
                ..UnifiedSandboxConfig::default()
            },
            "127.0.0.1:0".parse().expect("addr"),
        )
        .await
        .expect("unified sandbox starts");
        Self::Unified(sandbox)
    }

    /// Alloy's Unified API in `version` (its rate limit off: the budget has tests of its own,
    /// and here the binary, the in-process engine and the expected-state reader share it).
    pub async fn alloy(version: AlloyVersion, invoices: usize, seed: u64) -> Self {
        let sandbox = unified::start(
            UnifiedSandboxConfig {
                seed_invoices: invoices,
                seed_customers: 10,
                rng_seed: Some(seed),
                rate_limit: 0,
                ..UnifiedSandboxConfig::alloy(version)
            },
            "127.0.0.1:0".parse().expect("addr"),
        )
        .await
        .expect("Alloy sandbox starts");
        Self::Unified(sandbox)
    }

    /// A Rebillia sandbox writing its amounts in `amounts` (cents, or the strict readings of
    /// issue 13).
    pub async fn rebillia(invoices: usize, seed: u64, amounts: AmountStyle) -> Self {
        let sandbox = rebillia::start(
            RebilliaSandboxConfig {
                token: REBILLIA_TOKEN.to_owned(),
                seed_customers: 10,
                seed_invoices: invoices,
                rng_seed: Some(seed),
                amounts,
                ..RebilliaSandboxConfig::default()
            },
            "127.0.0.1:0".parse().expect("addr"),
        )
        .await
        .expect("Rebillia sandbox starts");
        Self::Rebillia(sandbox)
    }

    pub fn files() -> Self {
        Self::Files(ExportFolder::new())
    }

    /// Page size 10: even a small row pages several times.
    pub fn adapter_settings(&self) -> AdapterSettings {
        match self {
            Self::Unified(s) if s.control().alloy_version().is_some() => {
                let preset = match s.control().alloy_version() {
                    Some(AlloyVersion::V2023_12) => UnifiedPreset::Alloy2023_12,
                    _ => UnifiedPreset::Alloy2024_03,
                };
                let mut settings = UnifiedSettings::alloy(
                    preset,
                    s.base_url().parse().expect("ERP URL"),
                    unified::DEFAULT_API_KEY.into(),
                    unified::DEFAULT_CREDENTIAL_ID.to_owned(),
                    http(10),
                );
                // In-process checks need not keep to Alloy's 150 a minute.
                settings.api.requests_per_minute = NonZeroU32::new(60_000);
                AdapterSettings::Unified(Box::new(settings))
            }
            Self::Unified(s) => AdapterSettings::Unified(Box::new(UnifiedSettings {
                base_url: s.base_url().parse().expect("ERP URL"),
                api_key: unified::DEFAULT_API_KEY.into(),
                credential_id: unified::DEFAULT_CREDENTIAL_ID.to_owned(),
                http: http(10),
                names: UnifiedNames::default(),
                api: UnifiedApi::default(),
            })),
            Self::Rebillia(s) => AdapterSettings::Rebillia(RebilliaSettings {
                base_url: s.base_url().parse().expect("ERP URL"),
                token: SecretString::from(REBILLIA_TOKEN),
                http: http(10),
                amount_unit: Default::default(),
            }),
            Self::Files(f) => AdapterSettings::Files(f.settings()),
        }
    }

    /// Everything the ERP holds, read by a fresh adapter from the beginning.
    pub async fn expected(&self, source: &str) -> Expected {
        match self {
            Self::Unified(_) | Self::Rebillia(_) => {
                let settings = self.adapter_settings();
                let overlap = Duration::from_secs(300);
                let reader: Box<dyn Source> = match &settings {
                    AdapterSettings::Unified(u) => {
                        Box::new(UnifiedSource::new(source, u, overlap).expect("adapter"))
                    }
                    AdapterSettings::Rebillia(r) => {
                        Box::new(RebilliaSource::new(source, r, overlap).expect("adapter"))
                    }
                    AdapterSettings::Files(_) => unreachable!("API sources only"),
                };
                read_all(reader.as_ref()).await
            }
            Self::Files(f) => f.expected(source).await,
        }
    }

    pub fn unified_sandbox(&self) -> &RunningUnifiedSandbox {
        match self {
            Self::Unified(s) => s,
            _ => panic!("this row's ERP is not the unified sandbox"),
        }
    }

    pub fn rebillia_sandbox(&self) -> &RunningRebilliaSandbox {
        match self {
            Self::Rebillia(s) => s,
            _ => panic!("this row's ERP is not the Rebillia sandbox"),
        }
    }

    pub fn folder(&mut self) -> &mut ExportFolder {
        match self {
            Self::Files(f) => f,
            _ => panic!("this row's ERP is not an export folder"),
        }
    }

    /// The ERP changes invoice `external_id` (its first line's quantity, its open balance, or
    /// for Rebillia its lines and tax), so the next cycle must update it in B2B. `k` varies the
    /// change.
    pub fn change(&mut self, current: &SourceInvoice, k: u64) {
        match self {
            Self::Unified(s) => {
                let control = s.control();
                let mut inv = control
                    .invoice(&current.external_id)
                    .expect("the ERP invoice exists");
                let lines = inv["lineItems"].as_array_mut().expect("lineItems");
                let first = &mut lines[0];
                let unit: Decimal = number_text(&first["unitPrice"]).parse().expect("unitPrice");
                let qty: Decimal = number_text(&first["quantity"]).parse().expect("quantity");
                let qty = qty + Decimal::from(1 + k % 3);
                first["quantity"] = json!(qty.to_string());
                first["totalAmount"] = json!((unit * qty).to_string());
                let patch =
                    json!({ "lineItems": inv["lineItems"], "balance": (k % 7 + 1).to_string() });
                control
                    .update_invoice(&current.external_id, &patch)
                    .expect("ERP change");
            }
            Self::Rebillia(s) => {
                let id: u64 = current
                    .external_id
                    .parse()
                    .expect("Rebillia ids are numbers");
                let qty = i64::try_from(k % 4 + 2).unwrap_or(2);
                s.control()
                    .edit_invoice(
                        id,
                        &InvoiceEdit {
                            lines: Some(vec![
                                LineSpec {
                                    description: format!("Changed plan {k}"),
                                    qty,
                                    amount_cents: 1_250 + i64::try_from(k).unwrap_or(0),
                                },
                                LineSpec {
                                    description: "Added seat".to_owned(),
                                    qty: 1,
                                    amount_cents: 999,
                                },
                            ]),
                            tax_cents: Some(77),
                            ..InvoiceEdit::default()
                        },
                    )
                    .expect("ERP change");
            }
            Self::Files(f) => {
                let mut raw = current.to_raw();
                raw.line_items[0].quantity = Some(format!("{}", 2 + k % 5));
                raw.line_items[0].line_total = None;
                raw.open_balance = Some("1".to_owned());
                f.write(&[serde_json::to_string(&raw).expect("JSON")]);
            }
        }
    }

    /// The ERP creates `count` new valid invoices.
    pub fn create(&mut self, count: usize) {
        match self {
            Self::Unified(s) => {
                for _ in 0..count {
                    s.control().create_invoice();
                }
            }
            Self::Rebillia(s) => {
                for i in 0..count {
                    s.control()
                        .add_invoice(&NewInvoice {
                            customer: i % 10 + 1,
                            ..NewInvoice::default()
                        })
                        .expect("new Rebillia invoice");
                }
            }
            Self::Files(f) => {
                let start = f.written * 1000;
                let lines: Vec<String> = (start..start + count).map(ndjson_invoice).collect();
                f.write(&lines);
            }
        }
    }
}

/// A JSON number or numeric string as text.
fn number_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A valid canonical record `i` for the export folder (the NDJSON schema is `RawInvoice`).
pub fn ndjson_invoice(i: usize) -> String {
    let lines = i % 3 + 1;
    let items: Vec<RawLineItem> = (0..lines)
        .map(|k| RawLineItem {
            sku: Some(format!("SKU-{}", (i + k) % 17)),
            description: Some(format!("Exported item {k}")),
            quantity: Some(((i + k) % 4 + 1).to_string()),
            unit_price: Some(format!("{}.{:02}", 10 + i % 50, (i * 7 + k) % 100)),
            line_total: None,
        })
        .collect();
    let subtotal: Decimal = items
        .iter()
        .map(|l| {
            let q: Decimal = l
                .quantity
                .as_deref()
                .unwrap_or("0")
                .parse()
                .unwrap_or_default();
            let p: Decimal = l
                .unit_price
                .as_deref()
                .unwrap_or("0")
                .parse()
                .unwrap_or_default();
            q * p
        })
        .sum();
    let raw = RawInvoice {
        external_id: Some(format!("EXP-{i:06}")),
        external_customer_id: Some(format!("CUST-{:05}", i % 10 + 1)),
        invoice_number: Some(format!("X-{i:06}")),
        currency: Some(if i % 4 == 0 { "EUR" } else { "USD" }.to_owned()),
        issue_date: Some("2026-10-01".to_owned()),
        due_date: Some("2026-10-31".to_owned()),
        total: Some(subtotal.to_string()),
        open_balance: Some(if i % 5 == 0 {
            "0".to_owned()
        } else {
            subtotal.to_string()
        }),
        subtotal: Some(subtotal.to_string()),
        line_items: items,
        ..RawInvoice::default()
    };
    serde_json::to_string(&raw).expect("JSON")
}

/// A record the canonical schema refuses (`USX`), with its id so it can be found in reports.
pub fn ndjson_bad_currency(i: usize) -> String {
    let mut v: Value = serde_json::from_str(&ndjson_invoice(i)).expect("JSON");
    v["currency"] = json!("USX");
    v.to_string()
}

/// Matches a refused record to a report line: the reason, and the record's id when it has one.
pub fn mentions(text: &str, e: &RecordError) -> bool {
    let id = match &e.record {
        // A record without an id is located by its position in a page, which differs by read.
        RecordLocator::Id(id) if id.starts_with('#') => None,
        RecordLocator::Id(id) | RecordLocator::IdAtLine { id, .. } => Some(id),
        RecordLocator::Line { .. } => None,
    };
    text.contains(e.reason.as_ref()) && id.is_none_or(|id| text.contains(id.as_ref()))
}
