//! The test controls every fake offers over HTTP, under `/__sandbox/`: no auth, not rate
//! limited, not counted. Each handler only decodes JSON and calls the matching [`Control`]
//! method; a fake merges its own controls (see its `admin` module) with these.
//!
//! - `PUT /__sandbox/latency` `{"fixed_ms": 100, "jitter_ms": 50}`
//! - `PUT /__sandbox/error-rates` `{"status_500": 0.1, "status_503": 0.05, "status_429": 0}`
//! - `POST /__sandbox/faults` with one rule or a list, e.g.
//!   `{"method": "PUT", "path_contains": "/ip/invoices/", "fault": {"kind": "ApplyThenDrop"}, "count": 1}`;
//!   `GET` lists the pending rules, `DELETE` clears them
//! - `PUT /__sandbox/rate-limit` `{"limit": 150, "window_ms": 60000}` (limit 0: unlimited;
//!   only fakes that model a rate limit)
//! - `GET /__sandbox/stats`, `GET /__sandbox/requests`, `POST /__sandbox/reset-stats`
//!
//! Errors answer `{"error": "..."}`; changes without an answer of their own `{"ok": true}`.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use super::{Control, ControlError, Fake};
use crate::faults::{ErrorRates, FaultRule};

/// A control request that could not be carried out: `{"error": "..."}`.
pub(crate) struct AdminError(pub StatusCode, pub String);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl<E: ControlError> From<E> for AdminError {
    fn from(error: E) -> Self {
        Self(error.status(), error.to_string())
    }
}

pub(crate) type AdminResult = Result<Response, AdminError>;

/// A JSON body, or a 400 naming what is wrong with it.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    serde_json::from_slice(body)
        .map_err(|err| AdminError(StatusCode::BAD_REQUEST, format!("invalid JSON body: {err}")))
}

/// `{"ok": true}`.
pub(crate) fn ok() -> AdminResult {
    Ok(Json(json!({ "ok": true })).into_response())
}

/// A value as JSON.
pub(crate) fn json<T: serde::Serialize>(value: T) -> AdminResult {
    Ok(Json(value).into_response())
}

/// The controls of the harness, for any fake.
pub(crate) fn routes<F: Fake>() -> Router<Control<F>> {
    let routes = Router::new()
        .route("/__sandbox/latency", put(set_latency::<F>))
        .route("/__sandbox/error-rates", put(set_error_rates::<F>))
        .route(
            "/__sandbox/faults",
            post(push_faults::<F>)
                .get(pending_faults::<F>)
                .delete(clear_faults::<F>),
        )
        .route("/__sandbox/stats", get(stats::<F>))
        .route("/__sandbox/requests", get(requests::<F>))
        .route("/__sandbox/reset-stats", post(reset_stats::<F>));
    if F::RATE_LIMITED {
        routes.route("/__sandbox/rate-limit", put(set_rate_limit::<F>))
    } else {
        routes
    }
}

#[derive(Deserialize)]
struct LatencyBody {
    #[serde(default)]
    fixed_ms: u64,
    #[serde(default)]
    jitter_ms: u64,
}

async fn set_latency<F: Fake>(State(control): State<Control<F>>, body: Bytes) -> AdminResult {
    let body: LatencyBody = decode(&body)?;
    control.set_latency(
        Duration::from_millis(body.fixed_ms),
        Duration::from_millis(body.jitter_ms),
    );
    ok()
}

async fn set_error_rates<F: Fake>(State(control): State<Control<F>>, body: Bytes) -> AdminResult {
    control.set_error_rates(decode::<ErrorRates>(&body)?)?;
    ok()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<FaultRule>),
    One(FaultRule),
}

async fn push_faults<F: Fake>(State(control): State<Control<F>>, body: Bytes) -> AdminResult {
    let rules = match decode::<OneOrMany>(&body)? {
        OneOrMany::Many(rules) => rules,
        OneOrMany::One(rule) => vec![rule],
    };
    for rule in rules {
        control.push_fault(rule);
    }
    ok()
}

async fn pending_faults<F: Fake>(State(control): State<Control<F>>) -> AdminResult {
    json(control.pending_faults())
}

async fn clear_faults<F: Fake>(State(control): State<Control<F>>) -> AdminResult {
    control.clear_faults();
    ok()
}

#[derive(Deserialize)]
struct RateLimitBody {
    limit: u32,
    #[serde(default = "default_window_ms")]
    window_ms: u64,
}

fn default_window_ms() -> u64 {
    60_000
}

async fn set_rate_limit<F: Fake>(State(control): State<Control<F>>, body: Bytes) -> AdminResult {
    let body: RateLimitBody = decode(&body)?;
    if body.window_ms == 0 {
        return Err(AdminError(
            StatusCode::BAD_REQUEST,
            "window_ms must be positive".into(),
        ));
    }
    control.set_rate_limit(body.limit, Duration::from_millis(body.window_ms));
    ok()
}

async fn stats<F: Fake>(State(control): State<Control<F>>) -> AdminResult {
    json(control.stats())
}

async fn requests<F: Fake>(State(control): State<Control<F>>) -> AdminResult {
    json(control.requests())
}

async fn reset_stats<F: Fake>(State(control): State<Control<F>>) -> AdminResult {
    control.reset_stats();
    ok()
}
