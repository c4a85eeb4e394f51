//! What every outbound HTTP client of this daemon shares (B2B Edition, the unified accounting
//! APIs, Rebillia): one way to build the reqwest client, to name a transport error with its
//! causes, to read how long an answer asks us to wait (`Retry-After`), and to cut a body to a
//! short excerpt for an error message or a log line, and to send a request again ([`retry`]).
//! Each client adds only what differs (its headers, its cap on the wait, the JSON field its
//! errors carry, how it sorts a failure).

pub mod retry;

use std::time::Duration;

use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE, RETRY_AFTER};

/// The HTTP client every API client starts from: rustls, the two timeouts, and a `User-Agent`
/// naming this release and this process (which replica sent a request shows in the API's logs).
pub fn client(
    request_timeout: Duration,
    connect_timeout: Duration,
) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(request_timeout)
        .connect_timeout(connect_timeout)
        .user_agent(format!(
            "b2b-invoice-sync/{} ({})",
            env!("CARGO_PKG_VERSION"),
            crate::process::process_name()
        ))
        .build()
}

/// `request` as every API here takes it: asking for JSON, with `query`'s pairs (when there are
/// any) and `body`, JSON already encoded, with its `Content-Type` (when there is one).
pub fn json_request<B: Into<reqwest::Body>>(
    mut request: reqwest::RequestBuilder,
    query: &[(&str, String)],
    body: Option<B>,
) -> reqwest::RequestBuilder {
    request = request.header(ACCEPT, "application/json");
    if !query.is_empty() {
        request = request.query(query);
    }
    if let Some(body) = body {
        request = request.header(CONTENT_TYPE, "application/json").body(body);
    }
    request
}

/// The error and its causes on one line (reqwest's Display alone hides the cause).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// How long the answer asks us to wait: `Retry-After` in seconds (whole or not) or as an HTTP
/// date, else BigCommerce's `X-Rate-Limit-Time-Reset-Ms`. `None` when it says nothing usable.
/// Callers cap it (a server may ask for hours).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(value) = header(RETRY_AFTER.as_str()) {
        return match value.parse::<f64>() {
            Ok(secs) if secs.is_finite() && secs >= 0.0 => Some(Duration::from_secs_f64(secs)),
            _ => {
                let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
                let secs = (at.timestamp() - chrono::Utc::now().timestamp()).max(0);
                Some(Duration::from_secs(secs.unsigned_abs()))
            }
        };
    }
    let ms = header("x-rate-limit-time-reset-ms")?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ms))
}

/// A body in at most `max` characters, on one line: an HTML error page as its title (see
/// [`html_excerpt`]), anything else with its runs of whitespace and control characters made one
/// space; `(empty body)` when there is nothing.
pub fn excerpt(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    if let Some(page) = html_excerpt(&text) {
        return page;
    }
    let collapsed = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if collapsed.is_empty() {
        return "(empty body)".to_owned();
    }
    let mut out: String = collapsed.chars().take(max).collect();
    if collapsed.chars().count() > max {
        out.push('…');
    }
    out
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
    fn an_error_is_named_with_its_causes_once() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("error sending request")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ));
        assert_eq!(error_chain(&e), "error sending request: refused");
    }

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        assert_eq!(excerpt(b"a\nb", 10), "a b");
        assert_eq!(excerpt(b"a\n  b", 10), "a b");
        assert_eq!(excerpt(b"abcdef", 3), "abc…");
        assert_eq!(excerpt(b"", 10), "(empty body)");
        assert_eq!(
            excerpt(
                b"<html><head><title>502 Bad Gateway</title></head></html>",
                10
            ),
            "an HTML page: 502 Bad Gateway"
        );
    }

    #[test]
    fn retry_after_reads_seconds_dates_and_reset_ms() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(
            "x-rate-limit-time-reset-ms",
            "1500".parse().expect("header"),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        h.insert(RETRY_AFTER, "2.5".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(2500)));
        h.insert(RETRY_AFTER, "7".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        h.insert(RETRY_AFTER, later.parse().expect("header"));
        let wait = retry_after(&h).expect("a date");
        assert!(
            wait <= Duration::from_secs(30) && wait >= Duration::from_secs(28),
            "{wait:?}"
        );
        h.insert(RETRY_AFTER, "soon".parse().expect("header"));
        assert_eq!(retry_after(&h), None);
    }

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
}
