//! A page of source records -> invoices ready to plan, or per-invoice failures with reasons.
//!
//! This is where an ERP record meets the mapping config, the customer map and the B2B payments
//! the ERP does not show yet: [`Prepared::build`] is the one place the desired invoice and its
//! fingerprint are computed. Nothing here fails the page: a bad record, an unmapped customer or
//! a lookup outage becomes a failure of that invoice alone, named so an operator can find it
//! (source, external id, invoice number).

use std::collections::BTreeSet;

use rust_decimal::Decimal;

use super::balance::{self, Payments};
use crate::config::MappingSettings;
use crate::customers::{CustomerError, CustomerMatch, CustomerResolver};
use crate::domain::{
    fingerprint, map_invoice, DesiredInvoice, Fingerprint, Lifecycle, RecordError, SourceInvoice,
};
use crate::store::StoreError;

/// An invoice ready for planning.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The ERP record it came from (kept to retry a failure without the ERP sending it again).
    pub invoice: SourceInvoice,
    pub desired: DesiredInvoice,
    pub fingerprint: Fingerprint,
}

impl Prepared {
    /// `invoice` as B2B company `company` should hold it, with `unacknowledged` (B2B payments
    /// the ERP does not show yet) kept off its balance, and the fingerprint of that.
    pub fn build(
        invoice: SourceInvoice,
        company: &str,
        mapping: &MappingSettings,
        unacknowledged: Decimal,
    ) -> Self {
        let mut desired = map_invoice(&invoice, company, mapping);
        balance::keep_payments(&mut desired, invoice.open_balance, unacknowledged);
        Self {
            fingerprint: fingerprint(&desired),
            desired,
            invoice,
        }
    }

    pub fn lifecycle(&self) -> Lifecycle {
        self.invoice.lifecycle
    }

    pub fn external_id(&self) -> &str {
        &self.invoice.external_id
    }

    pub fn invoice_number(&self) -> &str {
        &self.invoice.invoice_number
    }

    /// This invoice's deletion, as `source` records it in the state table.
    pub fn deletion<'a>(&'a self, source: &'a str) -> crate::store::state::Deletion<'a> {
        crate::store::state::Deletion {
            source,
            external_id: self.external_id(),
            invoice_number: self.invoice_number(),
            fingerprint: Some(self.fingerprint.as_str()),
            version: self.invoice.version.as_ref(),
        }
    }
}

/// Why a page could not be prepared at all (its invoices' own failures are per invoice).
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error(transparent)]
    Customers(#[from] CustomerError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PageError {
    /// Into a caller's error that holds both kinds.
    pub fn into_either<E: From<CustomerError> + From<StoreError>>(self) -> E {
        match self {
            Self::Customers(e) => E::from(e),
            Self::Store(e) => E::from(e),
        }
    }
}

/// Why one record did not become a planned invoice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvoiceFailure {
    /// The ERP record itself is invalid: it will fail the same way until the ERP fixes it.
    #[error("{0}")]
    Record(RecordError),
    /// The customer has no B2B company (yet): retried on later cycles.
    #[error("source {}, invoice {} (number {}): {reason}", invoice.source, invoice.external_id, invoice.invoice_number)]
    UnmappedCustomer {
        invoice: Box<SourceInvoice>,
        reason: String,
    },
}

/// Maps every valid record of a page, resolving all its customers in one batch and, with
/// `payments`, keeping the B2B payments the ERP does not show yet (one query for the page).
pub async fn prepare_page(
    records: Vec<Result<SourceInvoice, RecordError>>,
    customers: &CustomerResolver,
    mapping: &MappingSettings,
    payments: Option<Payments<'_>>,
) -> Result<Vec<Result<Prepared, InvoiceFailure>>, PageError> {
    let ids: BTreeSet<String> = records
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|i| i.external_customer_id.clone())
        .collect();
    let matches = customers.resolve_all(&ids).await?;
    let resolved: Vec<Result<(SourceInvoice, String), InvoiceFailure>> = records
        .into_iter()
        .map(|record| {
            let invoice = record.map_err(InvoiceFailure::Record)?;
            let company = match matches.get(&invoice.external_customer_id) {
                Some(CustomerMatch::Company(company)) => Some(company.clone()),
                // A deleted or voided invoice needs no company: it is removed or forgotten.
                _ if invoice.lifecycle != Lifecycle::Active => Some(String::new()),
                _ => None,
            };
            match company {
                Some(company) => Ok((invoice, company)),
                None => Err(InvoiceFailure::UnmappedCustomer {
                    reason: match matches.get(&invoice.external_customer_id) {
                        Some(CustomerMatch::Unmapped(reason)) => reason.clone(),
                        _ => format!(
                            "ERP customer {} was not resolved",
                            invoice.external_customer_id
                        ),
                    },
                    invoice: Box::new(invoice),
                }),
            }
        })
        .collect();
    let unacknowledged = match payments {
        Some(payments) => {
            let ready: Vec<&SourceInvoice> = resolved
                .iter()
                .filter_map(|r| r.as_ref().ok().map(|(invoice, _)| invoice))
                .collect();
            balance::unacknowledged(payments, &ready).await?
        }
        None => Default::default(),
    };
    Ok(resolved
        .into_iter()
        .map(|r| {
            r.map(|(invoice, company)| {
                let kept = unacknowledged
                    .get(&invoice.external_id)
                    .copied()
                    .unwrap_or_default();
                Prepared::build(invoice, &company, mapping, kept)
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::CustomerMapping;
    use crate::domain::{RawInvoice, RawLineItem, RecordLocator};

    fn record(id: &str, customer: &str) -> Result<SourceInvoice, RecordError> {
        let raw = RawInvoice {
            external_id: Some(id.into()),
            external_customer_id: Some(customer.into()),
            invoice_number: Some(format!("N-{id}")),
            currency: Some("USD".into()),
            total: Some("10".into()),
            open_balance: Some("10".into()),
            line_items: vec![RawLineItem {
                sku: Some("S".into()),
                quantity: Some("1".into()),
                unit_price: Some("10".into()),
                ..RawLineItem::default()
            }],
            ..RawInvoice::default()
        };
        SourceInvoice::parse("erp", RecordLocator::id(id), raw)
    }

    #[tokio::test]
    async fn one_bad_record_or_customer_never_stops_the_others() {
        let map = BTreeMap::from([("C-1".to_owned(), "12".to_owned())]);
        let resolver =
            CustomerResolver::new("erp", CustomerMapping::Static(map), None, None).unwrap();
        let bad = Err(RecordError::whole(
            "erp",
            RecordLocator::id("X"),
            "not JSON",
        ));
        let out = prepare_page(
            vec![record("A", "C-1"), record("B", "C-404"), bad],
            &resolver,
            &MappingSettings::default(),
            None,
        )
        .await
        .unwrap();
        let a = out[0].as_ref().unwrap();
        assert_eq!(a.desired.customer_id, "12");
        assert!(a.fingerprint.as_str().starts_with("v1:"));
        let b = out[1].as_ref().unwrap_err();
        assert!(
            b.to_string().contains("invoice B (number N-B)") && b.to_string().contains("C-404"),
            "{b}"
        );
        assert!(matches!(&out[2], Err(InvoiceFailure::Record(_))));
    }

    #[tokio::test]
    async fn a_deleted_invoice_needs_no_customer_mapping() {
        let resolver =
            CustomerResolver::new("erp", CustomerMapping::Static(BTreeMap::new()), None, None)
                .unwrap();
        let mut deleted = record("D", "C-404").unwrap().to_raw();
        deleted.deleted = true;
        let deleted = SourceInvoice::parse("erp", RecordLocator::id("D"), deleted);
        let out = prepare_page(vec![deleted], &resolver, &MappingSettings::default(), None)
            .await
            .unwrap();
        assert_eq!(
            out[0].as_ref().map(|p| p.lifecycle()).ok(),
            Some(Lifecycle::Deleted)
        );
    }
}
