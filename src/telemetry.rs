//! Logging with `tracing`: JSON lines for production (systemd, Kubernetes), a readable format for
//! a terminal. Logs go to stderr so that command output on stdout stays clean for pipes.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

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
    EnvFilter::try_new(&text).map_err(|e| TelemetryError::Filter {
        filter: text,
        reason: e.to_string(),
    })
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
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(true)
                .finish(),
        ),
        _ => Box::new(builder.with_ansi(std::io::stderr().is_terminal()).finish()),
    }
}

/// Installs the global subscriber, logging to stderr.
pub fn init(format: LogFormat, configured_filter: &str) -> Result<(), TelemetryError> {
    let sub = subscriber(format, filter(configured_filter)?, std::io::stderr);
    tracing::subscriber::set_global_default(sub).map_err(|_| TelemetryError::AlreadyInstalled)
}
