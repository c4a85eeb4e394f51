//! What the B2B Edition fake adds to the shared harness (`crate::harness`, which authenticates
//! through [`Fake::admit`], counts against the store's budget, picks a fault, waits the latency,
//! and records): who a request is for (the store its credentials open), its error answers, and
//! its operations on the store's data. Every request's work runs on when its client hangs up.

use axum::http::request;
use axum::response::{IntoResponse, Response};
use serde_json::Map;

use super::control::SandboxError;
use super::query::RawQuery;
use super::reply::{self, ApiReply};
use super::state::{lock, Shared};
use super::{auth, companies, extra_fields, invoices, list, payments};
use crate::harness::pipeline::{ApiCall, BodyError};
use crate::harness::{Answer, Fake, Harness, Refusal};

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
    fn takes_json_body(&self) -> bool {
        matches!(self, Op::CreateInvoice | Op::UpdateInvoice(_))
    }
}

/// An API request to the B2B fake.
pub(crate) type Call = ApiCall<Shared>;

impl Fake for Shared {
    type Error = SandboxError;
    /// The docs cap PDFs at 5 MB; JSON is far less.
    const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
    const RATE_LIMITED: bool = true;
    const LOGS_TARGETS: bool = true;

    fn harness(&self) -> &Harness {
        &self.harness
    }

    fn route_prefix(&self) -> &str {
        "/api/v3/io"
    }

    /// The store the credentials open.
    fn admit(&self, request: &request::Parts) -> Result<String, Box<Refusal>> {
        match auth::authenticate(&self.credentials, &request.headers) {
            Ok(hash) => Ok(hash.to_owned()),
            Err(refused) => Err(Box::new(Refusal {
                answer: refused.into_response(),
                tenant: None,
            })),
        }
    }

    fn answer(&self, answer: Answer) -> Response {
        match answer {
            Answer::InternalError => reply::internal_error(),
            Answer::Unavailable => reply::unavailable(),
            Answer::TooManyRequests(retry_after) => reply::too_many_requests(retry_after),
            Answer::TooLarge => reply::too_large("The request body is too large"),
            Answer::RouteNotFound => reply::not_found("Route not found"),
        }
        .into_response()
    }

    fn invalid(message: String) -> SandboxError {
        SandboxError::Invalid(message)
    }
}

/// Performs the operation on the store's data.
pub(crate) async fn run(call: Call, op: Op) -> Response {
    apply(&call, &op).into_response()
}

fn apply(call: &Call, op: &Op) -> ApiReply {
    let body = if op.takes_json_body() {
        match call.json_object() {
            Ok(body) => body,
            Err(refused) => return refused_body(refused),
        }
    } else {
        Map::new()
    };
    let shared = &call.control.shared;
    let query = RawQuery::parse(call.query.as_deref());
    let now = shared.harness.clock.now_unix();
    let mut stores = lock(&shared.stores);
    let Some(store) = stores.get_mut(&call.tenant) else {
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

/// A create or update whose body is not a JSON object: 415 without a JSON `Content-Type`,
/// else 400.
fn refused_body(error: BodyError) -> ApiReply {
    match error {
        BodyError::NotJson => reply::unsupported_media_type(error.message()),
        BodyError::NotAnObject | BodyError::Invalid => reply::bad_request(error.message()),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn bodies_that_are_not_json_objects_are_415_or_400() {
        assert_eq!(
            refused_body(BodyError::NotJson).status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            refused_body(BodyError::NotAnObject).status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            refused_body(BodyError::Invalid).status,
            StatusCode::BAD_REQUEST
        );
    }
}
