//! Seeded invoices, generated from their index on demand: invoice `i` is a pure function of `i`
//! and the seed parameters, so 100 000 of them cost no memory until someone changes one.
//!
//! Invoice `i` (1-based) has remoteId [`remote_id`]`(i)`, number `INV-{i:06}`, customer
//! `CUST-{((i-1) % customers)+1:05}` (the B2B sandbox's companies carry these in their
//! "ERP Customer ID" extra field), `remoteUpdatedAt` = epoch + (i-1) x spacing, and:
//! - currency by `i % 10`: USD (0, 1, 3, 5, 7), EUR (2), GBP (4), JPY (6), KWD (8), CAD (9);
//! - `1 + i % 3` lines; tax 8 % unless `i % 3 == 0`; a 5 % discount when `i % 4 == 0`;
//! - paid in full when `i % 5 == 0`, half paid when `i % 7 == 0`, else open;
//! - a purchase order `PO-{i:05}` on odd `i`; no due date (0) when `i % 6 == 0`.
//!
//! Dates are Unix seconds (the response schema of 004 types them as integers); `subTotal` and
//! `totalDiscount` are strings and the other amounts numbers, as the schema has them.

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::{json, Map, Number, Value};

const DAY_SECS: i64 = 24 * 60 * 60;
const REMOTE_ID_PREFIX: &str = "rmt-";

/// The remoteId of seeded (or sandbox-created) invoice `index`.
pub fn remote_id(index: u64) -> String {
    format!("{REMOTE_ID_PREFIX}{index:06}")
}

/// The index behind a remoteId of [`remote_id`]'s form (exactly that form: `rmt-01` is not 1).
pub(crate) fn index_of(id: &str) -> Option<u64> {
    let index: u64 = id.strip_prefix(REMOTE_ID_PREFIX)?.parse().ok()?;
    (remote_id(index) == id).then_some(index)
}

/// What the seeded invoices are generated from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seed {
    pub count: u64,
    pub customers: u64,
    pub epoch_ms: i64,
    pub spacing_ms: i64,
}

impl Seed {
    /// `remoteUpdatedAt` of seeded invoice `index`, in Unix milliseconds.
    pub(crate) fn stamp(&self, index: u64) -> i64 {
        let steps = i64::try_from(index.saturating_sub(1)).unwrap_or(i64::MAX);
        self.epoch_ms
            .saturating_add(steps.saturating_mul(self.spacing_ms))
    }

    /// The first seeded index whose stamp is at or after `stamp_ms` (may be beyond `count`).
    pub(crate) fn first_at_or_after(&self, stamp_ms: i64) -> u64 {
        if stamp_ms <= self.epoch_ms {
            return 1;
        }
        let offset = stamp_ms.saturating_sub(self.epoch_ms);
        let steps = offset.saturating_add(self.spacing_ms - 1) / self.spacing_ms;
        u64::try_from(steps).unwrap_or(u64::MAX).saturating_add(1)
    }

    /// The latest seeded stamp (`None` without seeded invoices).
    pub(crate) fn last_stamp(&self) -> Option<i64> {
        (self.count > 0).then(|| self.stamp(self.count))
    }

    /// Invoice `index` as the API renders it, with `remoteUpdatedAt` at `stamp_ms`.
    pub(crate) fn invoice(&self, index: u64, stamp_ms: i64) -> Value {
        let i = index;
        let currency = currency(i);
        let digits = digits(currency);
        let id = remote_id(i);
        let stamp = rfc3339(stamp_ms);
        let line_count = 1 + i % 3;
        let mut subtotal = Decimal::ZERO;
        let lines: Vec<Value> = (0..line_count)
            .map(|k| {
                let base = 1_999 + i64::try_from((i * 731 + k * 97) % 50_000).unwrap_or(0);
                let unit = Decimal::new(base, digits);
                let quantity = 1 + (i + k) % 4;
                let total = unit * Decimal::from(quantity);
                subtotal += total;
                json!({
                    "id": format!("{id}-L{}", k + 1),
                    "remoteId": format!("{id}-L{}", k + 1),
                    "description": format!("Seed product {}", (i + k) % 40),
                    "unitPrice": number(unit),
                    "quantity": quantity,
                    "totalAmount": number(total),
                    "currency": currency,
                    "exchangeRate": null,
                    "accountingItemId": format!("ITEM-{:03}", (i + k) % 40),
                    "accountId": "4000",
                    "trackingCategoryId": null,
                    "trackingCategoryIds": [],
                    "companyId": null,
                })
            })
            .collect();
        let tax = if i % 3 == 0 {
            Decimal::ZERO
        } else {
            (subtotal * Decimal::new(8, 2)).round_dp(digits)
        };
        let discount = if i % 4 == 0 {
            (subtotal * Decimal::new(5, 2)).round_dp(digits)
        } else {
            Decimal::ZERO
        };
        let total = subtotal + tax - discount;
        let (balance, status) = if i % 5 == 0 {
            (Decimal::ZERO, "PAID")
        } else if i % 7 == 0 {
            (
                (total / Decimal::from(2)).round_dp(digits),
                "PARTIALLY_PAID",
            )
        } else {
            (total, "OPEN")
        };
        let issue_secs = stamp_ms.div_euclid(1000).div_euclid(DAY_SECS) * DAY_SECS;
        let due_secs = if i % 6 == 0 {
            0
        } else {
            issue_secs + 30 * DAY_SECS
        };
        let purchase_orders = if i % 2 == 1 {
            json!([{ "id": format!("po-{i}"), "number": format!("PO-{i:05}") }])
        } else {
            json!([])
        };
        let customer = (i - 1) % self.customers.max(1) + 1;
        let mut invoice = Map::new();
        let mut put = |key: &str, value: Value| {
            invoice.insert(key.to_owned(), value);
        };
        put("id", json!(id));
        put("remoteId", json!(id));
        put("customerId", json!(format!("CUST-{customer:05}")));
        put("invoiceNumber", json!(format!("INV-{i:06}")));
        put("issueDate", json!(issue_secs));
        put("dueDate", json!(due_secs));
        put(
            "paidOnDate",
            if status == "PAID" {
                json!(issue_secs + DAY_SECS)
            } else {
                Value::Null
            },
        );
        put(
            "memo",
            if i % 2 == 0 {
                json!("Thank you for your business")
            } else {
                Value::Null
            },
        );
        put("companyId", Value::Null);
        put("currency", json!(currency));
        put(
            "exchangeRate",
            if currency == "USD" {
                Value::Null
            } else {
                json!(1.1)
            },
        );
        put("totalDiscount", json!(render(discount, digits)));
        put("subTotal", json!(render(subtotal, digits)));
        put("invoiceStatus", json!(status));
        put("totalTaxAmount", number(tax));
        put("totalAmount", number(total));
        put("balance", number(balance));
        put("trackingCategories", json!([]));
        put("lineItems", Value::Array(lines));
        put("purchaseOrders", purchase_orders);
        put(
            "remoteFields",
            json!({ "Terms": "Net 30", "SalesRep": format!("Rep {}", i % 5), "ClassId": i % 12 }),
        );
        put("remoteCreatedAt", json!(stamp));
        put("remoteUpdatedAt", json!(stamp));
        put("remoteDeleted", json!(false));
        put("createdAt", json!(stamp));
        put("updatedAt", json!(stamp));
        Value::Object(invoice)
    }
}

fn currency(index: u64) -> &'static str {
    match index % 10 {
        2 => "EUR",
        4 => "GBP",
        6 => "JPY",
        8 => "KWD",
        9 => "CAD",
        _ => "USD",
    }
}

fn digits(currency: &str) -> u32 {
    match currency {
        "JPY" => 0,
        "KWD" => 3,
        _ => 2,
    }
}

/// An amount as a JSON number. Seeded amounts have at most 3 decimals and 9 digits, well within
/// what a double holds exactly enough for its shortest form to read back as written.
pub(crate) fn number(amount: Decimal) -> Value {
    if amount.fract().is_zero() {
        if let Some(whole) = amount.to_i64() {
            return Value::from(whole);
        }
    }
    amount
        .to_f64()
        .and_then(Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// An amount as text with the currency's decimals (`"12.50"`, `"1200"`, `"3.250"`).
fn render(amount: Decimal, digits: u32) -> String {
    let mut rounded = amount.round_dp(digits);
    rounded.rescale(digits);
    rounded.to_string()
}

/// Unix milliseconds as RFC 3339 with milliseconds, in UTC.
pub(crate) fn rfc3339(stamp_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(stamp_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: Seed = Seed {
        count: 100,
        customers: 10,
        epoch_ms: 1_767_225_600_000,
        spacing_ms: 60_000,
    };

    #[test]
    fn ids_round_trip_only_in_their_exact_form() {
        assert_eq!(remote_id(7), "rmt-000007");
        assert_eq!(index_of("rmt-000007"), Some(7));
        assert_eq!(index_of("rmt-1234567"), Some(1_234_567));
        assert_eq!(index_of("rmt-07"), None);
        assert_eq!(index_of("INV-000007"), None);
    }

    #[test]
    fn stamps_are_ascending_and_searchable() {
        assert_eq!(SEED.stamp(1), SEED.epoch_ms);
        assert_eq!(SEED.stamp(3), SEED.epoch_ms + 120_000);
        assert_eq!(SEED.first_at_or_after(SEED.epoch_ms - 5), 1);
        assert_eq!(SEED.first_at_or_after(SEED.stamp(3)), 3);
        assert_eq!(SEED.first_at_or_after(SEED.stamp(3) + 1), 4);
        assert_eq!(SEED.last_stamp(), Some(SEED.stamp(100)));
    }

    #[test]
    fn invoices_are_deterministic_and_add_up() {
        let a = SEED.invoice(8, SEED.stamp(8));
        assert_eq!(a, SEED.invoice(8, SEED.stamp(8)));
        assert_eq!(a["currency"], "KWD");
        assert_eq!(a["customerId"], "CUST-00008");
        assert_eq!(a["remoteUpdatedAt"], "2026-01-01T00:07:00.000Z");
        let lines = a["lineItems"].as_array().unwrap();
        assert_eq!(lines.len(), 3);
        let sum: Decimal = lines
            .iter()
            .map(|l| l["totalAmount"].to_string().parse::<Decimal>().unwrap())
            .sum();
        assert_eq!(
            a["subTotal"].as_str().unwrap().parse::<Decimal>().unwrap(),
            sum
        );
        assert_eq!(
            a["subTotal"]
                .as_str()
                .unwrap()
                .split('.')
                .nth(1)
                .map(str::len),
            Some(3)
        );
        let jpy = SEED.invoice(6, SEED.stamp(6));
        assert_eq!(jpy["currency"], "JPY");
        assert!(!jpy["subTotal"].as_str().unwrap().contains('.'));
        assert_eq!(jpy["dueDate"], 0);
        assert_eq!(SEED.invoice(5, 0)["balance"], 0.0);
        assert_eq!(SEED.invoice(11, 0)["customerId"], "CUST-00001");
    }
}
