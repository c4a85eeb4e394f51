//! One method per B2B Edition invoice endpoint; every request goes through the store's budget,
//! transient failures are retried where that cannot duplicate a change, and ambiguous outcomes of
//! mutations are handed back to the caller (see [`B2bError::is_ambiguous`]).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::budget::{RequestBudget, Reservation};
use super::error::{B2bError, Endpoint, Misconfigured};
use super::model::{
    Company, CreatedFromOrder, ExtraFieldConfig, Invoice, InvoiceId, InvoicePdf, InvoiceUpdate,
    NewInvoice, Page, Pagination,
};
use super::payments::{Payment, PaymentId, PaymentQuery};
use super::query::{InvoiceQuery, MAX_PAGE_SIZE};
use crate::config::{B2bAuth, RetrySettings, StoreSettings};
use crate::outbound::retry::{self, Verdict, Wait};
use crate::outbound::{error_chain, excerpt, json_request};

const EXCERPT_CHARS: usize = 300;
/// The smallest page a 400 about `limit` shrinks the page size to.
const MIN_PAGE_SIZE: u32 = 10;
/// A `Retry-After` longer than this is treated as this: a misbehaving header must not stall a
/// store for a day.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// `Retry-After` or BigCommerce's reset header (`crate::outbound`), capped.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    crate::outbound::retry_after(headers).map(|d| d.min(MAX_RETRY_AFTER))
}

#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("stores.{store}.b2b: cannot build the HTTP client: {reason}")]
    Http { store: String, reason: String },
    #[error("stores.{store}.b2b: the token or store hash cannot be sent as an HTTP header (it contains characters headers do not allow)")]
    Header { store: String },
}

/// The B2B Edition client for one store.
#[derive(Debug, Clone)]
pub struct B2bClient {
    store: Arc<str>,
    http: reqwest::Client,
    base: Url,
    auth: HeaderMap,
    budget: Arc<RequestBudget>,
    retry: RetrySettings,
    /// Requests sent by this client and its clones (each attempt counts): a run's API cost.
    calls: Arc<std::sync::atomic::AtomicU64>,
    /// Rate cells paid for in advance, spent before waiting for the budget (see
    /// [`RequestBudget::reserve`]).
    reservation: Option<Arc<Reservation>>,
    request_timeout: Duration,
    /// Items a list page asks for: the configured size, lowered to what the server answers
    /// (shared by clones: learned once per store and process).
    page_size: Arc<AtomicU32>,
}

struct Call {
    method: Method,
    endpoint: Endpoint,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    /// Not sent after this instant (when its turn in the budget comes too late).
    not_after: Option<tokio::time::Instant>,
}

impl Call {
    fn new(method: Method, endpoint: Endpoint, path: impl Into<String>) -> Self {
        Self {
            method,
            endpoint,
            path: path.into(),
            query: Vec::new(),
            body: None,
            not_after: None,
        }
    }

    fn query(mut self, query: Vec<(&'static str, String)>) -> Self {
        self.query = query;
        self
    }

    fn json<T: Serialize>(mut self, body: &T) -> Result<Self, B2bError> {
        let bytes = serde_json::to_vec(body).map_err(|e| B2bError::Decode {
            endpoint: self.endpoint,
            message: format!("cannot encode the request body: {e}"),
            excerpt: String::new(),
        })?;
        self.body = Some(bytes);
        Ok(self)
    }

    fn mutating(&self) -> bool {
        self.method != Method::GET
    }
}

/// The `{code, data, meta}` envelope of every answer.
#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
    #[serde(default)]
    meta: Meta,
}

#[derive(Default, Deserialize)]
struct Meta {
    #[serde(default)]
    pagination: Option<Pagination>,
}

#[derive(Deserialize)]
struct IdData {
    #[serde(deserialize_with = "super::wire::id")]
    id: InvoiceId,
}

impl B2bClient {
    /// A client for `store` that spends `budget`; share one budget among all clients of a store.
    pub fn new(
        store: &StoreSettings,
        budget: Arc<RequestBudget>,
    ) -> Result<Self, ClientBuildError> {
        let http = crate::outbound::client(store.b2b.request_timeout, store.b2b.connect_timeout)
            .map_err(|e| ClientBuildError::Http {
                store: store.name.clone(),
                reason: e.to_string(),
            })?;
        let auth = auth_headers(&store.b2b.auth).ok_or_else(|| ClientBuildError::Header {
            store: store.name.clone(),
        })?;
        metrics::gauge!(crate::telemetry_metrics::BUDGET_RPM, "store" => store.name.clone())
            .set(f64::from(store.budget.requests_per_minute.get()));
        let mut base = store.b2b.base_url.clone();
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(Self {
            store: Arc::from(store.name.as_str()),
            http,
            base,
            auth,
            budget,
            retry: store.retry,
            calls: Arc::default(),
            reservation: None,
            request_timeout: store.b2b.request_timeout,
            page_size: Arc::new(AtomicU32::new(store.b2b.page_size.clamp(1, MAX_PAGE_SIZE))),
        })
    }

    /// Items one list page asks for now (see `stores.<name>.b2b.page_size`).
    pub fn page_size(&self) -> u32 {
        self.page_size.load(Ordering::Relaxed).max(1)
    }

    /// A page of `asked` items at most, and never more than the store answers with.
    fn limit(&self, asked: u32) -> u32 {
        asked.clamp(1, self.page_size())
    }

    /// The server answered fewer items than asked while its total says more: that is its cap.
    fn learn_page_cap(&self, asked: u32, got: usize, more: bool) {
        let got = u32::try_from(got).unwrap_or(u32::MAX);
        if more && got > 0 && got < asked && got < self.page_size() {
            self.page_size.store(got, Ordering::Relaxed);
            tracing::info!(
                store = %self.store,
                page_size = got,
                "B2B Edition answers at most {got} items a page: asking for that from now on"
            );
        }
    }

    /// A 400 about `limit`: the page size is halved (down to 10) and the request may be sent
    /// again. `false` when it cannot shrink further or the error is about something else.
    fn shrink_page_on(&self, e: &B2bError, asked: u32) -> bool {
        let about_limit = matches!(e, B2bError::Validation { message, .. }
            if message.to_ascii_lowercase().contains("limit"));
        if !about_limit || asked <= MIN_PAGE_SIZE {
            return false;
        }
        let smaller = (asked / 2).max(MIN_PAGE_SIZE);
        self.page_size.fetch_min(smaller, Ordering::Relaxed);
        tracing::warn!(
            store = %self.store,
            page_size = smaller,
            error = %e,
            "B2B Edition refused the page size: asking for fewer items a page"
        );
        true
    }

    /// How long one request may take before it is given up (`stores.<name>.b2b.request_timeout_secs`).
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The same client with a counter of its own, e.g. to count one run's calls.
    pub fn with_fresh_counter(&self) -> Self {
        Self {
            calls: Arc::default(),
            ..self.clone()
        }
    }

    /// The same client (same counter) spending `reservation`'s cells before waiting for the
    /// budget: requests that must go out close together (a read and the updates built from it).
    pub fn with_reservation(&self, reservation: Arc<Reservation>) -> Self {
        Self {
            reservation: Some(reservation),
            ..self.clone()
        }
    }

    /// Requests sent through this client (and clones sharing its counter), retries included.
    pub fn calls_made(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A client with a budget of its own, from the store's settings.
    pub fn with_own_budget(store: &StoreSettings) -> Result<Self, ClientBuildError> {
        Self::new(store, Arc::new(RequestBudget::new(&store.budget)))
    }

    pub fn store(&self) -> &str {
        &self.store
    }

    pub fn budget(&self) -> &Arc<RequestBudget> {
        &self.budget
    }

    /// The cycle-stopping error `e` stands for, if it says the store's configuration is wrong
    /// (see [`B2bError::misconfiguration`]).
    pub fn misconfigured(&self, e: &B2bError) -> Option<Misconfigured> {
        e.misconfiguration()
            .map(|problem| Misconfigured::new(&self.store, self.base.as_str(), problem, e))
    }

    /// `POST /invoices`. A failure with [`B2bError::is_ambiguous`] may have created the invoice.
    pub async fn create_invoice(&self, invoice: &NewInvoice) -> Result<InvoiceId, B2bError> {
        let call = Call::new(Method::POST, "POST /ip/invoices", "ip/invoices").json(invoice)?;
        Ok(self.execute::<IdData>(call).await?.data.id)
    }

    /// `GET /invoices/{id}`.
    pub async fn get_invoice(&self, id: InvoiceId) -> Result<Invoice, B2bError> {
        let call = Call::new(
            Method::GET,
            "GET /ip/invoices/{id}",
            format!("ip/invoices/{id}"),
        );
        Ok(self.execute(call).await?.data)
    }

    /// `PUT /invoices/{id}`: only the fields set in `update` change; `details` replaces all details.
    pub async fn update_invoice(
        &self,
        id: InvoiceId,
        update: &InvoiceUpdate,
    ) -> Result<InvoiceId, B2bError> {
        Ok(self.update_invoice_by(id, update, None).await?.0)
    }

    /// [`Self::update_invoice`], not sent at all when its turn in the budget comes after
    /// `not_after` ([`B2bError::Expired`]: built from state that has become too old to trust).
    /// Also returns when the request that succeeded was sent.
    pub async fn update_invoice_by(
        &self,
        id: InvoiceId,
        update: &InvoiceUpdate,
        not_after: Option<tokio::time::Instant>,
    ) -> Result<(InvoiceId, tokio::time::Instant), B2bError> {
        let mut call = Call::new(
            Method::PUT,
            "PUT /ip/invoices/{id}",
            format!("ip/invoices/{id}"),
        )
        .json(update)?;
        call.not_after = not_after;
        let (envelope, sent_at) = self.execute_at::<IdData>(call).await?;
        Ok((envelope.data.id, sent_at))
    }

    /// `DELETE /invoices/{id}`.
    pub async fn delete_invoice(&self, id: InvoiceId) -> Result<(), B2bError> {
        let call = Call::new(
            Method::DELETE,
            "DELETE /ip/invoices/{id}",
            format!("ip/invoices/{id}"),
        );
        self.execute::<Value>(call).await.map(|_| ())
    }

    /// One page of `GET /invoices`, starting at `offset`, of at most the client's page size.
    pub async fn list_invoices_page(
        &self,
        query: &InvoiceQuery,
        offset: u64,
    ) -> Result<Page<Invoice>, B2bError> {
        Ok(self.list_invoices_page_at(query, offset).await?.0)
    }

    /// [`Self::list_invoices_page`], with when the request that answered was sent: the state
    /// it returns is at least that fresh.
    pub async fn list_invoices_page_at(
        &self,
        query: &InvoiceQuery,
        offset: u64,
    ) -> Result<(Page<Invoice>, tokio::time::Instant), B2bError> {
        loop {
            let asked = self.limit(query.page_size());
            let sized = InvoiceQuery {
                page_size: asked,
                ..query.clone()
            };
            let call = Call::new(Method::GET, "GET /ip/invoices", "ip/invoices")
                .query(sized.to_pairs(offset));
            match self.execute_at::<Vec<Invoice>>(call).await {
                Ok((envelope, sent_at)) => {
                    let page = page(envelope, offset, asked);
                    let more = page
                        .total_count
                        .is_some_and(|t| offset + (page.items.len() as u64) < t);
                    self.learn_page_cap(asked, page.items.len(), more);
                    return Ok((page, sent_at));
                }
                Err(e) if self.shrink_page_on(&e, asked) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Every page of `GET /invoices` for `query`, fetched lazily one page at a time.
    ///
    /// Offset paging over a changing list can skip or repeat an invoice that moves between pages
    /// meanwhile; callers that need a consistent view sort by a stable key or re-read.
    pub fn list_invoice_pages<'a>(
        &'a self,
        query: &'a InvoiceQuery,
    ) -> impl Stream<Item = Result<Page<Invoice>, B2bError>> + 'a {
        paged(move |offset| self.list_invoices_page(query, offset))
    }

    /// Every invoice matching `query`, as a stream over all pages.
    pub fn list_invoices<'a>(
        &'a self,
        query: &'a InvoiceQuery,
    ) -> impl Stream<Item = Result<Invoice, B2bError>> + 'a {
        flatten_pages(self.list_invoice_pages(query))
    }

    /// One page of `GET /payments`, starting at `offset`.
    pub async fn list_payments_page(
        &self,
        query: &PaymentQuery,
        offset: u64,
    ) -> Result<Page<Payment>, B2bError> {
        let asked = self.limit(query.page_size());
        let sized = PaymentQuery {
            page_size: asked,
            ..query.clone()
        };
        let call =
            Call::new(Method::GET, "GET /ip/payments", "ip/payments").query(sized.to_pairs(offset));
        let envelope = self.execute::<Vec<Payment>>(call).await?;
        Ok(page(envelope, offset, asked))
    }

    /// Every page of `GET /payments` for `query`, fetched lazily one page at a time (offset
    /// paging: see [`B2bClient::list_invoice_pages`]).
    pub fn list_payment_pages<'a>(
        &'a self,
        query: &'a PaymentQuery,
    ) -> impl Stream<Item = Result<Page<Payment>, B2bError>> + 'a {
        paged(move |offset| self.list_payments_page(query, offset))
    }

    /// Every payment matching `query`, as a stream over all pages.
    pub fn list_payments<'a>(
        &'a self,
        query: &'a PaymentQuery,
    ) -> impl Stream<Item = Result<Payment, B2bError>> + 'a {
        flatten_pages(self.list_payment_pages(query))
    }

    /// `GET /payments/{paymentId}`.
    pub async fn get_payment(&self, id: PaymentId) -> Result<Payment, B2bError> {
        let call = Call::new(
            Method::GET,
            "GET /ip/payments/{id}",
            format!("ip/payments/{id}"),
        );
        Ok(self.execute(call).await?.data)
    }

    /// `POST /orders/{orderId}/invoices`: B2B Edition builds the invoice from its own order.
    pub async fn create_invoice_from_order(
        &self,
        order_id: u64,
    ) -> Result<CreatedFromOrder, B2bError> {
        let call = Call::new(
            Method::POST,
            "POST /ip/orders/{id}/invoices",
            format!("ip/orders/{order_id}/invoices"),
        );
        Ok(self.execute(call).await?.data)
    }

    /// `GET /invoices/{id}/download-pdf`: where the invoice's PDF can be fetched.
    pub async fn invoice_pdf(&self, id: InvoiceId) -> Result<InvoicePdf, B2bError> {
        let call = Call::new(
            Method::GET,
            "GET /ip/invoices/{id}/download-pdf",
            format!("ip/invoices/{id}/download-pdf"),
        );
        Ok(self.execute(call).await?.data)
    }

    /// One page of `GET /invoices/extra-fields`.
    pub async fn invoice_extra_field_configs_page(
        &self,
        offset: u64,
        limit: u32,
    ) -> Result<Page<ExtraFieldConfig>, B2bError> {
        let limit = self.limit(limit);
        let call = Call::new(
            Method::GET,
            "GET /ip/invoices/extra-fields",
            "ip/invoices/extra-fields",
        )
        .query(vec![
            ("offset", offset.to_string()),
            ("limit", limit.to_string()),
        ]);
        Ok(page(self.execute(call).await?, offset, limit))
    }

    /// Every invoice extra-field definition of the store.
    pub fn invoice_extra_field_configs(
        &self,
    ) -> impl Stream<Item = Result<ExtraFieldConfig, B2bError>> + '_ {
        flatten_pages(paged(move |offset| {
            self.invoice_extra_field_configs_page(offset, MAX_PAGE_SIZE)
        }))
    }

    /// One page of `GET /companies?extraFields=name:value&extraFieldFilterType=exact-match`.
    pub async fn companies_by_extra_field_page(
        &self,
        field_name: &str,
        field_value: &str,
        offset: u64,
    ) -> Result<Page<Company>, B2bError> {
        let call = Call::new(Method::GET, "GET /companies", "companies").query(vec![
            ("extraFields", format!("{field_name}:{field_value}")),
            ("extraFieldFilterType", "exact-match".to_owned()),
            ("isIncludeExtraFields", "1".to_owned()),
            ("offset", offset.to_string()),
            ("limit", self.limit(MAX_PAGE_SIZE).to_string()),
        ]);
        Ok(page(
            self.execute(call).await?,
            offset,
            self.limit(MAX_PAGE_SIZE),
        ))
    }

    /// The companies whose extra field `field_name` is exactly `field_value` (an ERP customer id
    /// kept in a unique extra field maps to at most one company).
    pub async fn find_companies_by_extra_field(
        &self,
        field_name: &str,
        field_value: &str,
    ) -> Result<Vec<Company>, B2bError> {
        use futures::TryStreamExt;
        let pages = paged(move |offset| {
            self.companies_by_extra_field_page(field_name, field_value, offset)
        });
        let companies: Vec<Company> = flatten_pages(pages).try_collect().await?;
        // `exact-match` is the API's word; keep only true matches should a server ignore it.
        Ok(companies
            .into_iter()
            .filter(|c| {
                c.extra_fields.iter().any(|f| {
                    f.field_name == field_name && f.field_value.as_deref() == Some(field_value)
                })
            })
            .collect())
    }

    /// Sends `call` under the budget, retrying what can be retried safely.
    async fn execute<T: DeserializeOwned>(&self, call: Call) -> Result<Envelope<T>, B2bError> {
        Ok(self.execute_at(call).await?.0)
    }

    /// [`Self::execute`], with when the attempt that succeeded was sent.
    ///
    /// The loop is `outbound::retry`'s; a mutation is retried only when it certainly was not
    /// applied (429, refused connection), everything ambiguous goes back to the caller's ledger.
    async fn execute_at<T: DeserializeOwned>(
        &self,
        call: Call,
    ) -> Result<(Envelope<T>, tokio::time::Instant), B2bError> {
        let policy = retry::Policy {
            settings: &self.retry,
            api: "B2B",
            read: !call.mutating(),
            max_rate_limited: 0,
        };
        retry::send(
            policy,
            |attempt| {
                tracing::debug_span!(
                    "b2b_request",
                    store = %self.store,
                    endpoint = call.endpoint,
                    attempt,
                )
            },
            || self.attempt(&call),
            verdict,
            // The error as it is: its kind says whether it may have been applied.
            |err, _, _| err,
        )
        .await
    }

    /// One attempt: a permit of the budget (unless the store is fenced or the call's time is
    /// up), the request, its metrics; a 429 pauses the whole budget for its `Retry-After`.
    async fn attempt<T: DeserializeOwned>(
        &self,
        call: &Call,
    ) -> Result<(Envelope<T>, tokio::time::Instant), B2bError> {
        let permit = self.budget.acquire_with(self.reservation.as_deref()).await;
        let sent_at = tokio::time::Instant::now();
        if !self.budget.is_open() {
            return Err(B2bError::Fenced {
                endpoint: call.endpoint,
            });
        }
        if call.not_after.is_some_and(|t| sent_at > t) {
            // Its turn came too late: nothing is sent (the cell is spent all the same).
            return Err(B2bError::Expired {
                endpoint: call.endpoint,
            });
        }
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let store = self.store.to_string();
        metrics::counter!(crate::telemetry_metrics::BUDGET_GRANTED, "store" => store.clone())
            .increment(1);
        let in_flight =
            metrics::gauge!(crate::telemetry_metrics::BUDGET_IN_FLIGHT, "store" => store.clone());
        in_flight.increment(1.0);
        let started = tokio::time::Instant::now();
        let result = self.send_once(call).await;
        in_flight.decrement(1.0);
        record_request(&store, call.endpoint, &result, started.elapsed());
        drop(permit);
        if let Err(B2bError::RateLimited { retry_after, .. }) = &result {
            self.budget.pause_for(*retry_after);
        }
        Ok((result?, sent_at))
    }

    async fn send_once<T: DeserializeOwned>(&self, call: &Call) -> Result<Envelope<T>, B2bError> {
        let endpoint = call.endpoint;
        let url = self
            .base
            .join(&call.path)
            .map_err(|e| B2bError::Transport {
                endpoint,
                ambiguous: false,
                message: format!("cannot build the URL: {e}"),
            })?;
        let request = json_request(
            self.http
                .request(call.method.clone(), url)
                .headers(self.auth.clone()),
            &call.query,
            call.body.clone(),
        );
        let started = tokio::time::Instant::now();
        let response = request
            .send()
            .await
            .map_err(|e| request_error(endpoint, &e, call.mutating()))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| request_error(endpoint, &e, call.mutating()))?;
        tracing::debug!(
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            bytes = body.len(),
            "B2B response"
        );
        let default_pause = self.budget.settings().default_retry_after;
        classify(
            endpoint,
            status,
            &headers,
            &body,
            call.mutating(),
            default_pause,
        )
    }
}

/// What a failed attempt means for sending it again.
fn verdict(err: &B2bError) -> Verdict {
    match err {
        // The attempt paused the budget for the Retry-After: that pause is the wait (it still
        // uses an attempt).
        B2bError::RateLimited { .. } => Verdict::Retry(Wait::Budget),
        // Only a mutation's failure is ever ambiguous.
        e if e.is_ambiguous() => Verdict::Ambiguous,
        e if e.is_transient() => Verdict::Retry(Wait::Backoff),
        _ => Verdict::Permanent,
    }
}

/// `b2bsync_b2b_requests_total`, its latency histogram, and 429s.
fn record_request<T>(
    store: &str,
    endpoint: Endpoint,
    result: &Result<T, B2bError>,
    took: Duration,
) {
    use crate::telemetry_metrics as m;
    let status = match result {
        Ok(_) => "200".to_owned(),
        Err(B2bError::Timeout { .. }) => "timeout".to_owned(),
        Err(B2bError::Transport { .. }) => "transport".to_owned(),
        Err(B2bError::Unreachable { .. }) => "unreachable".to_owned(),
        Err(B2bError::Expired { .. }) => "expired".to_owned(),
        Err(B2bError::Fenced { .. }) => "fenced".to_owned(),
        Err(B2bError::Decode { .. }) => "decode".to_owned(),
        Err(B2bError::Validation { .. }) => "400".to_owned(),
        Err(B2bError::NotFound { .. }) => "404".to_owned(),
        Err(B2bError::RateLimited { .. }) => "429".to_owned(),
        Err(B2bError::Unauthorized { status, .. })
        | Err(B2bError::Rejected { status, .. })
        | Err(B2bError::Server { status, .. }) => status.to_string(),
    };
    if status == "429" {
        metrics::counter!(m::B2B_RATE_LIMITED, "store" => store.to_owned()).increment(1);
    }
    metrics::counter!(m::B2B_REQUESTS, "store" => store.to_owned(), "endpoint" => endpoint, "status" => status).increment(1);
    metrics::histogram!(m::B2B_REQUEST_DURATION, "store" => store.to_owned(), "endpoint" => endpoint).record(took.as_secs_f64());
}

fn auth_headers(auth: &B2bAuth) -> Option<HeaderMap> {
    fn secret(value: &str) -> Option<HeaderValue> {
        let mut v = HeaderValue::from_str(value).ok()?;
        // Keeps the value out of Debug output and marks it for HPACK never-index.
        v.set_sensitive(true);
        Some(v)
    }
    let mut headers = HeaderMap::new();
    match auth {
        B2bAuth::XAuthToken { store_hash, token } => {
            headers.insert(
                HeaderName::from_static("x-auth-token"),
                secret(token.expose_secret())?,
            );
            headers.insert(
                HeaderName::from_static("x-store-hash"),
                HeaderValue::from_str(store_hash).ok()?,
            );
        }
        B2bAuth::LegacyAuthToken { token } => {
            headers.insert(
                HeaderName::from_static("authtoken"),
                secret(token.expose_secret())?,
            );
        }
    }
    Some(headers)
}

/// Turns a failed send into the right error: a connection that was never made cannot have
/// applied anything; one lost after sending may have.
fn request_error(endpoint: Endpoint, err: &reqwest::Error, mutating: bool) -> B2bError {
    if err.is_connect() {
        // Nothing was sent: never ambiguous, whatever the method.
        return B2bError::Unreachable {
            endpoint,
            message: error_chain(err),
        };
    }
    let ambiguous = mutating;
    if err.is_timeout() {
        return B2bError::Timeout {
            endpoint,
            ambiguous,
        };
    }
    B2bError::Transport {
        endpoint,
        ambiguous,
        message: error_chain(err),
    }
}

fn classify<T: DeserializeOwned>(
    endpoint: Endpoint,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    mutating: bool,
    default_pause: Duration,
) -> Result<Envelope<T>, B2bError> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    // Some B2B answers carry an error code in the body under HTTP 200; the body's code wins then.
    let body_code = json
        .as_ref()
        .and_then(|j| j.get("code"))
        .and_then(|c| c.as_u64().or_else(|| c.as_str()?.parse().ok()))
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .filter(|c| c.is_client_error() || c.is_server_error());
    let effective = match body_code {
        Some(code) if status.is_success() => code,
        _ => status,
    };
    if effective.is_success() {
        let decode_error = |message: String| B2bError::Decode {
            endpoint,
            message,
            excerpt: excerpt(body, EXCERPT_CHARS),
        };
        let json = json.ok_or_else(|| decode_error("the body is not JSON".to_owned()))?;
        return serde_json::from_value(json).map_err(|e| decode_error(e.to_string()));
    }
    let message = || {
        json.as_ref()
            .and_then(error_message)
            .unwrap_or_else(|| excerpt(body, EXCERPT_CHARS))
    };
    let code = effective.as_u16();
    Err(match code {
        400 | 422 => B2bError::Validation {
            endpoint,
            message: message(),
        },
        401 | 403 => B2bError::Unauthorized {
            endpoint,
            status: code,
        },
        404 => B2bError::NotFound {
            endpoint,
            message: message(),
        },
        429 => B2bError::RateLimited {
            endpoint,
            retry_after: retry_after(headers).unwrap_or(default_pause),
        },
        500..=599 => B2bError::Server {
            endpoint,
            status: code,
            ambiguous: mutating,
            excerpt: message(),
        },
        _ => B2bError::Rejected {
            endpoint,
            status: code,
            message: message(),
        },
    })
}

/// The API's own words: `meta.errors`, `data.errMsg`, field errors in `data`, or `meta.message`.
fn error_message(json: &Value) -> Option<String> {
    let text = |v: &Value| -> Option<String> {
        let s = match v {
            Value::String(s) => s.trim().trim_end_matches(';').trim().to_owned(),
            Value::Array(items) => items
                .iter()
                .filter_map(|i| {
                    i.as_str()
                        .map(str::to_owned)
                        .or_else(|| Some(i.to_string()))
                })
                .collect::<Vec<_>>()
                .join("; "),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        (!s.is_empty()).then_some(s)
    };
    let meta = json.get("meta");
    let data = json.get("data");
    if let Some(m) = meta.and_then(|m| m.get("errors")).and_then(text) {
        return Some(m);
    }
    if let Some(m) = data.and_then(|d| d.get("errMsg")).and_then(text) {
        return Some(m);
    }
    if let Some(fields) = data.and_then(Value::as_object).filter(|o| !o.is_empty()) {
        let parts: Vec<String> = fields
            .iter()
            .filter(|(k, _)| k.as_str() != "id")
            .filter_map(|(k, v)| text(v).map(|t| format!("{k}: {t}")))
            .collect();
        if !parts.is_empty() {
            return Some(parts.join("; "));
        }
    }
    meta.and_then(|m| m.get("message"))
        .and_then(text)
        // A top-level `message` (live 404s for a wrong path answer `{"message": "..."}`).
        .or_else(|| json.get("message").and_then(text))
}

fn page<T>(envelope: Envelope<Vec<T>>, offset: u64, limit: u32) -> Page<T> {
    let total_count = envelope
        .meta
        .pagination
        .and_then(|p| p.total_count)
        .and_then(|t| u64::try_from(t).ok());
    Page {
        items: envelope.data,
        offset,
        limit,
        total_count,
    }
}

/// Walks offset pages until the total is reached (or, without a total, a short or empty page).
fn paged<'a, T, F, Fut>(fetch: F) -> impl Stream<Item = Result<Page<T>, B2bError>> + 'a
where
    T: 'a,
    F: Fn(u64) -> Fut + 'a,
    Fut: std::future::Future<Output = Result<Page<T>, B2bError>> + 'a,
{
    async_stream::try_stream! {
        let mut offset = 0u64;
        loop {
            let page = fetch(offset).await?;
            let got = page.items.len() as u64;
            offset += got;
            // A short page ends the list only when the total says so: a server may answer
            // fewer items than asked (its own cap). Without a total, an empty page ends it.
            let done = got == 0 || page.total_count.is_some_and(|total| offset >= total);
            yield page;
            if done {
                break;
            }
        }
    }
}

fn flatten_pages<'a, T: 'a>(
    pages: impl Stream<Item = Result<Page<T>, B2bError>> + 'a,
) -> impl Stream<Item = Result<T, B2bError>> + 'a {
    async_stream::try_stream! {
        futures::pin_mut!(pages);
        while let Some(page) = futures::StreamExt::next(&mut pages).await {
            for item in page?.items {
                yield item;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::RETRY_AFTER;
    use serde_json::json;

    fn classify_json(
        status: u16,
        body: Value,
        mutating: bool,
    ) -> Result<Envelope<Value>, B2bError> {
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        classify(
            "POST /ip/invoices",
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            &bytes,
            mutating,
            Duration::from_secs(60),
        )
    }

    #[test]
    fn a_top_level_message_is_what_the_api_said() {
        let err = classify_json(
            404,
            json!({"message": "Not Found: no route /ip/ip/invoices"}),
            false,
        )
        .err()
        .unwrap();
        assert!(
            err.to_string().contains("no route /ip/ip/invoices"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_number_is_a_validation_error_with_the_api_message() {
        let err = classify_json(
            400,
            json!({"code": 400, "data": {"errMsg": "The invoice number already exists."}, "meta": {"message": "Bad Requests Error"}}),
            true,
        )
        .err();
        assert!(
            matches!(err, Some(B2bError::Validation { ref message, .. }) if message == "The invoice number already exists.")
        );
    }

    #[test]
    fn meta_errors_win_over_the_generic_message() {
        let err = classify_json(
            400,
            json!({"code": 400, "meta": {"message": "Bad Requests Error", "errors": "Please enter a valid number; "}, "data": {"id": 33}}),
            true,
        )
        .err();
        assert!(
            matches!(err, Some(B2bError::Validation { ref message, .. }) if message == "Please enter a valid number")
        );
    }

    #[test]
    fn field_errors_in_data_are_listed() {
        let err = classify_json(
            422,
            json!({"code": 422, "meta": {"message": "Parameter Error"}, "data": {"lineItems": ["This field is required."]}}),
            true,
        )
        .err();
        assert!(
            matches!(err, Some(B2bError::Validation { ref message, .. }) if message == "lineItems: This field is required.")
        );
    }

    #[test]
    fn an_error_code_in_a_200_body_is_an_error() {
        let err = classify_json(200, json!({"code": 404, "data": {"errMsg": "Invoice does not exist"}, "meta": {"message": "Not Found Error"}}), false).err();
        assert!(matches!(err, Some(B2bError::NotFound { .. })));
    }

    #[test]
    fn server_errors_are_ambiguous_only_for_mutations() {
        assert!(classify_json(500, json!({}), true)
            .err()
            .is_some_and(|e| e.is_ambiguous()));
        assert!(classify_json(500, json!({}), false)
            .err()
            .is_some_and(|e| !e.is_ambiguous()));
    }

    #[test]
    fn a_mutation_is_sent_again_only_when_it_certainly_was_not_applied() {
        let verdict_of = |status, mutating| {
            classify_json(status, json!({}), mutating)
                .err()
                .map(|e| verdict(&e))
        };
        assert_eq!(verdict_of(500, true), Some(Verdict::Ambiguous));
        assert_eq!(verdict_of(500, false), Some(Verdict::Retry(Wait::Backoff)));
        assert_eq!(verdict_of(429, true), Some(Verdict::Retry(Wait::Budget)));
        assert_eq!(verdict_of(400, false), Some(Verdict::Permanent));
        let refused = B2bError::Unreachable {
            endpoint: "POST /ip/invoices",
            message: "refused".to_owned(),
        };
        assert_eq!(verdict(&refused), Verdict::Retry(Wait::Backoff));
        let fenced = B2bError::Fenced {
            endpoint: "POST /ip/invoices",
        };
        assert_eq!(verdict(&fenced), Verdict::Permanent);
    }

    #[test]
    fn retry_after_reads_seconds_dates_and_reset_ms() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let mut h = HeaderMap::new();
        h.insert(
            "x-rate-limit-time-reset-ms",
            HeaderValue::from_static("1500"),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("86400"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn non_json_success_is_a_decode_error_with_an_excerpt() {
        let err = classify::<Value>(
            "GET /ip/invoices",
            StatusCode::OK,
            &HeaderMap::new(),
            b"<html>maintenance</html>",
            false,
            Duration::from_secs(60),
        )
        .err();
        assert!(
            matches!(err, Some(B2bError::Decode { ref excerpt, .. }) if excerpt.contains("maintenance"))
        );
    }
}
