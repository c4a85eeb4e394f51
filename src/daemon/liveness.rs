//! What `/healthz` answers, and what the systemd watchdog beats on: proof that the daemon still
//! makes progress, not merely that the process exists. Every source's schedule loop beats at
//! least every [`BEAT`] (it sleeps in slices), and marks when a cycle starts and ends; the daemon
//! is alive while every loop beats and no cycle has run past `[daemon] max_cycle_secs`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// How often a waiting loop beats.
pub const BEAT: Duration = Duration::from_secs(5);
/// A loop that has not beaten for this long (outside a cycle) has stopped.
pub const STALLED_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
struct Pulse {
    beat: Instant,
    cycle_since: Option<Instant>,
}

/// Every source loop's pulse.
#[derive(Debug)]
pub struct Liveness {
    max_cycle: Duration,
    pulses: Mutex<BTreeMap<String, Pulse>>,
}

impl Liveness {
    pub fn new(max_cycle: Duration) -> Arc<Self> {
        Arc::new(Self {
            max_cycle,
            pulses: Mutex::new(BTreeMap::new()),
        })
    }

    /// The handle a source's loop beats through (registered as alive now).
    pub fn source(self: &Arc<Self>, name: &str) -> SourcePulse {
        self.update(name, |_| {});
        SourcePulse {
            liveness: Arc::clone(self),
            name: name.to_owned(),
        }
    }

    fn update(&self, name: &str, change: impl FnOnce(&mut Pulse)) {
        let mut pulses = self.pulses.lock().unwrap_or_else(|e| e.into_inner());
        let pulse = pulses.entry(name.to_owned()).or_insert(Pulse {
            beat: Instant::now(),
            cycle_since: None,
        });
        pulse.beat = Instant::now();
        change(pulse);
    }

    fn forget(&self, name: &str) {
        self.pulses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// `Err(reasons)` when a loop stopped beating or a cycle has run past the limit.
    pub fn alive(&self) -> Result<(), String> {
        let now = Instant::now();
        let pulses = self.pulses.lock().unwrap_or_else(|e| e.into_inner());
        let mut problems = Vec::new();
        for (name, p) in pulses.iter() {
            match p.cycle_since {
                Some(since) if now.duration_since(since) > self.max_cycle => {
                    problems.push(format!(
                        "source {name}: a cycle has run for {} s, past daemon.max_cycle_secs = {}",
                        now.duration_since(since).as_secs(),
                        self.max_cycle.as_secs()
                    ));
                }
                None if now.duration_since(p.beat) > STALLED_AFTER => {
                    problems.push(format!(
                        "source {name}: its schedule loop has not run for {} s",
                        now.duration_since(p.beat).as_secs()
                    ));
                }
                _ => {}
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// One source loop's side of [`Liveness`].
#[derive(Debug)]
pub struct SourcePulse {
    liveness: Arc<Liveness>,
    name: String,
}

impl SourcePulse {
    /// The loop is running (waiting for its next firing).
    pub fn beat(&self) {
        self.liveness.update(&self.name, |_| {});
    }

    pub fn cycle_started(&self) {
        self.liveness
            .update(&self.name, |p| p.cycle_since = Some(Instant::now()));
    }

    pub fn cycle_ended(&self) {
        self.liveness.update(&self.name, |p| p.cycle_since = None);
    }
}

impl Drop for SourcePulse {
    /// A loop that ended on purpose (shutdown, a schedule that never fires again) is not a
    /// stalled one.
    fn drop(&mut self) {
        self.liveness.forget(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_silent_loop_or_a_cycle_past_the_limit_is_not_alive() {
        let live = Liveness::new(Duration::from_secs(60));
        let erp = live.source("erp");
        assert!(live.alive().is_ok());
        tokio::time::sleep(STALLED_AFTER + Duration::from_secs(1)).await;
        let err = live.alive().unwrap_err();
        assert!(
            err.contains("source erp: its schedule loop has not run for 31 s"),
            "{err}"
        );
        erp.beat();
        assert!(live.alive().is_ok());
        // A cycle may take its time, up to the limit.
        erp.cycle_started();
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert!(live.alive().is_ok());
        tokio::time::sleep(Duration::from_secs(2)).await;
        let err = live.alive().unwrap_err();
        assert!(err.contains("past daemon.max_cycle_secs = 60"), "{err}");
        erp.cycle_ended();
        assert!(live.alive().is_ok());
        drop(erp);
        tokio::time::sleep(STALLED_AFTER * 2).await;
        assert!(live.alive().is_ok(), "an ended loop is not a stalled one");
    }
}
