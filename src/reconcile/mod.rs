//! `reconcile`: do the ERP and B2B Edition agree, and where not, why?
//!
//! [`compare`] is pure: the ERP's invoices (as the source would sync them), the B2B invoices
//! that carry ERP ids, and the state rows in; a [`Report`] out, one [`Difference`] per invoice
//! and kind, with a summary (counts, totals per currency) on top. [`read`] gathers the inputs
//! (the ERP in full, B2B in bulk pages inside the store's budget, the state table) and applies
//! `--repair`; [`render`] writes the report as a table, CSV or JSON (`docs/reconcile.schema.json`).

pub mod paths;
pub mod read;
pub mod render;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::b2b::model::Invoice;
use crate::config::OwnedField;
use crate::domain::fingerprint::canonical;
use crate::domain::mapping::{status_for, DesiredInvoice};
use crate::domain::money::Currency;
use crate::store::state::{StateRow, Status};

/// What kind of difference an entry reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// In the ERP, not in B2B.
    Missing,
    /// In B2B with an ERP id the ERP does not know.
    Orphan,
    /// The same ERP id on more than one B2B invoice.
    Duplicate,
    /// Owned fields differ from what the ERP says (a person's edit, an update that never landed).
    Drift,
    /// The open balance differs from the ERP's.
    Balance,
    /// A state row points at a B2B invoice that no longer exists.
    StaleState,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Missing,
        Kind::Orphan,
        Kind::Duplicate,
        Kind::Drift,
        Kind::Balance,
        Kind::StaleState,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Missing => "missing",
            Kind::Orphan => "orphan",
            Kind::Duplicate => "duplicate",
            Kind::Drift => "drift",
            Kind::Balance => "balance",
            Kind::StaleState => "stale_state",
        }
    }
}

/// What `--repair` does (or did) about a difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Remedy {
    /// Queued for the next cycle: its fingerprint (and a B2B id that no longer exists) is
    /// forgotten, so the cycle plans it again. Never a deletion in B2B.
    Requeue,
    /// Listed for a person: the daemon does not delete or merge B2B invoices.
    Person,
    /// Nothing to do: explained by B2B payments the ERP has not taken in yet.
    None,
}

/// One field path that differs: what the ERP says and what B2B holds (absent: `null`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// `purchase_order_number`, `line_items[0].quantity`, `billing_address.city`, ...
    pub path: String,
    pub erp: Value,
    pub b2b: Value,
}

/// One invoice's difference of one kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    pub kind: Kind,
    pub external_id: String,
    pub invoice_number: String,
    /// The B2B invoices concerned (a duplicate lists every copy, the one the state points at
    /// first); empty when none exists.
    pub b2b_invoice_ids: Vec<u64>,
    /// Whether nothing explains it yet: false for a balance difference fully explained by B2B
    /// payments, and for what is listed for a person (orphans, duplicates, state of an invoice
    /// gone from both sides): the report says what those are; a person decides.
    pub unexplained: bool,
    pub remedy: Remedy,
    /// ISO 4217 code of the amounts below.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erp_open_balance: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b2b_open_balance: Option<Decimal>,
    /// Balance: the part of ERP - B2B made of B2B payments the ERP has not taken in yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explained_amount: Option<Decimal>,
    /// Balance: the rest of ERP - B2B.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unexplained_amount: Option<Decimal>,
    /// Drift: the owned field paths that differ.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<FieldChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Difference {
    fn new(kind: Kind, external_id: &str, invoice_number: &str) -> Self {
        Self {
            kind,
            external_id: external_id.to_owned(),
            invoice_number: invoice_number.to_owned(),
            b2b_invoice_ids: Vec::new(),
            unexplained: !matches!(kind, Kind::Orphan | Kind::Duplicate),
            remedy: match kind {
                Kind::Orphan | Kind::Duplicate => Remedy::Person,
                _ => Remedy::Requeue,
            },
            currency: None,
            erp_open_balance: None,
            b2b_open_balance: None,
            explained_amount: None,
            unexplained_amount: None,
            diff: Vec::new(),
            note: None,
        }
    }
}

/// Open balances and differences of one currency.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CurrencyTotals {
    /// Open balance of every ERP invoice the source would sync.
    pub erp_open: Decimal,
    /// Open balance of every B2B invoice carrying this source's ERP ids (copies included).
    pub b2b_open: Decimal,
    /// ERP open balance of the invoices missing in B2B (stale state rows included).
    pub missing_open: Decimal,
    /// B2B open balance of orphans.
    pub orphan_open: Decimal,
    /// B2B open balance of the extra copies of duplicated invoices.
    pub duplicate_open: Decimal,
    /// Sum of the balance differences (ERP - B2B) explained by B2B payments.
    pub balance_explained: Decimal,
    /// Sum of the balance differences (ERP - B2B) nothing explains.
    pub balance_unexplained: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub source: String,
    pub generated_at: DateTime<Utc>,
    /// Invoices the ERP holds that the source would sync (deleted and voided ones apart).
    pub erp_invoices: u64,
    /// ERP records that could not be read (refused records: `failures list`).
    pub erp_unreadable: u64,
    /// B2B invoices carrying this source's ERP ids (orphans and copies included).
    pub b2b_invoices: u64,
    pub state_rows: u64,
    /// Differences by kind (every kind present, 0 when none).
    pub counts: BTreeMap<Kind, u64>,
    /// Differences still to explain: the exit code is 1 when this is not 0.
    pub unexplained: u64,
    /// Differences listed for a person (orphans, duplicates, state of an invoice gone from both
    /// sides): `--repair` never deletes or merges B2B invoices.
    pub for_a_person: u64,
    /// Whether `--repair` ran, and how many invoices it queued for the next cycle.
    pub repaired: Option<u64>,
    /// By ISO 4217 code.
    pub totals: BTreeMap<String, CurrencyTotals>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub summary: Summary,
    pub differences: Vec<Difference>,
}

impl Report {
    /// Nothing unexplained remains.
    pub fn is_clean(&self) -> bool {
        self.summary.unexplained == 0
    }

    /// The ERP ids `--repair` queues: to update from current B2B state, and to create again.
    pub fn repairs(&self) -> (Vec<String>, Vec<String>) {
        let mut requeue = BTreeSet::new();
        let mut recreate = BTreeSet::new();
        for d in &self.differences {
            if d.remedy != Remedy::Requeue || !d.unexplained {
                continue;
            }
            match d.kind {
                Kind::StaleState => {
                    recreate.insert(d.external_id.clone());
                }
                _ => {
                    requeue.insert(d.external_id.clone());
                }
            }
        }
        (
            requeue.into_iter().collect(),
            recreate.into_iter().collect(),
        )
    }
}

/// One ERP invoice as the source would sync it.
#[derive(Debug, Clone, PartialEq)]
pub struct ErpInvoice {
    pub external_id: String,
    pub invoice_number: String,
    pub currency: Currency,
    /// The ERP's own open balance.
    pub erp_open: Decimal,
    /// What the daemon pushes: the ERP's balance minus B2B payments it has not taken in yet.
    pub expected_open: Decimal,
    /// The owned fields as the daemon would write them (`domain::fingerprint::canonical`, with
    /// the balance above); `None` when the invoice cannot be mapped yet (no B2B company).
    pub owned: Option<BTreeMap<&'static str, Value>>,
    pub owned_fields: BTreeSet<OwnedField>,
    /// Why it cannot be mapped, if it cannot.
    pub note: Option<String>,
}

impl ErpInvoice {
    /// From a mapped invoice (after the payments adjustment).
    pub fn mapped(desired: &DesiredInvoice, erp_open: Decimal) -> Self {
        Self {
            external_id: desired.external_id.clone(),
            invoice_number: desired.invoice_number.clone(),
            currency: desired.currency,
            erp_open,
            expected_open: desired.open_balance,
            owned: Some(canonical(desired)),
            owned_fields: desired.owned.clone(),
            note: None,
        }
    }
}

/// Everything [`compare`] looks at.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub source: String,
    pub erp: Vec<ErpInvoice>,
    /// ERP ids the ERP knows as deleted or voided: their B2B invoices are no orphans.
    pub erp_retired: HashSet<String>,
    pub erp_unreadable: u64,
    /// Every B2B invoice read (the whole store: those carrying other ids are left out here).
    pub b2b: Vec<Invoice>,
    pub state: Vec<StateRow>,
    /// ERP ids other sources of the same store keep state for: theirs, not orphans.
    pub foreign_ids: HashSet<String>,
}

/// Owned fields an update does not clear when the ERP has no value (`DesiredInvoice::to_update`
/// leaves them out): what B2B holds there (its default due date, a person's PO number) is not
/// drift while the ERP says nothing.
const KEPT_WHEN_ERP_HAS_NONE: [&str; 2] = ["due_date", "purchase_order_number"];

/// The report for `inputs`, as of `now`.
pub fn compare(inputs: &Inputs, now: DateTime<Utc>) -> Report {
    let erp: BTreeMap<&str, &ErpInvoice> = inputs
        .erp
        .iter()
        .map(|e| (e.external_id.as_str(), e))
        .collect();
    let state: HashMap<&str, &StateRow> = inputs
        .state
        .iter()
        .map(|s| (s.external_id.as_str(), s))
        .collect();
    let all_b2b_ids: HashSet<u64> = inputs.b2b.iter().map(|i| i.id).collect();
    // This source's B2B invoices by ERP id, lowest B2B id first.
    let mut by_id: BTreeMap<&str, Vec<&Invoice>> = BTreeMap::new();
    for inv in &inputs.b2b {
        let Some(ext) = inv.external_id.as_deref().filter(|e| !e.is_empty()) else {
            continue;
        };
        let ours = erp.contains_key(ext)
            || inputs.erp_retired.contains(ext)
            || state.contains_key(ext)
            || !inputs.foreign_ids.contains(ext);
        if ours {
            by_id.entry(ext).or_default().push(inv);
        }
    }
    for copies in by_id.values_mut() {
        copies.sort_by_key(|i| i.id);
    }

    let mut diffs = Vec::new();
    let mut totals: BTreeMap<String, CurrencyTotals> = BTreeMap::new();
    let mut b2b_count = 0u64;
    for e in &inputs.erp {
        totals
            .entry(e.currency.code().to_owned())
            .or_default()
            .erp_open += e.erp_open;
    }

    for (ext, copies) in &by_id {
        b2b_count += copies.len() as u64;
        for inv in copies {
            totals
                .entry(inv.open_balance.code.to_ascii_uppercase())
                .or_default()
                .b2b_open += inv.open_balance.value;
        }
        if erp.contains_key(ext) || inputs.erp_retired.contains(*ext) {
            continue;
        }
        for inv in copies {
            let mut d = Difference::new(Kind::Orphan, ext, &inv.invoice_number);
            d.b2b_invoice_ids = vec![inv.id];
            with_b2b_balance(&mut d, inv);
            d.note = Some(if state.contains_key(ext) {
                "the ERP no longer has this invoice; a state row still knows it".to_owned()
            } else {
                "unknown to the ERP and to the daemon".to_owned()
            });
            totals
                .entry(inv.open_balance.code.to_ascii_uppercase())
                .or_default()
                .orphan_open += inv.open_balance.value;
            diffs.push(d);
        }
    }

    for e in &inputs.erp {
        let ext = e.external_id.as_str();
        let row = state.get(ext).copied();
        let copies = by_id.get(ext).map(Vec::as_slice).unwrap_or_default();
        let code = e.currency.code().to_owned();
        if copies.is_empty() {
            let stale = row.filter(|s| points_at_nothing(s, &all_b2b_ids));
            let mut d = Difference::new(
                if stale.is_some() {
                    Kind::StaleState
                } else {
                    Kind::Missing
                },
                ext,
                &e.invoice_number,
            );
            d.currency = Some(code.clone());
            d.erp_open_balance = Some(e.erp_open);
            if let Some(s) = stale {
                d.b2b_invoice_ids = s.b2b_invoice_id.into_iter().collect();
                d.note = Some("the state points at a B2B invoice that no longer exists".into());
            } else {
                d.note = e.note.clone().or_else(|| {
                    row.filter(|s| s.status != Status::Synced)
                        .map(|s| format!("state {}: see `failures list`", s.status.as_str()))
                });
            }
            totals.entry(code).or_default().missing_open += e.erp_open;
            diffs.push(d);
            continue;
        }
        // The copy the state points at, else the oldest.
        let primary = row
            .and_then(|s| s.b2b_invoice_id)
            .and_then(|id| copies.iter().find(|i| i.id == id))
            .unwrap_or(&copies[0]);
        if copies.len() > 1 {
            let mut d = Difference::new(Kind::Duplicate, ext, &e.invoice_number);
            d.b2b_invoice_ids = std::iter::once(primary.id)
                .chain(copies.iter().map(|i| i.id).filter(|id| *id != primary.id))
                .collect();
            d.currency = Some(code.clone());
            d.note = Some(format!(
                "{} B2B invoices carry this ERP id; the first is the one the daemon updates",
                copies.len()
            ));
            let extra: Decimal = copies
                .iter()
                .filter(|i| i.id != primary.id)
                .map(|i| i.open_balance.value)
                .sum();
            totals.entry(code.clone()).or_default().duplicate_open += extra;
            diffs.push(d);
        }
        let Some(owned) = &e.owned else {
            continue;
        };
        let b2b_code = primary.open_balance.code.to_ascii_uppercase();
        let b2b_open = primary.open_balance.value;
        let balance_as_pushed = b2b_code == code && b2b_open == e.expected_open;
        if b2b_code != code || b2b_open != e.erp_open {
            let mut d = Difference::new(Kind::Balance, ext, &e.invoice_number);
            d.b2b_invoice_ids = vec![primary.id];
            d.currency = Some(code.clone());
            d.erp_open_balance = Some(e.erp_open);
            d.b2b_open_balance = Some(b2b_open);
            let t = totals.entry(code.clone()).or_default();
            if b2b_code == code {
                let explained = e.erp_open - e.expected_open;
                let rest = e.erp_open - b2b_open - explained;
                d.explained_amount = Some(explained);
                d.unexplained_amount = Some(rest);
                d.unexplained = !rest.is_zero();
                t.balance_explained += explained;
                t.balance_unexplained += rest;
                if !d.unexplained {
                    d.remedy = Remedy::None;
                    d.note = Some(
                        "B2B payments the ERP has not taken in yet (`payments list`)".to_owned(),
                    );
                }
            } else {
                d.note = Some(format!("B2B holds it in {b2b_code}"));
            }
            diffs.push(d);
        }
        let seen = observed(primary, e.currency, &e.owned_fields);
        let changes: Vec<FieldChange> = owned
            .iter()
            .filter(|(field, value)| {
                **field != OwnedField::OpenBalance.name()
                    && (balance_as_pushed || **field != OwnedField::Status.name())
                    && !(value.is_null() && KEPT_WHEN_ERP_HAS_NONE.contains(*field))
            })
            .flat_map(|(field, value)| paths::changes(field, value, seen.get(field)))
            .collect();
        if !changes.is_empty() {
            let mut d = Difference::new(Kind::Drift, ext, &e.invoice_number);
            d.b2b_invoice_ids = vec![primary.id];
            d.diff = changes;
            diffs.push(d);
        }
    }

    for s in &inputs.state {
        if erp.contains_key(s.external_id.as_str()) || !points_at_nothing(s, &all_b2b_ids) {
            continue;
        }
        let mut d = Difference::new(Kind::StaleState, &s.external_id, &s.invoice_number);
        d.b2b_invoice_ids = s.b2b_invoice_id.into_iter().collect();
        d.remedy = Remedy::Person;
        d.unexplained = false;
        d.note = Some(
            "the state points at a B2B invoice that no longer exists, and the ERP no longer has \
             the invoice"
                .to_owned(),
        );
        diffs.push(d);
    }

    diffs.sort_by(|a, b| {
        (a.kind, &a.external_id, &a.b2b_invoice_ids).cmp(&(
            b.kind,
            &b.external_id,
            &b.b2b_invoice_ids,
        ))
    });
    let mut counts: BTreeMap<Kind, u64> = Kind::ALL.iter().map(|k| (*k, 0)).collect();
    for d in &diffs {
        *counts.entry(d.kind).or_default() += 1;
    }
    let unexplained = diffs.iter().filter(|d| d.unexplained).count() as u64;
    let for_a_person = diffs.iter().filter(|d| d.remedy == Remedy::Person).count() as u64;
    Report {
        summary: Summary {
            source: inputs.source.clone(),
            generated_at: now,
            erp_invoices: inputs.erp.len() as u64,
            erp_unreadable: inputs.erp_unreadable,
            b2b_invoices: b2b_count,
            state_rows: inputs.state.len() as u64,
            counts,
            unexplained,
            for_a_person,
            repaired: None,
            totals,
        },
        differences: diffs,
    }
}

fn with_b2b_balance(d: &mut Difference, inv: &Invoice) {
    d.currency = Some(inv.open_balance.code.to_ascii_uppercase());
    d.b2b_open_balance = Some(inv.open_balance.value);
}

/// A row that says B2B holds the invoice under an id B2B no longer has.
fn points_at_nothing(s: &StateRow, b2b_ids: &HashSet<u64>) -> bool {
    matches!(
        s.status,
        Status::Synced | Status::Flagged | Status::Failed | Status::Dead
    ) && s.b2b_invoice_id.is_some_and(|id| !b2b_ids.contains(&id))
}

/// The owned fields of a B2B invoice in the canonical form the fingerprint hashes, so that it
/// compares with the ERP's field by field. Parts of `details` that cannot be read count as absent.
pub fn observed(
    inv: &Invoice,
    fallback: Currency,
    owned: &BTreeSet<OwnedField>,
) -> BTreeMap<&'static str, Value> {
    let text = |t: &Option<String>| t.clone().filter(|t| !t.is_empty());
    let currency = Currency::parse(&inv.open_balance.code).unwrap_or(fallback);
    let original = inv.original_balance.value;
    let open = inv.open_balance.value;
    let d = DesiredInvoice {
        source: String::new(),
        external_id: inv.external_id.clone().unwrap_or_default(),
        external_customer_id: inv.external_customer_id.clone().unwrap_or_default(),
        customer_id: inv.customer_id.clone().unwrap_or_default(),
        invoice_number: inv.invoice_number.clone(),
        kind: inv.kind.clone().unwrap_or_default(),
        issued_at: None,
        due_date: inv.due_date,
        currency,
        original_balance: original,
        open_balance: open,
        status: inv.status.unwrap_or_else(|| status_for(original, open)),
        purchase_order_number: text(&inv.purchase_order_number),
        order_number: text(&inv.order_number),
        channel_id: None,
        terms_conditions: text(&inv.terms_conditions),
        external_pdf_url: text(&inv.external_pdf_url),
        extra_fields: inv
            .extra_fields
            .iter()
            .filter_map(|f| {
                let value = f.field_value.clone().filter(|v| !v.is_empty())?;
                Some((f.field_name.clone(), value))
            })
            .collect(),
        cost_lines: inv.details.cost_lines().ok().flatten().unwrap_or_default(),
        billing_address: inv.details.billing_address().ok().flatten(),
        shipping_addresses: inv
            .details
            .shipping_addresses()
            .ok()
            .flatten()
            .unwrap_or_default(),
        line_items: inv.details.line_items().ok().flatten().unwrap_or_default(),
        owned: owned.clone(),
    };
    canonical(&d)
}

#[cfg(test)]
mod tests;
