//! Tokens never reach a log line or an error message, whatever happens.

use futures::TryStreamExt;
use tracing_subscriber::EnvFilter;

use b2b_invoice_sync::b2b::{B2bError, InvoiceQuery, InvoiceUpdate};
use b2b_invoice_sync::config::{B2bAuth, LogFormat};
use b2b_invoice_sync::sandbox::b2b::{Fault, FaultRule};
use b2b_invoice_sync::telemetry;

use crate::helpers::*;

#[tokio::test]
async fn tokens_never_appear_in_logs_or_errors() {
    let capture = LogCapture::default();
    for format in [LogFormat::Json, LogFormat::Pretty] {
        // Everything at TRACE, our crate and every dependency (reqwest, hyper, h2, rustls).
        let subscriber = telemetry::subscriber(format, EnvFilter::new("trace"), capture.clone());
        let _guard = tracing::subscriber::set_default(subscriber);

        let sandbox = spawn_unlimited_sandbox(3).await;
        let control = sandbox.control();
        let mut seen = Vec::new();
        for auth in [Auth::XAuthToken, Auth::Legacy] {
            let client = client(&sandbox, auth);
            seen.push(format!("{client:?}"));
            let _: Vec<_> = client
                .list_invoices(&InvoiceQuery::default())
                .try_collect()
                .await
                .expect("list");
            control.push_fault(FaultRule::once(Fault::Status500).times(2).on_method("GET"));
            client.get_invoice(1).await.expect("retried");
            control.push_fault(FaultRule::once(Fault::ApplyThen500).on_method("POST"));
            let e = client
                .create_invoice(&new_invoice(&format!("S-{auth:?}")))
                .await
                .expect_err("ambiguous");
            seen.push(format!("{e} | {e:?}"));
            control.push_fault(FaultRule::once(Fault::ApplyThenDrop).on_method("PUT"));
            let e = client
                .update_invoice(1, &InvoiceUpdate::default())
                .await
                .expect_err("dropped");
            seen.push(format!("{e} | {e:?}"));
            let e = client.get_invoice(404_404).await.expect_err("missing");
            seen.push(format!("{e} | {e:?}"));
        }
        // Wrong credentials, in both styles: the presented token must not be echoed either.
        for wrong in [
            B2bAuth::XAuthToken {
                store_hash: STORE_HASH.to_owned(),
                token: format!("{TOKEN}x").into(),
            },
            B2bAuth::LegacyAuthToken {
                token: format!("{LEGACY_TOKEN}x").into(),
            },
        ] {
            let mut settings = store_settings(
                &sandbox.base_url(),
                Auth::XAuthToken,
                generous_budget(),
                fast_retry(),
            );
            settings.b2b.auth = wrong;
            seen.push(format!("{settings:?}"));
            let e: B2bError = client_from(&settings)
                .get_invoice(1)
                .await
                .expect_err("unauthorized");
            seen.push(format!("{e} | {e:?}"));
        }
        sandbox.shutdown().await;

        let logs = capture.text();
        assert!(
            logs.contains("B2B response"),
            "the capture saw the client's logs"
        );
        assert!(
            logs.lines().count() > 50,
            "TRACE logs of every layer were captured"
        );
        for text in seen.iter().map(String::as_str).chain([logs.as_str()]) {
            assert!(!text.contains(TOKEN), "token leaked: {text}");
            assert!(!text.contains(LEGACY_TOKEN), "legacy token leaked: {text}");
        }
    }
}
