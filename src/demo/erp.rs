//! The demo's ERP side: a temporary export folder holding copies of the bundled samples, and
//! the changed invoices the ERP exports between the two cycles.

use std::path::{Path, PathBuf};

use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::DemoError;

/// The samples of `examples/erp-export/`, embedded at build time: the demo works from any
/// directory and never touches the repository's files.
pub const SAMPLES: [(&str, &str); 2] = [
    (
        "invoices-2026-11-01.ndjson",
        include_str!("../../examples/erp-export/invoices-2026-11-01.ndjson"),
    ),
    (
        "invoices-2026-11-02.csv",
        include_str!("../../examples/erp-export/invoices-2026-11-02.csv"),
    ),
];

/// The export the ERP writes between the cycles.
pub const CHANGES_FILE: &str = "invoices-demo-changes.ndjson";

/// The invoice a person edits in B2B; the ERP changes its line items too.
pub const EDITED_INVOICE: &str = "ERP-INV-20001";

/// Exported again without a change: the sync must skip it without an API call.
pub const UNCHANGED_INVOICE: &str = "ERP-INV-20005";
/// A buyer pays half of it in B2B between the cycles (it is not in the changes export).
pub const PAID_INVOICE: &str = "ERP-INV-20009";

/// A temporary folder, removed when dropped.
#[derive(Debug)]
pub struct ExportFolder {
    pub dir: PathBuf,
}

impl ExportFolder {
    /// A fresh folder under the system's temp dir with the samples and their `.ready` markers.
    pub fn create() -> Result<Self, DemoError> {
        let dir =
            std::env::temp_dir().join(format!("b2b-invoice-sync-demo-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        let folder = Self { dir };
        for (name, text) in SAMPLES {
            folder.write_export(name, text)?;
        }
        Ok(folder)
    }

    /// Writes `name`, then its marker: the source never sees a half-written export.
    pub fn write_export(&self, name: &str, text: &str) -> Result<(), DemoError> {
        let path = self.dir.join(name);
        std::fs::write(&path, text).map_err(|e| io_error(&path, e))?;
        let marker = self.dir.join(format!("{name}.ready"));
        std::fs::write(&marker, "").map_err(|e| io_error(&marker, e))
    }

    /// The refused rows of an export, as the files source wrote them (`rejected/`).
    pub fn rejected_rows(&self, export: &str) -> Vec<Value> {
        let path = self
            .dir
            .join("rejected")
            .join(format!("{export}.errors.ndjson"));
        std::fs::read_to_string(path)
            .map(|text| {
                text.lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for ExportFolder {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::debug!(dir = %self.dir.display(), error = %e, "could not remove the demo's export folder");
        }
    }
}

fn io_error(path: &Path, e: std::io::Error) -> DemoError {
    DemoError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// One ERP change, described for the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub external_id: String,
    pub invoice_number: String,
    pub what: String,
}

/// What B2B must hold for the edited invoice once the change is synced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub sku: String,
    pub quantity: Decimal,
    pub open_balance: Decimal,
}

/// The ERP's export between the cycles.
#[derive(Debug, Clone)]
pub struct Export {
    pub text: String,
    pub changes: Vec<Change>,
    pub edited: Expected,
}

/// The changed invoices (and one re-exported unchanged) as an NDJSON export, with what changed.
pub fn changes() -> Result<Export, DemoError> {
    let samples: Vec<Value> = SAMPLES[0]
        .1
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| sample_error(format!("a line is not JSON: {e}")))?;
    let find = |id: &str| {
        samples
            .iter()
            .find(|v| v["external_id"] == id)
            .cloned()
            .ok_or_else(|| sample_error(format!("{id} is missing")))
    };
    let mut out = Vec::new();
    let mut described = Vec::new();

    let mut more = find(EDITED_INVOICE)?;
    let what = more_of_first_line(&mut more, 10)?;
    described.push(describe(&more, what));
    let line = &more["line_items"][0];
    let edited = Expected {
        sku: text(line, "sku"),
        quantity: amount(line, "quantity")?,
        open_balance: amount(&more, "open_balance")?,
    };
    out.push(more);

    let mut paid = find("ERP-INV-20002")?;
    let what = payment(&mut paid, Decimal::new(100_000, 2))?;
    described.push(describe(&paid, what));
    out.push(paid);

    let mut added = find("ERP-INV-20007")?;
    let what = add_line(&mut added)?;
    described.push(describe(&added, what));
    out.push(added);

    // Re-exported as it was: the ERP sends more than what changed, as exports do.
    out.push(find(UNCHANGED_INVOICE)?);

    for invoice in out.iter_mut().take(3) {
        invoice["updated_at"] = json!("2026-11-03T08:00:00Z");
    }
    let text = out
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Export {
        text: text + "\n",
        changes: described,
        edited,
    })
}

fn sample_error(what: String) -> DemoError {
    DemoError::Sample(format!("examples/erp-export/{}: {what}", SAMPLES[0].0))
}

fn describe(invoice: &Value, what: String) -> Change {
    Change {
        external_id: text(invoice, "external_id"),
        invoice_number: text(invoice, "invoice_number"),
        what,
    }
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

fn amount(v: &Value, key: &str) -> Result<Decimal, DemoError> {
    v[key].as_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
        sample_error(format!(
            "{key} of {} is not an amount",
            text(v, "external_id")
        ))
    })
}

/// Adds `delta` to the invoice's subtotal, total and open balance.
fn add_to_totals(invoice: &mut Value, delta: Decimal) -> Result<(), DemoError> {
    for key in ["subtotal", "total", "open_balance"] {
        let value = amount(invoice, key)? + delta;
        invoice[key] = json!(value.to_string());
    }
    Ok(())
}

fn more_of_first_line(invoice: &mut Value, extra: i64) -> Result<String, DemoError> {
    let line = &invoice["line_items"][0];
    let quantity = amount(line, "quantity")?;
    let price = amount(line, "unit_price")?;
    let old_total = amount(line, "line_total")?;
    let new_quantity = quantity + Decimal::from(extra);
    let new_total = new_quantity * price;
    let sku = text(line, "sku");
    invoice["line_items"][0]["quantity"] = json!(new_quantity.to_string());
    invoice["line_items"][0]["line_total"] = json!(new_total.to_string());
    let before = amount(invoice, "total")?;
    add_to_totals(invoice, new_total - old_total)?;
    Ok(format!(
        "{sku} quantity {quantity} -> {new_quantity}; total {before} -> {}",
        amount(invoice, "total")?
    ))
}

fn payment(invoice: &mut Value, paid: Decimal) -> Result<String, DemoError> {
    let open = amount(invoice, "open_balance")?;
    let new_open = (open - paid).max(Decimal::ZERO);
    invoice["open_balance"] = json!(new_open.to_string());
    Ok(format!(
        "a payment recorded in the ERP: open balance {open} -> {new_open}"
    ))
}

fn add_line(invoice: &mut Value) -> Result<String, DemoError> {
    let price = Decimal::new(4_500, 2);
    let line = json!({
        "sku": "SVC-RUSH",
        "description": "Rush handling",
        "quantity": "1",
        "unit_price": price.to_string(),
        "line_total": price.to_string(),
    });
    let lines = invoice["line_items"]
        .as_array_mut()
        .ok_or_else(|| sample_error("ERP-INV-20007 has no line_items".to_owned()))?;
    lines.push(line);
    let count = lines.len();
    let before = amount(invoice, "total")?;
    add_to_totals(invoice, price)?;
    Ok(format!(
        "a line added (SVC-RUSH, {count} lines now); total {before} -> {}",
        amount(invoice, "total")?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_changes_apply_to_the_bundled_samples() {
        let Export {
            text,
            changes,
            edited,
        } = changes().expect("changes build from the samples");
        assert_eq!(edited.quantity, Decimal::from(50));
        assert_eq!(edited.open_balance, Decimal::new(94_858, 2));
        assert_eq!(text.lines().count(), 4);
        assert_eq!(changes.len(), 3);
        assert_eq!(changes[0].external_id, EDITED_INVOICE);
        assert!(changes[0].what.contains("40 -> 50"), "{}", changes[0].what);
        assert!(
            changes[1].what.contains("2730.94 -> 1730.94"),
            "{}",
            changes[1].what
        );
        let first: Value =
            serde_json::from_str(text.lines().next().expect("a line")).expect("json");
        assert_eq!(first["line_items"][0]["line_total"], "625.00");
        assert_eq!(first["total"], "948.58");
        // Every value stays text, as the export format requires.
        assert!(first["total"].is_string() && first["open_balance"].is_string());
    }
}
