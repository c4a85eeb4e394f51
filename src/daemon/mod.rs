//! `run`: the long-running daemon. Every source on its cron schedule (never overlapping itself),
//! graceful shutdown on SIGTERM/SIGINT within a deadline, health and metrics endpoints, and
//! systemd notifications (READY, WATCHDOG, STOPPING) when run under `Type=notify`.

pub mod api;
pub mod health;
pub mod http;
pub mod leases;
pub mod liveness;
pub mod scheduler;
pub mod trigger;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::sync::engine::{Engine, EngineError};
use health::Health;
use leases::{Change, Leases};
use liveness::Liveness;
use scheduler::{run_loop, SystemClock};
use trigger::{Triggers, Wake};

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
    let triggers = Triggers::new(engine.source_names());
    let api = api::Api::new(&settings.daemon, triggers.clone(), engine.pool().clone());
    // Requests for stores other replicas hold come through PostgreSQL: listened for only when
    // the endpoints are on (one more database connection).
    let listening = (settings.daemon.trigger_token.is_some()
        || settings.daemon.webhook_secret.is_some())
    .then(|| {
        tokio::spawn(api::listen(
            engine.pool().clone(),
            triggers.clone(),
            http_stop.clone(),
        ))
    });
    let http = match settings.daemon.http_address {
        Some(addr) => Some(
            http::serve(
                addr,
                http::router(health.clone(), liveness.clone(), metrics, engine.clone())
                    .merge(api.routes()),
                http_stop.clone(),
            )
            .await
            .map_err(DaemonError::Setup)?,
        ),
        None => None,
    };

    // Every per-source series from the start, read from the database.
    engine.publish_health().await;
    if engine.source_names().is_empty() {
        tracing::warn!("no [sources] configured: nothing to sync (the endpoints still answer)");
    }
    // Stores are worked by whichever replica holds their lease: one process spends a store's
    // whole budget. The supervisor starts a store's source loops when its lease is taken and
    // stops them when it is dropped.
    let leases = Arc::new(Leases::new(engine.ownership().clone()));
    let work = Work {
        settings: settings.clone(),
        engine: engine.clone(),
        health: health.clone(),
        liveness: liveness.clone(),
        run_now: options.run_now,
        triggers,
    };
    let supervisor = tokio::spawn(supervise(leases.clone(), work, stop.clone()));

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
    tracing::info!(replica = leases.replica(), "running");

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
        // Through the logger, so that a JSON stream stays JSON.
        tracing::warn!("second signal: exiting at once");
        std::process::exit(130);
    });
    let drained = tokio::time::timeout(settings.daemon.shutdown_deadline, async {
        match supervisor.await {
            Ok(loops) => loops,
            Err(_) => JoinSet::new(),
        }
    })
    .await;
    match drained {
        Ok(mut loops) => {
            let finished = tokio::time::timeout(settings.daemon.shutdown_deadline, async {
                while loops.join_next().await.is_some() {}
            })
            .await;
            if finished.is_err() {
                tracing::warn!(still_running = loops.len(), "shutdown deadline passed: exiting; requests still in flight are settled by recovery at the next start");
                loops.abort_all();
            }
        }
        Err(_) => tracing::warn!("shutdown deadline passed: exiting"),
    }
    // Other replicas take the stores in their next round, not after the leases' time to live.
    leases.release_all().await;
    if let Some(w) = watchdog {
        w.abort();
    }
    http_stop.cancel();
    if let Some(l) = listening {
        l.abort();
    }
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

/// What a source loop needs.
#[derive(Clone)]
struct Work {
    settings: Settings,
    engine: Arc<Engine>,
    health: Arc<Health>,
    liveness: Arc<Liveness>,
    run_now: bool,
    triggers: Triggers,
}

impl Work {
    /// Starts `name`'s schedule loop, stopped by `stop`.
    fn spawn_source(&self, loops: &mut JoinSet<()>, name: String, stop: CancellationToken) {
        let Some(src) = self.settings.sources.get(&name) else {
            return;
        };
        if let Some(schedule) = src.reconcile_schedule.clone() {
            self.spawn_reconcile(loops, name.clone(), schedule, stop.clone());
        }
        let (schedule, jitter) = (src.schedule.clone(), src.start_jitter);
        let (engine, health) = (self.engine.clone(), self.health.clone());
        let pulse = self.liveness.source(&name);
        let run_now = self.run_now;
        let trigger = self.triggers.get(&name).cloned();
        tracing::info!(source = %name, schedule = schedule.expression(), timezone = %schedule.timezone(), "scheduled");
        loops.spawn(async move {
            if let Some(t) = &trigger {
                t.attach(true);
            }
            run_loop(&name, &schedule, jitter, run_now, &SystemClock, &stop, &pulse, trigger.as_deref(), |wake| {
                let (engine, health, name) = (engine.clone(), health.clone(), name.clone());
                async move {
                    // Readiness follows the full cycles: a webhook's few invoices syncing fine
                    // must not hide a source whose full read keeps failing.
                    let (result, full) = match wake {
                        Wake::Full => (engine.run_cycle(&name).await, true),
                        Wake::Invoices(ids) => (engine.sync_invoices(&name, &ids).await, false),
                    };
                    match result {
                        Ok(report) if !full => {
                            if report.outcome == crate::store::runs::Outcome::Failed {
                                tracing::warn!(source = %name, error = report.error.as_deref(), "the webhook's invoices could not be synced; the next full cycle reads them");
                            }
                        }
                        Ok(report) => health.record(&name, report.outcome),
                        Err(e) => {
                            tracing::error!(source = %name, error = %e, "the cycle could not run");
                            health.record(&name, crate::store::runs::Outcome::Failed);
                        }
                    }
                }
            })
            .await;
            if let Some(t) = &trigger {
                t.attach(false);
            }
        });
    }
}

impl Work {
    /// `reconcile_schedule`: a reconcile of `name` (never `--repair`) at each firing; the report
    /// sets `b2bsync_reconcile_differences` and is summed up in one log line.
    fn spawn_reconcile(
        &self,
        loops: &mut JoinSet<()>,
        name: String,
        schedule: crate::schedule::CronSchedule,
        stop: CancellationToken,
    ) {
        let engine = self.engine.clone();
        let pulse = self.liveness.source(&format!("{name}/reconcile"));
        tracing::info!(source = %name, reconcile_schedule = schedule.expression(), "reconcile scheduled");
        loops.spawn(async move {
            let label = format!("{name}/reconcile");
            run_loop(&label, &schedule, Duration::ZERO, false, &SystemClock, &stop, &pulse, None, |_| {
                let (engine, name) = (engine.clone(), name.clone());
                async move {
                    match crate::reconcile::read::reconcile(&engine, &name, false).await {
                        Ok(report) => {
                            let s = &report.summary;
                            let counts: Vec<String> = s
                                .counts
                                .iter()
                                .map(|(k, n)| format!("{}={n}", k.as_str()))
                                .collect();
                            if s.unexplained > 0 {
                                tracing::warn!(source = %name, unexplained = s.unexplained, counts = %counts.join(" "),
                                    "reconcile: ERP and B2B differ (`reconcile --source` lists them)");
                            } else {
                                tracing::info!(source = %name, counts = %counts.join(" "), "reconcile: ERP and B2B agree");
                            }
                        }
                        // Another replica holds the store: its reconcile loop does it.
                        Err(crate::reconcile::read::ReconcileError::StoreHeld { .. }) => {
                            tracing::debug!(source = %name, "reconcile: the store is another replica's");
                        }
                        Err(e) => tracing::error!(source = %name, error = %e, "reconcile could not run"),
                    }
                }
            })
            .await;
        });
    }
}

/// Lease rounds until `stop`: each store taken gets its sources' loops, each store dropped has
/// them stopped (a cycle in flight is stopped by its budget, closed with the lease). Returns
/// the loops still running, to drain.
async fn supervise(leases: Arc<Leases>, work: Work, stop: CancellationToken) -> JoinSet<()> {
    let mut loops = JoinSet::new();
    let mut stores: std::collections::BTreeMap<String, CancellationToken> =
        std::collections::BTreeMap::new();
    loop {
        match leases.round().await {
            Ok(changes) => {
                for change in changes {
                    match change {
                        Change::Took(store) => {
                            let token = stop.child_token();
                            for source in work.engine.sources_of(&store) {
                                work.spawn_source(&mut loops, source, token.clone());
                            }
                            stores.insert(store, token);
                        }
                        Change::Dropped(store) => {
                            if let Some(token) = stores.remove(&store) {
                                token.cancel();
                            }
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "a lease round failed: the leases held end by themselves unless renewed")
            }
        }
        // Finished loops (a store dropped) are reaped as they end.
        while loops.try_join_next().is_some() {}
        tokio::select! {
            _ = stop.cancelled() => return loops,
            _ = tokio::time::sleep(leases.every()) => {}
        }
    }
}
