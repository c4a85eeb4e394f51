use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use super::{read, Harness, STORE};
use crate::b2b::B2bSandboxConfig;

#[tokio::test]
async fn wrong_missing_or_mixed_credentials_are_401() {
    let h = Harness::default().await;
    let wrong = h
        .client
        .get(h.url("ip/invoices"))
        .header("X-Auth-Token", "guessed-token")
        .header("X-Store-Hash", STORE)
        .send()
        .await
        .unwrap();
    let (status, body) = read(wrong).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], 401);
    assert_eq!(body["meta"], json!({"message": "Unauthorized"}));
    assert!(body["data"]["errMsg"].is_string());
    assert!(
        !body.to_string().contains("guessed-token"),
        "tokens are never echoed"
    );

    let both = h
        .authed(h.client.get(h.url("ip/invoices")))
        .header("authToken", "sandbox-legacy-token")
        .send()
        .await
        .unwrap();
    assert_eq!(
        both.status(),
        StatusCode::UNAUTHORIZED,
        "both auth styles at once are refused"
    );

    let none = h.client.get(h.url("ip/invoices")).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);

    let legacy = h
        .client
        .get(h.url("ip/invoices"))
        .header("authToken", "sandbox-legacy-token")
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status(), StatusCode::OK);

    let stats = h.control().stats();
    assert_eq!(stats.count("GET /ip/invoices", Some(401)), 3);
    let requests = h.control().requests();
    assert_eq!(requests[0].store_hash, None);
    assert_eq!(requests[3].store_hash.as_deref(), Some(STORE));
}

#[tokio::test(start_paused = true)]
async fn full_window_answers_429_with_retry_after_until_it_resets() {
    let h = Harness::start(B2bSandboxConfig {
        rate_limit: 3,
        ..B2bSandboxConfig::default()
    })
    .await;
    for _ in 0..3 {
        assert_eq!(h.get("ip/invoices").await.status(), StatusCode::OK);
    }
    // Neither the controls nor unauthenticated requests use the budget.
    assert!(h
        .client
        .get(h.root("/__sandbox/stats"))
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    assert_eq!(
        h.client
            .get(h.url("ip/invoices"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );

    tokio::time::advance(Duration::from_secs(20)).await;
    let limited = h.get("ip/invoices/1").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "40");
    let (_, body) = read(limited).await;
    assert_eq!(
        body,
        json!({"code": 429, "data": {"errMsg": "Too many requests"}, "meta": {"message": "Too Many Requests"}})
    );

    tokio::time::advance(Duration::from_millis(39_500)).await;
    let still = h.get("ip/invoices").await;
    assert_eq!(still.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(still.headers()["retry-after"], "1", "rounded up, never 0");

    tokio::time::advance(Duration::from_millis(500)).await;
    assert_eq!(
        h.get("ip/invoices").await.status(),
        StatusCode::OK,
        "a new window opened"
    );

    let stats = h.control().stats();
    assert_eq!(stats.rate_limited, 2);
    assert_eq!(stats.too_many_requests, 2);
    assert_eq!(stats.count("GET /ip/invoices/{id}", Some(429)), 1);
}

#[tokio::test(start_paused = true)]
async fn rate_limit_can_be_changed_at_run_time() {
    let h = Harness::default().await;
    h.control().set_rate_limit(1, Duration::from_secs(10));
    assert_eq!(h.get("companies").await.status(), StatusCode::OK);
    let limited = h.get("companies").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "10");
}
