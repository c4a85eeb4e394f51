//! Invoices as the API returns them (the `invoice.yaml` model plus `extraFields`).

use serde_json::{json, Map, Value};

use super::extra_fields::render_values;
use super::money::render_money;
use super::state::InvoiceRecord;

/// Name of a storefront channel; the sandbox only knows the default one by name.
pub(crate) fn channel_name(channel_id: i64) -> String {
    if channel_id == 1 {
        "Sandbox Storefront".to_owned()
    } else {
        format!("Channel {channel_id}")
    }
}

/// Renders one invoice. Key order follows the documented examples. Optional text fields the
/// invoice does not have are `null` (as in the API's payment examples); `externalPdfUrl` is
/// left out entirely when there is none.
pub(crate) fn invoice(
    invoice: &InvoiceRecord,
    customer_name: &str,
    include_extra_fields: bool,
) -> Value {
    let mut out = Map::new();
    let mut put = |key: &str, value: Value| {
        out.insert(key.to_owned(), value);
    };
    put("id", json!(invoice.id));
    put("customerId", json!(invoice.customer_id.to_string()));
    put("externalId", json!(invoice.external_id));
    put("externalCustomerId", json!(invoice.external_customer_id));
    put("invoiceNumber", json!(invoice.invoice_number));
    put("type", json!(invoice.kind));
    put("dueDate", json!(invoice.due_date));
    put("status", json!(invoice.status));
    put("orderNumber", json!(invoice.order_number));
    put("purchaseOrderNumber", json!(invoice.purchase_order_number));
    put("details", invoice.details.clone());
    // Not modelled: a sandbox payment that is not completed yet leaves its invoices as they are.
    put("isPendingPayment", json!(0));
    put("source", json!(invoice.source));
    put("originalBalance", render_money(&invoice.original_balance));
    put("openBalance", render_money(&invoice.open_balance));
    put("customerName", json!(customer_name));
    put("createdAt", json!(invoice.created_at));
    put("updatedAt", json!(invoice.updated_at));
    put("channelId", json!(invoice.channel_id.to_string()));
    put("channelName", json!(channel_name(invoice.channel_id)));
    put("termsConditions", json!(invoice.terms_conditions));
    if let Some(url) = &invoice.external_pdf_url {
        put("externalPdfUrl", json!(url));
    }
    if include_extra_fields {
        put("extraFields", render_values(&invoice.extra_fields));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::*;
    use crate::b2b::state::{ExtraFieldValue, Money};

    pub(crate) fn sample() -> InvoiceRecord {
        InvoiceRecord {
            id: 9,
            customer_id: 3,
            external_id: Some("23".into()),
            external_customer_id: None,
            invoice_number: "00000009".into(),
            kind: "Invoice".into(),
            due_date: 1_617_675_497,
            status: 1,
            order_number: Some("104".into()),
            purchase_order_number: None,
            details: json!({"header": {}}),
            source: 0,
            original_balance: Money {
                code: "USD".into(),
                value: Decimal::new(3495, 1),
            },
            open_balance: Money {
                code: "USD".into(),
                value: Decimal::new(91343, 2),
            },
            created_at: 1_600_000_000,
            updated_at: 1_600_000_100,
            channel_id: 1,
            terms_conditions: None,
            external_pdf_url: None,
            extra_fields: vec![ExtraFieldValue {
                name: "Payment Terms".into(),
                value: "Net 30".into(),
            }],
        }
    }

    #[test]
    fn renders_the_documented_shape() {
        let value = invoice(&sample(), "silk", true);
        assert_eq!(value["id"], json!(9));
        assert_eq!(value["customerId"], json!("3"));
        assert_eq!(
            value["originalBalance"],
            json!({"code": "USD", "value": "349.5000"})
        );
        assert_eq!(value["openBalance"]["value"], json!("913.4300"));
        assert_eq!(value["customerName"], json!("silk"));
        assert_eq!(value["channelId"], json!("1"));
        assert_eq!(value["createdAt"], json!(1_600_000_000));
        assert_eq!(value["externalCustomerId"], Value::Null);
        assert!(value.get("externalPdfUrl").is_none());
        assert_eq!(value["extraFields"][0]["fieldValue"], json!("Net 30"));
        assert!(invoice(&sample(), "silk", false)
            .get("extraFields")
            .is_none());
    }
}
