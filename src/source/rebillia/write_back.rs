//! Payments written back to Rebillia: `POST /invoices/{id}/charge {amount (cents),
//! paymentType: "offlinePaymentProvider"}`, the call the reference client makes for a payment
//! taken elsewhere.
//!
//! - Rebillia takes charges (and updates) only on `posted` or `requestPayment` invoices: any
//!   other status is a `Skip` naming it. So are a payment larger than the balance due, an
//!   amount finer than a cent, and a currency other than the invoice's.
//! - Refunds are a `Skip`: 003 and the reference client have no refund call, so a refund must
//!   be entered in Rebillia by hand.
//! - The reference goes into `comments` (`"<comments> | <reference>"`) when the source's
//!   `reference_field` is `comments`, with `PUT /invoices/{id}` *before* the charge: a charge
//!   that pays the invoice in full turns it `paid`, and a `paid` invoice takes no update. The
//!   comment is best effort: when it fails the charge still goes, and the note says so. It is
//!   not added twice (a retried write finds it there).
//! - A charge is not idempotent: one that timed out after sending, lost its connection or got
//!   a 5xx other than 503 is `Ambiguous` and never sent again here. Failures of the reads are
//!   never `Ambiguous`.

use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::amounts::AmountPolicy;
use super::client::{ClientError, Request};
use super::convert::{balance_amounts, currency_code, decimal_to_cents};
use super::RebilliaSource;
use crate::domain::Currency;
use crate::source::write_back::{
    ErpBalance, PaymentKind, PaymentWrite, PaymentWriter, WriteBackError, Written,
};

/// Statuses Rebillia takes charges and updates on (api-docs 003).
const CHARGEABLE: [&str; 2] = ["posted", "requestPayment"];
/// How the charge says the money was taken: outside Rebillia's gateways.
const PAYMENT_TYPE: &str = "offlinePaymentProvider";
/// The only `reference_field` Rebillia can hold.
const COMMENTS: &str = "comments";

/// What the write-back reads of an invoice.
#[derive(Debug, Clone, PartialEq)]
struct Invoice {
    number: Option<String>,
    status: Option<String>,
    currency: Option<String>,
    total: Decimal,
    balance_due: Decimal,
    comments: Option<String>,
}

impl Invoice {
    /// The invoice as `GET /invoices/{id}?include=detail` answers it, its amounts read the way
    /// the sync reads them (`policy`), so the balance compared here is the one pushed to B2B.
    fn read(value: &Value, policy: AmountPolicy) -> Result<Self, String> {
        let text = |key: &str| {
            value
                .get(key)
                .and_then(|v| match v {
                    Value::String(s) => Some(s.trim().to_owned()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .filter(|t| !t.is_empty())
        };
        let (total, balance_due) = balance_amounts(value, policy)?;
        Ok(Self {
            number: text("invoiceNo"),
            status: text("status"),
            currency: currency_code(value),
            total,
            balance_due,
            comments: value
                .get("comments")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    fn chargeable(&self) -> bool {
        self.status
            .as_deref()
            .is_some_and(|s| CHARGEABLE.iter().any(|c| c.eq_ignore_ascii_case(s)))
    }
}

/// `GET /invoices/{id}` answers the invoice, or `{data: invoice}`.
fn unwrap_single(value: Value) -> Value {
    match value {
        Value::Object(mut object) if !object.contains_key("id") => {
            object.remove("data").unwrap_or(Value::Object(object))
        }
        other => other,
    }
}

/// The comments with the reference appended; `None` when it is already there.
fn comments_with(existing: Option<&str>, reference: &str) -> Option<String> {
    match existing.map(str::trim).filter(|c| !c.is_empty()) {
        Some(existing) if existing.contains(reference) => None,
        Some(existing) => Some(format!("{existing} | {reference}")),
        None => Some(reference.to_owned()),
    }
}

/// Why this payment cannot be charged, when it cannot (`Some(reason)`), else its cents.
fn charge_plan(invoice: &Invoice, event: &PaymentWrite, who: &str) -> Result<i64, String> {
    if !invoice.chargeable() {
        return Err(format!(
            "{who} is {}: Rebillia takes payments only on posted or requestPayment invoices",
            invoice.status.as_deref().unwrap_or("without a status")
        ));
    }
    if let Some(code) = &invoice.currency {
        if Currency::parse(code).ok() != Some(event.currency) {
            return Err(format!(
                "{who} is in {code} but the payment is in {}",
                event.currency
            ));
        }
    }
    let cents = decimal_to_cents(event.amount)
        .filter(|&c| c >= 1)
        .ok_or_else(|| {
            format!(
                "the payment of {} {} is not a positive whole number of cents, which is all a \
                 Rebillia charge takes",
                event.amount, event.currency
            )
        })?;
    if event.amount > invoice.balance_due {
        return Err(format!(
            "the payment of {} {} is more than the balance due of {who} ({}), and Rebillia \
             takes no overpayment",
            event.amount, event.currency, invoice.balance_due
        ));
    }
    Ok(cents)
}

/// A failed read: never `Ambiguous`.
fn read_error(who: &str, err: ClientError) -> WriteBackError {
    match err {
        ClientError::NotFound { message, .. } => WriteBackError::Rejected {
            status: 404,
            message: format!("{who} is gone from Rebillia ({message})"),
        },
        ClientError::Unauthorized {
            status, message, ..
        }
        | ClientError::Rejected {
            status, message, ..
        } => WriteBackError::Rejected {
            status,
            message: format!("{who}: {message}"),
        },
        ClientError::Unavailable { .. } => WriteBackError::NotSent {
            message: format!("{who}: {err}"),
        },
        ClientError::Decode { message, .. } => unreadable(who, message),
    }
}

/// A failed mutation. `Ok` for a 2xx with an unreadable body: it was applied all the same.
fn write_error(who: &str, err: ClientError) -> Result<(), WriteBackError> {
    Err(match err {
        ClientError::Decode { .. } => return Ok(()),
        ClientError::Unavailable {
            maybe_applied: true,
            ..
        } => WriteBackError::Ambiguous {
            message: format!("{who}: {err}"),
        },
        other => read_error(who, other),
    })
}

fn unreadable(who: &str, message: String) -> WriteBackError {
    WriteBackError::Rejected {
        status: 200,
        message: format!("{who}: unexpected answer: {message}"),
    }
}

impl RebilliaSource {
    async fn fetch_for_write_back(&self, id: &str, who: &str) -> Result<Invoice, WriteBackError> {
        // With its lines: the unit of its amounts is told by their arithmetic.
        let request = Request::get("GET /invoices/{id}", &["invoices", id])
            .query(vec![("include", "detail".to_owned())]);
        let value = self
            .client
            .send(&request)
            .await
            .map_err(|err| read_error(who, err))?;
        Invoice::read(&unwrap_single(value), self.amount_policy())
            .map_err(|message| unreadable(who, message))
    }

    /// Appends the reference to `comments`; `Err` (already logged) says why it could not.
    async fn add_reference(
        &self,
        event: &PaymentWrite,
        invoice: &Invoice,
        who: &str,
    ) -> Result<(), String> {
        let Some(comments) = comments_with(invoice.comments.as_deref(), &event.reference) else {
            return Ok(());
        };
        let request = Request::with_body(
            Method::PUT,
            "PUT /invoices/{id}",
            &["invoices", &event.external_id],
            json!({ COMMENTS: comments }),
        );
        let result = match self.client.send(&request).await {
            Ok(_) => Ok(()),
            Err(err) => write_error(who, err).map_err(|e| e.to_string()),
        };
        if let Err(error) = &result {
            tracing::warn!(source = %self.name, invoice = %who, %error, "the payment reference could not be added to the Rebillia comments; charging all the same");
        }
        result
    }
}

#[async_trait::async_trait]
impl PaymentWriter for RebilliaSource {
    async fn current(&self, external_id: &str) -> Result<Option<ErpBalance>, WriteBackError> {
        let who = format!("Rebillia invoice {external_id}");
        let invoice = self.fetch_for_write_back(external_id, &who).await?;
        Ok(Some(ErpBalance {
            total: invoice.total,
            balance: invoice.balance_due,
            status: invoice.status,
        }))
    }

    async fn write(&self, event: &PaymentWrite) -> Result<Written, WriteBackError> {
        if event.kind == PaymentKind::Refund {
            return Err(WriteBackError::Skip {
                reason: format!(
                    "refunds must be entered in Rebillia by hand: its API has no refund call \
                     (refund of {} {} for Rebillia invoice {} ({}), B2B payment {})",
                    event.amount,
                    event.currency,
                    event.external_id,
                    event.invoice_number,
                    event.payment_id
                ),
            });
        }
        let fetch_who = format!(
            "Rebillia invoice {} ({})",
            event.external_id, event.invoice_number
        );
        let invoice = self
            .fetch_for_write_back(&event.external_id, &fetch_who)
            .await?;
        let who = format!(
            "Rebillia invoice {} (number {})",
            event.external_id,
            invoice.number.as_deref().unwrap_or(&event.invoice_number)
        );
        let cents =
            charge_plan(&invoice, event, &who).map_err(|reason| WriteBackError::Skip { reason })?;
        let mut note = format!(
            "POST charge {cents} cents ({} {})",
            event.amount, event.currency
        );
        match event.reference_field.as_deref() {
            None => {}
            Some(COMMENTS) => match self.add_reference(event, &invoice, &who).await {
                Ok(()) => note.push_str(&format!(", comments + {}", event.reference)),
                Err(error) => note.push_str(&format!(" (comments not updated: {error})")),
            },
            Some(other) => {
                tracing::warn!(source = %self.name, field = other, "Rebillia holds a payment reference only in `comments`; reference_field ignored");
            }
        }
        let request = Request::with_body(
            Method::POST,
            "POST /invoices/{id}/charge",
            &["invoices", &event.external_id, "charge"],
            json!({ "amount": cents, "paymentType": PAYMENT_TYPE }),
        );
        if let Err(err) = self.client.send(&request).await {
            write_error(&who, err)?;
        }
        tracing::info!(source = %self.name, invoice = %who, event_id = event.event_id, %note, "payment written to Rebillia");
        Ok(Written { note })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    fn invoice(status: &str) -> Invoice {
        Invoice {
            number: Some("RB-000007".to_owned()),
            status: Some(status.to_owned()),
            currency: Some("USD".to_owned()),
            total: dec("100.00"),
            balance_due: dec("80.00"),
            comments: None,
        }
    }

    fn event(amount: &str) -> PaymentWrite {
        PaymentWrite {
            event_id: 3,
            external_id: "1007".to_owned(),
            invoice_number: "RB-000007".to_owned(),
            kind: PaymentKind::Payment,
            payment_id: 117,
            b2b_invoice_id: 9,
            amount: dec(amount),
            currency: Currency::parse("USD").unwrap(),
            target_balance: dec("0"),
            reference: "b2b-payment-117".to_owned(),
            reference_field: Some("comments".to_owned()),
            occurred_at: chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap(),
        }
    }

    #[test]
    fn invoices_read_in_cents_and_unwrap() {
        let value = unwrap_single(json!({"data": {
            "id": "1007", "invoiceNo": "RB-000007", "status": "posted",
            "currency": {"iso3": "USD"}, "total": 10000, "balanceDue": "8000", "comments": "Hi",
            "detail": [{"amount": 5000, "qty": 2}]
        }}));
        let auto = AmountPolicy::default();
        let want = Invoice {
            comments: Some("Hi".to_owned()),
            ..invoice("posted")
        };
        assert_eq!(Invoice::read(&value, auto), Ok(want.clone()));
        assert!(Invoice::read(
            &json!({"total": 1, "detail": [{"amount": 1, "qty": 1}]}),
            auto
        )
        .unwrap_err()
        .contains("`balanceDue` is missing"));
        assert!(Invoice::read(&json!({"total": 1}), auto)
            .unwrap_err()
            .contains("`detail` is missing"));

        // The same invoice in dollars reads the same: a charge still goes in cents.
        let dollars = json!({
            "id": "1007", "invoiceNo": "RB-000007", "status": "posted",
            "currency": {"iso3": "USD"}, "total": "100.00", "balanceDue": "80.00",
            "comments": "Hi", "detail": [{"amount": "50.00", "qty": 2}]
        });
        assert_eq!(Invoice::read(&dollars, auto), Ok(want.clone()));
        let who = "Rebillia invoice 1007 (number RB-000007)";
        let from_dollars = Invoice::read(&dollars, auto).unwrap();
        assert_eq!(charge_plan(&from_dollars, &event("40.50"), who), Ok(4050));
        // Whole dollars, told apart by a source that showed dollars before.
        let whole_dollars = json!({
            "id": "1007", "invoiceNo": "RB-000007", "status": "posted",
            "currency": {"iso3": "USD"}, "total": 100, "balanceDue": 80,
            "comments": "Hi", "detail": [{"amount": 50, "qty": 2}]
        });
        let shown_dollars = AmountPolicy {
            fallback: crate::source::rebillia::AmountUnit::Dollars,
            ..auto
        };
        assert_eq!(Invoice::read(&whole_dollars, shown_dollars), Ok(want));
        // An invoice whose amounts do not add up is not charged blindly.
        let broken =
            json!({"total": 10000, "balanceDue": 100, "detail": [{"amount": 1, "qty": 1}]});
        let err = Invoice::read(&broken, auto).unwrap_err();
        assert!(
            err.contains("add up neither in cents nor in dollars"),
            "{err}"
        );
    }

    #[test]
    fn only_posted_and_request_payment_invoices_take_charges() {
        let who = "Rebillia invoice 1007 (number RB-000007)";
        assert_eq!(
            charge_plan(&invoice("posted"), &event("40.50"), who),
            Ok(4050)
        );
        assert_eq!(
            charge_plan(&invoice("requestPayment"), &event("80"), who),
            Ok(8000)
        );
        assert_eq!(
            charge_plan(&invoice("paid"), &event("1"), who).unwrap_err(),
            "Rebillia invoice 1007 (number RB-000007) is paid: Rebillia takes payments only on \
             posted or requestPayment invoices"
        );
        assert!(charge_plan(&invoice("posted"), &event("80.01"), who)
            .unwrap_err()
            .contains("no overpayment"));
        assert!(charge_plan(&invoice("posted"), &event("1.005"), who)
            .unwrap_err()
            .contains("whole number of cents"));
        let mut eur = invoice("posted");
        eur.currency = Some("EUR".to_owned());
        assert!(charge_plan(&eur, &event("1"), who)
            .unwrap_err()
            .contains("is in EUR but the payment is in USD"));
    }

    #[test]
    fn cents_are_exact_hundredths() {
        assert_eq!(decimal_to_cents(dec("40.5")), Some(4050));
        assert_eq!(decimal_to_cents(dec("4100")), Some(410_000));
        assert_eq!(decimal_to_cents(dec("1.005")), None);
        assert_eq!(decimal_to_cents(Decimal::MAX), None);
    }

    #[test]
    fn the_reference_is_appended_once() {
        assert_eq!(comments_with(None, "r-1").as_deref(), Some("r-1"));
        assert_eq!(comments_with(Some("  "), "r-1").as_deref(), Some("r-1"));
        assert_eq!(
            comments_with(Some("Thanks"), "r-1").as_deref(),
            Some("Thanks | r-1")
        );
        assert_eq!(comments_with(Some("Thanks | r-1"), "r-1"), None);
    }

    #[test]
    fn ambiguous_only_for_mutations_that_may_have_been_applied() {
        let unavailable = |maybe_applied| ClientError::Unavailable {
            label: "POST /invoices/{id}/charge",
            attempts: 1,
            message: "HTTP 500".to_owned(),
            maybe_applied,
        };
        assert!(matches!(
            write_error("x", unavailable(true)),
            Err(WriteBackError::Ambiguous { .. })
        ));
        assert!(matches!(
            write_error("x", unavailable(false)),
            Err(WriteBackError::NotSent { .. })
        ));
        assert!(matches!(
            read_error("x", unavailable(true)),
            WriteBackError::NotSent { .. }
        ));
        assert!(write_error(
            "x",
            ClientError::Decode {
                label: "x",
                message: "not JSON".to_owned()
            }
        )
        .is_ok());
        assert!(matches!(
            write_error(
                "x",
                ClientError::NotFound {
                    label: "x",
                    message: "gone".to_owned()
                }
            ),
            Err(WriteBackError::Rejected { status: 404, .. })
        ));
    }
}
