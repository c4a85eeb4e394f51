//! Typed reads of request-body fields with the API's error style
//! (`"dueDate: Please enter a valid number; "`), collecting every problem of a body at once.
//!
//! Readers return `None` both when a key is absent and when it is invalid; in the second case
//! they also record an error, so callers check `FieldErrors::is_empty` before using results.

use serde_json::{Map, Value};

use super::money::INVALID_NUMBER;

/// Validation problems of one request, in the order found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    pub(crate) fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push((field.into(), message.into()));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `field: message; ` for each problem, as in `meta.errors` of the API.
    pub(crate) fn render(&self) -> String {
        self.0
            .iter()
            .map(|(field, message)| format!("{field}: {message}; "))
            .collect()
    }
}

/// Whether a string field may be empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Text {
    AnyLength,
    NonEmpty,
}

pub(crate) const NOT_NULL: &str = "Field may not be null";

/// Present key, or `None` after recording an error for an explicit `null`.
fn present<'a>(
    body: &'a Map<String, Value>,
    key: &str,
    errors: &mut FieldErrors,
) -> Option<&'a Value> {
    match body.get(key) {
        Some(Value::Null) => {
            errors.push(key, NOT_NULL);
            None
        }
        other => other,
    }
}

pub(crate) fn string(
    body: &Map<String, Value>,
    key: &str,
    rule: Text,
    errors: &mut FieldErrors,
) -> Option<String> {
    match present(body, key, errors)? {
        Value::String(text) if rule == Text::NonEmpty && text.trim().is_empty() => {
            errors.push(key, "Ensure this field has at least 1 characters");
            None
        }
        Value::String(text) => Some(text.clone()),
        _ => {
            errors.push(key, "Please enter a valid string");
            None
        }
    }
}

/// A JSON number read as whole seconds / an integer; a fraction is truncated (the update
/// spec types `dueDate` as a double). Strings are rejected: the API wants numbers.
pub(crate) fn integer(
    body: &Map<String, Value>,
    key: &str,
    errors: &mut FieldErrors,
) -> Option<i64> {
    let value = present(body, key, errors)?;
    let number = value.as_i64().or_else(|| {
        value
            .as_f64()
            .filter(|float| float.is_finite() && float.abs() < 9.0e15)
            .map(|float| float.trunc() as i64)
    });
    if number.is_none() {
        errors.push(key, INVALID_NUMBER);
    }
    number
}

/// A small enum sent as a number (`status`, `source`).
pub(crate) fn choice(
    body: &Map<String, Value>,
    key: &str,
    allowed: &[u8],
    errors: &mut FieldErrors,
) -> Option<u8> {
    let number = integer(body, key, errors)?;
    match u8::try_from(number) {
        Ok(small) if allowed.contains(&small) => Some(small),
        _ => {
            let allowed: Vec<String> = allowed.iter().map(u8::to_string).collect();
            errors.push(key, format!("Must be one of: {}", allowed.join(", ")));
            None
        }
    }
}

pub(crate) fn object(
    body: &Map<String, Value>,
    key: &str,
    errors: &mut FieldErrors,
) -> Option<Value> {
    match present(body, key, errors)? {
        object @ Value::Object(_) => Some(object.clone()),
        _ => {
            errors.push(key, "Please enter a valid object");
            None
        }
    }
}

/// A B2B company id: a string of digits or a non-negative integer.
pub(crate) fn company_id(
    body: &Map<String, Value>,
    key: &str,
    errors: &mut FieldErrors,
) -> Option<u64> {
    let id = match present(body, key, errors)? {
        Value::String(text) => text.trim().parse::<u64>().ok(),
        Value::Number(number) => number.as_u64(),
        _ => None,
    };
    if id.is_none() {
        errors.push(key, "Please enter a valid company id");
    }
    id
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("test bodies are objects"),
        }
    }

    #[test]
    fn reads_valid_fields_and_skips_absent_ones() {
        let body = body(json!({"a": "x", "n": 1619826907, "f": 12.9, "s": 1, "c": "42", "o": {}}));
        let mut errors = FieldErrors::default();
        assert_eq!(
            string(&body, "a", Text::NonEmpty, &mut errors).as_deref(),
            Some("x")
        );
        assert_eq!(integer(&body, "n", &mut errors), Some(1_619_826_907));
        assert_eq!(integer(&body, "f", &mut errors), Some(12));
        assert_eq!(choice(&body, "s", &[0, 1, 2], &mut errors), Some(1));
        assert_eq!(company_id(&body, "c", &mut errors), Some(42));
        assert_eq!(object(&body, "o", &mut errors), Some(json!({})));
        assert_eq!(string(&body, "missing", Text::AnyLength, &mut errors), None);
        assert!(errors.is_empty());
    }

    #[test]
    fn reports_wrong_types_in_api_style() {
        let body = body(
            json!({"dueDate": "soon", "status": 7, "type": "", "details": [], "customerId": "x", "po": null}),
        );
        let mut errors = FieldErrors::default();
        assert_eq!(integer(&body, "dueDate", &mut errors), None);
        assert_eq!(choice(&body, "status", &[0, 1, 2], &mut errors), None);
        assert_eq!(string(&body, "type", Text::NonEmpty, &mut errors), None);
        assert_eq!(object(&body, "details", &mut errors), None);
        assert_eq!(company_id(&body, "customerId", &mut errors), None);
        assert_eq!(string(&body, "po", Text::AnyLength, &mut errors), None);
        assert_eq!(
            errors.render(),
            "dueDate: Please enter a valid number; status: Must be one of: 0, 1, 2; \
             type: Ensure this field has at least 1 characters; details: Please enter a valid object; \
             customerId: Please enter a valid company id; po: Field may not be null; "
        );
    }
}
