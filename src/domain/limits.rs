//! Sanity limits: what a real ERP can send, per field, so that a data error (a total of 10^15,
//! a quantity of -5 on a line the ERP totals as positive, a floating-point artefact) is refused
//! with the field named instead of reaching B2B.
//!
//! - Amounts (total, open balance, subtotal, tax, discount, freight, unit prices, line totals)
//!   may be negative (credit memos, overpaid balances, discount and credit lines), but not
//!   beyond `max_amount` in absolute value; a negative total only with `negative_totals`.
//! - Quantities may be negative (returns, credit lines) with `negative_quantities`, never beyond
//!   `max_quantity`; a line's total and its quantity x unit price may not have opposite signs
//!   (`line_signs_agree`); zero on either side is fine (free items, information lines).
//! - No amount or quantity has more than `max_decimal_places` digits after the point (trailing
//!   zeros do not count).
//!
//! Applied by the adapters after [`SourceInvoice::parse`]: the `files` adapter with the record's
//! file and line, the API adapters through `source::build`.

use rust_decimal::Decimal;

use super::invoice::SourceInvoice;
use super::record::{RecordError, RecordLocator};
use crate::domain::policy::RecordLimits;

/// `Ok` when `invoice` is within `limits`; otherwise its first field beyond them, and why.
pub fn check_limits(
    invoice: &SourceInvoice,
    limits: &RecordLimits,
    locator: &RecordLocator,
) -> Result<(), RecordError> {
    let c = Check {
        invoice,
        limits,
        locator,
    };
    c.amount("total", invoice.total)?;
    if !limits.negative_totals && invoice.total < Decimal::ZERO {
        return Err(c.fail(
            "total",
            format!(
                "`{}` is negative and {} is false (no credit memos from this source)",
                invoice.total,
                c.key("negative_totals")
            ),
        ));
    }
    c.amount("open_balance", invoice.open_balance)?;
    for (field, value) in [
        ("subtotal", invoice.subtotal),
        ("tax", invoice.tax),
        ("discount", invoice.discount),
        ("freight", invoice.freight),
    ] {
        if let Some(value) = value {
            c.amount(field, value)?;
        }
    }
    for (i, line) in invoice.line_items.iter().enumerate() {
        let field = |name: &str| format!("line_items[{i}].{name}");
        let quantity = field("quantity");
        c.bounded(
            &quantity,
            line.quantity,
            limits.max_quantity,
            "max_quantity",
        )?;
        c.places(&quantity, line.quantity)?;
        if !limits.negative_quantities && line.quantity < Decimal::ZERO {
            return Err(c.fail(
                &quantity,
                format!(
                    "`{}` is negative and {} is false (no returns or credit lines from this source)",
                    line.quantity,
                    c.key("negative_quantities")
                ),
            ));
        }
        c.amount(&field("unit_price"), line.unit_price)?;
        c.amount(&field("line_total"), line.line_total)?;
        // The product fits: parse checked it.
        let gross = line
            .quantity
            .checked_mul(line.unit_price)
            .unwrap_or_default();
        let opposite = (gross.is_sign_negative() != line.line_total.is_sign_negative())
            && !gross.is_zero()
            && !line.line_total.is_zero();
        if limits.line_signs_agree && opposite {
            return Err(c.fail(
                &quantity,
                format!(
                    "quantity {} x unit price {} is {} but the line total {} is {}: the signs \
                     must agree (a credit line has a negative quantity or price and a negative \
                     line total; {} = false allows it)",
                    line.quantity,
                    line.unit_price,
                    sign(gross),
                    line.line_total,
                    sign(line.line_total),
                    c.key("line_signs_agree")
                ),
            ));
        }
    }
    Ok(())
}

fn sign(d: Decimal) -> &'static str {
    if d.is_sign_negative() {
        "negative"
    } else {
        "positive"
    }
}

struct Check<'a> {
    invoice: &'a SourceInvoice,
    limits: &'a RecordLimits,
    locator: &'a RecordLocator,
}

impl Check<'_> {
    fn fail(&self, field: &str, reason: String) -> RecordError {
        RecordError::new(
            self.invoice.source.as_str(),
            self.locator.clone(),
            Some(field),
            reason,
        )
    }

    /// The config key of a limit, for the operator who may need to change it.
    fn key(&self, name: &str) -> String {
        format!("sources.{}.limits.{name}", self.invoice.source)
    }

    fn amount(&self, field: &str, value: Decimal) -> Result<(), RecordError> {
        self.bounded(field, value, self.limits.max_amount, "max_amount")?;
        self.places(field, value)
    }

    fn bounded(
        &self,
        field: &str,
        value: Decimal,
        max: Decimal,
        key: &str,
    ) -> Result<(), RecordError> {
        if value.abs() <= max {
            return Ok(());
        }
        Err(self.fail(
            field,
            format!(
                "`{value}` is beyond {} ({max}) in absolute value: a data error? (raise the \
                 limit if such values are real)",
                self.key(key)
            ),
        ))
    }

    fn places(&self, field: &str, value: Decimal) -> Result<(), RecordError> {
        let places = value.normalize().scale();
        if places <= self.limits.max_decimal_places {
            return Ok(());
        }
        Err(self.fail(
            field,
            format!(
                "`{value}` has {places} digits after the point, more than {} ({}): a \
                 floating-point artefact or a unit mix-up?",
                self.key("max_decimal_places"),
                self.limits.max_decimal_places
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::invoice::tests::raw;
    use crate::domain::{RawInvoice, RawLineItem};

    fn checked(raw: RawInvoice, limits: &RecordLimits) -> Result<(), RecordError> {
        let at = RecordLocator::id("INV-1");
        let invoice = SourceInvoice::parse("erp", at.clone(), raw).unwrap();
        check_limits(&invoice, limits, &at)
    }

    fn line(quantity: &str, unit_price: &str, line_total: Option<&str>) -> RawLineItem {
        RawLineItem {
            sku: Some("W".into()),
            quantity: Some(quantity.into()),
            unit_price: Some(unit_price.into()),
            line_total: line_total.map(Into::into),
            ..RawLineItem::default()
        }
    }

    fn field_of(result: Result<(), RecordError>) -> Option<String> {
        result.err().and_then(|e| e.field.map(String::from))
    }

    #[test]
    fn real_invoices_credit_lines_and_credit_memos_pass() {
        let defaults = RecordLimits::default();
        assert_eq!(checked(raw(), &defaults), Ok(()));
        let mut r = raw();
        r.line_items.push(line("-1", "25.00", None));
        r.line_items.push(line("1", "-5.00", Some("-5.00")));
        r.line_items.push(line("2", "0.00125", Some("0")));
        assert_eq!(checked(r.clone(), &defaults), Ok(()));
        r.total = Some("-110.00".into());
        r.open_balance = Some("-0.000000".into());
        assert_eq!(checked(r, &defaults), Ok(()));
    }

    #[test]
    fn each_limit_names_its_field() {
        let defaults = RecordLimits::default();
        type Breakage = fn(&mut RawInvoice);
        let cases: Vec<(Breakage, &str)> = vec![
            (|r| r.total = Some("1000000000000000".into()), "total"),
            (
                |r| r.open_balance = Some("-1000000000000000".into()),
                "open_balance",
            ),
            (|r| r.tax = Some("0.1000000001".into()), "tax"),
            (|r| r.freight = Some("2000000000000".into()), "freight"),
            (
                |r| r.line_items[0].quantity = Some("1000000001".into()),
                "line_items[0].quantity",
            ),
            (
                |r| r.line_items.push(line("-5", "10", Some("50"))),
                "line_items[1].quantity",
            ),
            (
                |r| r.line_items.push(line("1", "0.30000000000000004", None)),
                "line_items[1].unit_price",
            ),
            (
                |r| r.line_items.push(line("1", "1", Some("-1000000000001"))),
                "line_items[1].line_total",
            ),
        ];
        for (break_it, field) in cases {
            let mut r = raw();
            break_it(&mut r);
            let result = checked(r, &defaults);
            assert_eq!(
                field_of(result.clone()).as_deref(),
                Some(field),
                "{result:?}"
            );
            let e = result.unwrap_err();
            assert!(e.reason.contains("sources.erp.limits."), "{e}");
        }
    }

    #[test]
    fn switches_refuse_negatives_and_allow_opposite_signs() {
        let strict = RecordLimits {
            negative_quantities: false,
            negative_totals: false,
            line_signs_agree: false,
            ..RecordLimits::default()
        };
        let mut r = raw();
        r.line_items.push(line("-1", "10", None));
        assert_eq!(
            field_of(checked(r, &strict)).as_deref(),
            Some("line_items[1].quantity")
        );
        let mut r = raw();
        r.total = Some("-1".into());
        assert_eq!(field_of(checked(r, &strict)).as_deref(), Some("total"));
        let mut r = raw();
        r.line_items.push(line("1", "10", Some("-10")));
        assert_eq!(checked(r, &strict), Ok(()));
    }
}
