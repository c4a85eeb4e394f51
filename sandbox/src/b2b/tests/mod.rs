//! End-to-end tests: a sandbox on port 0 and a plain `reqwest` client, no crate client types.

mod admin;
mod api;
mod auth_and_limits;
mod faults;
mod payments;

use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

use super::{start, B2bSandboxConfig, RunningB2bSandbox, SandboxControl};

pub(super) const STORE: &str = "sandbox";

pub(super) struct Harness {
    pub sandbox: RunningB2bSandbox,
    pub client: Client,
}

impl Harness {
    pub async fn start(config: B2bSandboxConfig) -> Self {
        let sandbox = start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap();
        Self {
            sandbox,
            client: Client::new(),
        }
    }

    pub async fn default() -> Self {
        Self::start(B2bSandboxConfig::default()).await
    }

    pub fn control(&self) -> SandboxControl {
        self.sandbox.control()
    }

    /// An API URL from a path relative to the base (`ip/invoices`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sandbox.base_url())
    }

    /// A URL on the server root (`/__sandbox/stats`).
    pub fn root(&self, path: &str) -> String {
        format!("http://{}{path}", self.sandbox.addr())
    }

    /// Current-style credentials of the default store.
    pub fn authed(&self, request: RequestBuilder) -> RequestBuilder {
        request
            .header("X-Auth-Token", "sandbox-token")
            .header("X-Store-Hash", STORE)
    }

    pub async fn create(&self, body: &Value) -> Response {
        self.authed(self.client.post(self.url("ip/invoices")))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> Response {
        self.authed(self.client.get(self.url(path)))
            .send()
            .await
            .unwrap()
    }
}

pub(super) fn invoice_body(number: &str) -> Value {
    json!({
        "invoiceNumber": number,
        "originalBalance": {"code": "USD", "value": 100},
        "openBalance": {"code": "USD", "value": 100},
        "customerId": "1",
        "externalId": format!("ext-{number}"),
    })
}

/// Status and JSON body of a response.
pub(super) async fn read(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let body = response.json().await.unwrap();
    (status, body)
}
