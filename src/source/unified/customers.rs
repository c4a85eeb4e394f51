//! Customer resolution (Alloy, or `customer_lookup = true`): an invoice's `customerId` is the
//! API's own customer id (Alloy's customer UUID), not the ERP's customer number. It is resolved
//! to the customer's `remoteId` (and name) through `GET {customers_path}`, so B2B's
//! `externalCustomerId` and every customer mapping strategy see the ERP's number.
//!
//! - The customers are kept in PostgreSQL (`unified_customers`, see `keep`) and the list is
//!   read whole when it is older than `customers_refresh_secs` (default a day), at the start of
//!   a scan: an idle cycle usually costs no customer request at all.
//! - An id not kept yet (a customer created since) is asked for on its own
//!   (`GET {customers_path}/{id}`); when a page brings more than [`WHOLE_LIST_AT`] unknown ids
//!   and the list was not read whole in this scan, the list is read whole instead.
//! - An id the API does not know (404) is remembered as unknown for the rest of the scan, and
//!   each invoice naming it is a record error that names it: that invoice fails, the cycle goes
//!   on, and the next cycle (which reads the invoice again) asks again.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use reqwest::Method;
use serde_json::Value;

use super::call::{call, CallError};
use super::client::PageAt;
use super::keep::Customer;
use super::wire;
use super::UnifiedSource;
use crate::source::SourceError;

/// Unknown ids on one page above which the whole list is read rather than each id alone.
pub(crate) const WHOLE_LIST_AT: usize = 10;

/// What one scan knows about customers.
#[derive(Debug, Default)]
pub(crate) struct CustomerView {
    known: HashMap<String, Customer>,
    unknown: HashMap<String, String>,
    /// The list was read whole in this scan.
    refreshed: bool,
}

/// How a customer id resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolved {
    Customer(Customer),
    /// Not known to the API: why, for the invoice's failure.
    Unknown(String),
}

impl CustomerView {
    pub(crate) fn get(&self, id: &str) -> Option<Resolved> {
        if let Some(c) = self.known.get(id) {
            return Some(Resolved::Customer(c.clone()));
        }
        self.unknown.get(id).cloned().map(Resolved::Unknown)
    }
}

impl UnifiedSource {
    /// At the start of a scan: reads the customers list whole if it is due.
    pub(crate) async fn refresh_customers_if_due(
        &self,
        view: &mut CustomerView,
    ) -> Result<(), SourceError> {
        let Some(every) = self.client.api().customer_lookup else {
            return Ok(());
        };
        let last = self
            .keep
            .refreshed_at(&self.name)
            .await
            .map_err(|m| self.database(m))?;
        let due = match last {
            None => true,
            Some(at) => {
                let age = Utc::now().signed_duration_since(at);
                age.to_std().is_ok_and(|age| age >= every)
            }
        };
        if due {
            self.read_all_customers(view).await?;
        }
        Ok(())
    }

    /// Resolves the customer ids of one page: from this scan's view, the kept customers, and
    /// the API.
    pub(crate) async fn resolve_customers(
        &self,
        view: &mut CustomerView,
        ids: HashSet<String>,
    ) -> Result<(), SourceError> {
        let mut missing: HashSet<String> = ids
            .into_iter()
            .filter(|id| view.get(id).is_none())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let kept = self
            .keep
            .customers(&self.name, &missing)
            .await
            .map_err(|m| self.database(m))?;
        for (id, customer) in kept {
            missing.remove(&id);
            view.known.insert(id, customer);
        }
        if missing.len() > WHOLE_LIST_AT && !view.refreshed {
            self.read_all_customers(view).await?;
            missing.retain(|id| !view.known.contains_key(id));
        }
        let mut sorted: Vec<String> = missing.into_iter().collect();
        sorted.sort();
        for id in sorted {
            self.read_one_customer(view, id).await?;
        }
        Ok(())
    }

    /// `GET {customers_path}` page after page; every customer kept.
    async fn read_all_customers(&self, view: &mut CustomerView) -> Result<(), SourceError> {
        let names = self.client.names();
        let paging = self.client.api().paging;
        let mut at = self.client.first_page();
        let mut total = 0usize;
        let mut previous_first: Option<String> = None;
        loop {
            let url = self.client.customers_url(&at)?;
            let endpoint = format!("GET /{}", names.customers_path.trim_matches('/'));
            let body = self.client.send(&endpoint, Method::GET, url, None).await?;
            let page = wire::list_page_in(
                body,
                names,
                paging,
                self.client.page_size(),
                &names.customers_field,
            )
            .map_err(|message| self.protocol(format!("{endpoint}: {message}")))?;
            let first = page
                .records
                .first()
                .and_then(|r| self.customer_of(r))
                .map(|(id, _)| id);
            if first.is_some()
                && first == previous_first
                && matches!(at, PageAt::Number(_) | PageAt::Offset(_))
            {
                return Err(self.same_page_twice(&endpoint));
            }
            previous_first = first;
            let count = page.records.len();
            total += count;
            let customers: Vec<(String, Customer)> = page
                .records
                .iter()
                .filter_map(|r| self.customer_of(r))
                .collect();
            self.keep
                .store_customers(&self.name, &customers)
                .await
                .map_err(|m| self.database(m))?;
            for (id, customer) in customers {
                view.unknown.remove(&id);
                view.known.insert(id, customer);
            }
            match self.next_page(&at, &page, count)? {
                Some(next) => at = next,
                None => break,
            }
        }
        self.keep
            .mark_refreshed(&self.name)
            .await
            .map_err(|m| self.database(m))?;
        view.refreshed = true;
        tracing::info!(source = %self.name, customers = total, "read the customers list whole");
        Ok(())
    }

    /// `GET {customers_path}/{id}`: kept when found, unknown for the scan on a 404.
    async fn read_one_customer(
        &self,
        view: &mut CustomerView,
        id: String,
    ) -> Result<(), SourceError> {
        let names = self.client.names();
        let url = self.client.customer_url(&id)?;
        let endpoint = format!("GET /{}/{{id}}", names.customers_path.trim_matches('/'));
        match call(&self.client, &endpoint, Method::GET, url, None).await {
            Ok(body) => {
                let record = wire::single_in(body, &names.customer_field)
                    .map_err(|message| self.protocol(format!("{endpoint}: {message}")))?;
                match self.customer_of(&record) {
                    Some((_, customer)) => {
                        self.keep
                            .store_customers(&self.name, &[(id.clone(), customer.clone())])
                            .await
                            .map_err(|m| self.database(m))?;
                        view.known.insert(id, customer);
                    }
                    None => {
                        let why = format!(
                            "customer {id}: the API's answer has no `{}`",
                            names.customer_remote_id_field
                        );
                        view.unknown.insert(id, why);
                    }
                }
                Ok(())
            }
            Err(CallError::Refused { status: 404, .. }) => {
                let why = format!(
                    "customer {id} is unknown to the API: it is not in GET /{path} and GET \
                     /{path}/{id} answers 404 (a customer the ERP has not synced to the API \
                     yet, or one deleted); the invoice is read again next cycle",
                    path = names.customers_path.trim_matches('/'),
                );
                tracing::warn!(source = %self.name, customer = %id, "unknown customer id");
                view.unknown.insert(id, why);
                Ok(())
            }
            Err(CallError::Refused { status, message }) => {
                Err(self.protocol(format!("{endpoint}: refused (HTTP {status}): {message}")))
            }
            Err(CallError::Unreadable { message }) => Err(self.protocol(message)),
            Err(CallError::NotSent { message } | CallError::Unknown { message }) => {
                Err(SourceError::Unavailable {
                    source_name: self.name.to_string(),
                    message,
                })
            }
        }
    }

    /// A customer record's API id and what it resolves to; `None` without both ids.
    pub(crate) fn customer_of(&self, record: &Value) -> Option<(String, Customer)> {
        let names = self.client.names();
        let id = wire::text_field(record, &names.customer_id_field)?;
        let remote_id = wire::text_field(record, &names.customer_remote_id_field)?;
        let name = wire::text_field(record, &names.customer_name_field);
        Some((id, Customer { remote_id, name }))
    }
}
