//! How the benchmarks measure: peak memory from `/proc`, SQL statements from sqlx's query
//! events, and the machine they ran on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// The peak resident set size (`VmHWM`) in KiB of this process (`None`) or of process `pid`.
pub fn peak_rss_kib(pid: Option<u32>) -> Option<u64> {
    status_field(pid, "VmHWM:")
}

/// The current resident set size (`VmRSS`) in KiB.
pub fn rss_kib(pid: Option<u32>) -> Option<u64> {
    status_field(pid, "VmRSS:")
}

/// Starts a new peak: writing 5 to `clear_refs` resets `VmHWM` to the current RSS (Linux 4.0+),
/// so each scenario's peak is its own. False when the kernel does not allow it.
pub fn reset_peak_rss(pid: Option<u32>) -> bool {
    std::fs::write(format!("{}/clear_refs", proc_dir(pid)), "5").is_ok()
}

/// CPU time (user + system, every thread) this process (`None`) or process `pid` has used.
/// `/proc/<pid>/stat` counts it in USER_HZ ticks, which Linux fixes at 100 a second.
pub fn cpu_time(pid: Option<u32>) -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string(format!("{}/stat", proc_dir(pid))).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    // Fields 14 (utime) and 15 (stime); `rest` starts at field 3.
    let total = ticks(11)? + ticks(12)?;
    Some(std::time::Duration::from_millis(total * 10))
}

fn proc_dir(pid: Option<u32>) -> String {
    pid.map_or_else(|| "/proc/self".to_owned(), |p| format!("/proc/{p}"))
}

fn status_field(pid: Option<u32>, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("{}/status", proc_dir(pid))).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

static STATEMENTS: AtomicU64 = AtomicU64::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

/// A tracing layer counting the statements sqlx sends: sqlx emits one `sqlx::query` event per
/// statement it executes (at DEBUG), so the count is exact for every query the daemon makes
/// through sqlx. Give it a per-layer filter enabling `sqlx::query=debug`.
#[derive(Debug)]
pub struct StatementCounter(());

impl StatementCounter {
    pub fn install_marker() -> Self {
        COUNTING.store(true, Ordering::Relaxed);
        Self(())
    }
}

impl<S: Subscriber> Layer<S> for StatementCounter {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            STATEMENTS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// SQL statements sent so far, if a [`StatementCounter`] is installed.
pub fn statements_sent() -> Option<u64> {
    COUNTING
        .load(Ordering::Relaxed)
        .then(|| STATEMENTS.load(Ordering::Relaxed))
}

/// What the numbers were measured on.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_total_mib: Option<u64>,
    pub date: String,
    /// `/proc/loadavg`'s 1, 5 and 15 minute averages when described: the machine is shared,
    /// so this says how much else was running.
    pub load_average: Option<String>,
}

impl Machine {
    pub fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, m)| m.trim().to_owned());
        let memory_total_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|kib| kib.parse::<u64>().ok())
            })
            .map(|kib| kib / 1024);
        Self {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory_total_mib,
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            load_average: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")),
        }
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} CPUs ({}), {} memory, {}, load average {} at the end",
            self.cpus,
            self.cpu_model,
            self.memory_total_mib.map_or_else(
                || "unknown".to_owned(),
                |m| format!("{:.1} GiB", m as f64 / 1024.0)
            ),
            self.date,
            self.load_average.as_deref().unwrap_or("unknown"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_memory() {
        // Read the current size first: the peak read after it can only be as large or larger.
        let now = rss_kib(None).unwrap_or(0);
        let peak = peak_rss_kib(None).unwrap_or(0);
        assert!(peak >= now && now > 0, "peak {peak} KiB, now {now} KiB");
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(50) {
            std::hint::black_box(0);
        }
        assert!(cpu_time(None).is_some_and(|t| t > std::time::Duration::ZERO));
    }
}
