//! Settings of ERP sources (`[sources.<name>]`): which adapter, which store it feeds, how ERP
//! fields map to B2B Edition, how customers map to companies, and what a deletion does.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::RetrySettings;
pub use crate::domain::policy::{
    CostLineLabels, DeletedPolicy, MappingSettings, OwnedField, RecordLimits, SourceField,
};

#[derive(Debug, Clone)]
pub struct SourceSettings {
    /// The key under `[sources]`.
    pub name: String,
    /// The key of the `[stores.<name>]` this source's invoices go to (must exist).
    pub store: String,
    /// How far before the cursor each cycle re-reads (default 300 s).
    pub overlap: Duration,
    pub adapter: AdapterSettings,
    pub mapping: MappingSettings,
    pub customers: CustomerMapping,
    /// What a deleted or voided ERP invoice does in B2B (default `delete`, guarded by payments).
    pub on_deleted: DeletedPolicy,
    /// What an update does when the invoice is gone from B2B (default `fail`).
    pub on_missing_in_b2b: MissingPolicy,
    /// How failed invoices are retried (`[sources.<name>.failures]`).
    pub failures: FailurePolicy,
    /// When `run` starts this source's cycles (default every 5 minutes, UTC).
    pub schedule: crate::schedule::CronSchedule,
    /// A random delay up to this before each scheduled cycle, so many sources and replicas do not
    /// all start at the same second (default 0).
    pub start_jitter: Duration,
    /// When `run` also reconciles this source with B2B (`reconcile`, without repair), in the
    /// schedule's time zone; none by default.
    pub reconcile_schedule: Option<crate::schedule::CronSchedule>,
    /// The oldest the B2B state an update is built from may be when its `PUT` goes out (default
    /// 2 s): B2B has no conditional update, so a person's edit landing between the read and the
    /// write would be lost; older state is read again first.
    pub update_freshness: Duration,
    /// B2B Edition payments of this source's invoices (`[sources.<name>.payments]`).
    pub payments: PaymentSettings,
    /// What a record may hold before it is refused as a data error
    /// (`[sources.<name>.limits]`).
    pub limits: RecordLimits,
}

/// `[sources.<name>.payments]`: payments made in B2B Edition flowing back to the ERP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentSettings {
    /// Watch B2B payments of this source's invoices, and keep them in the openBalance the daemon
    /// pushes until the ERP reflects them (default off).
    pub enabled: bool,
    /// Also write each payment (and refund) to the ERP (default off: nothing is sent to the ERP).
    pub write_back: bool,
    /// B2B processing statuses that count as paid (default `completed` only). A refunded payment
    /// (status 4) always reverses what it counted for.
    pub statuses: Vec<PaymentStatus>,
    /// Where the ERP gets the payment reference ("b2b-payment-<id>"): a unified `remoteFields`
    /// key, or `comments` for Rebillia; unset: nowhere.
    pub reference_field: Option<String>,
}

/// The schema's defaults (`schema::payments`): written once, there.
impl Default for PaymentSettings {
    fn default() -> Self {
        super::schema::absent(|t| super::schema::payments(t, None))
    }
}

/// B2B Edition's payment processing statuses that can count as paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PaymentStatus {
    /// 1
    AwaitingProcessing,
    /// 2
    Processing,
    /// 3
    Completed,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 3] =
        [Self::AwaitingProcessing, Self::Processing, Self::Completed];

    pub fn name(self) -> &'static str {
        match self {
            Self::AwaitingProcessing => "awaiting_processing",
            Self::Processing => "processing",
            Self::Completed => "completed",
        }
    }

    /// B2B Edition's `processingStatus` number.
    pub fn code(self) -> u8 {
        match self {
            Self::AwaitingProcessing => 1,
            Self::Processing => 2,
            Self::Completed => 3,
        }
    }
}

impl SourceSettings {
    /// A source with every default: the config loader's defaults, for code that builds settings
    /// (the demo, tests).
    pub fn with_defaults(name: &str, store: &str, adapter: AdapterSettings) -> Self {
        Self {
            name: name.to_owned(),
            store: store.to_owned(),
            overlap: Duration::from_secs(300),
            adapter,
            mapping: MappingSettings::default(),
            customers: CustomerMapping::Table,
            on_deleted: DeletedPolicy::default(),
            on_missing_in_b2b: MissingPolicy::default(),
            failures: FailurePolicy::default(),
            schedule: crate::schedule::CronSchedule::every_five_minutes(),
            reconcile_schedule: None,
            start_jitter: Duration::ZERO,
            update_freshness: Duration::from_secs(2),
            payments: PaymentSettings::default(),
            limits: RecordLimits::default(),
        }
    }
}

/// An update found the invoice deleted in B2B (404).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingPolicy {
    /// Create it again: the ERP is the truth.
    Recreate,
    /// Record a failure a person can look at: someone deleted it in B2B on purpose, perhaps.
    #[default]
    Fail,
}

/// Retries of failed invoices: exponential backoff from `base_delay` up to `max_delay`, then the
/// dead letter after `max_attempts` failed attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailurePolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

/// The schema's defaults (`schema::failures`): written once, there.
impl Default for FailurePolicy {
    fn default() -> Self {
        super::schema::absent(super::schema::failures)
    }
}

impl FailurePolicy {
    /// The wait before the next attempt after `attempts` failures (1 = first failure).
    pub fn delay_after(&self, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(30);
        self.base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay)
    }
}

#[derive(Debug, Clone)]
pub enum AdapterSettings {
    Unified(Box<UnifiedSettings>),
    Rebillia(RebilliaSettings),
    Files(FilesSettings),
}

impl AdapterSettings {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unified(_) => "unified",
            Self::Rebillia(_) => "rebillia",
            Self::Files(_) => "files",
        }
    }
}

/// HTTP behaviour shared by the API adapters.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetrySettings,
    /// Records per page requested from the ERP (unified default 100; Rebillia at most 250).
    pub page_size: NonZeroU32,
}

/// A unified accounting API (api-docs 004): `[sources.<name>.unified]`.
#[derive(Debug, Clone)]
pub struct UnifiedSettings {
    pub base_url: Url,
    /// Sent as `Authorization: Bearer <api_key>` (`api_key` or `api_key_file`).
    pub api_key: SecretString,
    /// The required credential query parameter (`credentialId`, Alloy 2023-12: `connectionId`):
    /// which connected ERP to read.
    pub credential_id: String,
    pub http: HttpSettings,
    /// Names of paths, parameters and fields: vendors of such APIs differ in them.
    pub names: UnifiedNames,
    /// Which API this is (`preset`) and how it is read: paging, full scan or incremental,
    /// customer resolution, the request budget.
    pub api: UnifiedApi,
}

impl UnifiedSettings {
    /// Settings of an Alloy preset: its wire names, paging, full scan, customer resolution and
    /// budget (for code that builds settings: tests, the benchmarks).
    pub fn alloy(
        preset: UnifiedPreset,
        base_url: Url,
        api_key: SecretString,
        credential_id: String,
        http: HttpSettings,
    ) -> Self {
        Self {
            base_url,
            api_key,
            credential_id,
            http,
            names: UnifiedNames::for_preset(preset),
            api: UnifiedApi::for_preset(preset),
        }
    }
}

/// `[sources.<name>.unified] preset`: which unified API the source speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnifiedPreset {
    /// Alloy Automation's Unified API, version 2024-03: `credentialId`, `pageNumber` from 1 and
    /// `pageSize` (at most 100), `{"invoices": [...]}` without a cursor.
    Alloy2024_03,
    /// Alloy's version 2023-12: `connectionId`, `cursor` + `pageSize`, `pageInfo {hasNext,
    /// nextCursor}`.
    Alloy2023_12,
    /// Every wire name and the paging configured (`[names]`, `paging`, `scan`).
    #[default]
    Custom,
}

impl UnifiedPreset {
    pub const ALL: [UnifiedPreset; 3] = [Self::Alloy2024_03, Self::Alloy2023_12, Self::Custom];

    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Alloy2024_03 => "alloy-2024-03",
            Self::Alloy2023_12 => "alloy-2023-12",
            Self::Custom => "custom",
        }
    }

    pub fn is_alloy(self) -> bool {
        self != Self::Custom
    }

    /// The API version in Alloy's URL path.
    pub fn alloy_version(self) -> Option<&'static str> {
        match self {
            Self::Alloy2024_03 => Some("2024-03"),
            Self::Alloy2023_12 => Some("2023-12"),
            Self::Custom => None,
        }
    }

    /// Alloy's documented base URL of this version.
    pub fn default_base_url(self) -> Option<String> {
        self.alloy_version()
            .map(|v| format!("https://embedded.runalloy.com/{v}/one"))
    }
}

/// How a list is paged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PagingStyle {
    /// The answer carries the next page's cursor in `names.next_field`; it goes back as
    /// `names.cursor_param`. A missing or null cursor ends the list.
    #[default]
    NextField,
    /// `names.page_param` counts pages from `first_page`; a short or empty page ends the list.
    PageNumber,
    /// The cursor sits at a dotted path of the answer (`names.next_cursor_path`, e.g.
    /// `pageInfo.nextCursor`), optionally with a has-more flag (`names.has_more_path`); it goes
    /// back as `names.cursor_param`.
    BodyCursor,
    /// `names.offset_param` counts records from 0; a short or empty page ends the list.
    Offset,
}

impl PagingStyle {
    pub const ALL: [PagingStyle; 4] = [
        Self::NextField,
        Self::PageNumber,
        Self::BodyCursor,
        Self::Offset,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::NextField => "next_field",
            Self::PageNumber => "page_number",
            Self::BodyCursor => "body_cursor",
            Self::Offset => "offset",
        }
    }
}

/// What a cycle reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanMode {
    /// Invoices updated since the cursor (minus the overlap), through `names.updated_after_param`;
    /// the API must filter and sort by update time.
    #[default]
    Incremental,
    /// Every invoice, every cycle; unchanged ones cost no B2B call (their fingerprint is
    /// unchanged). For APIs without an updated-since filter (Alloy).
    Full,
}

impl ScanMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Incremental => "incremental",
            Self::Full => "full",
        }
    }
}

/// Which API, and how it is read. `Default` is today's `custom` behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnifiedApi {
    pub preset: UnifiedPreset,
    pub paging: PagingStyle,
    /// The first page's number with [`PagingStyle::PageNumber`] (Alloy: 1).
    pub first_page: u32,
    pub scan: ScanMode,
    /// `Some(refresh)`: an invoice's `customerId` is the API's own customer id, resolved to the
    /// customer's ERP id (`names.customer_remote_id_field`) through the customers list, cached
    /// in PostgreSQL and read whole again every `refresh`. `None`: `customerId` is the ERP's
    /// customer id.
    pub customer_lookup: Option<Duration>,
    /// Requests a minute this daemon sends to the source, all requests together (Alloy: 150
    /// per connection). `None`: no limit. No 60 s window ever holds more.
    pub requests_per_minute: Option<NonZeroU32>,
}

impl Default for UnifiedApi {
    fn default() -> Self {
        Self {
            preset: UnifiedPreset::Custom,
            paging: PagingStyle::NextField,
            first_page: 1,
            scan: ScanMode::Incremental,
            customer_lookup: None,
            requests_per_minute: None,
        }
    }
}

/// Alloy's rate limit per connection on its basic plan.
pub const ALLOY_REQUESTS_PER_MINUTE: u32 = 150;
/// How often the Alloy customers list is read whole by default.
pub const DEFAULT_CUSTOMERS_REFRESH: Duration = Duration::from_secs(86_400);

impl UnifiedApi {
    /// What a preset fixes (`Custom`: the defaults).
    pub fn for_preset(preset: UnifiedPreset) -> Self {
        match preset {
            UnifiedPreset::Custom => Self::default(),
            UnifiedPreset::Alloy2024_03 | UnifiedPreset::Alloy2023_12 => Self {
                preset,
                paging: if preset == UnifiedPreset::Alloy2024_03 {
                    PagingStyle::PageNumber
                } else {
                    PagingStyle::BodyCursor
                },
                first_page: 1,
                scan: ScanMode::Full,
                customer_lookup: Some(DEFAULT_CUSTOMERS_REFRESH),
                requests_per_minute: NonZeroU32::new(ALLOY_REQUESTS_PER_MINUTE),
            },
        }
    }
}

/// Every wire name the unified adapter uses, in one place, each overridable in config
/// (`[sources.<name>.unified.names]`, preset `custom`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnifiedNames {
    /// Path of the invoice list and, with `/{id}`, of one invoice (default `accounting/invoices`).
    pub invoices_path: String,
    /// Query parameters: `credentialId`, `limit`, `next`, `updatedAfter`.
    pub credential_param: String,
    pub limit_param: String,
    pub cursor_param: String,
    pub updated_after_param: String,
    /// Paging by page number (`page`) or offset (`offset`).
    pub page_param: String,
    pub offset_param: String,
    /// Response fields: the list's array (`invoices`), its next-page cursor (`next`), and the
    /// single-invoice wrapper (`invoice`).
    pub list_field: String,
    pub next_field: String,
    pub single_field: String,
    /// Paging by a cursor in the body: its dotted path (`pageInfo.nextCursor`) and that of a
    /// has-more flag (`pageInfo.hasNext`; empty: none).
    pub next_cursor_path: String,
    pub has_more_path: String,
    /// The invoice field that addresses one invoice in `{invoices_path}/{id}` (Alloy: `id`;
    /// default `remoteId`), and the one holding the ERP's own id, which becomes the B2B
    /// `externalId` (`remoteId`).
    pub id_field: String,
    pub external_id_field: String,
    /// Customer resolution (when on): the customers list and one customer
    /// (`accounting/customers`), the list's array (`customers`), the single wrapper
    /// (`customer`), and a customer's own id (`id`), ERP id (`remoteId`) and name
    /// (`customerName`).
    pub customers_path: String,
    pub customers_field: String,
    pub customer_field: String,
    pub customer_id_field: String,
    pub customer_remote_id_field: String,
    pub customer_name_field: String,
}

impl Default for UnifiedNames {
    fn default() -> Self {
        Self {
            invoices_path: "accounting/invoices".to_owned(),
            credential_param: "credentialId".to_owned(),
            limit_param: "limit".to_owned(),
            cursor_param: "next".to_owned(),
            updated_after_param: "updatedAfter".to_owned(),
            page_param: "page".to_owned(),
            offset_param: "offset".to_owned(),
            list_field: "invoices".to_owned(),
            next_field: "next".to_owned(),
            single_field: "invoice".to_owned(),
            next_cursor_path: "pageInfo.nextCursor".to_owned(),
            has_more_path: String::new(),
            id_field: "remoteId".to_owned(),
            external_id_field: "remoteId".to_owned(),
            customers_path: "accounting/customers".to_owned(),
            customers_field: "customers".to_owned(),
            customer_field: "customer".to_owned(),
            customer_id_field: "id".to_owned(),
            customer_remote_id_field: "remoteId".to_owned(),
            customer_name_field: "customerName".to_owned(),
        }
    }
}

impl UnifiedNames {
    /// The names a preset fixes (`Custom`: the defaults).
    pub fn for_preset(preset: UnifiedPreset) -> Self {
        let alloy = Self {
            limit_param: "pageSize".to_owned(),
            page_param: "pageNumber".to_owned(),
            cursor_param: "cursor".to_owned(),
            has_more_path: "pageInfo.hasNext".to_owned(),
            id_field: "id".to_owned(),
            ..Self::default()
        };
        match preset {
            UnifiedPreset::Custom => Self::default(),
            UnifiedPreset::Alloy2024_03 => alloy,
            UnifiedPreset::Alloy2023_12 => Self {
                credential_param: "connectionId".to_owned(),
                ..alloy
            },
        }
    }
}

/// Rebillia (api-docs 003): `[sources.<name>.rebillia]`.
#[derive(Debug, Clone)]
pub struct RebilliaSettings {
    /// Default `https://api.rebillia.com/v1`.
    pub base_url: Url,
    /// Sent as `X-AUTH-TOKEN` (`token` or `token_file`).
    pub token: SecretString,
    pub http: HttpSettings,
    /// How the whole-number amounts of an invoice are read (`amount_unit`, default `auto`).
    pub amount_unit: RebilliaAmountUnit,
}

/// `[sources.<name>.rebillia] amount_unit`: what a whole number in one of Rebillia's amount
/// fields means. Rebillia documents line amounts as dollar strings (`"20.00"`) and
/// `shippingAmount`, charges and refunds in cents, but not the units of what it answers; a
/// decimal string is dollars and `shippingAmount` is cents whatever this says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RebilliaAmountUnit {
    /// Each invoice's own arithmetic (lines + shipping + tax = total, lines = subtotal) tells;
    /// an invoice that fits both readings takes the unit the source's other invoices showed
    /// (cents until one has shown anything).
    #[default]
    Auto,
    /// Whole numbers are cents (hundredths of the currency unit).
    Cents,
    /// Whole numbers are units of the currency (dollars), but `shippingAmount`.
    Dollars,
}

impl RebilliaAmountUnit {
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Cents => "cents",
            Self::Dollars => "dollars",
        }
    }
}

/// A folder of CSV / NDJSON exports: `[sources.<name>.files]`.
#[derive(Debug, Clone)]
pub struct FilesSettings {
    /// Where exports arrive; `processed/` and `rejected/` are created inside it.
    pub dir: PathBuf,
    pub ready: ReadyRule,
    /// Records per page handed to the engine (default 500).
    pub page_size: NonZeroU32,
}

/// When an export file counts as complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyRule {
    /// `x.csv` is taken once `x.csv.ready` exists (default).
    Marker,
    /// Any `*.csv` / `*.ndjson` is complete: writers write under another name and rename.
    AtomicRename,
}

/// `[sources.<name>.customers]`: ERP customer id -> B2B company id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerMapping {
    /// `strategy = "static"`, `map = { "C-001" = "12", ... }` in the config.
    Static(BTreeMap<String, String>),
    /// `strategy = "table"`: the `customer_map` table, filled by `customers import FILE.csv`.
    Table,
    /// `strategy = "company_extra_field"`: look the company up in B2B by a unique company extra
    /// field holding the ERP customer id (`field_name`), cached in `customer_map` for `ttl`.
    CompanyExtraField { field_name: String, ttl: Duration },
}
