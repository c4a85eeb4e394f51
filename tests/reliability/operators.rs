//! What the daemon tells operators is true (issue #14): retries keep their schedule whatever
//! re-reads a record.

use std::collections::BTreeMap;
use std::time::Duration;

use b2b_invoice_sync::config::{CustomerMapping, FailurePolicy};

use crate::erp::{ndjson_invoice, Erp};
use crate::world::{seed_for, World};

#[tokio::test]
async fn a_record_read_again_before_its_retry_is_due_waits_and_attempts_never_exceed_the_limit() {
    let row = "retry_schedule_kept";
    let seed = seed_for(row);
    let mut world = World::new(row, seed, Erp::files()).await;
    // Invoice 8's customer (CUST-00009) maps to no company: a failure retried with backoff.
    let mut map: BTreeMap<String, String> = crate::world::customer_map();
    map.remove("CUST-00009");
    world.source_mut().customers = CustomerMapping::Static(map);
    world.source_mut().failures = FailurePolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(1500),
        max_delay: Duration::from_millis(1500),
    };
    let engine = world.engine();
    let mut seen: Vec<(i32, Option<chrono::DateTime<chrono::Utc>>)> = Vec::new();
    let started = std::time::Instant::now();
    let mut k = 0;
    while started.elapsed() < Duration::from_secs(6) {
        // Every cycle reads the record again (as an overlap window or a later page would), in an
        // export that differs each time.
        k += 1;
        world
            .erp
            .folder()
            .write(&[ndjson_invoice(8), ndjson_invoice(1000 + k)]);
        world.cycle(&engine).await;
        let (attempts, status, next): (i32, String, Option<chrono::DateTime<chrono::Utc>>) =
            sqlx::query_as(
                "SELECT attempts, status, next_attempt_at FROM invoice_state WHERE external_id = 'EXP-000008'",
            )
            .fetch_one(&world.db.pool)
            .await
            .expect("state");
        let now = chrono::Utc::now();
        if seen.last().is_none_or(|(a, _)| *a != attempts) {
            if let Some((_, Some(due))) = seen.last() {
                assert!(
                    now >= *due,
                    "attempt {attempts} ran before its retry was due ({due})"
                );
            }
            seen.push((attempts, next));
        }
        assert!(attempts <= 3, "attempts beyond max_attempts ({status})");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (attempts, status): (i32, String) = sqlx::query_as(
        "SELECT attempts, status FROM invoice_state WHERE external_id = 'EXP-000008'",
    )
    .fetch_one(&world.db.pool)
    .await
    .expect("state");
    assert_eq!((attempts, status.as_str()), (3, "dead"));
    assert_eq!(
        seen.len(),
        3,
        "three attempts, spaced by the backoff: {seen:?}"
    );
    let waiting: i32 = world.reports.iter().map(|r| r.counts.waiting).sum();
    assert!(
        waiting > 0,
        "the re-reads in between were counted as waiting"
    );
}
