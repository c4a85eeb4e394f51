//! Balances as the Invoice API reads and writes them.
//!
//! Requests carry `value` as a JSON number (create examples) or a decimal string (update
//! examples); responses always carry a string with four decimals (`"349.5000"`). Amounts stay
//! `Decimal` throughout. A JSON number has already been parsed to `f64` by serde_json, so its
//! shortest round-trip text (`349.5` -> `"349.5"`) is parsed instead of the float itself.

use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{json, Value};

use super::fields::FieldErrors;
use super::state::Money;

/// Decimal places the API stores and renders.
const SCALE: u32 = 4;

pub(crate) const INVALID_NUMBER: &str = "Please enter a valid number";

/// Parses an amount: a JSON number or a plain decimal string (`"12"`, `"-3.50"`).
/// Rounded half away from zero to the four places the API keeps.
pub(crate) fn parse_amount(value: &Value) -> Option<Decimal> {
    let parsed = match value {
        Value::Number(number) => parse_number_text(&number.to_string()),
        Value::String(text) => crate::wire::plain_decimal(text),
        _ => None,
    }?;
    Some(parsed.round_dp_with_strategy(SCALE, RoundingStrategy::MidpointAwayFromZero))
}

/// Renders an amount the way responses do: always four decimals, never `-0.0000`.
pub(crate) fn render_amount(value: Decimal) -> String {
    let mut rounded = value.round_dp_with_strategy(SCALE, RoundingStrategy::MidpointAwayFromZero);
    if rounded.is_zero() {
        rounded = Decimal::ZERO;
    }
    rounded.rescale(SCALE);
    rounded.to_string()
}

pub(crate) fn render_money(money: &Money) -> Value {
    json!({ "code": money.code, "value": render_amount(money.value) })
}

/// Parses a `{code, value}` object, reporting problems under `field` (e.g. `openBalance`).
pub(crate) fn parse_money(field: &str, value: &Value, errors: &mut FieldErrors) -> Option<Money> {
    let Value::Object(object) = value else {
        errors.push(field, "Please enter a valid object with code and value");
        return None;
    };
    let code = match object.get("code") {
        Some(Value::String(code)) if is_currency_code(code) => Some(code.clone()),
        Some(_) => {
            errors.push(
                format!("{field}.code"),
                "Please enter a valid currency code",
            );
            None
        }
        None => {
            errors.push(format!("{field}.code"), "This field is required");
            None
        }
    };
    let amount = match object.get("value") {
        Some(raw) => {
            let amount = parse_amount(raw);
            if amount.is_none() {
                errors.push(format!("{field}.value"), INVALID_NUMBER);
            }
            amount
        }
        None => {
            errors.push(format!("{field}.value"), "This field is required");
            None
        }
    };
    Some(Money {
        code: code?,
        value: amount?,
    })
}

/// Three ASCII capital letters, like ISO 4217 codes.
fn is_currency_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|byte| byte.is_ascii_uppercase())
}

/// A JSON number's text may use an exponent (`1e21`); anything else is plain.
fn parse_number_text(text: &str) -> Option<Decimal> {
    Decimal::from_str(text)
        .ok()
        .or_else(|| Decimal::from_scientific(text).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    #[test]
    fn number_string_and_padded_string_are_the_same_amount() {
        let from_string = parse_amount(&json!("349.5")).unwrap();
        let from_number = parse_amount(&json!(349.5)).unwrap();
        let from_padded = parse_amount(&json!("349.5000")).unwrap();
        assert_eq!(from_string, dec("349.5"));
        assert_eq!(from_number, from_string);
        assert_eq!(from_padded, from_string);
        assert_eq!(render_amount(from_number), "349.5000");
    }

    #[test]
    fn floats_keep_their_decimal_text_not_binary_noise() {
        // 0.1 + 0.2 style values must not turn into 0.30000000000000004.
        assert_eq!(parse_amount(&json!(0.3)).unwrap(), dec("0.3"));
        assert_eq!(parse_amount(&json!(100)).unwrap(), dec("100"));
        assert_eq!(
            parse_amount(&json!(1e21)).unwrap(),
            dec("1000000000000000000000")
        );
    }

    #[test]
    fn rounds_half_away_from_zero_to_four_places() {
        assert_eq!(parse_amount(&json!("1.00005")).unwrap(), dec("1.0001"));
        assert_eq!(parse_amount(&json!("-1.00005")).unwrap(), dec("-1.0001"));
        assert_eq!(render_amount(dec("12")), "12.0000");
        assert_eq!(render_amount(dec("-0")), "0.0000");
        assert_eq!(render_amount(dec("-5.5")), "-5.5000");
    }

    #[test]
    fn rejects_what_is_not_a_plain_number() {
        for bad in [
            json!("abc"),
            json!(""),
            json!("1_000"),
            json!("1e3"),
            json!("."),
            json!(true),
            json!(null),
            json!([1]),
        ] {
            assert!(parse_amount(&bad).is_none(), "{bad} should be rejected");
        }
        assert_eq!(parse_amount(&json!("+2.5")).unwrap(), dec("2.5"));
        assert_eq!(parse_amount(&json!(".5")).unwrap(), dec("0.5"));
    }

    #[test]
    fn money_objects_report_each_bad_part() {
        let mut errors = FieldErrors::default();
        assert!(parse_money(
            "openBalance",
            &json!({"code": "usd", "value": "x"}),
            &mut errors
        )
        .is_none());
        assert_eq!(
            errors.render(),
            "openBalance.code: Please enter a valid currency code; openBalance.value: Please enter a valid number; "
        );
        let mut errors = FieldErrors::default();
        let money = parse_money(
            "openBalance",
            &json!({"code": "EUR", "value": 7}),
            &mut errors,
        )
        .unwrap();
        assert!(errors.is_empty());
        assert_eq!(
            render_money(&money),
            json!({"code": "EUR", "value": "7.0000"})
        );
    }
}
