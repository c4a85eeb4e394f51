//! The sanity limits (`[sources.<name>.limits]`, `domain::limits`) for the API adapters: every
//! valid record of a page is checked and, when beyond them, handed on as the record error it is.
//! (The `files` adapter checks them itself, so that the refusal names the file and line and
//! lands in `rejected/` like any refused row.)

use std::sync::Arc;

use futures::stream::BoxStream;
use futures::StreamExt;

use super::write_back::PaymentWriter;
use super::{Cursor, PageReceipt, Source, SourceError, SourcePage};
use crate::config::RecordLimits;
use crate::domain::check_limits;

pub struct Limited {
    inner: Arc<dyn Source>,
    limits: RecordLimits,
}

impl Limited {
    pub fn new(inner: Arc<dyn Source>, limits: RecordLimits) -> Self {
        Self { inner, limits }
    }
}

#[async_trait::async_trait]
impl Source for Limited {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn pages<'a>(&'a self, cursor: &Cursor) -> BoxStream<'a, Result<SourcePage, SourceError>> {
        let limits = &self.limits;
        Box::pin(self.inner.pages(cursor).map(move |page| {
            page.map(|mut page| {
                for record in &mut page.records {
                    let refused = match record {
                        Ok(invoice) => check_limits(invoice, limits, &invoice.locator()).err(),
                        Err(_) => None,
                    };
                    if let Some(error) = refused {
                        *record = Err(error);
                    }
                }
                page
            })
        }))
    }

    async fn fetch(
        &self,
        external_ids: &[String],
    ) -> Option<
        Result<Vec<Result<crate::domain::SourceInvoice, crate::domain::RecordError>>, SourceError>,
    > {
        let limits = &self.limits;
        let fetched = self.inner.fetch(external_ids).await?;
        Some(fetched.map(|records| {
            records
                .into_iter()
                .map(|record| match record {
                    Ok(invoice) => match check_limits(&invoice, limits, &invoice.locator()) {
                        Ok(()) => Ok(invoice),
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                })
                .collect()
        }))
    }

    async fn page_committed(&self, receipt: &PageReceipt) -> Result<(), SourceError> {
        self.inner.page_committed(receipt).await
    }

    fn take_notices(&self) -> Vec<String> {
        self.inner.take_notices()
    }

    fn payment_writer(&self) -> Option<&dyn PaymentWriter> {
        self.inner.payment_writer()
    }
}
