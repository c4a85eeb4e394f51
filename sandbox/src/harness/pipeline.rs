//! The path of every API request, the same for every fake: read the body, admit (the fake says
//! who the request is for), count against the tenant's rate limit, pick a fault, wait the
//! latency, run the fake's handler (or not, or drop the connection, as the fault says), record.
//!
//! [`api`] is an axum middleware on the fake's API routes (`route_layer`); the handler behind it
//! reads the request through [`ApiCall`]. Where the fake says so ([`Fake::detached`]), the work
//! after admission runs in its own task: when a client times out and hangs up, the request still
//! completes server-side, exactly the situation a sync client must reconcile.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::{lock, Answer, Control, Fake, Harness, Refusal};
use crate::faults::{Fault, Plan};
use crate::serve::ConnectionKill;
use crate::stats::{Cause, RequestRecord};

/// Who an admitted request is for, handed from [`api`] to the handler.
#[derive(Clone, Debug)]
struct Tenant(String);

/// An admitted API request as the fake's handler sees it.
pub(crate) struct ApiCall<F> {
    pub control: Control<F>,
    /// The store, credential or company the fake admitted the request for.
    pub tenant: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl<F: Fake> FromRequest<Control<F>> for ApiCall<F> {
    type Rejection = Response;

    async fn from_request(request: Request, control: &Control<F>) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let Some(Tenant(tenant)) = parts.extensions.get::<Tenant>().cloned() else {
            // Only reachable by a route registered outside the harness: a bug of the fake.
            tracing::error!("sandbox API route outside the harness middleware");
            return Err(axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response());
        };
        // The middleware already read the body into memory, within the fake's limit.
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .map_err(|_| axum::http::StatusCode::BAD_REQUEST.into_response())?;
        Ok(Self {
            control: control.clone(),
            tenant,
            query: parts.uri.query().map(str::to_owned),
            headers: parts.headers,
            body,
        })
    }
}

/// What the request log will say about a request, fixed on arrival.
struct Entry {
    at: Duration,
    method: String,
    route: String,
    target: Option<String>,
    user_agent: Option<String>,
}

impl Entry {
    fn record(&self, harness: &Harness, tenant: Option<String>, status: Option<u16>, cause: Cause) {
        let record = RequestRecord {
            at: self.at,
            store_hash: tenant,
            method: self.method.clone(),
            route: self.route.clone(),
            target: self.target.clone(),
            user_agent: self.user_agent.clone(),
            status,
        };
        lock(&harness.stats).record(record, cause);
    }

    fn finish(
        &self,
        harness: &Harness,
        tenant: Option<String>,
        answer: Response,
        cause: Cause,
    ) -> Response {
        self.record(harness, tenant, Some(answer.status().as_u16()), cause);
        answer
    }
}

/// What the connection should do once the request is handled.
enum Outcome {
    Respond(Response),
    Drop,
}

/// The middleware every fake's API routes run behind.
pub(crate) async fn api<F: Fake>(
    State(control): State<Control<F>>,
    request: Request,
    next: Next,
) -> Response {
    let fake = &*control.shared;
    let harness = fake.harness();
    let at = harness.clock.since_start();
    let (mut parts, body) = request.into_parts();
    let matched = parts
        .extensions
        .get::<MatchedPath>()
        .map_or_else(|| parts.uri.path(), MatchedPath::as_str);
    let label = matched.strip_prefix(fake.route_prefix()).unwrap_or(matched);
    let entry = Entry {
        at,
        method: parts.method.to_string(),
        route: format!("{} {label}", parts.method),
        target: F::LOGS_TARGETS.then(|| match parts.uri.query() {
            Some(query) => format!("{}?{query}", parts.uri.path()),
            None => parts.uri.path().to_owned(),
        }),
        user_agent: F::LOGS_TARGETS
            .then(|| parts.headers.get(header::USER_AGENT))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    // The whole body first: a handler that runs on after its client hung up can no longer read
    // it from the connection.
    let body = match axum::body::to_bytes(body, F::MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            let refused = fake.answer(Answer::TooLarge);
            return entry.finish(harness, None, refused, Cause::Other);
        }
    };
    let tenant = match fake.admit(&parts) {
        Ok(tenant) => tenant,
        Err(refused) => {
            let Refusal { answer, tenant } = *refused;
            return entry.finish(harness, tenant, answer, Cause::Other);
        }
    };
    let admitted = lock(&harness.limiter).admit(&tenant, Instant::now());
    if let Err(retry_after) = admitted {
        let refused = fake.answer(Answer::TooManyRequests(Some(retry_after)));
        return entry.finish(harness, Some(tenant), refused, Cause::RateLimiter);
    }
    let plan = lock(&harness.faults).plan(parts.method.as_str(), parts.uri.path());
    let kill = parts.extensions.get::<ConnectionKill>().cloned();
    let detached = fake.detached(&parts.method);
    parts.extensions.insert(Tenant(tenant.clone()));
    let request = Request::from_parts(parts, Body::from(body));
    let work = serve(control.clone(), entry, tenant, plan, request, next);
    let outcome = if detached {
        match tokio::spawn(work).await {
            Ok(outcome) => outcome,
            Err(err) => {
                tracing::error!(error = %err, "sandbox request task failed");
                Outcome::Respond(fake.answer(Answer::InternalError))
            }
        }
    } else {
        work.await
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
            fake.answer(Answer::InternalError)
        }
    }
}

/// After admission: the latency, then the fault, around the fake's handler (`next`).
async fn serve<F: Fake>(
    control: Control<F>,
    entry: Entry,
    tenant: String,
    plan: Plan,
    request: Request,
    next: Next,
) -> Outcome {
    let fake = &*control.shared;
    let harness = fake.harness();
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    let answer = match plan.fault {
        None => next.run(request).await,
        Some(Fault::Status500) => fake.answer(Answer::InternalError),
        Some(Fault::Status503) => fake.answer(Answer::Unavailable),
        Some(Fault::Status429 { retry_after_secs }) => {
            fake.answer(Answer::TooManyRequests(retry_after_secs))
        }
        Some(Fault::Delay { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            next.run(request).await
        }
        Some(Fault::ApplyThen500) => {
            next.run(request).await;
            fake.answer(Answer::InternalError)
        }
        Some(Fault::ApplyThenDrop) => {
            next.run(request).await;
            entry.record(harness, Some(tenant), None, Cause::Other);
            return Outcome::Drop;
        }
        Some(Fault::DropBeforeApply) => {
            entry.record(harness, Some(tenant), None, Cause::Other);
            return Outcome::Drop;
        }
    };
    Outcome::Respond(entry.finish(harness, Some(tenant), answer, Cause::Other))
}

/// Paths that match no route: the fake's 404, logged so a client calling a wrong URL shows up
/// in the stats.
pub(crate) async fn unmatched<F: Fake>(
    State(control): State<Control<F>>,
    method: Method,
    uri: Uri,
) -> Response {
    let fake = &*control.shared;
    let entry = RequestRecord {
        target: F::LOGS_TARGETS.then(|| uri.to_string()),
        user_agent: None,
        at: fake.harness().clock.since_start(),
        store_hash: None,
        method: method.to_string(),
        route: format!("{method} (unmatched) {}", uri.path()),
        status: Some(404),
    };
    lock(&fake.harness().stats).record(entry, Cause::Other);
    fake.answer(Answer::RouteNotFound)
}

/// The API router of a fake: its routes behind [`api`], the controls under `/__sandbox/`, the
/// logged 404 for anything else.
pub(crate) fn router<F: Fake>(
    control: Control<F>,
    api_routes: axum::Router<Control<F>>,
    own: axum::Router<Control<F>>,
) -> axum::Router {
    api_routes
        .route_layer(axum::middleware::from_fn_with_state(
            control.clone(),
            api::<F>,
        ))
        .merge(super::admin::routes::<F>())
        .merge(own)
        .fallback(unmatched::<F>)
        .with_state(control)
}

/// Why a request body is not the JSON object an operation takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// `Content-Type` is not `application/json` (answered 415).
    NotJson,
    /// Valid JSON, but not an object (answered 400).
    NotAnObject,
    /// Not JSON at all (answered 400).
    Invalid,
}

impl BodyError {
    /// The message the fakes answer with.
    pub(crate) fn message(self) -> &'static str {
        match self {
            BodyError::NotJson => "Content-Type must be application/json",
            BodyError::NotAnObject => "The request body must be a JSON object",
            BodyError::Invalid => "The request body is not valid JSON",
        }
    }
}

impl<F> ApiCall<F> {
    /// The body of a create or update: JSON (by `Content-Type`) and an object.
    pub(crate) fn json_object(&self) -> Result<Map<String, Value>, BodyError> {
        json_object(&self.headers, &self.body)
    }
}

fn json_object(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, BodyError> {
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
        return Err(BodyError::NotJson);
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(BodyError::NotAnObject),
        Err(_) => Err(BodyError::Invalid),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

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
        let error =
            |content_type, body: &[u8]| json_object(&headers(content_type), body).unwrap_err();
        assert_eq!(error(None, b"{}"), BodyError::NotJson);
        assert_eq!(error(Some("text/plain"), b"{}"), BodyError::NotJson);
        assert_eq!(
            error(Some("application/json"), b"[1]"),
            BodyError::NotAnObject
        );
        assert_eq!(
            error(Some("application/json"), b"{oops"),
            BodyError::Invalid
        );
        assert_eq!(error(Some("application/json"), b""), BodyError::Invalid);
    }
}
