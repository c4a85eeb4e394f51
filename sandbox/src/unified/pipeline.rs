//! The path of every API request: authenticate (bearer key), check the credential, count
//! against the rate limit, pick a fault, wait the latency, answer, record.
//!
//! A `PUT` runs in its own task, so a write whose client hung up (a timeout) still completes,
//! as on a real server; "apply then" faults apply it before they spoil the answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::time::Instant;

use super::alloy::{self, AlloyOptions};
use super::control::UnifiedSandboxControl;
use super::list;
use super::reply::{self, Reply};
use super::seed;
use super::state::{lock, Shared};
use super::write;
use super::SandboxApi;
use crate::faults::Fault;
use crate::serve::ConnectionKill;
use crate::stats::{Cause, RequestRecord};

const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Clone, Debug)]
pub(crate) enum Op {
    List,
    Get(String),
    Put {
        id: String,
        body: Bytes,
    },
    /// Alloy: `GET /accounting/invoices/count`.
    Count,
    /// Alloy: `GET /accounting/customers` and `/accounting/customers/{id}`.
    Customers,
    Customer(String),
}

/// What a request comes to.
enum Outcome {
    Respond(Response),
    /// Close the connection without an answer.
    Drop,
}

/// The request facts the pipeline needs (the body travels in [`Op::Put`]).
struct Call {
    shared: Arc<Shared>,
    arrived: Duration,
    method: String,
    path: String,
    params: BTreeMap<String, String>,
    headers: HeaderMap,
    kill: Option<ConnectionKill>,
}

impl Call {
    fn new(control: &UnifiedSandboxControl, request: &Request) -> Self {
        let shared = Arc::clone(&control.shared);
        let params = form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Self {
            arrived: shared.clock.since_start(),
            shared,
            method: request.method().to_string(),
            path: request.uri().path().to_owned(),
            params,
            headers: request.headers().clone(),
            kill: request.extensions().get::<ConnectionKill>().cloned(),
        }
    }

    fn route(&self, op: &Op) -> String {
        match op {
            Op::List => self.shared.routes.list.clone(),
            Op::Get(_) => self.shared.routes.get.clone(),
            Op::Put { .. } => self.shared.routes.put.clone(),
            Op::Count => self.shared.routes.count.clone(),
            Op::Customers => self.shared.routes.customers.clone(),
            Op::Customer(_) => self.shared.routes.customer.clone(),
        }
    }

    fn record(&self, op: &Op, credential: Option<&str>, status: Option<u16>, cause: Cause) {
        let entry = RequestRecord {
            target: None,
            user_agent: None,
            at: self.arrived,
            store_hash: credential.map(str::to_owned),
            method: self.method.clone(),
            route: self.route(op),
            status,
        };
        lock(&self.shared.stats).record(entry, cause);
    }

    fn finish(&self, op: &Op, credential: Option<&str>, reply: Reply, cause: Cause) -> Response {
        self.record(op, credential, Some(reply.status.as_u16()), cause);
        reply.into_response()
    }
}

pub(crate) async fn list(
    State(control): State<UnifiedSandboxControl>,
    request: Request,
) -> Response {
    let call = Call::new(&control, &request);
    let kill = call.kill.clone();
    respond(run(call, Op::List).await, kill).await
}

pub(crate) async fn count(
    State(control): State<UnifiedSandboxControl>,
    request: Request,
) -> Response {
    let call = Call::new(&control, &request);
    let kill = call.kill.clone();
    respond(run(call, Op::Count).await, kill).await
}

pub(crate) async fn customers(
    State(control): State<UnifiedSandboxControl>,
    request: Request,
) -> Response {
    let call = Call::new(&control, &request);
    let kill = call.kill.clone();
    respond(run(call, Op::Customers).await, kill).await
}

pub(crate) async fn customer(
    State(control): State<UnifiedSandboxControl>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let call = Call::new(&control, &request);
    let kill = call.kill.clone();
    respond(run(call, Op::Customer(id)).await, kill).await
}

pub(crate) async fn get_one(
    State(control): State<UnifiedSandboxControl>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let call = Call::new(&control, &request);
    let kill = call.kill.clone();
    respond(run(call, Op::Get(id)).await, kill).await
}

pub(crate) async fn put_one(
    State(control): State<UnifiedSandboxControl>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let call = Call::new(&control, &request);
    let kill = call.kill.clone();
    let body = match axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            let refused = reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request body is too large",
            );
            let op = Op::Put {
                id,
                body: Bytes::new(),
            };
            return call.finish(&op, None, refused, Cause::Other);
        }
    };
    let outcome = match tokio::spawn(run(call, Op::Put { id, body })).await {
        Ok(outcome) => outcome,
        Err(err) => {
            tracing::error!(error = %err, "unified sandbox write task failed");
            Outcome::Respond(reply::internal_error().into_response())
        }
    };
    respond(outcome, kill).await
}

async fn respond(outcome: Outcome, kill: Option<ConnectionKill>) -> Response {
    match outcome {
        Outcome::Respond(response) => response,
        Outcome::Drop => drop_connection(kill).await,
    }
}

async fn run(call: Call, op: Op) -> Outcome {
    match process(&call, &op).await {
        Some(response) => Outcome::Respond(response),
        None => Outcome::Drop,
    }
}

/// The answer, or `None` to drop the connection (already recorded).
async fn process(call: &Call, op: &Op) -> Option<Response> {
    let refuse = |reply: Reply, credential: Option<&str>, cause: Cause| {
        Some(call.finish(op, credential, reply, cause))
    };
    if !authorized(&call.shared, &call.headers) {
        let refused = reply::error(StatusCode::UNAUTHORIZED, "Invalid or missing API key");
        return refuse(refused, None, Cause::Other);
    }
    let credential = match credential_of(call) {
        Err(message) => {
            let refused = reply::error(StatusCode::BAD_REQUEST, &message);
            return refuse(refused, None, Cause::Other);
        }
        Ok(id) if !call.shared.credentials.contains(&id) => {
            let message = format!("Credential {id} not found");
            let refused = reply::error(StatusCode::NOT_FOUND, &message);
            return refuse(refused, None, Cause::Other);
        }
        Ok(id) => id,
    };
    let admitted = lock(&call.shared.limiter).admit(&credential, Instant::now());
    if let Err(retry_after) = admitted {
        let refused = reply::too_many_requests(Some(retry_after));
        return refuse(refused, Some(&credential), Cause::RateLimiter);
    }
    let plan = lock(&call.shared.faults).plan(&call.method, &call.path);
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    let answer = match plan.fault {
        None => apply(call, op),
        Some(Fault::Status500) => reply::internal_error(),
        Some(Fault::Status503) => reply::unavailable(),
        Some(Fault::Status429 { retry_after_secs }) => reply::too_many_requests(retry_after_secs),
        Some(Fault::Delay { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            apply(call, op)
        }
        Some(Fault::ApplyThen500) => {
            apply(call, op);
            reply::internal_error()
        }
        Some(Fault::ApplyThenDrop) => {
            apply(call, op);
            call.record(op, Some(&credential), None, Cause::Other);
            return None;
        }
        Some(Fault::DropBeforeApply) => {
            call.record(op, Some(&credential), None, Cause::Other);
            return None;
        }
    };
    Some(call.finish(op, Some(&credential), answer, Cause::Other))
}

/// The credential the request names, or the 400 message. Alloy takes `credentialId` (2024-03)
/// or `connectionId` (2023-12, and 2024-03 when the alias is on); the other version's name is
/// counted and refused.
fn credential_of(call: &Call) -> Result<String, String> {
    match &call.shared.api {
        SandboxApi::Generic => {
            let param = &call.shared.names.credential_param;
            call.params
                .get(param)
                .cloned()
                .ok_or_else(|| format!("{param} is required"))
        }
        SandboxApi::Alloy(options) => {
            if let Some((_, id)) = call
                .params
                .iter()
                .find(|(k, _)| options.is_credential_param(k))
            {
                return Ok(id.clone());
            }
            if ["credentialId", "connectionId"]
                .iter()
                .any(|p| call.params.contains_key(*p))
            {
                lock(&call.shared.alloy).wrong_credential_params += 1;
            }
            Err(format!(
                "{} is required",
                options.version.credential_param()
            ))
        }
    }
}

/// Closes the connection without a response.
async fn drop_connection(kill: Option<ConnectionKill>) -> Response {
    match kill {
        Some(kill) => {
            kill.kill();
            // The connection task drops this future together with the socket.
            std::future::pending().await
        }
        None => {
            tracing::warn!("sandbox drop fault outside the sandbox server: answering 500 instead");
            reply::internal_error().into_response()
        }
    }
}

/// `Authorization: Bearer <key>`, the scheme in any case (004 writes it `bearer`).
pub(crate) fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.trim().splitn(2, ' ');
    let scheme_ok = parts
        .next()
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer"));
    scheme_ok && parts.next().map(str::trim) == Some(shared.api_key.0.as_str())
}

fn apply(call: &Call, op: &Op) -> Reply {
    let shared = &call.shared;
    if let SandboxApi::Alloy(options) = &shared.api {
        return alloy_apply(call, op, options);
    }
    let names = &shared.names;
    match op {
        Op::List => {
            let query = match list::parse_query(
                &call.params,
                names,
                shared.default_limit,
                shared.max_limit,
            ) {
                Ok(query) => query,
                Err(message) => return reply::error(StatusCode::BAD_REQUEST, &message),
            };
            let (invoices, next) = list::page(&lock(&shared.invoices), &query);
            let mut body = serde_json::Map::new();
            body.insert(names.list_field.clone(), Value::Array(invoices));
            body.insert(
                names.next_field.clone(),
                next.map_or(Value::Null, Value::String),
            );
            reply::ok(Value::Object(body))
        }
        Op::Get(id) => match lock(&shared.invoices).get(id) {
            Some(invoice) => {
                let mut body = serde_json::Map::new();
                body.insert(names.single_field.clone(), invoice);
                reply::ok(Value::Object(body))
            }
            None => reply::error(StatusCode::NOT_FOUND, &format!("Invoice {id} not found")),
        },
        Op::Put { id, body } => write::put(shared, id, body),
        Op::Count | Op::Customers | Op::Customer(_) => {
            reply::error(StatusCode::NOT_FOUND, "Route not found")
        }
    }
}

/// Alloy's answers (see `alloy`).
fn alloy_apply(call: &Call, op: &Op, options: &AlloyOptions) -> Reply {
    let shared = &call.shared;
    let not_found = |what: &str, id: &str| {
        reply::error(StatusCode::NOT_FOUND, &format!("{what} {id} not found"))
    };
    let query = || {
        let query = alloy::page_query(options, &call.params)?;
        let mut counters = lock(&shared.alloy);
        if query.clamped {
            counters.clamped_pages += 1;
        }
        if query.remote_id.is_some() {
            counters.remote_id_lookups += 1;
        }
        for param in &query.ignored {
            *counters.ignored_params.entry(param.clone()).or_default() += 1;
        }
        Ok::<_, String>(query)
    };
    match op {
        Op::List => {
            let query = match query() {
                Ok(query) => query,
                Err(message) => return reply::error(StatusCode::BAD_REQUEST, &message),
            };
            let invoices = lock(&shared.invoices);
            let listing: &[u64] = invoices.listing.as_deref().unwrap_or(&[]);
            let served = |index: u64| {
                invoices
                    .get(&seed::remote_id(index))
                    .map(|body| alloy::render_invoice(options, index, body))
            };
            let (records, total) = match &query.remote_id {
                Some(wanted) => {
                    let matching: Vec<Value> = listing
                        .iter()
                        .filter_map(|i| served(*i))
                        .filter(|inv| inv.get("remoteId").and_then(Value::as_str) == Some(wanted))
                        .collect();
                    let total = matching.len();
                    let page = matching
                        .into_iter()
                        .skip(query.offset)
                        .take(query.size)
                        .collect();
                    (page, total)
                }
                None => {
                    let page = listing
                        .iter()
                        .skip(query.offset)
                        .take(query.size)
                        .filter_map(|i| served(*i))
                        .collect();
                    (page, listing.len())
                }
            };
            reply::ok(alloy::list_body(
                options, "invoices", records, &query, total,
            ))
        }
        Op::Count => {
            let count = lock(&shared.invoices).len();
            reply::ok(serde_json::json!({ "count": count }))
        }
        Op::Get(id) => {
            let invoices = lock(&shared.invoices);
            let found = alloy::invoice_index_of_id(id).and_then(|index| {
                invoices
                    .get(&seed::remote_id(index))
                    .map(|body| alloy::render_invoice(options, index, body))
            });
            match found {
                Some(invoice) => reply::ok(serde_json::json!({ "invoice": invoice })),
                None => {
                    drop(invoices);
                    count_remote_id_lookup(shared, id);
                    not_found("Invoice", id)
                }
            }
        }
        Op::Put { id, body } => {
            let Some(index) = alloy::invoice_index_of_id(id) else {
                count_remote_id_lookup(shared, id);
                return not_found("Invoice", id);
            };
            let render = |body: Value| alloy::render_invoice(options, index, body);
            let rules = write::PutRules {
                shown: id,
                require_lines: !options.partial_put,
                render: &render,
            };
            write::put_with(shared, &seed::remote_id(index), body, &rules)
        }
        Op::Customers => {
            let query = match query() {
                Ok(query) => query,
                Err(message) => return reply::error(StatusCode::BAD_REQUEST, &message),
            };
            let customers = lock(&shared.customers);
            let records = customers
                .list
                .iter()
                .skip(query.offset)
                .take(query.size)
                .map(|c| alloy::render_customer(options, c))
                .collect();
            let total = customers.list.len();
            reply::ok(alloy::list_body(
                options,
                "customers",
                records,
                &query,
                total,
            ))
        }
        Op::Customer(id) => match lock(&shared.customers).get(id) {
            Some(customer) => reply::ok(serde_json::json!({
                "customer": alloy::render_customer(options, customer),
            })),
            None => not_found("Customer", id),
        },
    }
}

/// A `GET`/`PUT` that named an invoice by its `remoteId` where Alloy wants its own id.
fn count_remote_id_lookup(shared: &Shared, id: &str) {
    let known = alloy::index_of_remote_id(id).is_some()
        || lock(&shared.invoices).find_by_remote_id(id).is_some();
    if known {
        lock(&shared.alloy).remote_id_lookups += 1;
    }
}
