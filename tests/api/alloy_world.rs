//! A world for Alloy tests: Alloy's Unified API in the unified sandbox (either version), the
//! unified adapter with an Alloy preset, and (for engine tests) a fresh database and the B2B
//! sandbox whose companies carry the customers' `remoteId`s in "ERP Customer ID".

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;

use b2b_invoice_sync::config::*;
use b2b_invoice_sync::sandbox::b2b::{B2bSandboxConfig, RunningB2bSandbox};
use b2b_invoice_sync::sandbox::unified::{
    self as unified, AlloyVersion, RunningUnifiedSandbox, SandboxApi, UnifiedSandboxConfig,
};
use b2b_invoice_sync::sync::engine::Engine;

use crate::db::TestDb;
use crate::helpers::*;

pub const SOURCE: &str = "erp";

pub fn preset(version: AlloyVersion) -> UnifiedPreset {
    match version {
        AlloyVersion::V2024_03 => UnifiedPreset::Alloy2024_03,
        AlloyVersion::V2023_12 => UnifiedPreset::Alloy2023_12,
    }
}

/// Alloy's API in `version` with `invoices` over `customers`; `shape` adjusts its options.
pub async fn alloy_sandbox(
    version: AlloyVersion,
    invoices: usize,
    customers: usize,
    shape: impl FnOnce(&mut UnifiedSandboxConfig),
) -> RunningUnifiedSandbox {
    let mut config = UnifiedSandboxConfig {
        seed_invoices: invoices,
        seed_customers: customers,
        ..UnifiedSandboxConfig::alloy(version)
    };
    shape(&mut config);
    unified::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("the Alloy sandbox starts")
}

/// Options of an Alloy sandbox config, to set its flags.
pub fn options(config: &mut UnifiedSandboxConfig) -> &mut unified::AlloyOptions {
    match &mut config.api {
        SandboxApi::Alloy(options) => options,
        SandboxApi::Generic => panic!("not an Alloy sandbox"),
    }
}

/// The preset's settings against `sandbox`, with quick retries.
pub fn alloy_settings(sandbox: &RunningUnifiedSandbox, version: AlloyVersion) -> UnifiedSettings {
    UnifiedSettings::alloy(
        preset(version),
        sandbox.base_url().parse().expect("sandbox URL"),
        SecretString::from(unified::DEFAULT_API_KEY),
        unified::DEFAULT_CREDENTIAL_ID.to_owned(),
        HttpSettings {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            retry: fast_retry(),
            page_size: NonZeroU32::new(100).expect("non-zero"),
        },
    )
}

/// Customer `k`'s index behind invoice `index`, as the seed spreads them.
pub fn customer_of(index: u64, customers: u64) -> u64 {
    (index - 1) % customers + 1
}

pub struct AlloyWorld {
    pub db: TestDb,
    pub b2b: RunningB2bSandbox,
    pub erp: RunningUnifiedSandbox,
    pub settings: Settings,
}

impl AlloyWorld {
    /// Companies `1..=customers` in B2B carry `CUST-{k:05}`, found by the company extra field.
    pub async fn new(
        version: AlloyVersion,
        invoices: usize,
        customers: usize,
        shape: impl FnOnce(&mut UnifiedSandboxConfig),
    ) -> Self {
        let db = TestDb::new().await;
        let b2b = spawn_sandbox(B2bSandboxConfig {
            rate_limit: 1_000_000,
            seed_companies: customers,
            ..B2bSandboxConfig::default()
        })
        .await;
        let erp = alloy_sandbox(version, invoices, customers, shape).await;
        let store = store_settings(
            &b2b.base_url(),
            Auth::XAuthToken,
            generous_budget(),
            fast_retry(),
        );
        let source = SourceSettings {
            customers: CustomerMapping::CompanyExtraField {
                field_name: "ERP Customer ID".to_owned(),
                ttl: Duration::from_secs(86_400),
            },
            ..SourceSettings::with_defaults(
                SOURCE,
                "acme",
                AdapterSettings::Unified(Box::new(alloy_settings(&erp, version))),
            )
        };
        let settings = Settings {
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
            daemon: DaemonSettings::default(),
        };
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

    pub fn unified_mut(&mut self) -> &mut UnifiedSettings {
        let source = self.settings.sources.get_mut(SOURCE).expect("source");
        match &mut source.adapter {
            AdapterSettings::Unified(u) => u,
            _ => panic!("not unified"),
        }
    }

    /// B2B invoices by externalId; panics if one externalId appears twice (a duplicate).
    pub fn b2b_by_external_id(&self) -> HashMap<String, Value> {
        let mut map = HashMap::new();
        for inv in self.b2b.control().invoices(STORE_HASH).expect("store") {
            let ext = inv["externalId"].as_str().unwrap_or_default().to_owned();
            if let Some(dup) = map.insert(ext.clone(), inv) {
                panic!("externalId {ext} exists twice in B2B: {dup}");
            }
        }
        map
    }

    /// B2B calls by route since the last reset, summed over statuses.
    pub fn b2b_routes(&self) -> BTreeMap<String, u64> {
        routes(&self.b2b.control().stats().by_route)
    }
}

/// Calls per route, summed over statuses.
pub fn routes(by_route: &[unified::RouteCount]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in by_route {
        *out.entry(r.route.clone()).or_default() += r.count;
    }
    out
}
