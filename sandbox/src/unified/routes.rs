//! The sandbox's URL space: the API at `/{invoices_path}` (from the configured names; Alloy:
//! `/{version}/one/accounting/...`), the test controls under `/__sandbox/`, and a JSON 404 for
//! anything else (all through the shared harness, `crate::harness::pipeline::router`).

use axum::extract::Path;
use axum::routing::get;
use axum::Router;

use super::admin;
use super::alloy::AlloyVersion;
use super::control::UnifiedSandboxControl;
use super::pipeline::{run, Call, Op};

/// `invoices_path` must already be validated (see `super::validate`): axum panics on a bad path.
pub(crate) fn router(control: UnifiedSandboxControl, invoices_path: &str) -> Router {
    let api = Router::new()
        .route(
            &format!("/{invoices_path}"),
            get(|call: Call| run(call, Op::List)),
        )
        .route(
            &format!("/{invoices_path}/{{id}}"),
            get(|Path(id): Path<String>, call: Call| run(call, Op::Get(id)))
                .put(|Path(id): Path<String>, call: Call| run(call, Op::Put(id))),
        );
    crate::harness::pipeline::router(control, api, admin::routes())
}

/// Alloy's paths under `/{version}/one/`.
pub(crate) fn alloy_router(control: UnifiedSandboxControl, version: AlloyVersion) -> Router {
    let base = format!("/{}/one/accounting", version.as_str());
    let api = Router::new()
        .route(
            &format!("{base}/invoices"),
            get(|call: Call| run(call, Op::List)),
        )
        .route(
            &format!("{base}/invoices/count"),
            get(|call: Call| run(call, Op::Count)),
        )
        .route(
            &format!("{base}/invoices/{{id}}"),
            get(|Path(id): Path<String>, call: Call| run(call, Op::Get(id)))
                .put(|Path(id): Path<String>, call: Call| run(call, Op::Put(id))),
        )
        .route(
            &format!("{base}/customers"),
            get(|call: Call| run(call, Op::Customers)),
        )
        .route(
            &format!("{base}/customers/{{id}}"),
            get(|Path(id): Path<String>, call: Call| run(call, Op::Customer(id))),
        );
    let own = admin::routes().route(
        &format!("/{}/one/webhooks", version.as_str()),
        get(super::webhooks::list).post(super::webhooks::subscribe),
    );
    crate::harness::pipeline::router(control, api, own)
}
