//! `plan [--source NAME] [--json] [--all]`: a dry run with per-field diffs.

use serde_json::Value;

use b2b_invoice_sync::config::Settings;
use b2b_invoice_sync::domain::field_paths::{self, is_empty, is_money};
use b2b_invoice_sync::domain::Currency;
use b2b_invoice_sync::sync::engine::{Engine, PlanReport, PlannedInvoice};
use b2b_invoice_sync::sync::plan::FieldDiff;

use super::output::print_json;
use super::{database, selected_sources};

/// Changed leaves shown per field; the JSON output has everything.
const SHOWN_LEAVES: usize = 20;
/// Longest value shown in a diff line.
const SHOWN_CHARS: usize = 120;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Only this source (a key of `[sources]`); every source by default.
    #[arg(long)]
    source: Option<String>,
    /// Print the plans as a JSON array (one object per source).
    #[arg(long)]
    json: bool,
    /// List unchanged invoices too.
    #[arg(long)]
    all: bool,
}

pub async fn run(settings: &Settings, args: PlanArgs) -> anyhow::Result<()> {
    let names = selected_sources(settings, args.source.as_deref())?;
    let pool = database(settings).await?;
    let engine = Engine::new(settings, pool)?;
    let mut plans = Vec::new();
    for name in &names {
        let plan = engine.plan_only(name, args.all).await?;
        if !args.json {
            print!("{}", render(&plan));
        }
        plans.push(plan);
    }
    if args.json {
        let plans: Vec<Value> = plans.iter().map(json).collect();
        print_json(&plans)?;
    }
    Ok(())
}

/// One changed leaf of a field, as both forms show it: `cost_lines[0].amount`,
/// `USD 10.00` -> `USD 12.50`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    pub path: String,
    pub old: String,
    pub new: String,
}

/// A plan as `plan --json` prints it: each diff also carries its changed leaves
/// (`changes`: path, old, new as the text form shows them) next to the raw values.
pub fn json(plan: &PlanReport) -> Value {
    let mut value = serde_json::to_value(plan).unwrap_or(Value::Null);
    let diffs = plan.invoices.iter().map(|i| i.diff.as_slice());
    if let Some(invoices) = value.get_mut("invoices").and_then(Value::as_array_mut) {
        for (invoice, diffs) in invoices.iter_mut().zip(diffs) {
            let Some(out) = invoice.get_mut("diff").and_then(Value::as_array_mut) else {
                continue;
            };
            for (d, diff) in out.iter_mut().zip(diffs) {
                if let Value::Object(map) = d {
                    let changes = serde_json::to_value(changes(diff)).unwrap_or(Value::Null);
                    map.insert("changes".to_owned(), changes);
                }
            }
        }
    }
    value
}

pub fn render(plan: &PlanReport) -> String {
    let mut out = format!(
        "{} (dry run: nothing written, nothing sent to B2B but customer lookups)\n",
        plan.source
    );
    if plan.counts.is_empty() {
        out.push_str("  nothing to do: the source has no invoices to read\n");
        return out;
    }
    let counts: Vec<String> = plan
        .counts
        .iter()
        .map(|(action, n)| format!("{action} {n}"))
        .collect();
    out.push_str(&format!("  {}\n", counts.join(", ")));
    for invoice in &plan.invoices {
        out.push_str(&entry(invoice));
    }
    out
}

fn entry(invoice: &PlannedInvoice) -> String {
    let number = if invoice.invoice_number.is_empty() {
        String::new()
    } else {
        format!("invoice {}  ", invoice.invoice_number)
    };
    let reason = invoice
        .skip_reason
        .and_then(|r| serde_json::to_value(r).ok())
        .and_then(|v| v.as_str().map(|s| format!(" ({})", s.replace('_', " "))))
        .or_else(|| invoice.note.map(|n| format!(" ({n})")))
        .unwrap_or_default();
    let mut out = format!(
        "  {:<7} {number}{}{reason}\n",
        invoice.action, invoice.external_id
    );
    if let Some(failure) = &invoice.failure {
        out.push_str(&format!("      {failure}\n"));
    }
    for diff in &invoice.diff {
        for line in field_lines(diff) {
            out.push_str(&format!("      {line}\n"));
        }
    }
    out
}

/// Every changed leaf of a field, descending into objects and tuples so that a changed
/// quantity reads as `line_items[0].quantity: "2" -> "5"` rather than two whole arrays.
pub fn changes(diff: &FieldDiff) -> Vec<Change> {
    let mut out: Vec<Change> = field_paths::leaves(&diff.field, diff.old.as_ref(), Some(&diff.new))
        .into_iter()
        .map(|l| Change {
            old: shown(l.old, l.names),
            new: shown(l.new, l.names),
            path: l.path,
        })
        .collect();
    if out.is_empty() {
        // Equal as JSON but still reported: show the field as a whole.
        let names = field_paths::tuple_names(&diff.field);
        out.push(Change {
            path: diff.field.clone(),
            old: shown(diff.old.as_ref(), names),
            new: shown(Some(&diff.new), names),
        });
    }
    out
}

/// `field: old -> new` lines, at most [`SHOWN_LEAVES`] of them.
fn field_lines(diff: &FieldDiff) -> Vec<String> {
    let mut lines: Vec<String> = changes(diff)
        .into_iter()
        .map(|c| format!("{}: {} -> {}", c.path, c.old, c.new))
        .collect();
    if lines.len() > SHOWN_LEAVES {
        let more = lines.len() - SHOWN_LEAVES;
        lines.truncate(SHOWN_LEAVES);
        lines.push(format!("... and {more} more changes in {}", diff.field));
    }
    lines
}

/// A value as a diff line shows it: amounts at their currency's minor unit (`USD 10.50`,
/// `JPY 1500`), named tuples as objects, compact JSON otherwise, cut at [`SHOWN_CHARS`].
fn shown(v: Option<&Value>, names: Option<&[&str]>) -> String {
    let Some(v) = v else {
        return "(none)".to_owned();
    };
    let text = match (v, names) {
        (Value::Array(a), _) if is_money(Some(v)) => money(
            a[0].as_str().unwrap_or_default(),
            a[1].as_str().unwrap_or_default(),
        ),
        (Value::Array(a), Some(names)) if a.len() == names.len() => {
            let named: serde_json::Map<String, Value> = names
                .iter()
                .zip(a)
                .filter(|(_, v)| !is_empty(v))
                .map(|(n, v)| ((*n).to_owned(), money_text(v)))
                .collect();
            Value::Object(named).to_string()
        }
        _ => v.to_string(),
    };
    if text.chars().count() <= SHOWN_CHARS {
        return text;
    }
    let cut: String = text.chars().take(SHOWN_CHARS).collect();
    format!("{cut}...")
}

/// `USD 209.60`: the amount at the currency's minor unit; as it came when either part is not
/// understood.
fn money(code: &str, amount: &str) -> String {
    match (
        Currency::parse(code),
        rust_decimal::Decimal::from_str_exact(amount),
    ) {
        (Ok(currency), Ok(value)) => currency.shown(value),
        _ => format!("{code} {amount}"),
    }
}

fn money_text(v: &Value) -> Value {
    if is_money(Some(v)) {
        Value::String(shown(Some(v), None))
    } else {
        v.clone()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn line(sku: &str, quantity: &str) -> Value {
        json!([sku, "", sku, "", quantity, ["USD", "10"], null, {}])
    }

    #[test]
    fn diffs_name_the_changed_leaves_of_canonical_tuples() {
        let diff = FieldDiff {
            field: "line_items".to_owned(),
            old: Some(json!([line("A", "40")])),
            new: json!([line("A", "50"), line("B", "1")]),
        };
        assert_eq!(
            field_lines(&diff),
            vec![
                "line_items[0].quantity: \"40\" -> \"50\"".to_owned(),
                "line_items[1]: (none) -> {\"sku\":\"B\",\"description\":\"B\",\"quantity\":\"1\",\"unit_price\":\"USD 10.00\"}"
                    .to_owned(),
            ]
        );
        let diff = FieldDiff {
            field: "open_balance".to_owned(),
            old: Some(json!(["USD", "20"])),
            new: json!(["USD", "50"]),
        };
        assert_eq!(
            field_lines(&diff),
            vec!["open_balance: USD 20.00 -> USD 50.00".to_owned()]
        );
        let diff = FieldDiff {
            field: "purchase_order_number".to_owned(),
            old: None,
            new: json!("PO-1"),
        };
        assert_eq!(
            field_lines(&diff),
            vec!["purchase_order_number: (none) -> \"PO-1\"".to_owned()]
        );
    }

    #[test]
    fn objects_and_unknown_tuples_still_diff_by_key_and_position() {
        let diff = FieldDiff {
            field: "extra_fields".to_owned(),
            old: Some(json!({"a": "1", "b": "2"})),
            new: json!({"a": "1", "c": "3"}),
        };
        assert_eq!(
            field_lines(&diff),
            vec![
                "extra_fields.c: (none) -> \"3\"".to_owned(),
                "extra_fields.b: \"2\" -> (none)".to_owned(),
            ]
        );
        let diff = FieldDiff {
            field: "line_items".to_owned(),
            old: Some(json!([["A", "1"]])),
            new: json!([["A", "2"]]),
        };
        assert_eq!(
            field_lines(&diff),
            vec!["line_items[0][1]: \"1\" -> \"2\"".to_owned()]
        );
    }

    #[test]
    fn amounts_show_at_the_currency_minor_unit() {
        let diff = FieldDiff {
            field: "cost_lines".to_owned(),
            old: Some(json!([["Freight", ["USD", "209.6"]]])),
            new: json!([["Freight", ["USD", "12.5"]]]),
        };
        assert_eq!(
            field_lines(&diff),
            vec!["cost_lines[0].amount: USD 209.60 -> USD 12.50".to_owned()]
        );
        let diff = FieldDiff {
            field: "open_balance".to_owned(),
            old: Some(json!(["JPY", "1500.00"])),
            new: json!(["JPY", "1200"]),
        };
        assert_eq!(
            field_lines(&diff),
            vec!["open_balance: JPY 1500 -> JPY 1200".to_owned()]
        );
    }

    #[test]
    fn json_diffs_carry_the_field_paths_of_the_text_form() {
        let plan = PlanReport {
            source: "erp".to_owned(),
            counts: std::collections::BTreeMap::from([("update", 1)]),
            invoices: vec![PlannedInvoice {
                external_id: "INV-1".to_owned(),
                invoice_number: "1".to_owned(),
                action: "update",
                skip_reason: None,
                diff: vec![FieldDiff {
                    field: "cost_lines".to_owned(),
                    old: Some(json!([["Freight", ["USD", "209.6"]]])),
                    new: json!([["Freight", ["USD", "12.5"]]]),
                }],
                failure: None,
                note: None,
            }],
        };
        let value = json(&plan);
        let diff = &value["invoices"][0]["diff"][0];
        assert_eq!(diff["field"], "cost_lines");
        assert_eq!(
            diff["changes"],
            json!([{"path": "cost_lines[0].amount", "old": "USD 209.60", "new": "USD 12.50"}])
        );
        // The raw values stay for programs.
        assert_eq!(diff["new"], json!([["Freight", ["USD", "12.5"]]]));
    }

    #[test]
    fn a_delete_says_whether_b2b_holds_the_invoice() {
        let planned = |note| PlannedInvoice {
            external_id: "INV-8".to_owned(),
            invoice_number: "8".to_owned(),
            action: "delete",
            skip_reason: None,
            diff: Vec::new(),
            failure: None,
            note,
        };
        assert_eq!(
            entry(&planned(Some(b2b_invoice_sync::sync::engine::DELETE_NEVER_HELD))),
            "  delete  invoice 8  INV-8 (deleted or voided in the ERP; never in B2B: recorded, no call)\n"
        );
        assert!(
            entry(&planned(Some(b2b_invoice_sync::sync::engine::DELETE_HELD)))
                .contains("B2B holds it: on_deleted applies")
        );
    }
}
