//! Finding B2B invoices by their ERP ids, whatever the store makes of `externalId[]`.
//!
//! BigCommerce's spec types the filter `array[number]` while `externalId` itself is a string and
//! ERPs use ids like `INV-2024-000123`. What a server does with such a value is not documented:
//! it may match it (the friendly reading), answer 400, or drop it and return the list
//! unfiltered. The friendly reading is assumed until an answer shows otherwise (a 400 naming the
//! value, or invoices that were not asked for), which is learned on the spot, remembered in
//! `b2b_capabilities` and re-checked daily; `probe` asks with a made-up id to tell in advance. Ids the filter cannot take are
//! found by invoice number instead (`searchBy=invoiceNumber&q=`, which matches substrings: only
//! exact matches count), in bulk: numbers that share a prefix are searched together when the
//! total the API reports for that prefix stays small. A filtered read never pages through the
//! whole store: a first page that holds invoices not asked for, or a total larger than asked,
//! means the filter is not honoured, and nothing more is read.

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;

use crate::b2b::model::Invoice;
use crate::b2b::{B2bClient, B2bError, InvoiceQuery};
use crate::store::capabilities::{self, ExternalIdFilter};
use crate::store::StoreError;

/// How long a learned reading is trusted before it is checked again.
pub const RECHECK: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error(transparent)]
    B2b(#[from] B2bError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What this process knows of one store's `externalId[]` reading.
#[derive(Debug)]
pub struct Capabilities {
    store: String,
    known: Mutex<Option<(ExternalIdFilter, Instant)>>,
}

impl Capabilities {
    pub fn new(store: &str) -> Self {
        Self {
            store: store.to_owned(),
            known: Mutex::new(None),
        }
    }

    pub fn store(&self) -> &str {
        &self.store
    }

    fn cached(&self) -> Option<ExternalIdFilter> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known
            .filter(|(_, at)| at.elapsed() < RECHECK)
            .map(|(reading, _)| reading)
    }

    fn keep(&self, reading: ExternalIdFilter, since: Instant) {
        *self.known.lock().unwrap_or_else(|e| e.into_inner()) = Some((reading, since));
    }

    /// The store's reading: this process's, else the database's while fresh, else the
    /// friendly one until an answer says otherwise (a 400, or invoices not asked for: each is
    /// seen at the first read that meets it, and learned then). Costs no request of its own.
    pub async fn external_id_filter(&self, pool: &PgPool) -> Result<ExternalIdFilter, LookupError> {
        if let Some(reading) = self.cached() {
            return Ok(reading);
        }
        if let Some((reading, checked)) =
            capabilities::external_id_filter(pool, &self.store).await?
        {
            let age = (chrono::Utc::now() - checked)
                .to_std()
                .unwrap_or(Duration::ZERO);
            if age < RECHECK {
                self.keep(reading, Instant::now() - age);
                return Ok(reading);
            }
        }
        Ok(ExternalIdFilter::Strings)
    }

    /// Remembers what an answer showed (in this process and in the database).
    async fn learn(&self, pool: &PgPool, reading: ExternalIdFilter) -> Result<(), LookupError> {
        if self.cached() != Some(reading) {
            tracing::info!(
                store = %self.store,
                external_id_filter = reading.as_str(),
                "learned how this store's B2B Edition reads externalId[]"
            );
        }
        self.keep(reading, Instant::now());
        capabilities::remember_external_id_filter(pool, &self.store, reading).await?;
        Ok(())
    }
}

/// Asks for a made-up id that no invoice holds (read-only): nothing back is the filter at work
/// (or an empty store, where nothing can be missed); invoices back mean it is ignored; a 400
/// means the store takes numbers only.
pub async fn probe_external_id_filter(client: &B2bClient) -> Result<ExternalIdFilter, B2bError> {
    let probe = InvoiceQuery {
        page_size: 1,
        ..InvoiceQuery::by_external_ids([format!(
            "b2bsync-probe-{}",
            uuid::Uuid::new_v4().simple()
        )])
    };
    match client.list_invoices_page(&probe, 0).await {
        Ok(page) if page.items.is_empty() => Ok(ExternalIdFilter::Strings),
        Ok(_) => Ok(ExternalIdFilter::Ignored),
        Err(e) if refuses_non_numbers(&e) => Ok(ExternalIdFilter::NumbersOnly),
        Err(e) => Err(e),
    }
}

/// A 400 about the `externalId` filter (the value is not a number).
fn refuses_non_numbers(e: &B2bError) -> bool {
    matches!(e, B2bError::Validation { message, .. }
        if message.to_ascii_lowercase().contains("externalid"))
}

fn numeric(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())
}

/// One invoice to find: its ERP id and its (unique) invoice number.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    pub external_id: &'a str,
    pub invoice_number: &'a str,
}

/// What [`find`] found, and how fresh it is.
#[derive(Debug, Default)]
pub struct Found {
    pub invoices: Vec<Invoice>,
    /// When the earliest read that answered was sent: every invoice is at least that fresh
    /// (`None` when nothing had to be read).
    pub read_at: Option<Instant>,
}

impl Found {
    fn note(&mut self, sent_at: Instant) {
        self.read_at = Some(self.read_at.map_or(sent_at, |t| t.min(sent_at)));
    }
}

/// The B2B invoices that hold these ERP ids (by `externalId[]` where the store's filter takes
/// them, else by invoice number), in as few reads as the store allows. Invoices found by number
/// are returned whatever their externalId; callers match what they need.
pub async fn find(
    pool: &PgPool,
    client: &B2bClient,
    caps: &Capabilities,
    wanted: &[Wanted<'_>],
) -> Result<Found, LookupError> {
    let mut found = Found::default();
    let mut by_number: Vec<&str> = Vec::new();
    let reading = caps.external_id_filter(pool).await?;
    let (mut filtered, rest): (Vec<Wanted>, Vec<Wanted>) =
        wanted.iter().partition(|w| match reading {
            ExternalIdFilter::Strings => true,
            ExternalIdFilter::NumbersOnly => numeric(w.external_id),
            ExternalIdFilter::Ignored => false,
        });
    by_number.extend(rest.iter().map(|w| w.invoice_number));
    while !filtered.is_empty() {
        let take = filtered.len().min(client.page_size() as usize);
        let chunk: Vec<Wanted> = filtered.drain(..take).collect();
        let asked: HashSet<&str> = chunk.iter().map(|w| w.external_id).collect();
        let query = InvoiceQuery::by_external_ids(asked.iter().map(|id| (*id).to_owned()));
        let first = match client.list_invoices_page_at(&query, 0).await {
            Ok((page, sent_at)) => {
                found.note(sent_at);
                page
            }
            Err(e) if refuses_non_numbers(&e) && chunk.iter().any(|w| !numeric(w.external_id)) => {
                caps.learn(pool, ExternalIdFilter::NumbersOnly).await?;
                let (numbers, others): (Vec<Wanted>, Vec<Wanted>) =
                    chunk.into_iter().partition(|w| numeric(w.external_id));
                filtered.extend(numbers);
                by_number.extend(others.iter().map(|w| w.invoice_number));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let foreign = first.items.iter().any(|i| {
            !i.external_id
                .as_deref()
                .is_some_and(|id| asked.contains(id))
        });
        // Larger than asked (beyond a duplicate or two of one id, which reconcile reports).
        let too_many = first
            .total_count
            .is_some_and(|t| t > 2 * u64::try_from(asked.len()).unwrap_or(u64::MAX / 2));
        if !foreign && !too_many && !first.items.is_empty() && caps.cached().is_none() {
            // Invoices that hold the ids asked for: the filter works, until the next re-check.
            caps.learn(pool, ExternalIdFilter::Strings).await?;
        }
        if foreign || too_many {
            // The filter was not honoured: nothing more is read of an unfiltered list.
            tracing::warn!(
                asked = asked.len(),
                total = ?first.total_count,
                "B2B Edition did not filter by externalId[]: looking these invoices up by number"
            );
            caps.learn(pool, ExternalIdFilter::Ignored).await?;
            by_number.extend(chunk.iter().map(|w| w.invoice_number));
            filtered
                .iter()
                .for_each(|w| by_number.push(w.invoice_number));
            filtered.clear();
            continue;
        }
        found.invoices.extend(first.items);
    }
    by_numbers(client, &by_number, &mut found).await?;
    Ok(found)
}

/// The invoices with exactly these numbers, searching numbers that share a prefix together
/// while the API's total for the prefix stays within a few pages of what is wanted.
async fn by_numbers(
    client: &B2bClient,
    numbers: &[&str],
    found: &mut Found,
) -> Result<(), B2bError> {
    let mut groups: Vec<Vec<&str>> = vec![numbers
        .iter()
        .copied()
        .collect::<BTreeSet<&str>>()
        .into_iter()
        .collect()];
    while let Some(mut group) = groups.pop() {
        if group.is_empty() {
            continue;
        }
        let prefix = common_prefix(&group);
        if group.len() > 1 && prefix.is_empty() {
            let rest = group.split_off(group.len() / 2);
            groups.push(rest);
            groups.push(group);
            continue;
        }
        let q = if group.len() == 1 { group[0] } else { prefix };
        let query = InvoiceQuery::by_invoice_number(q);
        let (first, sent_at) = client.list_invoices_page_at(&query, 0).await?;
        found.note(sent_at);
        let exact = |i: &Invoice| group.contains(&i.invoice_number.as_str());
        let total = first
            .total_count
            .unwrap_or(first.items.len() as u64)
            .max(first.items.len() as u64);
        let page = u64::from(client.page_size());
        let broad = total > (2 * group.len() as u64).max(page);
        let got = first.items.len() as u64;
        let matched: Vec<Invoice> = first.items.into_iter().filter(|i| exact(i)).collect();
        if group.len() > 1 && broad {
            // Too many share the prefix: keep what this page found, split the rest.
            let seen: HashSet<String> = matched.iter().map(|i| i.invoice_number.clone()).collect();
            found.invoices.extend(matched);
            group.retain(|n| !seen.contains(*n));
            if group.len() > 1 {
                let rest = group.split_off(group.len() / 2);
                groups.push(rest);
            }
            groups.push(group);
            continue;
        }
        found.invoices.extend(matched);
        let mut offset = got;
        while offset < total {
            let (next, sent_at) = client.list_invoices_page_at(&query, offset).await?;
            found.note(sent_at);
            if next.items.is_empty() {
                break;
            }
            offset += next.items.len() as u64;
            found
                .invoices
                .extend(next.items.into_iter().filter(|i| exact(i)));
        }
    }
    Ok(())
}

/// The longest prefix all of `texts` share (at a char boundary).
fn common_prefix<'a>(texts: &[&'a str]) -> &'a str {
    let Some(first) = texts.first() else {
        return "";
    };
    let mut end = first.len();
    for t in &texts[1..] {
        end = first
            .char_indices()
            .zip(t.chars())
            .take_while(|((_, a), b)| a == b)
            .last()
            .map_or(0, |((i, a), _)| i + a.len_utf8())
            .min(end);
    }
    &first[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefixes() {
        assert_eq!(
            common_prefix(&["INV-2024-000123", "INV-2024-000199"]),
            "INV-2024-0001"
        );
        assert_eq!(common_prefix(&["A-1", "B-1"]), "");
        assert_eq!(common_prefix(&["só-1", "só-2"]), "só-");
        assert_eq!(common_prefix(&["X"]), "X");
        assert_eq!(common_prefix(&[]), "");
    }

    #[test]
    fn only_digits_are_numbers() {
        assert!(numeric("1001"));
        assert!(!numeric("INV-1"));
        assert!(!numeric(""));
        assert!(!numeric("-1"));
    }
}
