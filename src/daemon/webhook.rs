//! `POST /v1/webhooks/alloy/{source}`: Alloy's webhook forwarding for `accounting/invoices`.
//!
//! Alloy's Unified API documents a subscription as `{address, topic}` and an RSA signature
//! (`X-Alloy-Signature`) made with a key of Alloy's that this daemon has no copy of; so a shared
//! secret authenticates the calls instead, configured on both sides: the address registered
//! with Alloy (`webhooks register`) ends with it (`/v1/webhooks/alloy/{source}/{secret}`), or a
//! proxy in front adds it as the `X-Webhook-Secret` header. Compared in constant time; 401 and
//! nothing synced when it is wrong.
//!
//! A body over `daemon.webhook_max_body_bytes` is refused with 413. An event whose `id` (or,
//! without one, whose exact body) was taken within `daemon.webhook_replay_window_secs` is a
//! replay: answered 200, nothing done; an event whose `timestamp` is older than the window is
//! refused (400). The invoices an event names (`data.remoteId`, the ERP id; `data` may be a
//! list) go to the source's loop, which reads them by id and syncs them at once (coalesced:
//! however many events arrive during a turn make one more turn). An event naming no ERP id
//! asks for a full cycle. Webhooks are a hint: the scheduled cycle still reads everything.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::api::{count, same_secret, unauthorized, unknown_source, Api, Forwarded};

/// The one topic the receiver acts on.
pub const TOPIC: &str = "accounting/invoices";
/// Event ids remembered at most (the oldest go first).
const MAX_REMEMBERED: usize = 100_000;

/// Event keys by when they were taken, and the same in order of arrival.
type Seen = (HashMap<String, Instant>, VecDeque<(String, Instant)>);

/// Event ids seen recently.
#[derive(Debug)]
pub struct Replays {
    window: Duration,
    seen: Mutex<Seen>,
}

impl Replays {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            seen: Mutex::default(),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// True the first time `key` is seen within the window.
    pub fn first(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut guard = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *guard;
        while let Some((k, at)) = order.front() {
            if now.duration_since(*at) <= self.window && order.len() < MAX_REMEMBERED {
                break;
            }
            if map.get(k) == Some(at) {
                map.remove(k);
            }
            order.pop_front();
        }
        if map.contains_key(key) {
            return false;
        }
        map.insert(key.to_owned(), now);
        order.push_back((key.to_owned(), now));
        true
    }
}

pub(super) async fn receive(
    State(api): State<Api>,
    Path(source): Path<String>,
    request: Request,
) -> Response {
    let header = request
        .headers()
        .get("x-webhook-secret")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    handle(api, source, header, request.into_body()).await
}

pub(super) async fn receive_with_secret(
    State(api): State<Api>,
    Path((source, secret)): Path<(String, String)>,
    request: Request,
) -> Response {
    handle(api, source, Some(secret), request.into_body()).await
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

async fn handle(api: Api, source: String, secret: Option<String>, body: Body) -> Response {
    let Some(expected) = api.webhook_secret() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !secret.is_some_and(|s| !s.is_empty() && same_secret(expected, &s)) {
        tracing::warn!(source = %source, "webhook refused: missing or wrong secret");
        count("webhook", "unauthorized");
        return unauthorized("X-Webhook-Secret");
    }
    let Ok(bytes) = axum::body::to_bytes(body, api.max_body()).await else {
        count("webhook", "too_large");
        return answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"error": format!("the body is over {} bytes", api.max_body())}),
        );
    };
    let Some(trigger) = api.triggers().get(&source) else {
        count("webhook", "unknown_source");
        return unknown_source(&source);
    };
    let Ok(event) = serde_json::from_slice::<Value>(&bytes) else {
        count("webhook", "bad_request");
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"error": "the body is not JSON"}),
        );
    };
    let topic = event.get("topic").and_then(Value::as_str).unwrap_or(TOPIC);
    if topic != TOPIC {
        count("webhook", "other_topic");
        return answer(StatusCode::OK, json!({"ignored": "topic", "topic": topic}));
    }
    let replays = api.replays();
    if let Some(at) = event
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
    {
        let age = Utc::now() - at.with_timezone(&Utc);
        let window = chrono::Duration::from_std(replays.window()).unwrap_or_default();
        if age > window || -age > window {
            tracing::warn!(source = %source, timestamp = %at, "webhook refused: outside the replay window");
            count("webhook", "stale");
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"error": "the event's timestamp is outside the replay window"}),
            );
        }
    }
    let key = match event.get("id").and_then(Value::as_str) {
        Some(id) => format!("id:{id}"),
        None => format!("body:{}", hex::encode(Sha256::digest(&bytes))),
    };
    if !replays.first(&key) {
        count("webhook", "replay");
        return answer(StatusCode::OK, json!({"ignored": "replay"}));
    }
    let ids = remote_ids(&event);
    let here = if ids.is_empty() {
        trigger.request_cycle() != super::trigger::Requested::NotHere
    } else {
        trigger.request_invoices(ids.clone())
    };
    if !here {
        let request = Forwarded {
            source: source.clone(),
            invoices: ids.clone(),
        };
        if let Err(e) = api.forward(&request).await {
            tracing::warn!(source = %source, error = %e, "could not forward a webhook to the store's replica");
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "cannot hand the event to the replica holding the store"}),
            );
        }
    }
    count("webhook", if here { "taken" } else { "forwarded" });
    tracing::info!(source = %source, invoices = ids.len(), "webhook taken");
    answer(
        StatusCode::ACCEPTED,
        json!({"source": source, "invoices": ids.len(), "forwarded": !here}),
    )
}

/// The ERP ids (`remoteId`) an event's `data` names (an object or a list of them).
fn remote_ids(event: &Value) -> Vec<String> {
    let one = |v: &Value| {
        v.get("remoteId").and_then(|r| match r {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    match event.get("data") {
        Some(Value::Array(items)) => items.iter().filter_map(one).collect(),
        Some(data) => one(data).into_iter().collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_taken_once_within_the_window() {
        let r = Replays::new(Duration::from_secs(60));
        assert!(r.first("id:a"));
        assert!(!r.first("id:a"));
        assert!(r.first("id:b"));
    }

    #[test]
    fn the_named_invoices_are_the_remote_ids() {
        assert_eq!(
            remote_ids(&json!({"data": {"id": "u1", "remoteId": "INV-1"}})),
            ["INV-1"]
        );
        assert_eq!(
            remote_ids(&json!({"data": [{"remoteId": "A"}, {"id": "x"}, {"remoteId": 7}]})),
            ["A", "7"]
        );
        assert!(remote_ids(&json!({"data": {"id": "u1"}})).is_empty());
    }
}
