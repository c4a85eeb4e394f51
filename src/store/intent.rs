//! The one ledger protocol every mutation the daemon makes follows: B2B creates, updates,
//! deletes and zero balances (rows of `ledger`), and ERP payment write-backs (the
//! `payment_events` row is the payment's own intent).
//!
//! 1. The intent is committed before the request, in a transaction that first checks this
//!    process still holds the store ([`open`], [`commit`]): [`Begun::Go`] with the intent's row, or
//!    [`Begun::Busy`] when an earlier request for the same thing may have been applied and is
//!    not settled yet: then nothing is sent.
//! 2. The request ends Applied (the intent is settled as done), Rejected (certainly not applied:
//!    settled as failed, tried again later) or Ambiguous (it may have been applied: the intent
//!    stays in flight).
//! 3. An intent left in flight (an ambiguous answer, a crash) is settled by reading the other
//!    side before anything is sent again: [`Settlement`]. For invoices that is `sync::recover`
//!    (B2B read by externalId or invoice number, by id for a delete); for payments it is
//!    `payments::write_back` (the ERP's balance against the intent's target and the balance
//!    before).

use sqlx::{PgPool, Postgres, Transaction};

use super::leases::Fence;
use super::StoreError;

/// Whether a request may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begun {
    /// Send it: the intent is committed as this row.
    Go(i64),
    /// Do not send: an earlier request's outcome is not settled yet.
    Busy,
}

/// What reading the other side says of an intent left in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// The request was applied: settle the intent as done (adopt what it made).
    Applied,
    /// It was not applied (or is superseded): the intent is abandoned, a new one may follow.
    NotApplied,
    /// The other side could not tell (or could not be read): the intent stays in flight.
    Unknown,
}

/// The transaction an intent is written in, opened after checking this process still holds
/// the store ([`StoreError::LeaseLost`] otherwise: nothing may be sent). Write the intent in it,
/// then [`commit`].
pub async fn open(
    pool: &PgPool,
    fence: &Fence,
) -> Result<Transaction<'static, Postgres>, StoreError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(StoreError::query("opening an intent's transaction"))?;
    if !fence.holds(&mut tx).await? {
        return Err(StoreError::LeaseLost {
            source_name: fence.source().to_owned(),
        });
    }
    Ok(tx)
}

/// Commits the intent written as `row` (`None`: another intent of the same thing is still in
/// flight, so none was written). `what` names the commit in errors.
pub async fn commit(
    tx: Transaction<'static, Postgres>,
    row: Option<i64>,
    what: &'static str,
) -> Result<Begun, StoreError> {
    tx.commit().await.map_err(StoreError::query(what))?;
    Ok(row.map_or(Begun::Busy, Begun::Go))
}
