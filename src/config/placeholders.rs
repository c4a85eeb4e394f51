//! Secrets still holding the placeholder of `config/example.toml` (`replace-with-...`): the
//! file parses, but every request would be refused. `check-config` names each such key.

use secrecy::ExposeSecret;

use super::node::env_var_name;
use super::problems::ConfigProblem;
use super::{AdapterSettings, B2bAuth, Settings};

/// A value left as a template wrote it: `replace-with-...` (config/example.toml),
/// `REPLACE-ME...` (deploy/kubernetes/secret.yaml), `<your token>`, `changeme`.
pub fn is_placeholder(value: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    v.starts_with("replace-with")
        || v.starts_with("replace_with")
        || v.starts_with("replace-me")
        || v.starts_with("replace_me")
        || v == "changeme"
        || v == "change-me"
        || (v.starts_with('<') && v.ends_with('>'))
}

/// Every secret (and ERP credential id) of `settings` that is still a placeholder, by key.
pub fn placeholders(settings: &Settings) -> Vec<ConfigProblem> {
    let mut found: Vec<(String, &str)> = Vec::new();
    // A password left as a template wrote it, inside the URL.
    let database = settings.database.as_ref().map(|d| d.url.expose_secret());
    if let Some(url) = database {
        let password = url::Url::parse(url)
            .ok()
            .and_then(|u| u.password().map(str::to_owned));
        if password.is_some_and(|p| is_placeholder(&p)) {
            found.push(("database.url".to_owned(), "replace-with"));
        }
    }
    for (name, store) in &settings.stores {
        let token = match &store.b2b.auth {
            B2bAuth::XAuthToken { token, .. } | B2bAuth::LegacyAuthToken { token } => token,
        };
        found.push((format!("stores.{name}.b2b.token"), token.expose_secret()));
    }
    for (name, source) in &settings.sources {
        match &source.adapter {
            AdapterSettings::Unified(u) => {
                found.push((
                    format!("sources.{name}.unified.api_key"),
                    u.api_key.expose_secret(),
                ));
                found.push((
                    format!("sources.{name}.unified.credential_id"),
                    u.credential_id.as_str(),
                ));
            }
            AdapterSettings::Rebillia(r) => {
                found.push((
                    format!("sources.{name}.rebillia.token"),
                    r.token.expose_secret(),
                ));
            }
            AdapterSettings::Files(_) => {}
        }
    }
    found
        .into_iter()
        .filter(|(_, value)| is_placeholder(value))
        .map(|(key, _)| ConfigProblem {
            message: format!(
                "still the placeholder of the example config; set the real value here, in a \
                 *_file, or in {}",
                env_var_name(&key)
            ),
            key,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_values_are_placeholders_and_real_ones_are_not() {
        for v in [
            "replace-with-the-b2b-api-token",
            "REPLACE_WITH_TOKEN",
            "REPLACE-ME-b2b-api-token",
            "REPLACE-ME",
            "<your token>",
            "changeme",
        ] {
            assert!(is_placeholder(v), "{v}");
        }
        for v in ["sandbox-token", "cred_123", "a1b2c3", "replace"] {
            assert!(!is_placeholder(v), "{v}");
        }
    }
}
