//! Logging with `tracing`: JSON lines for production (systemd, Kubernetes), a readable format for
//! a terminal. Logs go to stderr so that command output on stdout stays clean for pipes.
//!
//! A JSON line is one flat object (docs/deployment.md, "Logs"): `timestamp`, `level`,
//! `target`, `message`, then the fields of every span the event is in (outermost first:
//! `run_id` and `source` of the cycle, `external_id` and the rest of an invoice's), then the
//! event's own. A key appears once: an inner span's or the event's value wins, and a field
//! named like one of the four fixed keys is written as `field_<name>`.

use std::fmt;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The keys every JSON line starts with; no field may take them.
const FIXED_KEYS: [&str; 4] = ["timestamp", "level", "target", "message"];

/// The PostgreSQL notices sqlx logs at INFO (`relation "_sqlx_migrations" already exists,
/// skipping` on every start): debug detail, not news, unless a filter names them.
const NOTICES: &str = "sqlx::postgres::notice";

static JSON_INSTALLED: AtomicBool = AtomicBool::new(false);

/// Whether the installed global subscriber writes JSON lines: then everything on stderr must
/// be a JSON line too (no plain `error: ...`).
pub fn json_installed() -> bool {
    JSON_INSTALLED.load(Ordering::Relaxed)
}

/// Writes one flat JSON object per event (see the module's documentation).
pub struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".to_owned(),
            Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        line.insert("level".to_owned(), Value::String(meta.level().to_string()));
        line.insert("target".to_owned(), Value::String(meta.target().to_owned()));
        line.insert("message".to_owned(), Value::String(String::new()));
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&fields.fields) {
                    for (key, value) in fields {
                        insert(&mut line, key, value);
                    }
                }
            }
        }
        let mut visitor = Fields(&mut line);
        event.record(&mut visitor);
        let text = serde_json::to_string(&Value::Object(line)).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// A field into the line: a fixed key's name is taken as `field_<name>`; `message` is the
/// event's message.
fn insert(line: &mut Map<String, Value>, key: String, value: Value) {
    let key = if FIXED_KEYS.contains(&key.as_str()) {
        format!("field_{key}")
    } else {
        key
    };
    line.insert(key, value);
}

struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.0.insert("message".to_owned(), value);
        } else if let Some(name) = field.name().strip_prefix("log.") {
            // Records bridged from the `log` crate carry their origin as `log.*` fields.
            if name == "target" {
                self.0.insert("target".to_owned(), value);
            }
        } else {
            insert(self.0, field.name().to_owned(), value);
        }
    }
}

impl Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let value = serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number);
        self.put(field, value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("telemetry.log_filter: invalid filter `{filter}`: {reason}")]
    Filter { filter: String, reason: String },
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Resolves `Auto`: JSON unless stderr (where logs go) is a terminal.
pub fn resolve(format: LogFormat) -> LogFormat {
    match format {
        LogFormat::Auto if std::io::stderr().is_terminal() => LogFormat::Pretty,
        LogFormat::Auto => LogFormat::Json,
        other => other,
    }
}

/// The filter: `RUST_LOG` when set (operators expect it to win), else the configured one.
pub fn filter(configured: &str) -> Result<EnvFilter, TelemetryError> {
    let text = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| configured.to_owned());
    let filter = EnvFilter::try_new(&text).map_err(|e| TelemetryError::Filter {
        filter: text.clone(),
        reason: e.to_string(),
    })?;
    Ok(quiet_notices(filter, &text))
}

/// PostgreSQL's notices at DEBUG and above only, unless the filter names them itself.
fn quiet_notices(filter: EnvFilter, text: &str) -> EnvFilter {
    if text.contains(NOTICES) {
        return filter;
    }
    match format!("{NOTICES}=warn").parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

/// A subscriber writing to `writer`; tests use it to capture every line.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match resolve(format) {
        LogFormat::Json => Box::new(
            builder
                .fmt_fields(JsonFields::new())
                .event_format(FlatJson)
                .finish(),
        ),
        _ => Box::new(builder.with_ansi(std::io::stderr().is_terminal()).finish()),
    }
}

/// Installs the global subscriber, logging to stderr.
pub fn init(format: LogFormat, configured_filter: &str) -> Result<(), TelemetryError> {
    let sub = subscriber(format, filter(configured_filter)?, std::io::stderr);
    tracing::subscriber::set_global_default(sub).map_err(|_| TelemetryError::AlreadyInstalled)?;
    JSON_INSTALLED.store(resolve(format) == LogFormat::Json, Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_are_flat_with_unique_keys_and_span_fields_at_the_top() {
        let capture = Capture::default();
        let writer = capture.clone();
        let sub = subscriber(LogFormat::Json, EnvFilter::new("info"), move || {
            writer.clone()
        });
        tracing::subscriber::with_default(sub, || {
            let run = tracing::info_span!("sync_run", run_id = "r-1", source = "erp");
            let _run = run.enter();
            let invoice = tracing::info_span!("invoice", external_id = "INV-1", action = "update");
            let _invoice = invoice.enter();
            tracing::warn!(
                target = "would collide",
                latency_ms = 3u64,
                "invoice action"
            );
        });
        let text = String::from_utf8(capture.0.lock().map(|b| b.clone()).unwrap_or_default())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line: Value = serde_json::from_str(lines[0]).unwrap_or(Value::Null);
        let mut keys: Vec<&str> = line
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        // The fixed keys first, then the spans' and the event's fields, all at the top level.
        assert_eq!(
            keys[..4],
            ["timestamp", "level", "target", "message"],
            "{line}"
        );
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "action",
                "external_id",
                "field_target",
                "latency_ms",
                "level",
                "message",
                "run_id",
                "source",
                "target",
                "timestamp"
            ],
            "{line}"
        );
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["target"], "b2b_invoice_sync::telemetry::tests");
        assert_eq!(line["message"], "invoice action");
        assert_eq!(line["run_id"], "r-1");
        assert_eq!(line["field_target"], "would collide");
        assert_eq!(line["latency_ms"], 3);
        // A raw count of `"target":` guards against a duplicate the parser would hide.
        assert_eq!(lines[0].matches("\"target\":").count(), 1, "{text}");
    }
}
