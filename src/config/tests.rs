use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::ExposeSecret;
use tempfile::NamedTempFile;

use super::*;

mod sources;

const SECRET: &str = "tok_SECRET_123";

/// The smallest store that loads: everything else has a default.
const MINIMAL: &str = r#"
[stores.acme.b2b]
store_hash = "abc123"
token = "tok_SECRET_123"
"#;

fn toml_file(text: &str) -> NamedTempFile {
    let mut file = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("temp file");
    file.write_all(text.as_bytes()).expect("write temp file");
    file
}

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load_str(text: &str, vars: &[(&str, &str)]) -> Result<Settings, ConfigErrors> {
    let file = toml_file(text);
    load_with_env(file.path(), env(vars))
}

fn ok(text: &str, vars: &[(&str, &str)]) -> Settings {
    load_str(text, vars).unwrap_or_else(|e| panic!("expected a valid config, got:\n{e}"))
}

fn problems_of(text: &str, vars: &[(&str, &str)]) -> ConfigErrors {
    match load_str(text, vars) {
        Ok(settings) => panic!("expected problems, got {settings:?}"),
        Err(errors) => errors,
    }
}

fn keys(errors: &ConfigErrors) -> Vec<&str> {
    errors.problems.iter().map(|p| p.key.as_str()).collect()
}

fn message<'e>(errors: &'e ConfigErrors, key: &str) -> &'e str {
    errors
        .problems
        .iter()
        .find(|p| p.key == key)
        .map(|p| p.message.as_str())
        .unwrap_or_else(|| panic!("no problem for {key} in:\n{errors}"))
}

fn acme_of(settings: &Settings) -> &StoreSettings {
    settings.stores.get("acme").expect("store acme")
}

fn token(auth: &B2bAuth) -> &str {
    match auth {
        B2bAuth::XAuthToken { token, .. } | B2bAuth::LegacyAuthToken { token } => {
            token.expose_secret()
        }
    }
}

#[test]
fn valid_full_config_loads_every_key() {
    let settings = ok(
        r#"
        [telemetry]
        log_filter = "info,b2b_invoice_sync=debug"
        log_format = "json"

        [database]
        url = "postgres://sync:pw@db:5432/sync"
        max_connections = 16

        [stores.acme.b2b]
        base_url = "https://b2b.example.com/api/v3/io/"
        auth = "x-auth-token"
        store_hash = "abc123"
        token = "tok_SECRET_123"
        request_timeout_secs = 45
        connect_timeout_secs = 7

        [stores.acme.budget]
        requests_per_minute = 100
        burst = 8
        max_concurrent = 2
        default_retry_after_secs = 90

        [stores.acme.retry]
        max_attempts = 7
        base_delay_ms = 100
        max_delay_ms = 5000

        [stores.beta.b2b]
        auth = "legacy-auth-token"
        token = "legacy_tok"
        "#,
        &[],
    );
    assert_eq!(settings.telemetry.log_filter, "info,b2b_invoice_sync=debug");
    assert_eq!(settings.telemetry.log_format, LogFormat::Json);
    let db = settings.database.as_ref().expect("database");
    assert_eq!(db.url.expose_secret(), "postgres://sync:pw@db:5432/sync");
    assert_eq!(db.max_connections.get(), 16);

    let acme = acme_of(&settings);
    assert_eq!(acme.name, "acme");
    assert_eq!(
        acme.b2b.base_url.as_str(),
        "https://b2b.example.com/api/v3/io/"
    );
    assert!(
        matches!(&acme.b2b.auth, B2bAuth::XAuthToken { store_hash, .. } if store_hash == "abc123")
    );
    assert_eq!(token(&acme.b2b.auth), SECRET);
    assert_eq!(acme.b2b.request_timeout, Duration::from_secs(45));
    assert_eq!(acme.b2b.connect_timeout, Duration::from_secs(7));
    assert_eq!(acme.budget.requests_per_minute.get(), 100);
    assert_eq!(acme.budget.burst.get(), 8);
    assert_eq!(acme.budget.max_concurrent.get(), 2);
    assert_eq!(acme.budget.default_retry_after, Duration::from_secs(90));
    assert_eq!(acme.retry.max_attempts, 7);
    assert_eq!(acme.retry.base_delay, Duration::from_millis(100));
    assert_eq!(acme.retry.max_delay, Duration::from_millis(5000));

    let beta = &settings.stores["beta"];
    assert!(
        matches!(&beta.b2b.auth, B2bAuth::LegacyAuthToken { token } if token.expose_secret() == "legacy_tok")
    );
}

#[test]
fn omitted_sections_take_defaults() {
    let settings = ok(MINIMAL, &[]);
    assert_eq!(settings.telemetry.log_filter, "info");
    assert_eq!(settings.telemetry.log_format, LogFormat::Auto);
    assert!(settings.database.is_none());

    let acme = acme_of(&settings);
    assert_eq!(
        acme.b2b.base_url.as_str(),
        "https://api-b2b.bigcommerce.com/api/v3/io/"
    );
    assert_eq!(acme.b2b.request_timeout, Duration::from_secs(30));
    assert_eq!(acme.b2b.connect_timeout, Duration::from_secs(5));

    // The schema's defaults and the types' Default impls must not drift apart.
    let (budget, want) = (acme.budget, BudgetSettings::default());
    assert_eq!(budget.requests_per_minute, want.requests_per_minute);
    assert_eq!(budget.burst, want.burst);
    assert_eq!(budget.max_concurrent, want.max_concurrent);
    assert_eq!(budget.default_retry_after, want.default_retry_after);
    let (retry, want) = (acme.retry, RetrySettings::default());
    assert_eq!(retry.max_attempts, want.max_attempts);
    assert_eq!(retry.base_delay, want.base_delay);
    assert_eq!(retry.max_delay, want.max_delay);
}

#[test]
fn database_defaults_and_url_file() {
    let mut url_file = NamedTempFile::new().expect("temp file");
    writeln!(url_file, "  postgresql://sync:pw@db/sync  ").expect("write");
    let text = format!(
        "{MINIMAL}\n[database]\nurl_file = {:?}\n",
        url_file.path().display().to_string()
    );
    let db = ok(&text, &[]).database.expect("database");
    assert_eq!(db.url.expose_secret(), "postgresql://sync:pw@db/sync");
    assert_eq!(db.max_connections.get(), 8);
}

#[test]
fn database_url_must_be_postgres_and_exactly_one() {
    let errors = problems_of(
        &format!("{MINIMAL}\n[database]\nurl = \"mysql://u:pw@db/x\"\n"),
        &[],
    );
    assert_eq!(keys(&errors), ["database.url"]);
    assert!(message(&errors, "database.url").starts_with("must be a postgres://"));
    assert!(!errors.to_string().contains("pw@db"));

    let errors = problems_of(
        &format!("{MINIMAL}\n[database]\nmax_connections = 2\n"),
        &[],
    );
    assert_eq!(
        errors.to_string(),
        "database.url: missing (set url or url_file)"
    );
}

#[test]
fn env_overrides_nested_keys_with_strings() {
    let settings = ok(
        MINIMAL,
        &[
            ("B2BSYNC__STORES__ACME__BUDGET__REQUESTS_PER_MINUTE", "100"),
            ("B2BSYNC__STORES__ACME__B2B__TOKEN", "from_env"),
            ("B2BSYNC__TELEMETRY__LOG_FORMAT", "json"),
            ("UNRELATED", "ignored"),
        ],
    );
    let acme = acme_of(&settings);
    assert_eq!(acme.budget.requests_per_minute.get(), 100);
    assert_eq!(token(&acme.b2b.auth), "from_env");
    assert_eq!(settings.telemetry.log_format, LogFormat::Json);
}

#[test]
fn env_unknown_key_is_reported_with_its_variable() {
    let errors = problems_of(MINIMAL, &[("B2BSYNC__STORES__ACME__BUDGET__BRUST", "3")]);
    assert_eq!(keys(&errors), ["stores.acme.budget.brust"]);
    assert_eq!(
        message(&errors, "stores.acme.budget.brust"),
        "unknown key (did you mean burst?) \
         (from environment variable B2BSYNC__STORES__ACME__BUDGET__BRUST)"
    );
}

#[test]
fn env_bad_value_names_its_variable_and_file_values_name_the_file() {
    let file = toml_file(&format!(
        "{MINIMAL}\n[stores.acme.retry]\nmax_attempts = 0\n"
    ));
    let errors = load_with_env(
        file.path(),
        env(&[("B2BSYNC__STORES__ACME__BUDGET__BURST", "lots")]),
    )
    .expect_err("problems");
    assert_eq!(
        message(&errors, "stores.acme.budget.burst"),
        "expected a whole number (from environment variable B2BSYNC__STORES__ACME__BUDGET__BURST)"
    );
    assert_eq!(
        message(&errors, "stores.acme.retry.max_attempts"),
        format!(
            "must be between 1 and 20 (got 0) (from {})",
            file.path().display()
        )
    );
}

#[test]
fn env_can_add_a_whole_store() {
    let settings = ok(
        MINIMAL,
        &[
            ("B2BSYNC__STORES__BETA__B2B__STORE_HASH", "def456"),
            ("B2BSYNC__STORES__BETA__B2B__TOKEN", "beta_tok"),
        ],
    );
    assert_eq!(settings.stores.keys().collect::<Vec<_>>(), ["acme", "beta"]);
}

#[test]
fn token_file_is_read_and_trimmed() {
    let mut secret = NamedTempFile::new().expect("temp file");
    writeln!(secret, "\n  {SECRET}  ").expect("write");
    let text = format!(
        "[stores.acme.b2b]\nstore_hash = \"abc123\"\ntoken_file = {:?}\n",
        secret.path().display().to_string()
    );
    assert_eq!(token(&acme_of(&ok(&text, &[])).b2b.auth), SECRET);
}

#[test]
fn unreadable_token_file_is_reported_without_leaking() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("acme-b2b-token");
    let text = format!(
        "[stores.acme.b2b]\nstore_hash = \"abc123\"\ntoken_file = {:?}\n",
        missing.display().to_string()
    );
    let errors = problems_of(&text, &[]);
    assert_eq!(keys(&errors), ["stores.acme.b2b.token_file"]);
    let msg = message(&errors, "stores.acme.b2b.token_file");
    assert!(msg.starts_with("cannot read the file it names ("), "{msg}");
    // The path is left out too: it could be a token pasted into the wrong key.
    assert!(!msg.contains("acme-b2b-token"), "{msg}");

    // Readable, but the content is not a token: say so without quoting it.
    let mut bad = NamedTempFile::new().expect("temp file");
    write!(bad, "{SECRET} and more").expect("write");
    let text = format!(
        "[stores.acme.b2b]\nstore_hash = \"abc123\"\ntoken_file = {:?}\n",
        bad.path().display().to_string()
    );
    let errors = problems_of(&text, &[]);
    assert!(message(&errors, "stores.acme.b2b.token_file").contains("whitespace"));
    assert!(!format!("{errors} {errors:?}").contains(SECRET));
}

#[test]
fn three_mistakes_are_reported_together() {
    let errors = problems_of(
        r#"
        [stores.acme.b2b]
        base_url = "api-b2b.bigcommerce.com/api/v3/io"
        store_hash = "abc123"

        [stores.acme.budget]
        requests_per_min = 100
        "#,
        &[],
    );
    assert_eq!(
        keys(&errors),
        [
            "stores.acme.b2b.base_url",
            "stores.acme.b2b.token",
            "stores.acme.budget.requests_per_min",
        ],
        "{errors}"
    );
    let text = errors.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[0].starts_with("stores.acme.b2b.base_url: not a URL (relative URL without a base)")
    );
    assert_eq!(
        lines[1],
        "stores.acme.b2b.token: missing (set token or token_file)"
    );
    assert!(lines[2].starts_with(
        "stores.acme.budget.requests_per_min: unknown key (did you mean requests_per_minute?)"
    ));
}

#[test]
fn range_errors_name_key_and_bounds() {
    let errors = problems_of(
        &format!(
            "{MINIMAL}
            [stores.acme.budget]
            requests_per_minute = 151
            burst = 0
            max_concurrent = \"65\"
            [stores.acme.retry]
            base_delay_ms = -1
            max_delay_ms = 1.5
            "
        ),
        &[],
    );
    assert_eq!(
        keys(&errors),
        [
            "stores.acme.budget.burst",
            "stores.acme.budget.max_concurrent",
            "stores.acme.budget.requests_per_minute",
            "stores.acme.retry.base_delay_ms",
            "stores.acme.retry.max_delay_ms",
        ]
    );
    assert!(message(&errors, "stores.acme.budget.requests_per_minute")
        .starts_with("must be between 1 and 150 (got 151); the store allows 150 requests/minute"));
    assert!(message(&errors, "stores.acme.budget.burst")
        .starts_with("must be between 1 and 30 (got 0)"));
    assert!(message(&errors, "stores.acme.budget.max_concurrent")
        .starts_with("must be between 1 and 64 (got 65)"));
    assert!(message(&errors, "stores.acme.retry.base_delay_ms")
        .starts_with("must be between 1 and 60000 (got -1)"));
    assert!(message(&errors, "stores.acme.retry.max_delay_ms")
        .starts_with("expected a whole number, found a decimal number"));
}

#[test]
fn b2b_page_size_has_a_safe_default_and_stays_below_the_specs_250() {
    // The default asks for pages a live server is known to answer in full (one public client
    // pages by 100), below the spec's cap.
    let default = acme_of(&ok(MINIMAL, &[])).b2b.page_size;
    assert_eq!(default, DEFAULT_B2B_PAGE_SIZE);
    assert!((2..250).contains(&default), "{default}");
    // The spec's pagination model: 1 < limit < 250; both ends are taken as given.
    for size in [2, 249] {
        let settings = ok(&format!("{MINIMAL}page_size = {size}\n"), &[]);
        assert_eq!(acme_of(&settings).b2b.page_size, size);
    }
    // Outside it, the key is named with the range, from the file or from the environment.
    for size in ["1", "250", "0", "-5"] {
        let errors = problems_of(&format!("{MINIMAL}page_size = {size}\n"), &[]);
        assert_eq!(keys(&errors), ["stores.acme.b2b.page_size"], "{size}");
        assert!(
            message(&errors, "stores.acme.b2b.page_size")
                .starts_with(&format!("must be between 2 and 249 (got {size})")),
            "{size}: {errors}"
        );
    }
    let errors = problems_of(MINIMAL, &[("B2BSYNC__STORES__ACME__B2B__PAGE_SIZE", "250")]);
    assert!(
        errors
            .to_string()
            .contains("B2BSYNC__STORES__ACME__B2B__PAGE_SIZE"),
        "{errors}"
    );
    assert!(
        message(&errors, "stores.acme.b2b.page_size").contains("between 2 and 249"),
        "{errors}"
    );
}

#[test]
fn max_delay_must_not_be_below_base_delay() {
    let errors = problems_of(
        &format!("{MINIMAL}\n[stores.acme.retry]\nbase_delay_ms = 500\nmax_delay_ms = 400\n"),
        &[],
    );
    assert_eq!(keys(&errors), ["stores.acme.retry.max_delay_ms"]);
    assert!(message(&errors, "stores.acme.retry.max_delay_ms")
        .starts_with("must be at least base_delay_ms (500)"));

    let errors = problems_of(
        &format!("{MINIMAL}\n[stores.acme.retry]\nbase_delay_ms = 40000\n"),
        &[],
    );
    assert_eq!(keys(&errors), ["stores.acme.retry.base_delay_ms"]);
}

#[test]
fn token_and_token_file_together_is_a_problem() {
    let errors = problems_of(
        &format!("{MINIMAL}token_file = \"/run/secrets/acme-b2b-token\"\n"),
        &[],
    );
    assert_eq!(keys(&errors), ["stores.acme.b2b.token"]);
    assert!(message(&errors, "stores.acme.b2b.token")
        .starts_with("both token and token_file are set; keep only one"));
    assert!(!format!("{errors:?}").contains(SECRET));
}

#[test]
fn legacy_auth_takes_no_store_hash() {
    let errors = problems_of(&format!("{MINIMAL}auth = \"legacy-auth-token\"\n"), &[]);
    assert_eq!(keys(&errors), ["stores.acme.b2b.store_hash"]);
    assert!(message(&errors, "stores.acme.b2b.store_hash")
        .starts_with("not sent with legacy-auth-token; remove it or use auth = \"x-auth-token\""));

    let errors = problems_of("[stores.acme.b2b]\ntoken = \"t\"\nauth = \"bearer\"\n", &[]);
    assert_eq!(keys(&errors), ["stores.acme.b2b.auth"]);
    assert!(message(&errors, "stores.acme.b2b.auth")
        .starts_with("expected one of \"x-auth-token\", \"legacy-auth-token\""));

    let errors = problems_of("[stores.acme.b2b]\ntoken = \"t\"\n", &[]);
    assert_eq!(keys(&errors), ["stores.acme.b2b.store_hash"]);
    assert!(
        message(&errors, "stores.acme.b2b.store_hash").starts_with("missing (required with auth")
    );
}

#[test]
fn store_names_must_suit_env_overrides() {
    for bad in ["Acme", "acme-eu", "acme__eu", "_acme", "acme_", "acme eu"] {
        let text = format!("[stores.{bad:?}.b2b]\nstore_hash = \"h\"\ntoken = \"t\"\n");
        let errors = problems_of(&text, &[]);
        // Key paths spell a segment as TOML would: a name with a space is quoted.
        let key = if bad.contains(' ') {
            format!("stores.{bad:?}")
        } else {
            format!("stores.{bad}")
        };
        assert_eq!(keys(&errors), std::slice::from_ref(&key), "{bad}");
        assert!(message(&errors, &key).starts_with("invalid store name"));
    }
    let settings = ok(
        "[stores.acme_eu2.b2b]\nstore_hash = \"h\"\ntoken = \"t\"\n",
        &[],
    );
    assert!(settings.stores.contains_key("acme_eu2"));
}

#[test]
fn no_store_is_a_problem() {
    let errors = problems_of("[telemetry]\nlog_format = \"pretty\"\n", &[]);
    assert_eq!(
        errors.to_string(),
        "stores: no store is configured (add a [stores.<name>] section)"
    );
}

#[test]
fn sections_of_the_wrong_type_are_reported_once() {
    let errors = problems_of(&format!("telemetry = \"debug\"\n{MINIMAL}"), &[]);
    assert_eq!(keys(&errors), ["telemetry"]);
    assert!(message(&errors, "telemetry").starts_with("expected a table, found a string"));

    let errors = problems_of("[stores.acme]\nb2b = 3\n", &[]);
    assert_eq!(keys(&errors), ["stores.acme.b2b"]);
}

#[test]
fn telemetry_values_are_checked() {
    let errors = problems_of(
        &format!("[telemetry]\nlog_filter = \"info,[[[\"\nlog_format = \"xml\"\nlog_level = 1\n{MINIMAL}"),
        &[],
    );
    assert_eq!(
        keys(&errors),
        [
            "telemetry.log_filter",
            "telemetry.log_format",
            "telemetry.log_level"
        ]
    );
    assert!(message(&errors, "telemetry.log_filter").starts_with("not a valid log filter"));
    assert!(message(&errors, "telemetry.log_format")
        .starts_with("expected one of \"auto\", \"json\", \"pretty\""));
    assert!(message(&errors, "telemetry.log_level").starts_with("unknown key"));
}

#[test]
fn base_url_is_normalised_for_joining() {
    let settings = ok(
        &format!("{MINIMAL}base_url = \"http://127.0.0.1:8750/api/v3/io\"\n"),
        &[],
    );
    let base = &acme_of(&settings).b2b.base_url;
    assert_eq!(base.as_str(), "http://127.0.0.1:8750/api/v3/io/");
    let joined = base.join("ip/invoices").expect("join");
    assert_eq!(
        joined.as_str(),
        "http://127.0.0.1:8750/api/v3/io/ip/invoices"
    );

    for (url, want) in [
        ("ftp://example.com/io", "must be an http:// or https:// URL"),
        (
            "https://user:pw@example.com/io",
            "must not contain credentials",
        ),
        ("https://example.com/io?x=1", "must not have a query string"),
    ] {
        let errors = problems_of(&format!("{MINIMAL}base_url = {url:?}\n"), &[]);
        assert!(
            message(&errors, "stores.acme.b2b.base_url").starts_with(want),
            "{url}"
        );
    }
}

#[test]
fn toml_syntax_error_names_the_file_without_quoting_the_line() {
    let file = toml_file("[stores.acme.b2b]\nstore_hash = \"abc\"\ntoken = \"tok_SECRET_123\n");
    let errors = load_with_env(file.path(), Vec::new()).expect_err("syntax error");
    assert_eq!(keys(&errors), [file.path().display().to_string()]);
    let text = errors.to_string();
    assert!(text.contains("not valid TOML"), "{text}");
    assert!(text.contains("line 3"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
}

#[test]
fn missing_file_is_reported_with_its_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("nope.toml");
    let errors = load_with_env(&path, Vec::new()).expect_err("missing file");
    assert_eq!(keys(&errors), [path.display().to_string()]);
    let msg = &errors.problems[0].message;
    assert!(
        msg.starts_with("cannot read the configuration file"),
        "{msg}"
    );
    assert!(msg.contains("--config"), "{msg}");
}

#[test]
fn secrets_never_appear_in_errors_or_debug() {
    let db = "postgres://sync:DB_PASSWORD_456@db/sync";
    let settings = ok(&format!("{MINIMAL}\n[database]\nurl = {db:?}\n"), &[]);
    let debug = format!("{settings:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(!debug.contains("DB_PASSWORD_456"), "{debug}");

    // Secrets in the right place, the wrong place, and in invalid shapes, amid other mistakes.
    let errors = problems_of(
        &format!(
            r#"
            [database]
            url = "mysql://sync:DB_PASSWORD_456@db/sync"
            [stores.acme.b2b]
            token = "{SECRET}"
            token_file = "{SECRET}"
            store_hash = "{SECRET} "
            base_url = "{SECRET}"
            auth = "{SECRET}"
            [stores.acme.budget]
            burst = "{SECRET}"
            [stores.beta.b2b]
            store_hash = "h"
            token_file = "{SECRET}"
            "#
        ),
        &[("B2BSYNC__STORES__ACME__RETRY__MAX_ATTEMPTS", SECRET)],
    );
    assert!(errors.problems.len() >= 7, "{errors}");
    assert!(
        keys(&errors).contains(&"stores.beta.b2b.token_file"),
        "{errors}"
    );
    for rendered in [format!("{errors}"), format!("{errors:?}")] {
        assert!(!rendered.contains("DB_PASSWORD_456"), "{rendered}");
        assert!(!rendered.contains(SECRET), "{rendered}");
    }
}

#[test]
fn shipped_config_files_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sandbox: PathBuf = root.join("config/b2b-invoice-sync.toml");
    let settings = load_with_env(&sandbox, Vec::new())
        .unwrap_or_else(|e| panic!("{}:\n{e}", sandbox.display()));
    let store = &settings.stores["sandbox"];
    assert_eq!(
        store.b2b.base_url.as_str(),
        "http://127.0.0.1:8750/api/v3/io/"
    );
    assert!(
        matches!(&store.b2b.auth, B2bAuth::XAuthToken { store_hash, token } if store_hash == "sandbox" && token.expose_secret() == "sandbox-token")
    );

    let example = root.join("config/example.toml");
    let settings = load_with_env(&example, Vec::new())
        .unwrap_or_else(|e| panic!("{}:\n{e}", example.display()));
    let acme = acme_of(&settings);
    assert_eq!(
        acme.b2b.base_url.as_str(),
        "https://api-b2b.bigcommerce.com/api/v3/io/"
    );
    // The override the template documents.
    let settings = load_with_env(
        &example,
        env(&[("B2BSYNC__STORES__ACME__B2B__TOKEN", "from_env")]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(token(&acme_of(&settings).b2b.auth), "from_env");
}

#[test]
fn load_reads_the_process_environment() {
    // No test sets B2BSYNC__ variables (that would race with other tests), so the file decides.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/b2b-invoice-sync.toml");
    let settings = load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(settings.stores.contains_key("sandbox"));
}

#[test]
fn env_names_with_empty_key_parts_are_reported() {
    let errors = problems_of(
        MINIMAL,
        &[
            ("B2BSYNC__", "1"),
            ("B2BSYNC__STORES____TOKEN", "2"),
            (
                "B2BSYNC_STORES__ACME__B2B__TOKEN",
                "not ours: one underscore",
            ),
        ],
    );
    assert_eq!(keys(&errors), ["B2BSYNC__", "B2BSYNC__STORES____TOKEN"]);
    assert!(message(&errors, "B2BSYNC__").starts_with("not a key path"));
}

#[test]
fn placeholder_secrets_are_named_by_key() {
    let settings = ok(
        &format!(
            "{MINIMAL}
            [database]
            url = \"postgres://sync:replace-with-the-password@db.internal/b2b\"
            [stores.beta.b2b]
            store_hash = \"def456\"
            token = \"replace-with-the-b2b-api-token\"
            "
        ),
        &[],
    );
    let found: Vec<String> = placeholders(&settings).into_iter().map(|p| p.key).collect();
    assert_eq!(found, ["database.url", "stores.beta.b2b.token"]);
    assert!(placeholders(&ok(MINIMAL, &[])).is_empty());
}

#[test]
fn env_names_with_one_underscore_are_warned_about_with_the_expected_form() {
    let warnings = env_warnings(
        [
            "B2BSYNC_STORES__ACME__B2B__TOKEN",
            "B2BSYNC__STORES__ACME__B2B__TOKEN",
            "B2BSYNC_CONFIG",
            "B2BSYNC_TEST_POSTGRES",
            "PATH",
        ]
        .map(str::to_owned),
    );
    assert_eq!(
        warnings,
        ["environment variable B2BSYNC_STORES__ACME__B2B__TOKEN is ignored: overrides start with \
          B2BSYNC__ (two underscores), like B2BSYNC__STORES__ACME__B2B__TOKEN"]
    );
}

#[test]
fn a_budget_whose_window_can_exceed_the_stores_150_is_refused() {
    let errors = problems_of(
        &format!(
            "{MINIMAL}
            [stores.acme.budget]
            requests_per_minute = 140
            burst = 20
            "
        ),
        &[],
    );
    assert_eq!(keys(&errors), ["stores.acme.budget.burst"]);
    assert!(
        message(&errors, "stores.acme.budget.burst")
            .starts_with("requests_per_minute + burst = 160 is above the store's 150"),
        "{errors:?}"
    );
    // Only the rate written: it is the key to blame (the default burst is 4).
    let errors = problems_of(
        &format!(
            "{MINIMAL}
            [stores.acme.budget]
            requests_per_minute = 150
            "
        ),
        &[],
    );
    assert_eq!(keys(&errors), ["stores.acme.budget.requests_per_minute"]);
    let fine = load_str(
        &format!(
            "{MINIMAL}
            [stores.acme.budget]
            requests_per_minute = 120
            burst = 30
            "
        ),
        &[],
    );
    assert!(fine.is_ok(), "{fine:?}");
}

/// `d` is [`DaemonSettings::default`] (which holds secrets, so has no `PartialEq`).
fn assert_daemon_defaults(d: &DaemonSettings, what: &str) {
    let def = DaemonSettings::default();
    assert!(
        d.trigger_token.is_none() && def.trigger_token.is_none(),
        "{what}"
    );
    assert!(
        d.webhook_secret.is_none() && def.webhook_secret.is_none(),
        "{what}"
    );
    let plain = |d: &DaemonSettings| {
        (
            d.http_address,
            d.shutdown_deadline,
            d.unready_after_failed_cycles,
            d.max_cycle,
            d.lease_ttl,
            d.trigger_requests_per_minute,
            d.webhook_max_body,
            d.webhook_replay_window,
        )
    };
    assert_eq!(plain(d), plain(&def), "{what}");
}

#[test]
fn every_section_reads_its_defaults() {
    // The defaults are written once, in the schema; each section's `Default` reads an empty
    // section through it (and would panic if that did not read).
    assert_eq!(DaemonSettings::default().lease_ttl, Duration::from_secs(15));
    assert!(EngineSettings::default().auto_migrate);
    assert_eq!(BudgetSettings::default().requests_per_minute.get(), 120);
    assert_eq!(RetrySettings::default().max_attempts, 5);
    assert_eq!(FailurePolicy::default().max_attempts, 8);
    assert!(!PaymentSettings::default().enabled);
    // A source that sets nothing gets exactly those.
    let s = ok(
        &format!("{MINIMAL}\n[sources.erp]\nkind = \"files\"\nstore = \"acme\"\n[sources.erp.files]\ndir = \"/tmp/x\"\n"),
        &[],
    );
    let source = &s.sources["erp"];
    assert_eq!(source.failures, FailurePolicy::default());
    assert_eq!(source.payments, PaymentSettings::default());
    assert_eq!(
        source.limits,
        crate::domain::policy::RecordLimits::default()
    );
    assert_daemon_defaults(&s.daemon, "a config without [daemon]");
    assert_eq!(s.engine, EngineSettings::default());
    assert_eq!(s.stores["acme"].budget, BudgetSettings::default());
    assert_eq!(s.stores["acme"].retry, RetrySettings::default());
}

#[test]
fn the_example_states_every_default_the_code_uses() {
    // config/example.toml writes out each default it documents: where it sets a section to its
    // documented defaults, they must be the code's.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let s = load_with_env(&example, Vec::new())
        .unwrap_or_else(|e| panic!("config/example.toml loads: {e}"));
    assert_daemon_defaults(&s.daemon, "[daemon] of config/example.toml");
    assert_eq!(s.engine, EngineSettings::default(), "[engine]");
    let store = &s.stores["acme"];
    assert_eq!(
        store.budget,
        BudgetSettings::default(),
        "[stores.acme.budget]"
    );
    assert_eq!(store.retry, RetrySettings::default(), "[stores.acme.retry]");
    let source = &s.sources["erp_main"];
    assert_eq!(
        source.failures,
        FailurePolicy::default(),
        "[sources.erp_main.failures]"
    );
    assert_eq!(
        source.limits,
        crate::domain::policy::RecordLimits::default(),
        "[sources.erp_main.limits]"
    );
}

#[test]
fn trigger_and_webhook_secrets_are_optional_and_come_one_way() {
    let d = ok(MINIMAL, &[]).daemon;
    assert!(d.trigger_token.is_none() && d.webhook_secret.is_none());
    assert_eq!(d.trigger_requests_per_minute.get(), 60);
    assert_eq!(d.webhook_max_body, 65_536);
    assert_eq!(d.webhook_replay_window, Duration::from_secs(300));

    let mut secret = NamedTempFile::new().expect("temp file");
    writeln!(secret, "  hook-{SECRET}  ").expect("write");
    let text = format!(
        "{MINIMAL}\n[daemon]\ntrigger_token = \"trig-{SECRET}\"\nwebhook_secret_file = {:?}\n\
         trigger_requests_per_minute = 10\nwebhook_max_body_bytes = 2048\nwebhook_replay_window_secs = 60\n",
        secret.path().display().to_string()
    );
    let d = ok(&text, &[]).daemon;
    assert_eq!(
        d.trigger_token
            .as_ref()
            .map(|s| s.expose_secret().to_owned()),
        Some(format!("trig-{SECRET}"))
    );
    assert_eq!(
        d.webhook_secret
            .as_ref()
            .map(|s| s.expose_secret().to_owned()),
        Some(format!("hook-{SECRET}"))
    );
    assert_eq!(d.trigger_requests_per_minute.get(), 10);
    assert_eq!(d.webhook_max_body, 2048);
    assert!(!format!("{d:?}").contains(SECRET), "Debug shows no secret");

    let both = format!(
        "{MINIMAL}\n[daemon]\ntrigger_token = \"a\"\ntrigger_token_file = \"/nonexistent\"\nwebhook_max_body_bytes = 10\n"
    );
    let errors = problems_of(&both, &[]);
    assert_eq!(
        keys(&errors),
        ["daemon.trigger_token", "daemon.webhook_max_body_bytes"],
        "{errors}"
    );
}
