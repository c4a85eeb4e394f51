//! The test controls over HTTP, under `/__sandbox/`: no auth, not rate limited, not counted.
//! Each handler decodes JSON and calls the matching [`UnifiedSandboxControl`] method.
//!
//! - `PUT /__sandbox/latency` `{"fixed_ms": 100, "jitter_ms": 50}`
//! - `PUT /__sandbox/error-rates` `{"status_500": 0.1, "status_503": 0, "status_429": 0}`
//! - `POST|GET|DELETE /__sandbox/faults` (one rule or a list, as the B2B sandbox)
//! - `PUT /__sandbox/rate-limit` `{"limit": 100, "window_ms": 60000}`
//! - `GET /__sandbox/stats`, `GET /__sandbox/requests`, `POST /__sandbox/reset-stats`
//! - `GET /__sandbox/invoices/{id}`
//! - `POST /__sandbox/invoices/{id}/update` `{"patch": {...}, "remote_updated_at": "<RFC 3339>"?}`
//! - `POST /__sandbox/invoices/{id}/delete`, `POST /__sandbox/invoices/{id}/void`
//! - `POST /__sandbox/invoices/create` (a new valid invoice), `POST /__sandbox/invoices/raw`
//!   (any JSON as a record), `POST /__sandbox/invoices/malformed` `{"kind": "bad_currency"}`
//! - `GET /__sandbox/invoices/{id}/amounts` (`{"total": "..", "balance": "..", "status": ..}`)
//! - `PUT /__sandbox/writes/hold` `{"hold": true}`, `POST /__sandbox/writes/acknowledge`
//!   (answers `{"applied": n}`), `GET /__sandbox/writes` (`{"received": [{"id", "body"}],
//!   "queued": [...]}`)
//!
//! - Alloy: `GET /__sandbox/alloy-counters` ([`AlloyCounters`](super::AlloyCounters)),
//!   `POST /__sandbox/customers/create` `{"remote_id": "..", "name": ".."}` (answers
//!   `{"id": "<uuid>"}`), `POST /__sandbox/invoices/{id}/create-before` (a new invoice listed
//!   just before `{id}`)
//!
//! Changes answer `{"id": ..., "remote_updated_at": ...}` where they have them. Invoice ids may
//! be the sandbox's, or (Alloy) the served `remoteId` or Alloy's own id.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::control::{Malformation, UnifiedSandboxControl, UnifiedSandboxError};
use crate::faults::{ErrorRates, FaultRule};

pub(crate) fn routes() -> Router<UnifiedSandboxControl> {
    Router::new()
        .route("/__sandbox/latency", put(set_latency))
        .route("/__sandbox/error-rates", put(set_error_rates))
        .route(
            "/__sandbox/faults",
            post(push_faults).get(pending_faults).delete(clear_faults),
        )
        .route("/__sandbox/rate-limit", put(set_rate_limit))
        .route("/__sandbox/stats", get(stats))
        .route("/__sandbox/requests", get(requests))
        .route("/__sandbox/reset-stats", post(reset_stats))
        .route("/__sandbox/invoices/create", post(create))
        .route("/__sandbox/invoices/raw", post(insert_raw))
        .route("/__sandbox/invoices/malformed", post(insert_malformed))
        .route("/__sandbox/invoices/{id}", get(invoice))
        .route("/__sandbox/invoices/{id}/update", post(update))
        .route("/__sandbox/invoices/{id}/delete", post(delete))
        .route("/__sandbox/invoices/{id}/void", post(void))
        .route("/__sandbox/invoices/{id}/amounts", get(amounts))
        .route("/__sandbox/writes", get(writes))
        .route("/__sandbox/writes/hold", put(hold_writes))
        .route("/__sandbox/writes/acknowledge", post(acknowledge_writes))
        .route("/__sandbox/alloy-counters", get(alloy_counters))
        .route("/__sandbox/customers/create", post(create_customer))
        .route(
            "/__sandbox/invoices/{id}/create-before",
            post(create_before),
        )
}

async fn alloy_counters(State(control): State<UnifiedSandboxControl>) -> Response {
    Json(control.alloy_counters()).into_response()
}

#[derive(Deserialize)]
struct CustomerBody {
    remote_id: String,
    name: String,
}

async fn create_customer(State(control): State<UnifiedSandboxControl>, body: Bytes) -> AdminResult {
    let body: CustomerBody = decode(&body)?;
    let id = control.create_customer(&body.remote_id, &body.name);
    Ok(Json(json!({ "id": id })).into_response())
}

async fn create_before(
    State(control): State<UnifiedSandboxControl>,
    Path(id): Path<String>,
) -> AdminResult {
    changed(&control.create_invoice_before(&id)?, None)
}

struct AdminError(StatusCode, String);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<UnifiedSandboxError> for AdminError {
    fn from(error: UnifiedSandboxError) -> Self {
        let status = match error {
            UnifiedSandboxError::Invalid(_) => StatusCode::BAD_REQUEST,
            UnifiedSandboxError::UnknownInvoice(_) => StatusCode::NOT_FOUND,
        };
        Self(status, error.to_string())
    }
}

type AdminResult = Result<Response, AdminError>;

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    serde_json::from_slice(body)
        .map_err(|err| AdminError(StatusCode::BAD_REQUEST, format!("invalid JSON body: {err}")))
}

fn ok() -> AdminResult {
    Ok(Json(json!({ "ok": true })).into_response())
}

fn changed(id: &str, at: Option<DateTime<Utc>>) -> AdminResult {
    let at = at.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true));
    Ok(Json(json!({ "id": id, "remote_updated_at": at })).into_response())
}

#[derive(Deserialize)]
struct LatencyBody {
    #[serde(default)]
    fixed_ms: u64,
    #[serde(default)]
    jitter_ms: u64,
}

async fn set_latency(State(control): State<UnifiedSandboxControl>, body: Bytes) -> AdminResult {
    let body: LatencyBody = decode(&body)?;
    control.set_latency(
        Duration::from_millis(body.fixed_ms),
        Duration::from_millis(body.jitter_ms),
    );
    ok()
}

async fn set_error_rates(State(control): State<UnifiedSandboxControl>, body: Bytes) -> AdminResult {
    control.set_error_rates(decode::<ErrorRates>(&body)?)?;
    ok()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<FaultRule>),
    One(FaultRule),
}

async fn push_faults(State(control): State<UnifiedSandboxControl>, body: Bytes) -> AdminResult {
    let rules = match decode::<OneOrMany>(&body)? {
        OneOrMany::Many(rules) => rules,
        OneOrMany::One(rule) => vec![rule],
    };
    for rule in rules {
        control.push_fault(rule);
    }
    ok()
}

async fn pending_faults(State(control): State<UnifiedSandboxControl>) -> Response {
    Json(control.pending_faults()).into_response()
}

async fn clear_faults(State(control): State<UnifiedSandboxControl>) -> AdminResult {
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

async fn set_rate_limit(State(control): State<UnifiedSandboxControl>, body: Bytes) -> AdminResult {
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

async fn stats(State(control): State<UnifiedSandboxControl>) -> Response {
    Json(control.stats()).into_response()
}

async fn requests(State(control): State<UnifiedSandboxControl>) -> Response {
    Json(control.requests()).into_response()
}

async fn reset_stats(State(control): State<UnifiedSandboxControl>) -> AdminResult {
    control.reset_stats();
    ok()
}

async fn invoice(
    State(control): State<UnifiedSandboxControl>,
    Path(id): Path<String>,
) -> AdminResult {
    control
        .invoice(&id)
        .map(|invoice| Json(invoice).into_response())
        .ok_or_else(|| UnifiedSandboxError::UnknownInvoice(id).into())
}

#[derive(Deserialize)]
struct UpdateBody {
    patch: Value,
    #[serde(default)]
    remote_updated_at: Option<DateTime<Utc>>,
}

async fn update(
    State(control): State<UnifiedSandboxControl>,
    Path(id): Path<String>,
    body: Bytes,
) -> AdminResult {
    let body: UpdateBody = decode(&body)?;
    let at = match body.remote_updated_at {
        Some(at) => control.update_invoice_at(&id, &body.patch, at)?,
        None => control.update_invoice(&id, &body.patch)?,
    };
    changed(&id, Some(at))
}

async fn delete(
    State(control): State<UnifiedSandboxControl>,
    Path(id): Path<String>,
) -> AdminResult {
    let at = control.delete_invoice(&id)?;
    changed(&id, Some(at))
}

async fn void(State(control): State<UnifiedSandboxControl>, Path(id): Path<String>) -> AdminResult {
    let at = control.void_invoice(&id)?;
    changed(&id, Some(at))
}

async fn create(State(control): State<UnifiedSandboxControl>) -> AdminResult {
    changed(&control.create_invoice(), None)
}

async fn insert_raw(State(control): State<UnifiedSandboxControl>, body: Bytes) -> AdminResult {
    let record: Value = decode(&body)?;
    changed(&control.insert_raw(record)?, None)
}

#[derive(Deserialize)]
struct MalformedBody {
    kind: Malformation,
}

async fn insert_malformed(
    State(control): State<UnifiedSandboxControl>,
    body: Bytes,
) -> AdminResult {
    let body: MalformedBody = decode(&body)?;
    changed(&control.insert_malformed(body.kind), None)
}

async fn amounts(
    State(control): State<UnifiedSandboxControl>,
    Path(id): Path<String>,
) -> AdminResult {
    control
        .amounts(&id)
        .map(|amounts| Json(amounts).into_response())
        .ok_or_else(|| UnifiedSandboxError::UnknownInvoice(id).into())
}

fn write_list(writes: Vec<(String, Value)>) -> Value {
    writes
        .into_iter()
        .map(|(id, body)| json!({ "id": id, "body": body }))
        .collect()
}

async fn writes(State(control): State<UnifiedSandboxControl>) -> Response {
    Json(json!({
        "received": write_list(control.received_writes()),
        "queued": write_list(control.queued_writes()),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct HoldBody {
    hold: bool,
}

async fn hold_writes(State(control): State<UnifiedSandboxControl>, body: Bytes) -> AdminResult {
    control.hold_writes(decode::<HoldBody>(&body)?.hold);
    ok()
}

async fn acknowledge_writes(State(control): State<UnifiedSandboxControl>) -> AdminResult {
    let applied = control.acknowledge_writes();
    Ok(Json(json!({ "applied": applied })).into_response())
}
