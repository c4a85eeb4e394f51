//! A deliberately naive syncer, the baseline the daemon is measured against.
//!
//! It keeps no state: every pass reads the whole ERP and, for each invoice, asks B2B whether
//! it exists (`GET /ip/invoices?externalId[]=..`), then creates it (POST), updates it when an
//! owned field differs (PUT), or leaves it. That is 2 calls per created invoice, 2 per updated
//! one and 1 per unchanged one, where the daemon needs 1, about 1 and 0. It uses the same B2B
//! client (so the same budget, concurrency and retries), the same mapping, and compares the
//! same owned fields the daemon writes, so the difference is the protocol alone.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};

use super::BenchError;
use crate::b2b::{B2bClient, Invoice, InvoiceQuery, InvoiceUpdate};
use crate::config::{MappingSettings, SourceSettings, StoreSettings};
use crate::domain::{map_invoice, Lifecycle, RecordError, SourceInvoice};
use crate::source::{self, Cursor, Source};

pub struct NaiveSyncer {
    client: B2bClient,
    source: Arc<dyn Source>,
    mapping: MappingSettings,
    customers: BTreeMap<String, String>,
    concurrency: usize,
}

/// What one pass did, with the B2B calls each kind of invoice cost (retries included).
#[derive(Debug, Clone, Default)]
pub struct NaiveTally {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub failed: u64,
    pub calls_created: u64,
    pub calls_updated: u64,
    pub calls_unchanged: u64,
    pub calls_failed: u64,
    /// ERP id -> B2B id of the invoices this pass created.
    pub created_ids: Vec<(String, u64)>,
    /// The first few failure reasons.
    pub failures: Vec<String>,
}

impl NaiveTally {
    pub fn calls(&self) -> u64 {
        self.calls_created + self.calls_updated + self.calls_unchanged + self.calls_failed
    }
}

enum Done {
    Created(String, u64),
    Updated,
    Unchanged,
    Failed(String),
}

impl NaiveSyncer {
    /// A syncer for `source`'s ERP into `store`, with a budget of its own built from the
    /// store's settings (so it gets exactly what the daemon gets).
    pub fn new(store: &StoreSettings, source: &SourceSettings) -> Result<Self, BenchError> {
        let customers = match &source.customers {
            crate::config::CustomerMapping::Static(map) => map.clone(),
            _ => {
                return Err(BenchError::Naive(
                    "only a static customer map is supported".to_owned(),
                ))
            }
        };
        Ok(Self {
            client: B2bClient::with_own_budget(store)
                .map_err(|e| BenchError::Naive(e.to_string()))?,
            source: source::build(source).map_err(|e| BenchError::Naive(e.to_string()))?,
            mapping: source.mapping.clone(),
            customers,
            concurrency: store.budget.max_concurrent.get(),
        })
    }

    /// Reads the whole ERP and brings every invoice in step, the naive way.
    pub async fn pass(&self) -> Result<NaiveTally, BenchError> {
        let mut tally = NaiveTally::default();
        let mut pages = self.source.pages(&Cursor::default());
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| BenchError::Naive(e.to_string()))?;
            let done: Vec<(Done, u64)> = futures::stream::iter(page.records)
                .map(|record| self.one(record))
                .buffer_unordered(self.concurrency.max(1))
                .collect()
                .await;
            for (outcome, calls) in done {
                match outcome {
                    Done::Created(external_id, id) => {
                        tally.created += 1;
                        tally.calls_created += calls;
                        tally.created_ids.push((external_id, id));
                    }
                    Done::Updated => {
                        tally.updated += 1;
                        tally.calls_updated += calls;
                    }
                    Done::Unchanged => {
                        tally.unchanged += 1;
                        tally.calls_unchanged += calls;
                    }
                    Done::Failed(reason) => {
                        tally.failed += 1;
                        tally.calls_failed += calls;
                        if tally.failures.len() < 10 {
                            tally.failures.push(reason);
                        }
                    }
                }
            }
        }
        Ok(tally)
    }

    async fn one(&self, record: Result<SourceInvoice, RecordError>) -> (Done, u64) {
        // A counter per invoice, so each call is charged to the invoice that made it.
        let client = self.client.with_fresh_counter();
        let done = self.sync_one(&client, record).await;
        (done, client.calls_made())
    }

    async fn sync_one(
        &self,
        client: &B2bClient,
        record: Result<SourceInvoice, RecordError>,
    ) -> Done {
        let invoice = match record {
            Ok(invoice) => invoice,
            Err(e) => return Done::Failed(e.to_string()),
        };
        if invoice.lifecycle != Lifecycle::Active {
            // Deletions are not part of the comparison (the seeded ERP has none).
            return Done::Unchanged;
        }
        let Some(company) = self.customers.get(&invoice.external_customer_id) else {
            return Done::Failed(format!(
                "no company for ERP customer {}",
                invoice.external_customer_id
            ));
        };
        let desired = map_invoice(&invoice, company, &self.mapping);
        let query = InvoiceQuery::by_external_ids([invoice.external_id.clone()]);
        let found: Result<Vec<Invoice>, _> = client.list_invoices(&query).try_collect().await;
        let current = match found {
            Ok(list) => list
                .into_iter()
                .find(|i| i.external_id.as_deref() == Some(invoice.external_id.as_str())),
            Err(e) => return Done::Failed(format!("looking it up: {e}")),
        };
        match current {
            None => match client.create_invoice(&desired.to_new_invoice()).await {
                Ok(id) => Done::Created(invoice.external_id, id),
                Err(e) => Done::Failed(format!("creating it: {e}")),
            },
            Some(current) => {
                let body = desired.to_update(&current.details);
                if holds(&current, &body) {
                    return Done::Unchanged;
                }
                match client.update_invoice(current.id, &body).await {
                    Ok(_) => Done::Updated,
                    Err(e) => Done::Failed(format!("updating it: {e}")),
                }
            }
        }
    }
}

/// Whether B2B already holds every field `body` would write.
pub fn holds(current: &Invoice, body: &InvoiceUpdate) -> bool {
    fn same<T: PartialEq>(want: &Option<T>, have: Option<&T>) -> bool {
        want.as_ref().is_none_or(|w| Some(w) == have)
    }
    let amount = |want: &Option<crate::b2b::Amount>, have: &crate::b2b::Amount| {
        want.as_ref()
            .is_none_or(|w| w.value == have.value && w.code.eq_ignore_ascii_case(&have.code))
    };
    let extra_fields = body.extra_fields.as_ref().is_none_or(|want| {
        want.len() == current.extra_fields.len()
            && want.iter().all(|w| current.extra_fields.contains(w))
    });
    same(&body.customer_id, current.customer_id.as_ref())
        && same(
            &body.external_customer_id,
            current.external_customer_id.as_ref(),
        )
        && same(&body.external_id, current.external_id.as_ref())
        && same(&body.invoice_number, Some(&current.invoice_number))
        && same(&body.kind, current.kind.as_ref())
        && same(&body.due_date, current.due_date.as_ref())
        && same(&body.status, current.status.as_ref())
        && same(
            &body.purchase_order_number,
            current.purchase_order_number.as_ref(),
        )
        && same(&body.details, Some(&current.details))
        && amount(&body.original_balance, &current.original_balance)
        && amount(&body.open_balance, &current.open_balance)
        && body
            .external_pdf_url
            .as_ref()
            .is_none_or(|want| *want == current.external_pdf_url.clone().unwrap_or_default())
        && extra_fields
}
