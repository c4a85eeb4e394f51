//! A JSON Schema check for the keywords docs/*.schema.json use (`type`, `required`,
//! `properties`, `additionalProperties`, `propertyNames`, `items`, `enum`, `pattern`, `minimum`,
//! local `$ref`), so reports are validated without fetching and building a schema crate.

use serde_json::Value;

/// Every place `doc` breaks `schema`, as `path: why`.
pub fn validate(schema: &Value, doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    check(schema, schema, doc, "$", &mut problems);
    problems
}

fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.trim_start_matches('#');
            resolve(root, root.pointer(pointer).unwrap_or(&Value::Null))
        }
        None => schema,
    }
}

fn type_ok(name: &str, v: &Value) -> bool {
    match name {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        _ => false,
    }
}

fn check(root: &Value, schema: &Value, v: &Value, path: &str, out: &mut Vec<String>) {
    let schema = resolve(root, schema);
    if schema.is_null() {
        out.push(format!("{path}: unresolved $ref"));
        return;
    }
    if let Some(t) = schema.get("type") {
        let names: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !names.iter().any(|n| type_ok(n, v)) {
            out.push(format!("{path}: {v} is not of type {t}"));
            return;
        }
    }
    if let Some(Value::Array(choices)) = schema.get("enum") {
        if !choices.contains(v) {
            out.push(format!("{path}: {v} is not one of {choices:?}"));
        }
    }
    if let (Some(p), Some(s)) = (schema.get("pattern").and_then(Value::as_str), v.as_str()) {
        if !regex::Regex::new(p).expect("pattern").is_match(s) {
            out.push(format!("{path}: {s:?} does not match {p}"));
        }
    }
    if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Value::as_f64), v.as_f64()) {
        if n < min {
            out.push(format!("{path}: {n} is below {min}"));
        }
    }
    if let Value::Object(map) = v {
        for key in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !map.contains_key(key) {
                out.push(format!("{path}: {key} is required"));
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (key, value) in map {
            let at = format!("{path}.{key}");
            if let Some(names) = schema.get("propertyNames") {
                check(root, names, &Value::String(key.clone()), &at, out);
            }
            match props.and_then(|p| p.get(key)) {
                Some(sub) => check(root, sub, value, &at, out),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => out.push(format!("{at}: not allowed")),
                    Some(sub @ Value::Object(_)) => check(root, sub, value, &at, out),
                    _ => {}
                },
            }
        }
    }
    if let (Value::Array(items), Some(sub)) = (v, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(root, sub, item, &format!("{path}[{i}]"), out);
        }
    }
}

#[test]
fn the_checker_finds_what_breaks_a_schema() {
    let schema = serde_json::json!({
        "type": "object", "required": ["a"], "additionalProperties": false,
        "properties": {"a": {"$ref": "#/$defs/amount"}, "k": {"enum": ["x"]}},
        "$defs": {"amount": {"type": "string", "pattern": "^[0-9]+$"}}
    });
    assert!(validate(&schema, &serde_json::json!({"a": "12", "k": "x"})).is_empty());
    let problems = validate(&schema, &serde_json::json!({"a": "1.x", "k": "y", "z": 1}));
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert_eq!(validate(&schema, &serde_json::json!({})).len(), 1);
}
