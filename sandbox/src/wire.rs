//! How the fakes read amounts and dates off the wire.
//!
//! Written here rather than borrowed from the product crate's `domain`: a fake that reads the
//! wire independently of the daemon is the better test (a parsing bug in the daemon cannot be
//! mirrored by the fake that checks it), and this crate must not depend on the product (the
//! product's `rigs` feature depends on this crate).

use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde_json::Value;

/// Digits with an optional sign and fraction (`12`, `-3.50`, `+2.5`, `.5`). Stricter than
/// `Decimal::from_str`, which also takes `1_000`: a string a real API would reject must be
/// rejected here too.
pub(crate) fn plain_decimal(text: &str) -> Option<Decimal> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits_only = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !digits_only(whole) || !digits_only(fraction) {
        return None;
    }
    Decimal::from_str(text.strip_prefix('+').unwrap_or(text)).ok()
}

/// An amount as the ERP APIs send it in text: a plain decimal, surrounding blanks allowed.
pub(crate) fn amount(text: &str) -> Option<Decimal> {
    plain_decimal(text.trim())
}

/// A JSON number or string as amount text (a number prints its shortest exact form).
pub(crate) fn amount_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// A JSON number or string as an amount.
pub(crate) fn json_amount(value: &Value) -> Option<Decimal> {
    amount(&amount_text(value)?)
}

/// `YYYY-MM-DD` or an RFC 3339 timestamp's date, in the years a billing system can hold.
pub(crate) fn date(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    let day = match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(day) => day,
        Err(_) => DateTime::parse_from_rfc3339(text).ok()?.date_naive(),
    };
    let plausible = (1900..=2200).contains(&day.year());
    plausible.then_some(day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_plain_decimals() {
        assert_eq!(amount(" 12.50 "), Decimal::from_str("12.50").ok());
        assert_eq!(amount("+2.5"), Decimal::from_str("2.5").ok());
        assert_eq!(amount(".5"), Decimal::from_str("0.5").ok());
        for bad in ["", ".", "1_000", "1e3", "abc", "1.2.3", "--1"] {
            assert_eq!(amount(bad), None, "{bad}");
        }
        assert_eq!(
            json_amount(&serde_json::json!(0.3)),
            Decimal::from_str("0.3").ok()
        );
        assert_eq!(json_amount(&serde_json::json!(true)), None);
    }

    #[test]
    fn dates_are_days_or_timestamps_in_range() {
        assert_eq!(date("2024-03-01"), NaiveDate::from_ymd_opt(2024, 3, 1));
        assert_eq!(
            date("2024-03-01T10:00:00Z"),
            NaiveDate::from_ymd_opt(2024, 3, 1)
        );
        assert_eq!(date("1800-01-01"), None);
        assert_eq!(date("01/03/2024"), None);
    }
}
