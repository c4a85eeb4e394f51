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
use url::Url;

use super::client::{error_chain, Answer, UnifiedClient};
use crate::outbound::retry::{self, GaveUp, Verdict, Wait};

/// Why a write-back request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum CallError {
    /// A definite refusal (4xx other than 408 and 429), with the API's words.
    #[error("{message}")]
    Refused { status: u16, message: String },
    /// Certainly not applied (no connection, 408, 429, 503), after the retries.
    #[error("{message}")]
    NotSent { message: String },
    /// May have been applied (a mutation that timed out after sending, lost its connection, or
    /// got a 5xx other than 503). Never returned for a `GET`, whose failures are all retried.
    #[error("{message} (it may have been applied)")]
    Unknown { message: String },
    /// A 2xx whose body is not JSON (for a mutation: applied all the same).
    #[error("{message}")]
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
    let policy = retry::Policy {
        settings: client.retry(),
        api: "unified write-back",
        read: method == Method::GET,
        max_rate_limited: 0,
    };
    let answer = retry::send(
        policy,
        |attempt| {
            tracing::debug_span!(
                "unified_write_back_request",
                source = client.source_name(),
                endpoint,
                attempt,
            )
        },
        || async {
            match client.exchange(method.clone(), url.clone(), body).await {
                Ok(answer) => sort_answer(client, &answer).map(|()| answer),
                Err(err) => Err(sort_transport(&err)),
            }
        },
        Attempt::verdict,
        |failure, why, attempts| give_up(endpoint, failure, why, attempts),
    )
    .await?;
    serde_json::from_slice(&answer.body).map_err(|e| CallError::Unreadable {
        message: format!("{endpoint}: the answer is not JSON ({e})"),
    })
}

impl Attempt {
    fn verdict(&self) -> Verdict {
        match self {
            Self::Refused { .. } => Verdict::Permanent,
            // A 429 paused the source's budget for its Retry-After (`UnifiedClient::exchange`):
            // the next attempt's permit waits it out.
            Self::NotSent {
                retry_after: Some(_),
                ..
            } => Verdict::Retry(Wait::Budget),
            Self::NotSent {
                retry_after: None, ..
            } => Verdict::Retry(Wait::Backoff),
            // A read changes nothing: the loop retries it like any transient failure.
            Self::Unknown { .. } => Verdict::Ambiguous,
        }
    }
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused { message, .. }
            | Self::NotSent { message, .. }
            | Self::Unknown { message } => f.write_str(message),
        }
    }
}

/// The error of a request [`call`] gave up on.
fn give_up(endpoint: &str, failure: Attempt, why: GaveUp, attempts: u32) -> CallError {
    match failure {
        Attempt::Refused { status, message } => CallError::Refused {
            status,
            message: format!("{endpoint}: {message}"),
        },
        Attempt::Unknown { message } if why == GaveUp::Ambiguous => CallError::Unknown {
            message: format!("{endpoint}: {message}"),
        },
        Attempt::NotSent { message, .. } | Attempt::Unknown { message } => CallError::NotSent {
            message: format!("{endpoint}: {message} (gave up after {attempts} attempts)"),
        },
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

    #[test]
    fn a_write_back_that_gives_up_says_whether_it_may_have_been_applied() {
        let unknown = || Attempt::Unknown {
            message: "HTTP 502: busy".to_owned(),
        };
        assert_eq!(
            give_up("PUT /i/{id}", unknown(), GaveUp::Ambiguous, 1),
            CallError::Unknown {
                message: "PUT /i/{id}: HTTP 502: busy".to_owned()
            }
        );
        assert_eq!(
            give_up("GET /i/{id}", unknown(), GaveUp::Exhausted, 5),
            CallError::NotSent {
                message: "GET /i/{id}: HTTP 502: busy (gave up after 5 attempts)".to_owned()
            },
            "a read's unknown outcomes are retried until the attempts run out"
        );
        let refused = Attempt::Refused {
            status: 422,
            message: "HTTP 422: bad".to_owned(),
        };
        assert_eq!(
            give_up("PUT /i/{id}", refused, GaveUp::Permanent, 1),
            CallError::Refused {
                status: 422,
                message: "PUT /i/{id}: HTTP 422: bad".to_owned()
            }
        );
        assert_eq!(unknown().verdict(), Verdict::Ambiguous);
        assert_eq!(sorted(429).verdict(), Verdict::Retry(Wait::Budget));
        assert_eq!(sorted(503).verdict(), Verdict::Retry(Wait::Backoff));
        assert_eq!(sorted(404).verdict(), Verdict::Permanent);
    }
}
