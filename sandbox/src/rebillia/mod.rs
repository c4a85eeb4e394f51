//! An in-memory fake of the Rebillia public API's invoice endpoints (api-docs 003 and the
//! reference client `rhinosaas/rebillia-mcp-server`), served over real HTTP for tests, the demo
//! and benchmarks. The adapter's documentation (`source::rebillia`) lists what the sandbox
//! models and the choices made where the reference is silent; the sandbox follows them.
//!
//! - `X-AUTH-TOKEN`; a missing or wrong one is a 401 `{code, message, timestamp}`.
//! - `GET /v1/invoices` (`pageNo`, `itemPerPage` 1..=250 else 400, `include=detail`,
//!   `orderBy` with `sortBy`, `status`, `query`), `GET /v1/invoices/{id}`,
//!   `PUT /v1/invoices/{id}` (only `posted` / `requestPayment`), `PUT /v1/invoices/{id}/void`,
//!   `POST /v1/invoices/{id}/charge` (cents), `DELETE /v1/invoices/{id}`; amounts in cents, or
//!   as dollar strings (`"41.00"`) with [`AmountStyle::Dollars`] (every amount) or
//!   [`AmountStyle::Documented`] (`shippingAmount` stays in cents, as documented).
//! - [`ListOrder::Ignored`]: a list that does not honour `orderBy` / `sortBy` and comes newest
//!   created first whatever is asked, for clients that rely on the sort.
//! - Charges (the payments write-back) can be held and booked later, and every accepted one is
//!   kept for tests (`RebilliaSandboxControl::hold_charges`, `received_charges`).
//! - Seeded customers `CUST-00001`.. (the B2B sandbox's companies carry the same ids) and
//!   invoices in several statuses and currencies (see `seed`).
//! - The shared fault injection, request log and accept loop of every sandbox.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use b2b_sync_sandbox::rebillia::{start, RebilliaSandboxConfig};
//! let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
//! let sandbox = start(RebilliaSandboxConfig::default(), addr).await?;
//! // ... point the adapter at sandbox.base_url() with the token "sandbox-rebillia-token"
//! sandbox.control().void_invoice(1003).ok();
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

mod admin;
mod api;
mod control;
mod pipeline;
mod render;
mod reply;
mod routes;
mod seed;
mod state;
#[cfg(test)]
mod tests;
mod update;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::faults::{ErrorRates, Fault, FaultRule};
pub use crate::stats::{RequestRecord, RouteCount, SandboxStats};
pub use control::{
    InvoiceEdit, LineSpec, NewInvoice, RebilliaSandboxControl, RebilliaSandboxError,
};
pub use state::{AmountStyle, ListOrder};

pub use self::state::Shared;
use crate::harness::{Harness, HarnessConfig, Running};

/// How a Rebillia sandbox starts. `Debug` never shows the token.
#[derive(Clone)]
pub struct RebilliaSandboxConfig {
    /// The `X-AUTH-TOKEN` the sandbox accepts (a fake credential).
    pub token: String,
    /// The company (tenant) the token belongs to; shown in the request log.
    pub company: String,
    /// Customers `CUST-00001`..`CUST-{N}`.
    pub seed_customers: usize,
    /// Invoices `RB-000001`.., ids from 1001, one hour apart, the last one newest.
    pub seed_invoices: usize,
    pub latency: Duration,
    pub latency_jitter: Duration,
    /// Seed of the RNG behind latency jitter and random errors; `None`: from the OS.
    pub rng_seed: Option<u64>,
    /// How answers write amounts (cents by default).
    pub amounts: AmountStyle,
    /// Whether the list honours `orderBy` / `sortBy` (by default it does).
    pub list_order: ListOrder,
}

impl Default for RebilliaSandboxConfig {
    fn default() -> Self {
        Self {
            token: "sandbox-rebillia-token".to_owned(),
            company: "sandbox".to_owned(),
            seed_customers: 10,
            seed_invoices: 25,
            latency: Duration::ZERO,
            latency_jitter: Duration::ZERO,
            rng_seed: None,
            amounts: AmountStyle::Cents,
            list_order: ListOrder::Honoured,
        }
    }
}

impl fmt::Debug for RebilliaSandboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RebilliaSandboxConfig")
            .field("token", &"<redacted>")
            .field("company", &self.company)
            .field("seed_customers", &self.seed_customers)
            .field("seed_invoices", &self.seed_invoices)
            .field("latency", &self.latency)
            .field("latency_jitter", &self.latency_jitter)
            .field("rng_seed", &self.rng_seed)
            .field("amounts", &self.amounts)
            .field("list_order", &self.list_order)
            .finish()
    }
}

/// Starts a sandbox on `addr` (port 0 picks a free port); returns once the socket is bound.
pub async fn start(
    config: RebilliaSandboxConfig,
    addr: SocketAddr,
) -> io::Result<RunningRebilliaSandbox> {
    if config.token.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the Rebillia sandbox token must not be empty",
        ));
    }
    let harness = Harness::new(HarnessConfig {
        rate_limit: 0,
        rate_window: Duration::from_secs(60),
        latency: config.latency,
        latency_jitter: config.latency_jitter,
        rng_seed: config.rng_seed,
    })?;
    let mut data = seed::build(
        config.seed_customers,
        config.seed_invoices,
        harness.clock.now_unix(),
    );
    data.amounts = config.amounts;
    data.list_order = config.list_order;
    let shared = Arc::new(Shared {
        harness,
        token: config.token,
        company: config.company,
        data: Mutex::new(data),
    });
    let control = RebilliaSandboxControl::new(shared);
    let router = routes::router(control.clone());
    // `http://127.0.0.1:PORT/v1`, the equivalent of `https://api.rebillia.com/v1`.
    Running::bind(addr, router, control, "/v1".to_owned()).await
}

/// A Rebillia sandbox serving on its port; `base_url()` is `http://127.0.0.1:PORT/v1`.
pub type RunningRebilliaSandbox = Running<Shared>;
