//! Field-level differences between two canonical values (`domain::fingerprint`), by field path:
//! `line_items[0].quantity`, `billing_address.city`, `extra_fields.Region`, with amounts shown
//! as `USD 10.5` and the canonical tuples as named objects.

use serde_json::{Map, Value};

use super::FieldChange;

/// Names of the positions in the canonical tuples of `src/domain/fingerprint.rs`.
const LINE_ITEM: &[&str] = &[
    "sku",
    "type",
    "description",
    "comments",
    "quantity",
    "unit_price",
    "unit_discount",
    "other",
];
const ADDRESS: &[&str] = &[
    "first_name",
    "last_name",
    "street1",
    "street2",
    "city",
    "state",
    "zip",
    "country",
    "other",
];
const COST_LINE: &[&str] = &["description", "amount"];
const CUSTOMER: &[&str] = &["company_id", "external_customer_id"];

#[derive(Clone, Copy)]
struct Shape {
    tuple: Option<&'static [&'static str]>,
    items: Option<&'static [&'static str]>,
}

const PLAIN: Shape = Shape {
    tuple: None,
    items: None,
};

fn shape(field: &str) -> Shape {
    let (tuple, items) = match field {
        "line_items" => (None, Some(LINE_ITEM)),
        "cost_lines" => (None, Some(COST_LINE)),
        "shipping_addresses" => (None, Some(ADDRESS)),
        "billing_address" => (Some(ADDRESS), None),
        "customer" => (Some(CUSTOMER), None),
        _ => (None, None),
    };
    Shape { tuple, items }
}

/// The leaves of `field` where the ERP's value and B2B's differ (none when equal).
pub fn changes(field: &str, erp: &Value, b2b: Option<&Value>) -> Vec<FieldChange> {
    let mut out = Vec::new();
    leaves(field, Some(erp), b2b, shape(field), &mut out);
    out
}

/// `["USD", "10.5"]`: an amount of the canonical form.
fn is_money(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Array(a)) if a.len() == 2 => {
            a[0].as_str()
                .is_some_and(|c| c.len() == 3 && c.chars().all(|ch| ch.is_ascii_uppercase()))
                && a[1]
                    .as_str()
                    .is_some_and(|n| n.parse::<rust_decimal::Decimal>().is_ok())
        }
        _ => false,
    }
}

fn leaves(
    path: &str,
    erp: Option<&Value>,
    b2b: Option<&Value>,
    shape: Shape,
    out: &mut Vec<FieldChange>,
) {
    let absent = |v: Option<&Value>| v.is_none_or(Value::is_null);
    if erp == b2b || (absent(erp) && absent(b2b)) {
        return;
    }
    let push = |out: &mut Vec<FieldChange>, names: Option<&[&str]>| {
        out.push(FieldChange {
            path: path.to_owned(),
            erp: shown(erp, names),
            b2b: shown(b2b, names),
        });
    };
    if is_money(erp) || is_money(b2b) {
        push(out, None);
        return;
    }
    match (erp, b2b) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            for (key, value) in a {
                leaves(
                    &format!("{path}.{key}"),
                    Some(value),
                    b.get(key),
                    PLAIN,
                    out,
                );
            }
            for (key, value) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                leaves(&format!("{path}.{key}"), None, Some(value), PLAIN, out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => match shape.tuple {
            Some(names) if a.len() == names.len() && b.len() == names.len() => {
                for (i, name) in names.iter().enumerate() {
                    leaves(&format!("{path}.{name}"), a.get(i), b.get(i), PLAIN, out);
                }
            }
            _ => {
                let item = Shape {
                    tuple: shape.items,
                    items: None,
                };
                for i in 0..a.len().max(b.len()) {
                    leaves(&format!("{path}[{i}]"), a.get(i), b.get(i), item, out);
                }
            }
        },
        _ => push(out, shape.tuple),
    }
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

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
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
