//! Money: an exact `Decimal` amount with an ISO 4217 currency. Never `f64`.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

/// An ISO 4217 currency that exists (`USD`, `JPY`, `KWD`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency(iso_currency::Currency);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an ISO 4217 currency code")]
pub struct UnknownCurrency(pub String);

impl Currency {
    /// Parses a code, case-insensitively and ignoring surrounding blanks.
    pub fn parse(code: &str) -> Result<Self, UnknownCurrency> {
        let upper = code.trim().to_ascii_uppercase();
        iso_currency::Currency::from_code(&upper)
            .map(Self)
            .ok_or_else(|| UnknownCurrency(code.trim().to_owned()))
    }

    pub fn code(self) -> &'static str {
        // `code()` returns the three-letter code as a static string.
        self.0.code()
    }

    /// Digits after the decimal point of the minor unit: USD 2, JPY 0, KWD 3. Currencies
    /// without a minor unit (gold, SDR) count as 0: amounts in them are whole units.
    pub fn minor_unit_digits(self) -> u32 {
        self.0.exponent().map_or(0, u32::from)
    }

    /// The amount as people read it in this currency: at least the minor unit's digits
    /// (`209.6` -> `209.60` in USD, `1500` in JPY), never rounded (a sub-cent amount keeps
    /// its digits, so nothing is hidden).
    pub fn shown(self, amount: Decimal) -> String {
        let digits = self.minor_unit_digits();
        let mut shown = amount.normalize();
        if shown.scale() < digits {
            shown.rescale(digits);
        }
        format!("{} {shown}", self.code())
    }

    /// An amount of minor units (cents) as a decimal amount of this currency.
    pub fn from_minor_units(self, minor: i64) -> Decimal {
        Decimal::new(minor, self.minor_unit_digits())
    }

    /// The amount in minor units, when it has no more precision than the minor unit.
    pub fn to_minor_units(self, amount: Decimal) -> Option<i64> {
        let scaled = amount * Decimal::from(10i64.checked_pow(self.minor_unit_digits())?);
        (scaled.fract().is_zero())
            .then(|| i64::try_from(scaled).ok())
            .flatten()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = UnknownCurrency;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// An amount in a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    pub amount: Decimal,
    pub currency: Currency,
}

impl Money {
    pub fn new(amount: Decimal, currency: Currency) -> Self {
        Self { amount, currency }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

/// Parses decimal text strictly: digits, one optional point, an optional leading sign. Rejects
/// thousands separators, exponents and commas, which in ERP exports usually mean a locale mix-up
/// (`1,234` could be 1234 or 1.234) that must be fixed at the source rather than guessed.
pub fn parse_amount(text: &str) -> Result<Decimal, String> {
    let t = text.trim();
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    let well_formed = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.chars().filter(|&c| c == '.').count() <= 1
        && digits.chars().any(|c| c.is_ascii_digit());
    if !well_formed {
        return Err(format!(
            "`{t}` is not a decimal amount (use digits and a point, like 1234.50)"
        ));
    }
    Decimal::from_str_exact(t).map_err(|e| format!("`{t}` is out of range: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_codes_parse_and_unknown_are_rejected() {
        assert_eq!(Currency::parse(" usd ").map(Currency::code), Ok("USD"));
        assert!(Currency::parse("USX").is_err());
        assert!(Currency::parse("").is_err());
    }

    #[test]
    fn minor_units_follow_iso_4217() {
        let digits = |c: &str| Currency::parse(c).map(Currency::minor_unit_digits);
        assert_eq!(digits("USD"), Ok(2));
        assert_eq!(digits("JPY"), Ok(0));
        assert_eq!(digits("KWD"), Ok(3));
    }

    #[test]
    fn amounts_show_at_the_currency_minor_unit() {
        let shown = |c: &str, a: &str| {
            Currency::parse(c)
                .map(|c| c.shown(Decimal::from_str_exact(a).unwrap_or_default()))
                .unwrap_or_default()
        };
        assert_eq!(shown("USD", "209.6"), "USD 209.60");
        assert_eq!(shown("USD", "20"), "USD 20.00");
        assert_eq!(shown("USD", "20.000"), "USD 20.00");
        assert_eq!(shown("JPY", "1500"), "JPY 1500");
        assert_eq!(shown("JPY", "1500.00"), "JPY 1500");
        assert_eq!(shown("KWD", "1.5"), "KWD 1.500");
        // Never rounded: a sub-cent amount keeps its digits.
        assert_eq!(shown("USD", "0.125"), "USD 0.125");
    }

    #[test]
    fn strict_amounts() {
        assert_eq!(parse_amount("1234.50"), Ok(Decimal::new(123450, 2)));
        assert_eq!(parse_amount("-0.5"), Ok(Decimal::new(-5, 1)));
        assert!(parse_amount("1,234.50").is_err());
        assert!(parse_amount("1e3").is_err());
        assert!(parse_amount(".").is_err());
        assert!(parse_amount("12.3.4").is_err());
        assert!(parse_amount("").is_err());
    }

    proptest! {
        #[test]
        fn minor_units_round_trip_exactly(minor in -1_000_000_000_000i64..1_000_000_000_000, code in prop::sample::select(vec!["USD", "JPY", "KWD", "EUR", "BHD", "CLF"])) {
            let currency = Currency::parse(code).unwrap();
            let amount = currency.from_minor_units(minor);
            prop_assert_eq!(currency.to_minor_units(amount), Some(minor));
            prop_assert_eq!(amount.scale(), currency.minor_unit_digits());
        }
    }
}
