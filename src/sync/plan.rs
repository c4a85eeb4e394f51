//! Pure: prepared invoices + their state rows -> what to do with each, and why.
//!
//! An unchanged invoice (same fingerprint as what B2B holds) is skipped with no API call. A
//! failed invoice waits for its retry time unless the ERP changed it meanwhile (new content may
//! well fix it). Deleted and voided invoices go to the deletion policy when B2B holds them.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::prepare::Prepared;
use crate::domain::fingerprint::canonical;
use crate::domain::{Lifecycle, SourceVersion};
use crate::store::state::{StateRow, Status};

/// One owned field that changes: what B2B holds (as last synced) and what it should hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldDiff {
    pub field: String,
    pub old: Option<Value>,
    pub new: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// B2B already holds this content.
    Unchanged,
    /// Failed before with this content; the next attempt is not due yet.
    WaitingForRetry,
    /// In the dead letter with this content (`failures retry` brings it back).
    DeadLetter,
    /// An operator discarded it with this content.
    Discarded,
    /// Flagged for a person with this content.
    Flagged,
    /// Deleted or voided in the ERP and already handled.
    AlreadyDeleted,
    /// Older than the version B2B holds (or than a newer record waiting to be pushed): an export
    /// read again, an old export dropped again, a lagging cache. Refused, never pushed.
    Stale,
}

impl SkipReason {
    /// Nothing to do because B2B is up to date, as opposed to work that is held back.
    pub fn is_unchanged(self) -> bool {
        matches!(self, Self::Unchanged | Self::AlreadyDeleted)
    }
}

/// The one vocabulary of invoice actions, the same in `plan` (text and JSON), `sync`, the
/// `action` label of `b2bsync_invoices_total` and the `action`/`outcome` fields of the logs.
pub const ACTIONS: [&str; 6] = ["create", "update", "delete", "skip", "fail", "recover"];

#[derive(Debug, Clone)]
pub enum Action {
    Create(Prepared),
    Update {
        b2b_invoice_id: u64,
        prepared: Prepared,
        diff: Vec<FieldDiff>,
        /// Failed attempts so far with this content (0 when the content is new).
        attempts: i32,
    },
    /// Deleted or voided in the ERP while B2B holds it: the deletion policy decides.
    Remove {
        b2b_invoice_id: u64,
        prepared: Prepared,
        state: Box<StateRow>,
    },
    /// Deleted or voided in the ERP and never in B2B: recorded, no call.
    Forget(Prepared),
    Skip {
        external_id: String,
        invoice_number: String,
        reason: SkipReason,
        /// The skipped record's version (named when it is refused as stale).
        version: Option<SourceVersion>,
    },
}

impl Action {
    pub fn external_id(&self) -> &str {
        match self {
            Self::Create(p) | Self::Forget(p) => p.external_id(),
            Self::Update { prepared, .. } | Self::Remove { prepared, .. } => prepared.external_id(),
            Self::Skip { external_id, .. } => external_id,
        }
    }

    /// Short name for logs, `plan` output and metrics: one of [`ACTIONS`]. A deleted or
    /// voided invoice is a `delete` whether B2B holds it or not (never in B2B: recorded, no
    /// call).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Create(_) => "create",
            Self::Update { .. } => "update",
            Self::Remove { .. } | Self::Forget(_) => "delete",
            Self::Skip { .. } => "skip",
        }
    }
}

/// Plans a batch. If an ERP id appears twice, the newer version wins; of two records with the
/// same (or no) version, the later one (the newer in every adapter's order).
pub fn plan(
    prepared: Vec<Prepared>,
    states: &HashMap<String, StateRow>,
    now: DateTime<Utc>,
) -> Vec<Action> {
    let keep: Vec<bool> = {
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(prepared.len());
        for (i, p) in prepared.iter().enumerate() {
            let older = last
                .get(p.external_id())
                .is_some_and(|&j| supersedes(&prepared[j], p));
            if !older {
                last.insert(p.external_id(), i);
            }
        }
        (0..prepared.len())
            .map(|i| last.get(prepared[i].external_id()) == Some(&i))
            .collect()
    };
    prepared
        .into_iter()
        .zip(keep)
        .filter(|(_, keep)| *keep)
        .map(|(p, _)| {
            let state = states.get(p.external_id());
            plan_one(p, state, now)
        })
        .collect()
}

/// Whether `kept`, read earlier, stays the record of its invoice over `later`: only when it is
/// of a known, strictly newer version.
pub fn supersedes(kept: &Prepared, later: &Prepared) -> bool {
    crate::domain::version::is_older(
        later.invoice.version.as_ref(),
        &[kept.invoice.version.as_ref()],
    )
}

fn skip(p: &Prepared, reason: SkipReason) -> Action {
    Action::Skip {
        external_id: p.external_id().to_owned(),
        invoice_number: p.invoice_number().to_owned(),
        reason,
        version: p.invoice.version.clone(),
    }
}

/// The decision for one invoice.
pub fn plan_one(p: Prepared, state: Option<&StateRow>, now: DateTime<Utc>) -> Action {
    let fp = p.fingerprint.as_str();
    if let Some(reason) = held_back(state, p.invoice.version.as_ref(), fp, now) {
        return skip(&p, reason);
    }
    let same_as_pending = state.is_some_and(|s| s.pending_fingerprint.as_deref() == Some(fp));
    let in_b2b = state.and_then(|s| s.b2b_invoice_id);
    if p.lifecycle() != Lifecycle::Active {
        return match (state, in_b2b) {
            (Some(s), _) if s.status == Status::Deleted && s.fingerprint.as_deref() == Some(fp) => {
                skip(&p, SkipReason::AlreadyDeleted)
            }
            (Some(s), Some(id)) if s.status != Status::Deleted => Action::Remove {
                b2b_invoice_id: id,
                prepared: p,
                state: Box::new(s.clone()),
            },
            _ => Action::Forget(p),
        };
    }
    let Some(id) = in_b2b else {
        return Action::Create(p);
    };
    let Some(s) = state else {
        return Action::Create(p);
    };
    if s.status == Status::Synced && s.fingerprint.as_deref() == Some(fp) {
        return skip(&p, SkipReason::Unchanged);
    }
    let diff = diff(s.owned.as_ref(), &canonical(&p.desired));
    Action::Update {
        b2b_invoice_id: id,
        attempts: if same_as_pending { s.attempts } else { 0 },
        prepared: p,
        diff,
    }
}

/// Why a record must not be attempted now, if it must not: older than what is known of its
/// invoice (never back to an older version, whatever else holds), or the same content (`fp`, the
/// fingerprint it was kept under when it failed) still waiting for its retry, in the dead
/// letter, discarded or flagged. Whatever reads the record again (an overlap window, a later
/// page, another export) meets the same schedule: attempts never run ahead of it.
pub fn held_back(
    state: Option<&StateRow>,
    version: Option<&SourceVersion>,
    fp: &str,
    now: DateTime<Utc>,
) -> Option<SkipReason> {
    let s = state?;
    if s.is_newer_than(version) {
        return Some(SkipReason::Stale);
    }
    if s.pending_fingerprint.as_deref() != Some(fp) {
        return None;
    }
    match s.status {
        Status::Failed if s.next_attempt_at.is_some_and(|t| t > now) => {
            Some(SkipReason::WaitingForRetry)
        }
        Status::Dead => Some(SkipReason::DeadLetter),
        Status::Discarded => Some(SkipReason::Discarded),
        Status::Flagged => Some(SkipReason::Flagged),
        _ => None,
    }
}

/// Field-level differences between the owned content last synced and the new one.
pub fn diff(old: Option<&Value>, new: &BTreeMap<&'static str, Value>) -> Vec<FieldDiff> {
    new.iter()
        .filter_map(|(field, value)| {
            let before = old.and_then(|o| o.get(*field));
            (before != Some(value)).then(|| FieldDiff {
                field: (*field).to_owned(),
                old: before.cloned(),
                new: value.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
