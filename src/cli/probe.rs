//! `probe`: a read-only check that each store answers with its credentials, for operators
//! setting up a store (and the README's smoke call against the sandbox).

use anyhow::{bail, Context};
use futures::TryStreamExt;

use b2b_invoice_sync::b2b::{B2bClient, InvoiceQuery};
use b2b_invoice_sync::config::{B2bAuth, Settings, StoreSettings};

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Only this store (a key of `[stores]`); all stores by default.
    #[arg(long)]
    store: Option<String>,
}

pub async fn run(settings: &Settings, args: ProbeArgs) -> anyhow::Result<()> {
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
