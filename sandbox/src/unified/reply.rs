//! Answers of the fake unified API. Errors are JSON
//! `{"statusCode": 404, "error": "Not Found", "message": "..."}`, except 503s, which come from
//! the edge as HTML (a client must not assume every error body is JSON).

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
        };
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

pub(crate) fn ok(body: Value) -> Reply {
    Reply {
        status: StatusCode::OK,
        body: Body::Json(body),
        retry_after: None,
    }
}

pub(crate) fn error(status: StatusCode, message: &str) -> Reply {
    Reply {
        status,
        body: Body::Json(json!({
            "statusCode": status.as_u16(),
            "error": status.canonical_reason().unwrap_or("Error"),
            "message": message,
        })),
        retry_after: None,
    }
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
    Reply {
        status: StatusCode::SERVICE_UNAVAILABLE,
        body: Body::Html(
            "<html><head><title>503 Service Temporarily Unavailable</title></head>\
             <body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>",
        ),
        retry_after: None,
    }
}
