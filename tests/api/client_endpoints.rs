//! Every invoice endpoint of the client against the sandbox, and both auth styles.

use futures::TryStreamExt;
use serde_json::json;

use b2b_invoice_sync::b2b::{
    details_path, B2bError, InvoiceDetails, InvoiceQuery, InvoiceSource, InvoiceStatus,
    InvoiceUpdate, LineItem,
};

use crate::helpers::*;

fn details_with_unknown_keys() -> InvoiceDetails {
    let value = json!({
        "type": "StandardInvoiceDetails",
        "header": {
            "costLines": [{"amount": {"code": "USD", "value": "90.00"}, "description": "Subtotal"},
                          {"amount": {"code": "USD", "value": "10.00"}, "description": "Freight"}],
            "billingAddress": {"city": "Austin", "state": "Texas", "country": "United States",
                "street1": "1 Main St", "street2": "", "zipCode": "78701", "lastName": "Doe",
                "firstName": "Ann", "customFields": {"dock": "B"}},
            "erpTerms": {"code": "NET30", "days": 30}
        },
        "details": {
            "lineItems": [{"sku": "SKU-1", "type": "physical", "comments": "", "quantity": "2",
                "unitPrice": {"code": "USD", "value": "45.0000"}, "description": "Widget",
                "customFields": {"bin": "A7"}, "unitDiscount": {"code": "USD", "value": "0"}}]
        },
        "fromAnotherApp": [1, 2.5, {"deep": true}]
    });
    serde_json::from_value(value).expect("details literal")
}

#[tokio::test]
async fn create_get_update_delete_round_trip() {
    let sandbox = spawn_unlimited_sandbox(0).await;
    let client = client(&sandbox, Auth::XAuthToken);

    let mut new = new_invoice("INV-1001");
    new.details = Some(details_with_unknown_keys());
    new.purchase_order_number = Some("PO-77".to_owned());
    new.source = Some(InvoiceSource::External);
    new.external_customer_id = Some("CUST-00001".to_owned());
    new.open_balance = usd("349.5");
    let id = client.create_invoice(&new).await.expect("create");

    let got = client.get_invoice(id).await.expect("get");
    assert_eq!(got.id, id);
    assert_eq!(got.invoice_number, "INV-1001");
    assert_eq!(got.customer_id.as_deref(), Some("1"));
    assert_eq!(got.external_id.as_deref(), Some("ext-INV-1001"));
    assert_eq!(got.external_customer_id.as_deref(), Some("CUST-00001"));
    assert_eq!(got.purchase_order_number.as_deref(), Some("PO-77"));
    assert_eq!(got.source, Some(1));
    // Sent as the number 349.5, read back as the string "349.5000": the same Decimal.
    assert_eq!(got.open_balance, usd("349.5000"));
    assert_eq!(got.original_balance, usd("100"));
    assert_eq!(
        got.kind.as_deref(),
        Some("Invoice"),
        "type defaults to Invoice"
    );
    assert!(got.due_date.is_some(), "dueDate defaults to now + 30 days");
    assert_eq!(got.status, Some(InvoiceStatus::Open));
    assert_eq!(got.details, details_with_unknown_keys());

    let update = InvoiceUpdate {
        purchase_order_number: Some("PO-78".to_owned()),
        open_balance: Some(usd("0")),
        ..InvoiceUpdate::default()
    };
    assert_eq!(
        client.update_invoice(id, &update).await.expect("update"),
        id
    );
    let after = client.get_invoice(id).await.expect("get after update");
    assert_eq!(after.purchase_order_number.as_deref(), Some("PO-78"));
    assert_eq!(
        after.status,
        Some(InvoiceStatus::Completed),
        "status 2 once nothing is open"
    );
    assert_eq!(
        after.details, got.details,
        "a PUT without details leaves them alone"
    );
    assert_eq!(after.invoice_number, got.invoice_number);

    client.delete_invoice(id).await.expect("delete");
    let gone = client.get_invoice(id).await;
    assert!(matches!(gone, Err(B2bError::NotFound { .. })), "{gone:?}");
    let again = client.delete_invoice(id).await;
    assert!(matches!(again, Err(B2bError::NotFound { .. })), "{again:?}");
}

#[tokio::test]
async fn details_with_unknown_keys_survive_get_then_update() {
    let sandbox = spawn_unlimited_sandbox(0).await;
    let control = sandbox.control();
    let client = client(&sandbox, Auth::XAuthToken);
    let mut new = new_invoice("INV-2001");
    new.details = Some(details_with_unknown_keys());
    let id = client.create_invoice(&new).await.expect("create");

    // A person adds notes inside details in the B2B control panel.
    control
        .edit_details(
            STORE_HASH,
            id,
            &json!({"header": {"approvedBy": "Jane"}, "personNote": "call first"}),
        )
        .expect("person edit");

    // Get, then update with exactly what was read: nothing may change.
    let current = client.get_invoice(id).await.expect("get");
    let unchanged = InvoiceUpdate {
        details: Some(current.details.clone()),
        ..InvoiceUpdate::default()
    };
    client.update_invoice(id, &unchanged).await.expect("update");
    let stored = control.invoice(STORE_HASH, id).expect("stored invoice");
    assert_eq!(
        stored["details"],
        serde_json::to_value(&current.details).expect("details as JSON")
    );
    assert_eq!(stored["details"]["personNote"], json!("call first"));

    // Replace only an owned part (line items): every other key stays.
    let mut details = current.details.clone();
    let mut items: Vec<LineItem> = details.line_items().expect("typed").expect("present");
    items[0].quantity = "3".parse().expect("decimal");
    details
        .set_typed(details_path::LINE_ITEMS, &items)
        .expect("set");
    client
        .update_invoice(
            id,
            &InvoiceUpdate {
                details: Some(details),
                ..InvoiceUpdate::default()
            },
        )
        .await
        .expect("update line items");
    let after = client.get_invoice(id).await.expect("get");
    assert_eq!(
        after.details.line_items().expect("typed").expect("present")[0].quantity,
        "3".parse().expect("decimal")
    );
    for (key, value) in &current.details.0 {
        if key != "details" {
            assert_eq!(after.details.0.get(key), Some(value), "key {key} kept");
        }
    }
    assert_eq!(after.details.0["header"]["approvedBy"], json!("Jane"));
    assert_eq!(
        after.details.0["details"]["lineItems"][0]["customFields"],
        json!({"bin": "A7"})
    );
}

#[tokio::test]
async fn a_duplicate_invoice_number_is_a_validation_error_with_the_api_message() {
    let sandbox = spawn_unlimited_sandbox(0).await;
    let client = client(&sandbox, Auth::XAuthToken);
    client
        .create_invoice(&new_invoice("DUP-1"))
        .await
        .expect("first create");
    let err = client
        .create_invoice(&new_invoice("DUP-1"))
        .await
        .expect_err("duplicate");
    match &err {
        B2bError::Validation { message, .. } => {
            assert_eq!(message, "The invoice number already exists.")
        }
        other => panic!("expected Validation, got {other:?}"),
    }
    assert!(!err.is_ambiguous());
    assert_eq!(
        sandbox
            .control()
            .invoices(STORE_HASH)
            .expect("invoices")
            .len(),
        1
    );
}

#[tokio::test]
async fn listing_pages_through_more_than_250_invoices() {
    let sandbox = spawn_unlimited_sandbox(600).await;
    let client = client(&sandbox, Auth::XAuthToken);
    let query = InvoiceQuery::default();
    let all: Vec<_> = client
        .list_invoices(&query)
        .try_collect()
        .await
        .expect("list");
    assert_eq!(all.len(), 600);
    let mut ids: Vec<u64> = all.iter().map(|i| i.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 600, "no invoice twice");
    // Pages of the configured size (default 100: the spec caps `limit` below 250): six
    // requests, no more.
    assert_eq!(client.page_size(), 100);
    let stats = sandbox.control().stats();
    assert_eq!(stats.count("GET /ip/invoices", Some(200)), 6);

    let pages: Vec<_> = client
        .list_invoice_pages(&query)
        .try_collect()
        .await
        .expect("pages");
    let sizes: Vec<usize> = pages.iter().map(|p| p.items.len()).collect();
    assert_eq!(sizes, vec![100; 6]);
    assert!(pages.iter().all(|p| p.total_count == Some(600)));
}

#[tokio::test]
async fn create_from_order_and_pdf_url() {
    let sandbox = spawn_unlimited_sandbox(0).await;
    let client = client(&sandbox, Auth::XAuthToken);
    let created = client
        .create_invoice_from_order(101)
        .await
        .expect("create from order");
    let inv = client.get_invoice(created.invoice_id).await.expect("get");
    assert_eq!(inv.invoice_number, created.invoice_number);
    assert_eq!(inv.order_number.as_deref(), Some("101"));

    let pdf = client.invoice_pdf(created.invoice_id).await.expect("pdf");
    assert!(pdf.url.starts_with("http"), "{pdf:?}");

    let missing = client.create_invoice_from_order(999_999).await;
    assert!(
        matches!(missing, Err(B2bError::NotFound { .. })),
        "{missing:?}"
    );
    let missing_pdf = client.invoice_pdf(999_999).await;
    assert!(
        matches!(missing_pdf, Err(B2bError::NotFound { .. })),
        "{missing_pdf:?}"
    );
}

#[tokio::test]
async fn external_pdf_url_is_set_and_removed_with_an_empty_string() {
    let sandbox = spawn_unlimited_sandbox(0).await;
    let client = client(&sandbox, Auth::XAuthToken);
    let mut new = new_invoice("PDF-1");
    new.external_pdf_url = Some("https://erp.example/pdf/1.pdf".to_owned());
    let id = client.create_invoice(&new).await.expect("create");
    let pdf = client.invoice_pdf(id).await.expect("pdf");
    assert_eq!(
        pdf.external_pdf_url.as_deref(),
        Some("https://erp.example/pdf/1.pdf")
    );
    let remove = InvoiceUpdate {
        external_pdf_url: Some(String::new()),
        ..InvoiceUpdate::default()
    };
    client.update_invoice(id, &remove).await.expect("update");
    assert_eq!(
        client.get_invoice(id).await.expect("get").external_pdf_url,
        None
    );
}

#[tokio::test]
async fn invoice_extra_field_configs_are_listed() {
    let sandbox = spawn_unlimited_sandbox(0).await;
    let client = client(&sandbox, Auth::XAuthToken);
    let configs: Vec<_> = client
        .invoice_extra_field_configs()
        .try_collect()
        .await
        .expect("configs");
    assert!(!configs.is_empty());
    assert!(configs.iter().all(|c| !c.field_name.is_empty()));
}

#[tokio::test]
async fn companies_are_found_by_a_unique_extra_field_exactly() {
    let sandbox = spawn_unlimited_sandbox(0).await;
    let client = client(&sandbox, Auth::XAuthToken);
    let found = client
        .find_companies_by_extra_field("ERP Customer ID", "CUST-00003")
        .await
        .expect("lookup");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].company_id, 3);
    // A prefix is not a match: lookups are exact.
    let prefix = client
        .find_companies_by_extra_field("ERP Customer ID", "CUST-0000")
        .await
        .expect("lookup");
    assert!(prefix.is_empty(), "{prefix:?}");
    let request = sandbox.control().requests();
    assert!(
        request.iter().all(|r| r.route == "GET /companies"),
        "{request:?}"
    );
}

#[tokio::test]
async fn both_auth_styles_work_and_wrong_credentials_are_unauthorized() {
    let sandbox = spawn_unlimited_sandbox(3).await;
    for auth in [Auth::XAuthToken, Auth::Legacy] {
        let page = client(&sandbox, auth)
            .list_invoices_page(&InvoiceQuery::default(), 0)
            .await
            .unwrap_or_else(|e| panic!("{auth:?}: {e}"));
        assert_eq!(page.total_count, Some(3), "{auth:?}");
    }

    let mut settings = store_settings(
        &sandbox.base_url(),
        Auth::XAuthToken,
        generous_budget(),
        fast_retry(),
    );
    settings.b2b.auth = b2b_invoice_sync::config::B2bAuth::XAuthToken {
        store_hash: STORE_HASH.to_owned(),
        token: "wrong-token".into(),
    };
    let err = client_from(&settings)
        .get_invoice(1)
        .await
        .expect_err("wrong token");
    assert!(
        matches!(err, B2bError::Unauthorized { status: 401, .. }),
        "{err:?}"
    );

    settings.b2b.auth = b2b_invoice_sync::config::B2bAuth::XAuthToken {
        store_hash: "otherstore".to_owned(),
        token: TOKEN.into(),
    };
    let err = client_from(&settings)
        .get_invoice(1)
        .await
        .expect_err("wrong store hash");
    assert!(matches!(err, B2bError::Unauthorized { .. }), "{err:?}");

    settings.b2b.auth = b2b_invoice_sync::config::B2bAuth::LegacyAuthToken {
        token: "wrong-legacy".into(),
    };
    let err = client_from(&settings)
        .get_invoice(1)
        .await
        .expect_err("wrong legacy token");
    assert!(matches!(err, B2bError::Unauthorized { .. }), "{err:?}");
    // Unauthorized is final: the client did not retry it.
    let stats = sandbox.control().stats();
    assert_eq!(
        stats.count("GET /ip/invoices/{id}", Some(401)),
        3,
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_400_about_limit_shrinks_the_page_and_a_capped_page_is_learned() {
    use b2b_invoice_sync::sandbox::b2b::{B2bSandboxConfig, Readings};

    // Refuses more than 100 a page: 249 -> 124 -> 62, which it takes.
    let sandbox = spawn_sandbox(B2bSandboxConfig {
        rate_limit: 0,
        seed_invoices: 300,
        readings: Readings {
            refuse_limit_above: Some(100),
            ..Readings::default()
        },
        ..B2bSandboxConfig::default()
    })
    .await;
    let mut settings = store_settings(
        &sandbox.base_url(),
        Auth::XAuthToken,
        generous_budget(),
        fast_retry(),
    );
    settings.b2b.page_size = 249;
    let client = client_from(&settings);
    let all: Vec<_> = client
        .list_invoices(&InvoiceQuery::default())
        .try_collect()
        .await
        .expect("list");
    assert_eq!(all.len(), 300);
    assert_eq!(client.page_size(), 62);

    // Answers at most 100 a page (and says the total): the rest is read, the cap learned.
    let sandbox = spawn_sandbox(B2bSandboxConfig {
        rate_limit: 0,
        seed_invoices: 300,
        readings: Readings {
            max_page_size: Some(100),
            ..Readings::default()
        },
        ..B2bSandboxConfig::default()
    })
    .await;
    let mut settings = store_settings(
        &sandbox.base_url(),
        Auth::XAuthToken,
        generous_budget(),
        fast_retry(),
    );
    settings.b2b.page_size = 249;
    let client = client_from(&settings);
    let all: Vec<_> = client
        .list_invoices(&InvoiceQuery::default())
        .try_collect()
        .await
        .expect("list");
    assert_eq!(all.len(), 300, "never stops early on a short page");
    assert_eq!(client.page_size(), 100);
    assert_eq!(
        sandbox
            .control()
            .stats()
            .count("GET /ip/invoices", Some(200)),
        3
    );
}
