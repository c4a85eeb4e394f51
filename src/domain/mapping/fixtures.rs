//! Fixtures of the mapping tests, shared with the tests of the B2B requests built from a desired
//! invoice (`b2b::requests`).

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::domain::invoice::{RawAddress, RawInvoice, RawLineItem, SourceInvoice};
use crate::domain::money::Currency;
use crate::domain::policy::{MappingSettings, SourceField};
use crate::domain::record::RecordLocator;

pub(crate) fn parse(raw: RawInvoice) -> SourceInvoice {
    SourceInvoice::parse("erp", RecordLocator::id("x"), raw).expect("valid raw invoice")
}

pub(crate) fn sample_raw() -> RawInvoice {
    RawInvoice {
        external_id: Some("INV-1".into()),
        external_customer_id: Some("CUST-00001".into()),
        invoice_number: Some("1001".into()),
        kind: None,
        currency: Some("EUR".into()),
        issue_date: Some("2026-11-01".into()),
        due_date: Some("2026-12-01".into()),
        total: Some("118.00".into()),
        open_balance: Some("50.00".into()),
        subtotal: Some("100.00".into()),
        tax: Some("19.00".into()),
        freight: Some("4.00".into()),
        discount: Some("5.00".into()),
        line_items: vec![
            RawLineItem {
                sku: Some("A".into()),
                description: Some("Widget".into()),
                quantity: Some("3".into()),
                unit_price: Some("20.00".into()),
                line_total: Some("54.00".into()),
            },
            RawLineItem {
                sku: Some("B".into()),
                description: Some("Gadget".into()),
                quantity: Some("2".into()),
                unit_price: Some("23.00".into()),
                line_total: None,
            },
        ],
        billing_address: Some(RawAddress {
            first_name: Some("Ann".into()),
            company: Some("Acme GmbH".into()),
            city: Some("Berlin".into()),
            ..RawAddress::default()
        }),
        po_number: Some("PO-9".into()),
        terms: Some("Net 30".into()),
        memo: Some("thanks".into()),
        pdf_url: Some("https://erp.example/1.pdf".into()),
        extra_fields: BTreeMap::from([("rep".to_owned(), "Jo".to_owned())]),
        ..RawInvoice::default()
    }
}

pub(crate) fn settings() -> MappingSettings {
    MappingSettings {
        timezone: chrono_tz::Europe::Berlin,
        extra_fields: BTreeMap::from([
            ("Sales Rep".to_owned(), SourceField::Extra("rep".into())),
            ("ERP Sync Source".to_owned(), SourceField::SourceName),
        ]),
        ..MappingSettings::default()
    }
}

const CURRENCIES: [&str; 6] = ["USD", "EUR", "JPY", "KWD", "BHD", "CLP"];

/// A consistent invoice in minor units: line totals with per-unit discounts, subtotal = sum of
/// lines, total = subtotal + freight + tax - discount.
pub(crate) fn arb_invoice() -> impl Strategy<Value = RawInvoice> {
    let line = (1i64..500, 0i64..10_000_000, 0i64..100)
        .prop_map(|(qty, price, disc_pct)| (qty, price, price * disc_pct / 100));
    (
        prop::sample::select(CURRENCIES.to_vec()),
        prop::collection::vec(line, 0..6),
        0i64..1_000_000,
        0i64..1_000_000,
        0i64..1_000_000,
        0u8..=100,
    )
        .prop_map(|(code, lines, tax, freight, discount, open_pct)| {
            let c = Currency::parse(code).expect("known code");
            let m = |minor: i64| c.from_minor_units(minor).to_string();
            let subtotal: i64 = lines.iter().map(|(q, p, d)| q * (p - d)).sum();
            let total = subtotal + tax + freight - discount;
            let open = total * i64::from(open_pct) / 100;
            RawInvoice {
                external_id: Some("P-1".into()),
                external_customer_id: Some("C".into()),
                invoice_number: Some("N-1".into()),
                currency: Some(code.into()),
                total: Some(m(total)),
                open_balance: Some(m(open)),
                subtotal: Some(m(subtotal)),
                tax: Some(m(tax)),
                freight: Some(m(freight)),
                discount: Some(m(discount)),
                line_items: lines
                    .iter()
                    .map(|(q, p, d)| RawLineItem {
                        sku: Some("S".into()),
                        description: None,
                        quantity: Some(q.to_string()),
                        unit_price: Some(m(*p)),
                        line_total: Some(m(q * (p - d))),
                    })
                    .collect(),
                ..RawInvoice::default()
            }
        })
}
