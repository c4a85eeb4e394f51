//! `b2b_capabilities`: what each store's B2B Edition makes of what the documents leave open.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::StoreError;

/// How a store's `GET /ip/invoices` reads `externalId[]` values that are not numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExternalIdFilter {
    /// Matched as strings.
    Strings,
    /// A 400 for a value that is not a number; numbers are matched.
    NumbersOnly,
    /// Not honoured: the values are dropped and the list comes back unfiltered.
    Ignored,
}

impl ExternalIdFilter {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Strings => "strings",
            Self::NumbersOnly => "numbers_only",
            Self::Ignored => "ignored",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "strings" => Some(Self::Strings),
            "numbers_only" => Some(Self::NumbersOnly),
            "ignored" => Some(Self::Ignored),
            _ => None,
        }
    }
}

/// The reading last learned for `store`, and when.
pub async fn external_id_filter(
    pool: &PgPool,
    store: &str,
) -> Result<Option<(ExternalIdFilter, DateTime<Utc>)>, StoreError> {
    let row: Option<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT external_id_filter, checked_at FROM b2b_capabilities WHERE store = $1",
    )
    .bind(store)
    .fetch_optional(pool)
    .await
    .map_err(StoreError::query("reading the store's capabilities"))?;
    Ok(row.and_then(|(f, at)| ExternalIdFilter::parse(&f).map(|f| (f, at))))
}

pub async fn remember_external_id_filter(
    pool: &PgPool,
    store: &str,
    reading: ExternalIdFilter,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO b2b_capabilities (store, external_id_filter) VALUES ($1, $2)
         ON CONFLICT (store) DO UPDATE SET external_id_filter = $2, checked_at = now()",
    )
    .bind(store)
    .bind(reading.as_str())
    .execute(pool)
    .await
    .map_err(StoreError::query("recording the store's capabilities"))?;
    Ok(())
}
