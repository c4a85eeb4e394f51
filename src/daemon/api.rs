//! The daemon's write endpoints, beside `/metrics`: `POST /v1/sources/{name}/sync` (a cycle now,
//! bearer token) and `POST /v1/webhooks/alloy/{source}` (Alloy's `accounting/invoices` events,
//! shared secret; see `webhook`). Each is off (404) until its secret is configured.
//!
//! Secrets are compared in constant time (over their SHA-256, so the length does not leak
//! either). Requests are rate limited, all together, after authentication (429 beyond
//! `daemon.trigger_requests_per_minute`). A source whose store another replica holds is
//! forwarded to it through PostgreSQL (`NOTIFY b2bsync_trigger`): every replica listens and
//! wakes its own loop when it holds the store.

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use subtle::ConstantTimeEq;

use super::trigger::{Requested, Triggers};
use super::webhook::{self, Replays};
use crate::config::DaemonSettings;

/// The `NOTIFY` channel requests for another replica's stores go through.
pub const CHANNEL: &str = "b2bsync_trigger";

/// What one replica asks the replica holding a store to do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Forwarded {
    pub source: String,
    /// Empty: a full cycle; else these invoices.
    #[serde(default)]
    pub invoices: Vec<String>,
}

#[derive(Clone)]
pub struct Api {
    triggers: Triggers,
    pool: PgPool,
    token: Option<Arc<[u8; 32]>>,
    webhook_secret: Option<Arc<[u8; 32]>>,
    max_body: usize,
    replays: Arc<Replays>,
    limiter: Arc<DefaultDirectRateLimiter>,
}

fn digest(secret: &SecretString) -> Arc<[u8; 32]> {
    Arc::new(Sha256::digest(secret.expose_secret().as_bytes()).into())
}

/// Whether `given` is the secret whose digest is `expected`, in constant time.
pub(super) fn same_secret(expected: &[u8; 32], given: &str) -> bool {
    let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
    bool::from(expected.ct_eq(&given))
}

impl Api {
    pub fn new(settings: &DaemonSettings, triggers: Triggers, pool: PgPool) -> Self {
        let rate = settings.trigger_requests_per_minute;
        Self {
            triggers,
            pool,
            token: settings.trigger_token.as_ref().map(digest),
            webhook_secret: settings.webhook_secret.as_ref().map(digest),
            max_body: settings.webhook_max_body,
            replays: Arc::new(Replays::new(settings.webhook_replay_window)),
            limiter: Arc::new(RateLimiter::direct(
                Quota::per_minute(rate).allow_burst(rate.min(NonZeroU32::MIN.saturating_add(29))),
            )),
        }
    }

    /// The routes whose secret is configured.
    pub fn routes(self) -> Router {
        let mut router = Router::new();
        if self.token.is_some() {
            router = router.route("/v1/sources/{name}/sync", post(trigger));
        }
        if self.webhook_secret.is_some() {
            router = router
                .route("/v1/webhooks/alloy/{source}", post(webhook::receive))
                .route(
                    "/v1/webhooks/alloy/{source}/{secret}",
                    post(webhook::receive_with_secret),
                );
        }
        router.with_state(self)
    }

    pub(super) fn webhook_secret(&self) -> Option<&[u8; 32]> {
        self.webhook_secret.as_deref()
    }

    pub(super) fn max_body(&self) -> usize {
        self.max_body
    }

    pub(super) fn replays(&self) -> &Replays {
        &self.replays
    }

    pub(super) fn triggers(&self) -> &Triggers {
        &self.triggers
    }

    pub(super) fn limited(&self) -> Option<Response> {
        self.limiter.check().err().map(|_| {
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "2")],
                Json(json!({"error": "too many trigger requests; try again shortly"})),
            )
                .into_response()
        })
    }

    /// Tells the replica holding `source`'s store (it listens on [`CHANNEL`]).
    pub(super) async fn forward(&self, request: &Forwarded) -> Result<(), String> {
        let payload = serde_json::to_string(request).map_err(|e| e.to_string())?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Counts a trigger (`kind` api) or webhook request by what became of it.
pub(super) fn count(kind: &'static str, result: &'static str) {
    metrics::counter!(crate::telemetry_metrics::TRIGGERS, "kind" => kind, "result" => result)
        .increment(1);
}

pub(super) fn unauthorized(www: &'static str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [("www-authenticate", www)],
        Json(json!({"error": "missing or wrong credentials"})),
    )
        .into_response()
}

pub(super) fn unknown_source(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": format!("no source {name:?} is configured")})),
    )
        .into_response()
}

async fn trigger(State(api): State<Api>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(expected) = api.token.as_deref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if given.is_empty() || !same_secret(expected, given.trim()) {
        tracing::warn!(source = %name, "trigger refused: missing or wrong token");
        count("api", "unauthorized");
        return unauthorized("Bearer");
    }
    if let Some(limited) = api.limited() {
        count("api", "rate_limited");
        return limited;
    }
    let Some(t) = api.triggers.get(&name) else {
        count("api", "unknown_source");
        return unknown_source(&name);
    };
    let result = t.request_cycle();
    if result == Requested::NotHere {
        let request = Forwarded {
            source: name.clone(),
            invoices: Vec::new(),
        };
        if let Err(e) = api.forward(&request).await {
            tracing::warn!(source = %name, error = %e, "could not forward a trigger to the store's replica");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "this replica does not hold the source's store and could not reach the database to hand the request over"})),
            )
                .into_response();
        }
    }
    count("api", result.as_str());
    tracing::info!(source = %name, cycle = result.as_str(), "cycle requested");
    (
        StatusCode::ACCEPTED,
        Json(json!({"source": name, "cycle": result.as_str()})),
    )
        .into_response()
}

/// Wakes this replica's loops for requests other replicas forward (until the pool closes).
pub async fn listen(pool: PgPool, triggers: Triggers, stop: tokio_util::sync::CancellationToken) {
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for forwarded triggers; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => continue,
                }
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "cannot listen for forwarded triggers; retrying");
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => continue,
            }
        }
        loop {
            let note = tokio::select! {
                _ = stop.cancelled() => return,
                note = listener.recv() => note,
            };
            let note = match note {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "listening for forwarded triggers failed; reconnecting");
                    break;
                }
            };
            let Ok(request) = serde_json::from_str::<Forwarded>(note.payload()) else {
                continue;
            };
            if let Some(t) = triggers.get(&request.source) {
                if request.invoices.is_empty() {
                    t.request_cycle();
                } else {
                    t.request_invoices(request.invoices);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        let d = digest(&SecretString::from("s3cret-token"));
        assert!(same_secret(&d, "s3cret-token"));
        assert!(!same_secret(&d, "s3cret-toke"));
        assert!(!same_secret(&d, "s3cret-tokenx"));
        assert!(!same_secret(&d, ""));
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    #[tokio::test]
    async fn requests_past_the_rate_are_answered_429() {
        let settings = DaemonSettings {
            trigger_requests_per_minute: NonZeroU32::MIN.saturating_add(1),
            ..DaemonSettings::default()
        };
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .expect("a lazy pool");
        let api = Api::new(&settings, Triggers::default(), pool);
        assert!(api.limited().is_none());
        assert!(api.limited().is_none());
        let limited = api.limited().expect("the third in a minute is refused");
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}
