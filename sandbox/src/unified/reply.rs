//! Answers of the fake unified API. Errors are JSON
//! `{"statusCode": 404, "error": "Not Found", "message": "..."}`, except 503s, which come from
//! the edge as HTML (a client must not assume every error body is JSON).

use axum::http::StatusCode;
use serde_json::{json, Value};

pub(crate) use crate::harness::reply::Reply;

pub(crate) fn ok(body: Value) -> Reply {
    Reply::ok(body)
}

pub(crate) fn error(status: StatusCode, message: &str) -> Reply {
    Reply::json(
        status,
        json!({
            "statusCode": status.as_u16(),
            "error": status.canonical_reason().unwrap_or("Error"),
            "message": message,
        }),
    )
}

pub(crate) fn too_many_requests(retry_after: Option<u64>) -> Reply {
    Reply {
        retry_after,
        ..error(StatusCode::TOO_MANY_REQUESTS, "Too many requests")
    }
}

pub(crate) fn internal_error() -> Reply {
    error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
}

pub(crate) fn unavailable() -> Reply {
    Reply::edge_unavailable()
}
