//! `customers import FILE.csv --source NAME`: fill the `customer_map` table.

use std::path::PathBuf;

use anyhow::{bail, Context};

use b2b_invoice_sync::config::{CustomerMapping, Settings};
use b2b_invoice_sync::customers::import;

use super::database;

#[derive(Debug, clap::Subcommand)]
pub enum CustomersCommand {
    /// Import ERP customer id -> B2B company id mappings from a CSV with the header
    /// `external_customer_id,company_id`. All rows are checked first; nothing is written if any is bad.
    Import {
        file: PathBuf,
        /// The source (`[sources.<name>]`) whose ERP customer ids these are.
        #[arg(long)]
        source: String,
    },
}

pub async fn run(settings: &Settings, cmd: CustomersCommand) -> anyhow::Result<()> {
    match cmd {
        CustomersCommand::Import { file, source } => {
            let Some(src) = settings.sources.get(&source) else {
                bail!(
                    "--source {source}: no such source in the config (configured: {})",
                    super::configured_sources(settings)
                );
            };
            if let CustomerMapping::Static(_) = src.customers {
                bail!(
                    "sources.{source}.customers.strategy is \"static\": imported mappings would be \
                     ignored; use strategy \"table\" (or \"company_extra_field\", where imports \
                     override lookups)"
                );
            }
            let pool = database(settings).await?;
            let n = import::import_file(&pool, &source, &file)
                .await
                .with_context(|| format!("importing {}", file.display()))?;
            println!("imported {n} customer mapping(s) for source {source}");
            Ok(())
        }
    }
}
