//! The changed leaves between two canonical values of an owned field (`domain::fingerprint`),
//! named by field path: `line_items[0].quantity`, `billing_address.city`,
//! `extra_fields.Region`, rather than two whole arrays. `plan` shows them as diff lines and
//! `reconcile` as drift; each decides how to show a value.

use serde_json::Value;

/// Names of the positions in the canonical tuples of `fingerprint.rs`, so that a path reads
/// `line_items[0].quantity` rather than `line_items[0][4]`. A tuple of another length (a future
/// canonical form) falls back to positions.
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

/// How a field's canonical value is laid out.
#[derive(Clone, Copy)]
struct Shape {
    /// The value itself is a tuple with these names.
    tuple: Option<&'static [&'static str]>,
    /// The value is a list of such tuples.
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

/// The names of the positions of `field`'s value when it is itself a tuple (an address, the
/// customer), to show it whole as a named object.
pub fn tuple_names(field: &str) -> Option<&'static [&'static str]> {
    shape(field).tuple
}

/// One changed leaf: its path, both values (`None`: absent on that side), and the names of its
/// positions when it is a tuple shown whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Leaf<'a> {
    pub path: String,
    pub old: Option<&'a Value>,
    pub new: Option<&'a Value>,
    pub names: Option<&'static [&'static str]>,
}

/// Every changed leaf of `field` from `old` to `new`, descending into objects and tuples; an
/// amount (`["USD", "10.5"]`) is one leaf. Keys are visited in `new`'s order, then those only
/// `old` has. Nothing when the two are equal.
pub fn leaves<'a>(field: &str, old: Option<&'a Value>, new: Option<&'a Value>) -> Vec<Leaf<'a>> {
    let mut out = Vec::new();
    walk(field, old, new, shape(field), &mut out);
    out
}

/// `["USD", "10.5"]`: an amount of the canonical form.
pub fn is_money(v: Option<&Value>) -> bool {
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

/// Empty parts of a tuple (no comments, no extra keys) are left out of its display.
pub fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn walk<'a>(
    path: &str,
    old: Option<&'a Value>,
    new: Option<&'a Value>,
    shape: Shape,
    out: &mut Vec<Leaf<'a>>,
) {
    if old == new {
        return;
    }
    let leaf = |names| Leaf {
        path: path.to_owned(),
        old,
        new,
        names,
    };
    if is_money(old) || is_money(new) {
        out.push(leaf(None));
        return;
    }
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            for (key, value) in b {
                walk(
                    &format!("{path}.{key}"),
                    a.get(key),
                    Some(value),
                    PLAIN,
                    out,
                );
            }
            for (key, value) in a.iter().filter(|(k, _)| !b.contains_key(*k)) {
                walk(&format!("{path}.{key}"), Some(value), None, PLAIN, out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => match shape.tuple {
            Some(names) if a.len() == names.len() && b.len() == names.len() => {
                for (i, name) in names.iter().enumerate() {
                    walk(&format!("{path}.{name}"), a.get(i), b.get(i), PLAIN, out);
                }
            }
            _ => {
                let item = Shape {
                    tuple: shape.items,
                    items: None,
                };
                for i in 0..a.len().max(b.len()) {
                    walk(&format!("{path}[{i}]"), a.get(i), b.get(i), item, out);
                }
            }
        },
        _ => out.push(leaf(shape.tuple)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn leaves_are_named_by_path_in_new_order_then_old_only() {
        let old = json!({"Region": "EU", "Gone": "x"});
        let new = json!({"Note": "n", "Region": "US"});
        let paths: Vec<String> = leaves("extra_fields", Some(&old), Some(&new))
            .into_iter()
            .map(|l| l.path)
            .collect();
        assert_eq!(
            paths,
            [
                "extra_fields.Note",
                "extra_fields.Region",
                "extra_fields.Gone"
            ]
        );
        let a = json!(["USD", "10"]);
        let b = json!(["USD", "12"]);
        let money = leaves("original_balance", Some(&a), Some(&b));
        assert_eq!(money.len(), 1);
        assert!(is_money(money[0].new));
        assert!(leaves("status", Some(&json!(0)), Some(&json!(0))).is_empty());
    }
}
