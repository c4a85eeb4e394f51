//! HTTP to Rebillia: the `X-AUTH-TOKEN` header, retries of transient failures with backoff,
//! and errors that say what failed without ever carrying the token.
//!
//! One [`Request`] type serves every endpoint (method, path segments, query, optional JSON
//! body): the reads, and the payments write-back's `PUT /invoices/{id}` and
//! `POST /invoices/{id}/charge`. GETs are retried on every transient failure; other methods
//! only when they certainly were not applied (connection refused, 429, 503, 408); a mutation
//! that may have been applied ends as `Unavailable { maybe_applied: true }`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::Value;
use url::Url;

use crate::config::{RebilliaSettings, RetrySettings};
use crate::outbound::retry::{self, GaveUp, Verdict, Wait};
use crate::source::{requests, SourceError};

/// A body for an error message (`crate::outbound`), at Rebillia's length.
fn excerpt(body: &[u8]) -> String {
    crate::outbound::excerpt(body, EXCERPT_CHARS)
}

/// `Retry-After` (`crate::outbound`), capped for Rebillia.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    crate::outbound::retry_after(headers).map(|d| d.min(MAX_RETRY_AFTER))
}

/// Production API root, `/v1` included.
pub const DEFAULT_BASE_URL: &str = "https://api.rebillia.com/v1";
/// The API's cap on `itemPerPage`.
pub const MAX_PAGE_SIZE: u32 = 250;

const EXCERPT_CHARS: usize = 200;
/// A longer `Retry-After` is cut to this: a sync cycle should fail and come back later rather
/// than sleep for an hour.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// One call to the API.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: Method,
    /// For logs and errors, e.g. `GET /invoices`.
    pub label: &'static str,
    /// Below the base URL, each segment percent-encoded (ids come from the ERP).
    pub segments: Vec<String>,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Value>,
}

impl Request {
    pub(crate) fn get(label: &'static str, segments: &[&str]) -> Self {
        Self {
            method: Method::GET,
            label,
            segments: segments.iter().map(|s| (*s).to_owned()).collect(),
            query: Vec::new(),
            body: None,
        }
    }

    /// A mutation with a JSON body.
    pub(crate) fn with_body(
        method: Method,
        label: &'static str,
        segments: &[&str],
        body: Value,
    ) -> Self {
        Self {
            method,
            body: Some(body),
            ..Self::get(label, segments)
        }
    }

    pub(crate) fn query(mut self, query: Vec<(&'static str, String)>) -> Self {
        self.query = query;
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    #[error(
        "{label}: credentials refused (HTTP {status}): {message}; check the Rebillia API token"
    )]
    Unauthorized {
        label: &'static str,
        status: u16,
        message: String,
    },
    #[error("{label}: not found: {message}")]
    NotFound {
        label: &'static str,
        message: String,
    },
    #[error("{label}: refused with HTTP {status}: {message}")]
    Rejected {
        label: &'static str,
        status: u16,
        message: String,
    },
    #[error("{label}: failed after {attempts} attempt(s){}: {message}", ambiguity(*maybe_applied))]
    Unavailable {
        label: &'static str,
        attempts: u32,
        message: String,
        /// A mutation whose last attempt reached the server and got no definite answer
        /// (a timeout, a lost connection, a 5xx other than 503): it may have been applied.
        maybe_applied: bool,
    },
    #[error("{label}: unreadable answer: {message}")]
    Decode {
        label: &'static str,
        message: String,
    },
}

fn ambiguity(maybe_applied: bool) -> &'static str {
    if maybe_applied {
        " (it may have been applied)"
    } else {
        ""
    }
}

impl ClientError {
    pub(crate) fn into_source_error(self, source_name: &str) -> SourceError {
        let source_name = source_name.to_owned();
        let message = self.to_string();
        match self {
            Self::Unauthorized { .. } => SourceError::Unauthorized {
                source_name,
                message,
            },
            Self::Unavailable { .. } => SourceError::Unavailable {
                source_name,
                message,
            },
            Self::NotFound { .. } | Self::Rejected { .. } | Self::Decode { .. } => {
                SourceError::Protocol {
                    source_name,
                    message,
                }
            }
        }
    }
}

/// How one attempt failed.
enum Failure {
    Final(ClientError),
    Transient {
        message: String,
        /// The request may have reached the server (it must not be repeated unless it is a GET).
        sent: bool,
        retry_after: Option<Duration>,
    },
}

impl Failure {
    fn verdict(&self) -> Verdict {
        match self {
            Self::Final(_) => Verdict::Permanent,
            // A 429 (the only answer with a Retry-After here) was not applied, whatever the
            // method; Rebillia has no shared budget to pause, so the wait is taken here.
            Self::Transient {
                retry_after: Some(at_least),
                ..
            } => Verdict::Retry(Wait::AtLeast(*at_least)),
            Self::Transient { sent: false, .. } => Verdict::Retry(Wait::Backoff),
            Self::Transient { sent: true, .. } => Verdict::Ambiguous,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Final(err) => err.fmt(f),
            Self::Transient { message, .. } => f.write_str(message),
        }
    }
}

/// The Rebillia client of one source.
#[derive(Clone)]
pub(crate) struct RebilliaClient {
    source: Arc<str>,
    http: reqwest::Client,
    base: Url,
    /// `X-AUTH-TOKEN`, marked sensitive.
    auth: HeaderMap,
    retry: RetrySettings,
}

impl fmt::Debug for RebilliaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RebilliaClient")
            .field("source", &self.source)
            .field("base", &self.base.as_str())
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl RebilliaClient {
    pub(crate) fn new(source: &str, settings: &RebilliaSettings) -> Result<Self, SourceError> {
        let http = requests::client(source, &settings.http)?;
        let mut token = HeaderValue::from_str(settings.token.expose_secret()).map_err(|_| {
            SourceError::Unauthorized {
                source_name: source.to_owned(),
                message: "the Rebillia token contains characters an HTTP header cannot carry; check sources.<name>.rebillia.token".to_owned(),
            }
        })?;
        // Keeps the value out of Debug output and marks it never-index for HTTP/2.
        token.set_sensitive(true);
        let mut auth = HeaderMap::new();
        auth.insert(HeaderName::from_static("x-auth-token"), token);
        Ok(Self {
            source: Arc::from(source),
            http,
            base: settings.base_url.clone(),
            auth,
            retry: settings.http.retry,
        })
    }

    /// Sends `request`, retrying what can be retried; the answer's JSON (`Null` for no body).
    pub(crate) async fn send(&self, request: &Request) -> Result<Value, ClientError> {
        let policy = retry::Policy {
            settings: &self.retry,
            api: "Rebillia",
            read: request.method == Method::GET,
            max_rate_limited: 0,
        };
        retry::send(
            policy,
            |attempt| {
                tracing::debug_span!(
                    "rebillia_request",
                    source = %self.source,
                    endpoint = request.label,
                    attempt,
                )
            },
            || self.send_once(request),
            Failure::verdict,
            |failure, why, attempts| match failure {
                Failure::Final(err) => err,
                Failure::Transient { message, .. } => ClientError::Unavailable {
                    label: request.label,
                    attempts,
                    message,
                    // Only a mutation that may have been applied is handed back as ambiguous;
                    // what was retried until the attempts ran out certainly was not applied.
                    maybe_applied: why == GaveUp::Ambiguous,
                },
            },
        )
        .await
    }

    async fn send_once(&self, request: &Request) -> Result<Value, Failure> {
        let label = request.label;
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| {
                Failure::Final(ClientError::Decode {
                    label,
                    message: "the base URL cannot have a path".to_owned(),
                })
            })?
            .pop_if_empty()
            .extend(&request.segments);
        let builder = crate::outbound::json_request(
            self.http
                .request(request.method.clone(), url)
                .headers(self.auth.clone()),
            &request.query,
            request.body.as_ref().map(Value::to_string),
        );
        let started = tokio::time::Instant::now();
        let response = builder.send().await.map_err(|e| {
            requests::record(
                &self.source,
                requests::Ended::of_error(&e),
                started.elapsed(),
            );
            transport(&e)
        })?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response.bytes().await;
        let ended = match &body {
            Ok(_) => requests::Ended::Status(status.as_u16()),
            Err(e) => requests::Ended::of_error(e),
        };
        requests::record(&self.source, ended, started.elapsed());
        let body = body.map_err(|e| transport(&e))?;
        tracing::debug!(
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            bytes = body.len(),
            "Rebillia response"
        );
        classify(label, status, retry_after, &body)
    }
}

fn classify(
    label: &'static str,
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<Value, Failure> {
    if status.is_success() {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        return serde_json::from_slice(body).map_err(|e| {
            Failure::Final(ClientError::Decode {
                label,
                message: format!("not JSON ({e}): {}", excerpt(body)),
            })
        });
    }
    let message = error_message(body);
    let code = status.as_u16();
    Err(match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            Failure::Final(ClientError::Unauthorized {
                label,
                status: code,
                message,
            })
        }
        StatusCode::NOT_FOUND => Failure::Final(ClientError::NotFound { label, message }),
        StatusCode::TOO_MANY_REQUESTS => Failure::Transient {
            message: format!("HTTP 429: {message}"),
            sent: true,
            // Present even without the header: a 429 was certainly not applied.
            retry_after: Some(retry_after.unwrap_or_default()),
        },
        // The service (or the load balancer before it) did not take the request (503), or gave
        // up before it had all of it (408): nothing was applied.
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT => Failure::Transient {
            message: format!("HTTP {code}: {message}"),
            sent: false,
            retry_after: None,
        },
        s if s.is_server_error() => Failure::Transient {
            message: format!("HTTP {code}: {message}"),
            sent: true,
            retry_after: None,
        },
        _ => Failure::Final(ClientError::Rejected {
            label,
            status: code,
            message,
        }),
    })
}

fn transport(err: &reqwest::Error) -> Failure {
    let mut message = crate::outbound::error_chain(err);
    if err.is_timeout() {
        message = format!("timed out: {message}");
    }
    Failure::Transient {
        message,
        sent: !err.is_connect(),
        retry_after: None,
    }
}

/// `{"message": ...}` of a Rebillia error, else the start of the body.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|json| {
            json.get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| excerpt(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: u16, body: &str) -> Failure {
        let status = StatusCode::from_u16(status).unwrap();
        classify("GET /invoices", status, None, body.as_bytes())
            .err()
            .unwrap()
    }

    #[test]
    fn statuses_are_sorted_into_final_and_transient() {
        assert!(matches!(
            failure(401, r#"{"code":"UNAUTHORIZED","message":"Invalid API key"}"#),
            Failure::Final(ClientError::Unauthorized { status: 401, ref message, .. }) if message == "Invalid API key"
        ));
        assert!(matches!(
            failure(403, ""),
            Failure::Final(ClientError::Unauthorized { .. })
        ));
        assert!(matches!(
            failure(404, "{}"),
            Failure::Final(ClientError::NotFound { .. })
        ));
        assert!(matches!(
            failure(400, "{}"),
            Failure::Final(ClientError::Rejected { status: 400, .. })
        ));
        assert!(matches!(
            failure(500, "{}"),
            Failure::Transient {
                retry_after: None,
                ..
            }
        ));
        assert!(matches!(
            failure(503, "<html> 503 </html>"),
            Failure::Transient { ref message, .. } if message.contains("<html> 503 </html>")
        ));
        assert!(matches!(
            failure(429, ""),
            Failure::Transient {
                retry_after: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn only_what_certainly_was_not_applied_is_sent_again_as_a_mutation() {
        assert_eq!(failure(500, "{}").verdict(), Verdict::Ambiguous);
        assert_eq!(failure(503, "{}").verdict(), Verdict::Retry(Wait::Backoff));
        assert_eq!(
            failure(429, "").verdict(),
            Verdict::Retry(Wait::AtLeast(Duration::ZERO))
        );
        assert_eq!(failure(404, "{}").verdict(), Verdict::Permanent);
    }

    #[test]
    fn success_bodies_are_json_or_nothing() {
        let ok = |body: &str| classify("x", StatusCode::OK, None, body.as_bytes()).ok();
        assert_eq!(ok(r#"{"a":1}"#), Some(serde_json::json!({"a": 1})));
        assert_eq!(ok(" "), Some(Value::Null));
        assert!(ok("<html>").is_none());
    }

    #[test]
    fn an_html_error_page_is_reduced_to_its_title() {
        let page = format!(
            "<!doctype html><html><head><title>503 Service Unavailable</title>\
             <script>{}</script></head><body>down</body></html>",
            "var a = 1; ".repeat(100)
        );
        assert!(matches!(
            failure(503, &page),
            Failure::Transient { ref message, .. } if message == "HTTP 503: an HTML page: 503 Service Unavailable"
        ));
    }

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        assert_eq!(excerpt(b"a\n  b"), "a b");
        assert_eq!(excerpt(b""), "(empty body)");
        assert_eq!(
            excerpt("x".repeat(500).as_bytes()).chars().count(),
            EXCERPT_CHARS + 1
        );
    }
}
