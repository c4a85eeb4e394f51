//! Payments written back to a file-based ERP: one NDJSON file per event in `<dir>/outbox/`,
//! `payments-<event_id>.ndjson`, for the ERP's importer to pick up.
//!
//! A file appears whole or not at all: it is written under a hidden temporary name in the same
//! folder (`.payments-<event_id>.ndjson.tmp`), synced, then renamed; the rename is the commit
//! point, and the folder is synced after it. So an I/O error means nothing was written
//! (`NotSent`), and whether an event is written is whether its file exists. A file already
//! there is never rewritten: the importer may be reading it. Importers should take only
//! `payments-*.ndjson`, move what they have imported out of `outbox/`, and deduplicate on
//! `event_id` (an event whose file was moved away can be written again after a crash).
//!
//! The ERP cannot be read back, so `current` is `Ok(None)`.
//!
//! One line per file, amounts as exact decimal strings:
//! `{"event_id", "kind" ("payment" | "refund"), "payment_id", "b2b_invoice_id", "external_id",
//! "invoice_number", "amount", "currency", "target_balance", "reference", "occurred_at"
//! (RFC 3339, UTC)}`.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::SecondsFormat;
use serde::Serialize;

use super::FilesSource;
use crate::source::write_back::{
    ErpBalance, PaymentKind, PaymentWrite, PaymentWriter, WriteBackError, Written,
};

/// The outbox folder, inside the export folder.
pub const OUTBOX_DIR: &str = "outbox";

/// `payments-<event_id>.ndjson`: the file of one event.
pub fn outbox_file_name(event_id: i64) -> String {
    format!("payments-{event_id}.ndjson")
}

/// The one line of an outbox file.
#[derive(Debug, Serialize)]
struct OutboxLine<'a> {
    event_id: i64,
    kind: PaymentKind,
    payment_id: u64,
    b2b_invoice_id: u64,
    external_id: &'a str,
    invoice_number: &'a str,
    amount: String,
    currency: &'static str,
    target_balance: String,
    reference: &'a str,
    occurred_at: String,
}

/// The file's content: one JSON line, newline-terminated.
fn outbox_line(event: &PaymentWrite) -> io::Result<Vec<u8>> {
    let line = OutboxLine {
        event_id: event.event_id,
        kind: event.kind,
        payment_id: event.payment_id,
        b2b_invoice_id: event.b2b_invoice_id,
        external_id: &event.external_id,
        invoice_number: &event.invoice_number,
        amount: event.amount.to_string(),
        currency: event.currency.code(),
        target_balance: event.target_balance.to_string(),
        reference: &event.reference,
        occurred_at: event
            .occurred_at
            .to_rfc3339_opts(SecondsFormat::AutoSi, true),
    };
    let mut bytes = serde_json::to_vec(&line).map_err(io::Error::other)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Whether the file was written now or found there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Written,
    AlreadyThere,
}

/// Writes `content` as `outbox/name` atomically, unless that file exists.
fn write_atomically(outbox: &Path, name: &str, content: &[u8]) -> io::Result<Outcome> {
    fs::create_dir_all(outbox)?;
    let target = outbox.join(name);
    if target.try_exists()? {
        return Ok(Outcome::AlreadyThere);
    }
    let temp = outbox.join(format!(".{name}.tmp"));
    let written = (|| {
        let mut file = fs::File::create(&temp)?;
        file.write_all(content)?;
        file.sync_all()?;
        fs::rename(&temp, &target)
    })();
    if let Err(e) = written {
        // Best effort: a leftover temporary file is hidden and overwritten by the next try.
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    sync_dir(outbox)?;
    Ok(Outcome::Written)
}

/// Makes the rename itself durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

impl FilesSource {
    fn outbox(&self) -> PathBuf {
        self.folder.dir.join(OUTBOX_DIR)
    }
}

#[async_trait::async_trait]
impl PaymentWriter for FilesSource {
    async fn current(&self, _external_id: &str) -> Result<Option<ErpBalance>, WriteBackError> {
        Ok(None)
    }

    async fn write(&self, event: &PaymentWrite) -> Result<Written, WriteBackError> {
        let name = outbox_file_name(event.event_id);
        let note = format!("{OUTBOX_DIR}/{name}");
        let outbox = self.outbox();
        let not_sent = |e: &dyn std::fmt::Display| WriteBackError::NotSent {
            message: format!(
                "{} for invoice {} ({}): cannot write {}: {e}",
                event.kind.as_str(),
                event.external_id,
                event.invoice_number,
                outbox.join(&name).display()
            ),
        };
        let content = outbox_line(event).map_err(|e| not_sent(&e))?;
        let (dir, file) = (outbox.clone(), name.clone());
        let outcome = tokio::task::spawn_blocking(move || write_atomically(&dir, &file, &content))
            .await
            .map_err(|e| not_sent(&e))?
            .map_err(|e| not_sent(&e))?;
        match outcome {
            Outcome::Written => {
                tracing::info!(source = %self.name, invoice = %event.external_id, event_id = event.event_id, file = %note, "payment written to the outbox")
            }
            Outcome::AlreadyThere => {
                tracing::info!(source = %self.name, invoice = %event.external_id, event_id = event.event_id, file = %note, "payment already in the outbox")
            }
        }
        Ok(Written { note })
    }

    async fn already_written(&self, event: &PaymentWrite) -> Option<bool> {
        let path = self.outbox().join(outbox_file_name(event.event_id));
        tokio::fs::try_exists(&path).await.ok()
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use rust_decimal::Decimal;
    use serde_json::{json, Value};

    use super::*;
    use crate::domain::Currency;

    fn event() -> PaymentWrite {
        PaymentWrite {
            event_id: 42,
            external_id: "E-1".to_owned(),
            invoice_number: "N-1".to_owned(),
            kind: PaymentKind::Refund,
            payment_id: 117,
            b2b_invoice_id: 9,
            amount: Decimal::from_str("10.50").unwrap(),
            currency: Currency::parse("EUR").unwrap(),
            target_balance: Decimal::from_str("60.00").unwrap(),
            reference: "b2b-payment-117".to_owned(),
            reference_field: None,
            occurred_at: chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap(),
        }
    }

    #[test]
    fn the_line_has_exact_amounts_and_utc_time() {
        let bytes = outbox_line(&event()).unwrap();
        assert_eq!(bytes.last(), Some(&b'\n'));
        assert_eq!(bytes.iter().filter(|b| **b == b'\n').count(), 1);
        let line: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            line,
            json!({
                "event_id": 42, "kind": "refund", "payment_id": 117, "b2b_invoice_id": 9,
                "external_id": "E-1", "invoice_number": "N-1", "amount": "10.50",
                "currency": "EUR", "target_balance": "60.00", "reference": "b2b-payment-117",
                "occurred_at": "2026-01-01T00:00:00Z"
            })
        );
    }

    #[test]
    fn files_appear_whole_and_are_never_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = dir.path().join(OUTBOX_DIR);
        assert_eq!(
            write_atomically(&outbox, "payments-1.ndjson", b"a\n").unwrap(),
            Outcome::Written
        );
        assert_eq!(
            write_atomically(&outbox, "payments-1.ndjson", b"b\n").unwrap(),
            Outcome::AlreadyThere
        );
        assert_eq!(fs::read(outbox.join("payments-1.ndjson")).unwrap(), b"a\n");
        let names: Vec<_> = fs::read_dir(&outbox)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["payments-1.ndjson"]);
    }
}
