//! Field-level differences between two canonical values (`domain::fingerprint`), by field path:
//! `line_items[0].quantity`, `billing_address.city`, `extra_fields.Region`, with amounts shown
//! as `USD 10.5` and the canonical tuples as named objects (the walk is `domain::field_paths`).

use serde_json::{Map, Value};

use super::FieldChange;
use crate::domain::field_paths::{self, is_empty, is_money};

/// The leaves of `field` where the ERP's value and B2B's differ (none when equal; absent and
/// null count as the same).
pub fn changes(field: &str, erp: &Value, b2b: Option<&Value>) -> Vec<FieldChange> {
    let absent = |v: Option<&Value>| v.is_none_or(Value::is_null);
    field_paths::leaves(field, b2b, Some(erp))
        .into_iter()
        .filter(|l| !(absent(l.old) && absent(l.new)))
        .map(|l| FieldChange {
            erp: shown(l.new, l.names),
            b2b: shown(l.old, l.names),
            path: l.path,
        })
        .collect()
}

/// A value as the report shows it: amounts as `"USD 10.5"`, named tuples as objects.
fn shown(v: Option<&Value>, names: Option<&[&str]>) -> Value {
    let Some(v) = v else {
        return Value::Null;
    };
    match (v, names) {
        (Value::Array(a), _) if is_money(Some(v)) => Value::String(format!(
            "{} {}",
            a[0].as_str().unwrap_or_default(),
            a[1].as_str().unwrap_or_default()
        )),
        (Value::Array(a), Some(names)) if a.len() == names.len() => Value::Object(
            names
                .iter()
                .zip(a)
                .filter(|(_, v)| !is_empty(v))
                .map(|(n, v)| ((*n).to_owned(), shown(Some(v), None)))
                .collect::<Map<String, Value>>(),
        ),
        _ => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn line(description: &str, quantity: &str) -> Value {
        json!([
            "A",
            "product",
            description,
            "",
            quantity,
            ["USD", "10"],
            ["USD", "0"],
            {}
        ])
    }

    #[test]
    fn leaves_are_named_by_path() {
        let got = changes(
            "line_items",
            &json!([line("Widget", "2")]),
            Some(&json!([line("Widget (edited)", "2"), line("Extra", "1")])),
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].path, "line_items[0].description");
        assert_eq!(got[0].erp, json!("Widget"));
        assert_eq!(got[0].b2b, json!("Widget (edited)"));
        assert_eq!(got[1].path, "line_items[1]");
        assert_eq!(got[1].erp, Value::Null);
        assert_eq!(got[1].b2b["unit_price"], json!("USD 10"));

        let got = changes(
            "original_balance",
            &json!(["USD", "100"]),
            Some(&json!(["USD", "90"])),
        );
        assert_eq!(got[0].erp, json!("USD 100"));
        assert_eq!(got[0].b2b, json!("USD 90"));

        let got = changes("purchase_order_number", &Value::Null, Some(&json!("PO-9")));
        assert_eq!(got[0].path, "purchase_order_number");
        assert_eq!(got[0].erp, Value::Null);

        let got = changes(
            "extra_fields",
            &json!({"Region": "EU"}),
            Some(&json!({"Region": "US", "Note": "x"})),
        );
        let paths: Vec<&str> = got.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["extra_fields.Region", "extra_fields.Note"]);

        assert!(changes("purchase_order_number", &Value::Null, None).is_empty());
        assert!(changes("status", &json!(0), Some(&json!(0))).is_empty());
    }
}
