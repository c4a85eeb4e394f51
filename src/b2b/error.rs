//! What went wrong talking to B2B Edition, in terms the caller can act on.
//!
//! The one distinction that matters most is *ambiguity*: a mutating call that timed out, lost its
//! connection after sending, or got a 5xx may have been applied. The client never retries those;
//! it returns them so that the caller, who owns the idempotency ledger, can look before it acts.

use std::time::Duration;

/// A label for the endpoint a request went to, e.g. `POST /ip/invoices` (path templates, no ids).
pub type Endpoint = &'static str;

#[derive(Debug, thiserror::Error)]
pub enum B2bError {
    /// 400/422: B2B Edition refused the content. Retrying the same request will fail again.
    #[error("{endpoint}: B2B Edition rejected the request: {message}")]
    Validation { endpoint: Endpoint, message: String },

    #[error("{endpoint}: not found in B2B Edition: {message}")]
    NotFound { endpoint: Endpoint, message: String },

    /// 401/403: the token, the store hash or the auth style is wrong, or the token lacks the scope.
    #[error(
        "{endpoint}: B2B Edition refused the credentials (HTTP {status}); check the store's token, \
         store_hash and auth style, and that the API account has the B2B Edition scope"
    )]
    Unauthorized { endpoint: Endpoint, status: u16 },

    /// 429: the store's 150 requests/minute are used up (by this daemon or another app).
    #[error("{endpoint}: rate limited by B2B Edition; retry after {}s", retry_after.as_secs())]
    RateLimited {
        endpoint: Endpoint,
        retry_after: Duration,
    },

    /// Another 4xx (405, 409, 413, 415, ...): the request itself is wrong for this API.
    #[error("{endpoint}: B2B Edition refused the request with HTTP {status}: {message}")]
    Rejected {
        endpoint: Endpoint,
        status: u16,
        message: String,
    },

    #[error("{endpoint}: B2B Edition failed with HTTP {status}{}: {excerpt}", ambiguity(*ambiguous))]
    Server {
        endpoint: Endpoint,
        status: u16,
        ambiguous: bool,
        excerpt: String,
    },

    #[error("{endpoint}: no answer from B2B Edition in time{}", ambiguity(*ambiguous))]
    Timeout { endpoint: Endpoint, ambiguous: bool },

    /// The connection could not be made (refused, no route, no such host): nothing was sent.
    #[error("{endpoint}: cannot reach B2B Edition: {message}")]
    Unreachable { endpoint: Endpoint, message: String },

    #[error("{endpoint}: could not talk to B2B Edition{}: {message}", ambiguity(*ambiguous))]
    Transport {
        endpoint: Endpoint,
        ambiguous: bool,
        message: String,
    },

    /// Not sent: this process no longer holds the store (its lease ended: another replica may
    /// work it now).
    #[error("{endpoint}: not sent: this replica no longer holds the store's lease")]
    Fenced { endpoint: Endpoint },

    /// Not sent: its turn in the budget came after the instant it had to go by (an update built
    /// from state that would be too old by then). Read again and build it anew.
    #[error("{endpoint}: not sent: the state it was built from became too old while it waited for the request budget")]
    Expired { endpoint: Endpoint },

    /// A 2xx whose body is not what the API documents.
    #[error("{endpoint}: unexpected answer from B2B Edition ({message}); body starts: {excerpt}")]
    Decode {
        endpoint: Endpoint,
        message: String,
        excerpt: String,
    },
}

/// Which part of a store's configuration an error points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    Credentials,
    Route,
    Unreachable,
    /// Not the store's configuration: this replica's lease on it ended (the cycle stops all the
    /// same, and another replica carries on).
    LeaseLost,
}

/// A store whose configuration makes every request fail: one error for the cycle, naming the
/// store, the config key and the likely fix.
#[derive(Debug, thiserror::Error)]
#[error("store {store}: {what}")]
pub struct Misconfigured {
    pub store: String,
    pub what: String,
}

impl Misconfigured {
    pub fn new(store: &str, base_url: &str, problem: Problem, error: &B2bError) -> Self {
        let what = match problem {
            Problem::Credentials => {
                let status = match error {
                    B2bError::Unauthorized { status, .. } => *status,
                    _ => 401,
                };
                format!(
                    "B2B Edition refused the credentials (HTTP {status} on {}); fix \
                     stores.{store}.b2b.token (or token_file), store_hash and auth, and check that \
                     the API account has the B2B Edition scope",
                    error.endpoint()
                )
            }
            Problem::Route => {
                let hint = if base_url.trim_end_matches('/').ends_with("/api/v3/io") {
                    "check the host"
                } else {
                    "base_url must stop at /api/v3/io (e.g. https://api-b2b.bigcommerce.com/api/v3/io)"
                };
                format!(
                    "B2B Edition has no such route at stores.{store}.b2b.base_url = {base_url} \
                     ({error}); {hint}"
                )
            }
            Problem::LeaseLost => {
                "this replica's lease on the store ended (another replica may work it now): \
                 stopped before sending anything more"
                    .to_owned()
            }
            Problem::Unreachable => format!(
                "nothing answers at stores.{store}.b2b.base_url = {base_url} ({error}); check the \
                 URL and that B2B Edition is reachable from this host"
            ),
        };
        Self {
            store: store.to_owned(),
            what,
        }
    }
}

fn ambiguity(ambiguous: bool) -> &'static str {
    if ambiguous {
        " (the change may have been applied: look it up before retrying)"
    } else {
        ""
    }
}

impl B2bError {
    /// True when a mutating request may have been applied although it failed.
    pub fn is_ambiguous(&self) -> bool {
        match self {
            Self::Server { ambiguous, .. }
            | Self::Timeout { ambiguous, .. }
            | Self::Transport { ambiguous, .. } => *ambiguous,
            _ => false,
        }
    }

    /// True when the failure is transient: the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Server { .. }
                | Self::Timeout { .. }
                | Self::Transport { .. }
                | Self::Unreachable { .. }
        )
    }

    /// What is wrong with the whole store's configuration when this error says so, rather than
    /// with one invoice: refused credentials, an API route that does not exist (a `base_url`
    /// that does not stop at `/api/v3/io`), nothing answering at the address. Every request of
    /// the cycle would fail the same way, so the cycle stops instead of failing each invoice.
    pub fn misconfiguration(&self) -> Option<Problem> {
        match self {
            Self::Unauthorized { .. } => Some(Problem::Credentials),
            // A collection route (no `{id}` in it) that is not there: the base URL is wrong.
            Self::NotFound { endpoint, .. } if !endpoint.contains('{') => Some(Problem::Route),
            Self::Unreachable { .. } => Some(Problem::Unreachable),
            Self::Fenced { .. } => Some(Problem::LeaseLost),
            _ => None,
        }
    }

    pub fn endpoint(&self) -> Endpoint {
        match self {
            Self::Validation { endpoint, .. }
            | Self::NotFound { endpoint, .. }
            | Self::Unauthorized { endpoint, .. }
            | Self::RateLimited { endpoint, .. }
            | Self::Rejected { endpoint, .. }
            | Self::Server { endpoint, .. }
            | Self::Timeout { endpoint, .. }
            | Self::Transport { endpoint, .. }
            | Self::Unreachable { endpoint, .. }
            | Self::Expired { endpoint }
            | Self::Fenced { endpoint }
            | Self::Decode { endpoint, .. } => endpoint,
        }
    }

    /// A short, stable name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Validation { .. } => "validation",
            Self::NotFound { .. } => "not_found",
            Self::Unauthorized { .. } => "unauthorized",
            Self::RateLimited { .. } => "rate_limited",
            Self::Rejected { .. } => "rejected",
            Self::Server { .. } => "server",
            Self::Timeout { .. } => "timeout",
            Self::Transport { .. } => "transport",
            Self::Unreachable { .. } => "unreachable",
            Self::Expired { .. } => "expired",
            Self::Fenced { .. } => "fenced",
            Self::Decode { .. } => "decode",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ambiguous_errors_say_so() {
        let e = B2bError::Server {
            endpoint: "POST /ip/invoices",
            status: 500,
            ambiguous: true,
            excerpt: String::new(),
        };
        assert!(e.is_ambiguous());
        assert!(e.to_string().contains("may have been applied"));
        let e = B2bError::Timeout {
            endpoint: "GET /ip/invoices",
            ambiguous: false,
        };
        assert!(!e.is_ambiguous());
        assert!(!e.to_string().contains("may have been applied"));
    }
}
