//! `probe`: a read-only check that each store answers with its credentials, for operators
//! setting up a store (and the README's smoke call against the sandbox); `probe --source NAME`
//! checks a source's API the same way (credentials, first page and paging, ids, a customer).

use anyhow::{bail, Context};
use futures::TryStreamExt;

use b2b_invoice_sync::b2b::{B2bClient, InvoiceQuery};
use b2b_invoice_sync::config::{AdapterSettings, B2bAuth, Settings, StoreSettings};
use b2b_invoice_sync::source::unified::UnifiedSource;

use super::UsageError;

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Only this store (a key of `[stores]`); all stores by default.
    #[arg(long, conflicts_with = "source")]
    store: Option<String>,
    /// Probe this source's API instead (a key of `[sources]`; unified sources): credentials,
    /// the first page and its paging, the invoice ids, a customer resolved. Read-only.
    #[arg(long)]
    source: Option<String>,
}

pub async fn run(settings: &Settings, args: ProbeArgs) -> anyhow::Result<()> {
    if let Some(name) = &args.source {
        return probe_source(settings, name).await;
    }
    let stores: Vec<&StoreSettings> = match &args.store {
        Some(name) => match settings.stores.get(name) {
            Some(s) => vec![s],
            None => bail!(
                "--store {name}: no such store in the config (configured: {})",
                settings
                    .stores
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        None => settings.stores.values().collect(),
    };
    let mut failed = 0;
    for store in stores {
        if let Err(e) = probe_store(store).await {
            println!("store {}: FAILED: {e:#}", store.name);
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} store(s) failed the probe");
    }
    Ok(())
}

async fn probe_store(store: &StoreSettings) -> anyhow::Result<()> {
    let client = B2bClient::with_own_budget(store)?;
    let auth = match &store.b2b.auth {
        B2bAuth::XAuthToken { store_hash, .. } => format!("X-Auth-Token, store hash {store_hash}"),
        B2bAuth::LegacyAuthToken { .. } => "legacy authToken".to_owned(),
    };
    let query = InvoiceQuery {
        page_size: 1,
        ..InvoiceQuery::default()
    };
    let page = client
        .list_invoices_page(&query, 0)
        .await
        .context("listing invoices")?;
    let fields: Vec<String> = client
        .invoice_extra_field_configs()
        .map_ok(|f| f.field_name)
        .try_collect()
        .await
        .context("reading invoice extra-field configs")?;
    println!(
        "store {}: OK at {} ({auth}): {} invoice(s); invoice extra fields: [{}]",
        store.name,
        store.b2b.base_url,
        page.total_count
            .map_or_else(|| "unknown number of".to_owned(), |n| n.to_string()),
        fields.join(", ")
    );
    Ok(())
}

async fn probe_source(settings: &Settings, name: &str) -> anyhow::Result<()> {
    let names = super::selected_sources(settings, Some(name))?;
    let Some(source) = names.first().and_then(|n| settings.sources.get(n)) else {
        bail!("--source {name}: no such source");
    };
    let AdapterSettings::Unified(unified) = &source.adapter else {
        return Err(UsageError(format!(
            "--source {name}: probe checks unified sources; this one is kind = \"{}\"",
            source.adapter.kind()
        ))
        .into());
    };
    // No database: the probe keeps nothing.
    let adapter = UnifiedSource::new(name, unified, source.overlap)?;
    match adapter.probe().await {
        Ok(report) => {
            for line in &report.lines {
                println!("source {name}: {line}");
            }
            println!("source {name}: OK");
            Ok(())
        }
        Err(failure) => {
            for line in &failure.lines {
                println!("source {name}: {line}");
            }
            println!(
                "source {name}: FAILED at {}: {}",
                failure.step, failure.message
            );
            bail!("source {name} failed the probe ({})", failure.step)
        }
    }
}
