//! Answers: the resource's JSON on success, `{code, message, timestamp}` (the reference
//! client's `ApiError`) on failure, and an HTML page for 503s, which come from the edge.

use axum::http::StatusCode;
use serde_json::json;

pub(crate) use crate::harness::reply::Reply;

fn error(status: StatusCode, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({
            "code": code,
            "message": message,
            "timestamp": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
        }),
    )
}

pub(crate) fn bad_request(message: &str) -> Reply {
    error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
}

pub(crate) fn unauthorized() -> Reply {
    error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "Missing or invalid API key (X-AUTH-TOKEN)",
    )
}

pub(crate) fn not_found(message: &str) -> Reply {
    error(StatusCode::NOT_FOUND, "NOT_FOUND", message)
}

pub(crate) fn unsupported_media_type() -> Reply {
    error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
        "Content-Type must be application/json",
    )
}

pub(crate) fn too_large() -> Reply {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        "The request body is too large",
    )
}

pub(crate) fn too_many_requests(retry_after: Option<u64>) -> Reply {
    let mut reply = error(
        StatusCode::TOO_MANY_REQUESTS,
        "TOO_MANY_REQUESTS",
        "Too many requests",
    );
    reply.retry_after = retry_after;
    reply
}

pub(crate) fn internal_error() -> Reply {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL_ERROR",
        "Internal server error",
    )
}

pub(crate) fn unavailable() -> Reply {
    Reply::edge_unavailable()
}
