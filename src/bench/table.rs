//! Formatting for the Markdown tables.

use std::time::Duration;

pub(crate) const NONE: &str = "—";

pub(crate) fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| NONE.to_owned(), |v| format!("{v:.3}"))
}

pub(crate) fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| NONE.to_owned(), |v| format!("{:.1} %", v * 100.0))
}

pub(crate) fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || NONE.to_owned(),
        |k| format!("{:.1} MiB", k as f64 / 1024.0),
    )
}

pub(crate) fn rate(count: u64, took: Duration) -> String {
    let secs = took.as_secs_f64();
    if secs <= 0.0 {
        return NONE.to_owned();
    }
    let r = count as f64 / secs;
    if r >= 100.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

pub(crate) fn duration(took: Duration) -> String {
    let secs = took.as_secs_f64();
    if secs < 1.0 {
        format!("{:.0} ms", secs * 1000.0)
    } else if secs < 60.0 {
        format!("{secs:.1} s")
    } else {
        let whole = took.as_secs();
        format!("{}m {:02}s", whole / 60, whole % 60)
    }
}

/// `count / per`, or nothing when there is nothing to divide by.
pub(crate) fn per(count: u64, per: u64) -> Option<f64> {
    (per > 0).then(|| count as f64 / per as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(ratio(per(1010, 1000)), "1.010");
        assert_eq!(ratio(per(5, 0)), NONE);
        assert_eq!(percent(Some(0.987)), "98.7 %");
        assert_eq!(mib(Some(2048)), "2.0 MiB");
        assert_eq!(duration(Duration::from_millis(250)), "250 ms");
        assert_eq!(duration(Duration::from_secs(507)), "8m 27s");
        assert_eq!(rate(1000, Duration::from_secs(4)), "250");
    }
}
