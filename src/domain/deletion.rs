//! What a deleted or voided ERP invoice does in B2B, by the source's policy.

use rust_decimal::Decimal;

use crate::domain::policy::DeletedPolicy;

/// What to do with the B2B invoice of a deleted or voided ERP invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeletionAction {
    /// `DELETE /invoices/{id}`.
    Delete,
    /// `PUT` with open balance 0 (status becomes Completed).
    ZeroBalance,
    /// Nothing to do (policy `ignore`, not in B2B, or already settled).
    Nothing,
    /// Leave it and tell a person why (shown in `failures`).
    Flag { reason: String },
}

/// The B2B side of the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct B2bBalance {
    /// Open balance in B2B now.
    pub open: Decimal,
    /// The open balance the daemon last wrote (what B2B would show without payments there).
    pub last_written_open: Decimal,
}

/// Decides per `policy`; `b2b` is `None` when the invoice does not exist in B2B.
pub fn deletion_action(policy: DeletedPolicy, b2b: Option<B2bBalance>) -> DeletionAction {
    let Some(b2b) = b2b else {
        return DeletionAction::Nothing;
    };
    match policy {
        DeletedPolicy::Ignore => DeletionAction::Nothing,
        DeletedPolicy::ZeroBalance if b2b.open.is_zero() => DeletionAction::Nothing,
        DeletedPolicy::ZeroBalance => DeletionAction::ZeroBalance,
        // A buyer paid (part of) it in B2B: deleting would erase that payment's invoice.
        DeletedPolicy::Delete if b2b.open < b2b.last_written_open => DeletionAction::Flag {
            reason: format!(
                "deleted in the ERP, but {} was paid in B2B Edition (open balance {} of {}); \
                 not deleted: refund or reconcile the payment, then delete it by hand",
                b2b.last_written_open - b2b.open,
                b2b.open,
                b2b.last_written_open
            ),
        },
        DeletedPolicy::Delete => DeletionAction::Delete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bal(open: i64, last: i64) -> Option<B2bBalance> {
        Some(B2bBalance {
            open: Decimal::from(open),
            last_written_open: Decimal::from(last),
        })
    }

    #[test]
    fn delete_is_guarded_by_payments_made_in_b2b() {
        assert_eq!(
            deletion_action(DeletedPolicy::Delete, bal(100, 100)),
            DeletionAction::Delete
        );
        let flagged = deletion_action(DeletedPolicy::Delete, bal(60, 100));
        assert!(
            matches!(&flagged, DeletionAction::Flag { reason } if reason.contains("40 was paid")),
            "{flagged:?}"
        );
        assert_eq!(
            deletion_action(DeletedPolicy::Delete, None),
            DeletionAction::Nothing
        );
    }

    #[test]
    fn zero_balance_and_ignore() {
        assert_eq!(
            deletion_action(DeletedPolicy::ZeroBalance, bal(60, 100)),
            DeletionAction::ZeroBalance
        );
        assert_eq!(
            deletion_action(DeletedPolicy::ZeroBalance, bal(0, 100)),
            DeletionAction::Nothing
        );
        assert_eq!(
            deletion_action(DeletedPolicy::Ignore, bal(100, 100)),
            DeletionAction::Nothing
        );
    }
}
