//! ERP customer -> B2B company mapping: all three strategies, the lookup cache's TTL, imports,
//! and the unmapped-customer failure.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use b2b_invoice_sync::config::CustomerMapping;
use b2b_invoice_sync::customers::{import, CustomerMatch, CustomerResolver};

use crate::db::TestDb;
use crate::helpers::*;

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn company(m: Option<&CustomerMatch>) -> Option<&str> {
    match m {
        Some(CustomerMatch::Company(c)) => Some(c),
        _ => None,
    }
}

fn unmapped_reason(m: Option<&CustomerMatch>) -> String {
    match m {
        Some(CustomerMatch::Unmapped(reason)) => reason.clone(),
        other => panic!("expected unmapped, got {other:?}"),
    }
}

#[tokio::test]
async fn static_map_from_the_config() {
    let map = BTreeMap::from([("CUST-1".to_owned(), "12".to_owned())]);
    let resolver =
        CustomerResolver::new("erp", CustomerMapping::Static(map), None, None).expect("resolver");
    let found = resolver
        .resolve_all(&ids(&["CUST-1", "CUST-2"]))
        .await
        .expect("resolve");
    assert_eq!(company(found.get("CUST-1")), Some("12"));
    let reason = unmapped_reason(found.get("CUST-2"));
    assert!(
        reason.contains("CUST-2") && reason.contains("sources.erp.customers.map"),
        "{reason}"
    );
}

#[tokio::test]
async fn table_strategy_reads_imported_mappings() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("map.csv");
    std::fs::write(
        &csv,
        "external_customer_id,company_id\nCUST-1,12\n CUST-2 , 13\n",
    )
    .expect("write");
    assert_eq!(
        import::import_file(&db.pool, "erp", &csv)
            .await
            .expect("import"),
        2
    );

    let resolver =
        CustomerResolver::new("erp", CustomerMapping::Table, Some(db.pool.clone()), None)
            .expect("resolver");
    let found = resolver
        .resolve_all(&ids(&["CUST-1", "CUST-2", "CUST-3"]))
        .await
        .expect("resolve");
    assert_eq!(company(found.get("CUST-1")), Some("12"));
    assert_eq!(company(found.get("CUST-2")), Some("13"));
    let reason = unmapped_reason(found.get("CUST-3"));
    assert!(
        reason.contains("customers import") && reason.contains("--source erp"),
        "{reason}"
    );

    // Mappings are per source.
    let other = CustomerResolver::new(
        "billing",
        CustomerMapping::Table,
        Some(db.pool.clone()),
        None,
    )
    .expect("resolver");
    let found = other.resolve_all(&ids(&["CUST-1"])).await.expect("resolve");
    assert!(company(found.get("CUST-1")).is_none());

    // A later import updates a mapping.
    std::fs::write(&csv, "external_customer_id,company_id\nCUST-1,99\n").expect("write");
    import::import_file(&db.pool, "erp", &csv)
        .await
        .expect("re-import");
    let found = resolver
        .resolve_all(&ids(&["CUST-1"]))
        .await
        .expect("resolve");
    assert_eq!(company(found.get("CUST-1")), Some("99"));
}

#[tokio::test]
async fn a_bad_import_file_writes_nothing_and_lists_every_bad_line() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("map.csv");
    std::fs::write(
        &csv,
        "external_customer_id,company_id\nCUST-1,12\nCUST-2,abc\n,14\nCUST-1,15\n",
    )
    .expect("write");
    let err = import::import_file(&db.pool, "erp", &csv)
        .await
        .expect_err("bad rows");
    let text = err.to_string();
    for line in ["line 3", "line 4", "line 5"] {
        assert!(text.contains(line), "{line} missing from: {text}");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM customer_map")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(count, 0);

    std::fs::write(&csv, "customer,company\nCUST-1,12\n").expect("write");
    let err = import::import_file(&db.pool, "erp", &csv)
        .await
        .expect_err("bad header");
    assert!(
        err.to_string().contains("external_customer_id,company_id"),
        "{err}"
    );
}

#[tokio::test]
async fn company_lookup_is_cached_until_the_ttl_expires() {
    let db = TestDb::new().await;
    let sandbox = spawn_unlimited_sandbox(0).await;
    let control = sandbox.control();
    let strategy = CustomerMapping::CompanyExtraField {
        field_name: "ERP Customer ID".to_owned(),
        ttl: Duration::from_secs(3600),
    };
    let resolver = CustomerResolver::new(
        "erp",
        strategy,
        Some(db.pool.clone()),
        Some(client(&sandbox, Auth::XAuthToken)),
    )
    .expect("resolver");
    let lookups = || control.stats().route_total("GET /companies");

    let found = resolver
        .resolve_all(&ids(&["CUST-00003", "CUST-00007"]))
        .await
        .expect("resolve");
    assert_eq!(company(found.get("CUST-00003")), Some("3"));
    assert_eq!(company(found.get("CUST-00007")), Some("7"));
    assert_eq!(lookups(), 2);

    // Cached: no API call the second time.
    let found = resolver
        .resolve_all(&ids(&["CUST-00003", "CUST-00007"]))
        .await
        .expect("resolve");
    assert_eq!(company(found.get("CUST-00003")), Some("3"));
    assert_eq!(lookups(), 2);

    // Past the TTL, the next resolve asks B2B again (and refreshes the cache).
    sqlx::query("UPDATE customer_map SET updated_at = now() - interval '2 hours' WHERE external_customer_id = 'CUST-00003'")
        .execute(&db.pool)
        .await
        .expect("age the row");
    let found = resolver
        .resolve_all(&ids(&["CUST-00003", "CUST-00007"]))
        .await
        .expect("resolve");
    assert_eq!(company(found.get("CUST-00003")), Some("3"));
    assert_eq!(lookups(), 3);
    resolver
        .resolve_all(&ids(&["CUST-00003"]))
        .await
        .expect("resolve");
    assert_eq!(lookups(), 3);
}

#[tokio::test]
async fn an_unknown_customer_is_unmapped_with_a_reason_and_negatively_cached_briefly() {
    let db = TestDb::new().await;
    let sandbox = spawn_unlimited_sandbox(0).await;
    let control = sandbox.control();
    let strategy = CustomerMapping::CompanyExtraField {
        field_name: "ERP Customer ID".to_owned(),
        ttl: Duration::from_secs(86_400),
    };
    let resolver = CustomerResolver::new(
        "erp",
        strategy,
        Some(db.pool.clone()),
        Some(client(&sandbox, Auth::XAuthToken)),
    )
    .expect("resolver");
    let found = resolver
        .resolve_all(&ids(&["CUST-99999"]))
        .await
        .expect("resolve");
    let reason = unmapped_reason(found.get("CUST-99999"));
    assert!(
        reason.contains("no B2B company has extra field \"ERP Customer ID\" = CUST-99999"),
        "{reason}"
    );
    assert_eq!(control.stats().route_total("GET /companies"), 1);
    resolver
        .resolve_all(&ids(&["CUST-99999"]))
        .await
        .expect("resolve");
    assert_eq!(
        control.stats().route_total("GET /companies"),
        1,
        "negative answer cached"
    );
    // The negative cache is short (15 min), not the 24 h TTL: the fix is usually made right away.
    sqlx::query("UPDATE customer_map SET updated_at = now() - interval '16 minutes'")
        .execute(&db.pool)
        .await
        .expect("age the row");
    resolver
        .resolve_all(&ids(&["CUST-99999"]))
        .await
        .expect("resolve");
    assert_eq!(control.stats().route_total("GET /companies"), 2);
}

#[tokio::test]
async fn imported_mappings_override_lookups_and_failed_lookups_are_not_cached() {
    let db = TestDb::new().await;
    let sandbox = spawn_unlimited_sandbox(0).await;
    let control = sandbox.control();
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("map.csv");
    std::fs::write(&csv, "external_customer_id,company_id\nCUST-00003,8\n").expect("write");
    import::import_file(&db.pool, "erp", &csv)
        .await
        .expect("import");
    let strategy = CustomerMapping::CompanyExtraField {
        field_name: "ERP Customer ID".to_owned(),
        ttl: Duration::from_secs(60),
    };
    let resolver = CustomerResolver::new(
        "erp",
        strategy,
        Some(db.pool.clone()),
        Some(client(&sandbox, Auth::XAuthToken)),
    )
    .expect("resolver");
    let found = resolver
        .resolve_all(&ids(&["CUST-00003"]))
        .await
        .expect("resolve");
    assert_eq!(
        company(found.get("CUST-00003")),
        Some("8"),
        "the operator's mapping wins"
    );
    assert_eq!(control.stats().route_total("GET /companies"), 0);

    // A lookup that fails (B2B down) is unmapped for this cycle and asked again next time.
    control.push_fault(
        b2b_invoice_sync::sandbox::b2b::FaultRule::once(
            b2b_invoice_sync::sandbox::b2b::Fault::Status503,
        )
        .times(10),
    );
    let found = resolver
        .resolve_all(&ids(&["CUST-00005"]))
        .await
        .expect("resolve");
    assert!(unmapped_reason(found.get("CUST-00005")).contains("retried next cycle"));
    control.clear_faults();
    let found = resolver
        .resolve_all(&ids(&["CUST-00005"]))
        .await
        .expect("resolve");
    assert_eq!(company(found.get("CUST-00005")), Some("5"));
}

#[tokio::test]
async fn strategies_that_need_the_database_refuse_to_start_without_it() {
    let err = CustomerResolver::new("erp", CustomerMapping::Table, None, None)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("needs the database"), "{err}");
}

#[tokio::test]
async fn the_customers_import_command_fills_the_map_for_a_source() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[database]
url = "{url}"

[stores.acme.b2b]
store_hash = "abc"
token = "{TOKEN}"

[sources.exports]
kind = "files"
store = "acme"
[sources.exports.files]
dir = "{dir}"
[sources.exports.customers]
strategy = "table"
"#,
            url = db.url,
            dir = dir.path().display()
        ),
    )
    .expect("write config");
    let csv = dir.path().join("map.csv");
    std::fs::write(
        &csv,
        "external_customer_id,company_id\nCUST-1,12\nCUST-2,13\n",
    )
    .expect("write");
    let bin = env!("CARGO_BIN_EXE_b2b-invoice-sync");
    let run = |args: Vec<String>| {
        std::process::Command::new(bin)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .expect("runs")
    };
    let cfg = config.display().to_string();
    let out = run(vec!["migrate".into(), "--config".into(), cfg.clone()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = run(vec![
        "customers".into(),
        "import".into(),
        csv.display().to_string(),
        "--source".into(),
        "exports".into(),
        "--config".into(),
        cfg.clone(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("imported 2 customer mapping(s) for source exports"));
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT external_customer_id, company_id FROM customer_map WHERE source = 'exports' ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .expect("rows");
    assert_eq!(
        rows,
        vec![
            ("CUST-1".into(), Some("12".into())),
            ("CUST-2".into(), Some("13".into()))
        ]
    );

    // An unknown source is a clear runtime error (exit 1) that names it.
    let out = run(vec![
        "customers".into(),
        "import".into(),
        csv.display().to_string(),
        "--source".into(),
        "nope".into(),
        "--config".into(),
        cfg,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--source nope: no such source"));
}
