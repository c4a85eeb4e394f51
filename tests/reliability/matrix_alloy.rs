//! Fault rows of an Alloy source (issue #12): the real binary, configured with an Alloy preset,
//! killed with SIGKILL ten times at random points of its full scans while the ERP keeps
//! changing, then one clean run: every invoice in B2B once, with the ERP's content.

use std::process::Stdio;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use b2b_invoice_sync::config::load_with_env;
use b2b_invoice_sync::sandbox::b2b::B2bSandboxConfig;
use b2b_invoice_sync::sandbox::unified::{self, AlloyVersion};

use crate::erp::Erp;
use crate::world::{eager_failures, faults_n, seed_for, World, SOURCE, STORE, STORE_HASH, TOKEN};

const BIN: &str = env!("CARGO_BIN_EXE_b2b-invoice-sync");
const MAX_CYCLES: usize = 15;
const KILLS: usize = 10;

/// The row's world as an operator would configure an Alloy source: preset, URL, credentials.
fn config_toml(world: &World, preset: &str) -> String {
    let customers = (1..=10)
        .map(|i| format!("\"CUST-{i:05}\" = \"{i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let erp = world.erp.unified_sandbox();
    format!(
        "[database]\nurl = \"{db}\"\nmax_connections = 4\n\n\
         [stores.{STORE}.b2b]\nbase_url = \"{b2b}\"\nstore_hash = \"{STORE_HASH}\"\ntoken = \"{TOKEN}\"\n\
         request_timeout_secs = 5\n\
         [stores.{STORE}.budget]\nrequests_per_minute = 120\nburst = 30\nmax_concurrent = 4\n\
         default_retry_after_secs = 1\n\
         [stores.{STORE}.retry]\nmax_attempts = 4\nbase_delay_ms = 5\nmax_delay_ms = 50\n\n\
         [sources.{SOURCE}]\nkind = \"unified\"\nstore = \"{STORE}\"\n\
         [sources.{SOURCE}.unified]\npreset = \"{preset}\"\nbase_url = \"{erp_url}\"\n\
         api_key = \"{key}\"\ncredential_id = \"{cred}\"\npage_size = 10\nrequests_per_minute = 600\n\
         [sources.{SOURCE}.unified.retry]\nmax_attempts = 4\nbase_delay_ms = 5\nmax_delay_ms = 40\n\
         [sources.{SOURCE}.failures]\nmax_attempts = 1000\nbase_delay_secs = 1\nmax_delay_secs = 1\n\
         [sources.{SOURCE}.customers]\nstrategy = \"static\"\nmap = {{ {customers} }}\n",
        db = world.db.url,
        b2b = world.b2b.base_url(),
        erp_url = erp.base_url(),
        key = unified::DEFAULT_API_KEY,
        cred = unified::DEFAULT_CREDENTIAL_ID,
    )
}

fn spawn_sync(config: &str, stderr: std::fs::File) -> tokio::process::Child {
    tokio::process::Command::new(BIN)
        .args(["sync", "--config", config, "--log-format", "json", "--json"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts")
}

fn assert_no_panic(path: &std::path::Path, what: &str) {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    assert!(!log.contains("panicked"), "{what} panicked: {log}");
    assert!(!log.contains(TOKEN), "{what} logged the token");
    assert!(
        !log.contains(unified::DEFAULT_API_KEY),
        "{what} logged the API key"
    );
}

async fn killed_mid_scan(row: &'static str, version: AlloyVersion, preset: &str) {
    let seed = seed_for(row);
    let n = faults_n().min(60);
    // Slow B2B answers, so that kills land while creates and updates are on the wire too.
    let b2b = B2bSandboxConfig {
        latency: Duration::from_millis(30),
        latency_jitter: Duration::from_millis(60),
        ..B2bSandboxConfig::default()
    };
    let mut world = World::with_b2b(row, seed, Erp::alloy(version, n, seed).await, b2b).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_toml(&world, preset)).expect("write config");
    let config_arg = config.display().to_string();
    // The in-process engine reads the same file: same mapping, same fingerprints.
    let mut settings = load_with_env(&config, Vec::new()).expect("the config loads");
    settings.sources.get_mut(SOURCE).expect("source").failures = eager_failures();
    let generous = world.settings.stores[STORE].budget;
    settings.stores.get_mut(STORE).expect("store").budget = generous;
    world.settings = settings;

    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let erp = world.erp.unified_sandbox().control();
    // Pages of 10 (a customers page, then the invoice pages): a scan is about n / 10 + 2 reads.
    let scan = u64::try_from(n / 10 + 2).unwrap_or(8);
    for kill in 0..KILLS {
        if kill == KILLS / 2 {
            // Let requests the killed process sent land before people edit.
            tokio::time::sleep(Duration::from_millis(300)).await;
            world.people_edit_then_erp_changes(4).await;
        }
        if kill > 0 {
            // The ERP keeps working while the daemon keeps dying.
            world.erp.create(2);
            let expected = world.erp.expected(SOURCE).await;
            let ids: Vec<_> = expected.live.values().cloned().collect();
            for _ in 0..2 {
                let inv = &ids[rng.random_range(0..ids.len())];
                world.erp.change(inv, rng.random_range(0..100));
            }
        }
        // Killed once the ERP has served a random number of this scan's reads, a random
        // moment later: mid-scan.
        let reads: u64 = rng.random_range(1..=scan);
        let extra = rng.random_range(0..40);
        let log = dir.path().join(format!("kill-{kill}.log"));
        let before = erp.stats().total;
        let mut child = spawn_sync(&config_arg, std::fs::File::create(&log).expect("log"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while erp.stats().total < before + reads
            && Instant::now() < deadline
            && matches!(child.try_wait(), Ok(None))
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(extra)).await;
        let _ = child.start_kill();
        let status = child.wait().await.expect("wait");
        eprintln!(
            "fault row {row}: kill {kill} after {} ERP reads + {extra} ms ({status})",
            erp.stats().total - before
        );
        assert_no_panic(&log, &format!("killed sync {kill}"));
    }

    // A clean run finishes the job.
    let log = dir.path().join("final.log");
    let child = spawn_sync(&config_arg, std::fs::File::create(&log).expect("log"));
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the final sync ends")
        .expect("output");
    assert_no_panic(&log, "the final sync");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let reports: Value = serde_json::from_slice(&out.stdout).expect("sync --json prints JSON");
    for r in reports.as_array().expect("an array of runs") {
        for f in r["failures"].as_array().into_iter().flatten() {
            world
                .other_failures
                .push(f.as_str().unwrap_or_default().to_owned());
        }
    }
    let engine = world.engine();
    let cycles = world.until_quiet(&engine, MAX_CYCLES).await;
    world.finish().await;
    let counters = erp.alloy_counters();
    assert_eq!(counters.remote_id_lookups, 0, "[{row}] {counters:?}");
    assert_eq!(counters.clamped_pages, 0, "[{row}] {counters:?}");
    assert!(counters.ignored_params.is_empty(), "[{row}] {counters:?}");
    eprintln!(
        "fault row {row}: {KILLS} kills mid-scan, then quiet after {cycles} in-process cycles, {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn alloy_2024_03_killed_mid_scan_ten_times() {
    killed_mid_scan(
        "alloy_2024_03_killed",
        AlloyVersion::V2024_03,
        "alloy-2024-03",
    )
    .await;
}

#[tokio::test]
async fn alloy_2023_12_killed_mid_scan_ten_times() {
    killed_mid_scan(
        "alloy_2023_12_killed",
        AlloyVersion::V2023_12,
        "alloy-2023-12",
    )
    .await;
}
