//! The B2B sandbox's own test controls over HTTP, under `/__sandbox/` (beside those of every
//! fake: latency, error rates, faults, rate limit, stats; see `crate::harness::admin`): no auth,
//! not rate limited, not counted. Each handler only decodes JSON and calls the matching
//! [`SandboxControl`] method.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use super::control::{SandboxControl, SandboxError};
use super::money::parse_amount;
use crate::harness::admin::{decode, ok, AdminResult};

pub(crate) fn routes() -> Router<SandboxControl> {
    Router::new()
        .route("/__sandbox/stores/{hash}/invoices", get(invoices))
        .route(
            "/__sandbox/stores/{hash}/invoices/{id}",
            get(invoice).delete(delete_invoice),
        )
        .route(
            "/__sandbox/stores/{hash}/invoices/{id}/edit-details",
            post(edit_details),
        )
        .route(
            "/__sandbox/stores/{hash}/invoices/{id}/edit",
            post(edit_invoice),
        )
        .route(
            "/__sandbox/stores/{hash}/invoices/{id}/copy",
            post(copy_invoice),
        )
        .route(
            "/__sandbox/stores/{hash}/invoices/{id}/pay",
            post(pay_invoice),
        )
        .route(
            "/__sandbox/stores/{hash}/payments",
            get(payments).post(create_payment),
        )
        .route("/__sandbox/stores/{hash}/payments/{id}", get(payment))
        .route(
            "/__sandbox/stores/{hash}/payments/{id}/refund",
            post(refund_payment),
        )
        .route(
            "/__sandbox/stores/{hash}/payments/{id}/status",
            put(set_payment_status),
        )
}

async fn invoices(State(control): State<SandboxControl>, Path(hash): Path<String>) -> AdminResult {
    Ok(Json(control.invoices(&hash)?).into_response())
}

async fn invoice(
    State(control): State<SandboxControl>,
    Path((hash, id)): Path<(String, u64)>,
) -> AdminResult {
    control
        .invoice(&hash, id)
        .map(|invoice| Json(invoice).into_response())
        .ok_or_else(|| SandboxError::UnknownInvoice { store: hash, id }.into())
}

async fn delete_invoice(
    State(control): State<SandboxControl>,
    Path((hash, id)): Path<(String, u64)>,
) -> AdminResult {
    control.delete_invoice_as_person(&hash, id)?;
    ok()
}

/// `POST /__sandbox/stores/{hash}/invoices/{id}/edit-details` with the object to deep-merge.
async fn edit_details(
    State(control): State<SandboxControl>,
    Path((hash, id)): Path<(String, u64)>,
    body: Bytes,
) -> AdminResult {
    let patch: Value = decode(&body)?;
    control.edit_details(&hash, id, &patch)?;
    ok()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EditBody {
    purchase_order_number: Option<String>,
    #[serde(default, deserialize_with = "optional_amount")]
    open_balance: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_amount")]
    original_balance: Option<Decimal>,
    due_date: Option<i64>,
    external_pdf_url: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// `POST /__sandbox/stores/{hash}/invoices/{id}/edit` with any of `purchaseOrderNumber`,
/// `openBalance`, `originalBalance`, `dueDate` (unix seconds), `externalPdfUrl`, `type`: a
/// person edits those fields in the control panel.
async fn edit_invoice(
    State(control): State<SandboxControl>,
    Path((hash, id)): Path<(String, u64)>,
    body: Bytes,
) -> AdminResult {
    let b: EditBody = decode(&body)?;
    let edit = super::PersonEdit {
        purchase_order_number: b.purchase_order_number,
        open_balance: b.open_balance,
        original_balance: b.original_balance,
        due_date: b.due_date,
        external_pdf_url: b.external_pdf_url,
        kind: b.kind,
    };
    control.edit_invoice_as_person(&hash, id, &edit)?;
    ok()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CopyBody {
    invoice_number: String,
    external_id: Option<String>,
}

/// `POST /__sandbox/stores/{hash}/invoices/{id}/copy` `{"invoiceNumber": "HAND-1",
/// "externalId": "X"}`: a person keys in a copy (same ERP id without `externalId`: a
/// duplicate); answers `{"id": <new invoice id>}`.
async fn copy_invoice(
    State(control): State<SandboxControl>,
    Path((hash, id)): Path<(String, u64)>,
    body: Bytes,
) -> AdminResult {
    let b: CopyBody = decode(&body)?;
    let new_id =
        control.copy_invoice_as_person(&hash, id, &b.invoice_number, b.external_id.as_deref())?;
    created(new_id)
}

fn optional_amount<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Decimal>, D::Error> {
    amount(deserializer).map(Some)
}

/// An amount as a JSON number or a decimal string, read the way the API reads balances.
fn amount<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
    let value = Value::deserialize(deserializer)?;
    parse_amount(&value)
        .ok_or_else(|| serde::de::Error::custom(format!("{value} is not a decimal amount")))
}

#[derive(Deserialize)]
struct PayBody {
    #[serde(deserialize_with = "amount")]
    amount: Decimal,
}

#[derive(Deserialize)]
struct PaymentLineBody {
    invoice_id: u64,
    #[serde(deserialize_with = "amount")]
    amount: Decimal,
}

#[derive(Deserialize)]
struct PaymentBody {
    lines: Vec<PaymentLineBody>,
    #[serde(default = "completed")]
    processing_status: u8,
}

fn completed() -> u8 {
    super::payments::STATUS_COMPLETED
}

#[derive(Deserialize)]
struct StatusBody {
    processing_status: u8,
}

fn created(id: u64) -> AdminResult {
    Ok(Json(json!({ "id": id })).into_response())
}

/// `POST /__sandbox/stores/{hash}/invoices/{id}/pay` `{"amount": "40.00"}`: a buyer pays in
/// the buyer portal; answers `{"id": <payment id>}`.
async fn pay_invoice(
    State(control): State<SandboxControl>,
    Path((hash, id)): Path<(String, u64)>,
    body: Bytes,
) -> AdminResult {
    let body: PayBody = decode(&body)?;
    created(control.pay_invoice(&hash, id, body.amount)?)
}

/// `POST /__sandbox/stores/{hash}/payments`
/// `{"lines": [{"invoice_id": 1, "amount": 40}], "processing_status": 2}` (status default 3).
async fn create_payment(
    State(control): State<SandboxControl>,
    Path(hash): Path<String>,
    body: Bytes,
) -> AdminResult {
    let body: PaymentBody = decode(&body)?;
    let lines: Vec<(u64, Decimal)> = body
        .lines
        .iter()
        .map(|line| (line.invoice_id, line.amount))
        .collect();
    created(control.create_payment(&hash, &lines, body.processing_status)?)
}

async fn payments(State(control): State<SandboxControl>, Path(hash): Path<String>) -> AdminResult {
    Ok(Json(control.payments(&hash)?).into_response())
}

async fn payment(
    State(control): State<SandboxControl>,
    Path((hash, id)): Path<(String, u64)>,
) -> AdminResult {
    control
        .payment(&hash, id)
        .map(|payment| Json(payment).into_response())
        .ok_or_else(|| SandboxError::UnknownPayment { store: hash, id }.into())
}

async fn refund_payment(
    State(control): State<SandboxControl>,
    Path((hash, id)): Path<(String, u64)>,
) -> AdminResult {
    control.refund_payment(&hash, id)?;
    ok()
}

/// `PUT /__sandbox/stores/{hash}/payments/{id}/status` `{"processing_status": 3}`.
async fn set_payment_status(
    State(control): State<SandboxControl>,
    Path((hash, id)): Path<(String, u64)>,
    body: Bytes,
) -> AdminResult {
    let body: StatusBody = decode(&body)?;
    control.set_payment_status(&hash, id, body.processing_status)?;
    ok()
}
