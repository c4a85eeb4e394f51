//! The store-wide request budget against the sandbox's real rate limit, on a paused tokio clock:
//! both sides read the same virtual time, so minutes of traffic take milliseconds to test.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;

use b2b_invoice_sync::b2b::B2bClient;
use b2b_invoice_sync::config::BudgetSettings;
use b2b_invoice_sync::sandbox::b2b::{B2bSandboxConfig, Fault, FaultRule};

use crate::helpers::*;

fn budget(rpm: u32, burst: u32, concurrent: usize) -> BudgetSettings {
    BudgetSettings {
        requests_per_minute: NonZeroU32::new(rpm).expect("non-zero"),
        burst: NonZeroU32::new(burst).expect("non-zero"),
        max_concurrent: NonZeroUsize::new(concurrent).expect("non-zero"),
        default_retry_after: Duration::from_secs(60),
    }
}

fn patient_client(base_url: &str, budget: BudgetSettings) -> B2bClient {
    let mut settings = store_settings(base_url, Auth::XAuthToken, budget, fast_retry());
    // Virtual time jumps ahead while every task waits, so keep request timeouts out of the way.
    settings.b2b.request_timeout = Duration::from_secs(24 * 3600);
    client_from(&settings)
}

#[tokio::test(start_paused = true)]
async fn a_budget_of_120_per_minute_makes_300_calls_against_150_per_minute_without_a_429() {
    let sandbox = spawn_sandbox(B2bSandboxConfig {
        rate_limit: 150,
        rate_window: Duration::from_secs(60),
        seed_invoices: 5,
        ..B2bSandboxConfig::default()
    })
    .await;
    let client = Arc::new(patient_client(&sandbox.base_url(), budget(120, 4, 4)));
    let started = Instant::now();
    let results: Vec<_> = futures::stream::iter(0..300)
        .map(|i| {
            let client = client.clone();
            async move { client.get_invoice(1 + (i % 5)).await }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let elapsed = started.elapsed();

    assert!(results.iter().all(Result::is_ok), "every call succeeds");
    let stats = sandbox.control().stats();
    assert_eq!(stats.too_many_requests, 0, "{stats:?}");
    assert_eq!(stats.total, 300, "no retries were needed");
    // 4 at once, then one every 0.5 s: the 300th call cannot start before 148 s.
    assert!(elapsed >= Duration::from_secs(148), "took only {elapsed:?}");
    assert_eq!(client.budget().stats().granted, 300);
}

#[tokio::test(start_paused = true)]
async fn an_unbudgeted_burst_meets_429s_and_still_gets_every_call_through() {
    // The control for the test above: the sandbox's limit is real, and a 429 pauses and retries.
    let sandbox = spawn_sandbox(B2bSandboxConfig {
        rate_limit: 150,
        seed_invoices: 1,
        ..B2bSandboxConfig::default()
    })
    .await;
    let client = Arc::new(patient_client(
        &sandbox.base_url(),
        budget(600_000, 1000, 8),
    ));
    let results: Vec<_> = futures::stream::iter(0..200)
        .map(|_| {
            let client = client.clone();
            async move { client.get_invoice(1).await }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(
        results.iter().all(Result::is_ok),
        "every call succeeds after the pause"
    );
    let stats = sandbox.control().stats();
    assert!(stats.rate_limited > 0, "{stats:?}");
    assert!(client.budget().stats().pauses >= 1);
}

#[tokio::test(start_paused = true)]
async fn a_429_with_retry_after_pauses_every_concurrent_caller() {
    let sandbox = spawn_sandbox(B2bSandboxConfig {
        rate_limit: 1_000_000,
        seed_invoices: 4,
        ..B2bSandboxConfig::default()
    })
    .await;
    let control = sandbox.control();
    let client = Arc::new(patient_client(&sandbox.base_url(), budget(150, 4, 4)));
    // Warm up, then the fifth request meets a 429 asking for 20 s.
    for id in 1..=4 {
        client.get_invoice(id).await.expect("warm-up");
    }
    control.push_fault(FaultRule::once(Fault::Status429 {
        retry_after_secs: Some(20),
    }));

    let workers: Vec<_> = (0..4u64)
        .map(|w| {
            let client = client.clone();
            tokio::spawn(async move {
                for i in 0..5 {
                    client.get_invoice(1 + (w + i) % 4).await?;
                }
                Ok::<_, b2b_invoice_sync::b2b::B2bError>(())
            })
        })
        .collect();
    for w in workers {
        w.await
            .expect("worker")
            .expect("every call succeeds after the pause");
    }

    let log = control.requests();
    let limited: Vec<_> = log.iter().filter(|r| r.status == Some(429)).collect();
    assert_eq!(limited.len(), 1, "{log:?}");
    let t429 = limited[0].at;
    // Requests already on the wire when the 429 was answered arrive with it; after that,
    // nothing reaches the store until Retry-After has passed, from any of the four callers.
    let early: Vec<_> = log
        .iter()
        .filter(|r| {
            r.at > t429 + Duration::from_millis(50) && r.at < t429 + Duration::from_secs(20)
        })
        .collect();
    assert!(early.is_empty(), "requests during the pause: {early:?}");
    let after = log
        .iter()
        .filter(|r| r.at >= t429 + Duration::from_secs(20))
        .count();
    assert!(
        after >= 14,
        "the remaining calls ran after the pause ({after})"
    );
    assert_eq!(client.budget().stats().pauses, 1);
}

#[tokio::test(start_paused = true)]
async fn a_429_on_create_is_retried_after_the_pause_and_creates_once() {
    let sandbox = spawn_unlimited_sandbox(0).await;
    let control = sandbox.control();
    let client = patient_client(&sandbox.base_url(), budget(150, 4, 4));
    control.push_fault(
        FaultRule::once(Fault::Status429 {
            retry_after_secs: None,
        })
        .on_method("POST"),
    );
    let started = Instant::now();
    let id = client
        .create_invoice(&new_invoice("RL-1"))
        .await
        .expect("created after the 429");
    // No Retry-After: the configured default pause of 60 s applies.
    assert!(
        started.elapsed() >= Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(control.invoices(STORE_HASH).expect("invoices").len(), 1);
    assert_eq!(
        client.get_invoice(id).await.expect("get").invoice_number,
        "RL-1"
    );
}
