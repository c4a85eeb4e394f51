//! A row's world: a fresh database, the B2B sandbox and an ERP, wired together by settings built
//! in code; the runs it made; the edits people made in B2B.

use std::collections::{BTreeMap, HashMap};
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{json, Value};

use b2b_invoice_sync::config::*;
use b2b_invoice_sync::sandbox::b2b::{
    self as b2b_sandbox, B2bSandboxConfig, ErrorRates, RunningB2bSandbox, SandboxStore,
};
use b2b_invoice_sync::sync::engine::{Engine, RunReport};

use crate::db::TestDb;
use crate::erp::Erp;
use crate::invariants::assert_invariants;

pub const SOURCE: &str = "erp";
pub const STORE: &str = "acme";
pub const STORE_HASH: &str = "relstore";
pub const TOKEN: &str = "tok_REL_SECRET_3b9e";
pub const LEGACY_TOKEN: &str = "legacy_REL_SECRET_c40d";

/// ERP invoices per row: `B2BSYNC_FAULTS_N` (default 40).
pub fn faults_n() -> usize {
    std::env::var("B2BSYNC_FAULTS_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= 10)
        .unwrap_or(40)
}

/// The row's RNG seed: fixed per row (`B2BSYNC_FAULTS_SEED` overrides), printed to replay it.
pub fn seed_for(row: &str) -> u64 {
    let seed = std::env::var("B2BSYNC_FAULTS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            // FNV-1a of the row name: stable across runs and platforms.
            row.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            })
        });
    eprintln!(
        "fault row {row}: rng seed {seed} (B2BSYNC_FAULTS_SEED={seed} replays it), N = {}",
        faults_n()
    );
    seed
}

/// The customer map of the seeded customers: CUST-0000i -> company i.
pub fn customer_map() -> BTreeMap<String, String> {
    (1..=10)
        .map(|i| (format!("CUST-{i:05}"), i.to_string()))
        .collect()
}

/// A person's key inside `details` of a B2B invoice, which no sync may lose.
#[derive(Debug, Clone)]
pub struct PersonEdit {
    pub external_id: String,
    pub b2b_id: u64,
    pub note: String,
}

pub struct World {
    pub row: &'static str,
    pub seed: u64,
    pub db: TestDb,
    pub b2b: RunningB2bSandbox,
    pub erp: Erp,
    pub settings: Settings,
    /// The in-process cycles' reports, in order.
    pub reports: Vec<RunReport>,
    /// Failure reasons seen elsewhere (a binary's `sync --json` output).
    pub other_failures: Vec<String>,
    pub person_edits: Vec<PersonEdit>,
    /// Substrings of failure reasons the row expects to recur (its known bad records): a cycle
    /// failing only those is still quiet.
    pub known_bad: Vec<String>,
    /// Set (with the reason) by a row whose recorded run counts may fall short of what B2B
    /// holds although every run finished; the count invariant is then a bound.
    pub counts_may_fall_short: Option<&'static str>,
}

impl World {
    pub async fn new(row: &'static str, seed: u64, erp: Erp) -> Self {
        Self::with_b2b(row, seed, erp, B2bSandboxConfig::default()).await
    }

    pub async fn with_b2b(row: &'static str, seed: u64, erp: Erp, b2b: B2bSandboxConfig) -> Self {
        let db = TestDb::failing_fast().await;
        let b2b = b2b_sandbox::start(
            B2bSandboxConfig {
                stores: vec![SandboxStore::new(STORE_HASH, TOKEN, LEGACY_TOKEN)],
                rate_limit: 1_000_000,
                rng_seed: Some(seed),
                ..b2b
            },
            "127.0.0.1:0".parse().expect("loopback address"),
        )
        .await
        .expect("the B2B sandbox starts");
        let settings = settings(&db.url, &b2b, &erp);
        Self {
            row,
            seed,
            db,
            b2b,
            erp,
            settings,
            reports: Vec::new(),
            other_failures: Vec::new(),
            person_edits: Vec::new(),
            known_bad: Vec::new(),
            counts_may_fall_short: None,
        }
    }

    pub fn engine(&self) -> Engine {
        Engine::new(&self.settings, self.db.pool.clone()).expect("engine builds")
    }

    /// The export folder of a row whose ERP is one.
    pub fn erp_dir(&self) -> std::path::PathBuf {
        match &self.erp {
            Erp::Files(folder) => folder.dir.path().to_owned(),
            _ => panic!("[{}] the ERP is not an export folder", self.row),
        }
    }

    pub fn source_mut(&mut self) -> &mut SourceSettings {
        self.settings.sources.get_mut(SOURCE).expect("source")
    }

    pub fn store_mut(&mut self) -> &mut StoreSettings {
        self.settings.stores.get_mut(STORE).expect("store")
    }

    /// Every B2B invoice of the store, as the sandbox holds them.
    pub fn b2b_invoices(&self) -> Vec<Value> {
        self.b2b.control().invoices(STORE_HASH).expect("store")
    }

    /// B2B invoices by externalId; panics if an externalId appears twice (a duplicate).
    pub fn b2b_by_external_id(&self) -> HashMap<String, Value> {
        let mut map = HashMap::new();
        for inv in self.b2b_invoices() {
            let ext = inv["externalId"].as_str().unwrap_or_default().to_owned();
            let number = inv["invoiceNumber"].clone();
            if let Some(dup) = map.insert(ext.clone(), inv) {
                panic!(
                    "[{}] externalId {ext} exists twice in B2B: {} and {}",
                    self.row, dup["invoiceNumber"], number
                );
            }
        }
        map
    }

    fn is_quiet(&self, r: &RunReport) -> bool {
        let c = r.counts;
        c.created + c.updated + c.deleted + c.recovered == 0
            && r.error.is_none()
            // Every failure is listed (a report lists at most 100; the rest were seen before).
            && (r.failures.len() == usize::try_from(c.failed).unwrap_or(usize::MAX)
                || r.failures.len() >= 100)
            && r.failures
                .iter()
                .all(|f| self.known_bad.iter().any(|bad| f.contains(bad.as_str())))
    }

    /// One cycle, its report kept.
    pub async fn cycle(&mut self, engine: &Engine) -> RunReport {
        let report = engine.run_cycle(SOURCE).await.expect("the cycle runs");
        self.reports.push(report.clone());
        report
    }

    /// Runs cycles until one changes nothing and fails nothing but the row's known bad records
    /// (at most `max`); returns how many ran.
    pub async fn until_quiet(&mut self, engine: &Engine, max: usize) -> usize {
        for n in 1..=max {
            let report = self.cycle(engine).await;
            if self.is_quiet(&report) {
                return n;
            }
        }
        let tail: Vec<_> = self.reports.iter().rev().take(3).collect();
        panic!(
            "[{}] not quiet after {max} cycles (seed {}); the last reports: {tail:#?}",
            self.row, self.seed
        );
    }

    /// People edit `count` synced invoices in B2B (a key inside `details`, and one inside
    /// `details.header`), then the ERP changes the same invoices, so the next cycles update them.
    pub async fn people_edit_then_erp_changes(&mut self, count: usize) {
        let expected = self.erp.expected(SOURCE).await;
        let b2b = self.b2b_by_external_id();
        let present: Vec<_> = expected
            .live
            .values()
            .filter(|inv| b2b.contains_key(&inv.external_id))
            .collect();
        let step = if present.len() >= 3 * count { 3 } else { 1 };
        let chosen: Vec<_> = present
            .into_iter()
            .step_by(step)
            .take(count)
            .cloned()
            .collect();
        assert!(
            chosen.len() == count,
            "[{}] only {} synced invoices to edit",
            self.row,
            chosen.len()
        );
        for (k, inv) in chosen.iter().enumerate() {
            let b2b_id = b2b[&inv.external_id]["id"].as_u64().expect("B2B id");
            let note = format!("person-note-{}-{k}", inv.external_id);
            self.b2b
                .control()
                .edit_details(
                    STORE_HASH,
                    b2b_id,
                    &json!({ "personNote": note, "header": { "personHeaderNote": note } }),
                )
                .expect("a person edits the invoice");
            self.erp.change(inv, k as u64);
            self.person_edits.push(PersonEdit {
                external_id: inv.external_id.clone(),
                b2b_id,
                note,
            });
        }
    }

    /// The common start of a row: a clean first sync, then people's edits and the ERP's
    /// changes to `edits` invoices, and `new` new ERP invoices, all for the faulty cycles to do.
    pub async fn synced_then_changed(&mut self, edits: usize, new: usize) {
        let engine = self.engine();
        self.until_quiet(&engine, 4).await;
        self.people_edit_then_erp_changes(edits).await;
        self.erp.create(new);
    }

    /// B2B answers with `status` so far (faults included).
    pub fn b2b_served(&self, status: u16) -> u64 {
        self.b2b
            .control()
            .stats()
            .by_route
            .iter()
            .filter(|r| r.status == Some(status))
            .map(|r| r.count)
            .sum()
    }

    /// Invoices adopted by recovery over the in-process runs.
    pub fn recovered(&self) -> i32 {
        self.reports.iter().map(|r| r.counts.recovered).sum()
    }

    /// Every queued fault rule was used up: the row's faults really happened.
    pub fn assert_faults_used(&self) {
        let b2b = self.b2b.control().pending_faults();
        assert!(
            b2b.is_empty(),
            "[{}] B2B faults never hit: {b2b:?}",
            self.row
        );
        let erp = match &self.erp {
            Erp::Unified(s) => s.control().pending_faults(),
            Erp::Rebillia(s) => s.control().pending_faults(),
            Erp::Files(_) => Vec::new(),
        };
        assert!(
            erp.is_empty(),
            "[{}] ERP faults never hit: {erp:?}",
            self.row
        );
    }

    /// Every fault, rate and latency of both sandboxes off.
    pub fn clear_faults(&self) {
        let b2b = self.b2b.control();
        b2b.clear_faults();
        b2b.set_error_rates(ErrorRates::default()).expect("rates");
        b2b.set_latency(Duration::ZERO, Duration::ZERO);
        match &self.erp {
            Erp::Unified(s) => {
                let c = s.control();
                c.clear_faults();
                c.set_error_rates(ErrorRates::default()).expect("rates");
                c.set_latency(Duration::ZERO, Duration::ZERO);
            }
            Erp::Rebillia(s) => {
                let c = s.control();
                c.clear_faults();
                c.set_error_rates(ErrorRates::default()).expect("rates");
                c.set_latency(Duration::ZERO, Duration::ZERO);
            }
            Erp::Files(_) => {}
        }
    }

    /// The end of every row: the faults happened, they stop, the invariants hold.
    pub async fn finish(&self) {
        self.assert_faults_used();
        self.clear_faults();
        assert_invariants(self).await;
    }

    /// Rows whose `ledger.state` is `in_flight`.
    pub async fn in_flight(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM ledger WHERE state = 'in_flight'")
            .fetch_one(&self.db.pool)
            .await
            .expect("count in-flight ledger rows")
    }
}

/// Failed invoices are retried at every cycle (no backoff, no dead letter within a test), so a
/// row ends when the faults are overcome rather than when a backoff expires.
pub fn eager_failures() -> FailurePolicy {
    FailurePolicy {
        max_attempts: 1000,
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    }
}

pub fn store_settings(b2b: &RunningB2bSandbox) -> StoreSettings {
    StoreSettings {
        name: STORE.to_owned(),
        b2b: B2bSettings {
            base_url: b2b.base_url().parse().expect("sandbox URL"),
            auth: B2bAuth::XAuthToken {
                store_hash: STORE_HASH.to_owned(),
                token: SecretString::from(TOKEN),
            },
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            page_size: b2b_invoice_sync::config::DEFAULT_B2B_PAGE_SIZE,
        },
        budget: BudgetSettings {
            requests_per_minute: NonZeroU32::new(600_000).expect("non-zero"),
            burst: NonZeroU32::new(1000).expect("non-zero"),
            max_concurrent: NonZeroUsize::new(4).expect("non-zero"),
            default_retry_after: Duration::from_secs(1),
        },
        retry: RetrySettings {
            max_attempts: 4,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
        },
    }
}

fn settings(db_url: &str, b2b: &RunningB2bSandbox, erp: &Erp) -> Settings {
    let source = SourceSettings {
        customers: CustomerMapping::Static(customer_map()),
        on_deleted: DeletedPolicy::Delete,
        on_missing_in_b2b: MissingPolicy::Fail,
        failures: eager_failures(),
        ..SourceSettings::with_defaults(SOURCE, STORE, erp.adapter_settings())
    };
    Settings {
        telemetry: TelemetrySettings {
            log_filter: "info".to_owned(),
            log_format: LogFormat::Auto,
        },
        database: Some(DatabaseSettings {
            url: db_url.to_owned().into(),
            max_connections: NonZeroU32::new(5).expect("non-zero"),
        }),
        stores: BTreeMap::from([(STORE.to_owned(), store_settings(b2b))]),
        sources: BTreeMap::from([(SOURCE.to_owned(), source)]),
        engine: EngineSettings::default(),
        daemon: DaemonSettings::default(),
    }
}
