//! Prometheus metrics through the `metrics` facade. Library code records with the `metrics`
//! macros (a no-op until a recorder is installed); `run` installs the Prometheus recorder and
//! serves its text at `/metrics`. Names follow Prometheus conventions (`_total`, `_seconds`).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const CYCLES: &str = "b2bsync_cycles_total";
pub const CYCLE_DURATION: &str = "b2bsync_cycle_duration_seconds";
pub const INVOICES: &str = "b2bsync_invoices_total";
pub const B2B_REQUESTS: &str = "b2bsync_b2b_requests_total";
pub const B2B_RATE_LIMITED: &str = "b2bsync_b2b_rate_limited_total";
pub const B2B_REQUEST_DURATION: &str = "b2bsync_b2b_request_duration_seconds";
/// Requests to a source's ERP (Unified, Rebillia) by HTTP status (or timeout / transport).
pub const ERP_REQUESTS: &str = "b2bsync_erp_requests_total";
/// 429 answers from a source's ERP.
pub const ERP_RATE_LIMITED: &str = "b2bsync_erp_rate_limited_total";
/// Latency of one ERP request (the request alone, not the wait for the source's budget).
pub const ERP_REQUEST_DURATION: &str = "b2bsync_erp_request_duration_seconds";
pub const BUDGET_RPM: &str = "b2bsync_budget_requests_per_minute";
pub const BUDGET_GRANTED: &str = "b2bsync_budget_granted_total";
pub const BUDGET_IN_FLIGHT: &str = "b2bsync_budget_in_flight";
pub const FAILURES_PENDING: &str = "b2bsync_failures_pending";
pub const DEAD_LETTERS: &str = "b2bsync_dead_letters";
pub const LEDGER_IN_FLIGHT: &str = "b2bsync_ledger_in_flight";
pub const LAST_SUCCESS: &str = "b2bsync_last_success_timestamp_seconds";
/// Seconds since the source's last cycle that completed (since the daemon started, if none).
pub const LAST_SUCCESS_AGE: &str = "b2bsync_last_success_age_seconds";
/// Age of the oldest ERP change not yet in B2B (0 when B2B is in step).
pub const OLDEST_UNSYNCED_AGE: &str = "b2bsync_oldest_unsynced_change_age_seconds";
/// Stores whose lease this replica holds.
pub const STORE_LEASES: &str = "b2bsync_store_leases";
/// Store leases this replica took over from another holder.
pub const STORE_LEASE_MOVES: &str = "b2bsync_store_lease_moves_total";
/// Always 1, labelled with the version (for dashboards and "which build runs" alerts).
pub const BUILD_INFO: &str = "b2bsync_build_info";
/// How old the B2B state an update was built from was when its `PUT` went out.
pub const UPDATE_STATE_AGE: &str = "b2bsync_update_state_age_seconds";
pub const PAYMENTS_DETECTED: &str = "b2bsync_payments_detected_total";
pub const PAYMENTS_WRITTEN: &str = "b2bsync_payments_written_total";
pub const PAYMENTS_FAILED: &str = "b2bsync_payments_failed_total";
pub const PAYMENTS_PENDING: &str = "b2bsync_payments_pending";
pub const PAYMENTS_STUCK: &str = "b2bsync_payments_stuck";
pub const RECORDS_REFUSED: &str = "b2bsync_records_refused_total";
pub const REFUSED_RECORDS: &str = "b2bsync_refused_records";
/// Requests to the trigger endpoint and the webhook receiver, by `kind` and `result`.
pub const TRIGGERS: &str = "b2bsync_triggers_total";
/// Differences the latest `reconcile` of a source found, by kind.
pub const RECONCILE_DIFFERENCES: &str = "b2bsync_reconcile_differences";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder once per process and returns its handle.
pub fn install() -> Result<PrometheusHandle, String> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let request_buckets = [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
    let cycle_buckets = [0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 3600.0];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(B2B_REQUEST_DURATION.to_owned()),
            &request_buckets,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(ERP_REQUEST_DURATION.to_owned()),
                &request_buckets,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(CYCLE_DURATION.to_owned()), &cycle_buckets)
        })
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())?;
    describe();
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    collect_process();
    Ok(HANDLE.get_or_init(|| handle).clone())
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        CYCLES,
        "Sync cycles by source and outcome (ok, partial, failed, skipped, stopped)"
    );
    describe_histogram!(CYCLE_DURATION, Unit::Seconds, "Duration of sync cycles");
    describe_counter!(INVOICES, "Invoices handled, by source, action (create, update, delete, skip, recover, fail) and outcome");
    describe_counter!(
        B2B_REQUESTS,
        "Requests to B2B Edition by store, endpoint and HTTP status (or timeout/transport)"
    );
    describe_counter!(B2B_RATE_LIMITED, "429 answers from B2B Edition by store");
    describe_histogram!(
        B2B_REQUEST_DURATION,
        Unit::Seconds,
        "Latency of B2B Edition requests"
    );
    describe_counter!(
        ERP_REQUESTS,
        "Requests to a source's ERP by source and HTTP status (or timeout/transport)"
    );
    describe_counter!(
        ERP_RATE_LIMITED,
        "429 answers from a source's ERP by source"
    );
    describe_histogram!(
        ERP_REQUEST_DURATION,
        Unit::Seconds,
        "Latency of ERP requests (the request alone, not the wait for the budget)"
    );
    describe_gauge!(
        BUDGET_RPM,
        "Configured request budget per store (requests per minute)"
    );
    describe_counter!(BUDGET_GRANTED, "Requests the store's budget let through");
    describe_gauge!(BUDGET_IN_FLIGHT, "Requests to the store in flight now");
    describe_gauge!(
        FAILURES_PENDING,
        "Invoices failed and waiting for a retry, by source"
    );
    describe_gauge!(DEAD_LETTERS, "Invoices in the dead letter, by source");
    describe_counter!(
        PAYMENTS_DETECTED,
        "B2B payment lines (and refunds) of a source's invoices seen, by source and kind"
    );
    describe_counter!(
        PAYMENTS_WRITTEN,
        "Payment events written back to the ERP, by source and kind"
    );
    describe_counter!(
        PAYMENTS_FAILED,
        "Failed payment write-backs (refused, unreachable, unknown outcome), by source"
    );
    describe_gauge!(
        PAYMENTS_PENDING,
        "Payment events not yet written back to the ERP, by source"
    );
    describe_gauge!(
        PAYMENTS_STUCK,
        "Payment write-backs that need a person (dead or unknown outcome), by source"
    );
    describe_counter!(
        RECORDS_REFUSED,
        "ERP records refused as they were read (invalid, malformed or beyond the limits), by source"
    );
    describe_gauge!(
        REFUSED_RECORDS,
        "Refused ERP records listed by `failures list` (not yet sent again right), by source"
    );
    describe_gauge!(
        LEDGER_IN_FLIGHT,
        "Mutations whose outcome is not settled yet, by source"
    );
    describe_gauge!(
        LAST_SUCCESS,
        Unit::Seconds,
        "Unix time of the source's last cycle that completed (ok or partial)"
    );
    describe_gauge!(
        LAST_SUCCESS_AGE,
        Unit::Seconds,
        "Seconds since the source's last cycle that completed (since the daemon started, if none)"
    );
    describe_gauge!(
        OLDEST_UNSYNCED_AGE,
        Unit::Seconds,
        "Age of the oldest ERP change not yet in B2B: failed, dead or flagged invoices and mutations in flight (0 when in step)"
    );
    describe_gauge!(BUILD_INFO, "Always 1; the version in a label");
    describe_gauge!(
        STORE_LEASES,
        "Stores whose lease this replica holds (it works exactly those), by replica"
    );
    describe_counter!(
        STORE_LEASE_MOVES,
        "Store leases this replica took over from another holder (a replica died, left or handed it over)"
    );
    describe_counter!(
        TRIGGERS,
        "Trigger (kind=api) and webhook (kind=webhook) requests, by result"
    );
    describe_gauge!(
        RECONCILE_DIFFERENCES,
        "Differences between ERP and B2B the latest reconcile of the source found, by kind"
    );
    describe_histogram!(
        UPDATE_STATE_AGE,
        Unit::Seconds,
        "How old the B2B state an update was built from was when its PUT went out"
    );
}

/// Process metrics (CPU, resident memory, open file descriptors, threads, start time) in the
/// standard `process_*` names, refreshed at each scrape.
pub fn collect_process() {
    process_collector().collect();
}

fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(|| {
        let collector = metrics_process::Collector::default();
        collector.describe();
        collector
    })
}
