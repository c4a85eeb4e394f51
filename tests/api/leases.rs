//! Stores across replicas (issue #17): leases spread stores evenly, move when a replica goes,
//! and a replica's budget for a store closes before its lease can expire.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use b2b_invoice_sync::b2b::RequestBudget;
use b2b_invoice_sync::config::BudgetSettings;
use b2b_invoice_sync::daemon::leases::{Change, Leases};
use b2b_invoice_sync::sync::ownership::Ownership;

use crate::db::TestDb;

fn budgets(n: usize) -> BTreeMap<String, Arc<RequestBudget>> {
    (1..=n)
        .map(|i| {
            (
                format!("store{i:02}"),
                Arc::new(RequestBudget::new(&BudgetSettings::default())),
            )
        })
        .collect()
}

async fn rounds(replicas: &[&Leases], n: usize) {
    for _ in 0..n {
        for r in replicas {
            r.round().await.expect("round");
        }
    }
}

#[tokio::test]
async fn leases_spread_evenly_move_when_a_replica_goes_and_close_its_budgets_first() {
    let db = TestDb::new().await;
    let ttl = Duration::from_secs(3);
    let (b1, b2, b3) = (budgets(9), budgets(9), budgets(9));
    let replica = |budgets: &BTreeMap<String, Arc<RequestBudget>>| {
        Leases::new(Arc::new(Ownership::new(
            db.pool.clone(),
            ttl,
            budgets.clone(),
        )))
    };
    let (r1, r2, r3) = (replica(&b1), replica(&b2), replica(&b3));
    // Nothing is sent for a store not held.
    assert!(b1.values().all(|b| !b.is_open()));

    // Alone, the first replica takes every store.
    let changes = r1.round().await.expect("round");
    assert_eq!(
        changes
            .iter()
            .filter(|c| matches!(c, Change::Took(_)))
            .count(),
        9
    );
    assert!(b1.values().all(|b| b.is_open()));
    // Others join: the stores spread 3/3/3.
    rounds(&[&r2, &r3, &r1, &r2, &r3], 3).await;
    let counts = [r1.held().len(), r2.held().len(), r3.held().len()];
    assert_eq!(counts, [3, 3, 3], "{counts:?}");
    let mut all: Vec<String> = [r1.held(), r2.held(), r3.held()].concat();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 9, "every store held by exactly one replica");
    // A replica's budget is open exactly for the stores it holds.
    for (store, budget) in &b1 {
        assert_eq!(budget.is_open(), r1.held().contains(store), "{store}");
    }

    // r3 dies (no more rounds): its budgets close by themselves before its leases expire, and
    // the others take its stores once they have.
    let gone = r3.held();
    tokio::time::sleep(ttl - Duration::from_millis(500)).await;
    assert!(
        gone.iter().all(|s| !b3[s].is_open()),
        "a replica stops sending before its lease can expire"
    );
    let mut taken_over = false;
    for _ in 0..20 {
        rounds(&[&r1, &r2], 1).await;
        if r1.held().len() + r2.held().len() == 9 {
            taken_over = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(taken_over, "{:?} {:?}", r1.held(), r2.held());
    let counts = [r1.held().len(), r2.held().len()];
    assert!(counts.iter().all(|c| (4..=5).contains(c)), "{counts:?}");

    // Graceful shutdown hands over at once.
    r2.release_all().await;
    assert!(b2.values().all(|b| !b.is_open()));
    rounds(&[&r1], 1).await;
    // r2's heartbeat is still fresh: r1's fair share is 5 of 9 until r2 counts as gone.
    assert!(r1.held().len() >= 5, "{:?}", r1.held());
}
