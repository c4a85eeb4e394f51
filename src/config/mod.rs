//! Typed settings: a TOML file, then environment overrides (`B2BSYNC__SECTION__KEY`).
//!
//! Loading never stops at the first mistake: every problem is collected with the full key path
//! (`stores.acme.b2b.base_url: not a URL`) so that `check-config` can list them all at once.
//! A value that exists in [`Settings`] is valid: the parser is the only way to build one.

use std::collections::BTreeMap;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

mod load;
mod node;
mod placeholders;
mod problems;
mod schema;
mod sources;
#[cfg(test)]
mod tests;

pub use load::{env_warnings, load, load_with_env};
pub use placeholders::{is_placeholder, placeholders};
pub use problems::{ConfigErrors, ConfigProblem};
pub use sources::*;

/// Everything the daemon is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub telemetry: TelemetrySettings,
    /// Absent until a command needs the database (the engine's issue makes it required for `run`).
    pub database: Option<DatabaseSettings>,
    /// Keyed by the store's name as written in the config (`[stores.acme]` -> `acme`).
    pub stores: BTreeMap<String, StoreSettings>,
    /// Keyed by the source's name (`[sources.erp]` -> `erp`); each names the store it feeds.
    pub sources: BTreeMap<String, SourceSettings>,
    pub engine: EngineSettings,
    pub daemon: DaemonSettings,
}

/// `[daemon]`: the long-running `run` command.
#[derive(Debug, Clone)]
pub struct DaemonSettings {
    /// Where `/healthz`, `/readyz` and `/metrics` listen (`http_address`, default
    /// 127.0.0.1:9464; `""` turns the endpoints off).
    pub http_address: Option<std::net::SocketAddr>,
    /// How long SIGTERM waits for in-flight work before exiting (default 25 s, under
    /// Kubernetes' 30 s grace period).
    pub shutdown_deadline: Duration,
    /// `/readyz` fails once a source has failed this many cycles in a row (default 3).
    pub unready_after_failed_cycles: u32,
    /// `/healthz` fails (and the systemd watchdog stops) once a cycle has run this long (default
    /// 3600 s): a cycle stuck past it needs a restart.
    pub max_cycle: Duration,
    /// How long a replica's lease on a store lasts unless renewed (default 15 s): a store moves
    /// to another replica within about this long when its replica dies.
    pub lease_ttl: Duration,
    /// The bearer token `POST /v1/sources/{name}/sync` requires (`trigger_token` or
    /// `trigger_token_file`); without one the endpoint is off (404).
    pub trigger_token: Option<secrecy::SecretString>,
    /// Trigger and webhook requests taken per minute, all sources together (default 60); more
    /// are answered 429.
    pub trigger_requests_per_minute: NonZeroU32,
    /// The shared secret Alloy's webhooks carry in the `X-Webhook-Secret` header
    /// (`webhook_secret` or `webhook_secret_file`); without one the receiver is off (404).
    pub webhook_secret: Option<secrecy::SecretString>,
    /// Webhook bodies larger than this are refused with 413 (default 65 536 bytes).
    pub webhook_max_body: usize,
    /// A webhook event id seen within this window is a replay and is ignored; events older
    /// than it are refused (default 300 s).
    pub webhook_replay_window: Duration,
}

/// The schema's defaults (`schema::daemon`): written once, there.
impl Default for DaemonSettings {
    fn default() -> Self {
        schema::absent(schema::daemon)
    }
}

/// `[engine]`: how the sync engine runs, whatever the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSettings {
    /// Apply pending migrations when a command that needs the database starts (default true).
    pub auto_migrate: bool,
    /// Ledger rows (settled ones) and runs older than these are pruned (default 90 days each).
    pub ledger_retention: Duration,
    pub runs_retention: Duration,
}

/// The schema's defaults (`schema::engine`): written once, there.
impl Default for EngineSettings {
    fn default() -> Self {
        schema::absent(schema::engine)
    }
}

#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// `RUST_LOG`-style filter, e.g. `info,b2b_invoice_sync=debug`. `RUST_LOG` in the environment wins.
    pub log_filter: String,
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal (systemd, Kubernetes), pretty when it is.
    #[default]
    Auto,
    Json,
    Pretty,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `postgres://user:password@host:port/db`; secret because it may carry the password.
    pub url: SecretString,
    pub max_connections: NonZeroU32,
}

/// One BigCommerce store with B2B Edition.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub name: String,
    pub b2b: B2bSettings,
    pub budget: BudgetSettings,
    pub retry: RetrySettings,
}

#[derive(Debug, Clone)]
pub struct B2bSettings {
    /// Up to and including `/api/v3/io`; invoice paths are under `ip/`, companies directly below.
    /// Default `https://api-b2b.bigcommerce.com/api/v3/io`.
    pub base_url: Url,
    pub auth: B2bAuth,
    /// Whole-request timeout; a timed-out mutation is ambiguous (it may have been applied).
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Items a list request asks for (default 100; the spec caps `limit` below 250, and a
    /// server may cap it lower: a smaller page it answers with is learned, a 400 about `limit`
    /// shrinks it). Also how many invoices one bulk `externalId[]` read names.
    pub page_size: u32,
}

/// The default of `stores.<name>.b2b.page_size`.
pub const DEFAULT_B2B_PAGE_SIZE: u32 = 100;

/// The two authentication styles B2B Edition serves. Exactly one is sent, never both.
#[derive(Debug, Clone)]
pub enum B2bAuth {
    /// Current style: `X-Auth-Token` + `X-Store-Hash` (config `auth = "x-auth-token"`, the default).
    XAuthToken {
        store_hash: String,
        token: SecretString,
    },
    /// Deprecated B2B `authToken` header (config `auth = "legacy-auth-token"`); the token names the store.
    LegacyAuthToken { token: SecretString },
}

/// The store-wide request budget: every call to one store goes through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSettings {
    /// This daemon's share of the store's 150 requests/minute (default 120, at most 150).
    pub requests_per_minute: NonZeroU32,
    /// Requests that may go at once after a quiet spell (default 4). Any 60 s window then holds at
    /// most `burst + requests_per_minute` requests.
    pub burst: NonZeroU32,
    /// Requests in flight at once (default 4).
    pub max_concurrent: NonZeroUsize,
    /// Pause after a 429 that carries no `Retry-After` (default 60 s).
    pub default_retry_after: Duration,
}

/// Backoff for transient failures (`[stores.<name>.retry]`, `[sources.<name>.*.retry]`): the
/// type lives with the one send-with-retry loop that reads it, below the settings.
pub use crate::outbound::retry::RetrySettings;

/// The schema's defaults (`schema::budget`): written once, there.
impl Default for BudgetSettings {
    fn default() -> Self {
        schema::absent(schema::budget)
    }
}

/// The schema's defaults (`schema::retry`): written once, there.
impl Default for RetrySettings {
    fn default() -> Self {
        schema::absent(schema::retry)
    }
}
