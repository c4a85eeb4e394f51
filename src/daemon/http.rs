//! `/healthz` (alive), `/readyz` (can do its job), `/metrics` (Prometheus text).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

use std::time::Duration;

use super::health::Health;
use super::liveness::Liveness;
use crate::sync::engine::Engine;

#[derive(Clone)]
struct Endpoints {
    health: Arc<Health>,
    liveness: Arc<Liveness>,
    metrics: PrometheusHandle,
    engine: Arc<Engine>,
}

pub fn router(
    health: Arc<Health>,
    liveness: Arc<Liveness>,
    metrics: PrometheusHandle,
    engine: Arc<Engine>,
) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Endpoints {
            health,
            liveness,
            metrics,
            engine,
        })
}

/// Alive: every schedule loop beats and no cycle has run past `daemon.max_cycle_secs`.
async fn healthz(State(e): State<Endpoints>) -> impl IntoResponse {
    match e.liveness.alive() {
        Ok(()) => (StatusCode::OK, "ok\n".to_owned()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not alive: {reason}\n"),
        ),
    }
}

async fn readyz(State(e): State<Endpoints>) -> impl IntoResponse {
    match e.health.ready().await {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

/// The sources' health gauges are read from the database at each scrape (within 2 s; a slow
/// database leaves the last values), so staleness is true between cycles too.
async fn metrics_text(State(e): State<Endpoints>) -> impl IntoResponse {
    let _ = tokio::time::timeout(Duration::from_secs(2), e.engine.publish_health()).await;
    crate::telemetry_metrics::collect_process();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        e.metrics.render(),
    )
}

/// Binds `addr` and serves until `stop` is cancelled. Binding errors name the config key.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("daemon.http_address: cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(address = %local, "serving /healthz, /readyz and /metrics");
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the HTTP endpoints stopped");
        }
    }))
}
