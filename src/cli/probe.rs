//! `probe`: a read-only check that each store answers with its credentials, for operators
//! setting up a store (and the README's smoke call against the sandbox); `probe --source NAME`
//! checks a source's API the same way (credentials, first page and paging, ids, a customer).

use anyhow::bail;
use futures::TryStreamExt;

use b2b_invoice_sync::b2b::query::MAX_PAGE_SIZE;
use b2b_invoice_sync::b2b::{B2bClient, B2bError, InvoiceQuery};
use b2b_invoice_sync::config::{AdapterSettings, B2bAuth, Settings, StoreSettings};
use b2b_invoice_sync::source::unified::UnifiedSource;
use b2b_invoice_sync::store::capabilities::ExternalIdFilter;
use b2b_invoice_sync::sync::lookup;

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

/// Read-only: what the store answers, and how it reads what the documents leave open.
async fn probe_store(store: &StoreSettings) -> anyhow::Result<()> {
    // Pages as large as the spec allows, so that a server's own cap shows.
    let mut probing = store.clone();
    probing.b2b.page_size = MAX_PAGE_SIZE - 1;
    let client = B2bClient::with_own_budget(&probing)?;
    let explain = |e: B2bError, what: &'static str| match client.misconfigured(&e) {
        Some(stop) => anyhow::Error::new(stop),
        None => anyhow::Error::new(e).context(what),
    };
    let auth = match &store.b2b.auth {
        B2bAuth::XAuthToken { store_hash, .. } => format!("X-Auth-Token, store hash {store_hash}"),
        B2bAuth::LegacyAuthToken { .. } => "legacy authToken".to_owned(),
    };
    // The largest page the spec allows: an answer with fewer items while the total says more is
    // the server's own cap.
    let query = InvoiceQuery {
        page_size: MAX_PAGE_SIZE - 1,
        ..InvoiceQuery::default()
    };
    let page = client
        .list_invoices_page(&query, 0)
        .await
        .map_err(|e| explain(e, "listing invoices"))?;
    let fields: Vec<String> = client
        .invoice_extra_field_configs()
        .map_ok(|f| f.field_name)
        .try_collect()
        .await
        .map_err(|e| explain(e, "reading invoice extra-field configs"))?;
    let filter = lookup::probe_external_id_filter(&client)
        .await
        .map_err(|e| explain(e, "asking for a made-up externalId"))?;
    let total = page.total_count;
    let got = page.items.len();
    let cap = match total {
        Some(t) if (got as u64) < t && got < (MAX_PAGE_SIZE - 1) as usize => {
            format!(
                "answers at most {got} invoices a page (asked {})",
                MAX_PAGE_SIZE - 1
            )
        }
        Some(t) if t < u64::from(MAX_PAGE_SIZE - 1) => {
            format!("not seen (the store has {t} invoices, fewer than a page)")
        }
        _ => format!("none below the spec's {} a page", MAX_PAGE_SIZE - 1),
    };
    let reading = match filter {
        ExternalIdFilter::Strings => {
            "matched as strings (an id like INV-2024-000123 is found by externalId[])"
        }
        ExternalIdFilter::NumbersOnly => {
            "numbers only: 400 for a value like INV-2024-000123 (such ids are found by invoice number)"
        }
        ExternalIdFilter::Ignored => {
            "ignored for a value like INV-2024-000123: the list came back unfiltered (such ids are found by invoice number)"
        }
    };
    println!(
        "store {}: OK at {} ({auth} accepted): {} invoice(s); invoice extra fields: [{}]\n  \
         externalId[] filter: {reading}\n  page cap: {cap}",
        store.name,
        store.b2b.base_url,
        total.map_or_else(|| "unknown number of".to_owned(), |n| n.to_string()),
        fields.join(", ")
    );
    Ok(())
}

async fn probe_source(settings: &Settings, name: &str) -> anyhow::Result<()> {
    let names = super::selected_sources(settings, Some(name))?;
    let Some(source) = names.first().and_then(|n| settings.sources.get(n)) else {
        bail!("--source {name}: no such source");
    };
    let unified = match &source.adapter {
        AdapterSettings::Unified(unified) => unified,
        AdapterSettings::Rebillia(rebillia) => return probe_rebillia(name, rebillia, source).await,
        AdapterSettings::Files(_) => {
            return Err(UsageError(format!(
                "--source {name}: probe checks API sources (unified, rebillia); this one is kind = \"files\""
            ))
            .into())
        }
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

/// A Rebillia source: the credentials and the first page, the paging it answers with and the
/// amount units its invoices show (read-only: one `GET /invoices`).
async fn probe_rebillia(
    name: &str,
    rebillia: &b2b_invoice_sync::config::RebilliaSettings,
    source: &b2b_invoice_sync::config::SourceSettings,
) -> anyhow::Result<()> {
    let adapter =
        b2b_invoice_sync::source::rebillia::RebilliaSource::new(name, rebillia, source.overlap)?;
    match adapter.probe().await {
        Ok(probe) => {
            let found = probe.amounts;
            println!("source {name}: {}", probe.paging);
            println!("source {name}: {found}");
            if found.conflicts() {
                println!(
                    "source {name}: WARNING: sources.{name}.rebillia.amount_unit contradicts what the invoices show"
                );
                bail!("source {name}: amount_unit contradicts the invoices");
            }
            println!("source {name}: OK");
            Ok(())
        }
        Err(e) => {
            println!("source {name}: FAILED: {e}");
            bail!("source {name} failed the probe")
        }
    }
}
