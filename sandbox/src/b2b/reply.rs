//! Responses in the API's envelope: `{"code": <status>, "data": ..., "meta": {"message": ...}}`.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::harness::reply::Reply;

/// A finished API answer, not yet turned into an HTTP response (so stats can read its status).
pub(crate) type ApiReply = Reply;

fn envelope(status: StatusCode, data: Value, message: &str) -> ApiReply {
    ApiReply::json(
        status,
        json!({ "code": status.as_u16(), "data": data, "meta": { "message": message } }),
    )
}

fn error(status: StatusCode, message: &str, err_msg: &str) -> ApiReply {
    envelope(status, json!({ "errMsg": err_msg }), message)
}

pub(crate) fn success(data: Value) -> ApiReply {
    envelope(StatusCode::OK, data, "SUCCESS")
}

/// Delete and create answer `"Success"` in the docs, the others `"SUCCESS"`.
pub(crate) fn success_titled(data: Value) -> ApiReply {
    envelope(StatusCode::OK, data, "Success")
}

pub(crate) fn page(data: Value, total: usize, limit: usize, offset: usize) -> ApiReply {
    ApiReply::json(
        StatusCode::OK,
        json!({
            "code": 200,
            "data": data,
            "meta": {
                "message": "SUCCESS",
                "pagination": { "totalCount": total, "limit": limit, "offset": offset },
            },
        }),
    )
}

pub(crate) fn bad_request(err_msg: &str) -> ApiReply {
    error(StatusCode::BAD_REQUEST, "Bad Requests Error", err_msg)
}

/// Field validation failures on update, shaped like the documented 400 example.
pub(crate) fn invalid_fields(errors: String, data: Value) -> ApiReply {
    ApiReply::json(
        StatusCode::BAD_REQUEST,
        json!({
            "code": 400,
            "meta": { "message": "Bad Requests Error", "errors": errors },
            "data": data,
        }),
    )
}

pub(crate) fn not_found(err_msg: &str) -> ApiReply {
    error(StatusCode::NOT_FOUND, "Not Found Error", err_msg)
}

pub(crate) fn invoice_not_found() -> ApiReply {
    not_found("Invoice does not exist")
}

pub(crate) fn unauthorized(err_msg: &str) -> ApiReply {
    error(StatusCode::UNAUTHORIZED, "Unauthorized", err_msg)
}

pub(crate) fn too_large(err_msg: &str) -> ApiReply {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "Request Entity Too Large",
        err_msg,
    )
}

pub(crate) fn unsupported_media_type(err_msg: &str) -> ApiReply {
    error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Unsupported Media Type",
        err_msg,
    )
}

pub(crate) fn too_many_requests(retry_after: Option<u64>) -> ApiReply {
    let mut reply = error(
        StatusCode::TOO_MANY_REQUESTS,
        "Too Many Requests",
        "Too many requests",
    );
    reply.retry_after = retry_after;
    reply
}

pub(crate) fn internal_error() -> ApiReply {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal Server Error",
        "Internal Server Error",
    )
}

/// 503s come from the edge, not the application, so they are HTML: a client must not assume
/// every error body is the JSON envelope.
pub(crate) fn unavailable() -> ApiReply {
    Reply::edge_unavailable()
}

#[cfg(test)]
mod tests {
    use axum::http::header;
    use axum::response::IntoResponse;

    use super::*;

    #[test]
    fn errors_use_the_documented_envelope() {
        assert_eq!(
            invoice_not_found().json_body(),
            &json!({"code":404,"data":{"errMsg":"Invoice does not exist"},"meta":{"message":"Not Found Error"}})
        );
        let text = serde_json::to_string(invoice_not_found().json_body()).unwrap();
        assert!(
            text.starts_with(r#"{"code":404,"data""#),
            "key order kept: {text}"
        );
        let invalid = invalid_fields(
            "dueDate: Please enter a valid number; ".into(),
            json!({"id": 33}),
        );
        let text = serde_json::to_string(invalid.json_body()).unwrap();
        assert_eq!(
            text,
            r#"{"code":400,"meta":{"message":"Bad Requests Error","errors":"dueDate: Please enter a valid number; "},"data":{"id":33}}"#
        );
    }

    #[test]
    fn too_many_requests_carries_retry_after() {
        let response = too_many_requests(Some(42)).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "42");
        let response = too_many_requests(None).into_response();
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }
}
