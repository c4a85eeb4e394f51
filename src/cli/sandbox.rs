//! `sandbox b2b`: the bundled fake of B2B Edition, for the demo, tests and benchmarks.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;

use b2b_invoice_sync::sandbox::b2b::{self, B2bSandboxConfig, SandboxStore};
use b2b_invoice_sync::sandbox::harness::{Fake, Running};
use b2b_invoice_sync::sandbox::unified::{self, AlloyVersion, SandboxApi, UnifiedSandboxConfig};

#[derive(Debug, clap::Subcommand)]
pub enum SandboxCommand {
    /// An in-memory B2B Edition Invoice API (auth, limits, paging, faults) on localhost.
    B2b(B2bArgs),
    /// An in-memory unified accounting API: the generic one of api-docs 004 (bearer key,
    /// credentials, cursor paging by remoteUpdatedAt), or Alloy's Unified API with
    /// --api-version 2024-03 | 2023-12; faults; controls under /__sandbox/.
    Unified(UnifiedArgs),
    /// An in-memory Rebillia billing API (invoices in cents or dollars, paging, a list that
    /// may ignore the sort, faults) on localhost.
    Rebillia(RebilliaArgs),
}

#[derive(Debug, clap::Args)]
pub struct B2bArgs {
    /// Address to listen on; keep it on loopback, the sandbox has no real security.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    #[arg(long, default_value_t = 8750)]
    port: u16,
    /// Requests per store per minute before 429 (B2B Edition's limit is 150).
    #[arg(long, default_value_t = 150)]
    rate_limit: u32,
    /// Added to every API request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Uniform random extra latency, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_jitter_ms: u64,
    /// Companies to seed (ids 1..=N, extra field "ERP Customer ID" = CUST-00001, ...).
    #[arg(long, default_value_t = 10)]
    seed_companies: usize,
    /// Invoices to seed.
    #[arg(long, default_value_t = 0)]
    seed_invoices: usize,
    /// B2B orders to seed, for create-from-order.
    #[arg(long, default_value_t = 5)]
    seed_orders: usize,
    /// Seed for the random faults and jitter, for repeatable runs.
    #[arg(long)]
    rng_seed: Option<u64>,
    #[arg(long, default_value = "sandbox")]
    store_hash: String,
    /// The X-Auth-Token the sandbox accepts (a fake credential).
    #[arg(long, default_value = "sandbox-token")]
    token: String,
    /// The legacy authToken the sandbox accepts (a fake credential).
    #[arg(long, default_value = "sandbox-legacy-token")]
    legacy_token: String,
    /// What `externalId[]` (typed array[number] in the spec) does with a value that is not a
    /// number: match it as a string, answer 400 naming it, or drop it (an unfiltered list).
    #[arg(long, default_value = "strings", value_parser = external_id_filter)]
    external_id_filter: b2b::ExternalIdFilter,
    /// At most this many invoices a page, whatever `limit` asks (the spec caps it below 250).
    #[arg(long)]
    max_page_size: Option<usize>,
}

fn external_id_filter(text: &str) -> Result<b2b::ExternalIdFilter, String> {
    b2b::ExternalIdFilter::NAMES
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, f)| *f)
        .ok_or_else(|| "one of strings, numeric-400, numeric-ignore".to_owned())
}

pub async fn run(cmd: SandboxCommand) -> anyhow::Result<()> {
    match cmd {
        SandboxCommand::B2b(args) => run_b2b(args).await,
        SandboxCommand::Rebillia(args) => run_rebillia(args).await,
        SandboxCommand::Unified(args) => run_unified(args).await,
    }
}

async fn run_b2b(args: B2bArgs) -> anyhow::Result<()> {
    let config = B2bSandboxConfig {
        stores: vec![SandboxStore {
            store_hash: args.store_hash,
            token: args.token,
            legacy_token: args.legacy_token,
        }],
        rate_limit: args.rate_limit,
        latency: Duration::from_millis(args.latency_ms),
        latency_jitter: Duration::from_millis(args.latency_jitter_ms),
        seed_companies: args.seed_companies,
        seed_invoices: args.seed_invoices,
        seed_orders: args.seed_orders,
        rng_seed: args.rng_seed,
        readings: b2b::Readings {
            external_id_filter: args.external_id_filter,
            max_page_size: args.max_page_size,
            refuse_limit_above: None,
        },
        ..B2bSandboxConfig::default()
    };
    let addr = SocketAddr::new(args.bind, args.port);
    serve("B2B Edition", addr, b2b::start(config, addr)).await
}

/// Which unified API the sandbox serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ApiVersion {
    /// The generic unified API of api-docs 004 (every name configurable in the adapter).
    Generic,
    /// Alloy's Unified API 2024-03: /2024-03/one/accounting/..., credentialId, pageNumber.
    #[value(name = "2024-03")]
    Alloy2024,
    /// Alloy's Unified API 2023-12: /2023-12/one/accounting/..., connectionId, cursor + pageInfo.
    #[value(name = "2023-12")]
    Alloy2023,
}

#[derive(Debug, clap::Args)]
pub struct UnifiedArgs {
    /// Address to listen on; keep it on loopback, the sandbox has no real security.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    #[arg(long, default_value_t = 8751)]
    port: u16,
    /// The API served: generic, or Alloy's 2024-03 or 2023-12 (base URL
    /// http://HOST:PORT/<version>/one).
    #[arg(long, value_enum, default_value = "generic")]
    api_version: ApiVersion,
    /// Alloy 2024-03: also take connectionId (as Alloy's Node SDK sends it) for credentialId.
    #[arg(long)]
    accept_connection_id: bool,
    /// Alloy: dates as Unix seconds instead of YYYY-MM-DD.
    #[arg(long)]
    unix_dates: bool,
    /// Alloy: amounts as decimal strings instead of JSON numbers.
    #[arg(long)]
    string_amounts: bool,
    /// Alloy: refuse a pageSize above 100 (400) instead of clamping it to 100.
    #[arg(long)]
    reject_oversize_pages: bool,
    /// Alloy: take a PUT without lineItems (the docs mark them required).
    #[arg(long)]
    partial_put: bool,
    /// Invoices to seed (generated from their index on demand: 100000 costs no memory).
    #[arg(long, default_value_t = 25)]
    seed_invoices: usize,
    /// Customers CUST-00001.. the invoices are spread over (the B2B sandbox's companies).
    #[arg(long, default_value_t = 10)]
    seed_customers: usize,
    /// The bearer API key the sandbox accepts (a fake credential).
    #[arg(long, default_value = unified::DEFAULT_API_KEY)]
    api_key: String,
    /// A credentialId the sandbox accepts; repeat for several.
    #[arg(long = "credential-id", default_value = unified::DEFAULT_CREDENTIAL_ID)]
    credential_ids: Vec<String>,
    /// The largest `limit` accepted (generic API; Alloy's is 100).
    #[arg(long, default_value_t = 1000)]
    max_limit: u32,
    /// Requests per credential per minute before 429, 0: unlimited [default: 0; Alloy: 150].
    #[arg(long)]
    rate_limit: Option<u32>,
    /// Added to every API request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Uniform random extra latency, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_jitter_ms: u64,
    /// Seed for the random faults and jitter, for repeatable runs.
    #[arg(long)]
    rng_seed: Option<u64>,
}

async fn run_unified(args: UnifiedArgs) -> anyhow::Result<()> {
    let alloy = match args.api_version {
        ApiVersion::Generic => None,
        ApiVersion::Alloy2024 => Some(AlloyVersion::V2024_03),
        ApiVersion::Alloy2023 => Some(AlloyVersion::V2023_12),
    };
    let base = match alloy {
        Some(version) => {
            let mut base = UnifiedSandboxConfig::alloy(version);
            if let SandboxApi::Alloy(options) = &mut base.api {
                options.accept_connection_id = args.accept_connection_id;
                options.unix_dates = args.unix_dates;
                options.string_amounts = args.string_amounts;
                options.reject_oversize = args.reject_oversize_pages;
                options.partial_put = args.partial_put;
            }
            base
        }
        None => UnifiedSandboxConfig {
            // The default page must fit under a lowered maximum.
            default_limit: args.max_limit.min(100),
            max_limit: args.max_limit,
            rate_limit: 0,
            ..UnifiedSandboxConfig::default()
        },
    };
    let config = UnifiedSandboxConfig {
        api_key: args.api_key,
        credential_ids: args.credential_ids,
        seed_invoices: args.seed_invoices,
        seed_customers: args.seed_customers,
        rate_limit: args.rate_limit.unwrap_or(base.rate_limit),
        latency: Duration::from_millis(args.latency_ms),
        latency_jitter: Duration::from_millis(args.latency_jitter_ms),
        rng_seed: args.rng_seed,
        ..base
    };
    let addr = SocketAddr::new(args.bind, args.port);
    serve("Unified accounting API", addr, unified::start(config, addr)).await
}

#[derive(Debug, clap::Args)]
pub struct RebilliaArgs {
    /// Address to listen on; keep it on loopback, the sandbox has no real security.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    #[arg(long, default_value_t = 8751)]
    port: u16,
    /// The X-AUTH-TOKEN the sandbox accepts (a fake credential).
    #[arg(long, default_value = "sandbox-rebillia-token")]
    token: String,
    /// Customers to seed (customerId CUST-00001, ..., as the B2B sandbox's companies).
    #[arg(long, default_value_t = 10)]
    seed_customers: usize,
    /// Invoices to seed (RB-000001, ..., ids from 1001).
    #[arg(long, default_value_t = 25)]
    seed_invoices: usize,
    /// Added to every API request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Uniform random extra latency, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_jitter_ms: u64,
    /// Seed for the random faults and jitter, for repeatable runs.
    #[arg(long)]
    rng_seed: Option<u64>,
    /// How amounts are written: cents (4100), dollars ("41.00", shippingAmount included), or
    /// documented (dollar strings, shippingAmount in cents, as Rebillia documents its requests).
    #[arg(long, value_enum, default_value = "cents")]
    amounts: AmountsArg,
    /// Ignore orderBy / sortBy: the invoice list comes newest created first whatever is asked.
    #[arg(long)]
    ignore_sort: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum AmountsArg {
    Cents,
    Dollars,
    Documented,
}

async fn run_rebillia(args: RebilliaArgs) -> anyhow::Result<()> {
    use b2b_invoice_sync::sandbox::rebillia::{
        self, AmountStyle, ListOrder, RebilliaSandboxConfig,
    };
    let config = RebilliaSandboxConfig {
        token: args.token,
        seed_customers: args.seed_customers,
        seed_invoices: args.seed_invoices,
        latency: Duration::from_millis(args.latency_ms),
        latency_jitter: Duration::from_millis(args.latency_jitter_ms),
        rng_seed: args.rng_seed,
        amounts: match args.amounts {
            AmountsArg::Cents => AmountStyle::Cents,
            AmountsArg::Dollars => AmountStyle::Dollars,
            AmountsArg::Documented => AmountStyle::Documented,
        },
        list_order: if args.ignore_sort {
            ListOrder::Ignored
        } else {
            ListOrder::Honoured
        },
        ..RebilliaSandboxConfig::default()
    };
    let addr = SocketAddr::new(args.bind, args.port);
    serve("Rebillia", addr, rebillia::start(config, addr)).await
}

/// Waits for a sandbox `starting` on `addr`, says where it listens and serves until stopped.
async fn serve<F: Fake>(
    name: &str,
    addr: SocketAddr,
    starting: impl std::future::Future<Output = std::io::Result<Running<F>>>,
) -> anyhow::Result<()> {
    let sandbox = starting
        .await
        .with_context(|| format!("cannot start the {name} sandbox on {addr}"))?;
    tracing::info!(base_url = %sandbox.base_url(), "{name} sandbox listening");
    // Scripts and tests wait for this line on stdout to know the sandbox is up.
    println!("{name} sandbox listening on {}", sandbox.base_url());
    sandbox.wait().await;
    Ok(())
}
