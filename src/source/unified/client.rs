//! HTTP to the unified API: URLs built from [`UnifiedNames`], the bearer key, and retries of
//! transient failures.
//!
//! Reads go through [`UnifiedClient::send`], which retries every transient failure. The payments
//! write-back (`PUT {invoices_path}/{id}`) sends through [`UnifiedClient::exchange`] instead and
//! sorts failures itself (`super::call`): a PUT that timed out or got a 5xx may have been
//! applied, and is never retried blindly.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tracing::Instrument;
use url::Url;

use crate::b2b::retry::backoff;
use crate::config::{RetrySettings, UnifiedNames, UnifiedSettings};
use crate::source::SourceError;

/// Characters of a response body quoted in error messages.
const EXCERPT_CHARS: usize = 300;
/// A `Retry-After` longer than this is cut to it: a wrong header must not stall a cycle for hours.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// The unified API for one source.
#[derive(Debug)]
pub(crate) struct UnifiedClient {
    source: Arc<str>,
    http: reqwest::Client,
    /// Ends with `/`, so joining a relative path keeps its last segment.
    base: Url,
    /// `Bearer <api_key>`, marked sensitive (redacted in Debug output).
    auth: HeaderValue,
    /// Only to scrub the key from error bodies that might echo it.
    api_key: SecretString,
    credential_id: String,
    names: UnifiedNames,
    page_size: u32,
    retry: RetrySettings,
    list_endpoint: String,
    get_endpoint: String,
}

/// The answer to one request, read to its end.
pub(super) struct Answer {
    pub status: StatusCode,
    /// Already cut to [`MAX_RETRY_AFTER`].
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

/// How one attempt failed.
enum Failure {
    /// May succeed if tried again (5xx, 429, timeouts, connection errors).
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Will fail again: give up now.
    Final(SourceError),
}

impl UnifiedClient {
    pub(crate) fn new(source: &str, settings: &UnifiedSettings) -> Result<Self, SourceError> {
        let http = reqwest::Client::builder()
            .timeout(settings.http.request_timeout)
            .connect_timeout(settings.http.connect_timeout)
            .user_agent(concat!("b2b-invoice-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SourceError::Protocol {
                source_name: source.to_owned(),
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        let mut auth = HeaderValue::from_str(&format!(
            "Bearer {}",
            settings.api_key.expose_secret().trim()
        ))
        .map_err(|_| SourceError::Unauthorized {
            source_name: source.to_owned(),
            message: "the api_key cannot be sent as an HTTP header (it contains characters \
                      headers do not allow); check sources.<name>.unified.api_key"
                .to_owned(),
        })?;
        auth.set_sensitive(true);
        let mut base = settings.base_url.clone();
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let path = invoices_path(&settings.names);
        Ok(Self {
            source: Arc::from(source),
            http,
            base,
            auth,
            api_key: settings.api_key.clone(),
            credential_id: settings.credential_id.clone(),
            names: settings.names.clone(),
            page_size: settings.http.page_size.get(),
            retry: settings.http.retry,
            list_endpoint: format!("GET /{path}"),
            get_endpoint: format!("GET /{path}/{{id}}"),
        })
    }

    pub(crate) fn names(&self) -> &UnifiedNames {
        &self.names
    }

    pub(crate) fn page_size(&self) -> u32 {
        self.page_size
    }

    pub(super) fn source_name(&self) -> &str {
        &self.source
    }

    pub(super) fn retry(&self) -> &RetrySettings {
        &self.retry
    }

    /// `PUT /{invoices_path}/{id}`, for logs and errors.
    pub(super) fn put_endpoint(&self) -> String {
        self.get_endpoint.replacen("GET", "PUT", 1)
    }

    /// `GET /{invoices_path}/{id}`, for logs and errors.
    pub(super) fn get_endpoint(&self) -> &str {
        &self.get_endpoint
    }

    /// `{base}/{invoices_path}?credentialId=..&limit=..[&next=..][&updatedAfter=..]`.
    pub(crate) fn list_url(
        &self,
        updated_after: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<Url, SourceError> {
        let mut url = self.invoices_url()?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair(&self.names.credential_param, &self.credential_id);
            query.append_pair(&self.names.limit_param, &self.page_size.to_string());
            if let Some(cursor) = cursor {
                query.append_pair(&self.names.cursor_param, cursor);
            }
            if let Some(after) = updated_after {
                query.append_pair(
                    &self.names.updated_after_param,
                    &after.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                );
            }
        }
        Ok(url)
    }

    /// `{base}/{invoices_path}/{id}?credentialId=..`, the id percent-encoded as one segment.
    pub(crate) fn invoice_url(&self, remote_id: &str) -> Result<Url, SourceError> {
        let mut url = self.invoices_url()?;
        url.path_segments_mut()
            .map_err(|()| self.protocol(format!("base_url {} cannot hold a path", self.base)))?
            .push(remote_id);
        url.query_pairs_mut()
            .append_pair(&self.names.credential_param, &self.credential_id);
        Ok(url)
    }

    fn invoices_url(&self) -> Result<Url, SourceError> {
        self.base
            .join(&invoices_path(&self.names))
            .map_err(|e| self.protocol(format!("cannot build the invoices URL: {e}")))
    }

    pub(crate) async fn get_list(&self, url: Url) -> Result<Value, SourceError> {
        let endpoint = self.list_endpoint.clone();
        self.send(&endpoint, Method::GET, url, None).await
    }

    pub(crate) async fn get_one(&self, url: Url) -> Result<Value, SourceError> {
        let endpoint = self.get_endpoint.clone();
        self.send(&endpoint, Method::GET, url, None).await
    }

    /// Sends a request, retrying transient failures with backoff (or the server's
    /// `Retry-After` after a 429) up to `retry.max_attempts` attempts in all.
    pub(crate) async fn send(
        &self,
        endpoint: &str,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Value, SourceError> {
        let body = body.map(serde_json::to_vec).transpose().map_err(|e| {
            self.protocol(format!("{endpoint}: cannot encode the request body: {e}"))
        })?;
        let max_attempts = self.retry.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let span = tracing::debug_span!(
                "unified_request",
                source = %self.source,
                endpoint,
                attempt,
            );
            let result = self
                .send_once(endpoint, method.clone(), url.clone(), body.as_deref())
                .instrument(span.clone())
                .await;
            let (message, retry_after) = match result {
                Ok(value) => return Ok(value),
                Err(Failure::Final(err)) => {
                    span.in_scope(|| tracing::warn!(error = %err, "unified API request failed"));
                    return Err(err);
                }
                Err(Failure::Transient {
                    message,
                    retry_after,
                }) => (message, retry_after),
            };
            if attempt >= max_attempts {
                let err = SourceError::Unavailable {
                    source_name: self.source.to_string(),
                    message: format!("{endpoint}: {message} (gave up after {attempt} attempts)"),
                };
                span.in_scope(|| tracing::warn!(error = %err, "unified API request failed"));
                return Err(err);
            }
            let wait = retry_after
                .map(|wait| wait.min(MAX_RETRY_AFTER))
                .unwrap_or_else(|| backoff(&self.retry, attempt));
            span.in_scope(|| {
                tracing::info!(
                    error = %message,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "retrying unified API request"
                )
            });
            tokio::time::sleep(wait).await;
        }
    }

    /// One request and its whole answer; transport failures as reqwest reports them.
    pub(super) async fn exchange(
        &self,
        method: Method,
        url: Url,
        body: Option<&[u8]>,
    ) -> Result<Answer, reqwest::Error> {
        let mut request = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, self.auth.clone())
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        let started = tokio::time::Instant::now();
        let response = request.send().await?;
        let status = response.status();
        let retry_after = retry_after(response.headers()).map(|wait| wait.min(MAX_RETRY_AFTER));
        let bytes = response.bytes().await?;
        tracing::debug!(
            status = status.as_u16(),
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            bytes = bytes.len(),
            "unified API response"
        );
        Ok(Answer {
            status,
            retry_after,
            body: bytes.to_vec(),
        })
    }

    async fn send_once(
        &self,
        endpoint: &str,
        method: Method,
        url: Url,
        body: Option<&[u8]>,
    ) -> Result<Value, Failure> {
        let Answer {
            status,
            retry_after,
            body: bytes,
        } = self
            .exchange(method, url, body)
            .await
            .map_err(|e| transport(&e))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                Failure::Final(self.protocol(format!(
                    "{endpoint}: the answer is not JSON ({e}); body starts: {}",
                    self.excerpt(&bytes)
                )))
            });
        }
        let message = format!("HTTP {}: {}", status.as_u16(), self.error_message(&bytes));
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Failure::Final(SourceError::Unauthorized {
                    source_name: self.source.to_string(),
                    message: format!(
                        "{endpoint}: {message}; check the source's api_key and that it may read \
                         credential {}",
                        self.credential_id
                    ),
                })
            }
            StatusCode::TOO_MANY_REQUESTS => Failure::Transient {
                message,
                retry_after,
            },
            StatusCode::REQUEST_TIMEOUT => Failure::Transient {
                message,
                retry_after: None,
            },
            s if s.is_server_error() => Failure::Transient {
                message,
                retry_after: None,
            },
            StatusCode::NOT_FOUND => Failure::Final(self.protocol(format!(
                "{endpoint}: {message}; check base_url, names.invoices_path and credential_id"
            ))),
            _ => Failure::Final(self.protocol(format!("{endpoint}: refused: {message}"))),
        })
    }

    fn protocol(&self, message: String) -> SourceError {
        SourceError::Protocol {
            source_name: self.source.to_string(),
            message,
        }
    }

    /// The API's own words (`message`, `error`, `error.message`), else a body excerpt.
    pub(super) fn error_message(&self, body: &[u8]) -> String {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let from_json = json.as_ref().and_then(|json| {
            let text = |v: &Value| {
                v.as_str()
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty())
            };
            json.get("message")
                .and_then(text)
                .or_else(|| json.get("error").and_then(text))
                .or_else(|| json.get("error")?.get("message").and_then(text))
        });
        let text = from_json.unwrap_or_else(|| excerpt(body, EXCERPT_CHARS));
        self.scrub(text)
    }

    fn excerpt(&self, body: &[u8]) -> String {
        self.scrub(excerpt(body, EXCERPT_CHARS))
    }

    /// An API that echoes the presented key must not get it into our logs and errors.
    fn scrub(&self, text: String) -> String {
        let key = self.api_key.expose_secret().trim();
        if key.is_empty() || !text.contains(key) {
            return text;
        }
        text.replace(key, "<redacted>")
    }
}

/// The configured path without surrounding slashes (a leading one would replace the base path).
fn invoices_path(names: &UnifiedNames) -> String {
    names.invoices_path.trim_matches('/').to_owned()
}

/// Every transport failure of a read is worth another try: timeouts, refused or reset
/// connections, a body cut short.
fn transport(err: &reqwest::Error) -> Failure {
    let message = if err.is_timeout() {
        "no answer within the request timeout".to_owned()
    } else {
        error_chain(err)
    };
    Failure::Transient {
        message,
        retry_after: None,
    }
}

/// The error and its causes on one line (reqwest's Display alone hides the cause).
pub(super) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
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

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    let secs = (at.timestamp() - Utc::now().timestamp()).max(0);
    Some(Duration::from_secs(secs.unsigned_abs()))
}

/// The first `max` characters of a body, on one line.
fn excerpt(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;
    use crate::config::HttpSettings;

    fn settings(base: &str, names: UnifiedNames) -> UnifiedSettings {
        UnifiedSettings {
            base_url: base.parse().unwrap(),
            api_key: SecretString::from("key_SECRET_123"),
            credential_id: "cred 1".to_owned(),
            http: HttpSettings {
                request_timeout: Duration::from_secs(5),
                connect_timeout: Duration::from_secs(1),
                retry: RetrySettings::default(),
                page_size: NonZeroU32::new(250).unwrap(),
            },
            names,
        }
    }

    fn after() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-21T09:55:00.250Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn list_urls_use_the_default_names_of_004() {
        let client = UnifiedClient::new(
            "erp",
            &settings("https://api.example.com/v1", UnifiedNames::default()),
        )
        .unwrap();
        let url = client.list_url(Some(after()), Some("abc/+=")).unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.example.com/v1/accounting/invoices?credentialId=cred+1&limit=250&next=abc%2F%2B%3D&updatedAfter=2026-11-21T09%3A55%3A00.250Z"
        );
        let first = client.list_url(None, None).unwrap();
        assert_eq!(
            first.as_str(),
            "https://api.example.com/v1/accounting/invoices?credentialId=cred+1&limit=250"
        );
        let one = client.invoice_url("INV/7 a").unwrap();
        assert_eq!(
            one.as_str(),
            "https://api.example.com/v1/accounting/invoices/INV%2F7%20a?credentialId=cred+1"
        );
    }

    #[test]
    fn every_wire_name_comes_from_the_settings() {
        let names = UnifiedNames {
            invoices_path: "/erp/bills/".to_owned(),
            credential_param: "connection".to_owned(),
            limit_param: "pageSize".to_owned(),
            cursor_param: "pageToken".to_owned(),
            updated_after_param: "modifiedSince".to_owned(),
            list_field: "data".to_owned(),
            next_field: "nextPageToken".to_owned(),
            single_field: "data".to_owned(),
        };
        let client = UnifiedClient::new("erp", &settings("https://h.example/api/", names)).unwrap();
        let url = client.list_url(Some(after()), Some("t1")).unwrap();
        assert_eq!(
            url.as_str(),
            "https://h.example/api/erp/bills?connection=cred+1&pageSize=250&pageToken=t1&modifiedSince=2026-11-21T09%3A55%3A00.250Z"
        );
        assert_eq!(
            client.invoice_url("9").unwrap().as_str(),
            "https://h.example/api/erp/bills/9?connection=cred+1"
        );
        assert_eq!(client.list_endpoint, "GET /erp/bills");
    }

    #[test]
    fn the_key_is_sensitive_and_never_in_debug_output() {
        let client = UnifiedClient::new(
            "erp",
            &settings("https://h.example/", UnifiedNames::default()),
        )
        .unwrap();
        assert!(client.auth.is_sensitive());
        let debug = format!("{client:?}");
        assert!(!debug.contains("key_SECRET_123"), "{debug}");
        assert_eq!(
            client.error_message(br#"{"message":"bad key key_SECRET_123"}"#),
            "bad key <redacted>"
        );
    }

    #[test]
    fn error_messages_come_from_the_body_or_an_excerpt() {
        let client = UnifiedClient::new(
            "erp",
            &settings("https://h.example/", UnifiedNames::default()),
        )
        .unwrap();
        assert_eq!(
            client.error_message(br#"{"error":{"message":"credential not found"}}"#),
            "credential not found"
        );
        assert_eq!(
            client.error_message(
                br#"{"statusCode":400,"error":"Bad Request","message":"limit too big"}"#
            ),
            "limit too big"
        );
        assert_eq!(
            client.error_message(b"<html>\nbusy</html>"),
            "<html> busy</html>"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        assert_eq!(retry_after(&reqwest::header::HeaderMap::new()), None);
    }
}
