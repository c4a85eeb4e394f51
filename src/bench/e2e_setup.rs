//! The end-to-end benchmark's configuration, built in code: one store (the B2B sandbox), one
//! unified-API source (the ERP sandbox), customers by a static map of the seeded companies.

use std::collections::BTreeMap;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use secrecy::SecretString;

use super::e2e::E2eOptions;
use super::sandboxes::{STORE_HASH, TOKEN};
use super::BenchError;
use crate::config::{
    AdapterSettings, B2bAuth, B2bSettings, BudgetSettings, CustomerMapping, DaemonSettings,
    DatabaseSettings, DeletedPolicy, EngineSettings, FailurePolicy, HttpSettings, LogFormat,
    MappingSettings, MissingPolicy, RetrySettings, Settings, SourceSettings, StoreSettings,
    TelemetrySettings, UnifiedApi, UnifiedNames, UnifiedSettings,
};
use crate::sandbox::unified::{DEFAULT_API_KEY, DEFAULT_CREDENTIAL_ID};

pub(crate) const SOURCE: &str = "erp";
pub(crate) const STORE: &str = "bench";

/// The budget that `--fast` gives the daemon: far beyond what the machine can send.
const FAST_RPM: u32 = 6_000_000;
const FAST_BURST: u32 = 1_000;

/// ERP customer `CUST-0000i` is B2B company `i` (the sandboxes seed both the same way).
pub(crate) fn customer_map() -> BTreeMap<String, String> {
    (1..=10)
        .map(|i| (format!("CUST-{i:05}"), i.to_string()))
        .collect()
}

fn non_zero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// The daemon's budget: its defaults (the product's share of the store's 150/min) unless
/// overridden, or out of the way with `--fast`.
pub(crate) fn budget(opts: &E2eOptions) -> BudgetSettings {
    let defaults = BudgetSettings::default();
    let concurrency = NonZeroUsize::new(opts.concurrency).unwrap_or(defaults.max_concurrent);
    if opts.fast {
        BudgetSettings {
            requests_per_minute: non_zero(FAST_RPM),
            burst: non_zero(FAST_BURST),
            max_concurrent: concurrency,
            ..defaults
        }
    } else {
        BudgetSettings {
            requests_per_minute: non_zero(opts.budget_rpm),
            max_concurrent: concurrency,
            ..defaults
        }
    }
}

pub(crate) fn store(opts: &E2eOptions, b2b_base_url: &str) -> Result<StoreSettings, BenchError> {
    Ok(StoreSettings {
        name: STORE.to_owned(),
        b2b: B2bSettings {
            base_url: b2b_base_url
                .parse()
                .map_err(|e| BenchError::Sandbox(format!("B2B base URL {b2b_base_url}: {e}")))?,
            auth: B2bAuth::XAuthToken {
                store_hash: STORE_HASH.to_owned(),
                token: SecretString::from(TOKEN),
            },
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            page_size: crate::config::DEFAULT_B2B_PAGE_SIZE,
        },
        budget: budget(opts),
        retry: RetrySettings::default(),
    })
}

pub(crate) fn source(erp_base_url: &str) -> Result<SourceSettings, BenchError> {
    Ok(SourceSettings {
        name: SOURCE.to_owned(),
        store: STORE.to_owned(),
        overlap: Duration::from_secs(300),
        adapter: AdapterSettings::Unified(Box::new(UnifiedSettings {
            base_url: erp_base_url
                .parse()
                .map_err(|e| BenchError::Sandbox(format!("ERP base URL {erp_base_url}: {e}")))?,
            api_key: SecretString::from(DEFAULT_API_KEY),
            credential_id: DEFAULT_CREDENTIAL_ID.to_owned(),
            http: HttpSettings {
                request_timeout: Duration::from_secs(30),
                connect_timeout: Duration::from_secs(5),
                retry: RetrySettings::default(),
                // The adapter's default page.
                page_size: non_zero(100),
            },
            names: UnifiedNames::default(),
            api: UnifiedApi::default(),
        })),
        mapping: MappingSettings::default(),
        customers: CustomerMapping::Static(customer_map()),
        on_deleted: DeletedPolicy::Delete,
        on_missing_in_b2b: MissingPolicy::Fail,
        failures: FailurePolicy::default(),
        schedule: crate::schedule::CronSchedule::every_five_minutes(),
        start_jitter: Duration::ZERO,
        reconcile_schedule: None,
        update_freshness: Duration::from_secs(2),
        payments: crate::config::PaymentSettings::default(),
        limits: crate::config::RecordLimits::default(),
    })
}

pub(crate) fn settings(
    opts: &E2eOptions,
    database_url: &str,
    b2b_base_url: &str,
    erp_base_url: &str,
) -> Result<Settings, BenchError> {
    Ok(Settings {
        telemetry: TelemetrySettings {
            log_filter: "warn".to_owned(),
            log_format: LogFormat::Auto,
        },
        database: Some(DatabaseSettings {
            url: SecretString::from(database_url),
            max_connections: non_zero(8),
        }),
        stores: BTreeMap::from([(STORE.to_owned(), store(opts, b2b_base_url)?)]),
        sources: BTreeMap::from([(SOURCE.to_owned(), source(erp_base_url)?)]),
        engine: EngineSettings::default(),
        daemon: DaemonSettings::default(),
    })
}
