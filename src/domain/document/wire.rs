//! Lenient readers for B2B Edition's JSON, which is loose about types: balances arrive as numbers on
//! create and as decimal strings elsewhere (`"349.5000"`), ids and timestamps as numbers or strings,
//! empty objects sometimes as `[]`. Reading liberally keeps one odd field from failing a whole page.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;

/// A decimal from a JSON number or string, without losing the string's precision.
pub fn decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    d.deserialize_any(DecimalVisitor)
}

/// Writes a decimal as a JSON number with exactly its digits (no detour through `f64`).
pub fn decimal_as_number<S: Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    let raw = serde_json::value::RawValue::from_string(value.to_string())
        .map_err(serde::ser::Error::custom)?;
    serde::Serialize::serialize(&raw, s)
}

/// Writes a decimal as a JSON string, the form B2B Edition uses in responses and updates.
pub fn decimal_as_string<S: Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// Parses decimal text, accepting scientific notation as a fallback (`1e3`).
pub fn parse_decimal(text: &str) -> Option<Decimal> {
    let text = text.trim();
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .ok()
}

struct DecimalVisitor;

impl Visitor<'_> for DecimalVisitor {
    type Value = Decimal;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a decimal number or a string holding one")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
        parse_decimal(v).ok_or_else(|| E::custom(format!("`{v}` is not a decimal number")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Decimal, E> {
        // `f64`'s Display is the shortest text that reads back as the same float, so `349.5`
        // becomes exactly 349.5 rather than 349.49999999999997.
        if !v.is_finite() {
            return Err(E::custom("amount is not a finite number"));
        }
        parse_decimal(&v.to_string()).ok_or_else(|| E::custom(format!("{v} is out of range")))
    }
}

/// An optional string that may arrive as a number (`customerId: 3`) or null.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string, a number or null")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    d.deserialize_any(V)
}

/// A required string that may arrive as a number.
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    opt_string(d)?.ok_or_else(|| de::Error::custom("expected a string, found null"))
}

/// A string that may be missing, null or a number; missing and null read as "".
pub fn string_or_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(opt_string(d)?.unwrap_or_default())
}

/// An optional whole number that may arrive as a float (`1.0`) or a numeric string (`"7"`).
pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match opt_string(d)? {
        None => Ok(None),
        Some(text) if text.trim().is_empty() => Ok(None),
        Some(text) => whole_number(&text)
            .map(Some)
            .ok_or_else(|| de::Error::custom(format!("`{text}` is not a whole number"))),
    }
}

/// An invoice or company id: a positive whole number, as a number or a string.
pub fn id<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = opt_i64(d)?.ok_or_else(|| de::Error::custom("id is missing"))?;
    u64::try_from(n).map_err(|_| de::Error::custom(format!("id {n} is negative")))
}

fn whole_number(text: &str) -> Option<i64> {
    let text = text.trim();
    text.parse::<i64>().ok().or_else(|| {
        let d = parse_decimal(text)?;
        (d.fract().is_zero())
            .then(|| i64::try_from(d).ok())
            .flatten()
    })
}

/// A Unix timestamp in seconds (number or numeric string); RFC 3339 text is accepted too.
pub fn opt_unix_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    match opt_string(d)? {
        None => Ok(None),
        Some(text) if text.trim().is_empty() => Ok(None),
        Some(text) => {
            if let Some(secs) = whole_number(&text) {
                return Utc
                    .timestamp_opt(secs, 0)
                    .single()
                    .map(Some)
                    .ok_or_else(|| de::Error::custom(format!("timestamp {secs} is out of range")));
            }
            DateTime::parse_from_rfc3339(text.trim())
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|_| de::Error::custom(format!("`{text}` is not a Unix timestamp")))
        }
    }
}

/// A list that may arrive as null: read as empty.
pub fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Ok(<Option<Vec<T>> as serde::Deserialize>::deserialize(d)?.unwrap_or_default())
}

/// What kind of JSON value this is, for error messages: "a string", "an array", ...
pub fn kind_of(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Writes an optional timestamp as Unix seconds, the form B2B Edition takes.
pub fn opt_unix_time_out<S: Serializer>(
    t: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_i64(t.timestamp()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct D {
        #[serde(deserialize_with = "decimal")]
        v: Decimal,
    }

    fn dec(json: &str) -> Decimal {
        match serde_json::from_str::<D>(json) {
            Ok(d) => d.v,
            Err(e) => panic!("{json}: {e}"),
        }
    }

    #[test]
    fn number_and_string_balances_are_the_same_decimal() {
        assert_eq!(dec(r#"{"v": 349.5}"#), dec(r#"{"v": "349.5000"}"#));
        assert_eq!(dec(r#"{"v": "349.5000"}"#).to_string(), "349.5000");
        assert_eq!(dec(r#"{"v": 0.1}"#).to_string(), "0.1");
        assert_eq!(dec(r#"{"v": 12}"#), Decimal::from(12));
        assert_eq!(dec(r#"{"v": "1e3"}"#), Decimal::from(1000));
    }

    #[test]
    fn junk_balances_are_rejected_with_the_text() {
        let err = serde_json::from_str::<D>(r#"{"v": "12,50"}"#)
            .err()
            .map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("12,50"));
    }

    #[test]
    fn decimals_are_written_with_their_exact_digits() {
        #[derive(serde::Serialize)]
        struct S {
            #[serde(serialize_with = "decimal_as_number")]
            n: Decimal,
            #[serde(serialize_with = "decimal_as_string")]
            s: Decimal,
        }
        let v = Decimal::from_str("12345678901234.5678").unwrap_or_default();
        let json = serde_json::to_string(&S { n: v, s: v }).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"n":12345678901234.5678,"s":"12345678901234.5678"}"#
        );
    }

    #[test]
    fn whole_numbers_accept_floats_and_strings_but_not_fractions() {
        assert_eq!(whole_number("1617675497"), Some(1617675497));
        assert_eq!(whole_number("1617675497.0"), Some(1617675497));
        assert_eq!(whole_number("1.5"), None);
        assert_eq!(whole_number("abc"), None);
    }
}
