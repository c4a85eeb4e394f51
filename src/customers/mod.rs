//! ERP customer id -> B2B Edition company id, by the strategy configured per source:
//! a static table in the config, the `customer_map` table (filled by `customers import`), or a
//! lookup through the B2B companies API by a unique company extra field, cached in
//! `customer_map` with a TTL.
//!
//! An unmapped customer is not an error of the run: it is a per-invoice failure with a reason,
//! retried on later cycles because the mapping may be added later.

pub mod import;
mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sqlx::PgPool;

use crate::b2b::B2bClient;
use crate::config::CustomerMapping;
use crate::store::StoreError;

/// How long a "no company has this ERP customer id" answer is believed before asking again:
/// short, because the usual fix is an operator adding the extra field in B2B right now.
pub const NEGATIVE_TTL_CAP: Duration = Duration::from_secs(15 * 60);

/// The outcome for one ERP customer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerMatch {
    /// The B2B Edition company id.
    Company(String),
    /// No company: the reason says what to do about it.
    Unmapped(String),
}

#[derive(Debug, thiserror::Error)]
pub enum CustomerError {
    #[error("source {source_name}: customer mapping strategy `{strategy}` needs {needs}")]
    Misconfigured {
        source_name: String,
        strategy: &'static str,
        needs: &'static str,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store's configuration makes every lookup fail: the cycle stops.
    #[error(transparent)]
    B2bStore(#[from] crate::b2b::error::Misconfigured),
}

pub struct CustomerResolver {
    source: String,
    strategy: CustomerMapping,
    pool: Option<PgPool>,
    b2b: Option<B2bClient>,
}

fn strategy_name(s: &CustomerMapping) -> &'static str {
    match s {
        CustomerMapping::Static(_) => "static",
        CustomerMapping::Table => "table",
        CustomerMapping::CompanyExtraField { .. } => "company_extra_field",
    }
}

impl CustomerResolver {
    /// `pool` is needed by `table` and `company_extra_field`, `b2b` by `company_extra_field`.
    pub fn new(
        source: &str,
        strategy: CustomerMapping,
        pool: Option<PgPool>,
        b2b: Option<B2bClient>,
    ) -> Result<Self, CustomerError> {
        let missing = |needs| CustomerError::Misconfigured {
            source_name: source.to_owned(),
            strategy: strategy_name(&strategy),
            needs,
        };
        match &strategy {
            CustomerMapping::Static(_) => {}
            CustomerMapping::Table if pool.is_none() => return Err(missing("the database")),
            CustomerMapping::CompanyExtraField { .. } if pool.is_none() => {
                return Err(missing("the database (for its cache)"))
            }
            CustomerMapping::CompanyExtraField { .. } if b2b.is_none() => {
                return Err(missing("the source's B2B store"))
            }
            _ => {}
        }
        Ok(Self {
            source: source.to_owned(),
            strategy,
            pool,
            b2b,
        })
    }

    /// Resolves every id of a batch (one SQL query for the batch; API lookups only for ids
    /// neither imported nor freshly cached).
    pub async fn resolve_all(
        &self,
        ids: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, CustomerMatch>, CustomerError> {
        match (&self.strategy, &self.pool) {
            (CustomerMapping::Static(map), _) => Ok(ids
                .iter()
                .map(|id| {
                    let found = map.get(id).cloned().map(CustomerMatch::Company);
                    (
                        id.clone(),
                        found.unwrap_or_else(|| self.unmapped_static(id)),
                    )
                })
                .collect()),
            (CustomerMapping::Table, Some(pool)) => self.read_table(pool, ids).await,
            (CustomerMapping::CompanyExtraField { field_name, ttl }, Some(pool)) => {
                self.by_lookup(pool, ids, field_name, *ttl).await
            }
            // `new` refuses these combinations.
            (strategy, None) => Err(CustomerError::Misconfigured {
                source_name: self.source.clone(),
                strategy: strategy_name(strategy),
                needs: "the database",
            }),
        }
    }

    fn unmapped_static(&self, id: &str) -> CustomerMatch {
        CustomerMatch::Unmapped(format!(
            "ERP customer {id} has no B2B company in sources.{}.customers.map: add it there",
            self.source
        ))
    }

    async fn read_table(
        &self,
        pool: &PgPool,
        ids: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, CustomerMatch>, CustomerError> {
        let wanted: Vec<String> = ids.iter().cloned().collect();
        let rows = table::rows(pool, &self.source, &wanted, Duration::MAX, Duration::ZERO).await?;
        let mut found: BTreeMap<String, CustomerMatch> = rows
            .into_iter()
            .filter_map(|r| {
                Some((
                    r.external_customer_id,
                    CustomerMatch::Company(r.company_id?),
                ))
            })
            .collect();
        for id in ids {
            found.entry(id.clone()).or_insert_with(|| {
                CustomerMatch::Unmapped(format!(
                    "ERP customer {id} is not in the customer map of source {}: add it with \
                     `b2b-invoice-sync customers import FILE.csv --source {}`",
                    self.source, self.source
                ))
            });
        }
        Ok(found)
    }

    async fn by_lookup(
        &self,
        pool: &PgPool,
        ids: &BTreeSet<String>,
        field_name: &str,
        ttl: Duration,
    ) -> Result<BTreeMap<String, CustomerMatch>, CustomerError> {
        let wanted: Vec<String> = ids.iter().cloned().collect();
        let negative_ttl = ttl.min(NEGATIVE_TTL_CAP);
        let rows = table::rows(pool, &self.source, &wanted, ttl, negative_ttl).await?;
        let mut result = BTreeMap::new();
        for row in rows.into_iter().filter(|r| r.fresh) {
            let outcome = match row.company_id {
                Some(company) => CustomerMatch::Company(company),
                None => self.no_company(&row.external_customer_id, field_name),
            };
            result.insert(row.external_customer_id, outcome);
        }
        let mut looked_up = Vec::new();
        let missing: Vec<&String> = ids.iter().filter(|id| !result.contains_key(*id)).collect();
        for id in missing {
            let (outcome, cache) = self.look_up(id, field_name).await?;
            if let Some(company) = cache {
                looked_up.push((id.clone(), company));
            }
            result.insert(id.clone(), outcome);
        }
        table::store_lookups(pool, &self.source, &looked_up).await?;
        Ok(result)
    }

    /// One company lookup; returns the outcome and what to cache (`None`: cache nothing,
    /// e.g. after a transient failure or an ambiguous answer an operator must fix).
    async fn look_up(
        &self,
        id: &str,
        field_name: &str,
    ) -> Result<(CustomerMatch, Option<Option<String>>), CustomerError> {
        let Some(b2b) = &self.b2b else {
            return Ok((
                CustomerMatch::Unmapped("no B2B store to look companies up in".to_owned()),
                None,
            ));
        };
        Ok(
            match b2b.find_companies_by_extra_field(field_name, id).await {
                Ok(companies) => match companies.as_slice() {
                    [one] => {
                        let company = one.company_id.to_string();
                        (CustomerMatch::Company(company.clone()), Some(Some(company)))
                    }
                    [] => (self.no_company(id, field_name), Some(None)),
                    many => {
                        let list: Vec<String> =
                            many.iter().map(|c| c.company_id.to_string()).collect();
                        (
                            CustomerMatch::Unmapped(format!(
                                "ERP customer {id}: several B2B companies ({}) have extra field \
                             \"{field_name}\" = {id}; make it unique in B2B Edition",
                                list.join(", ")
                            )),
                            None,
                        )
                    }
                },
                Err(e) => {
                    if let Some(stop) = b2b.misconfigured(&e) {
                        return Err(stop.into());
                    }
                    (
                    CustomerMatch::Unmapped(format!(
                        "ERP customer {id}: company lookup in B2B Edition failed ({e}); retried next cycle"
                    )),
                    None,
                )
                }
            },
        )
    }

    fn no_company(&self, id: &str, field_name: &str) -> CustomerMatch {
        CustomerMatch::Unmapped(format!(
            "ERP customer {id}: no B2B company has extra field \"{field_name}\" = {id}; set it on \
             the company in B2B Edition (or import a mapping with `customers import --source {}`)",
            self.source
        ))
    }
}
