//! The ERP side's request accounting, in the one place both HTTP adapters (Unified, Rebillia)
//! report every request they send: `b2bsync_erp_requests_total{source,status}`,
//! `b2bsync_erp_request_duration_seconds{source}`, `b2bsync_erp_rate_limited_total{source}`, and
//! the per-source count a cycle reads to report its ERP calls apart from its B2B calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::telemetry_metrics as m;

/// How a request to the ERP ended, as the `status` label shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// An answer with this HTTP status.
    Status(u16),
    /// No answer within the timeout.
    Timeout,
    /// No connection, or it was lost.
    Transport,
}

impl Ended {
    /// `200`, `429`, `timeout`, `transport`: the labels of `b2bsync_b2b_requests_total`.
    pub fn label(self) -> String {
        match self {
            Self::Status(code) => code.to_string(),
            Self::Timeout => "timeout".to_owned(),
            Self::Transport => "transport".to_owned(),
        }
    }

    /// How a reqwest failure counts.
    pub fn of_error(err: &reqwest::Error) -> Self {
        if err.is_timeout() {
            Self::Timeout
        } else {
            Self::Transport
        }
    }
}

fn counters() -> &'static Mutex<HashMap<String, Arc<AtomicU64>>> {
    static CALLS: OnceLock<Mutex<HashMap<String, Arc<AtomicU64>>>> = OnceLock::new();
    CALLS.get_or_init(Mutex::default)
}

fn counter(source: &str) -> Arc<AtomicU64> {
    let mut all = counters().lock().unwrap_or_else(|e| e.into_inner());
    all.entry(source.to_owned()).or_default().clone()
}

/// One request to `source`'s ERP that ended as `ended` after `took` (the request alone: any
/// wait for the source's budget is not in it).
pub fn record(source: &str, ended: Ended, took: Duration) {
    counter(source).fetch_add(1, Ordering::Relaxed);
    if ended == Ended::Status(429) {
        metrics::counter!(m::ERP_RATE_LIMITED, "source" => source.to_owned()).increment(1);
    }
    metrics::counter!(m::ERP_REQUESTS, "source" => source.to_owned(), "status" => ended.label())
        .increment(1);
    metrics::histogram!(m::ERP_REQUEST_DURATION, "source" => source.to_owned())
        .record(took.as_secs_f64());
}

/// Requests sent to `source`'s ERP by this process so far; a cycle reports the difference
/// between its end and its start (a source runs one cycle at a time per process).
pub fn calls(source: &str) -> u64 {
    counter(source).load(Ordering::Relaxed)
}

/// Characters of an HTML error page kept in an error or a log line.
pub const HTML_EXCERPT_CHARS: usize = 120;

/// An HTML error page (a proxy's or load balancer's 502, a login page) in a few words: its
/// title, else its text without tags, scripts and styles, on one line and at most
/// [`HTML_EXCERPT_CHARS`] long. `None` when the body is not an HTML page.
pub fn html_excerpt(body: &str) -> Option<String> {
    let lower = body.to_ascii_lowercase();
    let is_page = lower.trim_start().starts_with("<!doctype html")
        || lower.contains("<title")
        || lower.contains("<body")
        || lower.contains("<head");
    if !is_page {
        return None;
    }
    let title = between(body, &lower, "<title", "</title>").map(strip_tags);
    let text = title
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| strip_tags(&without_blocks(body)));
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = words.chars().take(HTML_EXCERPT_CHARS).collect();
    if words.chars().count() > HTML_EXCERPT_CHARS {
        out.push('…');
    }
    Some(format!(
        "an HTML page: {}",
        if out.is_empty() { "(no text)" } else { &out }
    ))
}

/// The text between the first `open` tag (whatever its attributes) and `close`.
fn between<'a>(body: &'a str, lower: &str, open: &str, close: &str) -> Option<&'a str> {
    let start = lower.find(open)?;
    let start = start + lower.get(start..)?.find('>')? + 1;
    let end = start + lower.get(start..)?.find(close)?;
    body.get(start..end)
}

/// `body` without its `<script>` and `<style>` blocks.
fn without_blocks(body: &str) -> String {
    let mut out = body.to_owned();
    for tag in ["script", "style", "head"] {
        loop {
            let lower = out.to_ascii_lowercase();
            let Some(start) = lower.find(&format!("<{tag}")) else {
                break;
            };
            let close = format!("</{tag}>");
            let end = lower
                .get(start..)
                .and_then(|rest| rest.find(&close))
                .map_or(out.len(), |i| start + i + close.len());
            out.replace_range(start..end, " ");
        }
    }
    out
}

/// Text without `<...>` tags.
fn strip_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_html_error_page_is_reduced_to_a_short_excerpt() {
        let page = format!(
            "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title><style>body {{ color: red }}</style>\
             <script>var x = 1;</script></head><body><h1>502 Bad Gateway</h1><p>{}</p></body></html>",
            "nginx ".repeat(200)
        );
        assert_eq!(
            html_excerpt(&page).as_deref(),
            Some("an HTML page: 502 Bad Gateway")
        );
        let untitled = format!(
            "<html><body><h1>Service unavailable</h1>{}</body></html>",
            "x ".repeat(300)
        );
        let short = html_excerpt(&untitled).unwrap_or_default();
        assert!(
            short.starts_with("an HTML page: Service unavailable x x"),
            "{short}"
        );
        assert!(short.chars().count() <= HTML_EXCERPT_CHARS + 20, "{short}");
        assert_eq!(html_excerpt(r#"{"message": "busy"}"#), None);
        assert_eq!(
            html_excerpt("<html>\nbusy</html>"),
            None,
            "a fragment stays as it is"
        );
    }

    #[test]
    fn requests_count_per_source() {
        let before = calls("requests-test-a");
        record(
            "requests-test-a",
            Ended::Status(200),
            Duration::from_millis(5),
        );
        record(
            "requests-test-a",
            Ended::Status(429),
            Duration::from_millis(5),
        );
        record("requests-test-b", Ended::Timeout, Duration::from_millis(5));
        assert_eq!(calls("requests-test-a") - before, 2);
        assert_eq!(Ended::Status(429).label(), "429");
        assert_eq!(Ended::Timeout.label(), "timeout");
        assert_eq!(Ended::Transport.label(), "transport");
    }
}
