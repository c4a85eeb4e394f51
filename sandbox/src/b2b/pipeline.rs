//! The path of every API request: authenticate, count against the store's budget, pick a
//! fault, wait the latency, apply, record.
//!
//! The work after admission runs in its own task: when a client times out and hangs up, the
//! request still completes server-side, exactly the situation a sync client must reconcile.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::control::SandboxControl;
use super::query::RawQuery;
use super::reply::{self, ApiReply};
use super::state::{lock, Shared};
use super::{auth, companies, extra_fields, invoices, list, payments};
use crate::faults::{Fault, Plan};
use crate::serve::ConnectionKill;
use crate::stats::{Cause, RequestRecord};

/// Larger bodies are refused before anything else (the docs cap PDFs at 5 MB; JSON is far less).
const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// An API operation with its path parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    CreateInvoice,
    ListInvoices,
    GetInvoice(String),
    UpdateInvoice(String),
    DeleteInvoice(String),
    CreateFromOrder(String),
    DownloadPdf(String),
    ListExtraFields,
    ListCompanies,
    ListPayments,
    GetPayment(String),
}

impl Op {
    /// Route template for the request log and counters.
    pub(crate) fn route(&self) -> &'static str {
        match self {
            Op::CreateInvoice => "POST /ip/invoices",
            Op::ListInvoices => "GET /ip/invoices",
            Op::GetInvoice(_) => "GET /ip/invoices/{id}",
            Op::UpdateInvoice(_) => "PUT /ip/invoices/{id}",
            Op::DeleteInvoice(_) => "DELETE /ip/invoices/{id}",
            Op::CreateFromOrder(_) => "POST /ip/orders/{id}/invoices",
            Op::DownloadPdf(_) => "GET /ip/invoices/{id}/download-pdf",
            Op::ListExtraFields => "GET /ip/invoices/extra-fields",
            Op::ListCompanies => "GET /companies",
            Op::ListPayments => "GET /ip/payments",
            Op::GetPayment(_) => "GET /ip/payments/{id}",
        }
    }

    fn takes_json_body(&self) -> bool {
        matches!(self, Op::CreateInvoice | Op::UpdateInvoice(_))
    }
}

/// Everything the pipeline needs from an API request.
pub(crate) struct ApiCall {
    control: SandboxControl,
    arrived: Duration,
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
    kill: Option<ConnectionKill>,
}

impl FromRequest<SandboxControl> for ApiCall {
    type Rejection = Response;

    async fn from_request(
        request: Request,
        control: &SandboxControl,
    ) -> Result<Self, Self::Rejection> {
        let arrived = control.shared.clock.since_start();
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|_| reply::too_large("The request body is too large").into_response())?;
        Ok(Self {
            control: control.clone(),
            arrived,
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts.headers,
            body,
            kill: parts.extensions.get::<ConnectionKill>().cloned(),
        })
    }
}

/// What the connection should do once the request is handled.
enum Outcome {
    Respond(Response),
    Drop,
}

pub(crate) async fn run(call: ApiCall, op: Op) -> Response {
    let shared = Arc::clone(&call.control.shared);
    let store_hash = match auth::authenticate(&shared.credentials, &call.headers) {
        Ok(hash) => hash.to_owned(),
        Err(refused) => return finish(&shared, &call, op.route(), None, refused, Cause::Other),
    };
    let admitted = lock(&shared.limiter).admit(&store_hash, Instant::now());
    if let Err(retry_after) = admitted {
        let refused = reply::too_many_requests(Some(retry_after));
        return finish(
            &shared,
            &call,
            op.route(),
            Some(store_hash),
            refused,
            Cause::RateLimiter,
        );
    }
    let plan = lock(&shared.faults).plan(call.method.as_str(), &call.path);
    let kill = call.kill.clone();
    let outcome = match tokio::spawn(execute(call, op, store_hash, plan)).await {
        Ok(outcome) => outcome,
        Err(err) => {
            tracing::error!(error = %err, "sandbox request task failed");
            Outcome::Respond(reply::internal_error().into_response())
        }
    };
    match (outcome, kill) {
        (Outcome::Respond(response), _) => response,
        (Outcome::Drop, Some(kill)) => {
            kill.kill();
            // The connection task drops this future together with the socket.
            std::future::pending().await
        }
        (Outcome::Drop, None) => {
            tracing::warn!("sandbox drop fault outside the sandbox server: answering 500 instead");
            reply::internal_error().into_response()
        }
    }
}

async fn execute(call: ApiCall, op: Op, store_hash: String, plan: Plan) -> Outcome {
    let shared = Arc::clone(&call.control.shared);
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    let answer = match plan.fault {
        None => apply(&shared, &store_hash, &op, &call),
        Some(Fault::Status500) => reply::internal_error(),
        Some(Fault::Status503) => reply::unavailable(),
        Some(Fault::Status429 { retry_after_secs }) => reply::too_many_requests(retry_after_secs),
        Some(Fault::Delay { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            apply(&shared, &store_hash, &op, &call)
        }
        Some(Fault::ApplyThen500) => {
            apply(&shared, &store_hash, &op, &call);
            reply::internal_error()
        }
        Some(Fault::ApplyThenDrop) => {
            apply(&shared, &store_hash, &op, &call);
            record(
                &shared,
                &call,
                op.route(),
                Some(store_hash),
                None,
                Cause::Other,
            );
            return Outcome::Drop;
        }
        Some(Fault::DropBeforeApply) => {
            record(
                &shared,
                &call,
                op.route(),
                Some(store_hash),
                None,
                Cause::Other,
            );
            return Outcome::Drop;
        }
    };
    Outcome::Respond(finish(
        &shared,
        &call,
        op.route(),
        Some(store_hash),
        answer,
        Cause::Other,
    ))
}

/// Performs the operation on the store's data.
fn apply(shared: &Shared, store_hash: &str, op: &Op, call: &ApiCall) -> ApiReply {
    let body = if op.takes_json_body() {
        match json_object(&call.headers, &call.body) {
            Ok(body) => body,
            Err(refused) => return refused,
        }
    } else {
        Map::new()
    };
    let query = RawQuery::parse(call.query.as_deref());
    let now = shared.clock.now_unix();
    let mut stores = lock(&shared.stores);
    let Some(store) = stores.get_mut(store_hash) else {
        return reply::unauthorized("Unknown store");
    };
    match op {
        Op::CreateInvoice => invoices::create(store, &body, now),
        Op::ListInvoices => list::list(store, &query, &shared.readings),
        Op::GetInvoice(id) => invoices::get(store, id),
        Op::UpdateInvoice(id) => invoices::update(store, id, &body, now),
        Op::DeleteInvoice(id) => invoices::delete(store, id),
        Op::CreateFromOrder(id) => invoices::create_from_order(store, id, now),
        Op::DownloadPdf(id) => invoices::download_pdf(store, id, shared.public_base()),
        Op::ListExtraFields => extra_fields::list(store, &query),
        Op::ListCompanies => companies::list(store, &query),
        Op::ListPayments => payments::list(store, &query),
        Op::GetPayment(id) => payments::get(store, id),
    }
}

/// The body of a create or update: JSON (by `Content-Type`) and an object.
fn json_object(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, ApiReply> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !is_json {
        return Err(reply::unsupported_media_type(
            "Content-Type must be application/json",
        ));
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(reply::bad_request("The request body must be a JSON object")),
        Err(_) => Err(reply::bad_request("The request body is not valid JSON")),
    }
}

fn record(
    shared: &Shared,
    call: &ApiCall,
    route: &str,
    store_hash: Option<String>,
    status: Option<u16>,
    cause: Cause,
) {
    let entry = RequestRecord {
        target: Some(match &call.query {
            Some(query) => format!("{}?{query}", call.path),
            None => call.path.clone(),
        }),
        user_agent: call
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        at: call.arrived,
        store_hash,
        method: call.method.to_string(),
        route: route.to_owned(),
        status,
    };
    lock(&shared.stats).record(entry, cause);
}

fn finish(
    shared: &Shared,
    call: &ApiCall,
    route: &str,
    store_hash: Option<String>,
    answer: ApiReply,
    cause: Cause,
) -> Response {
    record(
        shared,
        call,
        route,
        store_hash,
        Some(answer.status.as_u16()),
        cause,
    );
    answer.into_response()
}

/// Paths under the API base that match no route: the envelope's 404, logged so a client
/// calling a wrong URL shows up in the stats.
pub(crate) async fn unmatched(
    State(control): State<SandboxControl>,
    method: Method,
    uri: Uri,
) -> Response {
    let entry = RequestRecord {
        target: Some(uri.to_string()),
        user_agent: None,
        at: control.shared.clock.since_start(),
        store_hash: None,
        method: method.to_string(),
        route: format!("{method} (unmatched) {}", uri.path()),
        status: Some(404),
    };
    lock(&control.shared.stats).record(entry, Cause::Other);
    reply::not_found("Route not found").into_response()
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderValue, StatusCode};

    use super::*;

    fn headers(content_type: Option<&'static str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = content_type {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn bodies_must_be_json_objects_with_a_json_content_type() {
        let ok = json_object(
            &headers(Some("application/json; charset=utf-8")),
            br#"{"a":1}"#,
        )
        .unwrap();
        assert_eq!(ok["a"], 1);
        let status = |content_type, body: &[u8]| {
            json_object(&headers(content_type), body)
                .unwrap_err()
                .status
        };
        assert_eq!(status(None, b"{}"), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(
            status(Some("text/plain"), b"{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            status(Some("application/json"), b"[1]"),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(Some("application/json"), b"{oops"),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(Some("application/json"), b""),
            StatusCode::BAD_REQUEST
        );
    }
}
