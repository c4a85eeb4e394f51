//! What the Rebillia fake adds to the shared harness (`crate::harness`): who a request is for
//! (the `X-AUTH-TOKEN` opens the one company), its error answers, and its operations. Rebillia
//! publishes no rate limit, so none is modelled (a 429 can still be injected as a fault).

use axum::http::{request, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde_json::Map;

use super::api::{self, Params};
use super::control::RebilliaSandboxError;
use super::reply::{self, Reply};
use super::state::{lock, Shared};
use super::update;
use crate::harness::pipeline::{ApiCall, BodyError};
use crate::harness::{Answer, Fake, Harness, Refusal};

const AUTH_HEADER: &str = "x-auth-token";

/// An API request to the Rebillia fake.
pub(crate) type Call = ApiCall<Shared>;

impl Fake for Shared {
    type Error = RebilliaSandboxError;
    const MAX_BODY_BYTES: usize = 1024 * 1024;
    const RATE_LIMITED: bool = false;
    const LOGS_TARGETS: bool = false;

    fn harness(&self) -> &Harness {
        &self.harness
    }

    fn route_prefix(&self) -> &str {
        "/v1"
    }

    fn admit(&self, request: &request::Parts) -> Result<String, Box<Refusal>> {
        if authenticated(&self.token, &request.headers) {
            // The request log's tenant column: the company the token opens.
            Ok(self.company.clone())
        } else {
            Err(Box::new(Refusal {
                answer: reply::unauthorized().into_response(),
                tenant: None,
            }))
        }
    }

    fn answer(&self, answer: Answer) -> Response {
        match answer {
            Answer::InternalError => reply::internal_error(),
            Answer::Unavailable => reply::unavailable(),
            Answer::TooManyRequests(retry_after) => reply::too_many_requests(retry_after),
            Answer::TooLarge => reply::too_large(),
            Answer::RouteNotFound => reply::not_found("Route not found"),
        }
        .into_response()
    }

    fn invalid(message: String) -> RebilliaSandboxError {
        RebilliaSandboxError::Invalid(message)
    }
}

/// An API operation with its path parameter.
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
    fn takes_json_body(&self) -> bool {
        matches!(self, Op::UpdateInvoice(_) | Op::ChargeInvoice(_))
    }
}

/// Performs the operation on the company's data.
pub(crate) async fn run(call: Call, op: Op) -> Response {
    apply(&call, &op).into_response()
}

fn apply(call: &Call, op: &Op) -> Reply {
    let body = if op.takes_json_body() {
        match call.json_object() {
            Ok(body) => body,
            Err(BodyError::NotJson) => return reply::unsupported_media_type(),
            Err(refused) => return reply::bad_request(refused.message()),
        }
    } else {
        Map::new()
    };
    let shared = &call.control.shared;
    let params = Params::parse(call.query.as_deref());
    let now = shared.harness.clock.now_unix();
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
