//! The sandbox as Alloy Automation's Unified API (`/{version}/one/accounting/...`), versions
//! 2024-03 and 2023-12, as Alloy's documentation and SDKs describe it (see docs/ARCHITECTURE.md,
//! "Alloy"); where they leave a point open, [`AlloyOptions`] models each reading.
//!
//! - **Ids.** Every invoice has Alloy's own `id` (a UUID) and `remoteId` (the ERP's id, numbers
//!   as QuickBooks has them: `1001`, `1002`, ...). `GET/PUT /accounting/invoices/{id}` take the
//!   UUID only; a `remoteId` there is a 404, counted in [`AlloyCounters::remote_id_lookups`]
//!   (as is a `remoteId=` list filter). `customerId` is the customer's UUID; customer `k` has
//!   `remoteId` `CUST-{k:05}` (what the B2B sandbox's companies carry) and `customerName`.
//! - **Lists** come in the cache's own order (creation order; an update does not move an
//!   invoice), with no updated-since filter and no sort: unknown query parameters are ignored
//!   and counted ([`AlloyCounters::ignored_params`]). Deleted invoices stay listed with
//!   `remoteDeleted: true`.
//! - **2024-03** pages with `pageNumber` (from 1) and `pageSize` (default 50, at most 100):
//!   `{"invoices": [...]}` with no cursor and no total; past the end, an empty array. The
//!   credential parameter is `credentialId`.
//! - **2023-12** pages with `cursor` + `pageSize`: `{"invoices": [...], "pageInfo": {"hasNext",
//!   "nextCursor"}}`; the credential parameter is `connectionId`; the ERP's times are
//!   `createdTimestamp` / `updatedTimestamp` in milliseconds.
//! - A `pageSize` above the maximum is clamped to it (the page then holds fewer records than
//!   asked, which a short-page rule would take for the end) and counted in
//!   [`AlloyCounters::clamped_pages`]; or refused with a 400 ([`AlloyOptions::reject_oversize`]).
//! - Dates `YYYY-MM-DD` (or Unix seconds, [`AlloyOptions::unix_dates`]); amounts JSON numbers
//!   (or decimal strings, [`AlloyOptions::string_amounts`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::seed::{self, number};
use crate::wire::json_amount;

/// Alloy's API versions the sandbox serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlloyVersion {
    #[serde(rename = "2024-03")]
    V2024_03,
    #[serde(rename = "2023-12")]
    V2023_12,
}

impl AlloyVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2024_03 => "2024-03",
            Self::V2023_12 => "2023-12",
        }
    }

    /// The documented credential query parameter.
    pub fn credential_param(self) -> &'static str {
        match self {
            Self::V2024_03 => "credentialId",
            Self::V2023_12 => "connectionId",
        }
    }
}

/// How the sandbox reads the points Alloy's documentation leaves open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlloyOptions {
    pub version: AlloyVersion,
    /// 2024-03 also takes `connectionId` (the Node SDK sends it there; the docs say
    /// `credentialId`). Default false.
    pub accept_connection_id: bool,
    /// Dates as Unix seconds (the update reference's schema types them as integers) instead of
    /// `YYYY-MM-DD` (the invoice reference). Default false.
    pub unix_dates: bool,
    /// Amounts as decimal strings instead of JSON numbers. Default false.
    pub string_amounts: bool,
    /// `pageSize` when none is given (2024-03 documents 50; 2023-12 documents none: 50 too).
    pub default_page_size: u32,
    /// The largest `pageSize` honoured (100 in both versions).
    pub max_page_size: u32,
    /// A larger `pageSize` is refused with a 400 instead of clamped. Default false.
    pub reject_oversize: bool,
    /// A `PUT` without `lineItems` is taken (the docs mark them required). Default false.
    pub partial_put: bool,
}

impl AlloyOptions {
    pub fn new(version: AlloyVersion) -> Self {
        Self {
            version,
            accept_connection_id: false,
            unix_dates: false,
            string_amounts: false,
            default_page_size: 50,
            max_page_size: 100,
            reject_oversize: false,
            partial_put: false,
        }
    }

    /// Whether `param` names the credential in this version.
    pub(crate) fn is_credential_param(&self, param: &str) -> bool {
        param == self.version.credential_param()
            || (self.accept_connection_id
                && self.version == AlloyVersion::V2024_03
                && param == "connectionId")
    }
}

/// What an Alloy client did that a faithful client should not.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlloyCounters {
    /// `GET/PUT /accounting/invoices/{remoteId}` (Alloy takes its own id there) and
    /// `remoteId=` list filters.
    pub remote_id_lookups: u64,
    /// Pages asked with a `pageSize` above the maximum.
    pub clamped_pages: u64,
    /// Query parameters Alloy does not have (e.g. an updated-since filter), by name.
    pub ignored_params: BTreeMap<String, u64>,
    /// Requests naming the credential with the other version's parameter.
    pub wrong_credential_params: u64,
}

const INVOICE_SALT: u64 = 0xa110_7e57_1a0c_0001;
const CUSTOMER_SALT: u64 = 0xa110_7e57_c057_0002;
const CHECK_SALT: u64 = 0x005e_ed0f_a110_7e57;
const K1: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0xbf58_476d_1ce4_e5b9;
/// ERP invoice numbers start after this (QuickBooks-like `1001`, `1002`, ...).
const REMOTE_ID_BASE: u64 = 1000;

const fn inverse(k: u64) -> u64 {
    // Newton's iteration: each step doubles the correct low bits (an odd k is its own
    // inverse modulo 8).
    let mut x = k;
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u64.wrapping_sub(k.wrapping_mul(x)));
        i += 1;
    }
    x
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_mul(K1);
    x ^= x >> 33;
    x = x.wrapping_mul(K2);
    x ^ (x >> 33)
}

fn unmix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(inverse(K2));
    x ^= x >> 33;
    x.wrapping_mul(inverse(K1))
}

fn uuid(salt: u64, index: u64) -> String {
    let hi = mix(index ^ salt);
    let lo = mix(mix(index ^ CHECK_SALT) ^ salt);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

fn index_of_uuid(salt: u64, text: &str) -> Option<u64> {
    let parts: Vec<&str> = text.split('-').collect();
    let widths = [8, 4, 4, 4, 12];
    if parts.len() != 5 || parts.iter().zip(widths).any(|(p, w)| p.len() != w) {
        return None;
    }
    let hex = |p: &str| u64::from_str_radix(p, 16).ok();
    let hi = (hex(parts[0])? << 32) | (hex(parts[1])? << 16) | hex(parts[2])?;
    let lo = (hex(parts[3])? << 48) | hex(parts[4])?;
    let index = unmix(hi) ^ salt;
    (mix(mix(index ^ CHECK_SALT) ^ salt) == lo && uuid(salt, index) == text).then_some(index)
}

/// Alloy's `id` of invoice `index`.
pub fn alloy_invoice_id(index: u64) -> String {
    uuid(INVOICE_SALT, index)
}

/// The ERP's `remoteId` of invoice `index` (`1001` for 1).
pub fn alloy_remote_id(index: u64) -> String {
    (REMOTE_ID_BASE + index).to_string()
}

/// Alloy's `id` of customer `k` (1-based).
pub fn alloy_customer_id(k: u64) -> String {
    uuid(CUSTOMER_SALT, k)
}

/// The ERP's `remoteId` of customer `k`.
pub fn alloy_customer_remote_id(k: u64) -> String {
    format!("CUST-{k:05}")
}

pub(crate) fn invoice_index_of_id(text: &str) -> Option<u64> {
    index_of_uuid(INVOICE_SALT, text)
}

pub(crate) fn customer_index_of_id(text: &str) -> Option<u64> {
    index_of_uuid(CUSTOMER_SALT, text)
}

/// The index behind a served `remoteId` of [`alloy_remote_id`]'s form.
pub(crate) fn index_of_remote_id(text: &str) -> Option<u64> {
    let n: u64 = text.parse().ok()?;
    let index = n.checked_sub(REMOTE_ID_BASE).filter(|i| *i > 0)?;
    (alloy_remote_id(index) == text).then_some(index)
}

/// The customers the sandbox holds, in creation order; customer `k` is at `k - 1`.
#[derive(Debug, Default)]
pub(crate) struct Customers {
    pub list: Vec<Value>,
}

impl Customers {
    pub(crate) fn seeded(count: u64, stamp_ms: i64) -> Self {
        let list = (1..=count)
            .map(|k| {
                customer(
                    k,
                    &alloy_customer_remote_id(k),
                    &format!("Customer {k:05}"),
                    stamp_ms,
                )
            })
            .collect();
        Self { list }
    }

    /// Adds a customer; returns its Alloy id.
    pub(crate) fn add(&mut self, remote_id: &str, name: &str, stamp_ms: i64) -> String {
        let k = self.list.len() as u64 + 1;
        self.list.push(customer(k, remote_id, name, stamp_ms));
        alloy_customer_id(k)
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Value> {
        let k = customer_index_of_id(id)?;
        self.list.get(usize::try_from(k.checked_sub(1)?).ok()?)
    }

    pub(crate) fn count(&self) -> u64 {
        self.list.len() as u64
    }
}

fn customer(k: u64, remote_id: &str, name: &str, stamp_ms: i64) -> Value {
    let at = seed::rfc3339(stamp_ms);
    json!({
        "id": alloy_customer_id(k),
        "remoteId": remote_id,
        "customerName": name,
        "email": format!("ap{k}@customer.example"),
        "taxNumber": null,
        "customerStatus": "ACTIVE",
        "currency": "USD",
        "companyId": null,
        "addresses": [],
        "phoneNumbers": [],
        "remoteCreatedAt": at,
        "remoteUpdatedAt": at,
        "remoteDeleted": false,
        "createdAt": at,
        "updatedAt": at,
    })
}

/// A generated invoice (`seed`'s form) as Alloy serves it. Idempotent: rendering a rendered
/// invoice changes nothing, so a test may patch an invoice with what `GET` served.
pub(crate) fn render_invoice(options: &AlloyOptions, index: u64, body: Value) -> Value {
    let Value::Object(mut object) = body else {
        return body;
    };
    let internal = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .is_none_or(|s| seed::index_of(s).is_some())
    };
    if internal(object.get("id")) {
        object.insert("id".to_owned(), json!(alloy_invoice_id(index)));
    }
    if internal(object.get("remoteId")) {
        object.insert("remoteId".to_owned(), json!(alloy_remote_id(index)));
    }
    if let Some(Value::String(customer)) = object.get("customerId") {
        let k = customer
            .strip_prefix("CUST-")
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|k| *k >= 1 && alloy_customer_remote_id(*k) == *customer);
        if let Some(k) = k {
            object.insert("customerId".to_owned(), json!(alloy_customer_id(k)));
        }
    }
    for key in ["issueDate", "dueDate", "paidOnDate"] {
        if let Some(value) = object.get_mut(key) {
            *value = date(options, value);
        }
    }
    for key in [
        "totalAmount",
        "balance",
        "subTotal",
        "totalDiscount",
        "totalTaxAmount",
    ] {
        if let Some(value) = object.get_mut(key) {
            *value = amount(options, value);
        }
    }
    if let Some(Value::Array(lines)) = object.get_mut("lineItems") {
        for line in lines.iter_mut().filter_map(Value::as_object_mut) {
            for key in ["unitPrice", "totalAmount"] {
                if let Some(value) = line.get_mut(key) {
                    *value = amount(options, value);
                }
            }
        }
    }
    if options.version == AlloyVersion::V2023_12 {
        timestamps_2023_12(&mut object);
    }
    Value::Object(object)
}

/// A customer as served.
pub(crate) fn render_customer(options: &AlloyOptions, customer: &Value) -> Value {
    let mut customer = customer.clone();
    if options.version == AlloyVersion::V2023_12 {
        if let Some(object) = customer.as_object_mut() {
            timestamps_2023_12(object);
        }
    }
    customer
}

/// 2023-12 names the ERP's times `createdTimestamp` / `updatedTimestamp`, in milliseconds.
fn timestamps_2023_12(object: &mut Map<String, Value>) {
    let millis = |v: Option<Value>| {
        v.as_ref()
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| json!(t.with_timezone(&Utc).timestamp_millis()))
    };
    let created = millis(object.remove("remoteCreatedAt"));
    let updated = millis(object.remove("remoteUpdatedAt"));
    object.remove("createdAt");
    object.remove("updatedAt");
    if let Some(created) = created {
        object.insert("createdTimestamp".to_owned(), created);
    }
    if let Some(updated) = updated {
        object.insert("updatedTimestamp".to_owned(), updated);
    }
}

fn date(options: &AlloyOptions, value: &Value) -> Value {
    match value {
        Value::Number(n) => match n.as_i64() {
            Some(0) | None => Value::Null,
            Some(secs) if options.unix_dates => json!(secs),
            Some(secs) => DateTime::from_timestamp(secs, 0)
                .map_or(Value::Null, |t| json!(t.date_naive().to_string())),
        },
        other => other.clone(),
    }
}

fn amount(options: &AlloyOptions, value: &Value) -> Value {
    let Some(decimal) = json_amount(value) else {
        return value.clone();
    };
    if options.string_amounts {
        json!(decimal.to_string())
    } else {
        number(decimal)
    }
}

/// The page a list request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageQuery {
    /// Records to skip.
    pub offset: usize,
    pub size: usize,
    pub clamped: bool,
    /// A `remoteId=` filter.
    pub remote_id: Option<String>,
    pub ignored: Vec<String>,
}

/// Reads a list request's query; `Err` is the 400 message.
pub(crate) fn page_query(
    options: &AlloyOptions,
    params: &BTreeMap<String, String>,
) -> Result<PageQuery, String> {
    let mut ignored = Vec::new();
    let mut size = options.default_page_size;
    let mut clamped = false;
    let mut offset: u64 = 0;
    let mut remote_id = None;
    for (key, value) in params {
        match key.as_str() {
            k if options.is_credential_param(k) => {}
            "pageSize" => {
                let n = value
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or("pageSize must be a whole number from 1")?;
                if n > options.max_page_size {
                    if options.reject_oversize {
                        return Err(format!(
                            "pageSize must not exceed {}",
                            options.max_page_size
                        ));
                    }
                    clamped = true;
                }
                size = n.min(options.max_page_size);
            }
            "pageNumber" if options.version == AlloyVersion::V2024_03 => {
                let n = value
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or("pageNumber must be a whole number from 1")?;
                offset = n - 1;
            }
            "cursor" if options.version == AlloyVersion::V2023_12 => {
                offset = decode_cursor(value).ok_or("cursor is not one this API issued")?;
            }
            "remoteId" => remote_id = Some(value.clone()),
            other => ignored.push(other.to_owned()),
        }
    }
    let offset = if options.version == AlloyVersion::V2024_03 {
        offset.saturating_mul(u64::from(size))
    } else {
        offset
    };
    Ok(PageQuery {
        offset: usize::try_from(offset).unwrap_or(usize::MAX),
        size: usize::try_from(size).unwrap_or(usize::MAX),
        clamped,
        remote_id,
        ignored,
    })
}

/// 2023-12 cursors: opaque to clients, the position of the next record here.
pub(crate) fn encode_cursor(offset: usize) -> String {
    hex::encode(format!("{{\"o\":{offset}}}"))
}

fn decode_cursor(cursor: &str) -> Option<u64> {
    let text = String::from_utf8(hex::decode(cursor.trim()).ok()?).ok()?;
    let value: Value = serde_json::from_str(&text).ok()?;
    value.get("o")?.as_u64()
}

/// A list answer of `records` (`field`: `invoices` or `customers`) at `query`, of `total`.
pub(crate) fn list_body(
    options: &AlloyOptions,
    field: &str,
    records: Vec<Value>,
    query: &PageQuery,
    total: usize,
) -> Value {
    let mut body = Map::new();
    body.insert(field.to_owned(), Value::Array(records));
    if options.version == AlloyVersion::V2023_12 {
        let next = query.offset.saturating_add(query.size);
        let has_next = next < total;
        body.insert(
            "pageInfo".to_owned(),
            json!({
                "hasNext": has_next,
                "nextCursor": if has_next { Value::String(encode_cursor(next)) } else { Value::Null },
            }),
        );
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuids_that_decode_only_to_their_own_index() {
        for index in [1, 2, 7, 999, 50_000, 1_000_000] {
            let id = alloy_invoice_id(index);
            assert_eq!(id.len(), 36, "{id}");
            assert_eq!(invoice_index_of_id(&id), Some(index));
            assert_eq!(customer_index_of_id(&id), None, "kinds do not mix");
            assert_eq!(customer_index_of_id(&alloy_customer_id(index)), Some(index));
        }
        assert_ne!(alloy_invoice_id(1), alloy_invoice_id(2));
        assert_eq!(invoice_index_of_id("1001"), None);
        assert_eq!(
            invoice_index_of_id("00000000-0000-0000-0000-000000000000"),
            None
        );
        assert_eq!(index_of_remote_id("1007"), Some(7));
        assert_eq!(index_of_remote_id("01007"), None);
        assert_eq!(index_of_remote_id("1000"), None);
        assert_eq!(inverse(K1).wrapping_mul(K1), 1);
    }

    #[test]
    fn rendering_follows_the_version_and_is_idempotent() {
        let seed = seed::Seed {
            count: 10,
            customers: 3,
            epoch_ms: 1_767_225_600_000,
            spacing_ms: 60_000,
        };
        let v24 = AlloyOptions::new(AlloyVersion::V2024_03);
        let inv = render_invoice(&v24, 4, seed.invoice(4, seed.stamp(4)));
        assert_eq!(inv["id"], alloy_invoice_id(4));
        assert_eq!(inv["remoteId"], "1004");
        assert_eq!(inv["customerId"], alloy_customer_id(1));
        assert_eq!(inv["issueDate"], "2026-01-01");
        assert!(inv["subTotal"].is_number() && inv["totalAmount"].is_number());
        assert_eq!(render_invoice(&v24, 4, inv.clone()), inv);

        let v23 = AlloyOptions {
            unix_dates: true,
            string_amounts: true,
            ..AlloyOptions::new(AlloyVersion::V2023_12)
        };
        let old = render_invoice(&v23, 4, seed.invoice(4, seed.stamp(4)));
        assert!(old.get("remoteUpdatedAt").is_none());
        assert_eq!(old["updatedTimestamp"], 1_767_225_780_000_i64);
        assert!(old["issueDate"].is_i64());
        assert!(old["totalAmount"].is_string());
        assert_eq!(render_invoice(&v23, 4, old.clone()), old);
    }

    #[test]
    fn queries_page_by_number_or_cursor_and_clamp_large_pages() {
        let params = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>()
        };
        let v24 = AlloyOptions::new(AlloyVersion::V2024_03);
        let q = page_query(
            &v24,
            &params(&[
                ("credentialId", "c"),
                ("pageNumber", "3"),
                ("pageSize", "100"),
            ]),
        )
        .unwrap();
        assert_eq!((q.offset, q.size, q.clamped), (200, 100, false));
        let big = page_query(&v24, &params(&[("pageSize", "250"), ("updatedAfter", "x")])).unwrap();
        assert_eq!((big.size, big.clamped), (100, true));
        assert_eq!(big.ignored, vec!["updatedAfter".to_owned()]);
        assert_eq!(page_query(&v24, &params(&[])).unwrap().size, 50);
        assert!(page_query(&v24, &params(&[("pageNumber", "0")])).is_err());
        let strict = AlloyOptions {
            reject_oversize: true,
            ..v24.clone()
        };
        assert!(page_query(&strict, &params(&[("pageSize", "101")])).is_err());

        let v23 = AlloyOptions::new(AlloyVersion::V2023_12);
        let q = page_query(&v23, &params(&[("cursor", &encode_cursor(70))])).unwrap();
        assert_eq!(q.offset, 70);
        assert!(page_query(&v23, &params(&[("cursor", "zz")])).is_err());
        let body = list_body(&v23, "invoices", vec![], &q, 200);
        assert_eq!(body["pageInfo"]["hasNext"], true);
        assert_eq!(body["pageInfo"]["nextCursor"], encode_cursor(120));
        let end = list_body(&v23, "invoices", vec![], &q, 120);
        assert_eq!(
            end["pageInfo"],
            json!({"hasNext": false, "nextCursor": null})
        );
    }
}
