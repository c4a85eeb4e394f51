//! `sync [--source NAME] [--once] [--json]`: run sync cycles now, one source after another.

use anyhow::bail;
use sqlx::PgPool;

use b2b_invoice_sync::config::Settings;
use b2b_invoice_sync::store::runs::Outcome;
use b2b_invoice_sync::store::state;
use b2b_invoice_sync::sync::engine::{Engine, RunReport};

use super::output::{plural, print_json, seconds};
use super::{database, selected_sources};

/// Cycles of one source per `sync` without `--once`.
pub const MAX_CYCLES: usize = 5;
/// Failure reasons shown per run; `failures list` has them all.
const SHOWN_FAILURES: usize = 5;

#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Only this source (a key of `[sources]`); by default every source, one after another.
    #[arg(long)]
    source: Option<String>,
    /// Exactly one cycle per source. Without it a source's cycle repeats while the previous
    /// one left work due now (recovered invoices, failures due at once), at most 5 cycles.
    #[arg(long)]
    once: bool,
    /// Print the run reports as a JSON array instead of summaries.
    #[arg(long)]
    json: bool,
}

pub async fn run(settings: &Settings, args: SyncArgs) -> anyhow::Result<()> {
    let names = selected_sources(settings, args.source.as_deref())?;
    let pool = database(settings).await?;
    let engine = Engine::new(settings, pool.clone())?;
    let mut reports: Vec<RunReport> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    for name in &names {
        for cycle in 1..=MAX_CYCLES {
            let report = match engine.run_cycle(name).await {
                Ok(report) => report,
                Err(e) => {
                    // The run could not even start: say so and go on with the next source.
                    if !args.json {
                        println!("{name}: FAILED: {e}");
                    }
                    errors.push(format!("{name}: {e}"));
                    reports.push(RunReport::not_started(name, e.to_string()));
                    break;
                }
            };
            let again = !args.once
                && cycle < MAX_CYCLES
                && matches!(report.outcome, Outcome::Ok | Outcome::Partial)
                && work_due(&pool, &report).await?;
            if !args.json {
                print!("{}", summary(&report, cycle));
            }
            if let (Outcome::Failed, Some(e)) = (report.outcome, &report.error) {
                errors.push(format!("{name}: {e}"));
            }
            reports.push(report);
            if !again {
                break;
            }
        }
    }
    if args.json {
        print_json(&reports)?;
    }
    if !errors.is_empty() {
        bail!(
            "{} sync run{} failed: {}",
            errors.len(),
            plural(i64::try_from(errors.len()).unwrap_or(i64::MAX)),
            errors.join("; ")
        );
    }
    Ok(())
}

/// Whether the cycle left work that is due now: what recovery settled may need a follow-up,
/// and failures scheduled for the next cycle are due at once.
async fn work_due(pool: &PgPool, report: &RunReport) -> anyhow::Result<bool> {
    if report.counts.recovered > 0 {
        return Ok(true);
    }
    Ok(!state::due_failures(pool, &report.source, 1)
        .await?
        .is_empty())
}

/// One run in words, ending with a newline.
pub fn summary(report: &RunReport, cycle: usize) -> String {
    let c = &report.counts;
    let name = if cycle > 1 {
        format!("{} (cycle {cycle}, work was due)", report.source)
    } else {
        report.source.clone()
    };
    let took = seconds(report.duration_ms);
    let mut out = match report.outcome {
        Outcome::Skipped => {
            let why = report
                .error
                .as_deref()
                .unwrap_or("another process is syncing this source");
            return format!("{name}: skipped: {why}\n");
        }
        Outcome::Ok => format!("{name}: ok in {took}"),
        Outcome::Partial => format!("{name}: partial in {took}"),
        Outcome::Failed => format!("{name}: FAILED after {took}"),
        Outcome::Stopped => format!("{name}: stopped by shutdown after {took}"),
    };
    let mut held_back = String::new();
    if c.waiting > 0 {
        held_back.push_str(&format!(
            ", {} waiting (retry not due, dead letter, discarded or flagged)",
            c.waiting
        ));
    }
    if c.stale > 0 {
        held_back.push_str(&format!(
            ", {} stale (older than what B2B holds: refused)",
            c.stale
        ));
    }
    out.push_str(&format!(
        ": {} created, {} updated, {} unchanged, {} deleted, {} failed, {} recovered{held_back}; {} B2B call{}, {} ERP call{}\n",
        c.created,
        c.updated,
        c.unchanged,
        c.deleted,
        c.failed,
        c.recovered,
        report.b2b_calls,
        plural(i64::try_from(report.b2b_calls).unwrap_or(i64::MAX)),
        report.erp_calls,
        plural(i64::try_from(report.erp_calls).unwrap_or(i64::MAX))
    ));
    for notice in report.notices.iter().take(SHOWN_FAILURES) {
        out.push_str(&format!("  note: {notice}\n"));
    }
    if report.notices.len() > SHOWN_FAILURES {
        out.push_str(&format!(
            "  ... and {} more notes (in the log)\n",
            report.notices.len() - SHOWN_FAILURES
        ));
    }
    let p = &report.payments;
    if p.detected + p.written + p.failed > 0 {
        out.push_str(&format!(
            "  payments: {} new in B2B, {} written back to the ERP, {} write-back{} failed (`payments list --pending`)\n",
            p.detected,
            p.written,
            p.failed,
            plural(i64::from(p.failed))
        ));
    }
    if let Some(e) = &report.error {
        out.push_str(&format!("  the cycle stopped: {e}\n"));
        out.push_str("  what was done before is kept; the next cycle goes on from there\n");
    }
    if c.failed > 0 {
        out.push_str(&format!(
            "  {} invoice{} failed (recorded: retried per sources.{}.failures; `failures list --source {}` shows them; a refused ERP record syncs when the ERP sends it again):\n",
            c.failed,
            plural(c.failed),
            report.source,
            report.source
        ));
        for reason in report.failures.iter().take(SHOWN_FAILURES) {
            out.push_str(&format!("    - {reason}\n"));
        }
        let more = usize::try_from(c.failed)
            .unwrap_or_default()
            .saturating_sub(SHOWN_FAILURES.min(report.failures.len()));
        if more > 0 {
            out.push_str(&format!("    ... and {more} more\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use b2b_invoice_sync::store::runs::Counts;

    use super::*;

    fn report(outcome: Outcome, failed: i32, failures: Vec<String>) -> RunReport {
        RunReport {
            run_id: uuid::Uuid::nil(),
            source: "erp".to_owned(),
            outcome,
            counts: Counts {
                created: 3,
                failed,
                ..Counts::default()
            },
            b2b_calls: 4,
            erp_calls: 1,
            failures,
            notices: Vec::new(),
            payments: Default::default(),
            error: None,
            duration_ms: 1250,
        }
    }

    #[test]
    fn a_partial_run_names_its_failures_and_where_to_find_the_rest() {
        let reasons: Vec<String> = (1..=7).map(|i| format!("reason {i}")).collect();
        let text = summary(&report(Outcome::Partial, 7, reasons), 1);
        assert!(
            text.starts_with("erp: partial in 1.25 s: 3 created, 0 updated, 0 unchanged, 0 deleted, 7 failed, 0 recovered; 4 B2B calls, 1 ERP call\n"),
            "{text}"
        );
        assert!(text.contains("failures list --source erp"), "{text}");
        assert!(
            text.contains("    - reason 5\n") && !text.contains("reason 6"),
            "{text}"
        );
        assert!(text.contains("... and 2 more"), "{text}");
    }

    #[test]
    fn repeated_cycles_and_skips_say_so() {
        assert!(summary(&report(Outcome::Ok, 0, vec![]), 2)
            .starts_with("erp (cycle 2, work was due): ok"));
        assert_eq!(
            summary(&report(Outcome::Skipped, 0, vec![]), 1),
            "erp: skipped: another process is syncing this source\n"
        );
        let held = RunReport {
            error: Some(
                "another process (b2b-invoice-sync/ab#cd on host-1) holds the store's lease"
                    .to_owned(),
            ),
            ..report(Outcome::Skipped, 0, vec![])
        };
        assert_eq!(
            summary(&held, 1),
            "erp: skipped: another process (b2b-invoice-sync/ab#cd on host-1) holds the store's lease\n"
        );
    }
}
