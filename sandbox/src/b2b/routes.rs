//! The sandbox's URL space: the API under `/api/v3/io`, the test controls under
//! `/__sandbox/`, and the PDFs that `download-pdf` links to.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::admin;
use super::control::SandboxControl;
use super::pipeline::{run, Call, Op};
use super::state::lock;

pub(crate) fn router(control: SandboxControl) -> Router {
    // matchit prefers static segments, so `extra-fields` is never taken for an invoice id.
    let api = Router::new()
        .route(
            "/api/v3/io/ip/invoices",
            post(|call: Call| run(call, Op::CreateInvoice))
                .get(|call: Call| run(call, Op::ListInvoices)),
        )
        .route(
            "/api/v3/io/ip/invoices/extra-fields",
            get(|call: Call| run(call, Op::ListExtraFields)),
        )
        .route(
            "/api/v3/io/ip/invoices/{id}",
            get(|Path(id): Path<String>, call: Call| run(call, Op::GetInvoice(id)))
                .put(|Path(id): Path<String>, call: Call| run(call, Op::UpdateInvoice(id)))
                .delete(|Path(id): Path<String>, call: Call| run(call, Op::DeleteInvoice(id))),
        )
        .route(
            "/api/v3/io/ip/invoices/{id}/download-pdf",
            get(|Path(id): Path<String>, call: Call| run(call, Op::DownloadPdf(id))),
        )
        .route(
            "/api/v3/io/ip/orders/{id}/invoices",
            post(|Path(id): Path<String>, call: Call| run(call, Op::CreateFromOrder(id))),
        )
        .route(
            "/api/v3/io/ip/payments",
            get(|call: Call| run(call, Op::ListPayments)),
        )
        .route(
            "/api/v3/io/ip/payments/{id}",
            get(|Path(id): Path<String>, call: Call| run(call, Op::GetPayment(id))),
        )
        .route(
            "/api/v3/io/companies",
            get(|call: Call| run(call, Op::ListCompanies)),
        );
    let own = admin::routes().route("/sandbox-pdf/{store}/{file}", get(pdf));
    crate::harness::pipeline::router(control, api, own)
}

/// The smallest PDF readers accept; enough for a client that downloads the link.
const BLANK_PDF: &[u8] = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n\
2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n\
3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\n\
trailer<</Root 1 0 R>>\n%%EOF\n";

/// `GET /sandbox-pdf/{store}/{id}.pdf`, public like a pre-signed storage link.
async fn pdf(
    State(control): State<SandboxControl>,
    Path((store, file)): Path<(String, String)>,
) -> Response {
    let id = file
        .strip_suffix(".pdf")
        .and_then(|id| id.parse::<u64>().ok());
    let exists = id.is_some_and(|id| {
        lock(&control.shared.stores)
            .get(&store)
            .is_some_and(|data| data.invoices.contains_key(&id))
    });
    if exists {
        ([(header::CONTENT_TYPE, "application/pdf")], BLANK_PDF).into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}
