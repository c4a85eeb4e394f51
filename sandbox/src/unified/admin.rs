//! The unified sandbox's own test controls over HTTP, under `/__sandbox/` (beside those of every
//! fake: latency, error rates, faults, rate limit, stats; see `crate::harness::admin`): no auth,
//! not rate limited, not counted. Each handler decodes JSON and calls the matching
//! [`UnifiedSandboxControl`] method.
//!
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

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::control::{Malformation, UnifiedSandboxControl, UnifiedSandboxError};
use crate::harness::admin::{decode, ok, AdminResult};

pub(crate) fn routes() -> Router<UnifiedSandboxControl> {
    Router::new()
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

fn changed(id: &str, at: Option<DateTime<Utc>>) -> AdminResult {
    let at = at.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true));
    Ok(Json(json!({ "id": id, "remote_updated_at": at })).into_response())
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
