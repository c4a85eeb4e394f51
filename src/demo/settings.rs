//! The demo's configuration, built in code: one store (the sandbox), one `files` source.

use std::collections::BTreeMap;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;

use super::DemoError;
use crate::config::{
    AdapterSettings, B2bAuth, B2bSettings, BudgetSettings, CustomerMapping, DatabaseSettings,
    DeletedPolicy, EngineSettings, FailurePolicy, FilesSettings, LogFormat, MappingSettings,
    MissingPolicy, ReadyRule, RetrySettings, Settings, SourceSettings, StoreSettings,
    TelemetrySettings,
};
use crate::sandbox::b2b::ERP_CUSTOMER_ID_FIELD;

pub const STORE: &str = "demo";
pub const SOURCE: &str = "erp_export";
/// The sandbox's default store and its fixed test token (not a secret).
pub const STORE_HASH: &str = "sandbox";
const TOKEN: &str = "sandbox-token";

fn non_zero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

pub fn build(
    database_url: &str,
    b2b_base_url: &str,
    export_dir: &Path,
) -> Result<Settings, DemoError> {
    let base_url = b2b_base_url
        .parse()
        .map_err(|e| DemoError::Sandbox(format!("its base URL {b2b_base_url} is invalid: {e}")))?;
    let store = StoreSettings {
        name: STORE.to_owned(),
        b2b: B2bSettings {
            base_url,
            auth: B2bAuth::XAuthToken {
                store_hash: STORE_HASH.to_owned(),
                token: SecretString::from(TOKEN),
            },
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            page_size: crate::config::DEFAULT_B2B_PAGE_SIZE,
        },
        // The store's whole 150/min with a burst that lets a demo's few dozen calls go at once:
        // the sandbox enforces the same 150/min as B2B Edition.
        budget: BudgetSettings {
            requests_per_minute: non_zero(150),
            burst: non_zero(100),
            max_concurrent: NonZeroUsize::new(8).unwrap_or(NonZeroUsize::MIN),
            default_retry_after: Duration::from_secs(60),
        },
        retry: RetrySettings {
            max_attempts: 3,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
        },
    };
    let source = SourceSettings {
        name: SOURCE.to_owned(),
        store: STORE.to_owned(),
        overlap: Duration::from_secs(300),
        adapter: AdapterSettings::Files(FilesSettings {
            dir: export_dir.to_owned(),
            ready: ReadyRule::Marker,
            page_size: non_zero(500),
        }),
        mapping: MappingSettings::default(),
        customers: CustomerMapping::CompanyExtraField {
            field_name: ERP_CUSTOMER_ID_FIELD.to_owned(),
            ttl: Duration::from_secs(86_400),
        },
        on_deleted: DeletedPolicy::Delete,
        on_missing_in_b2b: MissingPolicy::Fail,
        failures: FailurePolicy::default(),
        schedule: crate::schedule::CronSchedule::every_five_minutes(),
        start_jitter: std::time::Duration::ZERO,
        reconcile_schedule: None,
        update_freshness: std::time::Duration::from_secs(2),
        payments: crate::config::PaymentSettings {
            enabled: true,
            write_back: true,
            ..crate::config::PaymentSettings::default()
        },
        limits: crate::config::RecordLimits::default(),
    };
    Ok(Settings {
        telemetry: TelemetrySettings {
            log_filter: "info".to_owned(),
            log_format: LogFormat::Auto,
        },
        database: Some(DatabaseSettings {
            url: SecretString::from(database_url),
            max_connections: non_zero(8),
        }),
        stores: BTreeMap::from([(STORE.to_owned(), store)]),
        sources: BTreeMap::from([(SOURCE.to_owned(), source)]),
        engine: EngineSettings::default(),
        daemon: crate::config::DaemonSettings::default(),
    })
}
