//! Pure: which B2B payments the ERP has taken in, and what the daemon must keep adding.
//!
//! The ERP never says "I have imported B2B payment 117"; it only shows a balance. So the daemon
//! remembers what the ERP had been paid (total - balance) when it last looked, and reads a rise
//! as the ERP taking in the oldest unacknowledged payments (a fall: refunds), in the order they
//! were made. Paid rather than balance, so an ERP that changes line items (total and balance
//! move together) is not mistaken for one that imported a payment.

use rust_decimal::Decimal;

/// An event the ERP's balance does not reflect yet. `signed`: + for a payment, - for a refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unacked {
    pub id: i64,
    pub signed: Decimal,
}

/// The events (oldest first in `unacked`) the ERP's change of paid amount `delta` accounts for.
///
/// The longest prefix whose sum is exactly `delta` wins (the ERP imported those, in order);
/// when none matches, the oldest events that fit into `delta` one by one (the ERP took in a
/// payment of its own as well). Either way what stays unacknowledged sums to what the ERP has
/// not shown yet whenever the ERP imports in order.
pub fn acknowledged(delta: Decimal, unacked: &[Unacked]) -> Vec<i64> {
    let mut sum = Decimal::ZERO;
    let mut exact = None;
    for (i, e) in unacked.iter().enumerate() {
        let Some(next) = sum.checked_add(e.signed) else {
            break;
        };
        sum = next;
        if sum == delta {
            exact = Some(i + 1);
        }
    }
    if let Some(n) = exact {
        return unacked[..n].iter().map(|e| e.id).collect();
    }
    let mut left = delta;
    let mut taken = Vec::new();
    for e in unacked {
        let fits = if e.signed > Decimal::ZERO {
            left >= e.signed
        } else {
            left <= e.signed
        };
        if !fits {
            break;
        }
        let Some(next) = left.checked_sub(e.signed) else {
            break;
        };
        left = next;
        taken.push(e.id);
    }
    taken
}

/// What the daemon keeps off the ERP's balance: the sum of what the ERP does not show yet.
pub fn adjustment<'a>(unacked: impl IntoIterator<Item = &'a Unacked>) -> Decimal {
    unacked.into_iter().fold(Decimal::ZERO, |sum, e| {
        sum.checked_add(e.signed).unwrap_or(sum)
    })
}

/// The openBalance B2B should show: the ERP's balance minus the payments it does not show yet
/// (plus refunds), never below zero.
pub fn pushed_balance(erp_balance: Decimal, adjustment: Decimal) -> Decimal {
    erp_balance
        .checked_sub(adjustment)
        .unwrap_or(erp_balance)
        .max(Decimal::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dec(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn ev(id: i64, signed: Decimal) -> Unacked {
        Unacked { id, signed }
    }

    #[test]
    fn a_rise_in_paid_acknowledges_the_oldest_payments_it_covers() {
        let u = [ev(1, dec("40")), ev(2, dec("10"))];
        assert_eq!(acknowledged(dec("40"), &u), vec![1]);
        assert_eq!(acknowledged(dec("50"), &u), vec![1, 2]);
        assert_eq!(acknowledged(dec("0"), &u), Vec::<i64>::new());
        // Only part of the first: nothing is acknowledged.
        assert_eq!(acknowledged(dec("30"), &u), Vec::<i64>::new());
    }

    #[test]
    fn a_line_item_change_is_not_an_acknowledgement() {
        // The ERP raised total and balance by 20: paid did not move.
        assert!(acknowledged(dec("0"), &[ev(1, dec("40"))]).is_empty());
    }

    #[test]
    fn a_refund_is_acknowledged_by_a_fall_in_paid() {
        let u = [ev(2, dec("-40"))];
        assert_eq!(acknowledged(dec("-40"), &u), vec![2]);
        assert!(acknowledged(dec("40"), &u).is_empty());
    }

    #[test]
    fn a_payment_and_its_refund_cancel_out() {
        let u = [ev(1, dec("40")), ev(2, dec("-40")), ev(3, dec("5"))];
        assert_eq!(acknowledged(dec("0"), &u), vec![1, 2]);
        assert_eq!(acknowledged(dec("5"), &u), vec![1, 2, 3]);
    }

    #[test]
    fn an_extra_erp_payment_still_acknowledges_what_fits() {
        // The ERP took in our 40 and 7 of its own.
        assert_eq!(
            acknowledged(dec("47"), &[ev(1, dec("40")), ev(2, dec("10"))]),
            vec![1]
        );
    }

    #[test]
    fn the_pushed_balance_keeps_unacknowledged_payments() {
        assert_eq!(pushed_balance(dec("100"), dec("40")), dec("60"));
        assert_eq!(pushed_balance(dec("0"), dec("-100")), dec("100"));
        assert_eq!(pushed_balance(dec("30"), dec("40")), dec("0"));
    }

    fn amount() -> impl Strategy<Value = Decimal> {
        (1i64..=1_000_000, 0u32..=2).prop_map(|(n, scale)| Decimal::new(n, scale))
    }

    proptest! {
        /// Whatever the ERP imports in order, what stays adjusted is exactly what it has not.
        #[test]
        fn what_stays_is_what_the_erp_has_not_imported(
            events in proptest::collection::vec((amount(), any::<bool>()), 0..12),
            imported in 0usize..13,
        ) {
            let unacked: Vec<Unacked> = events
                .iter()
                .enumerate()
                .map(|(i, (a, refund))| ev(i as i64, if *refund { -*a } else { *a }))
                .collect();
            let imported = imported.min(unacked.len());
            let delta = adjustment(&unacked[..imported]);
            let acked = acknowledged(delta, &unacked);
            let left: Vec<Unacked> =
                unacked.iter().copied().filter(|e| !acked.contains(&e.id)).collect();
            prop_assert_eq!(adjustment(&left), adjustment(&unacked[imported..]));
            // Acknowledged events are always a prefix.
            prop_assert!(acked.iter().enumerate().all(|(i, id)| *id == i as i64));
        }

        #[test]
        fn the_pushed_balance_is_never_negative(b in amount(), a in amount(), refund in any::<bool>()) {
            let adj = if refund { -a } else { a };
            prop_assert!(pushed_balance(b, adj) >= Decimal::ZERO);
        }
    }
}
