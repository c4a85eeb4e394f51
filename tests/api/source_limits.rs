//! Sanity limits on what an ERP sends (issue 11, defect 8): a total of 1e15 USD or a quantity of
//! -5 on a line the ERP totals as positive is a data error, refused with the field named, while
//! what a real ERP can send (credit lines and credit memos with negative amounts) is taken. The
//! limits are set per source in `[sources.<name>.limits]` and apply to every kind of source.

use std::path::Path;

use futures::StreamExt;
use serde_json::{json, Value};

use b2b_invoice_sync::config::{load_with_env, ConfigErrors, Settings};
use b2b_invoice_sync::domain::{RecordError, SourceInvoice};
use b2b_invoice_sync::sandbox::unified::{self, UnifiedSandboxConfig};
use b2b_invoice_sync::source::{self, Cursor};

/// The config of one source `erp` of `kind` (its adapter section is `adapter`), plus `limits`
/// (the body of `[sources.erp.limits]`, none when empty).
fn load(dir: &Path, kind: &str, adapter: &str, limits: &str) -> Result<Settings, ConfigErrors> {
    let limits = if limits.is_empty() {
        String::new()
    } else {
        format!("[sources.erp.limits]\n{limits}\n")
    };
    let text = format!(
        r#"
[stores.test.b2b]
store_hash = "abc123"
token = "test-token"

[sources.erp]
kind = "{kind}"
store = "test"

[sources.erp.{kind}]
{adapter}

{limits}
"#
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).expect("write config");
    load_with_env(&path, Vec::new())
}

fn files_adapter(dir: &Path) -> String {
    format!("dir = \"{}\"\nready = \"atomic_rename\"", dir.display())
}

/// Every record the source `erp` of `settings` reads, by external id (refusals by the id they
/// name).
async fn read(settings: &Settings) -> Vec<Result<SourceInvoice, RecordError>> {
    let adapter = source::build(&settings.sources["erp"]).expect("the source builds");
    let mut records = Vec::new();
    let mut pages = adapter.pages(&Cursor::default());
    while let Some(page) = pages.next().await {
        records.extend(page.expect("the source reads").records);
    }
    records
}

fn find<'a>(
    records: &'a [Result<SourceInvoice, RecordError>],
    id: &str,
) -> &'a Result<SourceInvoice, RecordError> {
    records
        .iter()
        .find(|r| match r {
            Ok(inv) => inv.external_id == id,
            Err(e) => e.record.to_string().contains(id),
        })
        .unwrap_or_else(|| panic!("no record {id} in {records:?}"))
}

fn refused_field(records: &[Result<SourceInvoice, RecordError>], id: &str) -> (String, String) {
    match find(records, id) {
        Ok(inv) => panic!("{id} was taken: {inv:?}"),
        Err(e) => (e.field.as_deref().unwrap_or("").to_owned(), e.to_string()),
    }
}

fn line(q: &str, price: &str, total: Option<&str>) -> Value {
    let mut l = json!({"sku": "W-1", "quantity": q, "unit_price": price});
    if let Some(t) = total {
        l["line_total"] = json!(t);
    }
    l
}

fn invoice(id: &str, total: &str, open: &str, lines: Vec<Value>) -> String {
    json!({
        "external_id": id,
        "external_customer_id": "CUST-00001",
        "invoice_number": format!("N-{id}"),
        "currency": "USD",
        "total": total,
        "open_balance": open,
        "line_items": lines,
    })
    .to_string()
}

fn write_export(dir: &Path, lines: &[String]) {
    std::fs::write(dir.join("export.ndjson"), lines.join("\n")).expect("write export");
}

/// Without any `[sources.<name>.limits]`, the defaults refuse what no ERP means and take what
/// real ERPs send.
#[tokio::test]
async fn absurd_amounts_and_a_negative_quantity_on_a_positive_line_are_refused_by_default() {
    let config = tempfile::tempdir().expect("tempdir");
    let exports = tempfile::tempdir().expect("tempdir");
    let huge = "1000000000000000";
    write_export(
        exports.path(),
        &[
            invoice("HUGE-TOTAL", huge, "10.00", vec![line("1", "10.00", None)]),
            invoice("HUGE-OPEN", "10.00", huge, vec![line("1", "10.00", None)]),
            invoice(
                "HUGE-PRICE",
                "10.00",
                "10.00",
                vec![line("1", huge, Some("10.00"))],
            ),
            invoice(
                "SIGNS",
                "50.00",
                "50.00",
                vec![line("-5", "10.00", Some("50.00"))],
            ),
            invoice(
                "FLOAT-ARTEFACT",
                "0.30",
                "0.30",
                vec![line("3", "0.30000000000000004", Some("0.30"))],
            ),
            invoice(
                "MANY",
                "10.00",
                "10.00",
                vec![line("5000000000", "0", None)],
            ),
            // What real ERPs send: a return line on an invoice, and a credit memo.
            invoice(
                "RETURN-LINE",
                "40.00",
                "40.00",
                vec![line("5", "10.00", None), line("-1", "10.00", None)],
            ),
            invoice(
                "CREDIT-MEMO",
                "-30.00",
                "-30.00",
                vec![line("-3", "10.00", Some("-30.00"))],
            ),
            invoice(
                "PRECISE-PRICE",
                "1.25",
                "1.25",
                vec![line("1000", "0.00125", Some("1.25"))],
            ),
        ],
    );
    let settings =
        load(config.path(), "files", &files_adapter(exports.path()), "").expect("the config loads");
    let records = read(&settings).await;
    for (id, field) in [
        ("HUGE-TOTAL", "total"),
        ("HUGE-OPEN", "open_balance"),
        ("HUGE-PRICE", "line_items[0].unit_price"),
        ("SIGNS", "line_items[0].quantity"),
        ("FLOAT-ARTEFACT", "line_items[0].unit_price"),
        ("MANY", "line_items[0].quantity"),
    ] {
        let (refused, message) = refused_field(&records, id);
        assert_eq!(refused, field, "{message}");
        assert!(message.contains("export.ndjson line"), "{message}");
    }
    let (_, signs) = refused_field(&records, "SIGNS");
    assert!(signs.contains("-5") && signs.contains("50"), "{signs}");
    for id in ["RETURN-LINE", "CREDIT-MEMO", "PRECISE-PRICE"] {
        assert!(find(&records, id).is_ok(), "{id}: {:?}", find(&records, id));
    }
}

/// Each key of `[sources.<name>.limits]` changes what is refused; bad values and unknown keys
/// are config problems with their key path.
#[tokio::test]
async fn limits_are_configured_per_source_and_checked_by_the_config_loader() {
    let config = tempfile::tempdir().expect("tempdir");
    let exports = tempfile::tempdir().expect("tempdir");
    write_export(
        exports.path(),
        &[
            invoice("BIG", "600.00", "600.00", vec![line("1", "600.00", None)]),
            invoice("OK", "400.00", "400.00", vec![line("4", "100.00", None)]),
            invoice(
                "RETURN-LINE",
                "40.00",
                "40.00",
                vec![line("5", "10.00", None), line("-1", "10.00", None)],
            ),
            invoice(
                "CREDIT-MEMO",
                "-30.00",
                "-30.00",
                vec![line("3", "-10.00", None)],
            ),
            invoice(
                "CENTS",
                "1.50",
                "1.50",
                vec![line("1", "1.505", Some("1.50"))],
            ),
        ],
    );
    let limits = r#"max_amount = "500"
max_quantity = "100"
max_decimal_places = 2
negative_quantities = false
negative_totals = false"#;
    let settings = load(
        config.path(),
        "files",
        &files_adapter(exports.path()),
        limits,
    )
    .expect("the config loads");
    let records = read(&settings).await;
    assert!(find(&records, "OK").is_ok(), "{:?}", find(&records, "OK"));
    for (id, field) in [
        ("BIG", "total"),
        ("RETURN-LINE", "line_items[1].quantity"),
        ("CREDIT-MEMO", "total"),
        ("CENTS", "line_items[0].unit_price"),
    ] {
        let (refused, message) = refused_field(&records, id);
        assert_eq!(refused, field, "{id}: {message}");
    }

    let errors = load(
        config.path(),
        "files",
        &files_adapter(exports.path()),
        r#"max_amount = "-5"
max_quantity = "lots"
max_decimal_places = 40
negative_totals = "maybe"
max_amout = "5""#,
    )
    .expect_err("bad limits are config problems");
    let keys: Vec<&str> = errors.problems.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "sources.erp.limits.max_amount",
        "sources.erp.limits.max_quantity",
        "sources.erp.limits.max_decimal_places",
        "sources.erp.limits.negative_totals",
        "sources.erp.limits.max_amout",
    ] {
        assert!(keys.contains(&key), "{key} not among {keys:?}");
    }
}

/// The limits are the same for every kind of source: a unified API record with an absurd total
/// is refused like an export row.
#[tokio::test]
async fn the_limits_apply_to_api_sources_too() {
    let sandbox = unified::start(
        UnifiedSandboxConfig {
            seed_invoices: 2,
            ..UnifiedSandboxConfig::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("sandbox");
    let control = sandbox.control();
    let mut huge = control
        .invoice(&unified::remote_id(1))
        .expect("a seeded invoice");
    huge["id"] = json!("huge-1");
    huge["remoteId"] = json!("HUGE-1");
    huge["number"] = json!("HUGE-1");
    huge["totalAmount"] = json!("1000000000000000");
    control.insert_raw(huge).expect("inserted");
    let config = tempfile::tempdir().expect("tempdir");
    let adapter = format!(
        "base_url = \"{}\"\napi_key = \"{}\"\ncredential_id = \"{}\"",
        sandbox.base_url(),
        unified::DEFAULT_API_KEY,
        unified::DEFAULT_CREDENTIAL_ID
    );
    let settings = load(config.path(), "unified", &adapter, "").expect("the config loads");
    let records = read(&settings).await;
    assert_eq!(records.len(), 3, "{records:?}");
    let (field, message) = refused_field(&records, "HUGE-1");
    assert_eq!(field, "total", "{message}");
    assert_eq!(
        records.iter().filter(|r| r.is_ok()).count(),
        2,
        "{records:?}"
    );
}
