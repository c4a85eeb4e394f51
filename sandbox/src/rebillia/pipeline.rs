//! The path of every API request: authenticate, pick a fault, wait the latency, apply, record.
//! The work after authentication runs in its own task, so a request whose client hung up still
//! completes, as on a real server. Rebillia publishes no rate limit, so none is modelled (a 429
//! can still be injected as a fault).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::api::{self, Params};
use super::control::RebilliaSandboxControl;
use super::reply::{self, Reply};
use super::state::{lock, Shared};
use super::update;
use crate::faults::{Fault, Plan};
use crate::serve::ConnectionKill;
use crate::stats::{Cause, RequestRecord};

const MAX_BODY_BYTES: usize = 1024 * 1024;
const AUTH_HEADER: &str = "x-auth-token";

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    ListInvoices,
    GetInvoice(String),
    UpdateInvoice(String),
    VoidInvoice(String),
    ChargeInvoice(String),
    DeleteInvoice(String),
}

impl Op {
    /// Route template for the request log and counters.
    pub(crate) fn route(&self) -> &'static str {
        match self {
            Op::ListInvoices => "GET /invoices",
            Op::GetInvoice(_) => "GET /invoices/{id}",
            Op::UpdateInvoice(_) => "PUT /invoices/{id}",
            Op::VoidInvoice(_) => "PUT /invoices/{id}/void",
            Op::ChargeInvoice(_) => "POST /invoices/{id}/charge",
            Op::DeleteInvoice(_) => "DELETE /invoices/{id}",
        }
    }

    fn takes_json_body(&self) -> bool {
        matches!(self, Op::UpdateInvoice(_) | Op::ChargeInvoice(_))
    }
}

pub(crate) struct ApiCall {
    control: RebilliaSandboxControl,
    arrived: Duration,
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
    kill: Option<ConnectionKill>,
}

impl FromRequest<RebilliaSandboxControl> for ApiCall {
    type Rejection = Response;

    async fn from_request(
        request: Request,
        control: &RebilliaSandboxControl,
    ) -> Result<Self, Self::Rejection> {
        let arrived = control.shared.clock.since_start();
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|_| reply::too_large().into_response())?;
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

enum Outcome {
    Respond(Response),
    Drop,
}

pub(crate) async fn run(call: ApiCall, op: Op) -> Response {
    let shared = Arc::clone(&call.control.shared);
    if !authenticated(&shared.token, &call.headers) {
        return finish(&shared, &call, op.route(), false, reply::unauthorized());
    }
    let plan = lock(&shared.faults).plan(call.method.as_str(), &call.path);
    let kill = call.kill.clone();
    let outcome = match tokio::spawn(execute(call, op, plan)).await {
        Ok(outcome) => outcome,
        Err(err) => {
            tracing::error!(error = %err, "Rebillia sandbox request task failed");
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
        (Outcome::Drop, None) => reply::internal_error().into_response(),
    }
}

async fn execute(call: ApiCall, op: Op, plan: Plan) -> Outcome {
    let shared = Arc::clone(&call.control.shared);
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    let answer = match plan.fault {
        None => apply(&shared, &op, &call),
        Some(Fault::Status500) => reply::internal_error(),
        Some(Fault::Status503) => reply::unavailable(),
        Some(Fault::Status429 { retry_after_secs }) => reply::too_many_requests(retry_after_secs),
        Some(Fault::Delay { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            apply(&shared, &op, &call)
        }
        Some(Fault::ApplyThen500) => {
            apply(&shared, &op, &call);
            reply::internal_error()
        }
        Some(Fault::ApplyThenDrop) => {
            apply(&shared, &op, &call);
            record(&shared, &call, op.route(), true, None);
            return Outcome::Drop;
        }
        Some(Fault::DropBeforeApply) => {
            record(&shared, &call, op.route(), true, None);
            return Outcome::Drop;
        }
    };
    Outcome::Respond(finish(&shared, &call, op.route(), true, answer))
}

fn apply(shared: &Shared, op: &Op, call: &ApiCall) -> Reply {
    let body = if op.takes_json_body() {
        match json_object(&call.headers, &call.body) {
            Ok(body) => body,
            Err(refused) => return refused,
        }
    } else {
        Map::new()
    };
    let params = Params::parse(call.query.as_deref());
    let now = shared.clock.now_unix();
    let mut data = lock(&shared.data);
    match op {
        Op::ListInvoices => api::list(&data, &params),
        Op::GetInvoice(id) => api::get(&data, id, &params),
        Op::UpdateInvoice(id) => update::update(&mut data, id, &body, now),
        Op::VoidInvoice(id) => api::void(&mut data, id, now),
        Op::ChargeInvoice(id) => api::charge(&mut data, id, &body, now),
        Op::DeleteInvoice(id) => api::delete(&mut data, id),
    }
}

/// The presented `X-AUTH-TOKEN` against the sandbox's, compared without early exit; the
/// presented value is never logged or echoed.
fn authenticated(expected: &str, headers: &HeaderMap) -> bool {
    let Some(presented) = headers.get(AUTH_HEADER).map(|v| v.as_bytes()) else {
        return false;
    };
    let expected = expected.as_bytes();
    let mut difference = expected.len() ^ presented.len();
    for (index, byte) in presented.iter().enumerate() {
        difference |= usize::from(byte ^ expected.get(index).copied().unwrap_or(0));
    }
    difference == 0 && !expected.is_empty()
}

/// The body of an update or a charge: `application/json`, a JSON object.
fn json_object(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, Reply> {
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
        return Err(reply::unsupported_media_type());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(reply::bad_request("The request body must be a JSON object")),
        Err(_) => Err(reply::bad_request("The request body is not valid JSON")),
    }
}

fn record(shared: &Shared, call: &ApiCall, route: &str, authenticated: bool, status: Option<u16>) {
    let entry = RequestRecord {
        target: None,
        user_agent: None,
        at: call.arrived,
        // The request log's tenant column: the company the token opens.
        store_hash: authenticated.then(|| shared.company.clone()),
        method: call.method.to_string(),
        route: route.to_owned(),
        status,
    };
    lock(&shared.stats).record(entry, Cause::Other);
}

fn finish(
    shared: &Shared,
    call: &ApiCall,
    route: &str,
    authenticated: bool,
    answer: Reply,
) -> Response {
    record(
        shared,
        call,
        route,
        authenticated,
        Some(answer.status.as_u16()),
    );
    answer.into_response()
}

/// Paths that match no route: a 404, logged so a wrong URL shows up in the stats.
pub(crate) async fn unmatched(
    State(control): State<RebilliaSandboxControl>,
    method: Method,
    uri: Uri,
) -> Response {
    let entry = RequestRecord {
        target: None,
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
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn only_the_exact_token_opens_the_api() {
        let with = |token: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTH_HEADER, HeaderValue::from_static(token));
            headers
        };
        assert!(authenticated("secret", &with("secret")));
        assert!(!authenticated("secret", &with("secreT")));
        assert!(!authenticated("secret", &with("secret2")));
        assert!(!authenticated("secret", &with("")));
        assert!(!authenticated("secret", &HeaderMap::new()));
        assert!(!authenticated("", &with("")));
    }
}
