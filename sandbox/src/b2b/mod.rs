//! An in-memory, faithful fake of the BigCommerce B2B Edition Invoice API (invoices and the
//! read side of payments, plus `GET /companies`), served over real HTTP for integration tests,
//! the demo and benchmarks. Buyers' payments are made through [`SandboxControl::pay_invoice`].
//!
//! It works on `serde_json::Value` and its own small types, never on the crate's client types,
//! so a client bug cannot be mirrored by the fake. Where the docs are silent it errs on the
//! strict side: a client must not pass here and fail against BigCommerce.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use b2b_sync_sandbox::b2b::{start, B2bSandboxConfig, Fault, FaultRule};
//! let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
//! let sandbox = start(B2bSandboxConfig::default(), addr).await?;
//! sandbox.control().push_fault(FaultRule::once(Fault::ApplyThenDrop).on_method("POST"));
//! // ... point the client at sandbox.base_url() with X-Auth-Token "sandbox-token", X-Store-Hash "sandbox"
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

mod admin;
mod auth;
mod companies;
mod control;
mod extra_fields;
mod fields;
mod invoice_input;
mod invoices;
mod list;
mod money;
mod payments;
mod person;
mod pipeline;
mod query;
mod render;
mod reply;
mod routes;
mod seed;
mod state;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub use crate::faults::{ErrorRates, Fault, FaultRule};
pub use crate::stats::{RequestRecord, RouteCount, SandboxStats};
pub use control::{SandboxControl, SandboxError};
pub use person::PersonEdit;
pub use seed::ERP_CUSTOMER_ID_FIELD;

use self::seed::SeedCounts;
pub use self::state::Shared;
use crate::harness::{Harness, HarnessConfig, Running};
use crate::serve::reachable;

/// How a sandbox starts.
#[derive(Clone, Debug)]
pub struct B2bSandboxConfig {
    pub stores: Vec<SandboxStore>,
    /// Requests per `rate_window` per store; 0 disables the limit.
    pub rate_limit: u32,
    pub rate_window: Duration,
    pub latency: Duration,
    pub latency_jitter: Duration,
    /// Companies `1..=N` named "Sandbox Company {i}", each with the unique extra field
    /// [`ERP_CUSTOMER_ID_FIELD`] = `CUST-{i:05}`.
    pub seed_companies: usize,
    /// Invoices "SEED-{i:06}" with externalId "seed-{i}", spread over the companies.
    pub seed_invoices: usize,
    /// Orders 101, 102, ... that `POST /ip/orders/{id}/invoices` can invoice.
    pub seed_orders: usize,
    /// Seed of the RNG behind latency jitter and random errors; `None`: from the OS.
    pub rng_seed: Option<u64>,
    /// How `GET /ip/invoices` reads what the documents leave open (see [`Readings`]).
    pub readings: Readings,
}

/// Readings of what BigCommerce's documents leave open, for the daemon to be tested against
/// each: the spec types `externalId[]` as `array[number]` while `externalId` is a string, and its
/// pagination model caps `limit` below 250 while a public client pages by 100.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Readings {
    pub external_id_filter: ExternalIdFilter,
    /// At most this many items a page, whatever `limit` asks (`totalCount` stays whole).
    pub max_page_size: Option<usize>,
    /// A `limit` above this is refused with a 400 naming it (another reading of a cap).
    pub refuse_limit_above: Option<usize>,
}

/// What `externalId[]` does with a value that is not a number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExternalIdFilter {
    /// Matches it as a string (the friendly reading).
    #[default]
    Strings,
    /// Answers 400 naming the value (`externalId[0]: must be a number`).
    Numeric400,
    /// Drops it; with no value left, the list comes back unfiltered.
    NumericIgnore,
}

impl ExternalIdFilter {
    pub const NAMES: [(&'static str, Self); 3] = [
        ("strings", Self::Strings),
        ("numeric-400", Self::Numeric400),
        ("numeric-ignore", Self::NumericIgnore),
    ];
}

impl Default for B2bSandboxConfig {
    fn default() -> Self {
        Self {
            stores: vec![SandboxStore::new(
                "sandbox",
                "sandbox-token",
                "sandbox-legacy-token",
            )],
            rate_limit: 150,
            rate_window: Duration::from_secs(60),
            latency: Duration::ZERO,
            latency_jitter: Duration::ZERO,
            seed_companies: 10,
            seed_invoices: 0,
            seed_orders: 5,
            rng_seed: None,
            readings: Readings::default(),
        }
    }
}

/// A store and the credentials that open it. `Debug` never shows the tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct SandboxStore {
    pub store_hash: String,
    /// For `X-Auth-Token` (with `X-Store-Hash`).
    pub token: String,
    /// For the legacy `authToken` header.
    pub legacy_token: String,
}

impl SandboxStore {
    pub fn new(store_hash: &str, token: &str, legacy_token: &str) -> Self {
        Self {
            store_hash: store_hash.to_owned(),
            token: token.to_owned(),
            legacy_token: legacy_token.to_owned(),
        }
    }
}

impl fmt::Debug for SandboxStore {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SandboxStore")
            .field("store_hash", &self.store_hash)
            .field("token", &"<redacted>")
            .field("legacy_token", &"<redacted>")
            .finish()
    }
}

/// Starts a sandbox on `addr` (port 0 picks a free port); returns once the socket is bound.
pub async fn start(config: B2bSandboxConfig, addr: SocketAddr) -> io::Result<RunningB2bSandbox> {
    validate(&config)?;
    let harness = Harness::new(HarnessConfig {
        rate_limit: config.rate_limit,
        rate_window: config.rate_window,
        latency: config.latency,
        latency_jitter: config.latency_jitter,
        rng_seed: config.rng_seed,
    })?;
    let counts = SeedCounts {
        companies: config.seed_companies,
        invoices: config.seed_invoices,
        orders: config.seed_orders,
    };
    let now = harness.clock.now_unix();
    let stores: BTreeMap<_, _> = config
        .stores
        .iter()
        .map(|store| {
            (
                store.store_hash.clone(),
                seed::build_store(&store.store_hash, counts, now),
            )
        })
        .collect();
    let shared = Arc::new(Shared {
        harness,
        credentials: config.stores.clone(),
        stores: Mutex::new(stores),
        public_base: OnceLock::new(),
        readings: config.readings,
    });
    let control = SandboxControl::new(Arc::clone(&shared));
    let router = routes::router(control.clone());
    // `http://127.0.0.1:PORT/api/v3/io/`, the equivalent of `https://api-b2b.bigcommerce.com/api/v3/io/`.
    let running = Running::bind(addr, router, control, "/api/v3/io/".to_owned()).await?;
    let origin = format!("http://{}", reachable(running.addr()));
    // Only set here, right after the bind and before anyone knows the port.
    let _ = shared.public_base.set(origin);
    Ok(running)
}

fn validate(config: &B2bSandboxConfig) -> io::Result<()> {
    let invalid = |message: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            message.to_owned(),
        ))
    };
    if config.stores.is_empty() {
        return invalid("the sandbox needs at least one store");
    }
    let mut hashes = HashSet::new();
    let mut tokens = HashSet::new();
    for store in &config.stores {
        if store.store_hash.is_empty() || store.token.is_empty() || store.legacy_token.is_empty() {
            return invalid("sandbox store hashes and tokens must not be empty");
        }
        if !hashes.insert(&store.store_hash) {
            return invalid("sandbox store hashes must be unique");
        }
        // A legacy token alone names its store, so no two stores may share one.
        if !tokens.insert(&store.legacy_token) {
            return invalid("sandbox legacy tokens must be unique");
        }
    }
    Ok(())
}

/// A B2B sandbox serving on its port; `base_url()` is `http://127.0.0.1:PORT/api/v3/io/`.
pub type RunningB2bSandbox = Running<Shared>;
