//! Fault rows about processes: the real binary killed at random points, PostgreSQL going away
//! mid-cycle (through a proxy) and coming back, two daemons working one source at once.

use std::process::Stdio;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use b2b_invoice_sync::config::load_with_env;
use b2b_invoice_sync::sandbox::b2b::{B2bSandboxConfig, ErrorRates, Fault, FaultRule};
use b2b_invoice_sync::sandbox::unified;
use b2b_invoice_sync::store::runs::Outcome;
use b2b_invoice_sync::sync::engine::{Engine, EngineError, RunReport};

use crate::db;
use crate::erp::Erp;
use crate::proxy::Proxy;
use crate::world::{eager_failures, faults_n, seed_for, World, SOURCE, STORE, STORE_HASH, TOKEN};

const BIN: &str = env!("CARGO_BIN_EXE_b2b-invoice-sync");
const MAX_CYCLES: usize = 15;

/// The row's world as an operator would configure it: a TOML file the binary reads.
fn config_toml(world: &World) -> String {
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
         [sources.{SOURCE}.unified]\nbase_url = \"{erp_url}\"\napi_key = \"{key}\"\ncredential_id = \"{cred}\"\n\
         page_size = 10\n\
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

fn spawn_sync(config: &str, once: bool, stderr: std::fs::File) -> tokio::process::Child {
    let mut args = vec!["sync", "--config", config, "--log-format", "json", "--json"];
    if once {
        args.push("--once");
    }
    tokio::process::Command::new(BIN)
        .args(args)
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
}

#[tokio::test]
async fn process_killed_at_random_points() {
    let row = "process_killed";
    let seed = seed_for(row);
    // The binary keeps to the store's 150 requests a minute: a larger N would only wait.
    let n = faults_n().min(60);
    // Slow B2B answers, so that most kills land while requests are on the wire.
    let b2b = B2bSandboxConfig {
        latency: Duration::from_millis(60),
        latency_jitter: Duration::from_millis(120),
        ..B2bSandboxConfig::default()
    };
    let mut world = World::with_b2b(row, seed, Erp::unified(n, seed).await, b2b).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_toml(&world)).expect("write config");
    let config_arg = config.display().to_string();
    // The in-process engine reads the same file: same mapping, same fingerprints.
    let mut settings = load_with_env(&config, Vec::new()).expect("the config loads");
    settings.sources.get_mut(SOURCE).expect("source").failures = eager_failures();
    // In-process checks need not wait for the binary's share of the rate.
    let generous = world.settings.stores[STORE].budget;
    settings.stores.get_mut(STORE).expect("store").budget = generous;
    world.settings = settings;

    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let control = world.b2b.control();
    let kills = 8;
    for kill in 0..kills {
        if kill == kills / 2 {
            // A request the killed process had already sent still lands (the sandbox answers
            // after its latency); a person editing before it lands loses the edit to it, as
            // with any PUT racing a person (B2B has no conditional update). People edit once
            // the last one landed.
            tokio::time::sleep(Duration::from_millis(400)).await;
            // People edit invoices that the ERP then changes: the updates meet the kills.
            world.people_edit_then_erp_changes(5).await;
        }
        if kill > 0 {
            // The ERP keeps working while the daemon keeps dying.
            world.erp.create(3);
            let expected = world.erp.expected(SOURCE).await;
            let ids: Vec<_> = expected.live.values().cloned().collect();
            for _ in 0..2 {
                let inv = &ids[rng.random_range(0..ids.len())];
                world.erp.change(inv, rng.random_range(0..100));
            }
        }
        // Killed once B2B has seen a random number of its requests, a random moment later.
        let requests: u64 = rng.random_range(1..=20);
        let extra = rng.random_range(0..60);
        let log = dir.path().join(format!("kill-{kill}.log"));
        let before = control.stats().total;
        let mut child = spawn_sync(
            &config_arg,
            kill % 2 == 0,
            std::fs::File::create(&log).expect("log"),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while control.stats().total < before + requests
            && Instant::now() < deadline
            && matches!(child.try_wait(), Ok(None))
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(extra)).await;
        let _ = child.start_kill();
        let status = child.wait().await.expect("wait");
        eprintln!(
            "fault row {row}: kill {kill} after {} B2B requests + {extra} ms ({status})",
            control.stats().total - before
        );
        assert_no_panic(&log, &format!("killed sync {kill}"));
    }

    // A final `sync` finishes the job.
    let log = dir.path().join("final.log");
    let child = spawn_sync(
        &config_arg,
        false,
        std::fs::File::create(&log).expect("log"),
    );
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
    eprintln!(
        "fault row {row}: {kills} kills, then quiet after {cycles} in-process cycles, {:?}",
        started.elapsed()
    );
}

/// Runs one cycle while PostgreSQL goes away once B2B has seen `after` more requests, and
/// comes back `down` later. The cycle may fail (it cannot record its run without the database);
/// it must not hang or panic.
async fn cycle_across_an_outage(
    world: &mut World,
    engine: &Engine,
    proxy: Proxy,
    after: u64,
    down: Duration,
) -> (Result<RunReport, EngineError>, Proxy) {
    let control = world.b2b.control();
    let start = control.stats().total;
    let cycle = engine.run_cycle(SOURCE);
    let chaos = async move {
        let deadline = Instant::now() + Duration::from_secs(20);
        while control.stats().total < start + after && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        proxy.cut();
        tokio::time::sleep(down).await;
        proxy.restore().await
    };
    let (result, proxy) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(cycle, chaos)
    })
    .await
    .expect("a cycle across a database outage ends");
    if let Ok(report) = &result {
        world.reports.push(report.clone());
    }
    (result, proxy)
}

#[tokio::test]
async fn postgres_restarted_mid_cycle() {
    let row = "postgres_restarted";
    let seed = seed_for(row);
    let n = faults_n();
    let b2b = B2bSandboxConfig {
        latency: Duration::from_millis(15),
        ..B2bSandboxConfig::default()
    };
    let mut world = World::with_b2b(row, seed, Erp::unified(n, seed).await, b2b).await;
    let authority = world.db.server_authority();
    let proxy = Proxy::start(0, &authority).await;
    let proxied = world
        .db
        .url
        .replace(&authority, &format!("127.0.0.1:{}", proxy.port));
    let pool = db::pool(&proxied).await;
    let engine = Engine::new(&world.settings, pool).expect("engine builds");
    let started = Instant::now();

    // Creates: the database goes away after a few POSTs.
    let (first, proxy) =
        cycle_across_an_outage(&mut world, &engine, proxy, 6, Duration::from_millis(700)).await;
    eprintln!(
        "fault row {row}: the cycle across the first outage: {:?}",
        first.as_ref().map(|r| (r.counts, &r.error))
    );
    let cycles = world.until_quiet(&engine, MAX_CYCLES).await;

    // Updates: again, while people's edits are to be kept.
    world.people_edit_then_erp_changes(5).await;
    world.erp.create(n / 4);
    let (second, _proxy) =
        cycle_across_an_outage(&mut world, &engine, proxy, 3, Duration::from_millis(700)).await;
    eprintln!(
        "fault row {row}: the cycle across the second outage: {:?}",
        second.as_ref().map(|r| (r.counts, &r.error))
    );
    let more = world.until_quiet(&engine, MAX_CYCLES).await;
    world.finish().await;
    eprintln!(
        "fault row {row}: quiet after {cycles} + {more} cycles, {:?}",
        started.elapsed()
    );
}

/// Both engines run a cycle at the same moment, round after round, until a round in which
/// every cycle that ran was quiet. Returns (rounds, skipped cycles).
async fn compete(world: &mut World, a: &Engine, b: &Engine) -> (usize, usize) {
    let mut skipped = 0;
    for round in 1..=MAX_CYCLES {
        let (ra, rb) = tokio::join!(a.run_cycle(SOURCE), b.run_cycle(SOURCE));
        let mut ran = Vec::new();
        for r in [ra, rb] {
            let r = r.expect("the cycle runs");
            if r.outcome == Outcome::Skipped {
                skipped += 1;
            } else {
                ran.push(r.clone());
                world.reports.push(r);
            }
        }
        let quiet = ran.iter().all(|r| {
            let c = r.counts;
            c.created + c.updated + c.deleted + c.recovered + c.failed == 0 && r.error.is_none()
        });
        if quiet && !ran.is_empty() {
            return (round, skipped);
        }
    }
    panic!(
        "[{}] two engines not quiet after {MAX_CYCLES} rounds",
        world.row
    );
}

#[tokio::test]
async fn two_daemons_on_one_source() {
    let row = "two_daemons";
    let seed = seed_for(row);
    let n = faults_n();
    let b2b = B2bSandboxConfig {
        latency: Duration::from_millis(5),
        ..B2bSandboxConfig::default()
    };
    let mut world = World::with_b2b(row, seed, Erp::unified(n, seed).await, b2b).await;
    world
        .b2b
        .control()
        .set_error_rates(ErrorRates {
            status_500: 0.1,
            ..ErrorRates::default()
        })
        .expect("rates");
    world.b2b.control().push_fault(
        FaultRule::once(Fault::ApplyThenDrop)
            .on_method("POST")
            .times(3),
    );
    // Two processes: two engines, each with its own pool and its own budget.
    let a = world.engine();
    let b = Engine::new(&world.settings, db::pool(&world.db.url).await).expect("engine builds");
    let started = Instant::now();
    let (rounds, skipped) = compete(&mut world, &a, &b).await;
    world.clear_faults();
    world.people_edit_then_erp_changes(5).await;
    world.erp.create(n / 4);
    world
        .b2b
        .control()
        .set_error_rates(ErrorRates {
            status_500: 0.1,
            ..ErrorRates::default()
        })
        .expect("rates");
    world.b2b.control().push_fault(
        FaultRule::once(Fault::ApplyThenDrop)
            .on_method("PUT")
            .times(2),
    );
    let (more, skipped_more) = compete(&mut world, &a, &b).await;
    assert!(skipped + skipped_more > 0, "the engines met at least once");

    // Never two cycles of the source at once.
    let runs: Vec<(
        chrono::DateTime<chrono::Utc>,
        Option<chrono::DateTime<chrono::Utc>>,
    )> = sqlx::query_as(
        "SELECT started_at, finished_at FROM sync_runs WHERE source = $1 ORDER BY started_at",
    )
    .bind(SOURCE)
    .fetch_all(&world.db.pool)
    .await
    .expect("runs");
    for pair in runs.windows(2) {
        let end = pair[0].1.expect("finished");
        assert!(end <= pair[1].0, "[{row}] overlapping cycles: {pair:?}");
    }
    world.finish().await;
    eprintln!(
        "fault row {row}: quiet after {rounds} + {more} rounds ({} skipped), {:?}",
        skipped + skipped_more,
        started.elapsed()
    );
}
