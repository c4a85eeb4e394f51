//! A world for engine tests: a fresh database, the B2B sandbox, and a unified-API ERP sandbox,
//! wired together by settings built in code.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::time::Duration;

use serde_json::Value;

use b2b_invoice_sync::config::*;
use b2b_invoice_sync::sandbox::b2b::{B2bSandboxConfig, RunningB2bSandbox};
use b2b_invoice_sync::sandbox::unified::{self, RunningUnifiedSandbox, UnifiedSandboxConfig};
use b2b_invoice_sync::store::runs::Counts;
use b2b_invoice_sync::sync::engine::{Engine, RunReport};

use crate::db::TestDb;
use crate::helpers::*;

pub const SOURCE: &str = "erp";

pub struct World {
    pub db: TestDb,
    pub b2b: RunningB2bSandbox,
    pub erp: RunningUnifiedSandbox,
    pub settings: Settings,
}

/// The static customer map of the seeded customers: CUST-0000i -> company i.
pub fn customer_map() -> BTreeMap<String, String> {
    (1..=10)
        .map(|i| (format!("CUST-{i:05}"), i.to_string()))
        .collect()
}

impl World {
    pub async fn new(invoices: usize) -> Self {
        Self::with(
            invoices,
            B2bSandboxConfig {
                rate_limit: 1_000_000,
                ..B2bSandboxConfig::default()
            },
        )
        .await
    }

    pub async fn with(invoices: usize, b2b: B2bSandboxConfig) -> Self {
        let db = TestDb::new().await;
        let b2b = spawn_sandbox(b2b).await;
        let erp = unified::start(
            UnifiedSandboxConfig {
                seed_invoices: invoices,
                ..UnifiedSandboxConfig::default()
            },
            "127.0.0.1:0".parse().expect("addr"),
        )
        .await
        .expect("ERP sandbox starts");
        let settings = settings(&db, &b2b, &erp);
        Self {
            db,
            b2b,
            erp,
            settings,
        }
    }

    pub fn engine(&self) -> Engine {
        Engine::new(&self.settings, self.db.pool.clone()).expect("engine builds")
    }

    pub fn source_mut(&mut self) -> &mut SourceSettings {
        self.settings.sources.get_mut(SOURCE).expect("source")
    }

    /// Every B2B invoice of the store, as the sandbox holds them.
    pub fn b2b_invoices(&self) -> Vec<Value> {
        self.b2b.control().invoices(STORE_HASH).expect("store")
    }

    /// B2B invoices by externalId; panics if one externalId appears twice (a duplicate).
    pub fn b2b_by_external_id(&self) -> HashMap<String, Value> {
        let mut map = HashMap::new();
        for inv in self.b2b_invoices() {
            let ext = inv["externalId"].as_str().unwrap_or_default().to_owned();
            let number = inv["invoiceNumber"].clone();
            if let Some(dup) = map.insert(ext.clone(), inv) {
                panic!(
                    "externalId {ext} exists twice in B2B: {} and {}",
                    dup["invoiceNumber"], number
                );
            }
        }
        map
    }

    /// Runs cycles until one changes nothing and nothing is left to settle (at most `max`).
    pub async fn sync_until_quiet(&self, engine: &Engine, max: usize) -> Vec<RunReport> {
        let mut reports = Vec::new();
        for _ in 0..max {
            let r = engine.run_cycle(SOURCE).await.expect("cycle runs");
            let c = r.counts;
            let quiet = c.created + c.updated + c.deleted + c.failed + c.recovered == 0
                && r.error.is_none();
            reports.push(r);
            if quiet {
                return reports;
            }
        }
        panic!("not quiet after {max} cycles: {reports:#?}");
    }

    /// Calls the B2B sandbox received, by route template and status.
    pub fn b2b_calls(&self, route: &str) -> u64 {
        self.b2b.control().stats().route_total(route)
    }

    pub fn b2b_total_calls(&self) -> u64 {
        self.b2b.control().stats().total
    }
}

pub fn total(reports: &[RunReport]) -> Counts {
    reports.iter().fold(Counts::default(), |mut t, r| {
        t.created += r.counts.created;
        t.updated += r.counts.updated;
        t.unchanged += r.counts.unchanged;
        t.deleted += r.counts.deleted;
        t.failed += r.counts.failed;
        t.recovered += r.counts.recovered;
        t
    })
}

fn settings(db: &TestDb, b2b: &RunningB2bSandbox, erp: &RunningUnifiedSandbox) -> Settings {
    let store = store_settings(
        &b2b.base_url(),
        Auth::XAuthToken,
        generous_budget(),
        fast_retry(),
    );
    let adapter = AdapterSettings::Unified(Box::new(UnifiedSettings {
        base_url: erp.base_url().parse().expect("ERP URL"),
        api_key: unified::DEFAULT_API_KEY.into(),
        credential_id: unified::DEFAULT_CREDENTIAL_ID.to_owned(),
        http: HttpSettings {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            retry: fast_retry(),
            page_size: NonZeroU32::new(100).expect("non-zero"),
        },
        names: UnifiedNames::default(),
        api: UnifiedApi::default(),
    }));
    let source = SourceSettings {
        customers: CustomerMapping::Static(customer_map()),
        on_deleted: DeletedPolicy::Delete,
        on_missing_in_b2b: MissingPolicy::Fail,
        ..SourceSettings::with_defaults(SOURCE, "acme", adapter)
    };
    Settings {
        telemetry: TelemetrySettings {
            log_filter: "info".to_owned(),
            log_format: LogFormat::Auto,
        },
        database: Some(DatabaseSettings {
            url: db.url.clone().into(),
            max_connections: NonZeroU32::new(5).expect("non-zero"),
        }),
        stores: BTreeMap::from([("acme".to_owned(), store)]),
        sources: BTreeMap::from([(SOURCE.to_owned(), source)]),
        engine: EngineSettings::default(),
        daemon: b2b_invoice_sync::config::DaemonSettings::default(),
    }
}
