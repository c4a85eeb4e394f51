//! Every filter of `GET /invoices` as the client sends it, checked against what the sandbox returns.

use chrono::{Duration as Span, Utc};
use futures::TryStreamExt;

use b2b_invoice_sync::b2b::{
    B2bClient, ExtraFieldValue, Invoice, InvoiceQuery, InvoiceSearchField, InvoiceSortField,
    InvoiceStatus, SortOrder,
};

use crate::helpers::*;

/// Six invoices that differ in every filtered field.
async fn seed(client: &B2bClient) {
    let specs = [
        // number, company, open balance, PO, channel, extra field
        ("A-100", "1", "100.00", "PO-RED", 1, Some("north")),
        ("A-200", "1", "0.00", "PO-BLUE", 1, None),
        ("B-300", "2", "50.00", "PO-RED", 2, Some("south")),
        ("B-400", "2", "75.00", "PO-GREEN", 1, None),
        ("C-500", "3", "0.00", "PO-BLUE", 2, None),
        ("C-600", "3", "10.00", "PO-RED", 1, None),
    ];
    for (number, company, open, po, channel, region) in specs {
        let mut inv = new_invoice(number);
        inv.customer_id = company.to_owned();
        inv.open_balance = usd(open);
        inv.purchase_order_number = Some(po.to_owned());
        inv.channel_id = Some(channel);
        inv.external_id = Some(format!("erp-{number}"));
        if let Some(region) = region {
            inv.extra_fields = vec![ExtraFieldValue {
                field_name: "ERP Sync Source".to_owned(),
                field_value: Some(region.to_owned()),
            }];
        }
        client.create_invoice(&inv).await.expect("seed invoice");
    }
}

async fn numbers(client: &B2bClient, query: InvoiceQuery) -> Vec<String> {
    let invoices: Vec<Invoice> = client
        .list_invoices(&query)
        .try_collect()
        .await
        .expect("list");
    invoices.into_iter().map(|i| i.invoice_number).collect()
}

async fn sorted_numbers(client: &B2bClient, query: InvoiceQuery) -> Vec<String> {
    let mut n = numbers(client, query).await;
    n.sort();
    n
}

fn q() -> InvoiceQuery {
    InvoiceQuery::default()
}

#[tokio::test]
async fn every_list_filter_is_applied() {
    let sandbox = spawn_unlimited_sandbox(0).await;
    let client = client(&sandbox, Auth::XAuthToken);
    seed(&client).await;

    // sortBy + orderBy
    let asc = numbers(
        &client,
        InvoiceQuery {
            sort_by: Some(InvoiceSortField::InvoiceNumber),
            order: Some(SortOrder::Asc),
            ..q()
        },
    )
    .await;
    assert_eq!(asc, ["A-100", "A-200", "B-300", "B-400", "C-500", "C-600"]);
    let desc = numbers(
        &client,
        InvoiceQuery {
            sort_by: Some(InvoiceSortField::InvoiceNumber),
            order: Some(SortOrder::Desc),
            ..q()
        },
    )
    .await;
    assert_eq!(desc, ["C-600", "C-500", "B-400", "B-300", "A-200", "A-100"]);
    let by_open = numbers(
        &client,
        InvoiceQuery {
            sort_by: Some(InvoiceSortField::OpenBalance),
            order: Some(SortOrder::Desc),
            ..q()
        },
    )
    .await;
    assert_eq!(by_open[0], "A-100");

    // searchBy + q, and q alone over every searchable field
    let po_red = sorted_numbers(
        &client,
        InvoiceQuery {
            search_by: Some(InvoiceSearchField::PurchaseOrderNumber),
            q: Some("red".to_owned()),
            ..q()
        },
    )
    .await;
    assert_eq!(po_red, ["A-100", "B-300", "C-600"]);
    let by_number = sorted_numbers(&client, InvoiceQuery::by_invoice_number("B-")).await;
    assert_eq!(by_number, ["B-300", "B-400"]);
    let anywhere = sorted_numbers(
        &client,
        InvoiceQuery {
            q: Some("GREEN".to_owned()),
            ..q()
        },
    )
    .await;
    assert_eq!(anywhere, ["B-400"]);

    // customerId and customerName
    let company2 = sorted_numbers(
        &client,
        InvoiceQuery {
            customer_id: Some("2".to_owned()),
            ..q()
        },
    )
    .await;
    assert_eq!(company2, ["B-300", "B-400"]);
    let company3 = sorted_numbers(
        &client,
        InvoiceQuery {
            customer_name: Some("Company 3".to_owned()),
            ..q()
        },
    )
    .await;
    assert_eq!(company3, ["C-500", "C-600"]);

    // status: a zero open balance made these Completed
    let completed = sorted_numbers(
        &client,
        InvoiceQuery {
            status: Some(InvoiceStatus::Completed),
            ..q()
        },
    )
    .await;
    assert_eq!(completed, ["A-200", "C-500"]);
    let open = sorted_numbers(
        &client,
        InvoiceQuery {
            status: Some(InvoiceStatus::Open),
            ..q()
        },
    )
    .await;
    assert_eq!(open.len(), 4);

    // beginDateAt / endDateAt: creation time range
    let now = Utc::now();
    let around_now = numbers(
        &client,
        InvoiceQuery {
            created_from: Some(now - Span::minutes(5)),
            created_to: Some(now + Span::minutes(5)),
            ..q()
        },
    )
    .await;
    assert_eq!(around_now.len(), 6);
    let last_year = numbers(
        &client,
        InvoiceQuery {
            created_from: Some(now - Span::days(400)),
            created_to: Some(now - Span::days(365)),
            ..q()
        },
    )
    .await;
    assert!(last_year.is_empty());

    // externalId[]
    let by_ext = sorted_numbers(
        &client,
        InvoiceQuery::by_external_ids(["erp-A-200", "erp-C-600", "erp-missing"]),
    )
    .await;
    assert_eq!(by_ext, ["A-200", "C-600"]);

    // channelIds
    let channel2 = sorted_numbers(
        &client,
        InvoiceQuery {
            channel_ids: vec![2],
            ..q()
        },
    )
    .await;
    assert_eq!(channel2, ["B-300", "C-500"]);

    // isIncludeExtraFields: extra fields only when asked for
    let plain: Vec<Invoice> = client
        .list_invoices(&InvoiceQuery::by_external_ids(["erp-A-100"]))
        .try_collect()
        .await
        .expect("list");
    assert!(
        plain[0].extra_fields.is_empty(),
        "{:?}",
        plain[0].extra_fields
    );
    let with_extra = InvoiceQuery {
        include_extra_fields: true,
        ..InvoiceQuery::by_external_ids(["erp-A-100"])
    };
    let rich: Vec<Invoice> = client
        .list_invoices(&with_extra)
        .try_collect()
        .await
        .expect("list");
    assert_eq!(
        rich[0].extra_fields,
        vec![ExtraFieldValue {
            field_name: "ERP Sync Source".to_owned(),
            field_value: Some("north".to_owned())
        }]
    );

    // Filters combine.
    let combined = sorted_numbers(
        &client,
        InvoiceQuery {
            customer_id: Some("1".to_owned()),
            status: Some(InvoiceStatus::Open),
            ..q()
        },
    )
    .await;
    assert_eq!(combined, ["A-100"]);
}

#[tokio::test]
async fn small_pages_walk_every_match_once() {
    let sandbox = spawn_unlimited_sandbox(0).await;
    let client = client(&sandbox, Auth::XAuthToken);
    seed(&client).await;
    let query = InvoiceQuery {
        page_size: 4,
        sort_by: Some(InvoiceSortField::UpdatedAt),
        order: Some(SortOrder::Asc),
        ..q()
    };
    let pages: Vec<_> = client
        .list_invoice_pages(&query)
        .try_collect()
        .await
        .expect("pages");
    assert_eq!(
        pages.iter().map(|p| p.items.len()).collect::<Vec<_>>(),
        vec![4, 2]
    );
    assert_eq!(pages[1].offset, 4);
}
