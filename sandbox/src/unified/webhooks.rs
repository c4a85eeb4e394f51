//! Alloy's webhook forwarding, as far as the sandbox needs it: `POST /webhooks {address, topic}`
//! subscribes, `GET /webhooks` lists, and every change of an invoice (`accounting/invoices`)
//! is POSTed to each subscribed address, in the background, as
//! `{"id", "topic", "event": "updated", "timestamp", "data": {"id", "remoteId"}}` (Alloy's
//! documentation gives the subscription call and its topics; the event body here carries the
//! invoice's two ids, all a receiver needs to read it back).
//!
//! `lose_webhooks(true)` drops deliveries (a webhook lost on the way), counted apart.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::control::UnifiedSandboxControl;
use super::state::lock;

pub const INVOICES_TOPIC: &str = "accounting/invoices";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub address: String,
    pub topic: String,
}

#[derive(Debug, Default)]
pub(crate) struct Webhooks {
    pub subscriptions: Vec<Subscription>,
    pub lose: bool,
    pub sent: u64,
    pub lost: u64,
}

/// The events one change sends: the subscriptions to `topic`, none while deliveries are lost.
pub(crate) fn deliver(control: &UnifiedSandboxControl, alloy_id: &str, remote_id: &str) {
    let targets: Vec<String> = {
        let mut w = lock(&control.shared.webhooks);
        let targets: Vec<String> = w
            .subscriptions
            .iter()
            .filter(|s| s.topic == INVOICES_TOPIC)
            .map(|s| s.address.clone())
            .collect();
        if w.lose {
            w.lost += targets.len() as u64;
            return;
        }
        w.sent += targets.len() as u64;
        targets
    };
    if targets.is_empty() {
        return;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let body = json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "topic": INVOICES_TOPIC,
        "event": "updated",
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "data": { "id": alloy_id, "remoteId": remote_id },
    });
    for address in targets {
        let body = body.clone();
        handle.spawn(async move {
            let sent = reqwest::Client::new()
                .post(&address)
                .json(&body)
                .timeout(std::time::Duration::from_secs(10))
                .send()
                .await;
            if let Err(e) = sent {
                tracing::debug!(error = %e, "sandbox webhook delivery failed");
            }
        });
    }
}

fn authorized(control: &UnifiedSandboxControl, headers: &HeaderMap) -> bool {
    super::pipeline::authorized(&control.shared, headers)
}

pub(crate) async fn subscribe(
    State(control): State<UnifiedSandboxControl>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&control, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Unauthorized"})),
        )
            .into_response();
    }
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let (Some(address), Some(topic)) = (text("address"), text("topic")) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "address and topic are required"})),
        )
            .into_response();
    };
    let sub = Subscription {
        id: uuid::Uuid::new_v4().to_string(),
        address,
        topic,
    };
    lock(&control.shared.webhooks)
        .subscriptions
        .push(sub.clone());
    (StatusCode::OK, Json(json!({ "subscription": sub }))).into_response()
}

pub(crate) async fn list(
    State(control): State<UnifiedSandboxControl>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&control, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Unauthorized"})),
        )
            .into_response();
    }
    let subs = lock(&control.shared.webhooks).subscriptions.clone();
    (StatusCode::OK, Json(json!({ "subscriptions": subs }))).into_response()
}
