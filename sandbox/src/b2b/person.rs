//! Changes made by a person in the B2B Edition control panel rather than through the API:
//! the sync must notice and keep them.

use serde_json::Value;

use super::control::SandboxError;
use super::invoices::forget_order_link;
use super::state::StoreData;

/// Merges `patch` into `target`: objects key by key (recursively), anything else replaced.
pub(crate) fn deep_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                match target.get_mut(key) {
                    Some(existing) => deep_merge(existing, value),
                    None => {
                        target.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// Deep-merges a JSON object into an invoice's `details` and bumps `updatedAt`.
pub(crate) fn edit_details(
    store: &mut StoreData,
    id: u64,
    patch: &Value,
    now: i64,
) -> Result<(), SandboxError> {
    if !patch.is_object() {
        return Err(SandboxError::Invalid(
            "the details patch must be a JSON object".into(),
        ));
    }
    let hash = store.hash.clone();
    let invoice = store
        .invoices
        .get_mut(&id)
        .ok_or(SandboxError::UnknownInvoice { store: hash, id })?;
    if !invoice.details.is_object() {
        invoice.details = Value::Object(Default::default());
    }
    deep_merge(&mut invoice.details, patch);
    invoice.updated_at = now;
    Ok(())
}

/// What a person may change on an invoice in the control panel, besides `details`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersonEdit {
    pub purchase_order_number: Option<String>,
    pub open_balance: Option<rust_decimal::Decimal>,
    pub original_balance: Option<rust_decimal::Decimal>,
    pub due_date: Option<i64>,
    pub external_pdf_url: Option<String>,
    /// `type`.
    pub kind: Option<String>,
}

/// Edits top-level fields the way the control panel does (no API validation, no status rule
/// beyond B2B's own: a balance at or below zero completes the invoice); `updatedAt` moves.
pub(crate) fn edit_invoice(
    store: &mut StoreData,
    id: u64,
    edit: &PersonEdit,
    now: i64,
) -> Result<(), SandboxError> {
    let hash = store.hash.clone();
    let invoice = store
        .invoices
        .get_mut(&id)
        .ok_or(SandboxError::UnknownInvoice { store: hash, id })?;
    if let Some(po) = &edit.purchase_order_number {
        invoice.purchase_order_number = Some(po.clone());
    }
    if let Some(open) = edit.open_balance {
        invoice.open_balance.value = open;
    }
    if let Some(original) = edit.original_balance {
        invoice.original_balance.value = original;
    }
    if let Some(due) = edit.due_date {
        invoice.due_date = due;
    }
    if let Some(url) = &edit.external_pdf_url {
        invoice.external_pdf_url = Some(url.clone());
    }
    if let Some(kind) = &edit.kind {
        invoice.kind = kind.clone();
    }
    invoice.apply_status_rule();
    invoice.updated_at = now;
    Ok(())
}

/// A person (or another app) keys in a copy of invoice `id` under another number, with the
/// same ERP id (a duplicate) or another one (an orphan: `external_id`). Returns the new id.
pub(crate) fn copy_invoice(
    store: &mut StoreData,
    id: u64,
    invoice_number: &str,
    external_id: Option<&str>,
    now: i64,
) -> Result<u64, SandboxError> {
    let hash = store.hash.clone();
    let mut copy = store
        .invoices
        .get(&id)
        .cloned()
        .ok_or(SandboxError::UnknownInvoice { store: hash, id })?;
    if store.invoice_number_taken(invoice_number, None) {
        return Err(SandboxError::Invalid(format!(
            "invoice number {invoice_number} is taken"
        )));
    }
    let new_id = store.allocate_invoice_id();
    copy.id = new_id;
    copy.invoice_number = invoice_number.to_owned();
    if let Some(ext) = external_id {
        copy.external_id = Some(ext.to_owned());
    }
    copy.created_at = now;
    copy.updated_at = now;
    store.invoices.insert(new_id, copy);
    Ok(new_id)
}

pub(crate) fn delete_invoice(store: &mut StoreData, id: u64) -> Result<(), SandboxError> {
    if store.invoices.remove(&id).is_none() {
        return Err(SandboxError::UnknownInvoice {
            store: store.hash.clone(),
            id,
        });
    }
    forget_order_link(store, id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::b2b::seed::{build_store, SeedCounts};

    #[test]
    fn deep_merge_adds_keys_and_recurses_into_objects_only() {
        let mut target = json!({"header": {"a": 1, "keep": true}, "list": [1, 2], "x": "old"});
        deep_merge(
            &mut target,
            &json!({"header": {"a": 2, "b": {"c": 3}}, "list": [9], "note": "hi"}),
        );
        assert_eq!(
            target,
            json!({"header": {"a": 2, "keep": true, "b": {"c": 3}}, "list": [9], "x": "old", "note": "hi"})
        );
    }

    #[test]
    fn edit_details_bumps_updated_at_and_checks_input() {
        let counts = SeedCounts {
            companies: 1,
            invoices: 1,
            orders: 0,
        };
        let mut store = build_store("s", counts, 1_000);
        edit_details(
            &mut store,
            1,
            &json!({"personNote": "call customer"}),
            2_000,
        )
        .unwrap();
        let invoice = &store.invoices[&1];
        assert_eq!(invoice.details["personNote"], "call customer");
        assert!(
            invoice.details["header"]["costLines"].is_array(),
            "existing details kept"
        );
        assert_eq!(invoice.updated_at, 2_000);
        assert!(matches!(
            edit_details(&mut store, 1, &json!([1]), 0),
            Err(SandboxError::Invalid(_))
        ));
        assert!(matches!(
            edit_details(&mut store, 7, &json!({}), 0),
            Err(SandboxError::UnknownInvoice { id: 7, .. })
        ));
        delete_invoice(&mut store, 1).unwrap();
        assert!(delete_invoice(&mut store, 1).is_err());
    }

    #[test]
    fn a_person_edits_owned_fields_and_keys_in_copies() {
        let counts = SeedCounts {
            companies: 1,
            invoices: 1,
            orders: 0,
        };
        let mut store = build_store("s", counts, 1_000);
        let edit = PersonEdit {
            purchase_order_number: Some("PO-HAND".into()),
            open_balance: Some(rust_decimal::Decimal::ZERO),
            kind: Some("Edited".into()),
            ..PersonEdit::default()
        };
        edit_invoice(&mut store, 1, &edit, 3_000).unwrap();
        let invoice = &store.invoices[&1];
        assert_eq!(invoice.purchase_order_number.as_deref(), Some("PO-HAND"));
        assert_eq!(invoice.kind, "Edited");
        assert_eq!(invoice.status, 2, "a zero balance completes the invoice");
        assert_eq!(invoice.updated_at, 3_000);
        assert!(edit_invoice(&mut store, 9, &edit, 0).is_err());

        let ext = store.invoices[&1].external_id.clone();
        let dup = copy_invoice(&mut store, 1, "DUP-1", None, 4_000).unwrap();
        assert_eq!(
            store.invoices[&dup].external_id, ext,
            "same ERP id: a duplicate"
        );
        let orphan = copy_invoice(&mut store, 1, "HAND-1", Some("HAND-EXT"), 4_000).unwrap();
        assert_eq!(
            store.invoices[&orphan].external_id.as_deref(),
            Some("HAND-EXT")
        );
        assert_ne!(dup, orphan);
        assert!(matches!(
            copy_invoice(&mut store, 1, "DUP-1", None, 0),
            Err(SandboxError::Invalid(_))
        ));
    }
}
