//! End-to-end tests of the unified sandbox: a server on port 0 and a plain `reqwest` client,
//! no adapter types.

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use super::*;

const KEY: &str = "key-123";
const CRED: &str = "cred-a";

struct Harness {
    sandbox: RunningUnifiedSandbox,
    client: Client,
}

impl Harness {
    async fn start(config: UnifiedSandboxConfig) -> Self {
        let config = UnifiedSandboxConfig {
            api_key: KEY.to_owned(),
            credential_ids: vec![CRED.to_owned(), "cred-b".to_owned()],
            ..config
        };
        let sandbox = start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap();
        Self {
            sandbox,
            client: Client::new(),
        }
    }

    async fn seeded(count: usize) -> Self {
        Self::start(UnifiedSandboxConfig {
            seed_invoices: count,
            ..UnifiedSandboxConfig::default()
        })
        .await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sandbox.base_url())
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(KEY)
            .query(query)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn list(&self, query: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut all = vec![("credentialId", CRED)];
        all.extend_from_slice(query);
        self.get("accounting/invoices", &all).await
    }

    /// Every page from `after`, following `next`.
    async fn walk(&self, limit: &str, after: Option<&str>) -> Vec<Value> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut query = vec![("limit", limit)];
            if let Some(after) = after {
                query.push(("updatedAfter", after));
            }
            if let Some(cursor) = next.as_deref() {
                query.push(("next", cursor));
            }
            let (status, body) = self.list(&query).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            out.extend(body["invoices"].as_array().unwrap().iter().cloned());
            match body["next"].as_str() {
                Some(cursor) => next = Some(cursor.to_owned()),
                None => return out,
            }
        }
    }
}

fn ids(invoices: &[Value]) -> Vec<String> {
    invoices
        .iter()
        .map(|i| i["remoteId"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[tokio::test]
async fn auth_and_credentials_are_checked_with_json_errors() {
    let h = Harness::seeded(3).await;
    let url = h.url("accounting/invoices?credentialId=cred-a");
    let no_key = h.client.get(&url).send().await.unwrap();
    assert_eq!(no_key.status(), StatusCode::UNAUTHORIZED);
    let body: Value = no_key.json().await.unwrap();
    assert_eq!(body["statusCode"], 401);
    let wrong = h
        .client
        .get(&url)
        .bearer_auth("key-124")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let lower = h
        .client
        .get(&url)
        .header("Authorization", format!("bearer {KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        lower.status(),
        StatusCode::OK,
        "004 writes the scheme `bearer`"
    );

    let (status, body) = h.get("accounting/invoices", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "credentialId is required");
    let (status, body) = h
        .get("accounting/invoices", &[("credentialId", "nope")])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "Credential nope not found");
    let (status, _) = h
        .get("accounting/invoices", &[("credentialId", "cred-b")])
        .await;
    assert_eq!(status, StatusCode::OK);

    let stats = h.sandbox.control().stats();
    assert_eq!(stats.count("GET /accounting/invoices", Some(401)), 2);
    assert_eq!(stats.count("GET /accounting/invoices", Some(400)), 1);
    assert_eq!(stats.count("GET /accounting/invoices", Some(404)), 1);
    let logged: Vec<Option<String>> = h
        .sandbox
        .control()
        .requests()
        .into_iter()
        .map(|r| r.store_hash)
        .collect();
    assert_eq!(logged.last(), Some(&Some("cred-b".to_owned())));
}

#[tokio::test]
async fn pages_are_ordered_and_complete_with_limit_bounds() {
    let h = Harness::seeded(25).await;
    let (status, first) = h.list(&[("limit", "10")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["invoices"].as_array().unwrap().len(), 10);
    assert!(first["next"].is_string());
    let all = h.walk("7", None).await;
    let expected: Vec<String> = (1..=25).map(remote_id).collect();
    assert_eq!(ids(&all), expected);
    let stamps: Vec<&str> = all
        .iter()
        .map(|i| i["remoteUpdatedAt"].as_str().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");
    assert_eq!(h.walk("1000", None).await.len(), 25);

    let (status, default) = h.list(&[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(default["invoices"].as_array().unwrap().len(), 25);
    assert!(default["next"].is_null());
    for bad in ["0", "1001", "x"] {
        let (status, body) = h.list(&[("limit", bad)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (status, _) = h.list(&[("next", "garbage")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn seeds_cover_currencies_lines_and_customers() {
    let h = Harness::seeded(20).await;
    let all = h.walk("100", None).await;
    let currencies: std::collections::BTreeSet<&str> =
        all.iter().filter_map(|i| i["currency"].as_str()).collect();
    for code in ["USD", "EUR", "GBP", "JPY", "KWD", "CAD"] {
        assert!(currencies.contains(code), "{code} in {currencies:?}");
    }
    assert!(all
        .iter()
        .any(|i| i["lineItems"].as_array().is_some_and(|l| l.len() == 3)));
    assert_eq!(all[0]["customerId"], "CUST-00001");
    assert_eq!(all[9]["customerId"], "CUST-00010");
    assert_eq!(all[10]["customerId"], "CUST-00001");
    let again = Harness::seeded(20).await.walk("100", None).await;
    assert_eq!(all, again, "deterministic");
}

#[tokio::test]
async fn updated_after_is_strictly_after() {
    let h = Harness::seeded(10).await;
    let all = h.walk("100", None).await;
    let fifth = all[4]["remoteUpdatedAt"].as_str().unwrap().to_owned();
    let after = h.walk("3", Some(&fifth)).await;
    assert_eq!(ids(&after), ids(&all[5..]));
    let (status, _) = h.list(&[("updatedAfter", "yesterday")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn changes_bump_remote_updated_at_and_move_to_the_end() {
    let h = Harness::seeded(10).await;
    let control = h.sandbox.control();
    let at = control
        .update_invoice(&remote_id(3), &json!({"balance": 1.5, "memo": "changed"}))
        .unwrap();
    control.delete_invoice(&remote_id(4)).unwrap();
    control.void_invoice(&remote_id(5)).unwrap();
    let created = control.create_invoice();
    assert_eq!(created, remote_id(11));
    let all = h.walk("4", None).await;
    let order = ids(&all);
    assert_eq!(order.len(), 11);
    assert_eq!(
        order[7..],
        [remote_id(3), remote_id(4), remote_id(5), remote_id(11)]
    );
    let changed = &all[7];
    assert_eq!(changed["memo"], "changed");
    assert_eq!(changed["balance"], 1.5);
    assert_eq!(
        changed["remoteUpdatedAt"],
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    assert_eq!(all[8]["remoteDeleted"], true);
    assert_eq!(all[9]["invoiceStatus"], "VOIDED");

    // A late commit lands before the others, where a reader's overlap finds it.
    let early = DateTime::parse_from_rfc3339("2026-01-01T00:00:30Z")
        .unwrap()
        .with_timezone(&Utc);
    control
        .update_invoice_at(&remote_id(9), &json!({"memo": "late"}), early)
        .unwrap();
    assert_eq!(
        ids(&h.walk("100", None).await)[..2],
        [remote_id(1), remote_id(9)]
    );

    assert!(matches!(
        control.update_invoice("nope", &json!({})),
        Err(UnifiedSandboxError::UnknownInvoice(_))
    ));
    assert!(matches!(
        control.update_invoice(&remote_id(1), &json!({"remoteId": "x"})),
        Err(UnifiedSandboxError::Invalid(_))
    ));
}

#[tokio::test]
async fn single_invoices_and_malformed_records() {
    let h = Harness::seeded(2).await;
    let control = h.sandbox.control();
    let (status, body) = h
        .get(
            &format!("accounting/invoices/{}", remote_id(2)),
            &[("credentialId", CRED)],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["invoice"]["invoiceNumber"], "INV-000002");
    let (status, body) = h
        .get("accounting/invoices/rmt-999999", &[("credentialId", CRED)])
        .await;
    assert_eq!(
        (status, body["statusCode"].clone()),
        (StatusCode::NOT_FOUND, json!(404))
    );

    let bad_currency = control.insert_malformed(Malformation::BadCurrency);
    let bad_amount = control.insert_malformed(Malformation::NonNumericAmount);
    let junk = control.insert_malformed(Malformation::NotAnObject);
    let raw = control
        .insert_raw(json!({"remoteId": "X-1", "totalAmount": {}}))
        .unwrap();
    assert_eq!(raw, "X-1");
    assert!(control.insert_raw(json!({"remoteId": "X-1"})).is_err());
    assert_eq!(control.invoice(&bad_currency).unwrap()["currency"], "USX");
    assert_eq!(
        control.invoice(&bad_amount).unwrap()["totalAmount"],
        "12O.00"
    );
    assert_eq!(control.invoice(&junk), Some(json!("not an invoice")));
    let all = h.walk("100", None).await;
    assert_eq!(all.len(), 6);
    assert_eq!(all[4], json!("not an invoice"));
    assert_eq!(control.invoice_count(), 6);
}

#[tokio::test]
async fn faults_hit_pages_mid_paging_and_drops_close_the_connection() {
    let h = Harness::seeded(6).await;
    let control = h.sandbox.control();
    let (_, first) = h.list(&[("limit", "2")]).await;
    let cursor = first["next"].as_str().unwrap().to_owned();
    control.push_fault(FaultRule::once(Fault::Status500).on_method("GET"));
    control.push_fault(FaultRule::once(Fault::Status503));
    control.push_fault(FaultRule::once(Fault::Status429 {
        retry_after_secs: Some(2),
    }));
    let query = [("limit", "2"), ("next", cursor.as_str())];
    assert_eq!(h.list(&query).await.0, StatusCode::INTERNAL_SERVER_ERROR);
    let unavailable = h
        .client
        .get(h.url("accounting/invoices"))
        .bearer_auth(KEY)
        .query(&[("credentialId", CRED)])
        .send()
        .await
        .unwrap();
    assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(unavailable.text().await.unwrap().contains("<html>"));
    let limited = h
        .client
        .get(h.url("accounting/invoices"))
        .bearer_auth(KEY)
        .query(&[("credentialId", CRED)])
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "2");
    let (status, second) = h.list(&query).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the cursor still works after faults"
    );
    assert_eq!(
        ids(second["invoices"].as_array().unwrap()),
        [remote_id(3), remote_id(4)]
    );

    control.push_fault(FaultRule::once(Fault::DropBeforeApply));
    let dropped = h
        .client
        .get(h.url("accounting/invoices"))
        .bearer_auth(KEY)
        .query(&[("credentialId", CRED)])
        .send()
        .await;
    assert!(dropped.is_err(), "no response must arrive");
    let stats = control.stats();
    assert_eq!(stats.dropped, 1);
    assert_eq!(stats.count("GET /accounting/invoices", Some(500)), 1);
    assert!(control.pending_faults().is_empty());
}

#[tokio::test]
async fn the_rate_limit_answers_429_per_credential() {
    let h = Harness::start(UnifiedSandboxConfig {
        seed_invoices: 1,
        rate_limit: 2,
        ..UnifiedSandboxConfig::default()
    })
    .await;
    assert_eq!(h.list(&[]).await.0, StatusCode::OK);
    assert_eq!(h.list(&[]).await.0, StatusCode::OK);
    assert_eq!(h.list(&[]).await.0, StatusCode::TOO_MANY_REQUESTS);
    let other = h
        .get("accounting/invoices", &[("credentialId", "cred-b")])
        .await;
    assert_eq!(other.0, StatusCode::OK);
    assert_eq!(h.sandbox.control().stats().rate_limited, 1);
}

#[tokio::test]
async fn renamed_wire_names_are_served() {
    let h = Harness::start(UnifiedSandboxConfig {
        seed_invoices: 3,
        names: SandboxNames {
            invoices_path: "v2/bills".to_owned(),
            credential_param: "connection".to_owned(),
            limit_param: "pageSize".to_owned(),
            cursor_param: "pageToken".to_owned(),
            updated_after_param: "modifiedSince".to_owned(),
            list_field: "data".to_owned(),
            next_field: "nextPageToken".to_owned(),
            single_field: "bill".to_owned(),
        },
        ..UnifiedSandboxConfig::default()
    })
    .await;
    let (status, page) = h
        .get("v2/bills", &[("connection", CRED), ("pageSize", "2")])
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let token = page["nextPageToken"].as_str().unwrap();
    let (_, rest) = h
        .get("v2/bills", &[("connection", CRED), ("pageToken", token)])
        .await;
    assert_eq!(ids(rest["data"].as_array().unwrap()), [remote_id(3)]);
    let (_, one) = h
        .get(
            &format!("v2/bills/{}", remote_id(1)),
            &[("connection", CRED)],
        )
        .await;
    assert_eq!(one["bill"]["remoteId"], remote_id(1));
    assert_eq!(
        h.list(&[]).await.0,
        StatusCode::NOT_FOUND,
        "the default path is gone"
    );
}

#[tokio::test]
async fn http_controls_mirror_the_control_handle() {
    let h = Harness::seeded(3).await;
    let root = |path: &str| format!("http://{}{path}", h.sandbox.addr());
    let post = |path: &str, body: Value| h.client.post(root(path)).json(&body).send();
    let updated: Value = post(
        &format!("/__sandbox/invoices/{}/update", remote_id(1)),
        json!({"patch": {"memo": "via http"}}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(updated["id"], remote_id(1));
    assert!(updated["remote_updated_at"].is_string());
    post(
        &format!("/__sandbox/invoices/{}/void", remote_id(2)),
        json!({}),
    )
    .await
    .unwrap();
    post(
        &format!("/__sandbox/invoices/{}/delete", remote_id(3)),
        json!({}),
    )
    .await
    .unwrap();
    let malformed: Value = post("/__sandbox/invoices/malformed", json!({"kind": "bad_date"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let created: Value = post("/__sandbox/invoices/create", json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let raw: Value = post("/__sandbox/invoices/raw", json!({"remoteId": "R-1"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["id"], "R-1");
    let missing = post("/__sandbox/invoices/nope/void", json!({}))
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let control = h.sandbox.control();
    assert_eq!(control.invoice(&remote_id(1)).unwrap()["memo"], "via http");
    assert_eq!(
        control.invoice(&remote_id(2)).unwrap()["invoiceStatus"],
        "VOIDED"
    );
    assert_eq!(
        control.invoice(&remote_id(3)).unwrap()["remoteDeleted"],
        true
    );
    let bad = malformed["id"].as_str().unwrap();
    assert_eq!(control.invoice(bad).unwrap()["issueDate"], "2026-02-30");
    assert!(control.invoice(created["id"].as_str().unwrap()).is_some());
    let fetched: Value = h
        .client
        .get(root(&format!("/__sandbox/invoices/{}", remote_id(1))))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["memo"], "via http");

    post(
        "/__sandbox/faults",
        json!({"fault": {"kind": "Status500"}, "count": 2}),
    )
    .await
    .unwrap();
    assert_eq!(control.pending_faults().len(), 1);
    h.client
        .delete(root("/__sandbox/faults"))
        .send()
        .await
        .unwrap();
    assert!(control.pending_faults().is_empty());
    let stats: Value = h
        .client
        .get(root("/__sandbox/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["total"], 0, "controls are not counted");
}

#[tokio::test]
async fn a_huge_seed_costs_nothing_until_changed() {
    let h = Harness::seeded(1_000_000).await;
    let control = h.sandbox.control();
    assert_eq!(control.invoice_count(), 1_000_000);
    let last = control.invoice(&remote_id(1_000_000)).unwrap();
    let after = last["remoteUpdatedAt"].as_str().unwrap().to_owned();
    control
        .update_invoice(&remote_id(500_000), &json!({"memo": "x"}))
        .unwrap();
    let tail = h.walk("1000", Some(&after)).await;
    assert_eq!(ids(&tail), [remote_id(500_000)]);
    let (_, page) = h
        .list(&[("limit", "3"), ("updatedAfter", "2026-01-01T00:01:30Z")])
        .await;
    assert_eq!(
        ids(page["invoices"].as_array().unwrap()),
        [remote_id(3), remote_id(4), remote_id(5)]
    );
}

#[tokio::test]
async fn invalid_configs_are_refused() {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let bad = |change: fn(&mut UnifiedSandboxConfig)| {
        let mut config = UnifiedSandboxConfig::default();
        change(&mut config);
        config
    };
    for config in [
        bad(|c| c.api_key = String::new()),
        bad(|c| c.credential_ids.clear()),
        bad(|c| c.names.invoices_path = "a//b".to_owned()),
        bad(|c| c.names.invoices_path = "a/{id}".to_owned()),
        bad(|c| c.names.limit_param = "next".to_owned()),
        bad(|c| c.default_limit = 0),
        bad(|c| c.seed_spacing = Duration::ZERO),
    ] {
        assert!(start(config, addr).await.is_err());
    }
    let debug = format!("{:?}", UnifiedSandboxConfig::default());
    assert!(!debug.contains(DEFAULT_API_KEY), "{debug}");
}
