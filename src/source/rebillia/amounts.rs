//! Which unit Rebillia's amounts are in: per field as documented, and per invoice by its own
//! arithmetic where the documents leave it open.
//!
//! What is documented (the public reference client `rhinosaas/rebillia-mcp-server`):
//! - line amounts go to the API as **dollar strings**: `InvoiceDetailItemInput.amount` is "in
//!   DOLLAR STRINGS e.g. '20.00'" (`src/services/invoiceServices.ts`); `create_invoice` turns a
//!   number of cents into one with `(amount / 100).toFixed(2)` and `update_invoice` takes only
//!   strings (`src/tools/invoices/createInvoice.ts`, `updateInvoice.ts`);
//! - `shippingAmount` is "Shipping amount in CENTS" on create and update, and so are charges
//!   (`ChargeInvoiceBody.amount`, "5500 = $55.00") and refunds (the "Amount handling" section of
//!   `src/resources/api-docs.ts`: "Many endpoints use amounts in cents ... Check per endpoint");
//! - the units of what the API *answers* (`detail[].amount`, `shippingAmount`, `taxAmount`,
//!   `subtotalTaxExc`, `total`, `balanceDue`) are documented nowhere.
//!
//! So, per value:
//! - a **decimal string** (`"20.00"`, `"0.5"`) is dollars: it is the documented dollar form, and
//!   nobody writes a number of cents with a decimal point;
//! - a **whole number** (a JSON integer or a string of digits) in `shippingAmount` is cents, as
//!   documented;
//! - any other whole number is cents or dollars: the *reading* decides. The **cents reading**
//!   takes them as hundredths of the currency unit (what this adapter always did, and what the
//!   sandbox serves by default); the **dollars reading** takes them as units (as the documented
//!   request forms would suggest for lines and totals);
//! - anything else (a JSON number with a fraction, `1e3`, text) is refused naming the field.
//!
//! Each invoice's own arithmetic picks the reading: lines (quantity x amount) + shipping + tax =
//! total, and the lines = `subtotalTaxExc` when it is given (Rebillia's invoice model has no
//! discount field; credits arrive as lines). `amount_unit = "auto"` takes the reading that adds
//! up; when both do (an invoice without shipping whose whole numbers all scale together), the
//! unit the source's other invoices showed, else cents. An invoice that adds up in neither is
//! refused with both sums in the reason. `"cents"` / `"dollars"` force the reading and still
//! check the arithmetic.
//!
//! Amounts come out with at least two decimals (`82.00`, not `82`), so that the same invoice
//! read from cents or from dollars is the same text downstream (fingerprints, B2B).

use std::fmt;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::config::RebilliaAmountUnit;
use crate::domain::amount_text;
use crate::domain::money::parse_amount;

/// What a whole number in an amount field stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AmountUnit {
    /// Hundredths of the currency unit, whatever the currency (the reference client divides
    /// every cent amount by 100).
    Cents,
    /// Units of the currency.
    Dollars,
}

impl AmountUnit {
    pub fn name(self) -> &'static str {
        match self {
            Self::Cents => "cents",
            Self::Dollars => "dollars",
        }
    }
}

impl fmt::Display for AmountUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How one conversion reads whole numbers: the configured `amount_unit`, and for `auto` the unit
/// an invoice that adds up either way takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmountPolicy {
    pub configured: RebilliaAmountUnit,
    pub fallback: AmountUnit,
}

impl Default for AmountPolicy {
    fn default() -> Self {
        Self {
            configured: RebilliaAmountUnit::Auto,
            fallback: AmountUnit::Cents,
        }
    }
}

/// A bad value: the canonical field and the reason, which names the wire field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// One amount as the wire wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wire {
    /// A whole number (no decimal point): cents or dollars, as the reading says.
    Whole(Decimal),
    /// A decimal string: dollars.
    Dollars(Decimal),
}

impl Wire {
    /// Reads `value` of the wire field `wire`; the error's reason names it.
    pub(super) fn read(value: &Value, wire: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("Rebillia `{wire}`: {why}");
        let (text, is_string) = match value {
            Value::String(s) => (s.trim().to_owned(), true),
            Value::Number(_) => (amount_text(value).unwrap_or_default(), false),
            other => return Err(bad(&format!("`{other}` is not an amount"))),
        };
        let number = parse_amount(&text).map_err(|reason| bad(&reason))?;
        if !text.contains('.') {
            return Ok(Self::Whole(number));
        }
        if is_string {
            return Ok(Self::Dollars(number));
        }
        // A JSON number with a fraction (12.5) is neither documented form: refuse it rather
        // than guess (and it went through binary floating point on the way).
        Err(bad(&format!(
            "`{text}` is neither a whole number of cents nor a dollar string like \"{}\"",
            normal(number.round_dp(2))
        )))
    }

    /// The amount under `unit` (`None`: beyond what a `Decimal` holds).
    fn value(self, unit: AmountUnit) -> Option<Decimal> {
        match (self, unit) {
            (Self::Whole(n), AmountUnit::Cents) => {
                let mut cents = n;
                cents.set_scale(n.scale() + 2).ok()?;
                Some(cents)
            }
            (Self::Whole(n), AmountUnit::Dollars) | (Self::Dollars(n), _) => Some(n),
        }
    }

    fn is_whole(self) -> bool {
        matches!(self, Self::Whole(_))
    }
}

/// `qty x amount`, exactly (`Decimal`'s own product rounds when the digits run out).
fn exact_product(amount: Decimal, qty: i64) -> Option<Decimal> {
    let mantissa = amount.mantissa().checked_mul(i128::from(qty))?;
    Decimal::try_from_i128_with_scale(mantissa, amount.scale()).ok()
}

/// Written with at least two decimals when that is exact: `82` -> `82.00`, `0.5` -> `0.50`.
pub(super) fn normal(amount: Decimal) -> Decimal {
    if amount.scale() >= 2 {
        return amount;
    }
    let mut scaled = amount;
    scaled.rescale(2);
    if scaled == amount {
        scaled
    } else {
        amount
    }
}

/// One line's wire values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct WireLine {
    /// A whole number (`qty`).
    pub qty: i64,
    pub amount: Wire,
}

/// Every amount of an invoice as the wire wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct WireAmounts {
    pub lines: Vec<WireLine>,
    pub shipping: Option<Wire>,
    pub tax: Option<Wire>,
    pub subtotal: Option<Wire>,
    pub total: Option<Wire>,
    pub balance: Option<Wire>,
}

/// One line under a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LineAmounts {
    pub unit_price: Decimal,
    pub line_total: Decimal,
}

/// The invoice's amounts under one reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reading {
    pub unit: AmountUnit,
    pub lines: Vec<LineAmounts>,
    pub shipping: Option<Decimal>,
    pub tax: Option<Decimal>,
    pub subtotal: Option<Decimal>,
    pub total: Option<Decimal>,
    pub balance: Option<Decimal>,
}

impl Reading {
    fn lines_sum(&self) -> Option<Decimal> {
        self.lines
            .iter()
            .try_fold(Decimal::ZERO, |sum, l| sum.checked_add(l.line_total))
    }

    /// `lines + shipping + tax`, when it can be represented.
    fn sum(&self) -> Option<Decimal> {
        self.lines_sum()?
            .checked_add(self.shipping.unwrap_or_default())?
            .checked_add(self.tax.unwrap_or_default())
    }

    /// Whether the invoice adds up; `None` without a total (the domain refuses that record).
    fn adds_up(&self) -> Option<bool> {
        let total = self.total?;
        let lines = self.lines_sum();
        let subtotal_ok = match self.subtotal {
            None => true,
            Some(subtotal) => lines == Some(subtotal),
        };
        Some(self.sum() == Some(total) && subtotal_ok)
    }

    /// Numerically the same amounts as `other` (scale aside).
    fn same_as(&self, other: &Reading) -> bool {
        self.lines == other.lines
            && self.shipping == other.shipping
            && self.tax == other.tax
            && self.subtotal == other.subtotal
            && self.total == other.total
            && self.balance == other.balance
    }

    /// `lines 82.00 + shipping 15.00 + tax 0.00 = 97.00, total 98.00`, and the subtotal when
    /// it disagrees with the lines.
    fn sums(&self) -> String {
        let show = |d: Option<Decimal>| {
            d.map_or_else(|| "(too large)".to_owned(), |d| normal(d).to_string())
        };
        let zero = |d: Option<Decimal>| normal(d.unwrap_or_default()).to_string();
        let lines = self.lines_sum();
        let mut text = format!(
            "lines {} + shipping {} + tax {} = {}, total {}",
            show(lines),
            zero(self.shipping),
            zero(self.tax),
            show(self.sum()),
            show(self.total),
        );
        if let Some(subtotal) = self.subtotal.filter(|s| lines != Some(*s)) {
            text.push_str(&format!(", subtotalTaxExc {subtotal}"));
        }
        text
    }
}

/// What an invoice's arithmetic says about its unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It adds up in this unit only.
    Only(AmountUnit),
    /// It adds up either way, with different amounts: the invoice cannot tell.
    Either,
    /// No whole number changes with the unit (dollar strings, documented cents, zeros): both
    /// readings are the same; `true` when they add up.
    Same(bool),
    /// It adds up in neither.
    Neither,
    /// No total to check against (refused elsewhere).
    Unchecked,
}

impl WireAmounts {
    /// The amounts under `unit`; `Err` names the line whose total leaves `Decimal`'s range.
    pub(super) fn reading(&self, unit: AmountUnit) -> Result<Reading, FieldError> {
        let too_large = |field: &str, wire: &str| {
            FieldError::new(
                field,
                format!("Rebillia `{wire}` is too large for an amount"),
            )
        };
        let lines = self
            .lines
            .iter()
            .enumerate()
            .map(|(i, line)| {
                let unit_price = line.amount.value(unit).ok_or_else(|| {
                    too_large(
                        &format!("line_items[{i}].unit_price"),
                        &format!("detail[{i}].amount"),
                    )
                })?;
                let line_total = exact_product(unit_price, line.qty).ok_or_else(|| {
                    FieldError::new(
                        format!("line_items[{i}].line_total"),
                        format!("{} x {unit_price} is too large for an amount", line.qty),
                    )
                })?;
                Ok(LineAmounts {
                    unit_price: normal(unit_price),
                    line_total: normal(line_total),
                })
            })
            .collect::<Result<Vec<_>, FieldError>>()?;
        let value = |wire: Option<Wire>, forced: Option<AmountUnit>, field: &str, name: &str| {
            wire.map(|w| {
                w.value(forced.unwrap_or(unit))
                    .map(normal)
                    .ok_or_else(|| too_large(field, name))
            })
            .transpose()
        };
        Ok(Reading {
            unit,
            lines,
            // Documented in cents: a whole number there is cents in either reading.
            shipping: value(
                self.shipping,
                Some(AmountUnit::Cents),
                "freight",
                "shippingAmount",
            )?,
            tax: value(self.tax, None, "tax", "taxAmount")?,
            subtotal: value(self.subtotal, None, "subtotal", "subtotalTaxExc")?,
            total: value(self.total, None, "total", "total")?,
            balance: value(self.balance, None, "open_balance", "balanceDue")?,
        })
    }

    /// Whether a whole number is read differently by the two readings.
    fn unit_matters(&self) -> bool {
        let whole =
            |w: &Option<Wire>| w.is_some_and(|w| w.is_whole() && w != Wire::Whole(Decimal::ZERO));
        self.lines
            .iter()
            .any(|l| l.amount.is_whole() && l.amount != Wire::Whole(Decimal::ZERO))
            || [&self.tax, &self.subtotal, &self.total, &self.balance]
                .into_iter()
                .any(whole)
    }

    /// Whether some amount is a dollar string.
    fn has_dollar_strings(&self) -> bool {
        self.lines.iter().any(|l| !l.amount.is_whole())
            || [
                &self.shipping,
                &self.tax,
                &self.subtotal,
                &self.total,
                &self.balance,
            ]
            .into_iter()
            .any(|w| w.is_some_and(|w| !w.is_whole()))
    }

    /// What the arithmetic says (readings that overflow do not add up).
    pub fn verdict(&self) -> Verdict {
        let cents = self.reading(AmountUnit::Cents).ok();
        let dollars = self.reading(AmountUnit::Dollars).ok();
        let fits = |r: &Option<Reading>| r.as_ref().and_then(Reading::adds_up);
        match (fits(&cents), fits(&dollars)) {
            (None, _) | (_, None) if self.total.is_none() => Verdict::Unchecked,
            _ if !self.unit_matters() => Verdict::Same(fits(&cents) == Some(true)),
            (Some(true), Some(true)) => match (&cents, &dollars) {
                (Some(c), Some(d)) if c.same_as(d) => Verdict::Same(true),
                _ => Verdict::Either,
            },
            (Some(true), _) => Verdict::Only(AmountUnit::Cents),
            (_, Some(true)) => Verdict::Only(AmountUnit::Dollars),
            _ => Verdict::Neither,
        }
    }

    /// The reading to take under `policy`, or why the invoice cannot be taken: the bad field,
    /// or (field `total`) the sums of both readings.
    pub(super) fn resolve(&self, policy: AmountPolicy) -> Result<Reading, FieldError> {
        let forced = match policy.configured {
            RebilliaAmountUnit::Auto => None,
            RebilliaAmountUnit::Cents => Some(AmountUnit::Cents),
            RebilliaAmountUnit::Dollars => Some(AmountUnit::Dollars),
        };
        let verdict = self.verdict();
        let unit = match (forced, verdict) {
            (Some(unit), Verdict::Only(_) | Verdict::Neither | Verdict::Same(false)) => {
                let reading = self.reading(unit)?;
                if reading.adds_up() == Some(true) {
                    return Ok(reading);
                }
                return Err(self.refusal(Some(unit)));
            }
            (Some(unit), _) => unit,
            (None, Verdict::Only(unit)) => unit,
            (None, Verdict::Either | Verdict::Unchecked) => policy.fallback,
            (None, Verdict::Same(true)) => AmountUnit::Cents,
            (None, Verdict::Same(false) | Verdict::Neither) => {
                // A reading that cannot even be computed names its field.
                self.reading(AmountUnit::Cents)?;
                return Err(self.refusal(None));
            }
        };
        self.reading(unit)
    }

    /// The refusal of an invoice whose arithmetic does not hold, with the sums.
    fn refusal(&self, forced: Option<AmountUnit>) -> FieldError {
        let sums = |unit| self.reading(unit).map_or_else(|e| e.reason, |r| r.sums());
        let reason = if !self.unit_matters() {
            format!("the amounts do not add up: {}", sums(AmountUnit::Cents))
        } else {
            let (cents, dollars) = (sums(AmountUnit::Cents), sums(AmountUnit::Dollars));
            match forced {
                None => format!(
                    "the amounts add up neither in cents nor in dollars: in cents, {cents}; in \
                     dollars, {dollars}"
                ),
                Some(unit) => {
                    let other = match unit {
                        AmountUnit::Cents => AmountUnit::Dollars,
                        AmountUnit::Dollars => AmountUnit::Cents,
                    };
                    let other_fits =
                        self.reading(other).ok().and_then(|r| r.adds_up()) == Some(true);
                    format!(
                        "the amounts do not add up in {unit} (amount_unit = \"{unit}\"): in \
                         cents, {cents}; in dollars, {dollars}{}",
                        if other_fits {
                            format!("; they add up in {other}: check amount_unit")
                        } else {
                            String::new()
                        }
                    )
                }
            }
        };
        FieldError::new("total", reason)
    }
}

/// What the arithmetic of a set of invoices (a page) says about the unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnitEvidence {
    /// Invoices that add up in cents only.
    pub cents: usize,
    /// Invoices that add up in dollars only.
    pub dollars: usize,
    /// Invoices that add up either way.
    pub either: usize,
    /// Invoices whose whole numbers do not depend on the unit (or that have no total).
    pub same: usize,
    /// Invoices that add up in neither, or whose amounts cannot be read.
    pub neither: usize,
    /// Invoices with an amount written as a dollar string (`"41.00"`).
    pub dollar_strings: usize,
}

impl UnitEvidence {
    /// Counts one invoice (`None`: its amounts cannot be read).
    pub(super) fn add_invoice(&mut self, amounts: Option<&WireAmounts>) {
        self.add(amounts.map(WireAmounts::verdict));
        if amounts.is_some_and(WireAmounts::has_dollar_strings) {
            self.dollar_strings += 1;
        }
    }

    pub(super) fn add(&mut self, verdict: Option<Verdict>) {
        match verdict {
            Some(Verdict::Only(AmountUnit::Cents)) => self.cents += 1,
            Some(Verdict::Only(AmountUnit::Dollars)) => self.dollars += 1,
            Some(Verdict::Either) => self.either += 1,
            Some(Verdict::Same(true) | Verdict::Unchecked) => self.same += 1,
            Some(Verdict::Same(false) | Verdict::Neither) | None => self.neither += 1,
        }
    }

    /// The unit the invoices that can tell point to (the majority; `None` on a tie or when
    /// none can tell).
    pub fn unit(&self) -> Option<AmountUnit> {
        match self.cents.cmp(&self.dollars) {
            std::cmp::Ordering::Greater => Some(AmountUnit::Cents),
            std::cmp::Ordering::Less => Some(AmountUnit::Dollars),
            std::cmp::Ordering::Equal => None,
        }
    }

    pub fn invoices(&self) -> usize {
        self.cents + self.dollars + self.either + self.same + self.neither
    }
}

impl fmt::Display for UnitEvidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.unit() {
            Some(unit) => write!(f, "whole numbers are {unit}")?,
            None if self.cents > 0 => {
                f.write_str("undecided (as many invoices add up only in cents as only in dollars)")?
            }
            None if self.dollar_strings > 0 && self.either == 0 => {
                f.write_str("dollar strings (no whole number to tell)")?
            }
            None => f.write_str("undecided (no invoice tells)")?,
        }
        write!(
            f,
            ": of {} invoices, {} add up only in cents, {} only in dollars, {} either way, {} \
             whatever the unit, {} in neither; {} with dollar strings",
            self.invoices(),
            self.cents,
            self.dollars,
            self.either,
            self.same,
            self.neither,
            self.dollar_strings
        )
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use serde_json::json;

    use super::*;

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    fn whole(n: i64) -> Option<Wire> {
        Some(Wire::Whole(Decimal::from(n)))
    }

    fn dollars(text: &str) -> Option<Wire> {
        Some(Wire::Dollars(dec(text)))
    }

    /// Two lines (2 x 41.00, 3 x 1.99) + 15.00 shipping = 97.97, in cents.
    fn cents() -> WireAmounts {
        WireAmounts {
            lines: vec![
                WireLine {
                    qty: 2,
                    amount: Wire::Whole(Decimal::from(4100)),
                },
                WireLine {
                    qty: 3,
                    amount: Wire::Whole(Decimal::from(199)),
                },
            ],
            shipping: whole(1500),
            tax: whole(0),
            subtotal: whole(8797),
            total: whole(10297),
            balance: whole(10297),
        }
    }

    const AUTO: AmountPolicy = AmountPolicy {
        configured: RebilliaAmountUnit::Auto,
        fallback: AmountUnit::Cents,
    };

    #[test]
    fn wire_values_are_whole_numbers_dollar_strings_or_refused() {
        let read = |v: Value| Wire::read(&v, "total");
        assert_eq!(read(json!(4100)), Ok(Wire::Whole(dec("4100"))));
        assert_eq!(read(json!("-4100")), Ok(Wire::Whole(dec("-4100"))));
        assert_eq!(read(json!(" 41.00 ")), Ok(Wire::Dollars(dec("41.00"))));
        assert_eq!(read(json!("0.5")), Ok(Wire::Dollars(dec("0.5"))));
        let float = read(json!(12.5)).unwrap_err();
        assert!(
            float.contains("`total`")
                && float.contains("whole number of cents")
                && float.contains("\"12.50\""),
            "{float}"
        );
        for bad in [
            json!("lots"),
            json!("1e3"),
            json!(1e30),
            json!(true),
            json!({}),
        ] {
            assert!(
                read(bad.clone())
                    .unwrap_err()
                    .starts_with("Rebillia `total`: "),
                "{bad}"
            );
        }
    }

    #[test]
    fn whole_numbers_are_cents_or_dollars_and_come_out_with_two_decimals() {
        let n = Wire::Whole(dec("4100"));
        assert_eq!(
            n.value(AmountUnit::Cents).map(|d| d.to_string()).as_deref(),
            Some("41.00")
        );
        assert_eq!(
            n.value(AmountUnit::Dollars)
                .map(normal)
                .map(|d| d.to_string())
                .as_deref(),
            Some("4100.00")
        );
        assert_eq!(normal(dec("0.5")).to_string(), "0.50");
        assert_eq!(normal(dec("1.005")).to_string(), "1.005");
        assert_eq!(
            normal(Decimal::MAX),
            Decimal::MAX,
            "not rescaled when it cannot be exact"
        );
    }

    #[test]
    fn documented_cents_in_shipping_tell_the_unit() {
        let amounts = cents();
        assert_eq!(amounts.verdict(), Verdict::Only(AmountUnit::Cents));
        let reading = amounts.resolve(AUTO).unwrap();
        assert_eq!(reading.total, Some(dec("102.97")));
        assert_eq!(reading.lines[0].line_total.to_string(), "82.00");

        // The same invoice as the documented request forms would have it: dollar strings for
        // lines and totals, shipping in cents.
        let documented = WireAmounts {
            lines: vec![
                WireLine {
                    qty: 2,
                    amount: Wire::Dollars(dec("41.00")),
                },
                WireLine {
                    qty: 3,
                    amount: Wire::Dollars(dec("1.99")),
                },
            ],
            shipping: whole(1500),
            tax: dollars("0.00"),
            subtotal: dollars("87.97"),
            total: dollars("102.97"),
            balance: dollars("102.97"),
        };
        assert_eq!(documented.verdict(), Verdict::Same(true));
        let same = documented.resolve(AUTO).unwrap();
        assert!(same.same_as(&reading), "{same:?}");
        // Totals in cents beside dollar-string lines add up in cents only.
        let mut mixed = documented.clone();
        mixed.total = whole(10297);
        assert_eq!(mixed.verdict(), Verdict::Only(AmountUnit::Cents));
        mixed.total = whole(10298);
        assert_eq!(mixed.verdict(), Verdict::Neither);
        // Whole dollars in a line beside documented cents shipping add up in dollars only.
        let mut whole_dollars = documented.clone();
        whole_dollars.lines[0].amount = Wire::Whole(dec("41"));
        assert_eq!(whole_dollars.verdict(), Verdict::Only(AmountUnit::Dollars));
        assert!(whole_dollars.resolve(AUTO).unwrap().same_as(&reading));
    }

    #[test]
    fn an_invoice_that_fits_both_takes_the_fallback_and_one_that_fits_neither_is_refused() {
        let mut plain = cents();
        plain.shipping = None;
        plain.total = whole(8797);
        assert_eq!(plain.verdict(), Verdict::Either);
        let as_dollars = AmountPolicy {
            fallback: AmountUnit::Dollars,
            ..AUTO
        };
        assert_eq!(plain.resolve(AUTO).unwrap().total, Some(dec("87.97")));
        assert_eq!(
            plain.resolve(as_dollars).unwrap().total,
            Some(dec("8797.00"))
        );

        let mut broken = cents();
        broken.total = whole(10298);
        assert_eq!(broken.verdict(), Verdict::Neither);
        let err = broken.resolve(AUTO).unwrap_err();
        assert_eq!(err.field, "total");
        assert_eq!(
            err.reason,
            "the amounts add up neither in cents nor in dollars: in cents, lines 87.97 + \
             shipping 15.00 + tax 0.00 = 102.97, total 102.98; in dollars, lines 8797.00 + \
             shipping 15.00 + tax 0.00 = 8812.00, total 10298.00"
        );
        let mut subtotal = cents();
        subtotal.subtotal = whole(8798);
        let err = subtotal.resolve(AUTO).unwrap_err();
        assert!(
            err.reason.contains("total 102.97, subtotalTaxExc 87.98;"),
            "{}",
            err.reason
        );
    }

    #[test]
    fn a_forced_unit_is_taken_when_it_adds_up_and_named_when_it_does_not() {
        let forced = |unit| AmountPolicy {
            configured: unit,
            fallback: AmountUnit::Cents,
        };
        let mut plain = cents();
        plain.shipping = None;
        plain.total = whole(8797);
        let dollars_reading = plain.resolve(forced(RebilliaAmountUnit::Dollars)).unwrap();
        assert_eq!(dollars_reading.unit, AmountUnit::Dollars);
        assert_eq!(dollars_reading.total, Some(dec("8797.00")));
        let err = cents()
            .resolve(forced(RebilliaAmountUnit::Dollars))
            .unwrap_err();
        assert!(
            err.reason.starts_with(
                "the amounts do not add up in dollars (amount_unit = \"dollars\"): in cents, "
            ) && err
                .reason
                .ends_with("; they add up in cents: check amount_unit"),
            "{}",
            err.reason
        );
        assert_eq!(
            cents()
                .resolve(forced(RebilliaAmountUnit::Cents))
                .unwrap()
                .unit,
            AmountUnit::Cents
        );
    }

    #[test]
    fn dollar_strings_that_do_not_add_up_show_one_sum() {
        let amounts = WireAmounts {
            lines: vec![WireLine {
                qty: 1,
                amount: Wire::Dollars(dec("20.00")),
            }],
            total: dollars("25.00"),
            ..WireAmounts::default()
        };
        assert_eq!(amounts.verdict(), Verdict::Same(false));
        assert_eq!(
            amounts.resolve(AUTO).unwrap_err().reason,
            "the amounts do not add up: lines 20.00 + shipping 0.00 + tax 0.00 = 20.00, total 25.00"
        );
        let no_total = WireAmounts {
            total: None,
            ..amounts
        };
        assert_eq!(no_total.verdict(), Verdict::Unchecked);
        assert_eq!(no_total.resolve(AUTO).unwrap().total, None);
    }

    #[test]
    fn lines_too_large_for_one_reading_name_the_line() {
        let huge = WireAmounts {
            lines: vec![WireLine {
                qty: i64::MAX,
                amount: Wire::Whole(Decimal::from(i64::MAX)),
            }],
            total: whole(1),
            ..WireAmounts::default()
        };
        let err = huge.resolve(AUTO).unwrap_err();
        assert_eq!(err.field, "line_items[0].line_total", "{err:?}");
    }

    #[test]
    fn evidence_counts_verdicts_and_takes_the_majority() {
        let mut evidence = UnitEvidence::default();
        assert_eq!(evidence.unit(), None);
        for verdict in [
            Some(Verdict::Only(AmountUnit::Cents)),
            Some(Verdict::Only(AmountUnit::Cents)),
            Some(Verdict::Only(AmountUnit::Dollars)),
            Some(Verdict::Either),
            Some(Verdict::Same(true)),
            Some(Verdict::Neither),
            None,
        ] {
            evidence.add(verdict);
        }
        assert_eq!(evidence.unit(), Some(AmountUnit::Cents));
        assert_eq!(
            evidence.to_string(),
            "whole numbers are cents: of 7 invoices, 2 add up only in cents, 1 only in dollars, \
             1 either way, 1 whatever the unit, 2 in neither; 0 with dollar strings"
        );
        let mut strings = UnitEvidence::default();
        let documented = WireAmounts {
            lines: vec![WireLine {
                qty: 1,
                amount: Wire::Dollars(dec("20.00")),
            }],
            shipping: whole(1500),
            total: dollars("35.00"),
            ..WireAmounts::default()
        };
        strings.add_invoice(Some(&documented));
        strings.add_invoice(None);
        assert_eq!(
            (strings.same, strings.neither, strings.dollar_strings),
            (1, 1, 1)
        );
        assert!(strings
            .to_string()
            .starts_with("dollar strings (no whole number to tell)"));
    }
}
