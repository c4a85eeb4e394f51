//! The binary's `check-config` and `probe` commands, run as an operator would.

use std::path::Path;
use std::process::Output;

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_b2b-invoice-sync");

async fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args).env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("B2BSYNC") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(envs.iter().copied());
    cmd.output().await.expect("the binary runs")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn check_config_lists_all_three_mistakes_by_key_path_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(
        dir.path(),
        "bad.toml",
        &format!(
            r#"
[stores.acme.b2b]
base_url = "not a url"
store_hash = "abc123"
token = "{TOKEN}"

[stores.acme.budget]
requests_per_minut = 100

[stores.beta.b2b]
store_hash = "def456"
"#
        ),
    );
    let out = run(&["check-config", "--config", &config], &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stderr.contains("3 problems"), "{stderr}");
    for key in [
        "stores.acme.b2b.base_url:",
        "stores.acme.budget.requests_per_minut:",
        "stores.beta.b2b.token:",
    ] {
        assert!(stderr.contains(key), "{key} missing from:\n{stderr}");
    }
    assert!(
        !stderr.contains(TOKEN) && !stdout.contains(TOKEN),
        "token leaked"
    );
}

#[tokio::test]
async fn check_config_names_a_bad_env_override() {
    let out = run(
        &["check-config", "--config", "config/b2b-invoice-sync.toml"],
        &[(
            "B2BSYNC__STORES__SANDBOX__BUDGET__REQUESTS_PER_MINUTE",
            "500",
        )],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("stores.sandbox.budget.requests_per_minute"),
        "{stderr}"
    );
    assert!(
        stderr.contains("B2BSYNC__STORES__SANDBOX__BUDGET__REQUESTS_PER_MINUTE"),
        "{stderr}"
    );
}

/// The example's placeholders, and the variables that set them.
const EXAMPLE_PLACEHOLDERS: [(&str, &str); 5] = [
    ("stores.acme.b2b.token", "B2BSYNC__STORES__ACME__B2B__TOKEN"),
    (
        "sources.erp_main.unified.api_key",
        "B2BSYNC__SOURCES__ERP_MAIN__UNIFIED__API_KEY",
    ),
    (
        "sources.erp_main.unified.credential_id",
        "B2BSYNC__SOURCES__ERP_MAIN__UNIFIED__CREDENTIAL_ID",
    ),
    (
        "sources.erp_custom.unified.api_key",
        "B2BSYNC__SOURCES__ERP_CUSTOM__UNIFIED__API_KEY",
    ),
    (
        "sources.billing.rebillia.token",
        "B2BSYNC__SOURCES__BILLING__REBILLIA__TOKEN",
    ),
];

#[tokio::test]
async fn the_shipped_configs_are_valid() {
    // The example is valid once its placeholders are replaced (here from the environment).
    let real: Vec<(&str, &str)> = EXAMPLE_PLACEHOLDERS
        .iter()
        .map(|(_, var)| (*var, "a-real-looking-secret"))
        .collect();
    for (config, envs) in [
        ("config/b2b-invoice-sync.toml", &[][..]),
        ("config/example.toml", &real[..]),
    ] {
        let out = run(&["check-config", "--config", config], envs).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{config}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
    }
}

#[tokio::test]
async fn a_variable_with_one_underscore_is_warned_about_not_ignored() {
    let out = run(
        &["check-config", "--config", "config/b2b-invoice-sync.toml"],
        &[("B2BSYNC_STORES__SANDBOX__B2B__TOKEN", "meant-as-override")],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "warning: environment variable B2BSYNC_STORES__SANDBOX__B2B__TOKEN is ignored: \
             overrides start with B2BSYNC__ (two underscores), like \
             B2BSYNC__STORES__SANDBOX__B2B__TOKEN"
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains("meant-as-override"),
        "the value is not shown"
    );
}

#[tokio::test]
async fn placeholder_secrets_of_the_example_are_rejected_by_key() {
    let out = run(&["check-config", "--config", "config/example.toml"], &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{} problems", EXAMPLE_PLACEHOLDERS.len())),
        "{stderr}"
    );
    for (key, var) in EXAMPLE_PLACEHOLDERS {
        let line = stderr
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{key}:")))
            .unwrap_or_else(|| panic!("{key} not named:\n{stderr}"));
        assert!(line.contains("placeholder") && line.contains(var), "{line}");
    }
    assert!(!String::from_utf8_lossy(&out.stdout).contains("OK"));
}

#[tokio::test]
async fn a_missing_config_file_exits_2_and_says_which() {
    let out = run(&["check-config", "--config", "/nonexistent/b2b.toml"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/b2b.toml"));
}

#[tokio::test]
async fn probe_talks_to_the_store_and_logs_json_without_the_token() {
    let sandbox = spawn_unlimited_sandbox(7).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write(
        dir.path(),
        "good.toml",
        &format!(
            "[stores.acme.b2b]\nbase_url = \"{}\"\nstore_hash = \"{STORE_HASH}\"\ntoken = \"{TOKEN}\"\n",
            sandbox.base_url()
        ),
    );
    let out = run(
        &["probe", "--config", &good, "--log-format", "json"],
        &[("RUST_LOG", "trace")],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("store acme: OK") && stdout.contains("7 invoice(s)"),
        "{stdout}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    assert!(
        !stderr.contains(TOKEN) && !stdout.contains(TOKEN),
        "token leaked"
    );

    // A wrong token: exit 1, the message says what to check, and still no token.
    let bad = write(
        dir.path(),
        "bad.toml",
        &format!(
            "[stores.acme.b2b]\nbase_url = \"{}\"\nstore_hash = \"{STORE_HASH}\"\ntoken = \"{TOKEN}-wrong\"\n",
            sandbox.base_url()
        ),
    );
    let out = run(&["probe", "--config", &bad, "--log-format", "json"], &[]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("refused the credentials"), "{stdout}");
    assert!(
        !stderr.contains(TOKEN) && !stdout.contains(TOKEN),
        "token leaked"
    );
}

/// An Alloy source as the issue writes it, against `base_url`.
fn alloy_config(preset: &str, base_url: &str, api_key: &str, credential: &str) -> String {
    format!(
        r#"[stores.acme.b2b]
store_hash = "{STORE_HASH}"
token = "{TOKEN}"

[sources.erp_main]
kind = "unified"
store = "acme"
[sources.erp_main.unified]
preset = "{preset}"
base_url = "{base_url}"
api_key = "{api_key}"
credential_id = "{credential}"
"#
    )
}

#[tokio::test]
async fn check_config_rejects_an_unknown_preset_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(
        dir.path(),
        "alloy.toml",
        &alloy_config(
            "alloy-2099-01",
            "https://embedded.runalloy.com/2024-03/one",
            "k",
            "c",
        ),
    );
    let out = run(&["check-config", "--config", &config], &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("1 problem:"), "{stderr}");
    assert!(
        stderr.contains(
            "sources.erp_main.unified.preset: expected one of \"alloy-2024-03\", \
             \"alloy-2023-12\", \"custom\""
        ),
        "{stderr}"
    );
    // Both presets, exactly as the issue writes them, are valid.
    for (preset, version) in [("alloy-2024-03", "2024-03"), ("alloy-2023-12", "2023-12")] {
        let config = write(
            dir.path(),
            "ok.toml",
            &alloy_config(
                preset,
                &format!("https://embedded.runalloy.com/{version}/one"),
                "k",
                "c",
            ),
        );
        let out = run(&["check-config", "--config", &config], &[]).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{preset}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn probe_source_checks_an_alloy_api_step_by_step() {
    use b2b_invoice_sync::sandbox::unified::{self, AlloyVersion, UnifiedSandboxConfig};
    const KEY: &str = "alloy_PROBE_SECRET_5d1";
    let dir = tempfile::tempdir().expect("tempdir");
    for (version, preset, paging) in [
        (
            AlloyVersion::V2024_03,
            "alloy-2024-03",
            "paging: page numbers (pageNumber from 1, pageSize 100); a full page",
        ),
        (
            AlloyVersion::V2023_12,
            "alloy-2023-12",
            "paging: a cursor at `pageInfo.nextCursor` with `pageInfo.hasNext`; a next page",
        ),
    ] {
        let sandbox = unified::start(
            UnifiedSandboxConfig {
                api_key: KEY.to_owned(),
                seed_invoices: 250,
                seed_customers: 20,
                ..UnifiedSandboxConfig::alloy(version)
            },
            "127.0.0.1:0".parse().expect("addr"),
        )
        .await
        .expect("sandbox");
        let cred = unified::DEFAULT_CREDENTIAL_ID;
        let good = write(
            dir.path(),
            "good.toml",
            &alloy_config(preset, &sandbox.base_url(), KEY, cred),
        );
        let out = run(&["probe", "--config", &good, "--source", "erp_main"], &[]).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
        for expected in [
            "source erp_main: credentials: accepted",
            "first page: 100 invoice(s)",
            paging,
            "ids: ERP invoice 1001 (B2B externalId) is ",
            "is ERP customer CUST-00001 (Customer 00001)",
            "source erp_main: OK",
        ] {
            assert!(
                stdout.contains(expected),
                "{preset}: `{expected}` in:\n{stdout}"
            );
        }
        let control = sandbox.control();
        assert_eq!(control.alloy_counters().remote_id_lookups, 0);
        // Read-only: the probe keeps nothing (no database) and changes nothing.
        assert!(control.received_writes().is_empty());

        let bad = write(
            dir.path(),
            "bad.toml",
            &alloy_config(preset, &sandbox.base_url(), "wrong-key", cred),
        );
        let out = run(&["probe", "--config", &bad, "--source", "erp_main"], &[]).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
        assert!(
            stdout.contains("FAILED at credentials and first page")
                && stdout.contains("check api_key"),
            "{stdout}"
        );
        let unknown = write(
            dir.path(),
            "unknown.toml",
            &alloy_config(preset, &sandbox.base_url(), KEY, "no-such-credential"),
        );
        let out = run(
            &["probe", "--config", &unknown, "--source", "erp_main"],
            &[],
        )
        .await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(stdout.contains("credential_id"), "{stdout}");
        for text in [&stdout, &String::from_utf8_lossy(&out.stderr)] {
            assert!(!text.contains(KEY), "the key leaked: {text}");
        }
    }
}

#[tokio::test]
async fn probe_reports_how_the_store_reads_external_ids_and_its_page_cap() {
    use b2b_invoice_sync::sandbox::b2b::{B2bSandboxConfig, ExternalIdFilter, Readings};

    let dir = tempfile::tempdir().expect("tempdir");
    for (filter, says) in [
        (ExternalIdFilter::Strings, "matched as strings"),
        (ExternalIdFilter::Numeric400, "numbers only: 400"),
        (
            ExternalIdFilter::NumericIgnore,
            "the list came back unfiltered",
        ),
    ] {
        let sandbox = spawn_sandbox(B2bSandboxConfig {
            rate_limit: 0,
            seed_invoices: 300,
            readings: Readings {
                external_id_filter: filter,
                max_page_size: Some(100),
                ..Readings::default()
            },
            ..B2bSandboxConfig::default()
        })
        .await;
        let config = write(
            dir.path(),
            "probe.toml",
            &format!(
                "[stores.acme.b2b]\nbase_url = \"{}\"\nstore_hash = \"{STORE_HASH}\"\ntoken = \"{TOKEN}\"\n",
                sandbox.base_url()
            ),
        );
        let out = run(&["probe", "--config", &config], &[]).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}");
        assert!(stdout.contains("store acme: OK"), "{stdout}");
        assert!(stdout.contains(says), "[{filter:?}] {stdout}");
        assert!(
            stdout.contains("page cap: answers at most 100 invoices a page (asked 249)"),
            "{stdout}"
        );
        println!("{stdout}");
        // Read-only: the sandbox saw nothing but reads.
        assert!(sandbox
            .control()
            .requests()
            .iter()
            .all(|r| r.method == "GET"));
    }
}

#[tokio::test]
async fn probe_source_tells_the_amount_units_of_a_rebillia_source() {
    use b2b_invoice_sync::sandbox::rebillia::{self, AmountStyle, RebilliaSandboxConfig};
    const REBILLIA: &str = "rebillia_PROBE_SECRET_77";
    let dir = tempfile::tempdir().expect("tempdir");
    // Pages smaller than the list, so the paging the first page answers with says more follows.
    const INVOICES: usize = 25;
    const PAGE: usize = 10;
    for (amounts, configured, says, code) in [
        (AmountStyle::Cents, "auto", "whole numbers are cents", 0),
        (AmountStyle::Dollars, "auto", "dollar strings", 0),
        // Dollar strings for lines, cents for shipping (the documented request forms).
        (AmountStyle::Documented, "auto", "dollar strings", 0),
        // Forced to dollars while the invoices add up in cents: said, and a failed probe.
        (AmountStyle::Cents, "dollars", "contradicts", 1),
    ] {
        let sandbox = rebillia::start(
            RebilliaSandboxConfig {
                token: REBILLIA.to_owned(),
                amounts,
                seed_invoices: INVOICES,
                ..RebilliaSandboxConfig::default()
            },
            "127.0.0.1:0".parse().expect("addr"),
        )
        .await
        .expect("sandbox");
        let config = write(
            dir.path(),
            "rebillia.toml",
            &format!(
                "[stores.acme.b2b]\nbase_url = \"http://127.0.0.1:9/api/v3/io\"\nstore_hash = \"{STORE_HASH}\"\ntoken = \"{TOKEN}\"\n\n\
                 [sources.billing]\nkind = \"rebillia\"\nstore = \"acme\"\n\
                 [sources.billing.rebillia]\nbase_url = \"{}\"\ntoken = \"{REBILLIA}\"\namount_unit = \"{configured}\"\npage_size = {PAGE}\n",
                sandbox.base_url()
            ),
        );
        let out = run(&["probe", "--config", &config, "--source", "billing"], &[]).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(code),
            "[{amounts:?}/{configured}] {stdout}"
        );
        assert!(stdout.contains(says), "[{amounts:?}/{configured}] {stdout}");
        // The paging the first page answered with: the page size asked, what came, and the
        // envelope's own fields, as the sandbox's list holds them.
        let paging = format!(
            "source billing: paging: asked {PAGE} a page (itemPerPage), got {PAGE} invoice(s) on page 1; \
             itemsPerPage {PAGE}, totalItems {INVOICES}, totalPages {}",
            INVOICES.div_ceil(PAGE)
        );
        assert!(
            stdout.lines().any(|line| line == paging),
            "[{amounts:?}/{configured}] wants {paging:?} in {stdout}"
        );
        assert!(!stdout.contains("caps pages"), "no cap below 250: {stdout}");
        assert!(!stdout.contains(REBILLIA), "the token never shows");
        // Read-only: one list page and nothing else.
        let stats = sandbox.control().stats();
        assert_eq!(
            (stats.count("GET /invoices", Some(200)), stats.total),
            (1, 1),
            "[{amounts:?}/{configured}] {stdout}"
        );
    }
}
