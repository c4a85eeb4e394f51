//! Answers: the resource's JSON on success, `{code, message, timestamp}` (the reference
//! client's `ApiError`) on failure, and an HTML page for 503s, which come from the edge.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Body,
    pub retry_after: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Body {
    Json(Value),
    Html(&'static str),
    Empty,
}

impl Reply {
    pub(crate) fn ok(value: Value) -> Self {
        Self::with(StatusCode::OK, Body::Json(value))
    }

    pub(crate) fn no_content() -> Self {
        Self::with(StatusCode::NO_CONTENT, Body::Empty)
    }

    fn with(status: StatusCode, body: Body) -> Self {
        Self {
            status,
            body,
            retry_after: None,
        }
    }

    /// The JSON body, for unit tests.
    #[cfg(test)]
    pub(crate) fn json(&self) -> &Value {
        match &self.body {
            Body::Json(value) => value,
            _ => &Value::Null,
        }
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Reply {
    Reply::with(
        status,
        Body::Json(json!({
            "code": code,
            "message": message,
            "timestamp": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
        })),
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
    Reply::with(
        StatusCode::SERVICE_UNAVAILABLE,
        Body::Html(
            "<html><head><title>503 Service Temporarily Unavailable</title></head>\
             <body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>",
        ),
    )
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = match self.body {
            Body::Json(value) => (self.status, axum::Json(value)).into_response(),
            Body::Html(page) => (
                self.status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                page,
            )
                .into_response(),
            Body::Empty => self.status.into_response(),
        };
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
