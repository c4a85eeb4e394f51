//! `payments list|retry`: B2B Edition payments of the sources' invoices, whether the ERP has
//! them, and retrying a write-back that failed or needs a person.

use anyhow::bail;

use b2b_invoice_sync::config::Settings;
use b2b_invoice_sync::payments::events::{self, Event, WriteState};

use super::database;
use super::output::{plural, print_json, when, Table};

#[derive(Debug, clap::Subcommand)]
pub enum PaymentsCommand {
    /// List recorded payment and refund lines, newest first.
    List {
        /// Only this source's.
        #[arg(long)]
        source: Option<String>,
        /// Only those not settled: not yet written to the ERP (pending, in flight, failed, dead,
        /// unknown), or not yet reflected by the ERP's balance.
        #[arg(long)]
        pending: bool,
        /// At most this many.
        #[arg(long, default_value_t = 200)]
        limit: i64,
        /// Print them as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Write a failed, dead, skipped or unknown-outcome payment back again: the next `sync` of
    /// its source sends it.
    Retry {
        /// The id `payments list` shows.
        id: i64,
    },
}

pub async fn run(settings: &Settings, cmd: PaymentsCommand) -> anyhow::Result<()> {
    let pool = database(settings).await?;
    match cmd {
        PaymentsCommand::List {
            source,
            pending,
            limit,
            json,
        } => {
            let rows = events::list(&pool, source.as_deref(), pending, limit.max(1)).await?;
            if json {
                return print_json(&rows);
            }
            print_table(&rows, pending);
            Ok(())
        }
        PaymentsCommand::Retry { id } => {
            let Some(before) = events::get(&pool, id).await? else {
                bail!(
                    "payments retry {id}: no payment has id {id} (`payments list` shows the ids)"
                );
            };
            match events::retry(&pool, id).await? {
                Some(e) => {
                    println!(
                        "retry {}: {} -> pending; the next `sync --source {}` writes it to the ERP",
                        describe(&e),
                        before.write_state.as_str(),
                        e.source
                    );
                    Ok(())
                }
                None => bail!(
                    "payments retry {id}: {} is {}; only failed, dead, skipped or unknown write-backs can be retried",
                    describe(&before),
                    state_text(&before)
                ),
            }
        }
    }
}

fn describe(e: &Event) -> String {
    format!(
        "{} ({} {} of {} {} on invoice {}, number {}, source {})",
        e.id,
        e.kind.as_str(),
        e.payment_id,
        e.amount,
        e.currency,
        e.external_id,
        e.invoice_number,
        e.source
    )
}

fn state_text(e: &Event) -> &'static str {
    match e.write_state {
        WriteState::Pending => "waiting to be written",
        WriteState::InFlight => "being written (its outcome is settled next cycle)",
        WriteState::Written => "already written",
        WriteState::Off => "not to be written (write-back is off)",
        other => other.as_str(),
    }
}

fn print_table(rows: &[Event], pending: bool) {
    if rows.is_empty() {
        if pending {
            println!(
                "no payments waiting: every recorded payment is written and reflected by the ERP"
            );
        } else {
            println!("no payments recorded");
        }
        return;
    }
    let mut table = Table::new(&[
        "ID",
        "SOURCE",
        "KIND",
        "PAYMENT",
        "EXTERNAL ID",
        "INVOICE",
        "AMOUNT",
        "WRITE-BACK",
        "IN ERP BALANCE",
        "NOTE",
    ]);
    for e in rows {
        table.row(vec![
            e.id.to_string(),
            e.source.clone(),
            e.kind.as_str().to_owned(),
            e.payment_id.to_string(),
            e.external_id.clone(),
            e.invoice_number.clone(),
            format!("{} {}", e.amount, e.currency),
            e.write_state.as_str().to_owned(),
            e.acknowledged_at
                .map(when)
                .unwrap_or_else(|| "not yet".to_owned()),
            e.last_error
                .clone()
                .or_else(|| e.note.clone())
                .unwrap_or_default(),
        ]);
    }
    println!("{}", table.render());
    println!(
        "\n{} payment line{}. `payments retry ID` writes a failed, dead or unknown one again.",
        rows.len(),
        plural(i64::try_from(rows.len()).unwrap_or(i64::MAX))
    );
}
