//! HTTP to the unified API: URLs built from [`UnifiedNames`] and the paging style, the bearer
//! key, the source's request budget, and retries of transient failures.
//!
//! Every request, reads and the payments write-back alike, goes through the source's
//! [`RequestBudget`] (Alloy: 150 a minute per connection): no 60 s window holds more than the
//! configured requests per minute, and a 429 holds back every request of the source for its
//! `Retry-After`.
//!
//! Reads go through [`UnifiedClient::send`], which retries every transient failure. The payments
//! write-back (`PUT {invoices_path}/{id}`) sends through [`UnifiedClient::exchange`] instead and
//! sorts failures itself (`super::call`): a PUT that timed out or got a 5xx may have been
//! applied, and is never retried blindly.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use crate::b2b::RequestBudget;
use crate::config::{
    BudgetSettings, PagingStyle, RetrySettings, UnifiedApi, UnifiedNames, UnifiedSettings,
};
pub(super) use crate::outbound::error_chain;
use crate::outbound::retry::{self, GaveUp, Verdict, Wait};
use crate::outbound::{excerpt, retry_after};
use crate::source::{requests, SourceError};

/// Characters of a response body quoted in error messages.
const EXCERPT_CHARS: usize = 300;
/// A `Retry-After` longer than this is cut to it: a wrong header must not stall a cycle for hours.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);
/// 429s in a row one request waits out before the read gives up: a 429 is the API asking to
/// slow down, not a failure, so it does not use up `retry.max_attempts`.
const MAX_RATE_LIMITED: u32 = 20;
/// "No limit": far beyond what one process sends.
const UNLIMITED_RPM: u32 = 6_000_000;

/// Which page of a list to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PageAt {
    /// The first page of a cursor-paged list (no cursor parameter).
    First,
    Cursor(String),
    /// Page number (page-number paging).
    Number(u64),
    /// Records to skip (offset paging).
    Offset(u64),
}

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
    api: UnifiedApi,
    page_size: u32,
    retry: RetrySettings,
    budget: Arc<RequestBudget>,
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
    /// May succeed if tried again (5xx, timeouts, connection errors).
    Transient { message: String },
    /// 429: the budget is paused; send again once it lets us.
    RateLimited { message: String },
    /// Will fail again: give up now.
    Final(SourceError),
}

impl Failure {
    fn verdict(&self) -> Verdict {
        match self {
            Self::Transient { .. } => Verdict::Retry(Wait::Backoff),
            Self::RateLimited { .. } => Verdict::RateLimited,
            Self::Final(_) => Verdict::Permanent,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Transient { message } | Self::RateLimited { message } => f.write_str(message),
            Self::Final(err) => err.fmt(f),
        }
    }
}

/// The source's budget: `requests_per_minute` with no burst, paced so that no 60 s window
/// (sliding, not only aligned minutes) holds more than that many requests.
fn budget_settings(api: &UnifiedApi) -> BudgetSettings {
    let one = NonZeroU32::MIN;
    let (rate, burst) = match api.requests_per_minute {
        // Cells every 60 s / (L - 1) put at most L of them in any closed 60 s window.
        Some(limit) => (NonZeroU32::new(limit.get() - 1).unwrap_or(one), one),
        None => (
            NonZeroU32::new(UNLIMITED_RPM).unwrap_or(one),
            NonZeroU32::new(1000).unwrap_or(one),
        ),
    };
    BudgetSettings {
        requests_per_minute: rate,
        burst,
        max_concurrent: NonZeroUsize::new(4).unwrap_or(NonZeroUsize::MIN),
        default_retry_after: Duration::from_secs(60),
    }
}

impl UnifiedClient {
    pub(crate) fn new(source: &str, settings: &UnifiedSettings) -> Result<Self, SourceError> {
        let http = requests::client(source, &settings.http)?;
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
        let path = relative(&settings.names.invoices_path);
        Ok(Self {
            source: Arc::from(source),
            http,
            base,
            auth,
            api_key: settings.api_key.clone(),
            credential_id: settings.credential_id.clone(),
            names: settings.names.clone(),
            api: settings.api.clone(),
            page_size: settings.http.page_size.get(),
            retry: settings.http.retry,
            budget: Arc::new(RequestBudget::new(&budget_settings(&settings.api))),
            list_endpoint: format!("GET /{path}"),
            get_endpoint: format!("GET /{path}/{{id}}"),
        })
    }

    pub(crate) fn names(&self) -> &UnifiedNames {
        &self.names
    }

    pub(crate) fn api(&self) -> &UnifiedApi {
        &self.api
    }

    pub(crate) fn page_size(&self) -> u32 {
        self.page_size
    }

    pub(crate) fn base_url(&self) -> &Url {
        &self.base
    }

    pub(crate) fn credential_id(&self) -> &str {
        &self.credential_id
    }

    pub(super) fn source_name(&self) -> &str {
        &self.source
    }

    pub(super) fn retry(&self) -> &RetrySettings {
        &self.retry
    }

    /// Requests the budget let through so far (for logs and tests).
    pub(crate) fn requests_sent(&self) -> u64 {
        self.budget.stats().granted
    }

    /// `PUT /{invoices_path}/{id}`, for logs and errors.
    pub(super) fn put_endpoint(&self) -> String {
        self.get_endpoint.replacen("GET", "PUT", 1)
    }

    /// `GET /{invoices_path}/{id}`, for logs and errors.
    pub(super) fn get_endpoint(&self) -> &str {
        &self.get_endpoint
    }

    pub(crate) fn list_endpoint(&self) -> &str {
        &self.list_endpoint
    }

    /// The first page of a list in this source's paging style.
    pub(crate) fn first_page(&self) -> PageAt {
        match self.api.paging {
            PagingStyle::NextField | PagingStyle::BodyCursor => PageAt::First,
            PagingStyle::PageNumber => PageAt::Number(u64::from(self.api.first_page)),
            PagingStyle::Offset => PageAt::Offset(0),
        }
    }

    /// `{base}/{invoices_path}?credentialId=..&limit=..[&<page>][&updatedAfter=..]`.
    pub(crate) fn list_url(
        &self,
        updated_after: Option<DateTime<Utc>>,
        page: &PageAt,
    ) -> Result<Url, SourceError> {
        let mut url = self.collection_url(&self.names.invoices_path, page)?;
        if let Some(after) = updated_after {
            url.query_pairs_mut().append_pair(
                &self.names.updated_after_param,
                &after.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            );
        }
        Ok(url)
    }

    /// `{base}/{customers_path}?credentialId=..&limit=..[&<page>]`.
    pub(crate) fn customers_url(&self, page: &PageAt) -> Result<Url, SourceError> {
        self.collection_url(&self.names.customers_path, page)
    }

    fn collection_url(&self, path: &str, page: &PageAt) -> Result<Url, SourceError> {
        let mut url = self.join(path)?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair(&self.names.credential_param, &self.credential_id);
            query.append_pair(&self.names.limit_param, &self.page_size.to_string());
            match page {
                PageAt::First => {}
                PageAt::Cursor(cursor) => {
                    query.append_pair(&self.names.cursor_param, cursor);
                }
                PageAt::Number(n) => {
                    query.append_pair(&self.names.page_param, &n.to_string());
                }
                PageAt::Offset(n) => {
                    query.append_pair(&self.names.offset_param, &n.to_string());
                }
            }
        }
        Ok(url)
    }

    /// `{base}/{invoices_path}/{id}?credentialId=..`, the id percent-encoded as one segment:
    /// the API's own id of the invoice (`names.id_field`).
    pub(crate) fn invoice_url(&self, id: &str) -> Result<Url, SourceError> {
        self.item_url(&self.names.invoices_path, id)
    }

    /// `{base}/{customers_path}/{id}?credentialId=..`.
    pub(crate) fn customer_url(&self, id: &str) -> Result<Url, SourceError> {
        self.item_url(&self.names.customers_path, id)
    }

    fn item_url(&self, path: &str, id: &str) -> Result<Url, SourceError> {
        let mut url = self.join(path)?;
        url.path_segments_mut()
            .map_err(|()| self.protocol(format!("base_url {} cannot hold a path", self.base)))?
            .push(id);
        url.query_pairs_mut()
            .append_pair(&self.names.credential_param, &self.credential_id);
        Ok(url)
    }

    pub(crate) fn join(&self, path: &str) -> Result<Url, SourceError> {
        self.base
            .join(&relative(path))
            .map_err(|e| self.protocol(format!("cannot build the URL of {path}: {e}")))
    }

    pub(crate) async fn get_list(&self, url: Url) -> Result<Value, SourceError> {
        let endpoint = self.list_endpoint.clone();
        self.send(&endpoint, Method::GET, url, None).await
    }

    pub(crate) async fn get_one(&self, url: Url) -> Result<Value, SourceError> {
        let endpoint = self.get_endpoint.clone();
        self.send(&endpoint, Method::GET, url, None).await
    }

    /// Sends a request, retrying transient failures with backoff up to `retry.max_attempts`
    /// attempts in all; 429s are waited out (the budget pauses for their `Retry-After`) up to
    /// [`MAX_RATE_LIMITED`] in a row without using up attempts.
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
        let policy = retry::Policy {
            settings: &self.retry,
            api: "unified API",
            read: method == Method::GET,
            max_rate_limited: MAX_RATE_LIMITED,
        };
        retry::send(
            policy,
            |attempt| {
                tracing::debug_span!(
                    "unified_request",
                    source = %self.source,
                    endpoint,
                    attempt,
                )
            },
            || self.send_once(endpoint, method.clone(), url.clone(), body.as_deref()),
            Failure::verdict,
            |failure, why, attempts| self.give_up(endpoint, failure, why, attempts),
        )
        .await
    }

    /// The error of a read that [`Self::send`] gave up on.
    fn give_up(&self, endpoint: &str, failure: Failure, why: GaveUp, attempts: u32) -> SourceError {
        let message = match failure {
            Failure::Final(err) => return err,
            Failure::Transient { message } | Failure::RateLimited { message } => message,
        };
        let message = match why {
            GaveUp::RateLimited { in_a_row } => format!(
                "{endpoint}: {message} ({in_a_row} times in a row; the API's rate limit is \
                 shared with something else, or requests_per_minute is above the plan's)"
            ),
            _ => format!("{endpoint}: {message} (gave up after {attempts} attempts)"),
        };
        SourceError::Unavailable {
            source_name: self.source.to_string(),
            message,
        }
    }

    /// One request and its whole answer; transport failures as reqwest reports them.
    pub(super) async fn exchange(
        &self,
        method: Method,
        url: Url,
        body: Option<&[u8]>,
    ) -> Result<Answer, reqwest::Error> {
        let request = crate::outbound::json_request(
            self.http
                .request(method, url)
                .header(AUTHORIZATION, self.auth.clone()),
            &[],
            body.map(<[u8]>::to_vec),
        );
        let permit = self.budget.acquire().await;
        let started = tokio::time::Instant::now();
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                requests::record(
                    self.source_name(),
                    requests::Ended::of_error(&e),
                    started.elapsed(),
                );
                return Err(e);
            }
        };
        let status = response.status();
        let retry_after = retry_after(response.headers()).map(|wait| wait.min(MAX_RETRY_AFTER));
        if status == StatusCode::TOO_MANY_REQUESTS {
            // Every request of the source waits, not only this one's retry. Without a
            // Retry-After (Alloy documents none), the backoff's longest step.
            self.budget
                .pause_for(retry_after.unwrap_or(self.retry.max_delay));
        }
        let bytes = response.bytes().await;
        let ended = match &bytes {
            Ok(_) => requests::Ended::Status(status.as_u16()),
            Err(e) => requests::Ended::of_error(e),
        };
        requests::record(self.source_name(), ended, started.elapsed());
        let bytes = bytes?;
        drop(permit);
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
            body: bytes,
            ..
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
            StatusCode::TOO_MANY_REQUESTS => Failure::RateLimited { message },
            StatusCode::REQUEST_TIMEOUT => Failure::Transient { message },
            s if s.is_server_error() => Failure::Transient { message },
            StatusCode::NOT_FOUND => Failure::Final(self.protocol(format!(
                "{endpoint}: {message}; check base_url, the paths and credential_id"
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

/// A configured path without surrounding slashes (a leading one would replace the base path).
fn relative(path: &str) -> String {
    path.trim_matches('/').to_owned()
}

/// Every transport failure of a read is worth another try: timeouts, refused or reset
/// connections, a body cut short.
fn transport(err: &reqwest::Error) -> Failure {
    let message = if err.is_timeout() {
        "no answer within the request timeout".to_owned()
    } else {
        error_chain(err)
    };
    Failure::Transient { message }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;
    use crate::config::HttpSettings;
    use reqwest::header::RETRY_AFTER;

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
            api: UnifiedApi::default(),
        }
    }

    fn client() -> UnifiedClient {
        UnifiedClient::new(
            "erp",
            &settings("https://h.example/", UnifiedNames::default()),
        )
        .unwrap()
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
        let url = client
            .list_url(Some(after()), &PageAt::Cursor("abc/+=".to_owned()))
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.example.com/v1/accounting/invoices?credentialId=cred+1&limit=250&next=abc%2F%2B%3D&updatedAfter=2026-11-21T09%3A55%3A00.250Z"
        );
        let first = client.list_url(None, &client.first_page()).unwrap();
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
            ..UnifiedNames::default()
        };
        let client = UnifiedClient::new("erp", &settings("https://h.example/api/", names)).unwrap();
        let url = client
            .list_url(Some(after()), &PageAt::Cursor("t1".to_owned()))
            .unwrap();
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
    fn alloy_urls_page_by_number_or_cursor_and_address_customers() {
        let http = settings("https://x/", UnifiedNames::default()).http;
        let alloy = |preset| {
            let mut s = UnifiedSettings::alloy(
                preset,
                "https://embedded.runalloy.com/2024-03/one".parse().unwrap(),
                SecretString::from("k"),
                "cred-1".to_owned(),
                http.clone(),
            );
            s.http.page_size = NonZeroU32::new(100).unwrap();
            UnifiedClient::new("erp", &s).unwrap()
        };
        let v24 = alloy(crate::config::UnifiedPreset::Alloy2024_03);
        assert_eq!(v24.first_page(), PageAt::Number(1));
        assert_eq!(
            v24.list_url(None, &PageAt::Number(3)).unwrap().as_str(),
            "https://embedded.runalloy.com/2024-03/one/accounting/invoices?credentialId=cred-1&pageSize=100&pageNumber=3"
        );
        assert_eq!(
            v24.customers_url(&PageAt::Number(1)).unwrap().as_str(),
            "https://embedded.runalloy.com/2024-03/one/accounting/customers?credentialId=cred-1&pageSize=100&pageNumber=1"
        );
        assert_eq!(
            v24.customer_url("c-uuid").unwrap().as_str(),
            "https://embedded.runalloy.com/2024-03/one/accounting/customers/c-uuid?credentialId=cred-1"
        );
        let v23 = alloy(crate::config::UnifiedPreset::Alloy2023_12);
        assert_eq!(v23.first_page(), PageAt::First);
        assert_eq!(
            v23.list_url(None, &PageAt::Cursor("eyJ".to_owned()))
                .unwrap()
                .as_str(),
            "https://embedded.runalloy.com/2024-03/one/accounting/invoices?connectionId=cred-1&pageSize=100&cursor=eyJ"
        );
    }

    #[test]
    fn the_budget_never_lets_a_60_s_window_exceed_the_limit() {
        let mut api = UnifiedApi::default();
        assert_eq!(
            budget_settings(&api).requests_per_minute.get(),
            UNLIMITED_RPM
        );
        api.requests_per_minute = NonZeroU32::new(150);
        let b = budget_settings(&api);
        assert_eq!((b.requests_per_minute.get(), b.burst.get()), (149, 1));
    }

    #[test]
    fn the_key_is_sensitive_and_never_in_debug_output() {
        let client = client();
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
        let client = client();
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
        // A proxy's whole error page is its title, not 300 characters of markup.
        let page = format!(
            "<!DOCTYPE html><html><head><title>502 Bad Gateway</title><style>{}</style></head>\
             <body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
            "h1 { color: red } ".repeat(40)
        );
        assert_eq!(
            client.error_message(page.as_bytes()),
            "an HTML page: 502 Bad Gateway"
        );
    }

    #[test]
    fn a_read_that_gives_up_says_why_and_after_how_many_tries() {
        let client = client();
        let transient = Failure::Transient {
            message: "HTTP 502: busy".to_owned(),
        };
        assert!(matches!(
            client.give_up("GET /x", transient, GaveUp::Exhausted, 5),
            SourceError::Unavailable { ref message, .. }
                if message == "GET /x: HTTP 502: busy (gave up after 5 attempts)"
        ));
        let limited = Failure::RateLimited {
            message: "HTTP 429: slow down".to_owned(),
        };
        let why = GaveUp::RateLimited { in_a_row: 21 };
        assert!(matches!(
            client.give_up("GET /x", limited, why, 1),
            SourceError::Unavailable { ref message, .. }
                if message.starts_with("GET /x: HTTP 429: slow down (21 times in a row; ")
        ));
        let refused = Failure::Final(client.protocol("GET /x: refused".to_owned()));
        assert!(matches!(
            client.give_up("GET /x", refused, GaveUp::Permanent, 1),
            SourceError::Protocol { ref message, .. } if message == "GET /x: refused"
        ));
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
