//! The Rebillia sandbox's own test controls over HTTP, under `/__sandbox/`, beside those of every
//! fake (latency, error rates, faults, stats: `crate::harness::admin`): no auth, not counted.
//! Each handler only decodes JSON and calls the matching [`RebilliaSandboxControl`] method.
//! (No `rate-limit`: Rebillia publishes none.)
//!
//! | route | body |
//! |---|---|
//! | `PUT /__sandbox/latency` | `{"fixed_ms": 100, "jitter_ms": 50}` |
//! | `PUT /__sandbox/error-rates` | `{"status_500": 0.1, "status_503": 0, "status_429": 0}` |
//! | `PUT /__sandbox/modes` | `{"amounts": "cents" \| "dollars" \| "documented", "list_order": "honoured" \| "ignored"}` (each optional) |
//! | `POST`/`GET`/`DELETE /__sandbox/faults` | a fault rule or a list of them |
//! | `GET /__sandbox/stats`, `GET /__sandbox/requests`, `POST /__sandbox/reset-stats` | |
//! | `GET`/`POST /__sandbox/invoices` | list / create (`NewInvoice`) |
//! | `POST /__sandbox/invoices/malformed` | the overlay to merge over a new invoice |
//! | `GET`/`DELETE /__sandbox/invoices/{id}` | one invoice / delete it |
//! | `POST /__sandbox/invoices/{id}/edit` | an `InvoiceEdit` |
//! | `POST /__sandbox/invoices/{id}/void` | |
//! | `POST /__sandbox/invoices/{id}/payment` | `{"cents": 500}` |
//! | `POST /__sandbox/invoices/{id}/corrupt` | the overlay to merge over it |
//! | `GET /__sandbox/charges` | `{"received": [[id, cents]], "queued": [[id, cents]]}` |
//! | `PUT /__sandbox/charges/hold` | `{"hold": true}` |
//! | `POST /__sandbox/charges/acknowledge` | (answers `{"booked": n}`) |

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::control::{InvoiceEdit, NewInvoice, RebilliaSandboxControl, RebilliaSandboxError};
use super::state::{AmountStyle, ListOrder};
use crate::harness::admin::{decode, ok, AdminResult};

type Control = State<RebilliaSandboxControl>;

pub(crate) fn routes() -> Router<RebilliaSandboxControl> {
    Router::new()
        .route("/__sandbox/modes", put(set_modes))
        .route("/__sandbox/invoices", get(invoices).post(add_invoice))
        .route("/__sandbox/invoices/malformed", post(insert_malformed))
        .route(
            "/__sandbox/invoices/{id}",
            get(invoice).delete(delete_invoice),
        )
        .route("/__sandbox/invoices/{id}/edit", post(edit_invoice))
        .route("/__sandbox/invoices/{id}/void", post(void_invoice))
        .route("/__sandbox/invoices/{id}/payment", post(record_payment))
        .route("/__sandbox/invoices/{id}/corrupt", post(corrupt_invoice))
        .route("/__sandbox/charges", get(charges))
        .route("/__sandbox/charges/hold", put(hold_charges))
        .route("/__sandbox/charges/acknowledge", post(acknowledge_charges))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModesBody {
    amounts: Option<AmountStyle>,
    list_order: Option<ListOrder>,
}

async fn set_modes(State(control): Control, body: Bytes) -> AdminResult {
    let body: ModesBody = decode(&body)?;
    if let Some(style) = body.amounts {
        control.set_amount_style(style);
    }
    if let Some(order) = body.list_order {
        control.set_list_order(order);
    }
    ok()
}

async fn invoices(State(control): Control) -> Response {
    Json(control.invoices()).into_response()
}

async fn add_invoice(State(control): Control, body: Bytes) -> AdminResult {
    let new: NewInvoice = if body.is_empty() {
        NewInvoice::default()
    } else {
        decode(&body)?
    };
    let id = control.add_invoice(&new)?;
    Ok(Json(json!({ "id": id })).into_response())
}

async fn insert_malformed(State(control): Control, body: Bytes) -> AdminResult {
    let id = control.insert_malformed(&decode::<Value>(&body)?)?;
    Ok(Json(json!({ "id": id })).into_response())
}

async fn invoice(State(control): Control, Path(id): Path<u64>) -> AdminResult {
    control
        .invoice(id)
        .map(|invoice| Json(invoice).into_response())
        .ok_or_else(|| RebilliaSandboxError::UnknownInvoice(id).into())
}

async fn delete_invoice(State(control): Control, Path(id): Path<u64>) -> AdminResult {
    control.delete_invoice(id)?;
    ok()
}

async fn edit_invoice(State(control): Control, Path(id): Path<u64>, body: Bytes) -> AdminResult {
    control.edit_invoice(id, &decode::<InvoiceEdit>(&body)?)?;
    ok()
}

async fn void_invoice(State(control): Control, Path(id): Path<u64>) -> AdminResult {
    control.void_invoice(id)?;
    ok()
}

#[derive(Deserialize)]
struct PaymentBody {
    cents: i64,
}

async fn record_payment(State(control): Control, Path(id): Path<u64>, body: Bytes) -> AdminResult {
    control.record_payment(id, decode::<PaymentBody>(&body)?.cents)?;
    ok()
}

async fn corrupt_invoice(State(control): Control, Path(id): Path<u64>, body: Bytes) -> AdminResult {
    control.corrupt_invoice(id, &decode::<Value>(&body)?)?;
    ok()
}

async fn charges(State(control): Control) -> Response {
    Json(json!({
        "received": control.received_charges(),
        "queued": control.queued_charges(),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct HoldBody {
    hold: bool,
}

async fn hold_charges(State(control): Control, body: Bytes) -> AdminResult {
    control.hold_charges(decode::<HoldBody>(&body)?.hold);
    ok()
}

async fn acknowledge_charges(State(control): Control) -> AdminResult {
    let booked = control.acknowledge_charges();
    Ok(Json(json!({ "booked": booked })).into_response())
}
