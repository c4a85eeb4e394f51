//! `probe --source NAME` for a unified source: a read-only check, step by step, of what a cycle
//! needs from the API: the credentials, the first page and the paging it answers with, the
//! invoice ids, and (with customer lookup) a customer resolved. Each failure says what to fix.

use reqwest::Method;
use serde_json::Value;

use super::call::{call, CallError};
use super::{wire, UnifiedSource};
use crate::config::{PagingStyle, ScanMode};
use crate::source::SourceError;

/// What the probe found, one line per step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    pub lines: Vec<String>,
}

/// The step that failed, why, and what the steps before it found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{step}: {message}")]
pub struct ProbeFailure {
    pub step: &'static str,
    pub message: String,
    pub lines: Vec<String>,
}

impl UnifiedSource {
    /// Probes the API: nothing is written anywhere (ids and customers are not kept).
    pub async fn probe(&self) -> Result<ProbeReport, ProbeFailure> {
        let mut lines = Vec::new();
        let api = self.client.api().clone();
        let names = self.client.names().clone();
        let fail = |step: &'static str, message: String, lines: &Vec<String>| ProbeFailure {
            step,
            message,
            lines: lines.clone(),
        };
        lines.push(format!(
            "API: {} (preset {}); {}; {}",
            self.client.base_url(),
            api.preset.name(),
            match api.scan {
                ScanMode::Full => "every cycle scans the whole list",
                ScanMode::Incremental => "each cycle reads what changed since its cursor",
            },
            match api.requests_per_minute {
                Some(n) => format!("at most {n} requests a minute"),
                None => "without a request budget".to_owned(),
            }
        ));

        // Credentials and the first page.
        let first = self.client.first_page();
        let url = self
            .client
            .list_url(None, &first)
            .map_err(|e| fail("first page", e.to_string(), &lines))?;
        let body = self
            .client
            .get_list(url)
            .await
            .map_err(|e| fail("credentials and first page", self.advice(&e), &lines))?;
        lines.push(format!(
            "credentials: accepted ({} {})",
            names.credential_param,
            self.client.credential_id()
        ));
        let hint = shape_hint(&body, api.paging);
        let page = wire::list_page_in(
            body,
            &names,
            api.paging,
            self.client.page_size(),
            &names.list_field,
        )
        .map_err(|m| fail("first page", m, &lines))?;
        let asked = self.client.page_size();
        let count = page.records.len();
        let paging = match api.paging {
            PagingStyle::PageNumber => format!(
                "page numbers ({} from {}, {} {asked}); {}",
                names.page_param,
                api.first_page,
                names.limit_param,
                if page.more {
                    "a full page: more pages follow"
                } else {
                    "a short page: this is the whole list"
                }
            ),
            PagingStyle::Offset => format!(
                "offsets ({}, {} {asked}); {}",
                names.offset_param,
                names.limit_param,
                if page.more {
                    "a full page: more follow"
                } else {
                    "a short page: the whole list"
                }
            ),
            PagingStyle::BodyCursor => format!(
                "a cursor at `{}`{}; {}",
                names.next_cursor_path,
                if names.has_more_path.is_empty() {
                    String::new()
                } else {
                    format!(" with `{}`", names.has_more_path)
                },
                if page.more {
                    "a next page follows"
                } else {
                    "no next page"
                }
            ),
            PagingStyle::NextField => format!(
                "a `{}` cursor; {}",
                names.next_field,
                if page.more {
                    "a next page follows"
                } else {
                    "no next page"
                }
            ),
        };
        lines.push(format!("first page: {count} invoice(s); paging: {paging}"));
        if count > usize::try_from(asked).unwrap_or(usize::MAX) {
            lines.push(format!(
                "warning: the API sent {count} invoices for {} {asked}: it does not read {}",
                names.limit_param, names.limit_param
            ));
        }
        if let Some(hint) = hint {
            lines.push(format!("warning: {hint}"));
        }

        // Ids.
        let Some(record) = page.records.first() else {
            lines.push("ids and customers: not checked, the list is empty".to_owned());
            return Ok(ProbeReport { lines });
        };
        let external = wire::text_field(record, &names.external_id_field).ok_or_else(|| {
            fail(
                "ids",
                format!(
                    "the first invoice has no `{}` (the ERP's id, which becomes the B2B \
                     externalId); fields: {}",
                    names.external_id_field,
                    fields(record)
                ),
                &lines,
            )
        })?;
        if names.id_field == names.external_id_field {
            lines.push(format!(
                "ids: invoice {external} is addressed by its `{}`",
                names.id_field
            ));
        } else {
            let api_id = wire::text_field(record, &names.id_field).ok_or_else(|| {
                fail(
                    "ids",
                    format!(
                        "invoice {external} has no `{}`, the id GET/PUT of one invoice take",
                        names.id_field
                    ),
                    &lines,
                )
            })?;
            lines.push(format!(
                "ids: ERP invoice {external} (B2B externalId) is {api_id} to the API"
            ));
        }

        // A customer.
        if api.customer_lookup.is_none() {
            lines.push(match wire::text_field(record, "customerId") {
                Some(c) => format!("customers: customerId {c} is taken as the ERP's customer id"),
                None => format!("customers: invoice {external} has no customerId"),
            });
            return Ok(ProbeReport { lines });
        }
        let list = self
            .client
            .customers_url(&first)
            .map_err(|e| fail("customers", e.to_string(), &lines))?;
        let endpoint = format!("GET /{}", names.customers_path.trim_matches('/'));
        let body = self
            .client
            .send(&endpoint, Method::GET, list, None)
            .await
            .map_err(|e| fail("customers", self.advice(&e), &lines))?;
        let customers = wire::list_page_in(body, &names, api.paging, asked, &names.customers_field)
            .map_err(|m| fail("customers", format!("{endpoint}: {m}"), &lines))?;
        lines.push(format!(
            "customers: {endpoint} answers ({} on its first page)",
            customers.records.len()
        ));
        let customer = wire::text_field(record, "customerId").ok_or_else(|| {
            fail(
                "customers",
                format!("invoice {external} has no customerId"),
                &lines,
            )
        })?;
        let url = self
            .client
            .customer_url(&customer)
            .map_err(|e| fail("customers", e.to_string(), &lines))?;
        let one = format!("{endpoint}/{{id}}");
        let found = match call(&self.client, &one, Method::GET, url, None).await {
            Ok(body) => wire::single_in(body, &names.customer_field)
                .map_err(|m| fail("customers", format!("{one}: {m}"), &lines))?,
            Err(CallError::Refused { status: 404, .. }) => {
                return Err(fail(
                    "customers",
                    format!(
                        "customer {customer} of invoice {external} is unknown to the API (404): \
                         such invoices fail until the ERP's customer reaches the API"
                    ),
                    &lines,
                ))
            }
            Err(CallError::Refused { status, message }) => {
                return Err(fail(
                    "customers",
                    format!("{one}: refused (HTTP {status}): {message}"),
                    &lines,
                ))
            }
            Err(
                CallError::NotSent { message }
                | CallError::Unknown { message }
                | CallError::Unreadable { message },
            ) => return Err(fail("customers", format!("{one}: {message}"), &lines)),
        };
        let (_, resolved) = self.customer_of(&found).ok_or_else(|| {
            fail(
                "customers",
                format!(
                    "customer {customer} has no `{}` (the ERP's customer id); fields: {}",
                    names.customer_remote_id_field,
                    fields(&found)
                ),
                &lines,
            )
        })?;
        lines.push(format!(
            "customer {customer} of invoice {external} is ERP customer {}{}",
            resolved.remote_id,
            resolved.name.map(|n| format!(" ({n})")).unwrap_or_default()
        ));
        lines.push(format!(
            "requests: {} sent, nothing written",
            self.requests_sent()
        ));
        Ok(ProbeReport { lines })
    }

    /// A failure, with what to check.
    fn advice(&self, error: &SourceError) -> String {
        let names = self.client.names();
        let text = error.to_string();
        match error {
            SourceError::Unauthorized { .. } => format!(
                "{text}. The key goes out as Authorization: Bearer <api_key>; check api_key"
            ),
            SourceError::Protocol { .. }
                if text.contains("HTTP 400") || text.contains("HTTP 404") =>
            {
                let alias = if names.credential_param == "credentialId" {
                    "; Alloy 2024-03 documents credentialId, its Node SDK sends connectionId: if \
                     the API asks for connectionId, set names.credential_param = \"connectionId\""
                } else {
                    ""
                };
                format!(
                    "{text} (the credential goes as `{}`{alias}; Alloy's base_url is \
                     https://embedded.runalloy.com/<version>/one)",
                    names.credential_param
                )
            }
            SourceError::Unavailable { .. } => {
                format!("{text}. The API did not answer well; check base_url and the network")
            }
            _ => text,
        }
    }
}

/// A note when the answer's shape suggests another paging than configured.
fn shape_hint(body: &Value, paging: PagingStyle) -> Option<String> {
    let object = body.as_object()?;
    match paging {
        PagingStyle::PageNumber if object.contains_key("pageInfo") => Some(
            "the answer carries `pageInfo`, as Alloy's 2023-12 version does: is this the \
             alloy-2023-12 API?"
                .to_owned(),
        ),
        PagingStyle::BodyCursor if !object.contains_key("pageInfo") => Some(
            "the answer has no `pageInfo`, as Alloy's 2024-03 version: is this the \
             alloy-2024-03 API?"
                .to_owned(),
        ),
        _ => None,
    }
}

fn fields(record: &Value) -> String {
    record.as_object().map_or_else(
        || "none (not an object)".to_owned(),
        |o| o.keys().take(12).cloned().collect::<Vec<_>>().join(", "),
    )
}
