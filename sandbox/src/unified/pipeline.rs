//! What the unified fake adds to the shared harness (`crate::harness`): who a request is for
//! (the bearer key opens the API, then the credential it names; the rate limit counts per
//! credential), its error answers, and its operations. A `PUT` runs on when its client hangs up
//! (a timeout), as on a real server; "apply then" faults apply it before they spoil the answer.

use std::collections::BTreeMap;

use axum::http::{header, request, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::alloy::{self, AlloyOptions};
use super::control::UnifiedSandboxError;
use super::list;
use super::reply::{self, Reply};
use super::seed;
use super::state::{lock, Shared};
use super::write;
use super::SandboxApi;
use crate::harness::pipeline::ApiCall;
use crate::harness::{Answer, Fake, Harness, Refusal};

/// An API operation with its path parameter.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    List,
    Get(String),
    Put(String),
    Count,
    Customers,
    Customer(String),
}

/// An API request to the unified fake.
pub(crate) type Call = ApiCall<Shared>;

impl Fake for Shared {
    type Error = UnifiedSandboxError;
    const MAX_BODY_BYTES: usize = 1024 * 1024;
    const RATE_LIMITED: bool = true;
    const LOGS_TARGETS: bool = false;

    fn harness(&self) -> &Harness {
        &self.harness
    }

    fn route_prefix(&self) -> &str {
        &self.route_prefix
    }

    /// The credential the request names, once the API key opens the API.
    fn admit(&self, request: &request::Parts) -> Result<String, Box<Refusal>> {
        let refuse = |status, message: &str| {
            Box::new(Refusal {
                answer: reply::error(status, message).into_response(),
                tenant: None,
            })
        };
        if !authorized(self, &request.headers) {
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                "Invalid or missing API key",
            ));
        }
        match credential_of(self, &params(request.uri.query())) {
            Err(message) => Err(refuse(StatusCode::BAD_REQUEST, &message)),
            Ok(id) if !self.credentials.contains(&id) => Err(refuse(
                StatusCode::NOT_FOUND,
                &format!("Credential {id} not found"),
            )),
            Ok(id) => Ok(id),
        }
    }

    /// Only a `PUT` runs on when its client hangs up (a write the ERP completes anyway).
    fn detached(&self, method: &Method) -> bool {
        method == Method::PUT
    }

    fn answer(&self, answer: Answer) -> Response {
        match answer {
            Answer::InternalError => reply::internal_error(),
            Answer::Unavailable => reply::unavailable(),
            Answer::TooManyRequests(retry_after) => reply::too_many_requests(retry_after),
            Answer::TooLarge => reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request body is too large",
            ),
            Answer::RouteNotFound => reply::error(StatusCode::NOT_FOUND, "Route not found"),
        }
        .into_response()
    }

    fn invalid(message: String) -> UnifiedSandboxError {
        UnifiedSandboxError::Invalid(message)
    }

    /// Alloy's counters of what clients did that they should not.
    fn reset_own_stats(&self) {
        *lock(&self.alloy) = alloy::AlloyCounters::default();
    }
}

/// The query parameters, decoded.
fn params(query: Option<&str>) -> BTreeMap<String, String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Answers the operation.
pub(crate) async fn run(call: Call, op: Op) -> Response {
    let params = params(call.query.as_deref());
    apply(&call, &params, &op).into_response()
}

fn credential_of(shared: &Shared, params: &BTreeMap<String, String>) -> Result<String, String> {
    match &shared.api {
        SandboxApi::Generic => {
            let param = &shared.names.credential_param;
            params
                .get(param)
                .cloned()
                .ok_or_else(|| format!("{param} is required"))
        }
        SandboxApi::Alloy(options) => {
            if let Some((_, id)) = params.iter().find(|(k, _)| options.is_credential_param(k)) {
                return Ok(id.clone());
            }
            if ["credentialId", "connectionId"]
                .iter()
                .any(|p| params.contains_key(*p))
            {
                lock(&shared.alloy).wrong_credential_params += 1;
            }
            Err(format!(
                "{} is required",
                options.version.credential_param()
            ))
        }
    }
}

/// Closes the connection without a response.
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

fn apply(call: &Call, params: &BTreeMap<String, String>, op: &Op) -> Reply {
    let shared = &*call.control.shared;
    if let SandboxApi::Alloy(options) = &shared.api {
        return alloy_apply(call, params, op, options);
    }
    let names = &shared.names;
    match op {
        Op::List => {
            let query =
                match list::parse_query(params, names, shared.default_limit, shared.max_limit) {
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
        Op::Put(id) => write::put(shared, id, &call.body),
        Op::Count | Op::Customers | Op::Customer(_) => {
            reply::error(StatusCode::NOT_FOUND, "Route not found")
        }
    }
}

/// Alloy's answers (see `alloy`).
fn alloy_apply(
    call: &Call,
    params: &BTreeMap<String, String>,
    op: &Op,
    options: &AlloyOptions,
) -> Reply {
    let shared = &*call.control.shared;
    let not_found = |what: &str, id: &str| {
        reply::error(StatusCode::NOT_FOUND, &format!("{what} {id} not found"))
    };
    let query = || {
        let query = alloy::page_query(options, params)?;
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
        Op::Put(id) => {
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
            write::put_with(shared, &seed::remote_id(index), &call.body, &rules)
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
