//! The sandbox's URL space: the API under `/v1` (as `https://api.rebillia.com/v1`) and the
//! test controls under `/__sandbox/`.

use axum::extract::Path;
use axum::routing::{get, post, put};
use axum::Router;

use super::admin;
use super::control::RebilliaSandboxControl;
use super::pipeline::{run, Call, Op};

pub(crate) fn router(control: RebilliaSandboxControl) -> Router {
    let api = Router::new()
        .route(
            "/v1/invoices",
            get(|call: Call| run(call, Op::ListInvoices)),
        )
        .route(
            "/v1/invoices/{id}",
            get(|Path(id): Path<String>, call: Call| run(call, Op::GetInvoice(id)))
                .put(|Path(id): Path<String>, call: Call| run(call, Op::UpdateInvoice(id)))
                .delete(|Path(id): Path<String>, call: Call| run(call, Op::DeleteInvoice(id))),
        )
        .route(
            "/v1/invoices/{id}/void",
            put(|Path(id): Path<String>, call: Call| run(call, Op::VoidInvoice(id))),
        )
        .route(
            "/v1/invoices/{id}/charge",
            post(|Path(id): Path<String>, call: Call| run(call, Op::ChargeInvoice(id))),
        );
    crate::harness::pipeline::router(control, api, admin::routes())
}
