//! A fake's finished answer, before it becomes an HTTP response: a status, a JSON body (in the
//! fake's own envelope), an HTML page (what an edge proxy answers: not JSON at all) or nothing,
//! and a `Retry-After`. Kept as data so that unit tests read the status and body directly.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// What an edge proxy in front of an API answers for a 503: a client must not assume every error
/// body is JSON.
pub(crate) const EDGE_503_PAGE: &str =
    "<html><head><title>503 Service Temporarily Unavailable</title></head>\
     <body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>";

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Body,
    /// `Retry-After` in whole seconds.
    pub retry_after: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Body {
    Json(Value),
    Html(&'static str),
    Empty,
}

impl Reply {
    pub(crate) fn with(status: StatusCode, body: Body) -> Self {
        Self {
            status,
            body,
            retry_after: None,
        }
    }

    pub(crate) fn json(status: StatusCode, value: Value) -> Self {
        Self::with(status, Body::Json(value))
    }

    pub(crate) fn ok(value: Value) -> Self {
        Self::json(StatusCode::OK, value)
    }

    pub(crate) fn no_content() -> Self {
        Self::with(StatusCode::NO_CONTENT, Body::Empty)
    }

    /// The edge's HTML 503.
    pub(crate) fn edge_unavailable() -> Self {
        Self::with(StatusCode::SERVICE_UNAVAILABLE, Body::Html(EDGE_503_PAGE))
    }

    /// The JSON body, for unit tests (`null` for a page or no body).
    #[cfg(test)]
    pub(crate) fn json_body(&self) -> &Value {
        match &self.body {
            Body::Json(value) => value,
            Body::Html(_) | Body::Empty => &Value::Null,
        }
    }
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
