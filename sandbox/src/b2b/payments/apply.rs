//! How payments come to be and change status, and the open balances that follow: a buyer pays
//! in the buyer portal, a store admin completes or refunds the payment.
//!
//! Every change is checked in full before anything is written, so a refused control request
//! leaves the store exactly as it was.

use rust_decimal::Decimal;
use serde_json::Value;

use super::{
    next_updated_at, render, PaymentLine, PaymentRecord, MODULE_OFFLINE, STATUS_COMPLETED,
    STATUS_REFUNDED,
};
use crate::b2b::control::{SandboxControl, SandboxError};
use crate::b2b::state::{InvoiceRecord, Money, StoreData, STATUS_COMPLETED as PAID};

const INVOICE_OPEN: u8 = 0;
const INVOICE_PARTIALLY_PAID: u8 = 1;
/// Decimal places the API keeps; a finer amount could not be stored as sent.
const MAX_SCALE: u32 = 4;
const PAYER_NAME: &str = "Sandbox Buyer";
const MEMO: &str = "Paid in the buyer portal";

impl SandboxControl {
    /// A buyer pays `amount` of one invoice in the buyer portal: a completed offline payment
    /// that lowers the invoice's open balance (status 2 once nothing is left open, else 1).
    /// Returns the payment id.
    pub fn pay_invoice(
        &self,
        store_hash: &str,
        invoice_id: u64,
        amount: Decimal,
    ) -> Result<u64, SandboxError> {
        self.pay_invoices(store_hash, &[(invoice_id, amount)])
    }

    /// One completed payment over several invoices of one company, a line per invoice.
    pub fn pay_invoices(
        &self,
        store_hash: &str,
        lines: &[(u64, Decimal)],
    ) -> Result<u64, SandboxError> {
        self.create_payment(store_hash, lines, STATUS_COMPLETED)
    }

    /// A payment in any status but Refunded: 0 Incomplete, 1 Awaiting Processing, 2 Processing,
    /// 3 Completed. Only a completed payment touches open balances (see
    /// [`SandboxControl::set_payment_status`]).
    pub fn create_payment(
        &self,
        store_hash: &str,
        lines: &[(u64, Decimal)],
        processing_status: u8,
    ) -> Result<u64, SandboxError> {
        let now = self.now_unix();
        self.with_store(store_hash, |store| {
            create(store, lines, processing_status, now)
        })
    }

    /// Moves a payment to `processing_status` (0-4) and bumps its `updatedAt`. Becoming
    /// Completed (3) lowers its invoices' open balances; leaving Completed raises them back.
    /// Setting the status it already has changes nothing.
    pub fn set_payment_status(
        &self,
        store_hash: &str,
        payment_id: u64,
        processing_status: u8,
    ) -> Result<(), SandboxError> {
        let now = self.now_unix();
        self.with_store(store_hash, |store| {
            set_status(store, payment_id, processing_status, now)
        })
    }

    /// A store admin refunds the payment: status 4, and a completed payment's amounts go back
    /// onto its invoices' open balances (status 0 when fully open again, else 1).
    pub fn refund_payment(&self, store_hash: &str, payment_id: u64) -> Result<(), SandboxError> {
        let now = self.now_unix();
        self.with_store(store_hash, |store| refund(store, payment_id, now))
    }

    /// All payments of a store as `GET /ip/payments/{id}` renders them, by id.
    pub fn payments(&self, store_hash: &str) -> Result<Vec<Value>, SandboxError> {
        self.with_store(store_hash, |store| {
            Ok(store
                .payments
                .values()
                .map(|payment| render(payment, store))
                .collect())
        })
    }

    pub fn payment(&self, store_hash: &str, id: u64) -> Option<Value> {
        self.with_store(store_hash, |store| {
            Ok(store
                .payments
                .get(&id)
                .map(|payment| render(payment, store)))
        })
        .ok()
        .flatten()
    }
}

pub(crate) fn create(
    store: &mut StoreData,
    lines: &[(u64, Decimal)],
    status: u8,
    now: i64,
) -> Result<u64, SandboxError> {
    if status > STATUS_COMPLETED {
        return Err(invalid(format!(
            "a new payment's processing status must be 0 to 3, not {status} (refund it afterwards)"
        )));
    }
    let Some(&(first_id, _)) = lines.first() else {
        return Err(invalid("a payment needs at least one invoice".into()));
    };
    let first = find_invoice(store, first_id)?;
    let mut paid = Vec::with_capacity(lines.len());
    let mut total = Decimal::ZERO;
    for (index, &(invoice_id, amount)) in lines.iter().enumerate() {
        if lines[..index].iter().any(|(seen, _)| *seen == invoice_id) {
            return Err(invalid(format!(
                "invoice {invoice_id} appears twice in one payment"
            )));
        }
        let invoice = find_invoice(store, invoice_id)?;
        if invoice.customer_id != first.customer_id {
            return Err(invalid(format!(
                "invoice {} belongs to company {}, not {}: one payment pays one company's invoices",
                invoice.invoice_number, invoice.customer_id, first.customer_id
            )));
        }
        let line = PaymentLine {
            invoice_id,
            invoice_number: invoice.invoice_number.clone(),
            amount: Money {
                code: invoice.open_balance.code.clone(),
                value: amount,
            },
        };
        if line.amount.code != first.open_balance.code {
            return Err(invalid(format!(
                "invoice {} is in {}, not {}: one payment has one currency",
                invoice.invoice_number, line.amount.code, first.open_balance.code
            )));
        }
        check_payable(invoice, &line.amount)?;
        total = total
            .checked_add(amount)
            .ok_or_else(|| invalid("the payment's total is out of range".into()))?;
        paid.push(line);
    }
    let id = store.next_payment_id;
    let payment = PaymentRecord {
        id,
        customer_id: first.customer_id,
        external_customer_id: first.external_customer_id.clone(),
        payer_name: PAYER_NAME.to_owned(),
        memo: MEMO.to_owned(),
        module_name: MODULE_OFFLINE.to_owned(),
        processing_status: status,
        total: Money {
            code: first.open_balance.code.clone(),
            value: total,
        },
        lines: paid,
        channel_id: first.channel_id,
        created_at: now,
        updated_at: now,
    };
    if payment.is_applied() {
        let balances = lowered_balances(store, &payment.lines)?;
        write_balances(store, balances, now);
    }
    store.next_payment_id += 1;
    store.payments.insert(id, payment);
    Ok(id)
}

pub(crate) fn set_status(
    store: &mut StoreData,
    payment_id: u64,
    status: u8,
    now: i64,
) -> Result<(), SandboxError> {
    if status > STATUS_REFUNDED {
        return Err(invalid(format!(
            "processing status must be 0 to 4, not {status}"
        )));
    }
    let payment = find_payment(store, payment_id)?;
    if payment.processing_status == status {
        return Ok(());
    }
    let completing = status == STATUS_COMPLETED;
    let balances = if completing && !payment.is_applied() {
        lowered_balances(store, &payment.lines)?
    } else if payment.is_applied() && !completing {
        raised_balances(store, &payment.lines)?
    } else {
        Vec::new()
    };
    write_balances(store, balances, now);
    if let Some(payment) = store.payments.get_mut(&payment_id) {
        payment.processing_status = status;
        payment.updated_at = next_updated_at(payment.updated_at, now);
    }
    Ok(())
}

pub(crate) fn refund(store: &mut StoreData, payment_id: u64, now: i64) -> Result<(), SandboxError> {
    if find_payment(store, payment_id)?.processing_status == STATUS_REFUNDED {
        return Err(invalid(format!("payment {payment_id} is already refunded")));
    }
    set_status(store, payment_id, STATUS_REFUNDED, now)
}

fn find_invoice(store: &StoreData, id: u64) -> Result<&InvoiceRecord, SandboxError> {
    store.invoices.get(&id).ok_or(SandboxError::UnknownInvoice {
        store: store.hash.clone(),
        id,
    })
}

fn find_payment(store: &StoreData, id: u64) -> Result<&PaymentRecord, SandboxError> {
    store.payments.get(&id).ok_or(SandboxError::UnknownPayment {
        store: store.hash.clone(),
        id,
    })
}

fn invalid(message: String) -> SandboxError {
    SandboxError::Invalid(message)
}

/// A buyer can pay a positive amount, in the invoice's currency, up to what is still open.
fn check_payable(invoice: &InvoiceRecord, amount: &Money) -> Result<(), SandboxError> {
    let number = &invoice.invoice_number;
    if amount.value <= Decimal::ZERO {
        return Err(invalid(format!(
            "a payment to invoice {number} must be positive, not {}",
            amount.value
        )));
    }
    if amount.value.normalize().scale() > MAX_SCALE {
        return Err(invalid(format!(
            "a payment to invoice {number} has more than {MAX_SCALE} decimal places: {}",
            amount.value
        )));
    }
    if amount.code != invoice.open_balance.code {
        return Err(invalid(format!(
            "a payment in {} cannot pay invoice {number}, which is in {}",
            amount.code, invoice.open_balance.code
        )));
    }
    if amount.value > invoice.open_balance.value {
        return Err(invalid(format!(
            "a payment of {} exceeds the open balance {} of invoice {number}",
            amount.value, invoice.open_balance.value
        )));
    }
    Ok(())
}

/// The open balances once the lines are paid; every invoice must still exist and owe that much.
fn lowered_balances(
    store: &StoreData,
    lines: &[PaymentLine],
) -> Result<Vec<(u64, Decimal)>, SandboxError> {
    lines
        .iter()
        .map(|line| {
            let invoice = find_invoice(store, line.invoice_id)?;
            check_payable(invoice, &line.amount)?;
            Ok((
                line.invoice_id,
                invoice.open_balance.value - line.amount.value,
            ))
        })
        .collect()
}

/// The open balances once the lines are given back. An invoice deleted since has nothing left
/// to restore.
fn raised_balances(
    store: &StoreData,
    lines: &[PaymentLine],
) -> Result<Vec<(u64, Decimal)>, SandboxError> {
    lines
        .iter()
        .filter_map(|line| Some((line, store.invoices.get(&line.invoice_id)?)))
        .map(|(line, invoice)| {
            let raised = invoice
                .open_balance
                .value
                .checked_add(line.amount.value)
                .ok_or_else(|| {
                    invalid(format!(
                        "the open balance of invoice {} would be out of range",
                        invoice.invoice_number
                    ))
                })?;
            Ok((line.invoice_id, raised))
        })
        .collect()
}

fn write_balances(store: &mut StoreData, balances: Vec<(u64, Decimal)>, now: i64) {
    for (id, balance) in balances {
        if let Some(invoice) = store.invoices.get_mut(&id) {
            invoice.open_balance.value = balance;
            invoice.status = status_after_payment(invoice);
            invoice.updated_at = next_updated_at(invoice.updated_at, now);
        }
    }
}

/// What a payment or its refund leaves an invoice as: paid, untouched, or partly paid.
fn status_after_payment(invoice: &InvoiceRecord) -> u8 {
    let open = invoice.open_balance.value;
    if open <= Decimal::ZERO {
        PAID
    } else if open >= invoice.original_balance.value {
        INVOICE_OPEN
    } else {
        INVOICE_PARTIALLY_PAID
    }
}
