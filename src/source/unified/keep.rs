//! What the adapter keeps between cycles: the API's own id of each invoice (`unified_refs`)
//! and the customers it resolved (`unified_customers`), in PostgreSQL; in memory when the
//! adapter runs without a database (a dry reader, the naive benchmark syncer, `probe`).
//!
//! Every write is a single statement that changes nothing when nothing changed, so a full scan
//! of unchanged invoices writes no row.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// A customer as the API knows it: its ERP id and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Customer {
    pub remote_id: String,
    pub name: Option<String>,
}

/// One invoice's ids, as a page showed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InvoiceRef {
    pub external_id: String,
    pub api_id: String,
    pub deleted: bool,
}

#[derive(Debug)]
pub(crate) enum Keep {
    Database(PgPool),
    Memory(Mutex<Memory>),
}

#[derive(Debug, Default)]
pub(crate) struct Memory {
    refs: HashMap<String, (String, bool)>,
    customers: HashMap<String, Customer>,
    refreshed_at: Option<DateTime<Utc>>,
}

/// A database failure, as text for `SourceError::Database`.
pub(crate) type KeepResult<T> = Result<T, String>;

fn db(context: &'static str) -> impl Fn(sqlx::Error) -> String {
    move |e| format!("{context}: {e}")
}

impl Keep {
    pub(crate) fn new(pool: Option<PgPool>) -> Self {
        match pool {
            Some(pool) => Self::Database(pool),
            None => Self::Memory(Mutex::default()),
        }
    }

    fn memory(memory: &Mutex<Memory>) -> std::sync::MutexGuard<'_, Memory> {
        memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the ids a page showed. A remoteId seen twice keeps a live record's id over a
    /// deleted one's (an ERP may reuse a number after a deletion).
    pub(crate) async fn remember_refs(&self, source: &str, refs: &[InvoiceRef]) -> KeepResult<()> {
        let mut unique: HashMap<&str, &InvoiceRef> = HashMap::with_capacity(refs.len());
        for r in refs {
            match unique.get(r.external_id.as_str()) {
                Some(kept) if r.deleted && !kept.deleted => {}
                _ => {
                    unique.insert(&r.external_id, r);
                }
            }
        }
        if unique.is_empty() {
            return Ok(());
        }
        match self {
            Self::Memory(memory) => {
                let mut memory = Self::memory(memory);
                for r in unique.into_values() {
                    let keep_old = memory
                        .refs
                        .get(&r.external_id)
                        .is_some_and(|(_, old_deleted)| r.deleted && !old_deleted);
                    if !keep_old {
                        memory
                            .refs
                            .insert(r.external_id.clone(), (r.api_id.clone(), r.deleted));
                    }
                }
                Ok(())
            }
            Self::Database(pool) => {
                let (mut ext, mut api, mut deleted) = (Vec::new(), Vec::new(), Vec::new());
                for r in unique.into_values() {
                    ext.push(r.external_id.clone());
                    api.push(r.api_id.clone());
                    deleted.push(r.deleted);
                }
                sqlx::query(
                    "INSERT INTO unified_refs (source, external_id, api_id, deleted)
                     SELECT $1, e, a, d FROM UNNEST($2::text[], $3::text[], $4::bool[]) AS t(e, a, d)
                     ON CONFLICT (source, external_id) DO UPDATE
                        SET api_id = EXCLUDED.api_id, deleted = EXCLUDED.deleted
                      WHERE (unified_refs.api_id, unified_refs.deleted)
                            IS DISTINCT FROM (EXCLUDED.api_id, EXCLUDED.deleted)
                        AND (NOT EXCLUDED.deleted OR unified_refs.deleted)",
                )
                .bind(source)
                .bind(&ext)
                .bind(&api)
                .bind(&deleted)
                .execute(pool)
                .await
                .map_err(db("recording the invoices' API ids"))?;
                Ok(())
            }
        }
    }

    /// The API's own id of the invoice whose ERP id is `external_id`, if a page showed it.
    pub(crate) async fn api_id(
        &self,
        source: &str,
        external_id: &str,
    ) -> KeepResult<Option<String>> {
        match self {
            Self::Memory(memory) => Ok(Self::memory(memory)
                .refs
                .get(external_id)
                .map(|(id, _)| id.clone())),
            Self::Database(pool) => sqlx::query_scalar(
                "SELECT api_id FROM unified_refs WHERE source = $1 AND external_id = $2",
            )
            .bind(source)
            .bind(external_id)
            .fetch_optional(pool)
            .await
            .map_err(db("reading an invoice's API id")),
        }
    }

    /// The kept customers among `ids` (API customer ids).
    pub(crate) async fn customers(
        &self,
        source: &str,
        ids: &HashSet<String>,
    ) -> KeepResult<HashMap<String, Customer>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        match self {
            Self::Memory(memory) => {
                let memory = Self::memory(memory);
                Ok(ids
                    .iter()
                    .filter_map(|id| Some((id.clone(), memory.customers.get(id)?.clone())))
                    .collect())
            }
            Self::Database(pool) => {
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
                    "SELECT api_id, remote_id, name FROM unified_customers
                      WHERE source = $1 AND api_id = ANY($2)",
                )
                .bind(source)
                .bind(&ids)
                .fetch_all(pool)
                .await
                .map_err(db("reading the customer cache"))?;
                Ok(rows
                    .into_iter()
                    .map(|(id, remote_id, name)| (id, Customer { remote_id, name }))
                    .collect())
            }
        }
    }

    /// Keeps customers read from the API (`(api id, customer)`).
    pub(crate) async fn store_customers(
        &self,
        source: &str,
        customers: &[(String, Customer)],
    ) -> KeepResult<()> {
        if customers.is_empty() {
            return Ok(());
        }
        match self {
            Self::Memory(memory) => {
                let mut memory = Self::memory(memory);
                for (id, customer) in customers {
                    memory.customers.insert(id.clone(), customer.clone());
                }
                Ok(())
            }
            Self::Database(pool) => {
                // One row per id: ON CONFLICT cannot touch a row twice in one statement.
                let unique: HashMap<&str, &Customer> =
                    customers.iter().map(|(id, c)| (id.as_str(), c)).collect();
                let (mut ids, mut remote, mut names) = (Vec::new(), Vec::new(), Vec::new());
                for (id, c) in unique {
                    ids.push(id);
                    remote.push(c.remote_id.as_str());
                    names.push(c.name.as_deref());
                }
                sqlx::query(
                    "INSERT INTO unified_customers (source, api_id, remote_id, name)
                     SELECT $1, a, r, n FROM UNNEST($2::text[], $3::text[], $4::text[]) AS t(a, r, n)
                     ON CONFLICT (source, api_id) DO UPDATE
                        SET remote_id = EXCLUDED.remote_id, name = EXCLUDED.name, fetched_at = now()
                      WHERE (unified_customers.remote_id, unified_customers.name)
                            IS DISTINCT FROM (EXCLUDED.remote_id, EXCLUDED.name)",
                )
                .bind(source)
                .bind(&ids)
                .bind(&remote)
                .bind(&names)
                .execute(pool)
                .await
                .map_err(db("keeping customers"))?;
                Ok(())
            }
        }
    }

    /// When the customers list was last read whole.
    pub(crate) async fn refreshed_at(&self, source: &str) -> KeepResult<Option<DateTime<Utc>>> {
        match self {
            Self::Memory(memory) => Ok(Self::memory(memory).refreshed_at),
            Self::Database(pool) => sqlx::query_scalar(
                "SELECT refreshed_at FROM unified_customer_refreshes WHERE source = $1",
            )
            .bind(source)
            .fetch_optional(pool)
            .await
            .map_err(db("reading when customers were last refreshed")),
        }
    }

    /// The customers list was just read whole.
    pub(crate) async fn mark_refreshed(&self, source: &str) -> KeepResult<()> {
        match self {
            Self::Memory(memory) => {
                Self::memory(memory).refreshed_at = Some(Utc::now());
                Ok(())
            }
            Self::Database(pool) => {
                sqlx::query(
                    "INSERT INTO unified_customer_refreshes (source, refreshed_at)
                     VALUES ($1, now())
                     ON CONFLICT (source) DO UPDATE SET refreshed_at = EXCLUDED.refreshed_at",
                )
                .bind(source)
                .execute(pool)
                .await
                .map_err(db("recording the customers refresh"))?;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(ext: &str, api: &str, deleted: bool) -> InvoiceRef {
        InvoiceRef {
            external_id: ext.to_owned(),
            api_id: api.to_owned(),
            deleted,
        }
    }

    #[tokio::test]
    async fn a_live_records_id_wins_over_a_deleted_ones() {
        let keep = Keep::new(None);
        keep.remember_refs("s", &[r("1001", "a", false), r("1001", "b", true)])
            .await
            .unwrap();
        assert_eq!(
            keep.api_id("s", "1001").await.unwrap().as_deref(),
            Some("a")
        );
        keep.remember_refs("s", &[r("1001", "c", true)])
            .await
            .unwrap();
        assert_eq!(
            keep.api_id("s", "1001").await.unwrap().as_deref(),
            Some("a")
        );
        keep.remember_refs("s", &[r("1001", "d", false)])
            .await
            .unwrap();
        assert_eq!(
            keep.api_id("s", "1001").await.unwrap().as_deref(),
            Some("d")
        );
        assert_eq!(keep.api_id("s", "1002").await.unwrap(), None);
    }
}
