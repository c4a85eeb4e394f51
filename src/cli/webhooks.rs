//! `webhooks register|list --source NAME`: Alloy's webhook subscriptions for a unified source
//! (see `b2b_invoice_sync::daemon::webhook`). The address registered carries
//! `daemon.webhook_secret` as its last path segment; listings show it as `<secret>`.

use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use serde_json::Value;

use b2b_invoice_sync::config::{AdapterSettings, Settings};
use b2b_invoice_sync::daemon::webhook::TOPIC;
use b2b_invoice_sync::source::unified::UnifiedSource;

use super::UsageError;

#[derive(Debug, clap::Subcommand)]
pub enum WebhooksCommand {
    /// Subscribes this daemon's receiver to Alloy's `accounting/invoices` events.
    Register {
        /// The source (a unified source of an Alloy preset).
        #[arg(long)]
        source: String,
        /// The daemon's public base URL as Alloy reaches it (https://sync.example.com); the
        /// receiver's path and the secret are appended.
        #[arg(long)]
        url: url::Url,
    },
    /// Lists the subscriptions Alloy holds (secrets masked).
    List {
        #[arg(long)]
        source: String,
    },
}

fn source(settings: &Settings, name: &str) -> anyhow::Result<UnifiedSource> {
    let src = settings
        .sources
        .get(name)
        .ok_or_else(|| UsageError(format!("--source {name}: no such source in the config")))?;
    let AdapterSettings::Unified(unified) = &src.adapter else {
        return Err(UsageError(format!(
            "--source {name}: webhooks are for unified (Alloy) sources only"
        ))
        .into());
    };
    Ok(UnifiedSource::new(name, unified, Duration::ZERO)?)
}

pub async fn run(settings: &Settings, cmd: WebhooksCommand) -> anyhow::Result<()> {
    let secret = settings.daemon.webhook_secret.as_ref();
    let mask = |text: &str| match secret {
        Some(s) if !s.expose_secret().is_empty() => text.replace(s.expose_secret(), "<secret>"),
        _ => text.to_owned(),
    };
    match cmd {
        WebhooksCommand::Register { source: name, url } => {
            let Some(secret) = secret else {
                return Err(UsageError(
                    "daemon.webhook_secret (or webhook_secret_file) is not set: the receiver is off"
                        .to_owned(),
                )
                .into());
            };
            let adapter = source(settings, &name)?;
            let mut address = url.clone();
            address
                .path_segments_mut()
                .map_err(|()| UsageError(format!("--url {url}: not a base URL")))?
                .pop_if_empty()
                .extend(["v1", "webhooks", "alloy", &name, secret.expose_secret()]);
            let answer = adapter
                .subscribe_webhook(address.as_str(), TOPIC)
                .await
                .context("registering the webhook with Alloy")?;
            println!("{name}: subscribed {} to {TOPIC}", mask(address.as_str()));
            if let Some(id) = answer.pointer("/subscription/id").and_then(Value::as_str) {
                println!("  subscription id {id}");
            }
            Ok(())
        }
        WebhooksCommand::List { source: name } => {
            let adapter = source(settings, &name)?;
            let answer = adapter
                .webhooks()
                .await
                .context("listing Alloy's webhooks")?;
            let subs = answer
                .get("subscriptions")
                .or_else(|| answer.get("data"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if subs.is_empty() {
                println!("{name}: no webhook subscriptions");
            }
            for s in subs {
                let text = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                println!(
                    "{}  {}  {}",
                    text("id"),
                    text("topic"),
                    mask(&text("address"))
                );
            }
            Ok(())
        }
    }
}
