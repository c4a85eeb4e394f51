//! The requests that make B2B Edition hold a desired invoice: `POST /invoices` with everything
//! mapped, `PUT /invoices/{id}` with the owned fields only.
//!
//! The desired invoice is the domain's ([`crate::domain::mapping`]); the request bodies are this
//! API's wire types, so the building lives here, one layer above. These are inherent methods of
//! [`DesiredInvoice`] (a crate may add them in any module), so callers write
//! `desired.to_new_invoice()` wherever they hold one.

use rust_decimal::Decimal;

use super::model::{
    Amount, ExtraFieldValue, InvoiceDetails, InvoiceSource, InvoiceUpdate, NewInvoice,
};
use crate::domain::policy::OwnedField;
use crate::domain::DesiredInvoice;

impl DesiredInvoice {
    fn amount(&self, value: Decimal) -> Amount {
        Amount::new(self.currency.code(), value)
    }

    fn extra_field_values(&self) -> Vec<ExtraFieldValue> {
        self.extra_fields
            .iter()
            .map(|(name, value)| ExtraFieldValue {
                field_name: name.clone(),
                field_value: Some(value.clone()),
            })
            .collect()
    }

    /// Everything mapped, for `POST /invoices` (a create writes all fields, owned or not).
    pub fn to_new_invoice(&self) -> NewInvoice {
        let mut details = InvoiceDetails::default();
        self.write_details(&mut details, &OwnedField::ALL.into_iter().collect());
        NewInvoice {
            invoice_number: self.invoice_number.clone(),
            original_balance: self.amount(self.original_balance),
            open_balance: self.amount(self.open_balance),
            customer_id: self.customer_id.clone(),
            kind: Some(self.kind.clone()),
            due_date: self.due_date,
            status: Some(self.status),
            order_number: self.order_number.clone(),
            purchase_order_number: self.purchase_order_number.clone(),
            issued_at: self.issued_at,
            details: Some(details),
            source: Some(InvoiceSource::External),
            external_id: Some(self.external_id.clone()),
            external_customer_id: Some(self.external_customer_id.clone()),
            channel_id: self.channel_id,
            external_pdf_url: self.external_pdf_url.clone(),
            terms_conditions: self.terms_conditions.clone(),
            extra_fields: self.extra_field_values(),
        }
    }

    /// The owned fields, for `PUT /invoices/{id}`, starting from the invoice's `current` details
    /// in B2B so that keys a person or another app added there are kept.
    pub fn to_update(&self, current: &InvoiceDetails) -> InvoiceUpdate {
        let owns = |f| self.owned.contains(&f);
        let mut update = InvoiceUpdate::default();
        if owns(OwnedField::InvoiceNumber) {
            update.invoice_number = Some(self.invoice_number.clone());
        }
        if owns(OwnedField::Customer) {
            update.customer_id = Some(self.customer_id.clone());
            update.external_customer_id = Some(self.external_customer_id.clone());
        }
        if owns(OwnedField::Type) {
            update.kind = Some(self.kind.clone());
        }
        if owns(OwnedField::DueDate) {
            update.due_date = self.due_date;
        }
        if owns(OwnedField::OriginalBalance) {
            update.original_balance = Some(self.amount(self.original_balance));
        }
        if owns(OwnedField::OpenBalance) {
            update.open_balance = Some(self.amount(self.open_balance));
        }
        if owns(OwnedField::Status) {
            update.status = Some(self.status);
        }
        if owns(OwnedField::PurchaseOrderNumber) {
            update.purchase_order_number = self.purchase_order_number.clone();
        }
        if owns(OwnedField::ExternalPdfUrl) {
            // An empty string removes a PDF link the ERP no longer has.
            update.external_pdf_url = Some(self.external_pdf_url.clone().unwrap_or_default());
        }
        if owns(OwnedField::ExtraFields) {
            update.extra_fields = Some(self.extra_field_values());
        }
        let detail_parts = [
            OwnedField::CostLines,
            OwnedField::BillingAddress,
            OwnedField::ShippingAddresses,
            OwnedField::LineItems,
        ];
        if detail_parts.into_iter().any(owns) {
            let mut details = current.clone();
            self.write_details(&mut details, &self.owned);
            update.details = Some(details);
        }
        update
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rust_decimal::Decimal;
    use serde_json::json;

    use super::*;
    use crate::domain::map_invoice;
    use crate::domain::mapping::fixtures::{arb_invoice, parse, sample_raw, settings};
    use crate::domain::policy::MappingSettings;

    #[test]
    fn a_create_carries_every_mapped_field() {
        let d = map_invoice(&parse(sample_raw()), "7", &settings());
        let new = d.to_new_invoice();
        assert_eq!(new.source, Some(InvoiceSource::External));
        assert_eq!(new.external_id.as_deref(), Some("INV-1"));
        let body = serde_json::to_value(&new).expect("json");
        assert_eq!(
            body["details"]["details"]["lineItems"][1]["quantity"],
            json!("2")
        );
        assert_eq!(
            body["originalBalance"],
            json!({"code": "EUR", "value": 118.00})
        );
    }

    #[test]
    fn an_update_touches_only_owned_fields_and_keeps_foreign_details() {
        let mut s = settings();
        s.owned = vec![OwnedField::LineItems, OwnedField::OpenBalance];
        let d = map_invoice(&parse(sample_raw()), "7", &s);
        let current: InvoiceDetails = serde_json::from_value(json!({
            "type": "StandardInvoiceDetails",
            "header": {"costLines": [{"amount": {"code": "EUR", "value": "1"}, "description": "Old"}], "note": "by a person"},
            "details": {"lineItems": [], "shipments": [{"trackingNumber": "1Z"}]}
        }))
        .expect("details");
        let update = d.to_update(&current);
        let body = serde_json::to_value(&update).expect("json");
        let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["details", "openBalance"]);
        let details = &body["details"];
        assert_eq!(
            details["header"]["costLines"][0]["description"],
            json!("Old"),
            "cost lines not owned here"
        );
        assert_eq!(details["header"]["note"], json!("by a person"));
        assert_eq!(
            details["details"]["shipments"][0]["trackingNumber"],
            json!("1Z")
        );
        assert_eq!(
            details["details"]["lineItems"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(details["type"], json!("StandardInvoiceDetails"));
    }

    #[test]
    fn an_erp_without_a_pdf_or_billing_address_clears_them_when_owned() {
        let mut raw = sample_raw();
        raw.pdf_url = None;
        raw.billing_address = None;
        let d = map_invoice(&parse(raw), "7", &settings());
        let current: InvoiceDetails =
            serde_json::from_value(json!({"header": {"billingAddress": {"city": "Old"}}}))
                .expect("details");
        let body = serde_json::to_value(d.to_update(&current)).expect("json");
        assert_eq!(body["externalPdfUrl"], json!(""));
        assert!(body["details"]["header"].get("billingAddress").is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn the_create_body_carries_the_same_digits(raw in arb_invoice()) {
            let src = parse(raw);
            let d = map_invoice(&src, "1", &MappingSettings::default());
            // The wire body carries the same digits as the ERP total.
            let body = serde_json::to_value(d.to_new_invoice()).expect("json");
            let total_text = body["originalBalance"]["value"].to_string();
            prop_assert_eq!(total_text.parse::<Decimal>().ok(), Some(src.total));
        }
    }
}
