//! The configuration schema: every key, its default and its range, read into [`Settings`].
//!
//! Defaults are written as the operator would write them in TOML and go through the same
//! parser as configured values, so this file reads like `config/example.toml`.
//! `[sources.<name>]` has its own file, [`source`].

mod source;

pub(super) use source::{failures, payments};

use std::collections::BTreeMap;
use std::time::Duration;

use config::Value;
use secrecy::{ExposeSecret, SecretString};
use tracing_subscriber::EnvFilter;
use url::Url;

use super::node::{
    boolean, choice, env_var_name, millis, positive, positive_usize, secret, secret_file, secs,
    string, whole, word, Problems, Table,
};
use super::{
    B2bAuth, B2bSettings, BudgetSettings, DaemonSettings, DatabaseSettings, EngineSettings,
    LogFormat, RetrySettings, Settings, StoreSettings, TelemetrySettings,
};

const DEFAULT_BASE_URL: &str = "https://api-b2b.bigcommerce.com/api/v3/io";

const LOG_FORMATS: &[(&str, LogFormat)] = &[
    ("auto", LogFormat::Auto),
    ("json", LogFormat::Json),
    ("pretty", LogFormat::Pretty),
];

#[derive(Debug, Clone, Copy)]
enum AuthStyle {
    XAuthToken,
    LegacyAuthToken,
}

const AUTH_STYLES: &[(&str, AuthStyle)] = &[
    ("x-auth-token", AuthStyle::XAuthToken),
    ("legacy-auth-token", AuthStyle::LegacyAuthToken),
];

/// What a section reads as when it is absent from the file: its defaults. They are written once,
/// in the readers of this schema, and the settings' `Default` impls come from here.
pub(super) fn absent<T>(read: impl FnOnce(Table<'_>) -> Option<T>) -> T {
    let problems = Problems::default();
    let empty = Value::new(None, config::ValueKind::Table(config::Map::new()));
    let value = read(Table::root(&empty, &problems));
    let problems = problems.into_vec();
    match value {
        Some(value) if problems.is_empty() => value,
        // A section whose defaults do not read is a bug in this file, caught by the tests
        // (config::tests::every_section_reads_its_defaults), never by a user's config.
        _ => panic!("the defaults of a config section do not read: {problems:?}"),
    }
}

/// Reads the whole tree; `None` means at least one problem was recorded.
pub(super) fn settings(mut root: Table<'_>) -> Option<Settings> {
    let telemetry = telemetry(root.section("telemetry"));
    // Absent is fine (`Some(None)`); present but wrong is not (`None`).
    let database = match root.optional_section("database") {
        None => Some(None),
        Some(section) => database(section).map(Some),
    };
    let stores = root.section("stores");
    // Every configured name, even of a store with problems: a source naming it is then fine.
    let store_names = stores.keys();
    let stores = self::stores(stores);
    // Absent is fine: the commands that only talk to B2B work without any source.
    let sources = named(root.section("sources"), |name, t| {
        source::source(name, t, &store_names)
    });
    let engine = engine(root.section("engine"));
    let daemon = daemon(root.section("daemon"));
    Some(Settings {
        telemetry: telemetry?,
        database: database?,
        stores: stores?,
        sources: sources?,
        engine: engine?,
        daemon: daemon?,
    })
}

pub(super) fn daemon(mut t: Table<'_>) -> Option<DaemonSettings> {
    let http_address = t.or("http_address", "127.0.0.1:9464", |v: &Value| {
        let text = string(v)?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        text.trim()
            .parse::<std::net::SocketAddr>()
            .map(Some)
            .map_err(|_| {
                "not an address like 0.0.0.0:9464 (or \"\" to turn the endpoints off)".to_owned()
            })
    });
    let deadline = t.or("shutdown_deadline_secs", 25, secs(1..=3600));
    let unready = t.or("unready_after_failed_cycles", 3, whole(1..=1000));
    let max_cycle = t.or("max_cycle_secs", 3600, secs(1..=604_800));
    let lease_ttl = t.or("lease_ttl_secs", 15, secs(3..=600));
    let trigger_token = if t.has("trigger_token") || t.has("trigger_token_file") {
        Some(t.exactly_one(
            ("trigger_token", secret),
            ("trigger_token_file", secret_file),
        ))
    } else {
        None
    };
    let trigger_rate = t.or("trigger_requests_per_minute", 60, whole(1..=100_000));
    let webhook_secret = if t.has("webhook_secret") || t.has("webhook_secret_file") {
        Some(t.exactly_one(
            ("webhook_secret", secret),
            ("webhook_secret_file", secret_file),
        ))
    } else {
        None
    };
    let webhook_max_body = t.or("webhook_max_body_bytes", 65_536, whole(1024..=2_097_152));
    let replay = t.or("webhook_replay_window_secs", 300, secs(10..=86_400));
    Some(DaemonSettings {
        trigger_token: match trigger_token {
            Some(token) => Some(token?),
            None => None,
        },
        trigger_requests_per_minute: std::num::NonZeroU32::new(trigger_rate?)?,
        webhook_secret: match webhook_secret {
            Some(secret) => Some(secret?),
            None => None,
        },
        webhook_max_body: usize::try_from(webhook_max_body?).ok()?,
        webhook_replay_window: replay?,
        http_address: http_address?,
        shutdown_deadline: deadline?,
        unready_after_failed_cycles: unready?,
        max_cycle: max_cycle?,
        lease_ttl: lease_ttl?,
    })
}

pub(super) fn engine(mut t: Table<'_>) -> Option<EngineSettings> {
    let auto_migrate = t.or("auto_migrate", true, boolean);
    let ledger_days = t.or("ledger_retention_days", 90, whole(1..=3650));
    let runs_days = t.or("runs_retention_days", 90, whole(1..=3650));
    let days = |d: u32| Duration::from_secs(u64::from(d) * 86_400);
    Some(EngineSettings {
        auto_migrate: auto_migrate?,
        ledger_retention: days(ledger_days?),
        runs_retention: days(runs_days?),
    })
}

fn telemetry(mut t: Table<'_>) -> Option<TelemetrySettings> {
    let log_filter = t.or("log_filter", "info", log_filter);
    let log_format = t.or("log_format", "auto", choice(LOG_FORMATS));
    Some(TelemetrySettings {
        log_filter: log_filter?,
        log_format: log_format?,
    })
}

fn database(mut t: Table<'_>) -> Option<DatabaseSettings> {
    let url = t.exactly_one(
        ("url", |v: &Value| postgres_url(secret(v)?)),
        ("url_file", |v: &Value| postgres_url(secret_file(v)?)),
    );
    let max_connections = t.or("max_connections", 8, positive(1..=1000));
    Some(DatabaseSettings {
        url: url?,
        max_connections: max_connections?,
    })
}

fn stores(t: Table<'_>) -> Option<BTreeMap<String, StoreSettings>> {
    if t.keys().is_empty() {
        t.missing_here("no store is configured (add a [stores.<name>] section)");
        return None;
    }
    named(t, store)
}

/// Reads every `[<section>.<name>]`; `None` if any of them had a problem.
fn named<T>(
    mut t: Table<'_>,
    mut read: impl FnMut(&str, Table<'_>) -> Option<T>,
) -> Option<BTreeMap<String, T>> {
    let mut all = BTreeMap::new();
    let mut complete = true;
    for (name, section) in t.named_sections() {
        match read(&name, section) {
            Some(item) => {
                all.insert(name, item);
            }
            None => complete = false,
        }
    }
    complete.then_some(all)
}

fn store(name: &str, mut t: Table<'_>) -> Option<StoreSettings> {
    let name_ok = check_name(&t, name, "store", "stores.acme_eu.b2b.token");
    let b2b = b2b(t.section("b2b"));
    let budget = budget(t.section("budget"));
    let retry = retry(t.section("retry"));
    if !name_ok {
        return None;
    }
    Some(StoreSettings {
        name: name.to_owned(),
        b2b: b2b?,
        budget: budget?,
        retry: retry?,
    })
}

/// Store and source names become parts of environment variable names, which the environment
/// source lowercases and splits at `__`: only names that survive that can be overridden.
/// `example` is a key path that shows the rule, like `stores.acme_eu.b2b.token`.
fn check_name(t: &Table<'_>, name: &str, what: &str, example: &str) -> bool {
    let ok = valid_name(name);
    if !ok {
        let like = example.split('.').nth(1).unwrap_or(example);
        t.problem_here(format!(
            "invalid {what} name: use lowercase letters, digits and single inner underscores \
             (like {like}), because environment overrides such as {} are lowercased and split at __",
            env_var_name(example),
        ));
    }
    ok
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.starts_with('_')
        && !name.ends_with('_')
        && !name.contains("__")
}

fn b2b(mut t: Table<'_>) -> Option<B2bSettings> {
    let base_url = t.or("base_url", DEFAULT_BASE_URL, http_url);
    let (request_timeout, connect_timeout) = timeouts(&mut t);
    let token = t.exactly_one(("token", secret), ("token_file", secret_file));
    let auth = auth(&mut t, token);
    // The spec's pagination model: 1 < limit < 250.
    let page_size = t.or("page_size", super::DEFAULT_B2B_PAGE_SIZE, whole(2..=249));
    Some(B2bSettings {
        base_url: base_url?,
        auth: auth?,
        request_timeout: request_timeout?,
        connect_timeout: connect_timeout?,
        page_size: page_size?,
    })
}

/// The two HTTP timeouts every API client takes, with the same defaults and ranges.
fn timeouts(t: &mut Table<'_>) -> (Option<Duration>, Option<Duration>) {
    let request_timeout = t.or("request_timeout_secs", 30, secs(1..=600));
    let connect_timeout = t.or("connect_timeout_secs", 5, secs(1..=120));
    (request_timeout, connect_timeout)
}

fn auth(t: &mut Table<'_>, token: Option<SecretString>) -> Option<B2bAuth> {
    match t.or("auth", "x-auth-token", choice(AUTH_STYLES)) {
        Some(AuthStyle::XAuthToken) => {
            let store_hash = t.required(
                "store_hash",
                "required with auth = \"x-auth-token\", the default; it is the code after \
                 /stores/ in the store's API path",
                word,
            );
            Some(B2bAuth::XAuthToken {
                store_hash: store_hash?,
                token: token?,
            })
        }
        Some(AuthStyle::LegacyAuthToken) => {
            if matches!(t.field("store_hash", |_| Ok(())), Ok(Some(()))) {
                t.problem(
                    "store_hash",
                    "not sent with legacy-auth-token; remove it or use auth = \"x-auth-token\"",
                );
                return None;
            }
            Some(B2bAuth::LegacyAuthToken { token: token? })
        }
        None => {
            // The style is unknown, so whether store_hash belongs cannot be judged; still check it.
            let _ = t.field("store_hash", word);
            None
        }
    }
}

/// B2B Edition's limit per store, shared by every app on it.
const STORE_RATE_LIMIT: u32 = 150;

pub(super) fn budget(mut t: Table<'_>) -> Option<BudgetSettings> {
    let requests_per_minute = t.or("requests_per_minute", 120, |v: &Value| {
        positive(1..=150)(v).map_err(|e| {
            format!("{e}; the store allows 150 requests/minute in all, shared by every app")
        })
    });
    let burst = t.or("burst", 4, positive(1..=30));
    let max_concurrent = t.or("max_concurrent", 4, positive_usize(1..=64));
    let default_retry_after = t.or("default_retry_after_secs", 60, secs(1..=3600));
    let (requests_per_minute, burst) = (requests_per_minute?, burst?);
    // A 60 s window can hold a full burst on top of the rate: together they must fit the
    // store's 150, or the daemon alone could overrun it (and every other app with it).
    let window = requests_per_minute.get().saturating_add(burst.get());
    if window > STORE_RATE_LIMIT {
        // Blame the key the operator actually wrote when only one of them is set.
        let key = if t.has("burst") {
            "burst"
        } else {
            "requests_per_minute"
        };
        t.problem(
            key,
            format!(
                "requests_per_minute + burst = {window} is above the store's {STORE_RATE_LIMIT} \
                 requests a minute (shared by every app on the store): any 60 s window may hold \
                 both; lower one of them"
            ),
        );
        return None;
    }
    Some(BudgetSettings {
        requests_per_minute,
        burst,
        max_concurrent: max_concurrent?,
        default_retry_after: default_retry_after?,
    })
}

pub(super) fn retry(mut t: Table<'_>) -> Option<RetrySettings> {
    let max_attempts = t.or("max_attempts", 5, whole(1..=20));
    let base_delay = t.or("base_delay_ms", 250, millis(1..=60_000));
    let max_delay = t.or("max_delay_ms", 30_000, millis(1..=600_000));
    let (base_delay, max_delay) = (base_delay?, max_delay?);
    if max_delay < base_delay {
        // Blame the key the operator actually wrote when only one of them is set.
        if t.has("max_delay_ms") {
            let base = base_delay.as_millis();
            t.problem(
                "max_delay_ms",
                format!("must be at least base_delay_ms ({base})"),
            );
        } else {
            let max = max_delay.as_millis();
            t.problem(
                "base_delay_ms",
                format!("must be at most max_delay_ms ({max} by default)"),
            );
        }
        return None;
    }
    Some(RetrySettings {
        max_attempts: max_attempts?,
        base_delay,
        max_delay,
    })
}

fn log_filter(value: &Value) -> Result<String, String> {
    let filter = string(value)?;
    EnvFilter::try_new(&filter).map_err(|e| {
        format!(
            "not a valid log filter ({e}); write directives like \"info,b2b_invoice_sync=debug\""
        )
    })?;
    Ok(filter)
}

/// An API root (B2B's, an ERP's), with a trailing slash so that `join("ip/invoices")` appends
/// instead of replacing the last segment (`.../api/v3/io` + `ip/invoices` would give
/// `.../api/v3/ip/invoices`).
fn http_url(value: &Value) -> Result<Url, String> {
    let mut url = Url::parse(&string(value)?).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http:// or https:// URL".to_owned());
    }
    // Settings are logged with Debug; a URL is not treated as a secret.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "must not contain credentials; put them in this section's token or api_key \
             (or its _file form)"
                .to_owned(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query string or fragment".to_owned());
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn postgres_url(url: SecretString) -> Result<SecretString, String> {
    let parsed = Url::parse(url.expose_secret()).map_err(|e| format!("not a URL ({e})"))?;
    match parsed.scheme() {
        "postgres" | "postgresql" => Ok(url),
        _ => Err("must be a postgres:// or postgresql:// URL".to_owned()),
    }
}
