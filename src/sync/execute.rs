//! Runs planned actions against B2B Edition under the store's budget, following the ledger
//! protocol: the intent is committed before the request; success commits ledger and state in one
//! transaction; a definite rejection is recorded with the API's message; an ambiguous outcome
//! stays in flight for `recover` to settle before anything else touches that invoice.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio::time::Instant;

use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::balance;
use super::failpoints::Failpoints;
use super::lookup::{self, LookupError, Wanted};
use super::outcome::{log_action, note_status, record_failure, CycleError, Outcome, Retry};
use super::prepare::Prepared;
use crate::b2b::model::{Amount, Invoice, InvoiceUpdate};
use crate::b2b::{B2bClient, B2bError, InvoiceQuery};
use crate::config::{MissingPolicy, SourceSettings};
use crate::domain::fingerprint::canonical;
use crate::domain::{deletion_action, B2bBalance, DeletionAction};
use crate::store::intent::Begun;
use crate::store::ledger::{self, Intent, Op};
use crate::store::state::{self, StateRow, Synced};

/// Updates and removals gathered before the batch runs (its reads go a page of ids at a time:
/// `stores.<name>.b2b.page_size`).
pub const FETCH_BATCH: usize = 250;

/// Everything an action needs.
pub struct Ctx<'a> {
    pub pool: &'a PgPool,
    pub client: &'a B2bClient,
    pub source: &'a SourceSettings,
    pub run_id: Uuid,
    pub failpoints: &'a Failpoints,
    /// What every intent checks: this process still holds the source's lock.
    pub fence: &'a crate::store::leases::Fence,
    /// How the store reads `externalId[]` (see `lookup`).
    pub capabilities: &'a super::lookup::Capabilities,
}

/// An update or a removal waiting for the batch fetch of current B2B state.
#[derive(Debug, Clone)]
pub enum Pending {
    Update {
        b2b_invoice_id: u64,
        prepared: Prepared,
        attempts: i32,
        /// The openBalance last written to B2B (payments there lower it).
        written_open: Option<rust_decimal::Decimal>,
    },
    Remove {
        b2b_invoice_id: u64,
        prepared: Prepared,
        state: Box<StateRow>,
    },
}

impl Pending {
    pub fn external_id(&self) -> &str {
        match self {
            Self::Update { prepared, .. } | Self::Remove { prepared, .. } => prepared.external_id(),
        }
    }

    pub fn prepared(&self) -> &Prepared {
        match self {
            Self::Update { prepared, .. } | Self::Remove { prepared, .. } => prepared,
        }
    }

    fn attempts(&self) -> i32 {
        match self {
            Self::Update { attempts, .. } => *attempts,
            Self::Remove { .. } => 0,
        }
    }

    fn b2b_invoice_id(&self) -> u64 {
        match self {
            Self::Update { b2b_invoice_id, .. } | Self::Remove { b2b_invoice_id, .. } => {
                *b2b_invoice_id
            }
        }
    }
}

fn is_duplicate_number(e: &B2bError) -> bool {
    matches!(e, B2bError::Validation { message, .. } if message.to_ascii_lowercase().contains("already exists"))
}

fn status_of(e: &B2bError) -> Option<u16> {
    match e {
        B2bError::Validation { .. } => Some(400),
        B2bError::NotFound { .. } => Some(404),
        B2bError::Unauthorized { status, .. }
        | B2bError::Rejected { status, .. }
        | B2bError::Server { status, .. } => Some(*status),
        B2bError::RateLimited { .. } => Some(429),
        _ => None,
    }
}

/// What the ledger guard decided for a mutation.
enum Guarded {
    /// Send it: the intent is committed as this ledger row.
    Go(i64),
    /// Do not send: an earlier request's outcome is unknown; report this outcome.
    Busy(Outcome),
}

fn digest(body: &impl serde::Serialize) -> String {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

impl Ctx<'_> {
    fn fail(
        &self,
        p: &Prepared,
        attempts: i32,
        reason: String,
        retry: Retry,
    ) -> impl std::future::Future<Output = Result<Outcome, CycleError>> + '_ {
        let p = p.clone();
        async move {
            Ok(record_failure(
                self.pool,
                &self.source.failures,
                &p.invoice,
                Some(p.fingerprint.as_str()),
                attempts,
                reason,
                retry,
            )
            .await?)
        }
    }

    /// The ledger guard of every B2B mutation (`store::intent`'s protocol): the intent is
    /// committed before the request
    /// ([`Guarded::Go`] with its ledger row), or, when an earlier request for this invoice is
    /// still in flight (its outcome unknown), nothing is sent and the invoice is due next cycle,
    /// once recovery has settled it ([`Guarded::Busy`], the outcome to report).
    async fn guard(
        &self,
        p: &Prepared,
        op: Op,
        b2b_id: Option<u64>,
        body_digest: &str,
        attempts: i32,
    ) -> Result<Guarded, CycleError> {
        let owned = serde_json::to_value(canonical(&p.desired)).ok();
        let begun = ledger::begin(
            self.pool,
            &Intent {
                source: &self.source.name,
                external_id: p.external_id(),
                invoice_number: p.invoice_number(),
                op,
                fingerprint: Some(p.fingerprint.as_str()),
                owned: owned.as_ref(),
                written_open: Some(p.desired.open_balance),
                b2b_invoice_id: b2b_id,
                request_digest: Some(body_digest),
                attempt: attempts + 1,
                run_id: self.run_id,
                erp_version: p.invoice.version.as_ref(),
            },
            self.fence,
        )
        .await?;
        match begun {
            Begun::Go(ledger_id) => Ok(Guarded::Go(ledger_id)),
            Begun::Busy => Ok(Guarded::Busy(
                self.fail(p, attempts, IN_FLIGHT.to_owned(), Retry::NextCycle)
                    .await?,
            )),
        }
    }

    /// Ledger and state in one transaction: B2B holds `p`'s content as invoice `id`.
    async fn commit_synced(
        &self,
        ledger_id: i64,
        id: u64,
        p: &Prepared,
        state_age: Option<std::time::Duration>,
    ) -> Result<(), CycleError> {
        let owned = serde_json::to_value(canonical(&p.desired)).ok();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(crate::store::StoreError::query("opening a transaction"))?;
        match state_age {
            Some(age) => ledger::succeed_update(&mut *tx, ledger_id, id, age).await?,
            None => ledger::succeed(&mut *tx, ledger_id, id, "created").await?,
        }
        state::mark_synced(
            &mut *tx,
            &Synced {
                source: &self.source.name,
                external_id: p.external_id(),
                invoice_number: p.invoice_number(),
                b2b_invoice_id: id,
                fingerprint: Some(p.fingerprint.as_str()),
                owned: owned.as_ref(),
                written_open: Some(p.desired.open_balance),
                erp_version: p.invoice.version.as_ref(),
                erp_paid: p.invoice.total.checked_sub(p.invoice.open_balance),
                erp_balance: Some(p.invoice.open_balance),
            },
        )
        .await?;
        tx.commit().await.map_err(crate::store::StoreError::query(
            "committing a synced invoice",
        ))?;
        Ok(())
    }

    /// [`Self::create`] and its one log line.
    pub async fn create_logged(&self, p: &Prepared, attempts: i32) -> Result<Outcome, CycleError> {
        let started = std::time::Instant::now();
        let (outcome, waited) = crate::b2b::budget::measure_wait(self.create(p, attempts)).await;
        let outcome = outcome?;
        log_action(&outcome, started.elapsed(), waited);
        Ok(outcome)
    }

    async fn run_pending_logged(
        &self,
        item: Pending,
        current: &HashMap<u64, Invoice>,
        read_at: Instant,
        unreadable: Option<&str>,
    ) -> Result<Outcome, CycleError> {
        let started = std::time::Instant::now();
        let (outcome, waited) =
            crate::b2b::budget::measure_wait(self.run_pending(item, current, read_at, unreadable))
                .await;
        let outcome = outcome?;
        if outcome != Outcome::Expired {
            log_action(&outcome, started.elapsed(), waited);
        }
        Ok(outcome)
    }

    /// `POST /invoices` under the ledger protocol.
    pub async fn create(&self, p: &Prepared, attempts: i32) -> Result<Outcome, CycleError> {
        let body = p.desired.to_new_invoice();
        let ledger_id = match self
            .guard(p, Op::Create, None, &digest(&body), attempts)
            .await?
        {
            Guarded::Go(ledger_id) => ledger_id,
            Guarded::Busy(outcome) => return Ok(outcome),
        };
        self.failpoints.check("before_create")?;
        match self.client.create_invoice(&body).await {
            Ok(id) => {
                self.failpoints.check("after_create")?;
                self.commit_synced(ledger_id, id, p, None).await?;
                tracing::Span::current().record("b2b_invoice_id", id);
                note_status(Some(200));
                Ok(Outcome::Created)
            }
            Err(e) if is_duplicate_number(&e) => {
                self.settle_duplicate_number(ledger_id, p, attempts, &e)
                    .await
            }
            Err(e) => {
                self.mutation_failed(
                    ledger_id,
                    p,
                    attempts,
                    e,
                    "the next cycle looks the invoice up in B2B before trying again",
                )
                .await
            }
        }
    }

    /// A failed mutation: an ambiguous outcome stays in flight for recovery and the invoice is
    /// due next cycle (`then` says what happens there); a definite one is settled as failed and
    /// retried with backoff.
    async fn mutation_failed(
        &self,
        ledger_id: i64,
        p: &Prepared,
        attempts: i32,
        e: B2bError,
        then: &str,
    ) -> Result<Outcome, CycleError> {
        note_status(status_of(&e));
        if let Some(stop) = self.client.misconfigured(&e) {
            // Not applied (refused, or never sent), and not this invoice's fault.
            ledger::fail(self.pool, ledger_id, status_of(&e), &e.to_string()).await?;
            return Err(stop.into());
        }
        if e.is_ambiguous() {
            ledger::note_ambiguous(self.pool, ledger_id, &e.to_string()).await?;
            let reason = if then.is_empty() {
                e.to_string()
            } else {
                format!("{e}; {then}")
            };
            self.fail(p, attempts, reason, Retry::NextCycle).await
        } else {
            ledger::fail(self.pool, ledger_id, status_of(&e), &e.to_string()).await?;
            self.fail(p, attempts, e.to_string(), Retry::Backoff).await
        }
    }

    /// "The invoice number already exists": ours (same externalId) is adopted and brought up to
    /// date; anyone else's is a conflict for a person to resolve.
    async fn settle_duplicate_number(
        &self,
        ledger_id: i64,
        p: &Prepared,
        attempts: i32,
        e: &B2bError,
    ) -> Result<Outcome, CycleError> {
        // The 400 means nothing was created: the intent is settled either way.
        ledger::fail(self.pool, ledger_id, Some(400), &e.to_string()).await?;
        let query = InvoiceQuery::by_invoice_number(p.invoice_number());
        let read_at = Instant::now();
        let found: Result<Vec<Invoice>, B2bError> =
            self.client.list_invoices(&query).try_collect().await;
        let found = match found {
            Ok(list) => list
                .into_iter()
                .filter(|i| i.invoice_number == p.invoice_number())
                .collect::<Vec<_>>(),
            Err(err) => {
                if let Some(stop) = self.client.misconfigured(&err) {
                    return Err(stop.into());
                }
                let reason = format!("{e}; looking up who holds the number failed: {err}");
                return self.fail(p, attempts, reason, Retry::Backoff).await;
            }
        };
        match found
            .iter()
            .find(|i| i.external_id.as_deref() == Some(p.external_id()))
        {
            Some(ours) => {
                tracing::info!(
                    b2b_invoice_id = ours.id,
                    "invoice number already existed with this externalId: adopted"
                );
                match self
                    .update_from(ours.id, p, ours, read_at, attempts)
                    .await?
                {
                    Outcome::Updated => Ok(Outcome::Created),
                    Outcome::Expired => {
                        let reason = format!(
                            "invoice number {} already existed with this externalId (adopted as B2B invoice #{}); \
                             its update waited past update_freshness and is sent next cycle from a fresh read",
                            p.invoice_number(),
                            ours.id
                        );
                        self.fail(p, attempts, reason, Retry::NextCycle).await
                    }
                    other => Ok(other),
                }
            }
            None => {
                let holder = found
                    .first()
                    .map(|i| {
                        format!(
                            "B2B invoice #{} (externalId {})",
                            i.id,
                            i.external_id.as_deref().unwrap_or("none")
                        )
                    })
                    .unwrap_or_else(|| "an invoice this client cannot see".to_owned());
                let reason = format!(
                    "invoice number {} already exists in B2B Edition as {holder}: two ERP invoices share the number, \
                     or it was made in B2B by hand; give one of them another number",
                    p.invoice_number()
                );
                self.fail(p, attempts, reason, Retry::Backoff).await
            }
        }
    }

    /// `PUT` built from `current`, the invoice as B2B held it when read at `read_at`. Not sent
    /// once that read is older than the source's `update_freshness` ([`Outcome::Expired`]:
    /// read it again and build the update anew), so a person's edit is at risk only inside
    /// that window (B2B has no conditional update).
    pub async fn update_from(
        &self,
        id: u64,
        p: &Prepared,
        current: &Invoice,
        read_at: Instant,
        attempts: i32,
    ) -> Result<Outcome, CycleError> {
        let body = p.desired.to_update(&current.details);
        let ledger_id = match self
            .guard(p, Op::Update, Some(id), &digest(&body), attempts)
            .await?
        {
            Guarded::Go(ledger_id) => ledger_id,
            Guarded::Busy(outcome) => return Ok(outcome),
        };
        let not_after = read_at + self.source.update_freshness;
        match self
            .client
            .update_invoice_by(id, &body, Some(not_after))
            .await
        {
            Ok((_, sent_at)) => {
                let age = sent_at.saturating_duration_since(read_at);
                metrics::histogram!(crate::telemetry_metrics::UPDATE_STATE_AGE, "source" => self.source.name.clone())
                    .record(age.as_secs_f64());
                self.commit_synced(ledger_id, id, p, Some(age)).await?;
                note_status(Some(200));
                Ok(Outcome::Updated)
            }
            Err(B2bError::Expired { .. }) => {
                ledger::fail(
                    self.pool,
                    ledger_id,
                    None,
                    "not sent: the state it was built from passed update_freshness; read again",
                )
                .await?;
                Ok(Outcome::Expired)
            }
            Err(B2bError::NotFound { .. }) => {
                ledger::fail(self.pool, ledger_id, Some(404), "gone from B2B").await?;
                self.missing_in_b2b(id, p, attempts).await
            }
            Err(e) => {
                self.mutation_failed(
                    ledger_id,
                    p,
                    attempts,
                    e,
                    "the next cycle reads the invoice again and sends a fresh update",
                )
                .await
            }
        }
    }

    async fn missing_in_b2b(
        &self,
        id: u64,
        p: &Prepared,
        attempts: i32,
    ) -> Result<Outcome, CycleError> {
        match self.source.on_missing_in_b2b {
            MissingPolicy::Recreate => {
                tracing::info!(
                    b2b_invoice_id = id,
                    "invoice gone from B2B: creating it again (on_missing_in_b2b = recreate)"
                );
                Box::pin(self.create(p, attempts)).await
            }
            MissingPolicy::Fail => {
                let reason = format!(
                    "B2B invoice #{id} no longer exists (deleted in B2B Edition?); set \
                     sources.{}.on_missing_in_b2b = \"recreate\" to create it again, or delete it in the ERP",
                    self.source.name
                );
                self.fail(p, attempts, reason, Retry::Backoff).await
            }
        }
    }

    /// Runs a batch of updates and removals, each from B2B's current state, read in bulk
    /// (`externalId[]`) and never older than `update_freshness` when an update goes out.
    ///
    /// The batch goes in groups sized by the budget: one read of the group's invoices, sent
    /// with the first updates on cells reserved together (so they leave back to back), then the
    /// rest at the budget's pace while the read is still fresh. An update whose turn comes
    /// later is not sent; it goes back to the queue and is read again with the next group.
    /// Items not started because `stop` was cancelled come back as `None`.
    pub async fn run_batch(
        &self,
        batch: Vec<Pending>,
        concurrency: usize,
        stop: &tokio_util::sync::CancellationToken,
    ) -> (Vec<(String, Option<Outcome>)>, Option<CycleError>) {
        let mut queue: VecDeque<Pending> = batch.into();
        let mut outcomes = Vec::with_capacity(queue.len());
        let mut futile = 0;
        // After a cycle error nothing new starts; what finished is still reported.
        let halt = stop.child_token();
        while !queue.is_empty() {
            if halt.is_cancelled() {
                break;
            }
            let budget = self.client.budget();
            let together = budget.max_reservation().max(1);
            let paced = budget.requests_per_second() * self.source.update_freshness.as_secs_f64();
            // Saturating float-to-int conversion: a huge bound is capped by the read size.
            let take = (together as usize - 1 + paced as usize)
                .clamp(1, self.client.page_size() as usize)
                .min(queue.len());
            let group: Vec<Pending> = queue.drain(..take).collect();
            let reserved = budget
                .reserve(u32::try_from(take + 1).unwrap_or(u32::MAX))
                .await;
            let client = self.client.with_reservation(Arc::new(reserved));
            let ctx = Ctx {
                client: &client,
                ..*self
            };
            let pauses = budget.stats().pauses;
            let (done, expired, error) = ctx.run_group(group, concurrency, &halt).await;
            let sent = done.len();
            // A group that waited out a 429 pause proves nothing about the bound.
            let paused = budget.stats().pauses > pauses;
            outcomes.extend(done);
            if let Some(e) = error {
                outcomes.extend(
                    expired
                        .into_iter()
                        .map(|p| (p.external_id().to_owned(), None)),
                );
                return (outcomes, Some(e));
            }
            futile = match (sent, paused) {
                (0, false) => futile + 1,
                (0, true) => futile,
                _ => 0,
            };
            if futile >= 3 {
                // Not one update could go while its read was fresh, three times running: the
                // bound is shorter than a read and a write take here. Say so, per invoice.
                for item in expired.into_iter().chain(queue.drain(..)) {
                    let reason = format!(
                        "no update could be sent within sources.{}.update_freshness_secs = {:?} of reading \
                         the invoice (a read and a write take longer here); raise it",
                        self.source.name, self.source.update_freshness
                    );
                    let outcome = match self
                        .fail(item.prepared(), item.attempts(), reason, Retry::Backoff)
                        .await
                    {
                        Ok(o) => o,
                        Err(e) => return (outcomes, Some(e)),
                    };
                    outcomes.push((item.external_id().to_owned(), Some(outcome)));
                }
                break;
            }
            // Read again first, in the order they came.
            for item in expired.into_iter().rev() {
                queue.push_front(item);
            }
        }
        outcomes.extend(
            queue
                .into_iter()
                .map(|p| (p.external_id().to_owned(), None)),
        );
        (outcomes, None)
    }

    /// One group: its read, then its items. Returns what was settled, what expired (to read
    /// again), and the cycle error that stopped it, if one did.
    async fn run_group(
        &self,
        group: Vec<Pending>,
        concurrency: usize,
        halt: &tokio_util::sync::CancellationToken,
    ) -> (
        Vec<(String, Option<Outcome>)>,
        Vec<Pending>,
        Option<CycleError>,
    ) {
        let wanted: Vec<Wanted> = group
            .iter()
            .map(|p| Wanted {
                external_id: p.external_id(),
                invoice_number: p.prepared().invoice_number(),
            })
            .collect();
        let asked_at = Instant::now();
        let fetched = lookup::find(self.pool, self.client, self.capabilities, &wanted).await;
        // When the read was sent (not when it was asked for: a 429 pause may come between):
        // the state is at least this fresh.
        let read_at = fetched
            .as_ref()
            .ok()
            .and_then(|f| f.read_at)
            .unwrap_or(asked_at);
        let back = |group: Vec<Pending>| {
            group
                .into_iter()
                .map(|p| (p.external_id().to_owned(), None))
                .collect()
        };
        let mut unreadable: Option<String> = None;
        let current: HashMap<u64, Invoice> = match fetched {
            Ok(found) => found.invoices.into_iter().map(|i| (i.id, i)).collect(),
            Err(LookupError::Store(e)) => return (back(group), Vec::new(), Some(e.into())),
            Err(LookupError::B2b(e)) => {
                if let Some(stop) = self.client.misconfigured(&e) {
                    return (back(group), Vec::new(), Some(stop.into()));
                }
                unreadable = Some(e.to_string());
                HashMap::new()
            }
        };
        let current = &current;
        let unreadable = unreadable.as_deref();
        let results: Vec<(Pending, Result<Option<Outcome>, CycleError>)> = futures::stream::iter(
            group,
        )
        .map(|item| async move {
            if halt.is_cancelled() {
                return (item, Ok(None));
            }
            let span = tracing::info_span!(
                "invoice",
                source = %self.source.name,
                store = %self.source.store,
                external_id = %item.external_id(),
                invoice_number = %item.prepared().invoice_number(),
                action = if matches!(item, Pending::Update { .. }) { "update" } else { "delete" },
                attempt = item.attempts() + 1,
                b2b_invoice_id = item.b2b_invoice_id(),
                http_status = tracing::field::Empty,
            );
            let outcome = tracing::Instrument::instrument(
                self.run_pending_logged(item.clone(), current, read_at, unreadable),
                span,
            )
            .await;
            if outcome.is_err() {
                halt.cancel();
            }
            (item, outcome.map(Some))
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
        let mut done = Vec::with_capacity(results.len());
        let mut expired = Vec::new();
        let mut first_error = None;
        for (item, result) in results {
            match result {
                Ok(Some(Outcome::Expired)) => expired.push(item),
                Ok(o) => done.push((item.external_id().to_owned(), o)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        (done, expired, first_error)
    }

    /// `GET /invoices/{id}`, noting when it was sent (what an update from it is as fresh as).
    async fn read_by_id(&self, id: u64, read_at: &mut Instant) -> Result<Invoice, B2bError> {
        *read_at = Instant::now();
        self.client.get_invoice(id).await
    }

    async fn run_pending(
        &self,
        item: Pending,
        current: &HashMap<u64, Invoice>,
        batch_read_at: Instant,
        unreadable: Option<&str>,
    ) -> Result<Outcome, CycleError> {
        let id = item.b2b_invoice_id();
        let mut read_at = batch_read_at;
        let fresh = match current.get(&id) {
            Some(inv) => Some(inv.clone()),
            // Not in the batch answer (its externalId changed in B2B, or it is gone): ask by id.
            None => match self.read_by_id(id, &mut read_at).await {
                Ok(inv) => Some(inv),
                Err(B2bError::NotFound { .. }) => None,
                Err(e) => {
                    if let Some(stop) = self.client.misconfigured(&e) {
                        return Err(stop.into());
                    }
                    let (prepared, attempts) = (item.prepared(), item.attempts());
                    let reason = format!(
                        "could not read the invoice's current state in B2B ({}): {e}",
                        unreadable.unwrap_or("not in the batch answer")
                    );
                    return self.fail(prepared, attempts, reason, Retry::Backoff).await;
                }
            },
        };
        match item {
            Pending::Update {
                b2b_invoice_id,
                prepared,
                attempts,
                written_open,
            } => match fresh {
                Some(inv) => {
                    let prepared = match self
                        .payments_guard(b2b_invoice_id, prepared, &inv, written_open)
                        .await?
                    {
                        Ok(p) => p,
                        Err((p, reason)) => {
                            return self.fail(&p, attempts, reason, Retry::Backoff).await;
                        }
                    };
                    self.update_from(b2b_invoice_id, &prepared, &inv, read_at, attempts)
                        .await
                }
                None => {
                    self.missing_in_b2b(b2b_invoice_id, &prepared, attempts)
                        .await
                }
            },
            Pending::Remove {
                b2b_invoice_id,
                prepared,
                state,
            } => self.remove(b2b_invoice_id, &prepared, &state, fresh).await,
        }
    }

    /// A deleted or voided ERP invoice that B2B holds: the source's policy, guarded by payments.
    async fn remove(
        &self,
        id: u64,
        p: &Prepared,
        st: &StateRow,
        current: Option<Invoice>,
    ) -> Result<Outcome, CycleError> {
        let src = &self.source.name;
        let Some(inv) = current else {
            state::deleted_from_b2b(self.pool, &p.deletion(src)).await?;
            return Ok(Outcome::Deleted);
        };
        let balance = B2bBalance {
            open: inv.open_balance.value,
            last_written_open: st.written_open.unwrap_or(inv.original_balance.value),
        };
        match deletion_action(self.source.on_deleted, Some(balance)) {
            DeletionAction::Nothing => {
                state::deleted_kept_in_b2b(self.pool, &p.deletion(src)).await?;
                Ok(Outcome::Unchanged)
            }
            DeletionAction::Flag { reason } => {
                state::mark_flagged(
                    self.pool,
                    src,
                    p.external_id(),
                    &reason,
                    Some(p.fingerprint.as_str()),
                )
                .await?;
                tracing::warn!(b2b_invoice_id = id, reason = %reason, "flagged for a person");
                Ok(Outcome::Failed(reason))
            }
            DeletionAction::Delete => {
                let ledger_id = match self.guard(p, Op::Delete, Some(id), "", 0).await? {
                    Guarded::Go(ledger_id) => ledger_id,
                    Guarded::Busy(outcome) => return Ok(outcome),
                };
                match self.client.delete_invoice(id).await {
                    Ok(()) | Err(B2bError::NotFound { .. }) => {
                        ledger::succeed(self.pool, ledger_id, id, "deleted").await?;
                        state::deleted_from_b2b(self.pool, &p.deletion(src)).await?;
                        tracing::info!(
                            b2b_invoice_id = id,
                            "deleted in B2B (deleted or voided in the ERP)"
                        );
                        Ok(Outcome::Deleted)
                    }
                    Err(e) => self.mutation_failed(ledger_id, p, 0, e, "").await,
                }
            }
            DeletionAction::ZeroBalance => {
                let body = InvoiceUpdate {
                    open_balance: Some(Amount::new(
                        inv.open_balance.code.clone(),
                        rust_decimal::Decimal::ZERO,
                    )),
                    ..InvoiceUpdate::default()
                };
                let ledger_id = match self
                    .guard(p, Op::ZeroBalance, Some(id), &digest(&body), 0)
                    .await?
                {
                    Guarded::Go(ledger_id) => ledger_id,
                    Guarded::Busy(outcome) => return Ok(outcome),
                };
                match self.client.update_invoice(id, &body).await {
                    Ok(_) => {
                        ledger::succeed(self.pool, ledger_id, id, "zero balance").await?;
                        state::deleted_kept_in_b2b(self.pool, &p.deletion(src)).await?;
                        Ok(Outcome::Deleted)
                    }
                    Err(e) => self.mutation_failed(ledger_id, p, 0, e, "").await,
                }
            }
        }
    }
}

impl Ctx<'_> {
    /// [`balance::before_raising`] for this cycle's source.
    async fn payments_guard(
        &self,
        b2b_invoice_id: u64,
        p: Prepared,
        current: &Invoice,
        written_open: Option<rust_decimal::Decimal>,
    ) -> Result<Result<Prepared, (Prepared, String)>, CycleError> {
        if !self.source.payments.enabled {
            return Ok(Ok(p));
        }
        let ctx = crate::payments::PaymentsCtx {
            pool: self.pool,
            client: self.client,
            source: self.source,
            writer: None,
            run_id: self.run_id,
            failpoints: self.failpoints,
            fence: self.fence,
        };
        let open = balance::OpenBalance {
            in_b2b: current.open_balance.value,
            last_written: written_open,
        };
        Ok(balance::before_raising(&ctx, b2b_invoice_id, p, open).await?)
    }
}

const IN_FLIGHT: &str =
    "an earlier request for this invoice has an unknown outcome; the next cycle settles it in B2B first";
