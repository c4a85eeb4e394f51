//! An in-memory fake of a unified accounting API, served over real HTTP for the unified
//! adapter's tests, the demo and benchmarks: either the generic API of api-docs 004 described
//! below ([`SandboxApi::Generic`], the default), or Alloy Automation's Unified API in its
//! versions 2024-03 and 2023-12 ([`SandboxApi::Alloy`], see `alloy` for what differs:
//! `/{version}/one/accounting/...`, Alloy's ids and customers, page-number or `pageInfo`
//! paging capped at 100, creation order, no updated-since filter).
//!
//! - Auth: `Authorization: Bearer <api_key>` (401 otherwise); the `credentialId` query parameter
//!   is required (400 when missing) and must be one of the configured credentials (404). All
//!   credentials see the same company's invoices. Errors are JSON
//!   `{"statusCode", "error", "message"}`.
//! - `GET /{invoices_path}?credentialId=..&limit=..&next=..&updatedAfter=..` answers
//!   `{"invoices": [...], "next": "<cursor>" | null}`, ordered by `remoteUpdatedAt` then
//!   `remoteId`. `updatedAfter` (RFC 3339) is **strictly after**. `limit` defaults to
//!   `default_limit` and must be 1..=`max_limit` (400 otherwise). `next` cursors are opaque; with
//!   both a cursor and `updatedAfter`, the later bound wins.
//! - `GET /{invoices_path}/{id}` answers `{"invoice": {...}}`; `id` is the `remoteId` (the
//!   sandbox serves `id` equal to `remoteId`).
//! - `PUT /{invoices_path}/{id}` (the payments write-back) validates and applies 004's update
//!   body and answers `{"invoice": {...}}`; it can be held and acknowledged later, and every
//!   accepted body is kept for tests (see `write`).
//! - Every name above (path, parameters, envelope fields) comes from [`SandboxNames`], so the
//!   adapter's configurable names can be tested renamed.
//! - Seeded invoices are generated from their index (see `seed`); only changes are stored, so a
//!   100 000-invoice sandbox stays small. Changes go through [`UnifiedSandboxControl`] or the
//!   HTTP controls under `/__sandbox/` (see `admin`).
//! - Faults, latency, the request log and the rate limit are the B2B sandbox's
//!   (`crate::{faults, stats, ratelimit, serve}`); the request log's `store_hash` holds
//!   the credential id.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use b2b_sync_sandbox::unified::{start, Fault, FaultRule, UnifiedSandboxConfig};
//! let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
//! let sandbox = start(UnifiedSandboxConfig::default(), addr).await?;
//! sandbox.control().push_fault(FaultRule::once(Fault::Status500).on_method("GET"));
//! // ... point the adapter at sandbox.base_url() with the key "sandbox-unified-key"
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

mod admin;
mod alloy;
mod control;
mod list;
mod pipeline;
mod reply;
mod routes;
mod seed;
mod state;
#[cfg(test)]
mod tests;
mod webhooks;
mod write;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use crate::faults::{ErrorRates, Fault, FaultRule};
pub use crate::stats::{RequestRecord, RouteCount, SandboxStats};
pub use alloy::{
    alloy_customer_id, alloy_customer_remote_id, alloy_invoice_id, alloy_remote_id, AlloyCounters,
    AlloyOptions, AlloyVersion,
};
pub use control::{InvoiceAmounts, Malformation, UnifiedSandboxControl, UnifiedSandboxError};
pub use seed::remote_id;
pub use webhooks::{Subscription, INVOICES_TOPIC};

use self::seed::Seed;
use self::state::Invoices;
pub use self::state::Shared;
use self::write::Writes;
use crate::harness::{Harness, HarnessConfig, Running};

/// The API key the default config accepts (a fake credential).
pub const DEFAULT_API_KEY: &str = "sandbox-unified-key";
/// The credential id the default config accepts.
pub const DEFAULT_CREDENTIAL_ID: &str = "sandbox-credential";

/// The wire names the sandbox serves, 004's by default. The sandbox keeps its own type (not the
/// adapter's config type) so a mistake in one is not mirrored by the other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxNames {
    pub invoices_path: String,
    pub credential_param: String,
    pub limit_param: String,
    pub cursor_param: String,
    pub updated_after_param: String,
    pub list_field: String,
    pub next_field: String,
    pub single_field: String,
}

impl Default for SandboxNames {
    fn default() -> Self {
        Self {
            invoices_path: "accounting/invoices".to_owned(),
            credential_param: "credentialId".to_owned(),
            limit_param: "limit".to_owned(),
            cursor_param: "next".to_owned(),
            updated_after_param: "updatedAfter".to_owned(),
            list_field: "invoices".to_owned(),
            next_field: "next".to_owned(),
            single_field: "invoice".to_owned(),
        }
    }
}

/// Which API the sandbox serves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SandboxApi {
    /// The generic unified API of api-docs 004, every name from [`SandboxNames`].
    #[default]
    Generic,
    /// Alloy Automation's Unified API (`names` are not used).
    Alloy(AlloyOptions),
}

/// How a sandbox starts. `Debug` never shows the API key.
#[derive(Clone)]
pub struct UnifiedSandboxConfig {
    pub api: SandboxApi,
    pub api_key: String,
    pub credential_ids: Vec<String>,
    pub names: SandboxNames,
    /// Invoices `remote_id(1..=N)`, generated on demand.
    pub seed_invoices: usize,
    /// Customers `CUST-00001..`: the B2B sandbox's default 10 companies carry these ids. (Alloy:
    /// the customers list, each with a UUID and that `remoteId`.)
    pub seed_customers: usize,
    /// `remoteUpdatedAt` of seeded invoice 1; invoice `i` is `(i-1) * seed_spacing` later.
    pub seed_epoch: DateTime<Utc>,
    pub seed_spacing: Duration,
    pub default_limit: u32,
    pub max_limit: u32,
    /// Requests per `rate_window` per credential; 0 (the default) disables the limit.
    pub rate_limit: u32,
    pub rate_window: Duration,
    pub latency: Duration,
    pub latency_jitter: Duration,
    /// Seed of the RNG behind latency jitter and random errors; `None`: from the OS.
    pub rng_seed: Option<u64>,
}

impl UnifiedSandboxConfig {
    /// Alloy's Unified API in `version`, with Alloy's limits: 100 invoices a page at most, 150
    /// requests a minute per connection.
    pub fn alloy(version: AlloyVersion) -> Self {
        let options = AlloyOptions::new(version);
        Self {
            default_limit: options.default_page_size,
            max_limit: options.max_page_size,
            api: SandboxApi::Alloy(options),
            rate_limit: 150,
            ..Self::default()
        }
    }
}

impl Default for UnifiedSandboxConfig {
    fn default() -> Self {
        Self {
            api: SandboxApi::Generic,
            api_key: DEFAULT_API_KEY.to_owned(),
            credential_ids: vec![DEFAULT_CREDENTIAL_ID.to_owned()],
            names: SandboxNames::default(),
            seed_invoices: 25,
            seed_customers: 10,
            seed_epoch: DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default(),
            seed_spacing: Duration::from_secs(60),
            default_limit: 100,
            max_limit: 1000,
            rate_limit: 0,
            rate_window: Duration::from_secs(60),
            latency: Duration::ZERO,
            latency_jitter: Duration::ZERO,
            rng_seed: None,
        }
    }
}

impl fmt::Debug for UnifiedSandboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnifiedSandboxConfig")
            .field("api", &self.api)
            .field("api_key", &"<redacted>")
            .field("credential_ids", &self.credential_ids)
            .field("names", &self.names)
            .field("seed_invoices", &self.seed_invoices)
            .field("seed_customers", &self.seed_customers)
            .field("seed_epoch", &self.seed_epoch)
            .field("seed_spacing", &self.seed_spacing)
            .field("default_limit", &self.default_limit)
            .field("max_limit", &self.max_limit)
            .field("rate_limit", &self.rate_limit)
            .field("rate_window", &self.rate_window)
            .field("latency", &self.latency)
            .field("latency_jitter", &self.latency_jitter)
            .field("rng_seed", &self.rng_seed)
            .finish()
    }
}

/// A string that `Debug` never shows.
pub(crate) struct Redacted(pub String);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Starts a sandbox on `addr` (port 0 picks a free port); returns once the socket is bound.
pub async fn start(
    config: UnifiedSandboxConfig,
    addr: SocketAddr,
) -> io::Result<RunningUnifiedSandbox> {
    validate(&config)?;
    let invalid = |message: &str| io::Error::new(io::ErrorKind::InvalidInput, message.to_owned());
    let spacing_ms = i64::try_from(config.seed_spacing.as_millis())
        .map_err(|_| invalid("seed_spacing is too large"))?;
    let seed = Seed {
        count: config.seed_invoices as u64,
        customers: config.seed_customers.max(1) as u64,
        epoch_ms: config.seed_epoch.timestamp_millis(),
        spacing_ms,
    };
    let alloy = match &config.api {
        SandboxApi::Alloy(options) => Some(options.clone()),
        SandboxApi::Generic => None,
    };
    let path = match &alloy {
        Some(_) => "accounting/invoices".to_owned(),
        None => config.names.invoices_path.trim_matches('/').to_owned(),
    };
    let harness = Harness::new(HarnessConfig {
        rate_limit: config.rate_limit,
        rate_window: config.rate_window,
        latency: config.latency,
        latency_jitter: config.latency_jitter,
        rng_seed: config.rng_seed,
    })?;
    let customers = match &alloy {
        Some(_) => alloy::Customers::seeded(seed.customers, harness.clock.now_ms()),
        None => alloy::Customers::default(),
    };
    let invoices = match &alloy {
        Some(_) => Invoices::listed(seed),
        None => Invoices::new(seed),
    };
    let (default_limit, max_limit) = match &alloy {
        Some(options) => (options.default_page_size, options.max_page_size),
        None => (config.default_limit, config.max_limit),
    };
    // The request log labels routes below the API's base: `GET /{path}`, and for Alloy
    // `GET /accounting/invoices/count`, `GET /accounting/customers/{id}`, ...
    let route_prefix = alloy
        .as_ref()
        .map(|o| format!("/{}/one", o.version.as_str()))
        .unwrap_or_default();
    let shared = Arc::new(Shared {
        harness,
        route_prefix,
        api_key: Redacted(config.api_key),
        credentials: config.credential_ids,
        names: config.names,
        default_limit,
        max_limit,
        api: config.api,
        invoices: Mutex::new(invoices),
        customers: Mutex::new(customers),
        alloy: Mutex::new(alloy::AlloyCounters::default()),
        writes: Mutex::new(Writes::default()),
        webhooks: Mutex::new(webhooks::Webhooks::default()),
    });
    let control = UnifiedSandboxControl::new(shared);
    let router = match &alloy {
        Some(options) => routes::alloy_router(control.clone(), options.version),
        None => routes::router(control.clone(), &path),
    };
    // `http://127.0.0.1:PORT/` (Alloy: `http://127.0.0.1:PORT/2024-03/one/`): the adapter's
    // `base_url` (the invoices path goes below it). The test controls are at the root.
    let base_path = alloy
        .map(|o| format!("/{}/one/", o.version.as_str()))
        .unwrap_or_else(|| "/".to_owned());
    Running::bind(addr, router, control, base_path).await
}

fn validate(config: &UnifiedSandboxConfig) -> io::Result<()> {
    let invalid = |message: String| Err(io::Error::new(io::ErrorKind::InvalidInput, message));
    if config.api_key.trim().is_empty() || config.api_key.contains(char::is_whitespace) {
        return invalid("the sandbox API key must be non-empty, without blanks".to_owned());
    }
    if config.credential_ids.is_empty() || config.credential_ids.iter().any(String::is_empty) {
        return invalid("the sandbox needs at least one non-empty credential id".to_owned());
    }
    let path = config.names.invoices_path.trim_matches('/');
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if !path.split('/').all(segment_ok) || path.starts_with("__sandbox") {
        return invalid(format!(
            "invoices_path `{}` must be path segments of letters, digits, `-`, `_` and `.`",
            config.names.invoices_path
        ));
    }
    let names = &config.names;
    let params = [
        &names.credential_param,
        &names.limit_param,
        &names.cursor_param,
        &names.updated_after_param,
    ];
    let fields = [&names.list_field, &names.next_field, &names.single_field];
    if params.iter().chain(fields.iter()).any(|n| n.is_empty()) {
        return invalid("sandbox parameter and field names must not be empty".to_owned());
    }
    if names.list_field == names.next_field {
        return invalid("the list and next fields must differ".to_owned());
    }
    let distinct: std::collections::HashSet<_> = params.iter().collect();
    if distinct.len() != params.len() {
        return invalid("sandbox query parameter names must differ".to_owned());
    }
    if config.max_limit == 0 || !(1..=config.max_limit).contains(&config.default_limit) {
        return invalid("the sandbox limits need 1 <= default_limit <= max_limit".to_owned());
    }
    if let SandboxApi::Alloy(options) = &config.api {
        if options.max_page_size == 0
            || !(1..=options.max_page_size).contains(&options.default_page_size)
        {
            return invalid(
                "Alloy page sizes need 1 <= default_page_size <= max_page_size".to_owned(),
            );
        }
    }
    if config.seed_spacing < Duration::from_millis(1) {
        return invalid("seed_spacing must be at least 1 ms".to_owned());
    }
    Ok(())
}

/// A unified sandbox serving on its port; `base_url()` is `http://127.0.0.1:PORT/` (Alloy:
/// `http://127.0.0.1:PORT/2024-03/one/`).
pub type RunningUnifiedSandbox = Running<Shared>;
