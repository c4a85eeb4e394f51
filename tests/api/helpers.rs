//! Shared set-up: a sandbox per test and clients pointed at it.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use b2b_invoice_sync::b2b::{Amount, B2bClient, NewInvoice, RequestBudget};
use b2b_invoice_sync::config::{
    B2bAuth, B2bSettings, BudgetSettings, RetrySettings, StoreSettings,
};
use b2b_invoice_sync::sandbox::b2b::{
    self as sandbox, B2bSandboxConfig, RunningB2bSandbox, SandboxStore,
};
use secrecy::SecretString;

pub const STORE_HASH: &str = "teststore";
/// Distinctive values so that a scan of logs and errors finds any leak.
pub const TOKEN: &str = "tok_TEST_SECRET_9f3a7c";
pub const LEGACY_TOKEN: &str = "legacy_TEST_SECRET_51be";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    XAuthToken,
    Legacy,
}

/// A sandbox with one store and the given settings (seeds, limits), on a free port.
pub async fn spawn_sandbox(config: B2bSandboxConfig) -> RunningB2bSandbox {
    let config = B2bSandboxConfig {
        stores: vec![SandboxStore::new(STORE_HASH, TOKEN, LEGACY_TOKEN)],
        ..config
    };
    sandbox::start(config, "127.0.0.1:0".parse().expect("loopback address"))
        .await
        .expect("the sandbox starts")
}

/// A sandbox whose rate limit is out of the way, for functional tests.
pub async fn spawn_unlimited_sandbox(seed_invoices: usize) -> RunningB2bSandbox {
    spawn_sandbox(B2bSandboxConfig {
        rate_limit: 1_000_000,
        seed_invoices,
        ..B2bSandboxConfig::default()
    })
    .await
}

/// A budget that never holds a functional test back.
pub fn generous_budget() -> BudgetSettings {
    BudgetSettings {
        requests_per_minute: NonZeroU32::new(600_000).expect("non-zero"),
        burst: NonZeroU32::new(1000).expect("non-zero"),
        max_concurrent: NonZeroUsize::new(8).expect("non-zero"),
        default_retry_after: Duration::from_secs(60),
    }
}

pub fn fast_retry() -> RetrySettings {
    RetrySettings {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
    }
}

pub fn store_settings(
    base_url: &str,
    auth: Auth,
    budget: BudgetSettings,
    retry: RetrySettings,
) -> StoreSettings {
    let auth = match auth {
        Auth::XAuthToken => B2bAuth::XAuthToken {
            store_hash: STORE_HASH.to_owned(),
            token: SecretString::from(TOKEN),
        },
        Auth::Legacy => B2bAuth::LegacyAuthToken {
            token: SecretString::from(LEGACY_TOKEN),
        },
    };
    StoreSettings {
        name: "test".to_owned(),
        b2b: B2bSettings {
            base_url: base_url.parse().expect("sandbox URL"),
            auth,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            page_size: b2b_invoice_sync::config::DEFAULT_B2B_PAGE_SIZE,
        },
        budget,
        retry,
    }
}

/// A client with a generous budget and quick retries.
pub fn client(sandbox: &RunningB2bSandbox, auth: Auth) -> B2bClient {
    let settings = store_settings(&sandbox.base_url(), auth, generous_budget(), fast_retry());
    client_from(&settings)
}

pub fn client_from(settings: &StoreSettings) -> B2bClient {
    B2bClient::new(settings, Arc::new(RequestBudget::new(&settings.budget))).expect("client builds")
}

pub fn usd(value: &str) -> Amount {
    Amount::new("USD", value.parse().expect("decimal literal"))
}

/// A minimal valid invoice for company 1.
pub fn new_invoice(number: &str) -> NewInvoice {
    let mut inv = NewInvoice::new(number, "1", usd("100.00"), usd("100.00"));
    inv.external_id = Some(format!("ext-{number}"));
    inv
}

/// Collects every log line written through it.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
