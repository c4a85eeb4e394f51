//! Fault rows about versions: the real binary SIGKILLed again and again while an export folder
//! holds several versions of the same invoices (so a killed cycle leaves older exports to be
//! read again), an old export dropped back in, people editing, and creates whose outcome is
//! unknown while newer versions arrive. Every row ends with the shared invariants, which include
//! "B2B holds the ERP's newest version of every invoice".
//!
//! Sizes: `B2BSYNC_FAULTS_N` invoices (default 40; BENCHMARKS.md records a run at 400) and
//! `B2BSYNC_FAULTS_KILLS` kills (default 20).

use std::process::Stdio;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use b2b_invoice_sync::domain::SourceInvoice;
use b2b_invoice_sync::sandbox::b2b::{B2bSandboxConfig, ErrorRates, Fault, FaultRule};

use crate::erp::{ndjson_invoice, Erp};
use crate::world::{faults_n, seed_for, World, SOURCE, STORE, STORE_HASH, TOKEN};

const BIN: &str = env!("CARGO_BIN_EXE_b2b-invoice-sync");

fn kills() -> usize {
    std::env::var("B2BSYNC_FAULTS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// The export folder as an operator would configure it (the store's budget at its maximum:
/// 120 a minute and bursts of 30).
fn config_toml(world: &World) -> String {
    let customers = (1..=10)
        .map(|i| format!("\"CUST-{i:05}\" = \"{i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[database]\nurl = \"{db}\"\nmax_connections = 4\n\n\
         [stores.{STORE}.b2b]\nbase_url = \"{b2b}\"\nstore_hash = \"{STORE_HASH}\"\ntoken = \"{TOKEN}\"\n\
         request_timeout_secs = 5\n\
         [stores.{STORE}.budget]\nrequests_per_minute = 120\nburst = 30\nmax_concurrent = 4\n\
         default_retry_after_secs = 1\n\
         [stores.{STORE}.retry]\nmax_attempts = 4\nbase_delay_ms = 5\nmax_delay_ms = 50\n\n\
         [sources.{SOURCE}]\nkind = \"files\"\nstore = \"{STORE}\"\n\
         [sources.{SOURCE}.files]\ndir = \"{dir}\"\nready = \"atomic_rename\"\npage_size = 25\n\
         [sources.{SOURCE}.failures]\nmax_attempts = 1000\nbase_delay_secs = 1\nmax_delay_secs = 1\n\
         [sources.{SOURCE}.customers]\nstrategy = \"static\"\nmap = {{ {customers} }}\n",
        db = world.db.url,
        b2b = world.b2b.base_url(),
        dir = world.erp_dir().display(),
    )
}

/// A new export of `invoices`, each changed (its first line's quantity and the open balance).
fn changed(invoices: &[SourceInvoice], k: u64) -> Vec<String> {
    invoices
        .iter()
        .map(|inv| {
            let mut raw = inv.to_raw();
            raw.line_items[0].quantity = Some(format!("{}", 2 + k % 7));
            raw.line_items[0].line_total = None;
            raw.open_balance = Some(format!("{}", 1 + k % 3));
            serde_json::to_string(&raw).expect("JSON")
        })
        .collect()
}

fn spawn_sync(config: &std::path::Path, log: &std::path::Path) -> tokio::process::Child {
    tokio::process::Command::new(BIN)
        .args(["sync", "--once", "--log-format", "json", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log"))
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts")
}

#[tokio::test]
async fn stale_replays_under_kills() {
    let row = "stale_replays_under_kills";
    let seed = seed_for(row);
    let n = faults_n();
    let b2b = B2bSandboxConfig {
        latency: Duration::from_millis(10),
        latency_jitter: Duration::from_millis(30),
        ..B2bSandboxConfig::default()
    };
    let mut world = World::with_b2b(row, seed, Erp::files(), b2b).await;
    let mut rng = StdRng::seed_from_u64(seed);
    // Two versions of every invoice in the folder before the first run.
    let v1: Vec<String> = (0..n).map(ndjson_invoice).collect();
    world.erp.folder().write(&v1);
    let first: Vec<SourceInvoice> = world
        .erp
        .expected(SOURCE)
        .await
        .live
        .into_values()
        .collect();
    world.erp.folder().write(&changed(&first, 1));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_toml(&world)).expect("config");
    let control = world.b2b.control();
    let started = Instant::now();
    let kills = kills();
    for kill in 0..kills {
        if kill > 0 && kill % 4 == 0 {
            // The ERP exports a newer version of some invoices ...
            let live: Vec<SourceInvoice> = world
                .erp
                .expected(SOURCE)
                .await
                .live
                .into_values()
                .collect();
            let some: Vec<SourceInvoice> = live
                .iter()
                .filter(|_| rng.random_bool(0.3))
                .cloned()
                .collect();
            world.erp.folder().write(&changed(&some, kill as u64));
        }
        if kill % 5 == 2 {
            // ... and an operator drops the very first export back into the folder.
            let again = world
                .erp_dir()
                .join(format!("export-0001-again-{kill}.ndjson"));
            std::fs::write(&again, format!("{}\n", v1.join("\n"))).expect("re-drop");
        }
        if kill == kills / 2 {
            // People edit synced invoices once no killed request can land any more; the ERP
            // changes the same invoices, so the kills meet their updates.
            tokio::time::sleep(Duration::from_millis(300)).await;
            world.people_edit_then_erp_changes(5).await;
        }
        let requests: u64 = rng.random_range(1..=15);
        let extra = rng.random_range(0..40);
        let log = dir.path().join(format!("kill-{kill}.log"));
        let before = control.stats().total;
        let mut child = spawn_sync(&config, &log);
        let deadline = Instant::now() + Duration::from_secs(20);
        while control.stats().total < before + requests
            && Instant::now() < deadline
            && matches!(child.try_wait(), Ok(None))
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(extra)).await;
        let _ = child.start_kill();
        let _ = child.wait().await;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(!text.contains("panicked"), "kill {kill} panicked: {text}");
        assert!(!text.contains(TOKEN), "kill {kill} logged the token");
    }
    // The rest in-process, at full speed, with unknown outcomes while the last versions go in:
    // some updates are applied and their answers lost, 5 % of requests fail.
    control
        .set_error_rates(ErrorRates {
            status_500: 0.05,
            ..ErrorRates::default()
        })
        .expect("rates");
    control.push_fault(
        FaultRule::once(Fault::ApplyThenDrop)
            .on_method("PUT")
            .times(3),
    );
    let engine = world.engine();
    for _ in 0..3 {
        world.cycle(&engine).await;
    }
    world.clear_faults();
    let cycles = world.until_quiet(&engine, 15).await;
    // Every re-dropped old export was recognised and set aside, never read.
    let waiting = world.erp.folder().waiting();
    assert!(
        waiting.is_empty(),
        "[{row}] files left in the folder: {waiting:?}"
    );
    world.finish().await;
    eprintln!(
        "fault row {row}: {n} invoices, {kills} kills, quiet after {cycles} more cycles, {:?}",
        started.elapsed()
    );
}
