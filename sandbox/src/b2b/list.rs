//! `GET /ip/invoices`: filters, sorting and paging.

use std::cmp::Ordering;

use serde_json::Value;

use super::query::{contains, search_matches, Page, RawQuery};
use super::render;
use super::reply::{self, ApiReply};
use super::state::{InvoiceRecord, StoreData};
use super::{ExternalIdFilter, Readings};

const SORT_KEYS: &[&str] = &[
    "invoiceNumber",
    "createdAt",
    "customerId",
    "externalCustomerId",
    "dueDate",
    "updatedAt",
    "isPendingPayment",
    "openBalance",
    "originalBalance",
    "status",
];
const SEARCH_FIELDS: &[&str] = &[
    "invoiceNumber",
    "type",
    "orderNumber",
    "purchaseOrderNumber",
    "customerId",
    "externalCustomerId",
];

/// A parsed list request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ListQuery {
    pub page: Page,
    pub sort_by: &'static str,
    pub descending: bool,
    /// Lower-cased search text and the field it applies to (`None`: every search field).
    pub search: Option<(Option<&'static str>, String)>,
    pub customer_name: Option<String>,
    pub customer_id: Option<String>,
    pub status: Option<u8>,
    pub begin: Option<i64>,
    pub end: Option<i64>,
    pub external_ids: Vec<String>,
    pub channel_ids: Vec<i64>,
    pub include_extra_fields: bool,
}

impl ListQuery {
    pub(crate) fn parse(query: &RawQuery) -> Result<Self, ApiReply> {
        let page = Page::parse(query)?;
        let sort_by = query.one_of("sortBy", SORT_KEYS)?.unwrap_or("createdAt");
        let descending = query.one_of("orderBy", &["DESC", "ASC"])? != Some("ASC");
        let search_by = query.one_of("searchBy", SEARCH_FIELDS)?;
        let search = query.get("q").map(|text| (search_by, text.to_lowercase()));
        let status = match query.number::<u8>("status")? {
            Some(status) if status > 2 => {
                return Err(reply::bad_request("status: must be one of 0, 1, 2"))
            }
            status => status,
        };
        let channel_ids = channel_ids(query)?;
        Ok(Self {
            page,
            sort_by,
            descending,
            search,
            customer_name: query.get("customerName").map(str::to_lowercase),
            customer_id: query.get("customerId").map(|id| id.trim().to_owned()),
            status,
            begin: query.number("beginDateAt")?,
            end: query.number("endDateAt")?,
            external_ids: query
                .all(&["externalId[]", "externalId"])
                .into_iter()
                .map(str::to_owned)
                .collect(),
            channel_ids,
            include_extra_fields: query.flag("isIncludeExtraFields")?,
        })
    }
}

/// `channelIds`: repeated, bracketed or comma-separated (also read by `GET /ip/payments`).
pub(crate) fn channel_ids(query: &RawQuery) -> Result<Vec<i64>, ApiReply> {
    let mut channel_ids = Vec::new();
    for list in query.all(&["channelIds", "channelIds[]"]) {
        for part in list
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
        {
            let id = part
                .parse()
                .map_err(|_| reply::bad_request("channelIds: Please enter valid channel ids"))?;
            channel_ids.push(id);
        }
    }
    Ok(channel_ids)
}

/// `GET /ip/invoices`, under the sandbox's [`Readings`] of what the documents leave open.
pub(crate) fn list(store: &StoreData, raw: &RawQuery, readings: &Readings) -> ApiReply {
    let mut query = match ListQuery::parse(raw) {
        Ok(query) => query,
        Err(reply) => return reply,
    };
    if let Err(refused) = read_external_ids(&mut query, readings.external_id_filter) {
        return refused;
    }
    let asked = query.page.limit;
    if let Some(most) = readings.refuse_limit_above.filter(|most| asked > *most) {
        return reply::bad_request(&format!("limit: must be at most {most}"));
    }
    if let Some(cap) = readings.max_page_size {
        query.page.limit = query.page.limit.min(cap.max(1));
    }
    let (total, invoices) = select(store, &query);
    query.page.limit = asked;
    let items = invoices
        .into_iter()
        .map(|invoice| {
            render::invoice(
                invoice,
                store.company_name(invoice.customer_id),
                query.include_extra_fields,
            )
        })
        .collect();
    reply::page(
        Value::Array(items),
        total,
        query.page.limit,
        query.page.offset,
    )
}

/// `externalId[]` typed `array[number]` read strictly: a value that is not a number is refused
/// (400 naming it) or dropped (and with none left, the filter is gone: the whole list answers).
fn read_external_ids(query: &mut ListQuery, reading: ExternalIdFilter) -> Result<(), ApiReply> {
    let numeric = |id: &String| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
    match reading {
        ExternalIdFilter::Strings => Ok(()),
        ExternalIdFilter::Numeric400 => match query.external_ids.iter().position(|id| !numeric(id))
        {
            Some(i) => Err(reply::bad_request(&format!(
                "externalId[{i}]: must be a number (got `{}`)",
                query.external_ids[i]
            ))),
            None => Ok(()),
        },
        ExternalIdFilter::NumericIgnore => {
            query.external_ids.retain(numeric);
            Ok(())
        }
    }
}

/// The matching invoices' total and the requested page of them, sorted.
pub(crate) fn select<'s>(
    store: &'s StoreData,
    query: &ListQuery,
) -> (usize, Vec<&'s InvoiceRecord>) {
    let matching: Vec<&InvoiceRecord> = store
        .invoices
        .values()
        .filter(|invoice| matches(store, invoice, query))
        .collect();
    query.page.sorted(
        matching,
        query.descending,
        |a, b| compare(a, b, query.sort_by),
        |r| r.id,
    )
}

fn matches(store: &StoreData, invoice: &InvoiceRecord, query: &ListQuery) -> bool {
    let searched = |field: &str, needle: &str| match field {
        "invoiceNumber" => contains(Some(&invoice.invoice_number), needle),
        "type" => contains(Some(&invoice.kind), needle),
        "orderNumber" => contains(invoice.order_number.as_deref(), needle),
        "purchaseOrderNumber" => contains(invoice.purchase_order_number.as_deref(), needle),
        "customerId" => contains(Some(&invoice.customer_id.to_string()), needle),
        "externalCustomerId" => contains(invoice.external_customer_id.as_deref(), needle),
        _ => false,
    };
    search_matches(&query.search, SEARCH_FIELDS, searched)
        && query
            .customer_name
            .as_deref()
            .is_none_or(|name| contains(Some(store.company_name(invoice.customer_id)), name))
        && query
            .customer_id
            .as_deref()
            .is_none_or(|id| id == invoice.customer_id.to_string())
        && query.status.is_none_or(|status| status == invoice.status)
        && query.begin.is_none_or(|begin| invoice.created_at >= begin)
        && query.end.is_none_or(|end| invoice.created_at <= end)
        && (query.external_ids.is_empty()
            || invoice
                .external_id
                .as_ref()
                .is_some_and(|id| query.external_ids.contains(id)))
        && (query.channel_ids.is_empty() || query.channel_ids.contains(&invoice.channel_id))
}

fn compare(a: &InvoiceRecord, b: &InvoiceRecord, key: &str) -> Ordering {
    match key {
        "invoiceNumber" => a.invoice_number.cmp(&b.invoice_number),
        "customerId" => a.customer_id.cmp(&b.customer_id),
        "externalCustomerId" => a.external_customer_id.cmp(&b.external_customer_id),
        "dueDate" => a.due_date.cmp(&b.due_date),
        "updatedAt" => a.updated_at.cmp(&b.updated_at),
        "openBalance" => a.open_balance.value.cmp(&b.open_balance.value),
        "originalBalance" => a.original_balance.value.cmp(&b.original_balance.value),
        "status" => a.status.cmp(&b.status),
        // Nothing is ever pending payment in the sandbox.
        "isPendingPayment" => Ordering::Equal,
        _ => a.created_at.cmp(&b.created_at),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use rust_decimal::Decimal;
    use serde_json::json;

    use super::*;
    use crate::b2b::state::{Company, Money};

    fn store() -> StoreData {
        let mut store = StoreData::new("s");
        for (id, name) in [(1, "Acme Tools"), (2, "Blue Bolts")] {
            store.companies.insert(
                id,
                Company {
                    id,
                    name: name.into(),
                    email: String::new(),
                    phone: String::new(),
                    uuid: String::new(),
                    created_at: 0,
                    updated_at: 0,
                    extra_fields: Vec::new(),
                },
            );
        }
        for id in 1..=6u64 {
            let money = |cents: i64| Money {
                code: "USD".into(),
                value: Decimal::new(cents, 2),
            };
            let invoice = InvoiceRecord {
                id,
                customer_id: 1 + id % 2,
                external_id: Some(format!("ext-{id}")),
                external_customer_id: Some(format!("C{}", 1 + id % 2)),
                invoice_number: format!("INV-{:03}", 7 - id),
                kind: if id == 3 {
                    "Credit Memo".into()
                } else {
                    "Invoice".into()
                },
                due_date: 2_000 + i64::try_from(id).unwrap(),
                status: u8::try_from(id % 3).unwrap(),
                order_number: (id == 4).then(|| "PO-ORDER-4".into()),
                purchase_order_number: Some(format!("po-{id}")),
                details: json!({}),
                source: 0,
                original_balance: money(10_000),
                open_balance: money(1_000 * i64::try_from(id).unwrap()),
                // Invoices 1-3 share one created timestamp: ties must page stably.
                created_at: if id <= 3 {
                    1_000
                } else {
                    1_000 + i64::try_from(id).unwrap()
                },
                updated_at: 5_000 - i64::try_from(id).unwrap(),
                channel_id: if id == 6 { 2 } else { 1 },
                terms_conditions: None,
                external_pdf_url: None,
                extra_fields: Vec::new(),
            };
            store.invoices.insert(id, invoice);
        }
        store
    }

    fn ids(raw: &str) -> (usize, Vec<u64>) {
        let store = store();
        let query = ListQuery::parse(&RawQuery::parse(Some(raw))).unwrap();
        let (total, page) = select(&store, &query);
        (total, page.into_iter().map(|invoice| invoice.id).collect())
    }

    #[test]
    fn default_is_newest_first_with_stable_ties() {
        assert_eq!(ids(""), (6, vec![6, 5, 4, 3, 2, 1]));
        assert_eq!(ids("orderBy=ASC"), (6, vec![1, 2, 3, 4, 5, 6]));
        // Paging through the tie at created_at 1000 neither skips nor repeats.
        assert_eq!(ids("limit=4&offset=0"), (6, vec![6, 5, 4, 3]));
        assert_eq!(ids("limit=4&offset=4"), (6, vec![2, 1]));
    }

    #[test]
    fn sorts_by_each_kind_of_key() {
        assert_eq!(
            ids("sortBy=updatedAt&orderBy=ASC").1,
            vec![6, 5, 4, 3, 2, 1]
        );
        assert_eq!(
            ids("sortBy=invoiceNumber&orderBy=ASC").1,
            vec![6, 5, 4, 3, 2, 1]
        );
        assert_eq!(ids("sortBy=openBalance").1, vec![6, 5, 4, 3, 2, 1]);
        assert_eq!(
            ids("sortBy=customerId&orderBy=ASC").1,
            vec![2, 4, 6, 1, 3, 5]
        );
        assert_eq!(ids("sortBy=status&orderBy=ASC").1, vec![3, 6, 1, 4, 2, 5]);
    }

    #[test]
    fn filters_combine() {
        assert_eq!(
            ids("externalId[]=ext-2&externalId%5B%5D=ext-5&externalId=ext-9"),
            (2, vec![5, 2])
        );
        assert_eq!(ids("customerId=1").1, vec![6, 4, 2]);
        assert_eq!(ids("customerName=blue").1, vec![5, 3, 1]);
        assert_eq!(ids("status=0").1, vec![6, 3]);
        assert_eq!(ids("beginDateAt=1000&endDateAt=1004").1, vec![4, 3, 2, 1]);
        assert_eq!(ids("channelIds=2").1, vec![6]);
        assert_eq!(ids("channelIds=1,2&channelIds=3").0, 6);
        assert_eq!(ids("searchBy=type&q=credit").1, vec![3]);
        assert_eq!(ids("searchBy=invoiceNumber&q=inv-00").0, 6);
        // Without searchBy, q looks in every search field (here: the order number of 4).
        assert_eq!(ids("q=po-order").1, vec![4]);
        assert_eq!(ids("q=nothing-like-this").0, 0);
    }

    #[test]
    fn invalid_parameters_are_refused() {
        let status = |raw| {
            ListQuery::parse(&RawQuery::parse(Some(raw)))
                .unwrap_err()
                .status
        };
        assert_eq!(status("sortBy=amount"), StatusCode::BAD_REQUEST);
        assert_eq!(status("orderBy=desc"), StatusCode::BAD_REQUEST);
        assert_eq!(status("searchBy=details"), StatusCode::BAD_REQUEST);
        assert_eq!(status("status=3"), StatusCode::BAD_REQUEST);
        assert_eq!(status("isIncludeExtraFields=yes"), StatusCode::BAD_REQUEST);
        assert_eq!(status("beginDateAt=yesterday"), StatusCode::BAD_REQUEST);
        assert_eq!(status("channelIds=a"), StatusCode::BAD_REQUEST);
        assert_eq!(status("limit=1000"), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn response_has_pagination_meta_and_optional_extra_fields() {
        let store = store();
        let reply = list(
            &store,
            &RawQuery::parse(Some("limit=2&offset=1")),
            &Readings::default(),
        );
        let body = reply.json_body();
        assert_eq!(
            body["meta"],
            json!({"message": "SUCCESS", "pagination": {"totalCount": 6, "limit": 2, "offset": 1}})
        );
        assert_eq!(body["data"].as_array().map(Vec::len), Some(2));
        assert!(body["data"][0].get("extraFields").is_none());
        let reply = list(
            &store,
            &RawQuery::parse(Some("isIncludeExtraFields=1")),
            &Readings::default(),
        );
        assert_eq!(reply.json_body()["data"][0]["extraFields"], json!([]));
    }

    fn read(raw: &str, readings: Readings) -> (StatusCode, Value) {
        let reply = list(&store(), &RawQuery::parse(Some(raw)), &readings);
        let response = axum::response::IntoResponse::into_response(reply);
        let status = response.status();
        let body = futures::executor::block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[test]
    fn strict_readings_of_external_ids_refuse_or_drop_what_is_not_a_number() {
        let strict = |f| Readings {
            external_id_filter: f,
            ..Readings::default()
        };
        let (status, body) = read("externalId[]=ext-2", strict(ExternalIdFilter::Numeric400));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body.to_string().contains("externalId[0]: must be a number"),
            "{body}"
        );
        // Dropped: nothing left to filter by, so every invoice answers.
        let (status, body) = read(
            "externalId[]=ext-2",
            strict(ExternalIdFilter::NumericIgnore),
        );
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["meta"]["pagination"]["totalCount"], 6);
        let (_, body) = read("externalId[]=ext-2", Readings::default());
        assert_eq!(body["meta"]["pagination"]["totalCount"], 1);
    }

    #[test]
    fn a_page_cap_answers_fewer_items_with_the_whole_total() {
        let capped = Readings {
            max_page_size: Some(4),
            ..Readings::default()
        };
        let (_, body) = read("limit=5&offset=0", capped);
        assert_eq!(body["data"].as_array().unwrap().len(), 4);
        assert_eq!(body["meta"]["pagination"]["totalCount"], 6);
    }
}
