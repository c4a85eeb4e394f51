//! The demo's summary: what each cycle did, and checks read back from the sandbox.

use std::fmt;

use rust_decimal::Decimal;
use serde_json::Value;

use super::database::DatabaseInfo;
use super::erp::{Change, Expected, CHANGES_FILE, EDITED_INVOICE, PAID_INVOICE, UNCHANGED_INVOICE};
use super::{settings, status_words, PERSON_NOTE};
use crate::sandbox::b2b::SandboxControl;
use crate::store::runs::Outcome;
use crate::store::state::Status;
use crate::sync::engine::RunReport;

#[derive(Debug, Clone)]
pub struct CycleSummary {
    pub title: String,
    pub run: RunReport,
    /// Requests the sandbox answered during the cycle, per route.
    pub calls: Vec<(String, u64)>,
}

impl CycleSummary {
    pub(super) fn new(title: &str, (run, calls): (RunReport, Vec<(String, u64)>)) -> Self {
        Self {
            title: title.to_owned(),
            run,
            calls,
        }
    }

    pub fn calls_to(&self, route: &str) -> u64 {
        self.calls
            .iter()
            .filter(|(r, _)| r == route)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn total_calls(&self) -> u64 {
        self.calls.iter().map(|(_, n)| n).sum()
    }
}

/// What became of a voided or deleted sample invoice.
#[derive(Debug, Clone)]
pub struct LifecycleNote {
    pub invoice_number: String,
    /// "voided" or "deleted".
    pub how: String,
    pub status: Option<Status>,
    pub in_b2b: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub ok: bool,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct DemoReport {
    pub database: DatabaseInfo,
    pub sandbox_url: String,
    pub cycles: Vec<CycleSummary>,
    /// The refused rows the files source wrote to `rejected/`.
    pub bad_rows: Vec<Value>,
    pub lifecycle: Vec<LifecycleNote>,
    pub changes: Vec<Change>,
    /// The B2B id of the invoice the person edited.
    pub edited: Option<u64>,
    /// The payment a buyer made in B2B between the cycles.
    pub payment: Option<DemoPayment>,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone)]
pub struct DemoPayment {
    pub b2b_invoice_id: u64,
    pub payment_id: u64,
    pub amount: Decimal,
    pub open_after: Decimal,
    /// The invoice's currency, for amounts at its minor unit (`USD 104.80`).
    pub currency: Option<crate::domain::Currency>,
}

impl DemoPayment {
    /// `d` as people read an amount of this payment's currency.
    pub fn money(&self, d: Decimal) -> String {
        self.currency.map_or_else(|| d.to_string(), |c| c.shown(d))
    }
}

impl DemoReport {
    pub(super) fn new(database: DatabaseInfo, sandbox_url: String) -> Self {
        Self {
            database,
            sandbox_url,
            cycles: Vec::new(),
            bad_rows: Vec::new(),
            lifecycle: Vec::new(),
            changes: Vec::new(),
            edited: None,
            payment: None,
            checks: Vec::new(),
        }
    }

    /// Every check passed.
    pub fn ok(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }
}

fn check(ok: bool, text: String) -> Check {
    Check { ok, text }
}

/// Decimal text or number in `v`, if any.
pub(super) fn decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.to_string().parse().ok(),
        _ => None,
    }
}

pub(super) fn checks(
    report: &DemoReport,
    control: &SandboxControl,
    edited: Option<&Value>,
    expected: &Expected,
) -> Vec<Check> {
    let mut out = Vec::new();
    let (Some(first), Some(second)) = (report.cycles.first(), report.cycles.get(1)) else {
        return vec![check(false, "both cycles ran".to_owned())];
    };
    let in_b2b = control
        .invoices(settings::STORE_HASH)
        .map(|v| v.len())
        .unwrap_or_default();
    let created = usize::try_from(first.run.counts.created).unwrap_or_default();
    out.push(check(
        first.run.error.is_none() && created > 0 && created == in_b2b,
        format!("cycle 1 created {created} invoices and B2B holds exactly those {in_b2b}"),
    ));
    out.push(check(
        first.run.counts.failed == 1 && report.bad_rows.len() == 1,
        format!(
            "the bad row was refused on its own ({} failure, {} row in rejected/), the rest synced",
            first.run.counts.failed,
            report.bad_rows.len()
        ),
    ));
    let gone = report.lifecycle.len();
    out.push(check(
        usize::try_from(first.run.counts.deleted).ok() == Some(gone),
        format!(
            "cycle 1 counted the {gone} voided and deleted invoices as deleted ({} deleted), not as unchanged",
            first.run.counts.deleted
        ),
    ));
    for note in &report.lifecycle {
        out.push(check(
            !note.in_b2b && note.status == Some(Status::Deleted),
            format!(
                "{} invoice {} never reached B2B and is {}",
                note.how,
                note.invoice_number,
                status_words(note.status)
            ),
        ));
    }
    let c = &second.run.counts;
    out.push(check(
        second.run.error.is_none()
            && usize::try_from(c.updated).ok() == Some(report.changes.len())
            && c.created == 0
            && c.failed == 0,
        format!(
            "cycle 2 updated the {} changed invoices ({} updated, {} created, {} failed)",
            report.changes.len(),
            c.updated,
            c.created,
            c.failed
        ),
    ));
    out.push(check(
        c.unchanged >= 1 && second.calls_to("POST /ip/invoices") == 0,
        format!(
            "the invoice exported again unchanged cost no API call ({} unchanged)",
            c.unchanged
        ),
    ));
    out.push(check(
        second.calls_to("GET /companies") == 0,
        format!(
            "customer lookups came from the cache in cycle 2 ({} GET /companies)",
            second.calls_to("GET /companies")
        ),
    ));
    let line = edited.and_then(|inv| {
        inv["details"]["details"]["lineItems"]
            .as_array()?
            .iter()
            .find(|l| l["sku"] == expected.sku.as_str())
            .cloned()
    });
    let quantity = line.as_ref().and_then(|l| decimal(&l["quantity"]));
    let open = edited.and_then(|inv| decimal(&inv["openBalance"]["value"]));
    out.push(check(
        quantity == Some(expected.quantity) && open == Some(expected.open_balance),
        format!(
            "the ERP change reached B2B: {} quantity {} (expected {}), open balance {} (expected {})",
            expected.sku,
            shown(quantity),
            expected.quantity,
            shown(open.map(|d| d.normalize())),
            expected.open_balance
        ),
    ));
    let note = edited.and_then(|inv| inv["details"]["personNote"].as_str());
    out.push(check(
        note == Some(PERSON_NOTE),
        match note {
            Some(n) if n == PERSON_NOTE => {
                format!("the person's edit survived the update: details.personNote = \"{n}\"")
            }
            Some(n) => format!("the person's edit changed: details.personNote = \"{n}\""),
            None => "the person's edit was LOST: details.personNote is gone".to_owned(),
        },
    ));
    out
}

/// The buyer's payment reached the ERP's outbox once, and B2B kept the paid balance.
pub(super) fn payment_check(
    report: &DemoReport,
    control: &SandboxControl,
    export_dir: &std::path::Path,
) -> Check {
    let Some(p) = &report.payment else {
        return check(false, format!("a buyer paid {PAID_INVOICE} in B2B"));
    };
    let lines: Vec<Value> = std::fs::read_dir(export_dir.join("outbox"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("payments-"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|t| serde_json::from_str(t.trim()).ok())
        .collect();
    let ours = lines
        .iter()
        .filter(|l| l["payment_id"] == p.payment_id && l["external_id"] == PAID_INVOICE)
        .count();
    let amount = lines.first().and_then(|l| decimal(&l["amount"]));
    let open = control
        .invoice(settings::STORE_HASH, p.b2b_invoice_id)
        .and_then(|v| decimal(&v["openBalance"]["value"]));
    check(
        lines.len() == 1 && ours == 1 && amount == Some(p.amount) && open == Some(p.open_after),
        format!(
            "the buyer's payment of {} on {PAID_INVOICE} reached the ERP's outbox once ({} file{}), and B2B keeps open balance {} (expected {})",
            p.money(p.amount),
            lines.len(),
            if lines.len() == 1 { "" } else { "s" },
            open.map_or_else(|| "missing".to_owned(), |d| p.money(d)),
            p.money(p.open_after)
        ),
    )
}

fn shown(d: Option<Decimal>) -> String {
    d.map_or_else(|| "missing".to_owned(), |d| d.to_string())
}

/// What a route's calls were for, in words.
fn route_words(route: &str) -> &'static str {
    match route {
        "GET /companies" => "customer lookups by \"ERP Customer ID\"",
        "POST /ip/invoices" => "creates",
        "GET /ip/invoices" => "current B2B state, fetched in bulk",
        "GET /ip/invoices/{id}" => "single reads",
        "PUT /ip/invoices/{id}" => "updates",
        "DELETE /ip/invoices/{id}" => "deletes",
        "GET /ip/payments" => "B2B payments since the last look",
        _ => "",
    }
}

fn outcome_words(run: &RunReport) -> String {
    let secs = run.duration_ms as f64 / 1000.0;
    match run.outcome {
        Outcome::Ok => format!("ok in {secs:.2} s"),
        Outcome::Partial => format!(
            "partial in {secs:.2} s: {} invoice{} failed, the others synced",
            run.counts.failed,
            if run.counts.failed == 1 { "" } else { "s" }
        ),
        Outcome::Failed => format!(
            "FAILED after {secs:.2} s: {}",
            run.error.as_deref().unwrap_or("unknown error")
        ),
        Outcome::Skipped => format!(
            "skipped: {}",
            run.error
                .as_deref()
                .unwrap_or("another process is syncing this source")
        ),
        Outcome::Stopped => format!("stopped by shutdown after {secs:.2} s"),
    }
}

fn write_cycle(f: &mut fmt::Formatter<'_>, cycle: &CycleSummary) -> fmt::Result {
    let c = &cycle.run.counts;
    writeln!(f, "{}", cycle.title)?;
    writeln!(f, "  outcome    {}", outcome_words(&cycle.run))?;
    writeln!(
        f,
        "  invoices   {} created, {} updated, {} unchanged, {} deleted, {} failed, {} recovered",
        c.created, c.updated, c.unchanged, c.deleted, c.failed, c.recovered
    )?;
    let p = &cycle.run.payments;
    if p.detected + p.written + p.failed > 0 {
        writeln!(
            f,
            "  payments   {} new in B2B, {} written back to the ERP, {} failed",
            p.detected, p.written, p.failed
        )?;
    }
    writeln!(f, "  B2B calls  {} (as B2B saw them)", cycle.total_calls())?;
    for (route, n) in &cycle.calls {
        writeln!(f, "    {n:>4}  {route:<26} {}", route_words(route))?;
    }
    if cycle.calls_to("GET /companies") == 0 {
        writeln!(
            f,
            "       0  GET /companies             customer lookups: all from the cache"
        )?;
    }
    writeln!(
        f,
        "  ERP calls  {} (a files source reads the exports from disk)",
        cycle.run.erp_calls
    )?;
    Ok(())
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("?")
}

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "b2b-invoice-sync demo: ERP exports -> B2B Edition invoices"
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "  PostgreSQL   {}{}",
            self.database.display_url,
            if self.database.created {
                " (created, migrated)"
            } else {
                " (migrated; the demo's earlier rows cleared)"
            }
        )?;
        writeln!(
            f,
            "  B2B Edition  the bundled sandbox at {}: companies 1..10 carry \"ERP Customer ID\" CUST-00001..CUST-00010",
            self.sandbox_url
        )?;
        writeln!(
            f,
            "  ERP          source `{}` (files): a temporary copy of examples/erp-export/, looked up by company extra field",
            settings::SOURCE
        )?;
        if let Some(first) = self.cycles.first() {
            writeln!(f)?;
            write_cycle(f, first)?;
            for row in &self.bad_rows {
                writeln!(
                    f,
                    "  bad row    {} line {} ({}): {}: {}",
                    text(row, "file"),
                    row["line"],
                    text(row, "external_id"),
                    text(row, "field"),
                    text(row, "reason")
                )?;
                writeln!(
                    f,
                    "             refused on its own (the rows around it synced) and written to rejected/{}.errors.ndjson;",
                    text(row, "file")
                )?;
                writeln!(
                    f,
                    "             it syncs when the ERP exports it again, corrected"
                )?;
            }
            for note in &self.lifecycle {
                writeln!(
                    f,
                    "  {:<10} invoice {}: {} in the ERP before it reached B2B, so nothing was sent; {} (counted as deleted)",
                    note.how,
                    note.invoice_number,
                    note.how,
                    status_words(note.status)
                )?;
            }
        }
        writeln!(f)?;
        writeln!(f, "Between the cycles")?;
        writeln!(f, "  the ERP exported {CHANGES_FILE}:")?;
        for change in &self.changes {
            writeln!(f, "    {}  {}", change.invoice_number, change.what)?;
        }
        writeln!(
            f,
            "    {}  exported again, unchanged",
            UNCHANGED_INVOICE.trim_start_matches("ERP-INV-")
        )?;
        match self.edited {
            Some(id) => writeln!(
                f,
                "  a person edited invoice {} (B2B id {id}) in the B2B control panel: details.personNote = \"{PERSON_NOTE}\"",
                EDITED_INVOICE.trim_start_matches("ERP-INV-")
            )?,
            None => writeln!(f, "  the person could not edit {EDITED_INVOICE}: it is not in B2B")?,
        }
        if let Some(p) = &self.payment {
            writeln!(
                f,
                "  a buyer paid {} of invoice {} (B2B id {}) in the buyer portal: open balance {} in B2B; the ERP does not know yet",
                p.money(p.amount),
                PAID_INVOICE.trim_start_matches("ERP-INV-"),
                p.b2b_invoice_id,
                p.money(p.open_after)
            )?;
        }
        if let Some(second) = self.cycles.get(1) {
            writeln!(f)?;
            write_cycle(f, second)?;
        }
        writeln!(f)?;
        writeln!(f, "Checks (read back from the sandbox)")?;
        for c in &self.checks {
            writeln!(f, "  [{}] {}", if c.ok { " ok " } else { "FAIL" }, c.text)?;
        }
        writeln!(f)?;
        if self.ok() {
            writeln!(
                f,
                "Demo complete. Next: `cargo run --release -- sandbox b2b` and a config of your own (README.md)."
            )
        } else {
            writeln!(f, "Demo FAILED: a check above did not hold.")
        }
    }
}
