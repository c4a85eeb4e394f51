//! The sandbox's URL space: the API at `/{invoices_path}` (from the configured names; Alloy:
//! `/{version}/one/accounting/...`), the test controls under `/__sandbox/`, and a JSON 404 for
//! anything else.

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::admin;
use super::alloy::AlloyVersion;
use super::control::UnifiedSandboxControl;
use super::pipeline;
use super::reply;
use super::state::lock;
use crate::stats::{Cause, RequestRecord};

/// `invoices_path` must already be validated (see `super::validate`): axum panics on a bad path.
pub(crate) fn router(control: UnifiedSandboxControl, invoices_path: &str) -> Router {
    Router::new()
        .route(&format!("/{invoices_path}"), get(pipeline::list))
        .route(
            &format!("/{invoices_path}/{{id}}"),
            get(pipeline::get_one).put(pipeline::put_one),
        )
        .merge(admin::routes())
        .fallback(unmatched)
        .with_state(control)
}

/// Alloy's paths under `/{version}/one/`.
pub(crate) fn alloy_router(control: UnifiedSandboxControl, version: AlloyVersion) -> Router {
    let base = format!("/{}/one/accounting", version.as_str());
    Router::new()
        .route(&format!("{base}/invoices"), get(pipeline::list))
        .route(&format!("{base}/invoices/count"), get(pipeline::count))
        .route(
            &format!("{base}/invoices/{{id}}"),
            get(pipeline::get_one).put(pipeline::put_one),
        )
        .route(&format!("{base}/customers"), get(pipeline::customers))
        .route(&format!("{base}/customers/{{id}}"), get(pipeline::customer))
        .route(
            &format!("/{}/one/webhooks", version.as_str()),
            get(super::webhooks::list).post(super::webhooks::subscribe),
        )
        .merge(admin::routes())
        .fallback(unmatched)
        .with_state(control)
}

/// Logged, so a client calling a wrong URL shows up in the stats.
async fn unmatched(
    State(control): State<UnifiedSandboxControl>,
    method: Method,
    uri: Uri,
) -> Response {
    let entry = RequestRecord {
        target: None,
        user_agent: None,
        at: control.shared.clock.since_start(),
        store_hash: None,
        method: method.to_string(),
        route: format!("{method} (unmatched) {}", uri.path()),
        status: Some(404),
    };
    lock(&control.shared.stats).record(entry, Cause::Other);
    reply::error(StatusCode::NOT_FOUND, "Route not found").into_response()
}
