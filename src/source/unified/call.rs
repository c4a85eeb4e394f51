//! Requests of the payments write-back, with failures sorted by what they mean for a write:
//! refused (nothing applied), not sent (nothing applied, safe to send again) or unknown (may
//! have been applied).
//!
//! The read path ([`UnifiedClient::send`]) retries every transient failure; here only failures
//! that certainly applied nothing are retried for a `PUT`. A `PUT` that timed out after sending,
//! lost its connection or got a 5xx other than 503 is handed back at once: the engine settles it
//! by reading the invoice before anything is sent again.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tracing::Instrument;
use url::Url;

use super::client::{error_chain, Answer, UnifiedClient};
use crate::b2b::retry::backoff;

/// Why a write-back request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CallError {
    /// A definite refusal (4xx other than 408 and 429), with the API's words.
    Refused { status: u16, message: String },
    /// Certainly not applied (no connection, 408, 429, 503), after the retries.
    NotSent { message: String },
    /// May have been applied (a mutation that timed out after sending, lost its connection, or
    /// got a 5xx other than 503). Never returned for a `GET`, whose failures are all retried.
    Unknown { message: String },
    /// A 2xx whose body is not JSON (for a mutation: applied all the same).
    Unreadable { message: String },
}

/// How one attempt ended without success.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    Refused {
        status: u16,
        message: String,
    },
    NotSent {
        message: String,
        retry_after: Option<Duration>,
    },
    Unknown {
        message: String,
    },
}

/// Sends `method url [body]`; `endpoint` labels logs and errors (`PUT /accounting/invoices/{id}`).
pub(super) async fn call(
    client: &UnifiedClient,
    endpoint: &str,
    method: Method,
    url: Url,
    body: Option<&[u8]>,
) -> Result<Value, CallError> {
    let is_read = method == Method::GET;
    let max_attempts = client.retry().max_attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let span = tracing::debug_span!(
            "unified_write_back_request",
            source = client.source_name(),
            endpoint,
            attempt,
        );
        let outcome = client
            .exchange(method.clone(), url.clone(), body)
            .instrument(span.clone())
            .await;
        let failure = match outcome {
            Ok(answer) => match sort_answer(client, &answer) {
                Ok(()) => {
                    return serde_json::from_slice(&answer.body).map_err(|e| {
                        CallError::Unreadable {
                            message: format!("{endpoint}: the answer is not JSON ({e})"),
                        }
                    })
                }
                Err(failure) => failure,
            },
            Err(err) => sort_transport(&err),
        };
        let (message, retry_after) = match failure {
            Attempt::Refused { status, message } => {
                return Err(CallError::Refused {
                    status,
                    message: format!("{endpoint}: {message}"),
                })
            }
            // A read changes nothing: an unknown outcome is one more transient failure.
            Attempt::Unknown { message } if is_read => (message, None),
            Attempt::Unknown { message } => {
                span.in_scope(|| {
                    tracing::warn!(error = %message, "unified write may or may not have been applied")
                });
                return Err(CallError::Unknown {
                    message: format!("{endpoint}: {message}"),
                });
            }
            Attempt::NotSent {
                message,
                retry_after,
            } => (message, retry_after),
        };
        if attempt >= max_attempts {
            return Err(CallError::NotSent {
                message: format!("{endpoint}: {message} (gave up after {attempt} attempts)"),
            });
        }
        let wait = retry_after.unwrap_or_else(|| backoff(client.retry(), attempt));
        span.in_scope(|| {
            tracing::info!(
                error = %message,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "retrying unified write-back request"
            )
        });
        tokio::time::sleep(wait).await;
    }
}

/// A non-2xx answer as an [`Attempt`]; `Ok` for a 2xx.
fn sort_answer(client: &UnifiedClient, answer: &Answer) -> Result<(), Attempt> {
    if answer.status.is_success() {
        return Ok(());
    }
    let message = format!(
        "HTTP {}: {}",
        answer.status.as_u16(),
        client.error_message(&answer.body)
    );
    Err(sort_status(answer.status, answer.retry_after, message))
}

fn sort_status(status: StatusCode, retry_after: Option<Duration>, message: String) -> Attempt {
    match status {
        // A 408 says the server gave up before it had the whole request; a 503 that the
        // service did not take it: neither applied anything.
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => Attempt::NotSent {
            message,
            retry_after: None,
        },
        StatusCode::TOO_MANY_REQUESTS => Attempt::NotSent {
            message,
            retry_after,
        },
        s if s.is_server_error() => Attempt::Unknown { message },
        s => Attempt::Refused {
            status: s.as_u16(),
            message,
        },
    }
}

/// A connection never made cannot have applied anything; one lost after sending may have.
fn sort_transport(err: &reqwest::Error) -> Attempt {
    let message = if err.is_timeout() {
        format!("no answer within the timeout ({})", error_chain(err))
    } else {
        error_chain(err)
    };
    if err.is_connect() {
        Attempt::NotSent {
            message,
            retry_after: None,
        }
    } else {
        Attempt::Unknown { message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(status: u16) -> Attempt {
        sort_status(
            StatusCode::from_u16(status).unwrap(),
            Some(Duration::from_secs(2)),
            "m".to_owned(),
        )
    }

    #[test]
    fn statuses_sort_into_refused_not_sent_and_unknown() {
        for status in [400, 401, 403, 404, 409, 422] {
            assert_eq!(
                sorted(status),
                Attempt::Refused {
                    status,
                    message: "m".to_owned()
                }
            );
        }
        assert_eq!(
            sorted(429),
            Attempt::NotSent {
                message: "m".to_owned(),
                retry_after: Some(Duration::from_secs(2))
            }
        );
        for status in [408, 503] {
            assert!(
                matches!(sorted(status), Attempt::NotSent { .. }),
                "{status}"
            );
        }
        for status in [500, 502, 504] {
            assert!(
                matches!(sorted(status), Attempt::Unknown { .. }),
                "{status}"
            );
        }
    }
}
