//! The invariants every row of the fault matrix ends with, checked by one helper.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

use b2b_invoice_sync::config::CustomerMapping;
use b2b_invoice_sync::domain::SourceInvoice;

use crate::erp::{mentions, Erp};
use crate::world::{World, SOURCE};

/// Totals of the `sync_runs` rows of the source: every process's cycles, not only this one's.
#[derive(Debug, Default)]
struct RunTotals {
    runs: i64,
    unfinished: i64,
    created: i64,
    recovered: i64,
    deleted: i64,
    smallest: i64,
}

async fn run_totals(world: &World) -> RunTotals {
    let row: (i64, i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*),
                count(*) FILTER (WHERE finished_at IS NULL),
                coalesce(sum(created), 0)::BIGINT,
                coalesce(sum(recovered), 0)::BIGINT,
                coalesce(sum(deleted), 0)::BIGINT,
                coalesce(min(least(created, updated, unchanged, deleted, failed, recovered, b2b_calls, erp_calls)), 0)::BIGINT
         FROM sync_runs WHERE source = $1",
    )
    .bind(SOURCE)
    .fetch_one(&world.db.pool)
    .await
    .expect("sum the runs");
    RunTotals {
        runs: row.0,
        unfinished: row.1,
        created: row.2,
        recovered: row.3,
        deleted: row.4,
        smallest: row.5,
    }
}

#[derive(Debug)]
struct StateRow {
    status: String,
    b2b_invoice_id: Option<i64>,
    last_error: Option<String>,
    erp_version: Option<String>,
}

async fn state_rows(world: &World) -> HashMap<String, StateRow> {
    type Row = (String, String, Option<i64>, Option<String>, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT external_id, status, b2b_invoice_id, last_error, erp_version
           FROM invoice_state WHERE source = $1",
    )
    .bind(SOURCE)
    .fetch_all(&world.db.pool)
    .await
    .expect("read invoice_state");
    rows.into_iter()
        .map(|(ext, status, b2b_invoice_id, last_error, erp_version)| {
            (
                ext,
                StateRow {
                    status,
                    b2b_invoice_id,
                    last_error,
                    erp_version,
                },
            )
        })
        .collect()
}

/// ERP customer -> B2B company as the row's source resolves it at the end.
async fn companies(world: &World) -> BTreeMap<String, String> {
    match &world.settings.sources[SOURCE].customers {
        CustomerMapping::Static(map) => map.clone(),
        CustomerMapping::Table => {
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT external_customer_id, company_id FROM customer_map
                 WHERE source = $1 AND company_id IS NOT NULL",
            )
            .bind(SOURCE)
            .fetch_all(&world.db.pool)
            .await
            .expect("read customer_map");
            rows.into_iter().collect()
        }
        other => panic!("no fault row uses {other:?}"),
    }
}

fn decimal(v: &Value) -> Decimal {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Decimal::from_str(&text).unwrap_or_else(|e| panic!("{v} is not a decimal: {e}"))
}

/// The B2B invoice holds the mapped content of the ERP invoice.
fn assert_content(row: &str, inv: &SourceInvoice, b2b: &Value, company: &str) {
    let id = &inv.external_id;
    assert_eq!(
        b2b["invoiceNumber"],
        inv.invoice_number.as_str(),
        "[{row}] {id}: invoice number"
    );
    assert_eq!(b2b["customerId"], company, "[{row}] {id}: company");
    assert_eq!(
        b2b["externalCustomerId"],
        inv.external_customer_id.as_str(),
        "[{row}] {id}: ERP customer"
    );
    assert_eq!(
        b2b["originalBalance"]["code"],
        inv.currency.code(),
        "[{row}] {id}: currency"
    );
    assert_eq!(
        decimal(&b2b["originalBalance"]["value"]),
        inv.total,
        "[{row}] {id}: original balance"
    );
    assert_eq!(
        decimal(&b2b["openBalance"]["value"]),
        inv.open_balance,
        "[{row}] {id}: open balance"
    );
    let lines = b2b["details"]["details"]["lineItems"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    assert_eq!(
        lines.len(),
        inv.line_items.len(),
        "[{row}] {id}: line items {lines:?}"
    );
    for (k, (b2b_line, erp_line)) in lines.iter().zip(&inv.line_items).enumerate() {
        assert_eq!(
            decimal(&b2b_line["quantity"]),
            erp_line.quantity,
            "[{row}] {id}: line {k} quantity"
        );
    }
}

/// Checks, at the end of a row:
/// - every live ERP invoice exists in B2B exactly once (by externalId) with the mapped content
///   of the ERP's newest version of it, and the state says B2B holds that version;
///   and B2B holds nothing else; of ERP invoices sharing an invoice number exactly one is in
///   B2B and the others are recorded with the conflict;
/// - every person's key inside `details` is still there;
/// - every record no adapter can take is reported with its reason;
/// - run counts add up (`created + recovered` over all runs is what B2B holds; nothing
///   negative), exactly when every run finished and as a bound when a process was killed;
/// - no ledger row is left in flight, and every synced invoice's state names its B2B id.
pub async fn assert_invariants(world: &World) {
    let row = world.row;
    let expected = world.erp.expected(SOURCE).await;
    let b2b = world.b2b_by_external_id();
    let states = state_rows(world).await;
    let companies = companies(world).await;
    let reported: Vec<&str> = world
        .reports
        .iter()
        .flat_map(|r| r.failures.iter().map(String::as_str))
        .chain(world.other_failures.iter().map(String::as_str))
        .collect();

    // Exactly once, with the content; conflicts on the invoice number reported.
    let mut by_number: BTreeMap<&str, Vec<&SourceInvoice>> = BTreeMap::new();
    for inv in expected.live.values() {
        by_number.entry(&inv.invoice_number).or_default().push(inv);
    }
    for (number, holders) in &by_number {
        let (present, absent): (Vec<&SourceInvoice>, Vec<&SourceInvoice>) = holders
            .iter()
            .copied()
            .partition(|i| b2b.contains_key(&i.external_id));
        assert_eq!(
            present.len(),
            1,
            "[{row}] invoice number {number}: one of {:?} must be in B2B",
            holders.iter().map(|i| &i.external_id).collect::<Vec<_>>()
        );
        let inv = present[0];
        let company = companies
            .get(&inv.external_customer_id)
            .unwrap_or_else(|| panic!("[{row}] no company for {}", inv.external_customer_id));
        let held = &b2b[&inv.external_id];
        assert_content(row, inv, held, company);
        let state = states
            .get(&inv.external_id)
            .unwrap_or_else(|| panic!("[{row}] {} has no state row", inv.external_id));
        assert_eq!(
            state.status, "synced",
            "[{row}] {}: {state:?}",
            inv.external_id
        );
        assert_eq!(
            state.b2b_invoice_id,
            held["id"].as_i64(),
            "[{row}] {}: state names the B2B invoice",
            inv.external_id
        );
        // B2B holds the ERP's newest version (the content above is that version's).
        if let Some(newest) = &inv.version {
            assert_eq!(
                state.erp_version.as_deref(),
                Some(newest.key().as_str()),
                "[{row}] {}: B2B holds the ERP's newest version",
                inv.external_id
            );
        }
        for loser in absent {
            let state = states
                .get(&loser.external_id)
                .unwrap_or_else(|| panic!("[{row}] {} has no state row", loser.external_id));
            assert!(
                state.status == "failed"
                    && state
                        .last_error
                        .as_deref()
                        .is_some_and(|e| e.contains("already exists")),
                "[{row}] {} shares number {number}: recorded with the conflict, got {state:?}",
                loser.external_id
            );
            let needle = format!("invoice number {number} already exists");
            assert!(
                reported.iter().any(|f| f.contains(&needle)),
                "[{row}] the conflict on {number} is in a run report"
            );
        }
    }
    let stray: Vec<&String> = b2b
        .keys()
        .filter(|ext| !expected.live.contains_key(*ext))
        .collect();
    assert!(
        stray.is_empty(),
        "[{row}] B2B holds invoices the ERP has not (live): {stray:?}"
    );

    // People's edits survive the updates (which did land: the content above is the ERP's new one).
    for edit in &world.person_edits {
        let inv = b2b
            .get(&edit.external_id)
            .unwrap_or_else(|| panic!("[{row}] edited invoice {} gone", edit.external_id));
        assert_eq!(
            inv["id"].as_u64(),
            Some(edit.b2b_id),
            "[{row}] same B2B invoice"
        );
        assert_eq!(
            inv["details"]["personNote"],
            edit.note.as_str(),
            "[{row}] a person's key in details was lost: {}",
            inv["details"]
        );
        assert_eq!(
            inv["details"]["header"]["personHeaderNote"],
            edit.note.as_str(),
            "[{row}] a person's key in details.header was lost: {}",
            inv["details"]
        );
    }

    // Bad records are reported with their reason.
    let rejected = match &world.erp {
        Erp::Files(folder) => folder.rejected_rows(),
        _ => Vec::new(),
    };
    for e in &expected.refused {
        let in_reports = reported.iter().any(|f| mentions(f, e));
        let in_rejected = rejected
            .iter()
            .any(|r| r["reason"].as_str() == Some(e.reason.as_ref()));
        assert!(
            in_reports || in_rejected,
            "[{row}] refused record never reported: {e}"
        );
    }

    // Counts add up.
    let t = run_totals(world).await;
    assert!(t.runs > 0, "[{row}] no run recorded");
    assert!(t.smallest >= 0, "[{row}] a negative count: {t:?}");
    // The matrix deletes nothing in B2B: no DELETE reached it. A run counts as deleted an ERP
    // invoice voided or deleted before it ever reached B2B (recorded, no call): at most the
    // ERP's voided and deleted invoices, each counted once.
    let deletes: Vec<String> = world
        .b2b
        .control()
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.route)
        .collect();
    assert!(
        deletes.is_empty(),
        "[{row}] the matrix deletes nothing in B2B: {deletes:?}"
    );
    let gone = i64::try_from(expected.gone()).unwrap_or(i64::MAX);
    assert!(
        t.deleted <= gone,
        "[{row}] {} deletions counted, but the ERP voided or deleted only {gone}: {t:?}",
        t.deleted
    );
    for r in &world.reports {
        let c = r.counts;
        assert!(
            [
                c.created,
                c.updated,
                c.unchanged,
                c.deleted,
                c.failed,
                c.recovered
            ]
            .iter()
            .all(|n| *n >= 0),
            "[{row}] negative count: {r:#?}"
        );
        assert!(c.failed as usize >= r.failures.len(), "[{row}] {r:#?}");
    }
    let held = i64::try_from(b2b.len()).unwrap_or(i64::MAX);
    if let Some(why) = world.counts_may_fall_short {
        eprintln!("fault row {row}: counts checked as a bound only: {why}");
    }
    if t.unfinished == 0 && world.counts_may_fall_short.is_none() {
        assert_eq!(
            t.created + t.recovered,
            held,
            "[{row}] created + recovered over all runs = invoices in B2B: {t:?}"
        );
    } else {
        // A killed process never records its run's counts: they can only fall short.
        // (Nothing may be counted twice, though.)
        assert!(
            t.created + t.recovered <= held,
            "[{row}] created + recovered over the finished runs exceeds B2B: {t:?}"
        );
    }

    // Nothing left in flight.
    assert_eq!(
        world.in_flight().await,
        0,
        "[{row}] a ledger row is left in flight"
    );
    eprintln!(
        "fault row {row}: {} live invoices in B2B, {} refused records reported, {} runs ({} unfinished), seed {}",
        b2b.len(),
        expected.refused.len(),
        t.runs,
        t.unfinished,
        world.seed
    );
}
