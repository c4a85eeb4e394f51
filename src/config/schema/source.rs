//! `[sources.<name>]`: which adapter reads an ERP, the store it feeds, how its invoices map to
//! B2B Edition and how its customers map to companies. Same rules as the rest of the schema:
//! defaults are written as TOML (or taken from the types' `Default`) and parsed like configured
//! values, and every problem is reported with its key path.

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use config::{Value, ValueKind};
use rust_decimal::Decimal;
use secrecy::SecretString;
use url::Url;

use super::{http_url, retry, timeouts};
use crate::config::node::{
    boolean, choice, fractional_secs, id, positive, secret, secret_file, secs, string, text, whole,
    word, Reported, Table,
};
use crate::config::{
    AdapterSettings, CostLineLabels, CustomerMapping, DeletedPolicy, FailurePolicy, FilesSettings,
    HttpSettings, MappingSettings, MissingPolicy, OwnedField, PagingStyle, PaymentSettings,
    PaymentStatus, ReadyRule, RebilliaAmountUnit, RebilliaSettings, RecordLimits, ScanMode,
    SourceField, SourceSettings, UnifiedApi, UnifiedNames, UnifiedPreset, UnifiedSettings,
    ALLOY_REQUESTS_PER_MINUTE, DEFAULT_CUSTOMERS_REFRESH,
};

const DEFAULT_REBILLIA_URL: &str = "https://api.rebillia.com/v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::config) enum Kind {
    Unified,
    Rebillia,
    Files,
}

/// The kind's name is also the name of its section (`kind = "files"` reads `[sources.x.files]`).
const KINDS: &[(&str, Kind)] = &[
    ("unified", Kind::Unified),
    ("rebillia", Kind::Rebillia),
    ("files", Kind::Files),
];

const DELETED_POLICIES: &[(&str, DeletedPolicy)] = &[
    ("delete", DeletedPolicy::Delete),
    ("zero_balance", DeletedPolicy::ZeroBalance),
    ("ignore", DeletedPolicy::Ignore),
];

const MISSING_POLICIES: &[(&str, MissingPolicy)] = &[
    ("recreate", MissingPolicy::Recreate),
    ("fail", MissingPolicy::Fail),
];

const READY_RULES: &[(&str, ReadyRule)] = &[
    ("marker", ReadyRule::Marker),
    ("atomic_rename", ReadyRule::AtomicRename),
];

#[derive(Debug, Clone, Copy)]
enum Strategy {
    Static,
    Table,
    CompanyExtraField,
}

const STRATEGIES: &[(&str, Strategy)] = &[
    ("static", Strategy::Static),
    ("table", Strategy::Table),
    ("company_extra_field", Strategy::CompanyExtraField),
];

/// Why a `files` source has no `reconcile_schedule` (the same reason `reconcile` gives).
const FILES_CANNOT_RECONCILE: &str = "a files source cannot be reconciled: its folder holds only \
     the exports not imported yet, not every invoice of the ERP";

pub(super) fn source(name: &str, mut t: Table<'_>, stores: &[String]) -> Option<SourceSettings> {
    let name_ok = super::check_name(&t, name, "source", "sources.erp_main.overlap_secs");
    let kind = t.required(
        "kind",
        "which adapter reads this source: \"unified\", \"rebillia\" or \"files\"",
        choice(KINDS),
    );
    let store = t.required("store", &store_hint(stores), store_name(stores));
    let overlap = t.or("overlap_secs", 300, secs(0..=86_400));
    let on_deleted = t.or("on_deleted", "delete", choice(DELETED_POLICIES));
    let on_missing_in_b2b = t.or("on_missing_in_b2b", "fail", choice(MISSING_POLICIES));
    let failures = failures(t.section("failures"));
    let timezone = t.or("schedule_timezone", "UTC", |v: &Value| {
        let name = text(v)?;
        name.parse::<chrono_tz::Tz>()
            .map_err(|_| "not an IANA time zone name (like UTC or Europe/Berlin)".to_owned())
    });
    let schedule = match timezone {
        Some(tz) => t.or("schedule", "*/5 * * * *", |v: &Value| {
            crate::schedule::CronSchedule::parse(&text(v)?, tz)
        }),
        None => {
            // Without its zone the schedule cannot be read, but it is a known key: only the
            // zone is reported.
            let _ = t.field("schedule", |_| Ok(()));
            None
        }
    };
    let reconcile_schedule = match timezone {
        Some(tz) => t
            .field("reconcile_schedule", |v: &Value| {
                if matches!(kind, Some(Kind::Files)) {
                    return Err(FILES_CANNOT_RECONCILE.to_owned());
                }
                crate::schedule::CronSchedule::parse(&text(v)?, tz)
            })
            .ok(),
        None => None,
    };
    let start_jitter = t.or("start_jitter_secs", 0, secs(0..=3600));
    let update_freshness = t.or("update_freshness_secs", 2, fractional_secs(0.1, 300.0));
    let adapter = adapter(&mut t, kind);
    let mapping = mapping(t.section("mapping"));
    let customers = customers(t.section("customers"));
    let payments = payments(t.section("payments"), kind);
    let limits = limits(t.section("limits"));
    if !name_ok {
        return None;
    }
    Some(SourceSettings {
        name: name.to_owned(),
        store: store?,
        overlap: overlap?,
        adapter: adapter?,
        mapping: mapping?,
        customers: customers?,
        on_deleted: on_deleted?,
        on_missing_in_b2b: on_missing_in_b2b?,
        failures: failures?,
        schedule: schedule?,
        reconcile_schedule: reconcile_schedule?,
        start_jitter: start_jitter?,
        update_freshness: update_freshness?,
        payments: payments?,
        limits: limits?,
    })
}

/// The limits' defaults are the domain's (`RecordLimits::default`), where they are explained.
fn limits(mut t: Table<'_>) -> Option<RecordLimits> {
    let d = RecordLimits::default();
    let max_amount = t.or("max_amount", d.max_amount.to_string(), positive_decimal);
    let max_quantity = t.or("max_quantity", d.max_quantity.to_string(), positive_decimal);
    let max_decimal_places = t.or(
        "max_decimal_places",
        u64::from(d.max_decimal_places),
        whole(0..=28),
    );
    let negative_quantities = t.or("negative_quantities", d.negative_quantities, boolean);
    let negative_totals = t.or("negative_totals", d.negative_totals, boolean);
    let line_signs_agree = t.or("line_signs_agree", d.line_signs_agree, boolean);
    Some(RecordLimits {
        max_amount: max_amount?,
        max_quantity: max_quantity?,
        max_decimal_places: max_decimal_places?,
        negative_quantities: negative_quantities?,
        negative_totals: negative_totals?,
        line_signs_agree: line_signs_agree?,
    })
}

/// A decimal above 0, as a string (`"1000000.50"`, exact) or a whole number.
fn positive_decimal(value: &Value) -> Result<Decimal, String> {
    let amount = match &value.kind {
        // The value is not quoted back: it might be a secret pasted into the wrong key.
        ValueKind::String(s) => crate::domain::money::parse_amount(s).map_err(|_| {
            "expected a decimal number like \"1000000\" (digits and at most one point)".to_owned()
        })?,
        ValueKind::I64(n) => Decimal::from(*n),
        ValueKind::U64(n) => Decimal::from(*n),
        ValueKind::Float(_) => {
            return Err(
                "write it as a string (\"1000000.50\") so that its digits stay exact".to_owned(),
            )
        }
        _ => return Err("expected a decimal number as a string, like \"1000000\"".to_owned()),
    };
    if amount > Decimal::ZERO {
        Ok(amount)
    } else {
        Err(format!("must be above 0 (got {amount})"))
    }
}

pub(in crate::config) fn payments(mut t: Table<'_>, kind: Option<Kind>) -> Option<PaymentSettings> {
    let enabled = t.or("enabled", false, boolean);
    let write_back = t.or("write_back", false, boolean);
    let statuses = t.list_or("statuses", vec!["completed"], payment_status);
    let reference_field = t.field("reference_field", text).ok();
    let (enabled, write_back) = (enabled?, write_back?);
    if write_back && !enabled {
        t.problem(
            "write_back",
            "needs enabled = true (payments are only written back once they are watched)",
        );
        return None;
    }
    let mut statuses = statuses?;
    statuses.sort();
    statuses.dedup();
    if statuses.is_empty() {
        t.problem(
            "statuses",
            "must name at least one status, e.g. [\"completed\"]",
        );
        return None;
    }
    let reference_field = reference_field?;
    match (kind, reference_field.as_deref()) {
        (Some(Kind::Rebillia), Some(field)) if field != "comments" => {
            t.problem(
                "reference_field",
                "Rebillia keeps a payment reference only in \"comments\"; set that or leave it out",
            );
            return None;
        }
        (Some(Kind::Files), Some(_)) => {
            t.problem(
                "reference_field",
                "the files outbox always carries the reference in each line; leave it out",
            );
            return None;
        }
        _ => {}
    }
    Some(PaymentSettings {
        enabled,
        write_back,
        statuses,
        reference_field,
    })
}

fn payment_status(value: &Value) -> Result<PaymentStatus, String> {
    let name = string(value)?;
    PaymentStatus::ALL
        .into_iter()
        .find(|s| s.name() == name.trim())
        .ok_or_else(|| {
            let names: Vec<&str> = PaymentStatus::ALL.iter().map(|s| s.name()).collect();
            format!(
                "not a B2B payment status that can count as paid; expected one of {} (refunds always count)",
                names.join(", ")
            )
        })
}

pub(in crate::config) fn failures(mut t: Table<'_>) -> Option<FailurePolicy> {
    let max_attempts = t.or("max_attempts", 8, whole(1..=1000));
    let base_delay = t.or("base_delay_secs", 60, secs(1..=86_400));
    let max_delay = t.or("max_delay_secs", 21_600, secs(1..=2_592_000));
    let (base_delay, max_delay) = (base_delay?, max_delay?);
    if max_delay < base_delay {
        t.problem("max_delay_secs", "must not be below base_delay_secs");
        return None;
    }
    Some(FailurePolicy {
        max_attempts: max_attempts?,
        base_delay,
        max_delay,
    })
}

fn configured(stores: &[String]) -> String {
    if stores.is_empty() {
        "no store is configured yet".to_owned()
    } else {
        format!("configured: {}", stores.join(", "))
    }
}

fn store_hint(stores: &[String]) -> String {
    format!(
        "the name of the [stores.<name>] this source feeds; {}",
        configured(stores)
    )
}

fn store_name(stores: &[String]) -> impl Fn(&Value) -> Result<String, String> + '_ {
    move |value| {
        let name = word(value)?;
        if stores.contains(&name) {
            Ok(name)
        } else {
            Err(format!(
                "names no [stores.<name>] section; {}",
                configured(stores)
            ))
        }
    }
}

/// The section of the chosen kind is required; a section of another kind is a mistake (it would
/// be ignored). With the kind itself wrong, every adapter section present is still checked.
fn adapter(t: &mut Table<'_>, kind: Option<Kind>) -> Option<AdapterSettings> {
    let chosen = kind.and_then(|kind| KINDS.iter().find(|(_, k)| *k == kind));
    let mut settings = None;
    for &(section, this) in KINDS {
        match chosen {
            Some(&(_, kind)) if kind == this => match t.optional_section(section) {
                Some(table) => settings = read_adapter(this, table),
                None => t.missing(
                    section,
                    &format!("required with kind = \"{section}\": the adapter's settings"),
                ),
            },
            Some(&(chosen, _)) if t.has(section) => {
                // Marked as read so that its keys are not also reported as unknown.
                let _ = t.field(section, |_| Ok(()));
                t.problem(
                    section,
                    format!(
                        "a [{section}] section, but kind = \"{chosen}\"; remove the section \
                         or set kind = \"{section}\""
                    ),
                );
            }
            Some(_) => {}
            None => {
                if let Some(table) = t.optional_section(section) {
                    let _ = read_adapter(this, table);
                }
            }
        }
    }
    settings
}

fn read_adapter(kind: Kind, t: Table<'_>) -> Option<AdapterSettings> {
    match kind {
        Kind::Unified => unified(t).map(|u| AdapterSettings::Unified(Box::new(u))),
        Kind::Rebillia => rebillia(t).map(AdapterSettings::Rebillia),
        Kind::Files => files(t).map(AdapterSettings::Files),
    }
}

const PRESETS: &[(&str, UnifiedPreset)] = &[
    ("alloy-2024-03", UnifiedPreset::Alloy2024_03),
    ("alloy-2023-12", UnifiedPreset::Alloy2023_12),
    ("custom", UnifiedPreset::Custom),
];

const PAGING_STYLES: &[(&str, PagingStyle)] = &[
    ("next_field", PagingStyle::NextField),
    ("page_number", PagingStyle::PageNumber),
    ("body_cursor", PagingStyle::BodyCursor),
    ("offset", PagingStyle::Offset),
];

const SCAN_MODES: &[(&str, ScanMode)] = &[
    ("incremental", ScanMode::Incremental),
    ("full", ScanMode::Full),
];

/// Keys only `preset = "custom"` reads: a preset fixes them.
const CUSTOM_ONLY: &[&str] = &["paging", "scan", "first_page", "customer_lookup"];

/// Alloy answers at most 100 invoices a page (a larger `pageSize` is not honoured).
const ALLOY_MAX_PAGE_SIZE: u32 = 100;

fn unified(mut t: Table<'_>) -> Option<UnifiedSettings> {
    let Some(preset) = t.or("preset", "custom", choice(PRESETS)) else {
        // Without a preset, which keys belong cannot be judged: check the common ones and
        // take the rest as read, so that the one real mistake is not buried in others.
        let _ = unified_common(&mut t, UnifiedPreset::Custom);
        for key in t.keys() {
            let _ = t.field(&key, |_| Ok(()));
        }
        return None;
    };
    let common = unified_common(&mut t, preset);
    let parsed = if preset.is_alloy() {
        alloy_api(&mut t, preset)
    } else {
        custom_api(&mut t)
    };
    let common = common?;
    let (names, mut api) = parsed?;
    api.customer_lookup = api.customer_lookup.map(|_| common.customers_refresh);
    api.requests_per_minute = common.requests_per_minute;
    Some(UnifiedSettings {
        base_url: common.base_url,
        api_key: common.api_key,
        credential_id: common.credential_id,
        http: common.http,
        names,
        api,
    })
}

/// What every preset reads.
struct UnifiedCommon {
    base_url: Url,
    api_key: SecretString,
    credential_id: String,
    http: HttpSettings,
    requests_per_minute: Option<NonZeroU32>,
    customers_refresh: Duration,
}

fn unified_common(t: &mut Table<'_>, preset: UnifiedPreset) -> Option<UnifiedCommon> {
    let base_url = match preset.default_base_url() {
        Some(default) => t.or("base_url", default, alloy_url(preset)),
        None => t.required(
            "base_url",
            "the unified API's root URL, like \"https://api.example-unified.com\"",
            http_url,
        ),
    };
    let api_key = t.exactly_one(("api_key", secret), ("api_key_file", secret_file));
    let credential_id = t.required(
        "credential_id",
        if preset == UnifiedPreset::Alloy2023_12 {
            "the connectionId of the connected ERP to read"
        } else {
            "the credentialId of the connected ERP to read"
        },
        text,
    );
    let http = if preset.is_alloy() {
        http(t, ALLOY_MAX_PAGE_SIZE, 1..=ALLOY_MAX_PAGE_SIZE)
    } else {
        http(t, 100, 1..=1000)
    };
    let default_rpm = if preset.is_alloy() {
        ALLOY_REQUESTS_PER_MINUTE
    } else {
        0
    };
    let requests_per_minute = t.or("requests_per_minute", default_rpm, |v: &Value| {
        let n = whole(0..=1_000_000)(v)?;
        if n == 0 && preset.is_alloy() {
            return Err(
                "Alloy limits every connection: give its requests per minute (150 on \
                        the basic plan; 300, 500, 1000 on larger ones)"
                    .to_owned(),
            );
        }
        Ok(NonZeroU32::new(n))
    });
    let customers_refresh = t.or("customers_refresh_secs", 86_400, secs(60..=2_592_000));
    Some(UnifiedCommon {
        base_url: base_url?,
        api_key: api_key?,
        credential_id: credential_id?,
        http: http?,
        requests_per_minute: requests_per_minute?,
        customers_refresh: customers_refresh?,
    })
}

/// An Alloy base URL: an http(s) URL whose path, when it names an API version, names the
/// preset's.
fn alloy_url(preset: UnifiedPreset) -> impl Fn(&Value) -> Result<Url, String> {
    move |value| {
        let url = http_url(value)?;
        let want = preset.alloy_version().unwrap_or_default();
        let named = url.path_segments().into_iter().flatten().find(|segment| {
            let b = segment.as_bytes();
            b.len() == 7
                && b[4] == b'-'
                && b.iter()
                    .enumerate()
                    .all(|(i, c)| i == 4 || c.is_ascii_digit())
        });
        match named {
            Some(version) if version != want => Err(format!(
                "names Alloy API version {version}, but preset = \"{}\" speaks {want}; \
                 use https://embedded.runalloy.com/{want}/one or change the preset",
                preset.name()
            )),
            _ => Ok(url),
        }
    }
}

/// An Alloy preset: everything but the budget, the page size and (for the documented
/// ambiguity of 2024-03) the credential parameter is fixed; setting it is a mistake.
fn alloy_api(t: &mut Table<'_>, preset: UnifiedPreset) -> Option<(UnifiedNames, UnifiedApi)> {
    let fixed = format!(
        "fixed by preset = \"{}\"; remove it, or use preset = \"custom\" to configure every \
         wire name and the paging yourself",
        preset.name()
    );
    let mut clean = true;
    for key in CUSTOM_ONLY {
        if t.has(key) {
            let _ = t.field(key, |_| Ok(()));
            t.problem(key, &fixed);
            clean = false;
        }
    }
    let mut names = UnifiedNames::for_preset(preset);
    if let Some(mut section) = t.optional_section("names") {
        for key in section.keys() {
            if key == "credential_param" {
                match section.field(&key, text) {
                    Ok(Some(param)) => names.credential_param = param,
                    _ => clean = false,
                }
            } else {
                let _ = section.field(&key, |_| Ok(()));
                section.problem(&key, &fixed);
                clean = false;
            }
        }
    }
    clean.then(|| (names, UnifiedApi::for_preset(preset)))
}

fn custom_api(t: &mut Table<'_>) -> Option<(UnifiedNames, UnifiedApi)> {
    let paging = t.or("paging", "next_field", choice(PAGING_STYLES));
    let scan = t.or("scan", "incremental", choice(SCAN_MODES));
    let first_page = t.or("first_page", 1, whole(0..=1_000_000));
    let lookup = t.or("customer_lookup", false, boolean);
    let names = fill(t.section("names"), UnifiedNames::default(), UNIFIED_NAMES);
    let (paging, names, lookup) = (paging?, names?, lookup?);
    if t.has("customers_refresh_secs") && !lookup {
        t.problem(
            "customers_refresh_secs",
            "only used with customer_lookup = true (or an Alloy preset)",
        );
        return None;
    }
    if t.has("first_page") && paging != PagingStyle::PageNumber {
        t.problem("first_page", "only used with paging = \"page_number\"");
        return None;
    }
    let api = UnifiedApi {
        preset: UnifiedPreset::Custom,
        paging,
        first_page: first_page?,
        scan: scan?,
        customer_lookup: lookup.then_some(DEFAULT_CUSTOMERS_REFRESH),
        requests_per_minute: None,
    };
    Some((names, api))
}

const AMOUNT_UNITS: &[(&str, RebilliaAmountUnit)] = &[
    ("auto", RebilliaAmountUnit::Auto),
    ("cents", RebilliaAmountUnit::Cents),
    ("dollars", RebilliaAmountUnit::Dollars),
];

fn rebillia(mut t: Table<'_>) -> Option<RebilliaSettings> {
    let base_url = t.or("base_url", DEFAULT_REBILLIA_URL, http_url);
    let token = t.exactly_one(("token", secret), ("token_file", secret_file));
    let http = http(&mut t, 100, 1..=250);
    let amount_unit = t.or("amount_unit", "auto", choice(AMOUNT_UNITS));
    Some(RebilliaSettings {
        base_url: base_url?,
        token: token?,
        http: http?,
        amount_unit: amount_unit?,
    })
}

fn files(mut t: Table<'_>) -> Option<FilesSettings> {
    // Existence is the adapter's to check: the folder may be mounted after a config check.
    let dir = t.required(
        "dir",
        "the folder the ERP writes its exports to",
        |v: &Value| text(v).map(PathBuf::from),
    );
    let ready = t.or("ready", "marker", choice(READY_RULES));
    let page_size = t.or("page_size", 500, positive(1..=10_000));
    Some(FilesSettings {
        dir: dir?,
        ready: ready?,
        page_size: page_size?,
    })
}

fn http(t: &mut Table<'_>, page_size: u32, pages: RangeInclusive<u32>) -> Option<HttpSettings> {
    let (request_timeout, connect_timeout) = timeouts(t);
    let page_size = t.or("page_size", page_size, positive(pages));
    let retry = retry(t.section("retry"));
    Some(HttpSettings {
        request_timeout: request_timeout?,
        connect_timeout: connect_timeout?,
        retry: retry?,
        page_size: page_size?,
    })
}

fn mapping(mut t: Table<'_>) -> Option<MappingSettings> {
    let timezone = t.or("timezone", "UTC", timezone);
    let default_type = t.or("default_type", "Invoice", text);
    let channel_id = t.field("channel_id", id).ok();
    let all: Vec<&str> = OwnedField::ALL.iter().map(|f| f.name()).collect();
    let owned = t.list_or("owned", all, owned_field);
    let extra_fields = t.map_of("extra_fields", source_field).ok();
    // The text fields and cost line labels start from the types' defaults, so the defaults
    // documented on them are the ones applied.
    let fields = fill(
        t.section("fields"),
        MappingSettings::default(),
        MAPPED_FIELDS,
    );
    let labels = fill(
        t.section("cost_lines"),
        CostLineLabels::default(),
        COST_LINES,
    );
    let fields = fields?;
    let mut owned = owned?;
    // Repeating a name changes nothing; keep the first so the order stays the operator's.
    let mut seen = BTreeSet::new();
    owned.retain(|f| seen.insert(*f));
    Some(MappingSettings {
        timezone: timezone?,
        default_type: default_type?,
        channel_id: channel_id?,
        cost_line_labels: labels?,
        extra_fields: extra_fields?.unwrap_or_default(),
        owned,
        ..fields
    })
}

fn customers(mut t: Table<'_>) -> Option<CustomerMapping> {
    const MAP: &[&str] = &["map"];
    const LOOKUP: &[&str] = &["field_name", "ttl_secs"];
    let Some(strategy) = t.or("strategy", "table", choice(STRATEGIES)) else {
        // Which keys belong can't be judged without a strategy; still check their values.
        let _ = t.map_of("map", company_id);
        let _ = t.field("field_name", text);
        let _ = t.field("ttl_secs", secs(60..=2_592_000));
        return None;
    };
    match strategy {
        Strategy::Static => {
            let clean = only_with(&mut t, LOOKUP, "company_extra_field");
            let map = match t.map_of("map", company_id) {
                Ok(Some(map)) if map.is_empty() => {
                    t.problem(
                        "map",
                        "must list at least one ERP customer id = B2B company id",
                    );
                    None
                }
                Ok(Some(map)) => Some(map),
                Ok(None) => {
                    t.missing(
                        "map",
                        "required with strategy = \"static\": ERP customer id = B2B company id, \
                         like map = { \"C-001\" = 12 }",
                    );
                    None
                }
                Err(Reported) => None,
            };
            clean.then_some(CustomerMapping::Static(map?))
        }
        Strategy::Table => {
            let clean = only_with(&mut t, MAP, "static");
            let clean = only_with(&mut t, LOOKUP, "company_extra_field") && clean;
            clean.then_some(CustomerMapping::Table)
        }
        Strategy::CompanyExtraField => {
            let clean = only_with(&mut t, MAP, "static");
            let field_name = t.or("field_name", "ERP Customer ID", text);
            let ttl = t.or("ttl_secs", 86_400, secs(60..=2_592_000));
            let mapping = CustomerMapping::CompanyExtraField {
                field_name: field_name?,
                ttl: ttl?,
            };
            clean.then_some(mapping)
        }
    }
}

/// Reports each of `keys` that is set although only `strategy` uses it; true when none is.
fn only_with(t: &mut Table<'_>, keys: &[&str], strategy: &str) -> bool {
    let mut clean = true;
    for key in keys {
        if t.has(key) {
            let _ = t.field(key, |_| Ok(()));
            t.problem(
                key,
                format!(
                    "only used with strategy = \"{strategy}\"; remove it or change the strategy"
                ),
            );
            clean = false;
        }
    }
    clean
}

/// One key of a struct whose fields all have the same kind of value: where it lives, and how
/// it is read.
type Slot<S, V> = (&'static str, fn(&mut S) -> &mut V, Parser<V>);
type Parser<V> = fn(&Value) -> Result<V, String>;

/// Reads every slot of `target` from `t`, each defaulting to the value `target` starts with.
fn fill<S, V: AsToml>(mut t: Table<'_>, mut target: S, slots: &[Slot<S, V>]) -> Option<S> {
    let mut complete = true;
    for &(key, slot, parse) in slots {
        let current = slot(&mut target);
        match t.or(key, current.as_toml(), parse) {
            Some(value) => *current = value,
            None => complete = false,
        }
    }
    complete.then_some(target)
}

/// A built-in default written back the way an operator would write it.
trait AsToml {
    fn as_toml(&self) -> ValueKind;
}

impl AsToml for String {
    fn as_toml(&self) -> ValueKind {
        self.clone().into()
    }
}

/// `""` is how the config says "leave this B2B field unset".
impl AsToml for Option<SourceField> {
    fn as_toml(&self) -> ValueKind {
        self.as_ref()
            .map(source_field_name)
            .unwrap_or_default()
            .into()
    }
}

const UNIFIED_NAMES: &[Slot<UnifiedNames, String>] = &[
    ("invoices_path", |n| &mut n.invoices_path, relative_path),
    ("credential_param", |n| &mut n.credential_param, text),
    ("limit_param", |n| &mut n.limit_param, text),
    ("cursor_param", |n| &mut n.cursor_param, text),
    ("updated_after_param", |n| &mut n.updated_after_param, text),
    ("page_param", |n| &mut n.page_param, text),
    ("offset_param", |n| &mut n.offset_param, text),
    ("list_field", |n| &mut n.list_field, text),
    ("next_field", |n| &mut n.next_field, text),
    ("single_field", |n| &mut n.single_field, text),
    ("next_cursor_path", |n| &mut n.next_cursor_path, dotted_path),
    (
        "has_more_path",
        |n| &mut n.has_more_path,
        optional_dotted_path,
    ),
    ("id_field", |n| &mut n.id_field, text),
    ("external_id_field", |n| &mut n.external_id_field, text),
    ("customers_path", |n| &mut n.customers_path, relative_path),
    ("customers_field", |n| &mut n.customers_field, text),
    ("customer_field", |n| &mut n.customer_field, text),
    ("customer_id_field", |n| &mut n.customer_id_field, text),
    (
        "customer_remote_id_field",
        |n| &mut n.customer_remote_id_field,
        text,
    ),
    ("customer_name_field", |n| &mut n.customer_name_field, text),
];

/// A dotted path of field names into a JSON answer (`pageInfo.nextCursor`).
fn dotted_path(value: &Value) -> Result<String, String> {
    let path = text(value)?.trim().to_owned();
    if path.split('.').any(|segment| segment.trim().is_empty()) {
        return Err("must be field names joined by dots, like \"pageInfo.nextCursor\"".to_owned());
    }
    Ok(path)
}

/// A dotted path, or `""` for none.
fn optional_dotted_path(value: &Value) -> Result<String, String> {
    if string(value)?.trim().is_empty() {
        return Ok(String::new());
    }
    dotted_path(value)
}

const COST_LINES: &[Slot<CostLineLabels, String>] = &[
    ("subtotal", |c| &mut c.subtotal, text),
    ("freight", |c| &mut c.freight, text),
    ("tax", |c| &mut c.tax, text),
    ("discount", |c| &mut c.discount, text),
];

/// `[mapping.fields]`: B2B field = ERP field.
const MAPPED_FIELDS: &[Slot<MappingSettings, Option<SourceField>>] = &[
    (
        "purchase_order_number",
        |m| &mut m.purchase_order_number,
        optional_source_field,
    ),
    (
        "order_number",
        |m| &mut m.order_number,
        optional_source_field,
    ),
    (
        "terms_conditions",
        |m| &mut m.terms_conditions,
        optional_source_field,
    ),
    (
        "external_pdf_url",
        |m| &mut m.external_pdf_url,
        optional_source_field,
    ),
    ("type", |m| &mut m.invoice_type, optional_source_field),
];

/// The config spelling of a field, the inverse of [`SourceField::parse`].
fn source_field_name(field: &SourceField) -> String {
    let name = match field {
        SourceField::PoNumber => "po_number",
        SourceField::OrderNumber => "order_number",
        SourceField::Terms => "terms",
        SourceField::Memo => "memo",
        SourceField::PdfUrl => "pdf_url",
        SourceField::Type => "type",
        SourceField::InvoiceNumber => "invoice_number",
        SourceField::ExternalId => "external_id",
        SourceField::ExternalCustomerId => "external_customer_id",
        SourceField::SourceName => "source",
        SourceField::Extra(key) => return format!("extra.{key}"),
    };
    name.to_owned()
}

const SOURCE_FIELDS_HINT: &str = "expected po_number, order_number, terms, memo, pdf_url, type, \
     invoice_number, external_id, external_customer_id, source, or extra.<key> for one of the \
     ERP's extra fields";

fn source_field(value: &Value) -> Result<SourceField, String> {
    let name = string(value)?;
    SourceField::parse(&name).ok_or_else(|| format!("not an ERP field; {SOURCE_FIELDS_HINT}"))
}

fn optional_source_field(value: &Value) -> Result<Option<SourceField>, String> {
    if string(value)?.trim().is_empty() {
        return Ok(None);
    }
    source_field(value)
        .map(Some)
        .map_err(|e| format!("{e} (or \"\" to leave the B2B field unset)"))
}

fn owned_field(value: &Value) -> Result<OwnedField, String> {
    OwnedField::parse(&string(value)?).ok_or_else(|| {
        let names: Vec<&str> = OwnedField::ALL.iter().map(|f| f.name()).collect();
        format!(
            "not a field the daemon can own; expected one of {}",
            names.join(", ")
        )
    })
}

fn timezone(value: &Value) -> Result<chrono_tz::Tz, String> {
    string(value)?.trim().parse().map_err(|_| {
        "not a time zone of the IANA database; write a name like \"UTC\" or \"Europe/Berlin\""
            .to_owned()
    })
}

/// B2B company ids are numbers; the map keeps them as the text the company API is queried with.
fn company_id(value: &Value) -> Result<String, String> {
    id(value)
        .map(|id| id.to_string())
        .map_err(|e| format!("{e}; B2B company ids are whole numbers from 1"))
}

/// Joined onto the base URL, so a leading `/` would drop the base URL's own path.
fn relative_path(value: &Value) -> Result<String, String> {
    let path = text(value)?;
    if path.starts_with('/') {
        Err("must be relative to base_url: leave out the leading /".to_owned())
    } else if path.contains(['?', '#']) || path.chars().any(char::is_whitespace) {
        Err("must be a plain path, without spaces, ? or #".to_owned())
    } else {
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_field_names_round_trip() {
        let fields = [
            SourceField::PoNumber,
            SourceField::OrderNumber,
            SourceField::Terms,
            SourceField::Memo,
            SourceField::PdfUrl,
            SourceField::Type,
            SourceField::InvoiceNumber,
            SourceField::ExternalId,
            SourceField::ExternalCustomerId,
            SourceField::SourceName,
            SourceField::Extra("Sales Rep".to_owned()),
        ];
        for field in fields {
            assert_eq!(
                SourceField::parse(&source_field_name(&field)),
                Some(field.clone())
            );
        }
    }
}
