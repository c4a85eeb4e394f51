//! A [`Report`] as a table for a person, CSV for a spreadsheet, or JSON
//! (`docs/reconcile.schema.json`).

use std::fmt::Write as _;

use rust_decimal::Decimal;
use serde_json::Value;

use super::{Difference, Kind, Remedy, Report};
use crate::domain::money::Currency;

/// An amount for a person: no trailing zeros beyond the currency's minor unit (`1571.2000`
/// USD reads `1571.20`), never rounded (`0.125` stays).
pub fn shown_amount(code: &str, value: Decimal) -> String {
    let mut v = value.normalize();
    if let Ok(currency) = Currency::parse(code) {
        let digits = currency.minor_unit_digits();
        if v.scale() < digits {
            v.rescale(digits);
        }
    }
    v.to_string()
}

/// The summary, then one line per difference (a drift's changed paths below it).
pub fn table(report: &Report) -> String {
    let s = &report.summary;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "reconcile {}  {}",
        s.source,
        s.generated_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    let _ = writeln!(
        out,
        "  ERP invoices {}   B2B invoices {}   state rows {}{}",
        s.erp_invoices,
        s.b2b_invoices,
        s.state_rows,
        if s.erp_unreadable > 0 {
            format!("   unreadable ERP records {}", s.erp_unreadable)
        } else {
            String::new()
        }
    );
    let counts: Vec<String> = s
        .counts
        .iter()
        .map(|(k, n)| format!("{} {n}", k.as_str()))
        .collect();
    let _ = writeln!(out, "  differences: {}", counts.join(", "));
    let _ = writeln!(
        out,
        "  unexplained: {}   for a person: {}{}",
        s.unexplained,
        s.for_a_person,
        match s.repaired {
            Some(n) => format!("   repair: {n} invoices queued for the next cycle"),
            None => String::new(),
        }
    );
    if !s.totals.is_empty() {
        let _ = writeln!(
            out,
            "  {:<8} {:>16} {:>16} {:>14} {:>14} {:>14} {:>18} {:>20}",
            "currency",
            "ERP open",
            "B2B open",
            "missing",
            "orphans",
            "duplicates",
            "balance explained",
            "balance unexplained"
        );
        for (code, t) in &s.totals {
            let a = |v: Decimal| shown_amount(code, v);
            let _ = writeln!(
                out,
                "  {:<8} {:>16} {:>16} {:>14} {:>14} {:>14} {:>18} {:>20}",
                code,
                a(t.erp_open),
                a(t.b2b_open),
                a(t.missing_open),
                a(t.orphan_open),
                a(t.duplicate_open),
                a(t.balance_explained),
                a(t.balance_unexplained)
            );
        }
    }
    if report.differences.is_empty() {
        let _ = writeln!(out, "  ERP and B2B agree");
        return out;
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  {:<11} {:<24} {:<16} {:<16} {:<9} detail",
        "kind", "external id", "invoice", "B2B id", "action"
    );
    for d in &report.differences {
        let _ = writeln!(
            out,
            "  {:<11} {:<24} {:<16} {:<16} {:<9} {}",
            d.kind.as_str(),
            d.external_id,
            d.invoice_number,
            ids(d),
            remedy(d),
            detail(d)
        );
        for c in &d.diff {
            let _ = writeln!(
                out,
                "      {}: ERP {} | B2B {}",
                c.path,
                compact(&c.erp),
                compact(&c.b2b)
            );
        }
    }
    out
}

/// One row per difference, one per changed path for drift.
pub fn csv(report: &Report) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "kind",
        "external_id",
        "invoice_number",
        "b2b_invoice_ids",
        "unexplained",
        "action",
        "currency",
        "erp_open_balance",
        "b2b_open_balance",
        "explained_amount",
        "unexplained_amount",
        "field",
        "erp_value",
        "b2b_value",
        "note",
    ])?;
    let amount = |a: Option<Decimal>| a.map(|a| a.to_string()).unwrap_or_default();
    for d in &report.differences {
        let base = [
            d.kind.as_str().to_owned(),
            d.external_id.clone(),
            d.invoice_number.clone(),
            ids(d),
            d.unexplained.to_string(),
            remedy(d).to_owned(),
            d.currency.clone().unwrap_or_default(),
            amount(d.erp_open_balance),
            amount(d.b2b_open_balance),
            amount(d.explained_amount),
            amount(d.unexplained_amount),
        ];
        let note = d.note.clone().unwrap_or_default();
        if d.diff.is_empty() {
            let mut row = base.to_vec();
            row.extend([String::new(), String::new(), String::new(), note.clone()]);
            w.write_record(&row)?;
        }
        for c in &d.diff {
            let mut row = base.to_vec();
            row.extend([
                c.path.clone(),
                compact(&c.erp),
                compact(&c.b2b),
                note.clone(),
            ]);
            w.write_record(&row)?;
        }
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

/// Pretty JSON with a trailing newline.
pub fn json(report: &Report) -> Result<String, serde_json::Error> {
    Ok(serde_json::to_string_pretty(report)? + "\n")
}

fn ids(d: &Difference) -> String {
    d.b2b_invoice_ids
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

fn remedy(d: &Difference) -> &'static str {
    match d.remedy {
        Remedy::Requeue => "requeue",
        Remedy::Person => "person",
        Remedy::None => "none",
    }
}

fn detail(d: &Difference) -> String {
    let code = d.currency.as_deref().unwrap_or("");
    let money = |a: Option<Decimal>| {
        a.map_or_else(
            || "-".to_owned(),
            |a| format!("{code} {}", shown_amount(code, a)),
        )
    };
    let text = match d.kind {
        Kind::Balance => format!(
            "ERP {} | B2B {} | explained {} | unexplained {}",
            money(d.erp_open_balance),
            money(d.b2b_open_balance),
            money(d.explained_amount),
            money(d.unexplained_amount)
        ),
        Kind::Missing | Kind::StaleState if d.erp_open_balance.is_some() => {
            format!("ERP open {}", money(d.erp_open_balance))
        }
        Kind::Orphan => format!("B2B open {}", money(d.b2b_open_balance)),
        Kind::Drift => format!("{} field(s) differ", d.diff.len()),
        _ => String::new(),
    };
    match &d.note {
        Some(note) if text.is_empty() => note.clone(),
        Some(note) => format!("{text}; {note}"),
        None => text,
    }
}

fn compact(v: &Value) -> String {
    match v {
        Value::Null => "(none)".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
