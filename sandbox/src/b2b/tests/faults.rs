use std::time::Duration;

use reqwest::StatusCode;

use super::{invoice_body, read, Harness, STORE};
use crate::b2b::{B2bSandboxConfig, ErrorRates, Fault, FaultRule};

#[tokio::test]
async fn apply_then_drop_closes_the_connection_after_creating() {
    let h = Harness::default().await;
    h.control().push_fault(
        FaultRule::once(Fault::ApplyThenDrop)
            .on_method("POST")
            .on_path_containing("/ip/invoices"),
    );
    let error = h
        .authed(h.client.post(h.url("ip/invoices")))
        .json(&invoice_body("DROP-1"))
        .send()
        .await
        .expect_err("no response must arrive");
    assert!(!error.is_timeout(), "{error}");
    assert!(!error.is_status(), "{error}");

    // The invoice exists all the same: the client must find it by externalId, not create twice.
    let found = h
        .authed(h.client.get(h.url("ip/invoices")))
        .query(&[("externalId[]", "ext-DROP-1")])
        .send()
        .await
        .unwrap();
    let (_, body) = read(found).await;
    assert_eq!(body["meta"]["pagination"]["totalCount"], 1);
    assert_eq!(body["data"][0]["invoiceNumber"], "DROP-1");

    let stats = h.control().stats();
    assert_eq!(stats.count("POST /ip/invoices", None), 1);
    assert_eq!(stats.dropped, 1);
    assert!(h.control().pending_faults().is_empty());
}

#[tokio::test]
async fn drop_before_apply_changes_nothing() {
    let h = Harness::default().await;
    h.control()
        .push_fault(FaultRule::once(Fault::DropBeforeApply));
    let sent = h
        .authed(h.client.post(h.url("ip/invoices")))
        .json(&invoice_body("LOST-1"))
        .send()
        .await;
    assert!(sent.is_err(), "no response must arrive");
    assert!(h.control().invoices(STORE).unwrap().is_empty());
}

#[tokio::test]
async fn apply_then_500_applies_and_answers_500() {
    let h = Harness::default().await;
    h.control().push_fault(FaultRule::once(Fault::ApplyThen500));
    let (status, body) = read(h.create(&invoice_body("HALF-1")).await).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["code"], 500);
    assert_eq!(h.control().invoices(STORE).unwrap().len(), 1);
    let (status, body) = read(h.create(&invoice_body("HALF-1")).await).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a blind retry hits the duplicate number"
    );
    assert_eq!(body["data"]["errMsg"], "The invoice number already exists.");
}

#[tokio::test]
async fn status_faults_answer_without_applying() {
    let h = Harness::default().await;
    let control = h.control();
    control.push_fault(FaultRule::once(Fault::Status503));
    control.push_fault(FaultRule::once(Fault::Status429 {
        retry_after_secs: Some(7),
    }));
    control.push_fault(FaultRule::once(Fault::Status429 {
        retry_after_secs: None,
    }));
    control.push_fault(FaultRule::once(Fault::Status500));

    let unavailable = h.create(&invoice_body("F-1")).await;
    assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        unavailable.text().await.unwrap().starts_with("<html>"),
        "503 is not JSON"
    );
    let limited = h.create(&invoice_body("F-1")).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "7");
    let bare = h.create(&invoice_body("F-1")).await;
    assert_eq!(bare.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(bare.headers().get("retry-after").is_none());
    assert_eq!(
        h.create(&invoice_body("F-1")).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert!(control.invoices(STORE).unwrap().is_empty());
    assert_eq!(
        h.create(&invoice_body("F-1")).await.status(),
        StatusCode::OK
    );

    let stats = control.stats();
    assert_eq!((stats.too_many_requests, stats.rate_limited), (2, 0));
}

#[tokio::test(start_paused = true)]
async fn delay_makes_the_client_time_out_but_the_request_still_lands() {
    let h = Harness::default().await;
    h.control()
        .push_fault(FaultRule::once(Fault::Delay { ms: 5_000 }));
    let error = h
        .authed(h.client.post(h.url("ip/invoices")))
        .timeout(Duration::from_secs(1))
        .json(&invoice_body("SLOW-1"))
        .send()
        .await
        .expect_err("the client gives up first");
    assert!(error.is_timeout(), "{error}");
    assert!(
        h.control().invoices(STORE).unwrap().is_empty(),
        "not applied yet"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        h.control().invoices(STORE).unwrap().len(),
        1,
        "applied after the delay"
    );
}

#[tokio::test(start_paused = true)]
async fn latency_is_added_to_every_api_request() {
    let h = Harness::start(B2bSandboxConfig {
        latency: Duration::from_millis(300),
        latency_jitter: Duration::from_millis(100),
        rng_seed: Some(9),
        ..B2bSandboxConfig::default()
    })
    .await;
    let started = tokio::time::Instant::now();
    assert_eq!(h.get("ip/invoices").await.status(), StatusCode::OK);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took <= Duration::from_millis(400),
        "{took:?}"
    );
}

#[tokio::test]
async fn seeded_error_rates_fail_requests() {
    let h = Harness::start(B2bSandboxConfig {
        rng_seed: Some(1),
        ..B2bSandboxConfig::default()
    })
    .await;
    h.control()
        .set_error_rates(ErrorRates {
            status_500: 1.0,
            ..ErrorRates::default()
        })
        .unwrap();
    assert_eq!(
        h.get("ip/invoices").await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    h.control().set_error_rates(ErrorRates::default()).unwrap();
    assert_eq!(h.get("ip/invoices").await.status(), StatusCode::OK);
    let invalid = ErrorRates {
        status_503: 2.0,
        ..ErrorRates::default()
    };
    assert!(h.control().set_error_rates(invalid).is_err());
    assert_eq!(h.control().stats().count("GET /ip/invoices", Some(500)), 1);
}
