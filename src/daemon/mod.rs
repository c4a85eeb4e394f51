//! `run`: the long-running daemon. Every source on its cron schedule (never overlapping itself),
//! graceful shutdown on SIGTERM/SIGINT within a deadline, health and metrics endpoints, and
//! systemd notifications (READY, WATCHDOG, STOPPING) when run under `Type=notify`.

pub mod health;
pub mod http;
pub mod leases;
pub mod liveness;
pub mod scheduler;

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::task::JoinSet;

use crate::config::Settings;
use crate::sync::engine::{Engine, EngineError};
use health::Health;
use liveness::Liveness;
use scheduler::{run_loop, SystemClock};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Setup(String),
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Run every source once at start, before waiting for its schedule.
    pub run_now: bool,
}

/// Runs until a SIGTERM or SIGINT, then stops within `daemon.shutdown_deadline`.
pub async fn run(
    settings: &Settings,
    pool: PgPool,
    options: RunOptions,
) -> Result<(), DaemonError> {
    // Registered first, so a SIGTERM during start-up is a graceful stop too.
    let mut signals = Signals::register();
    // Before the engine: its clients set gauges (the configured budget) when they are built.
    let metrics = crate::telemetry_metrics::install().map_err(DaemonError::Setup)?;
    let engine = Arc::new(Engine::new(settings, pool.clone())?);
    let stop = engine.stop_token();
    let health = Arc::new(Health::new(
        pool,
        settings.daemon.unready_after_failed_cycles,
    ));
    let liveness = Liveness::new(settings.daemon.max_cycle);
    let http_stop = tokio_util::sync::CancellationToken::new();
    let http = match settings.daemon.http_address {
        Some(addr) => Some(
            http::serve(
                addr,
                http::router(health.clone(), liveness.clone(), metrics, engine.clone()),
                http_stop.clone(),
            )
            .await
            .map_err(DaemonError::Setup)?,
        ),
        None => None,
    };

    // Every per-source series from the start, read from the database.
    engine.publish_health().await;
    let mut loops = JoinSet::new();
    if engine.source_names().is_empty() {
        tracing::warn!("no [sources] configured: nothing to sync (the endpoints still answer)");
    }
    for name in engine.source_names() {
        let Some(src) = settings.sources.get(&name) else {
            continue;
        };
        let (schedule, jitter) = (src.schedule.clone(), src.start_jitter);
        let (engine, stop, health) = (engine.clone(), stop.clone(), health.clone());
        let pulse = liveness.source(&name);
        tracing::info!(source = %name, schedule = schedule.expression(), timezone = %schedule.timezone(), "scheduled");
        loops.spawn(async move {
            run_loop(&name, &schedule, jitter, options.run_now, &SystemClock, &stop, &pulse, || {
                let (engine, health, name) = (engine.clone(), health.clone(), name.clone());
                async move {
                    match engine.run_cycle(&name).await {
                        Ok(report) => health.record(&name, report.outcome),
                        Err(e) => {
                            tracing::error!(source = %name, error = %e, "the cycle could not run");
                            health.record(&name, crate::store::runs::Outcome::Failed);
                        }
                    }
                }
            })
            .await
        });
    }

    notify(&[sd_notify::NotifyState::Ready]);
    // The watchdog beats only while the loops prove progress: a stuck loop or cycle stops it,
    // and systemd restarts the service.
    let watchdog = sd_notify::watchdog_enabled().map(|every| {
        let liveness = liveness.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every / 2).await;
                match liveness.alive() {
                    Ok(()) => notify(&[sd_notify::NotifyState::Watchdog]),
                    Err(why) => {
                        tracing::error!(reason = %why, "not alive: the watchdog heartbeat stops")
                    }
                }
            }
        })
    });
    tracing::info!(sources = loops.len(), "running");

    signals.next().await;
    tracing::info!(
        deadline_secs = settings.daemon.shutdown_deadline.as_secs(),
        "shutting down: no new work; waiting for work in flight"
    );
    notify(&[sd_notify::NotifyState::Stopping]);
    stop.cancel();
    // A second signal means "now": exit at once (in-flight requests are settled by recovery).
    tokio::spawn(async move {
        signals.next().await;
        eprintln!("second signal: exiting at once");
        std::process::exit(130);
    });
    let drained = tokio::time::timeout(settings.daemon.shutdown_deadline, async {
        while loops.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(still_running = loops.len(), "shutdown deadline passed: exiting; requests still in flight are settled by recovery at the next start");
        loops.abort_all();
    }
    if let Some(w) = watchdog {
        w.abort();
    }
    http_stop.cancel();
    if let Some(h) = http {
        let _ = tokio::time::timeout(Duration::from_secs(2), h).await;
    }
    tracing::info!("stopped");
    Ok(())
}

fn notify(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}

/// SIGTERM and SIGINT, as one stream.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn register() -> Self {
        Self {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(term) = self.term.as_mut() {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
