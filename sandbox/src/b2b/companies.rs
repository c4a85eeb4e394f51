//! `GET /companies` (base `/api/v3/io`): how the daemon maps an ERP customer to a B2B company
//! through a unique extra field (`extraFields=ERP Customer ID:CUST-00001`).

use serde_json::{json, Value};

use super::query::{Page, RawQuery};
use super::reply::{self, ApiReply};
use super::state::{Company, StoreData};

/// One `extraFields=name:value` filter.
#[derive(Debug, PartialEq, Eq)]
struct ExtraFieldFilter {
    name: String,
    value: String,
}

#[derive(Debug)]
struct CompanyQuery {
    page: Page,
    filters: Vec<ExtraFieldFilter>,
    exact: bool,
    name: Option<String>,
    sort_by_name: bool,
    descending: bool,
    include_extra_fields: bool,
}

impl CompanyQuery {
    fn parse(query: &RawQuery) -> Result<Self, ApiReply> {
        let filters = query
            .all(&["extraFields", "extraFields[]"])
            .into_iter()
            .map(|pair| {
                // Split at the first ':' only: values may contain colons.
                pair.split_once(':')
                    .map(|(name, value)| ExtraFieldFilter {
                        name: name.to_owned(),
                        value: value.to_owned(),
                    })
                    .ok_or_else(|| reply::bad_request("extraFields: use name:value"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            page: Page::parse(query)?,
            filters,
            exact: query.one_of("extraFieldFilterType", &["search", "exact-match"])?
                == Some("exact-match"),
            name: query.get("q").map(str::to_lowercase),
            sort_by_name: query.one_of("sortBy", &["companyName", "updatedAt"])?
                == Some("companyName"),
            descending: query.one_of("orderBy", &["ASC", "DESC"])? != Some("ASC"),
            include_extra_fields: query.flag("isIncludeExtraFields")?,
        })
    }

    fn matches(&self, company: &Company) -> bool {
        let name_ok = self
            .name
            .as_deref()
            .is_none_or(|needle| company.name.to_lowercase().contains(needle));
        name_ok
            && self.filters.iter().all(|filter| {
                company.extra_fields.iter().any(|field| {
                    field.name == filter.name
                        && if self.exact {
                            field.value == filter.value
                        } else {
                            field
                                .value
                                .to_lowercase()
                                .contains(&filter.value.to_lowercase())
                        }
                })
            })
    }
}

/// `GET /companies`.
pub(crate) fn list(store: &StoreData, raw: &RawQuery) -> ApiReply {
    let query = match CompanyQuery::parse(raw) {
        Ok(query) => query,
        Err(reply) => return reply,
    };
    let mut matching: Vec<&Company> = store
        .companies
        .values()
        .filter(|company| query.matches(company))
        .collect();
    matching.sort_by(|a, b| {
        let key = if query.sort_by_name {
            a.name.cmp(&b.name)
        } else {
            a.updated_at.cmp(&b.updated_at)
        };
        // Documented default: highest companyId first.
        let order = key.then(a.id.cmp(&b.id));
        if query.descending {
            order.reverse()
        } else {
            order
        }
    });
    let total = matching.len();
    let items = query
        .page
        .slice(matching)
        .into_iter()
        .map(|company| render(company, query.include_extra_fields))
        .collect();
    reply::page(
        Value::Array(items),
        total,
        query.page.limit,
        query.page.offset,
    )
}

fn render(company: &Company, include_extra_fields: bool) -> Value {
    let mut value = json!({
        "companyId": company.id,
        "companyName": company.name,
        "companyEmail": company.email,
        "companyPhone": company.phone,
        "companyStatus": "1",
        "bcGroupId": 0,
        "bcGroupName": "",
        "catalogId": "",
        "catalogName": "",
        "uuid": company.uuid,
        "createdAt": company.created_at.to_string(),
        "updatedAt": company.updated_at.to_string(),
    });
    if include_extra_fields {
        value["extraFields"] = company
            .extra_fields
            .iter()
            .map(|field| {
                json!({
                    "fieldName": field.name,
                    "fieldValue": field.value,
                    "labelName": field.name,
                    "isRequired": "0",
                    "dataType": "0",
                    "fieldType": 0,
                })
            })
            .collect();
    }
    value
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;
    use crate::b2b::state::ExtraFieldValue;

    fn store() -> StoreData {
        let mut store = StoreData::new("s");
        for id in 1..=12u64 {
            let company = Company {
                id,
                name: format!("Sandbox Company {id}"),
                email: format!("ap@company{id}.example"),
                phone: String::new(),
                uuid: String::new(),
                created_at: 100,
                updated_at: 100,
                extra_fields: vec![ExtraFieldValue {
                    name: "ERP Customer ID".into(),
                    value: format!("CUST-{id:05}"),
                }],
            };
            store.companies.insert(id, company);
        }
        store
    }

    fn run(raw: &str) -> Value {
        list(&store(), &RawQuery::parse(Some(raw)))
            .json_body()
            .clone()
    }

    fn ids(body: &Value) -> Vec<u64> {
        body["data"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item["companyId"].as_u64())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn exact_match_finds_one_company_search_finds_substrings() {
        let exact =
            run("extraFields=ERP%20Customer%20ID:CUST-00001&extraFieldFilterType=exact-match");
        assert_eq!(ids(&exact), vec![1]);
        assert_eq!(exact["meta"]["pagination"]["totalCount"], 1);
        let search = run("extraFields=ERP%20Customer%20ID:cust-0001&limit=50");
        assert_eq!(ids(&search), vec![12, 11, 10]);
        assert_eq!(ids(&run("extraFields=Other:CUST-00001")), Vec::<u64>::new());
    }

    #[test]
    fn default_order_paging_name_query_and_extra_fields() {
        let first = run("");
        assert_eq!(ids(&first), (3..=12).rev().collect::<Vec<_>>());
        assert_eq!(
            first["meta"]["pagination"],
            json!({"totalCount": 12, "limit": 10, "offset": 0})
        );
        assert!(first["data"][0].get("extraFields").is_none());
        assert_eq!(ids(&run("offset=10")), vec![2, 1]);
        assert_eq!(ids(&run("q=company%202")), vec![2]);
        let with_fields = run("isIncludeExtraFields=1&q=company%207");
        assert_eq!(
            with_fields["data"][0]["extraFields"][0]["fieldValue"],
            "CUST-00007"
        );
        assert_eq!(with_fields["data"][0]["companyStatus"], "1");
    }

    #[test]
    fn refuses_malformed_filters() {
        let status = |raw| list(&store(), &RawQuery::parse(Some(raw))).status;
        assert_eq!(status("extraFields=no-colon"), StatusCode::BAD_REQUEST);
        assert_eq!(
            status("extraFieldFilterType=fuzzy"),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(status("limit=300"), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
