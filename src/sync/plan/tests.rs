use std::collections::HashMap;

use chrono::Duration;

use super::*;
use crate::config::MappingSettings;
use crate::domain::{
    fingerprint, map_invoice, RawInvoice, RecordLocator, SourceInvoice, SourceVersion,
};

fn prepared(id: &str, total: &str, deleted: bool) -> Prepared {
    let raw = RawInvoice {
        external_id: Some(id.into()),
        external_customer_id: Some("C".into()),
        invoice_number: Some(format!("N-{id}")),
        currency: Some("USD".into()),
        total: Some(total.into()),
        open_balance: Some(total.into()),
        po_number: Some("PO-1".into()),
        deleted,
        ..RawInvoice::default()
    };
    let invoice = SourceInvoice::parse("erp", RecordLocator::id(id), raw).unwrap();
    let desired = map_invoice(&invoice, "1", &MappingSettings::default());
    Prepared {
        fingerprint: fingerprint(&desired),
        desired,
        invoice,
    }
}

fn synced(p: &Prepared) -> StateRow {
    StateRow {
        id: 1,
        source: "erp".into(),
        external_id: p.external_id().into(),
        invoice_number: p.invoice_number().into(),
        b2b_invoice_id: Some(77),
        fingerprint: Some(p.fingerprint.as_str().into()),
        owned: Some(serde_json::to_value(canonical(&p.desired)).unwrap()),
        written_open: Some(p.desired.open_balance),
        erp_version: p.invoice.version.clone(),
        status: Status::Synced,
        pending: None,
        pending_fingerprint: None,
        pending_version: None,
        last_synced_at: None,
        last_attempted_at: None,
        attempts: 0,
        next_attempt_at: None,
        last_error: None,
    }
}

fn one(p: Prepared, state: Option<StateRow>) -> Action {
    plan_one(p, state.as_ref(), Utc::now())
}

#[test]
fn new_invoices_are_created_and_unchanged_ones_skipped() {
    assert!(matches!(
        one(prepared("A", "10", false), None),
        Action::Create(_)
    ));
    let p = prepared("A", "10", false);
    let s = synced(&p);
    assert!(matches!(
        one(p, Some(s)),
        Action::Skip {
            reason: SkipReason::Unchanged,
            ..
        }
    ));
}

#[test]
fn a_change_is_an_update_with_field_diffs() {
    let old = prepared("A", "10", false);
    let s = synced(&old);
    match one(prepared("A", "12.50", false), Some(s)) {
        Action::Update {
            b2b_invoice_id,
            diff,
            attempts,
            ..
        } => {
            assert_eq!(b2b_invoice_id, 77);
            assert_eq!(attempts, 0);
            let fields: Vec<&str> = diff.iter().map(|d| d.field.as_str()).collect();
            assert_eq!(fields, ["open_balance", "original_balance"]);
            assert_eq!(diff[0].old, Some(serde_json::json!(["USD", "10"])));
            assert_eq!(diff[0].new, serde_json::json!(["USD", "12.5"]));
        }
        other => panic!("expected an update, got {other:?}"),
    }
}

#[test]
fn failures_wait_for_their_retry_unless_the_erp_changed_them() {
    let p = prepared("A", "10", false);
    let mut s = synced(&p);
    s.b2b_invoice_id = None;
    s.status = Status::Failed;
    s.pending_fingerprint = Some(p.fingerprint.as_str().into());
    s.attempts = 2;
    s.next_attempt_at = Some(Utc::now() + Duration::minutes(5));
    assert!(matches!(
        one(p.clone(), Some(s.clone())),
        Action::Skip {
            reason: SkipReason::WaitingForRetry,
            ..
        }
    ));
    // Due: tried again.
    s.next_attempt_at = Some(Utc::now() - Duration::minutes(1));
    assert!(matches!(one(p, Some(s.clone())), Action::Create(_)));
    // Changed in the ERP: tried at once, whatever the schedule.
    s.next_attempt_at = Some(Utc::now() + Duration::minutes(5));
    assert!(matches!(
        one(prepared("A", "11", false), Some(s)),
        Action::Create(_)
    ));
}

#[test]
fn dead_letters_stay_until_the_content_changes() {
    let p = prepared("A", "10", false);
    let mut s = synced(&p);
    s.status = Status::Dead;
    s.pending_fingerprint = Some(p.fingerprint.as_str().into());
    assert!(matches!(
        one(p, Some(s.clone())),
        Action::Skip {
            reason: SkipReason::DeadLetter,
            ..
        }
    ));
    assert!(matches!(
        one(prepared("A", "11", false), Some(s)),
        Action::Update { .. }
    ));
}

#[test]
fn deletions_go_to_the_policy_only_when_b2b_holds_the_invoice() {
    let live = prepared("A", "10", false);
    let s = synced(&live);
    assert!(matches!(
        one(prepared("A", "10", true), Some(s.clone())),
        Action::Remove {
            b2b_invoice_id: 77,
            ..
        }
    ));
    assert!(matches!(
        one(prepared("B", "10", true), None),
        Action::Forget(_)
    ));
    let gone = prepared("A", "10", true);
    let mut handled = s;
    handled.status = Status::Deleted;
    handled.fingerprint = Some(gone.fingerprint.as_str().into());
    assert!(matches!(
        one(gone, Some(handled)),
        Action::Skip {
            reason: SkipReason::AlreadyDeleted,
            ..
        }
    ));
}

#[test]
fn every_action_has_one_name_and_a_deletion_is_a_delete_whether_b2b_holds_it_or_not() {
    let live = prepared("A", "10", false);
    let s = synced(&live);
    let remove = one(prepared("A", "10", true), Some(s.clone()));
    let forget = one(prepared("B", "10", true), None);
    assert_eq!(remove.name(), "delete");
    assert_eq!(forget.name(), "delete");
    let create = one(prepared("C", "10", false), None);
    let skip = one(live.clone(), Some(s));
    for action in [&remove, &forget, &create, &skip] {
        assert!(ACTIONS.contains(&action.name()), "{}", action.name());
    }
    assert_eq!((create.name(), skip.name()), ("create", "skip"));
}

#[test]
fn the_later_record_of_a_duplicated_id_wins() {
    let actions = plan(
        vec![
            prepared("A", "10", false),
            prepared("B", "5", false),
            prepared("A", "20", false),
        ],
        &HashMap::new(),
        Utc::now(),
    );
    assert_eq!(actions.len(), 2);
    match &actions[1] {
        Action::Create(p) => assert_eq!(p.desired.original_balance.to_string(), "20"),
        other => panic!("{other:?}"),
    }
}

fn at(p: Prepared, when: &str) -> Prepared {
    let t = chrono::DateTime::parse_from_rfc3339(when)
        .unwrap()
        .with_timezone(&Utc);
    Prepared {
        invoice: p.invoice.with_version(Some(SourceVersion::at(t))),
        ..p
    }
}

#[test]
fn a_record_older_than_what_b2b_holds_is_refused_as_stale() {
    let held = at(prepared("A", "12", false), "2026-11-02T10:00:00Z");
    let s = synced(&held);
    let older = at(prepared("A", "10", false), "2026-11-01T10:00:00Z");
    assert!(matches!(
        one(older, Some(s.clone())),
        Action::Skip {
            reason: SkipReason::Stale,
            ..
        }
    ));
    // The same version, or a record with no version, is not refused.
    let same = at(prepared("A", "12", false), "2026-11-02T10:00:00Z");
    assert!(matches!(
        one(same, Some(s.clone())),
        Action::Skip {
            reason: SkipReason::Unchanged,
            ..
        }
    ));
    assert!(matches!(
        one(prepared("A", "10", false), Some(s.clone())),
        Action::Update { .. }
    ));
    // A deletion of an older version is stale too: it must not remove a newer invoice.
    let old_delete = at(prepared("A", "12", true), "2026-11-01T10:00:00Z");
    assert!(matches!(
        one(old_delete, Some(s)),
        Action::Skip {
            reason: SkipReason::Stale,
            ..
        }
    ));
}

#[test]
fn a_record_older_than_a_newer_one_waiting_to_be_pushed_is_stale() {
    let held = at(prepared("A", "10", false), "2026-11-01T10:00:00Z");
    let mut s = synced(&held);
    let waiting = at(prepared("A", "14", false), "2026-11-03T10:00:00Z");
    s.status = Status::Failed;
    s.pending_fingerprint = Some(waiting.fingerprint.as_str().into());
    s.pending_version = waiting.invoice.version.clone();
    let between = at(prepared("A", "12", false), "2026-11-02T10:00:00Z");
    assert!(matches!(
        one(between, Some(s.clone())),
        Action::Skip {
            reason: SkipReason::Stale,
            ..
        }
    ));
    assert!(matches!(one(waiting, Some(s)), Action::Update { .. }));
}

#[test]
fn of_two_records_of_one_invoice_in_a_page_the_newer_version_wins() {
    let newer = at(prepared("A", "12", false), "2026-11-02T10:00:00Z");
    let older = at(prepared("A", "10", false), "2026-11-01T10:00:00Z");
    let actions = plan(vec![newer, older], &HashMap::new(), Utc::now());
    assert_eq!(actions.len(), 1);
    match &actions[0] {
        Action::Create(p) => assert_eq!(p.invoice.total.to_string(), "12"),
        other => panic!("{other:?}"),
    }
    // Without versions, the later record wins.
    let actions = plan(
        vec![prepared("A", "10", false), prepared("A", "11", false)],
        &HashMap::new(),
        Utc::now(),
    );
    match &actions[..] {
        [Action::Create(p)] => assert_eq!(p.invoice.total.to_string(), "11"),
        other => panic!("{other:?}"),
    }
}
