//! The benchmarks at small N, as a smoke test of what they measure: B2B calls per invoice for
//! the daemon and the naive syncer, and the planner's decisions. Timings are not asserted.

use std::time::Duration;

use b2b_invoice_sync::bench::e2e::{self, E2eOptions, Scenario, Syncer};
use b2b_invoice_sync::bench::planner::{self, PlannerOptions};
use b2b_invoice_sync::bench::SandboxLaunch;

const BIN: &str = env!("CARGO_BIN_EXE_b2b-invoice-sync");

/// The PostgreSQL server the tests use (the benchmarks create and drop their own database).
fn server_url() -> String {
    std::env::var("B2BSYNC_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_costs_one_call_per_change_and_none_per_unchanged_invoice() {
    let opts = E2eOptions {
        fast: true,
        latency: Duration::ZERO,
        jitter: Duration::ZERO,
        // Updates share one batched read of current state per 250: 25 updates cost 26 calls
        // (1.04 each). 1 % of 50 would be a single update, and 2 calls.
        change_percent: 50.0,
        ..E2eOptions::new(
            50,
            &server_url(),
            SandboxLaunch::Processes { exe: BIN.into() },
        )
    };
    let report = e2e::run(&opts).await.expect("the benchmark runs");
    let row = |scenario, syncer| {
        report
            .result(scenario, syncer)
            .unwrap_or_else(|| panic!("no row for {scenario:?} {syncer:?}"))
    };
    let table = report.markdown();

    let first = row(Scenario::InitialLoad, Syncer::Daemon);
    assert_eq!((first.created, first.failed), (50, 0), "{table}");
    assert_eq!(first.per_created(), Some(1.0), "{table}");
    assert_eq!(first.too_many_requests, 0, "{table}");

    let steady = row(Scenario::SteadyState, Syncer::Daemon);
    assert_eq!((steady.updated, steady.created), (25, 0), "{table}");
    assert!(steady.per_updated().is_some_and(|c| c <= 1.05), "{table}");
    assert_eq!(steady.per_unchanged(), Some(0.0), "{table}");

    for quiet in [Scenario::NoChange, Scenario::PersonEdits] {
        let r = row(quiet, Syncer::Daemon);
        assert_eq!(
            (r.calls, r.created, r.updated),
            (0, 0, 0),
            "{quiet:?}: {table}"
        );
        assert_eq!(r.per_unchanged(), Some(0.0), "{table}");
    }

    let naive = |s| row(s, Syncer::Naive);
    assert_eq!(naive(Scenario::InitialLoad).created, 50, "{table}");
    assert_eq!(
        naive(Scenario::InitialLoad).per_created(),
        Some(2.0),
        "{table}"
    );
    assert_eq!(naive(Scenario::SteadyState).updated, 25, "{table}");
    assert_eq!(
        naive(Scenario::SteadyState).per_updated(),
        Some(2.0),
        "{table}"
    );
    for s in [
        Scenario::SteadyState,
        Scenario::NoChange,
        Scenario::PersonEdits,
    ] {
        assert_eq!(naive(s).per_unchanged(), Some(1.0), "{s:?}: {table}");
    }
    // The person's edits are not owned fields: the naive syncer leaves them too.
    assert_eq!(naive(Scenario::PersonEdits).updated, 0, "{table}");
    assert!(
        table.contains("| initial load | daemon | 50 / 0 / 0 |"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planner_skips_equal_fingerprints_and_updates_the_changed_ones() {
    let report = planner::run(&PlannerOptions::new(20_000, &server_url()))
        .await
        .expect("the benchmark runs");
    assert_eq!(report.state_rows, 20_000);
    let [unchanged, changed] = &report.runs[..] else {
        panic!("two runs expected: {report:?}");
    };
    assert_eq!(unchanged.count("skip"), 20_000, "{}", report.markdown());
    assert_eq!(unchanged.actions.len(), 1, "{}", report.markdown());
    assert_eq!(changed.count("update"), 200, "{}", report.markdown());
    assert_eq!(changed.count("skip"), 19_800, "{}", report.markdown());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alloy_scan_reads_every_page_and_calls_b2b_for_nothing_unchanged() {
    use b2b_invoice_sync::bench::alloy::{self, AlloyScanOptions};
    let opts = AlloyScanOptions {
        customers: 20,
        ..AlloyScanOptions::new(
            250,
            &server_url(),
            SandboxLaunch::Processes { exe: BIN.into() },
        )
    };
    let report = alloy::run(&opts).await.expect("the benchmark runs");
    let table = report.markdown();
    let load = report.result(0).expect("the initial load");
    assert_eq!((load.created, load.failed), (250, 0), "{table}");
    for index in [1, 2] {
        let scan = report.result(index).expect("a scan");
        assert_eq!(
            (scan.created, scan.updated, scan.unchanged, scan.b2b_calls),
            (0, 0, 250, 0),
            "{table}"
        );
        // 100 + 100 + 50: the short page ends the list; customers come from the cache.
        assert_eq!(scan.erp_requests, 3, "{table}");
        assert_eq!(scan.erp_429s, 0, "{table}");
        assert_eq!(scan.counters.remote_id_lookups, 0, "{table}");
        assert_eq!(scan.counters.clamped_pages, 0, "{table}");
    }
    assert!(
        table.contains("full scan, nothing changed, 150 requests/min"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freshness_updates_every_invoice_within_each_bound_and_a_wider_bound_reads_no_more() {
    use b2b_invoice_sync::bench::freshness::{self, FreshnessOptions};
    // Small: at the default budget (120 a minute) each bound's cycle takes about n / 2 s.
    let n = 12;
    let bounds = [Duration::from_millis(500), Duration::from_secs(10)];
    let opts = FreshnessOptions {
        invoices: n,
        bounds: bounds.to_vec(),
        latency: Duration::from_millis(5),
        jitter: Duration::ZERO,
        database_url: server_url(),
        launch: SandboxLaunch::Processes { exe: BIN.into() },
    };
    let report = freshness::run(&opts).await.expect("the benchmark runs");
    let table = report.markdown();
    assert_eq!(report.results.len(), bounds.len(), "{table}");
    for (result, bound) in report.results.iter().zip(bounds) {
        assert_eq!(result.bound, bound, "{table}");
        assert!(result.failures.is_empty(), "{table}");
        // Every changed invoice updated once, each PUT preceded by a bulk read of its state.
        assert_eq!(result.updated, n as u64, "{table}");
        assert_eq!(result.puts, result.updated, "{table}");
        assert!(result.reads >= 1, "{table}");
        assert!(result.calls >= result.reads + result.puts, "{table}");
        assert!(result.calls_per_update() >= 1.0, "{table}");
        // What the bound promises: no PUT built from state older than the bound.
        let bound_ms = i64::try_from(bound.as_millis()).expect("ms");
        assert!(
            (0..=bound_ms).contains(&result.age_max_ms),
            "{bound:?}: {table}"
        );
        assert!(result.age_p99_ms <= result.age_max_ms, "{table}");
        assert!(result.age_median_ms <= result.age_p99_ms, "{table}");
    }
    // A wider bound groups more updates per read: never more reads than a narrower one.
    assert!(
        report.results[1].reads <= report.results[0].reads,
        "{table}"
    );
}
