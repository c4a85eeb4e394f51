//! JSON Schema validation of the documents the binary writes (docs/*.schema.json), with the
//! `jsonschema` crate: the draft the schema names (`$schema`), formats checked too.

use serde_json::Value;

/// Every place `doc` breaks `schema`, as `path: why` (a schema that does not compile is one).
pub fn validate(schema: &Value, doc: &Value) -> Vec<String> {
    let validator = match jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
    {
        Ok(v) => v,
        Err(e) => return vec![format!("the schema itself: {e}")],
    };
    validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn the_checker_finds_what_breaks_a_schema() {
    let schema = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object", "required": ["a"], "additionalProperties": false,
        "properties": {
            "a": {"$ref": "#/$defs/amount"},
            "k": {"enum": ["x"]},
            "t": {"type": "string", "format": "date-time"}
        },
        "$defs": {"amount": {"type": "string", "pattern": "^[0-9]+$"}}
    });
    let ok = serde_json::json!({"a": "12", "k": "x", "t": "2026-12-07T15:00:00Z"});
    assert!(validate(&schema, &ok).is_empty());
    let problems = validate(
        &schema,
        &serde_json::json!({"a": "1.x", "k": "y", "z": 1, "t": "yesterday"}),
    );
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert_eq!(validate(&schema, &serde_json::json!({})).len(), 1);
}
