//! `[sources.<name>]`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use secrecy::ExposeSecret;
use tempfile::NamedTempFile;

use super::*;

const API_KEY: &str = "uk_SECRET_789";

/// A store and one source of each kind, with as few keys as each needs.
fn minimal_sources() -> String {
    format!(
        r#"{MINIMAL}
[sources.erp]
kind = "unified"
store = "acme"
[sources.erp.unified]
base_url = "https://api.example-unified.com"
api_key = "{API_KEY}"
credential_id = "cred_123"

[sources.billing]
kind = "rebillia"
store = "acme"
[sources.billing.rebillia]
token = "{SECRET}"

[sources.exports]
kind = "files"
store = "acme"
[sources.exports.files]
dir = "/var/lib/b2b-invoice-sync/exports"
"#
    )
}

fn source<'s>(settings: &'s Settings, name: &str) -> &'s SourceSettings {
    settings
        .sources
        .get(name)
        .unwrap_or_else(|| panic!("source {name}"))
}

fn unified_of(source: &SourceSettings) -> &UnifiedSettings {
    match &source.adapter {
        AdapterSettings::Unified(unified) => unified,
        other => panic!("expected unified, got {}", other.kind()),
    }
}

fn rebillia_of(source: &SourceSettings) -> &RebilliaSettings {
    match &source.adapter {
        AdapterSettings::Rebillia(rebillia) => rebillia,
        other => panic!("expected rebillia, got {}", other.kind()),
    }
}

fn files_of(source: &SourceSettings) -> &FilesSettings {
    match &source.adapter {
        AdapterSettings::Files(files) => files,
        other => panic!("expected files, got {}", other.kind()),
    }
}

#[test]
fn full_sources_of_each_kind_load_every_value() {
    let mut key_file = NamedTempFile::new().expect("temp file");
    writeln!(key_file, "{API_KEY}").expect("write");
    let text = format!(
        r#"{MINIMAL}
[stores.beta.b2b]
store_hash = "def456"
token = "beta_tok"

[sources.erp_main]
kind = "unified"
store = "acme"
overlap_secs = 600
on_deleted = "zero_balance"

[sources.erp_main.unified]
base_url = "https://api.example-unified.com/v2"
api_key_file = {key_file:?}
credential_id = "cred_123"
request_timeout_secs = 45
connect_timeout_secs = 7
page_size = 200

[sources.erp_main.unified.retry]
max_attempts = 3
base_delay_ms = 100
max_delay_ms = 2000

[sources.erp_main.unified.names]
invoices_path = "accounting/v2/invoices"
credential_param = "connection_id"
limit_param = "page_size"
cursor_param = "cursor"
updated_after_param = "modified_since"
list_field = "data"
next_field = "next_cursor"
single_field = "data"

[sources.erp_main.mapping]
timezone = "Europe/Berlin"
default_type = "Credit Note"
channel_id = 2
owned = ["line_items", "cost_lines", "open_balance", "line_items"]

[sources.erp_main.mapping.fields]
purchase_order_number = "extra.po"
order_number = ""
terms_conditions = "memo"
external_pdf_url = "pdf_url"
type = "type"

[sources.erp_main.mapping.extra_fields]
"ERP Sync Source" = "source"
sales_rep = "extra.Sales Rep"

[sources.erp_main.mapping.cost_lines]
subtotal = "Net"
freight = "Shipping"
tax = "VAT"
discount = "Rebate"

[sources.erp_main.customers]
strategy = "static"
map = {{ "CUST-00001" = "1", "CUST-00002" = 42 }}

[sources.billing]
kind = "rebillia"
store = "beta"
overlap_secs = 0
on_deleted = "ignore"

[sources.billing.rebillia]
base_url = "http://127.0.0.1:8752/v1"
token = "{SECRET}"
request_timeout_secs = 60
connect_timeout_secs = 3
page_size = 250

[sources.billing.customers]
strategy = "company_extra_field"
field_name = "Rebillia Customer"
ttl_secs = 3600

[sources.exports]
kind = "files"
store = "acme"

[sources.exports.files]
dir = "/srv/exports"
ready = "atomic_rename"
page_size = 10000

[sources.exports.customers]
strategy = "table"
"#,
        key_file = key_file.path().display().to_string(),
    );
    let settings = ok(&text, &[]);
    assert_eq!(
        settings.sources.keys().collect::<Vec<_>>(),
        ["billing", "erp_main", "exports"]
    );

    let erp = source(&settings, "erp_main");
    assert_eq!(erp.name, "erp_main");
    assert_eq!(erp.store, "acme");
    assert_eq!(erp.overlap, Duration::from_secs(600));
    assert_eq!(erp.on_deleted, DeletedPolicy::ZeroBalance);
    let unified = unified_of(erp);
    assert_eq!(
        unified.base_url.as_str(),
        "https://api.example-unified.com/v2/"
    );
    assert_eq!(unified.api_key.expose_secret(), API_KEY);
    assert_eq!(unified.credential_id, "cred_123");
    assert_eq!(unified.http.request_timeout, Duration::from_secs(45));
    assert_eq!(unified.http.connect_timeout, Duration::from_secs(7));
    assert_eq!(unified.http.page_size.get(), 200);
    assert_eq!(unified.http.retry.max_attempts, 3);
    assert_eq!(unified.http.retry.base_delay, Duration::from_millis(100));
    assert_eq!(unified.http.retry.max_delay, Duration::from_millis(2000));
    assert_eq!(
        unified.names,
        UnifiedNames {
            invoices_path: "accounting/v2/invoices".to_owned(),
            credential_param: "connection_id".to_owned(),
            limit_param: "page_size".to_owned(),
            cursor_param: "cursor".to_owned(),
            updated_after_param: "modified_since".to_owned(),
            list_field: "data".to_owned(),
            next_field: "next_cursor".to_owned(),
            single_field: "data".to_owned(),
            ..UnifiedNames::default()
        }
    );

    let mapping = &erp.mapping;
    assert_eq!(mapping.timezone, chrono_tz::Europe::Berlin);
    assert_eq!(mapping.default_type, "Credit Note");
    assert_eq!(mapping.channel_id, Some(2));
    // A repeated name counts once.
    assert_eq!(
        mapping.owned,
        [
            OwnedField::LineItems,
            OwnedField::CostLines,
            OwnedField::OpenBalance
        ]
    );
    assert_eq!(
        mapping.purchase_order_number,
        Some(SourceField::Extra("po".to_owned()))
    );
    assert_eq!(mapping.order_number, None);
    assert_eq!(mapping.terms_conditions, Some(SourceField::Memo));
    assert_eq!(mapping.external_pdf_url, Some(SourceField::PdfUrl));
    assert_eq!(mapping.invoice_type, Some(SourceField::Type));
    assert_eq!(
        mapping.extra_fields,
        BTreeMap::from([
            ("ERP Sync Source".to_owned(), SourceField::SourceName),
            (
                "sales_rep".to_owned(),
                SourceField::Extra("Sales Rep".to_owned())
            ),
        ])
    );
    assert_eq!(
        mapping.cost_line_labels,
        CostLineLabels {
            subtotal: "Net".to_owned(),
            freight: "Shipping".to_owned(),
            tax: "VAT".to_owned(),
            discount: "Rebate".to_owned(),
        }
    );
    assert_eq!(
        erp.customers,
        CustomerMapping::Static(BTreeMap::from([
            ("CUST-00001".to_owned(), "1".to_owned()),
            ("CUST-00002".to_owned(), "42".to_owned()),
        ]))
    );

    let billing = source(&settings, "billing");
    assert_eq!(billing.store, "beta");
    assert_eq!(billing.overlap, Duration::ZERO);
    assert_eq!(billing.on_deleted, DeletedPolicy::Ignore);
    let rebillia = rebillia_of(billing);
    assert_eq!(rebillia.base_url.as_str(), "http://127.0.0.1:8752/v1/");
    assert_eq!(rebillia.token.expose_secret(), SECRET);
    assert_eq!(rebillia.http.request_timeout, Duration::from_secs(60));
    assert_eq!(rebillia.http.connect_timeout, Duration::from_secs(3));
    assert_eq!(rebillia.http.page_size.get(), 250);
    assert_eq!(
        billing.customers,
        CustomerMapping::CompanyExtraField {
            field_name: "Rebillia Customer".to_owned(),
            ttl: Duration::from_secs(3600),
        }
    );

    let exports = source(&settings, "exports");
    let files = files_of(exports);
    assert_eq!(files.dir, Path::new("/srv/exports"));
    assert_eq!(files.ready, ReadyRule::AtomicRename);
    assert_eq!(files.page_size.get(), 10_000);
    assert_eq!(exports.customers, CustomerMapping::Table);
}

#[test]
fn omitted_source_keys_take_defaults() {
    let settings = ok(&minimal_sources(), &[]);
    let erp = source(&settings, "erp");
    assert_eq!(erp.overlap, Duration::from_secs(300));
    assert_eq!(erp.on_deleted, DeletedPolicy::default());
    assert_eq!(erp.customers, CustomerMapping::Table);

    let unified = unified_of(erp);
    assert_eq!(
        unified.base_url.as_str(),
        "https://api.example-unified.com/"
    );
    assert_eq!(unified.http.request_timeout, Duration::from_secs(30));
    assert_eq!(unified.http.connect_timeout, Duration::from_secs(5));
    assert_eq!(unified.http.page_size.get(), 100);
    assert_eq!(unified.names, UnifiedNames::default());
    let (retry, want) = (unified.http.retry, RetrySettings::default());
    assert_eq!(retry.max_attempts, want.max_attempts);
    assert_eq!(retry.base_delay, want.base_delay);
    assert_eq!(retry.max_delay, want.max_delay);

    // The schema's defaults and MappingSettings::default() must not drift apart.
    let (mapping, want) = (&erp.mapping, MappingSettings::default());
    assert_eq!(mapping.timezone, want.timezone);
    assert_eq!(mapping.default_type, want.default_type);
    assert_eq!(mapping.channel_id, want.channel_id);
    assert_eq!(mapping.cost_line_labels, want.cost_line_labels);
    assert_eq!(mapping.purchase_order_number, want.purchase_order_number);
    assert_eq!(mapping.order_number, want.order_number);
    assert_eq!(mapping.terms_conditions, want.terms_conditions);
    assert_eq!(mapping.external_pdf_url, want.external_pdf_url);
    assert_eq!(mapping.invoice_type, want.invoice_type);
    assert_eq!(mapping.extra_fields, want.extra_fields);
    assert_eq!(mapping.owned, want.owned);

    let rebillia = rebillia_of(source(&settings, "billing"));
    assert_eq!(rebillia.base_url.as_str(), "https://api.rebillia.com/v1/");
    assert_eq!(rebillia.http.page_size.get(), 100);
    assert_eq!(rebillia.http.request_timeout, Duration::from_secs(30));

    let files = files_of(source(&settings, "exports"));
    assert_eq!(files.ready, ReadyRule::Marker);
    assert_eq!(files.page_size.get(), 500);

    let text = format!(
        "{}[sources.exports.customers]\nstrategy = \"company_extra_field\"\n",
        minimal_sources()
    );
    assert_eq!(
        source(&ok(&text, &[]), "exports").customers,
        CustomerMapping::CompanyExtraField {
            field_name: "ERP Customer ID".to_owned(),
            ttl: Duration::from_secs(86_400),
        }
    );
}

#[test]
fn no_sources_is_fine() {
    assert!(ok(MINIMAL, &[]).sources.is_empty());
    assert!(ok(&format!("{MINIMAL}[sources]\n"), &[]).sources.is_empty());
}

#[test]
fn each_kind_rejects_a_section_of_another_kind() {
    let cases = [
        (
            "unified",
            "[sources.x.unified]\nbase_url = \"https://u.example\"\napi_key = \"k\"\ncredential_id = \"c\"\n",
        ),
        ("rebillia", "[sources.x.rebillia]\ntoken = \"t\"\n"),
        ("files", "[sources.x.files]\ndir = \"/srv/exports\"\n"),
    ];
    for (kind, section) in cases {
        // The right section alone loads.
        let text = format!("{MINIMAL}[sources.x]\nkind = {kind:?}\nstore = \"acme\"\n{section}");
        assert_eq!(ok(&text, &[]).sources["x"].adapter.kind(), kind);

        for (other, other_section) in cases.iter().filter(|(k, _)| *k != kind) {
            // A section of another kind, beside the right one: the stray one is named.
            let both = format!("{text}{other_section}");
            let errors = problems_of(&both, &[]);
            let key = format!("sources.x.{other}");
            assert_eq!(keys(&errors), [key.as_str()], "{errors}");
            assert!(
                message(&errors, &key).starts_with(&format!(
                    "a [{other}] section, but kind = \"{kind}\"; remove the section or set kind = \"{other}\""
                )),
                "{errors}"
            );

            // Only the other kind's section: the required one is missing too.
            let wrong =
                format!("{MINIMAL}[sources.x]\nkind = {kind:?}\nstore = \"acme\"\n{other_section}");
            let errors = problems_of(&wrong, &[]);
            let mut want = [format!("sources.x.{kind}"), key.clone()];
            want.sort();
            assert_eq!(keys(&errors), want, "{errors}");
            assert!(message(&errors, &format!("sources.x.{kind}"))
                .starts_with(&format!("missing (required with kind = \"{kind}\"")));
        }
    }
}

#[test]
fn unknown_or_missing_kind_still_checks_the_sections() {
    let errors = problems_of(
        &format!(
            "{MINIMAL}[sources.x]\nkind = \"sap\"\nstore = \"acme\"\n\
             [sources.x.files]\npage_size = 0\n"
        ),
        &[],
    );
    assert_eq!(
        keys(&errors),
        [
            "sources.x.files.dir",
            "sources.x.files.page_size",
            "sources.x.kind"
        ],
        "{errors}"
    );
    assert!(message(&errors, "sources.x.kind")
        .starts_with("expected one of \"unified\", \"rebillia\", \"files\""));

    let errors = problems_of(&format!("{MINIMAL}[sources.x]\nstore = \"acme\"\n"), &[]);
    assert_eq!(keys(&errors), ["sources.x.kind"]);
    assert!(message(&errors, "sources.x.kind").starts_with("missing (which adapter"));
}

#[test]
fn unknown_store_lists_the_configured_ones() {
    let text = minimal_sources().replace(
        "kind = \"rebillia\"\nstore = \"acme\"",
        "kind = \"rebillia\"\nstore = \"acme_eu\"",
    );
    let errors = problems_of(&text, &[]);
    assert_eq!(keys(&errors), ["sources.billing.store"]);
    assert!(
        message(&errors, "sources.billing.store")
            .starts_with("names no [stores.<name>] section; configured: acme (from "),
        "{errors}"
    );

    let errors = problems_of(
        &format!("{MINIMAL}[sources.x]\nkind = \"files\"\n[sources.x.files]\ndir = \"/d\"\n"),
        &[],
    );
    assert_eq!(
        errors.to_string(),
        "sources.x.store: missing (the name of the [stores.<name>] this source feeds; configured: acme)"
    );
}

#[test]
fn source_names_follow_the_store_name_rule() {
    let text = minimal_sources().replace("[sources.exports", "[sources.Exports");
    let errors = problems_of(&text, &[]);
    assert_eq!(keys(&errors), ["sources.Exports"]);
    assert!(message(&errors, "sources.Exports").starts_with(
        "invalid source name: use lowercase letters, digits and single inner underscores \
         (like erp_main), because environment overrides such as \
         B2BSYNC__SOURCES__ERP_MAIN__OVERLAP_SECS are lowercased"
    ));
}

#[test]
fn bad_timezone_is_reported() {
    let text = format!(
        "{}[sources.erp.mapping]\ntimezone = \"Europe/Atlantis\"\n",
        minimal_sources()
    );
    let errors = problems_of(&text, &[]);
    assert_eq!(keys(&errors), ["sources.erp.mapping.timezone"]);
    assert!(message(&errors, "sources.erp.mapping.timezone")
        .starts_with("not a time zone of the IANA database"));
}

#[test]
fn a_bad_schedule_timezone_is_the_only_problem_reported() {
    let errors = problems_of(
        &minimal_sources(),
        &[
            (
                "B2BSYNC__SOURCES__ERP__SCHEDULE_TIMEZONE",
                "Mars/Olympus_Mons",
            ),
            ("B2BSYNC__SOURCES__ERP__SCHEDULE", "*/10 * * * *"),
        ],
    );
    assert_eq!(
        keys(&errors),
        ["sources.erp.schedule_timezone"],
        "a valid schedule is not an unknown key: {errors}"
    );
    assert!(message(&errors, "sources.erp.schedule_timezone").starts_with("not an IANA time zone"));
}

#[test]
fn unknown_owned_fields_are_reported_by_index() {
    let text = format!(
        "{}[sources.erp.mapping]\nowned = [\"line_items\", \"cost_lines\", \"payments\", 3]\n",
        minimal_sources()
    );
    let errors = problems_of(&text, &[]);
    assert_eq!(
        keys(&errors),
        [
            "sources.erp.mapping.owned[2]",
            "sources.erp.mapping.owned[3]"
        ],
        "{errors}"
    );
    assert!(message(&errors, "sources.erp.mapping.owned[2]")
        .starts_with("not a field the daemon can own; expected one of invoice_number, customer,"));
    assert!(message(&errors, "sources.erp.mapping.owned[3]")
        .starts_with("expected a string, found a number"));

    let text = format!(
        "{}[sources.erp.mapping]\nowned = \"line_items\"\nchannel_id = 0\n",
        minimal_sources()
    );
    // A string is a comma-separated list (environment values are strings).
    let errors = problems_of(&text, &[]);
    assert_eq!(keys(&errors), ["sources.erp.mapping.channel_id"]);

    let text = format!("{}[sources.erp.mapping]\nowned = []\n", minimal_sources());
    assert!(source(&ok(&text, &[]), "erp").mapping.owned.is_empty());
}

#[test]
fn bad_source_fields_are_reported() {
    let text = format!(
        r#"{}
[sources.erp.mapping.fields]
purchase_order_number = "po"
order_number = "extra."
[sources.erp.mapping.extra_fields]
"ERP Sync Source" = ""
ok_field = "terms"
[sources.erp.mapping.cost_lines]
tax = " "
"#,
        minimal_sources()
    );
    let errors = problems_of(&text, &[]);
    assert_eq!(
        keys(&errors),
        [
            "sources.erp.mapping.cost_lines.tax",
            "sources.erp.mapping.extra_fields.\"ERP Sync Source\"",
            "sources.erp.mapping.fields.order_number",
            "sources.erp.mapping.fields.purchase_order_number",
        ],
        "{errors}"
    );
    let po = message(&errors, "sources.erp.mapping.fields.purchase_order_number");
    assert!(
        po.starts_with("not an ERP field; expected po_number, order_number,"),
        "{po}"
    );
    assert!(po.contains("or \"\" to leave the B2B field unset"), "{po}");
    assert!(message(
        &errors,
        "sources.erp.mapping.extra_fields.\"ERP Sync Source\""
    )
    .starts_with("not an ERP field"));
    assert!(message(&errors, "sources.erp.mapping.cost_lines.tax").starts_with("must not be empty"));
}

#[test]
fn customer_strategies_check_their_keys() {
    let with = |customers: &str| {
        format!(
            "{}[sources.erp.customers]\n{customers}\n",
            minimal_sources()
        )
    };

    let errors = problems_of(
        &with("strategy = \"static\"\nmap = { \"C-1\" = \"12\", \"C-2\" = \"acme\", \"C-3\" = 0 }"),
        &[],
    );
    assert_eq!(
        keys(&errors),
        [
            "sources.erp.customers.map.C-2",
            "sources.erp.customers.map.C-3"
        ],
        "{errors}"
    );
    assert!(message(&errors, "sources.erp.customers.map.C-2")
        .starts_with("expected a whole number; B2B company ids are whole numbers from 1"));
    assert!(message(&errors, "sources.erp.customers.map.C-3")
        .starts_with("must be a whole number of at least 1 (got 0)"));

    let errors = problems_of(&with("strategy = \"static\""), &[]);
    assert_eq!(keys(&errors), ["sources.erp.customers.map"]);
    assert!(message(&errors, "sources.erp.customers.map")
        .starts_with("missing (required with strategy = \"static\""));

    let errors = problems_of(&with("strategy = \"static\"\nmap = {}\nttl_secs = 60"), &[]);
    assert_eq!(
        keys(&errors),
        [
            "sources.erp.customers.map",
            "sources.erp.customers.ttl_secs"
        ]
    );
    assert!(message(&errors, "sources.erp.customers.map").starts_with("must list at least one"));
    assert!(message(&errors, "sources.erp.customers.ttl_secs")
        .starts_with("only used with strategy = \"company_extra_field\""));

    // The default strategy is "table", which takes neither a map nor a field name.
    let errors = problems_of(&with("map = { \"C-1\" = 1 }\nfield_name = \"x\""), &[]);
    assert_eq!(
        keys(&errors),
        [
            "sources.erp.customers.field_name",
            "sources.erp.customers.map"
        ]
    );
    assert!(message(&errors, "sources.erp.customers.map")
        .starts_with("only used with strategy = \"static\""));

    let errors = problems_of(
        &with("strategy = \"company_extra_field\"\nttl_secs = 59"),
        &[],
    );
    assert_eq!(keys(&errors), ["sources.erp.customers.ttl_secs"]);
    assert!(message(&errors, "sources.erp.customers.ttl_secs")
        .starts_with("must be between 60 and 2592000 (got 59)"));

    let errors = problems_of(&with("strategy = \"lookup\"\nttl_secs = 1"), &[]);
    assert_eq!(
        keys(&errors),
        [
            "sources.erp.customers.strategy",
            "sources.erp.customers.ttl_secs"
        ]
    );
}

#[test]
fn unified_values_are_checked() {
    let text = minimal_sources().replace(
        "credential_id = \"cred_123\"",
        "credential_id = \"\"\npage_size = 1001\n\
         [sources.erp.unified.names]\ninvoices_path = \"/accounting/invoices\"\nlist_field = \"\"\n\
         [sources.erp.unified.retry]\nmax_attempts = 0",
    );
    let errors = problems_of(&text, &[]);
    assert_eq!(
        keys(&errors),
        [
            "sources.erp.unified.credential_id",
            "sources.erp.unified.names.invoices_path",
            "sources.erp.unified.names.list_field",
            "sources.erp.unified.page_size",
            "sources.erp.unified.retry.max_attempts",
        ],
        "{errors}"
    );
    assert!(message(&errors, "sources.erp.unified.names.invoices_path")
        .starts_with("must be relative to base_url"));
    assert!(message(&errors, "sources.erp.unified.page_size")
        .starts_with("must be between 1 and 1000 (got 1001)"));

    let text = minimal_sources().replace(
        "base_url = \"https://api.example-unified.com\"",
        "base_url = \"ftp://api.example-unified.com\"",
    );
    let errors = problems_of(&text, &[]);
    assert!(message(&errors, "sources.erp.unified.base_url").starts_with("must be an http://"));

    let text = minimal_sources().replace("base_url = \"https://api.example-unified.com\"\n", "");
    let errors = problems_of(&text, &[]);
    assert_eq!(keys(&errors), ["sources.erp.unified.base_url"]);

    let text = minimal_sources().replace(
        "[sources.billing.rebillia]",
        "[sources.billing.rebillia]\npage_size = 251",
    );
    let errors = problems_of(&text, &[]);
    assert!(message(&errors, "sources.billing.rebillia.page_size")
        .starts_with("must be between 1 and 250 (got 251)"));
}

#[test]
fn source_secrets_never_appear_in_problems_or_debug() {
    let settings = ok(&minimal_sources(), &[]);
    let debug = format!("{settings:?}");
    assert!(!debug.contains(API_KEY), "{debug}");
    assert!(!debug.contains(SECRET), "{debug}");

    // In the right keys amid other mistakes, in both keys at once, and in the wrong keys.
    let text = format!(
        r#"{MINIMAL}
[sources.erp]
kind = "unified"
store = "{API_KEY}"
[sources.erp.unified]
base_url = "{API_KEY}"
api_key = "{API_KEY}"
api_key_file = "{API_KEY}"
credential_id = "{API_KEY}"
page_size = "{API_KEY}"
[sources.erp.mapping]
timezone = "{API_KEY}"
owned = ["{API_KEY}"]
[sources.erp.mapping.fields]
type = "{API_KEY}"

[sources.billing]
kind = "rebillia"
store = "acme"
[sources.billing.rebillia]
token = "{SECRET} with spaces"
[sources.billing.customers]
strategy = "static"
map = {{ "C-1" = "{SECRET}" }}
"#
    );
    let errors = problems_of(
        &text,
        &[("B2BSYNC__SOURCES__BILLING__OVERLAP_SECS", SECRET)],
    );
    assert!(errors.problems.len() >= 9, "{errors}");
    for rendered in [format!("{errors}"), format!("{errors:?}")] {
        assert!(!rendered.contains(API_KEY), "{rendered}");
        assert!(!rendered.contains(SECRET), "{rendered}");
    }
}

#[test]
fn env_overrides_source_keys() {
    let settings = ok(
        &minimal_sources(),
        &[
            ("B2BSYNC__SOURCES__ERP__OVERLAP_SECS", "60"),
            ("B2BSYNC__SOURCES__ERP__UNIFIED__API_KEY", "from_env"),
            (
                "B2BSYNC__SOURCES__ERP__MAPPING__OWNED",
                "line_items, cost_lines",
            ),
            ("B2BSYNC__SOURCES__ERP__MAPPING__CHANNEL_ID", "3"),
            (
                "B2BSYNC__SOURCES__ERP__MAPPING__EXTRA_FIELDS__ERP_SOURCE",
                "source",
            ),
            ("B2BSYNC__SOURCES__EXPORTS__FILES__READY", "ATOMIC_RENAME"),
        ],
    );
    let erp = source(&settings, "erp");
    assert_eq!(erp.overlap, Duration::from_secs(60));
    assert_eq!(unified_of(erp).api_key.expose_secret(), "from_env");
    assert_eq!(
        erp.mapping.owned,
        [OwnedField::LineItems, OwnedField::CostLines]
    );
    assert_eq!(erp.mapping.channel_id, Some(3));
    // Environment names are lowercased: an extra field name with capitals is file-only.
    assert_eq!(
        erp.mapping.extra_fields.keys().collect::<Vec<_>>(),
        ["erp_source"]
    );
    assert_eq!(
        files_of(source(&settings, "exports")).ready,
        ReadyRule::AtomicRename
    );

    // A bad item of a list from the environment names the variable that set the list.
    let errors = problems_of(
        &minimal_sources(),
        &[("B2BSYNC__SOURCES__ERP__MAPPING__OWNED", "line_items,lines")],
    );
    assert_eq!(keys(&errors), ["sources.erp.mapping.owned[1]"]);
    let msg = message(&errors, "sources.erp.mapping.owned[1]");
    assert!(msg.starts_with("not a field the daemon can own"), "{msg}");
    assert!(
        msg.ends_with("(from environment variable B2BSYNC__SOURCES__ERP__MAPPING__OWNED)"),
        "{msg}"
    );
}

#[test]
fn three_mistakes_across_sources_are_reported_together() {
    let text = minimal_sources()
        .replace(
            "store = \"acme\"\n[sources.erp.unified]",
            "store = \"acme\"\noverlap_secs = 90000\n[sources.erp.unified]",
        )
        .replace(
            "token = \"tok_SECRET_123\"\n\n[sources.exports]",
            "token = \"t\"\npage_size = 0\n\n[sources.exports]",
        )
        .replace(
            "dir = \"/var/lib/b2b-invoice-sync/exports\"",
            "dir = \"/x\"\nready = \"rename\"",
        );
    let errors = problems_of(&text, &[]);
    assert_eq!(
        keys(&errors),
        [
            "sources.billing.rebillia.page_size",
            "sources.erp.overlap_secs",
            "sources.exports.files.ready",
        ],
        "{errors}"
    );
    assert_eq!(errors.to_string().lines().count(), 3);
    assert!(message(&errors, "sources.billing.rebillia.page_size")
        .starts_with("must be between 1 and 250 (got 0)"));
    assert!(message(&errors, "sources.erp.overlap_secs")
        .starts_with("must be between 0 and 86400 (got 90000)"));
    assert!(message(&errors, "sources.exports.files.ready")
        .starts_with("expected one of \"marker\", \"atomic_rename\""));
}

#[test]
fn example_config_documents_one_source_of_each_kind() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let settings = load_with_env(
        &example,
        env(&[("B2BSYNC__SOURCES__ERP_MAIN__OVERLAP_SECS", "60")]),
    )
    .unwrap_or_else(|e| panic!("{}:\n{e}", example.display()));
    let kinds: Vec<(&str, &str)> = settings
        .sources
        .iter()
        .map(|(name, s)| (name.as_str(), s.adapter.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("billing", "rebillia"),
            ("erp_custom", "unified"),
            ("erp_main", "unified"),
            ("exports", "files")
        ]
    );
    // The first source shown is an Alloy one; the custom one spells out every default.
    assert_eq!(
        unified_of(source(&settings, "erp_main")).api.preset,
        UnifiedPreset::Alloy2024_03
    );
    let custom = unified_of(source(&settings, "erp_custom"));
    assert_eq!(custom.api, UnifiedApi::default());
    assert_eq!(custom.names, UnifiedNames::default());
    assert_eq!(
        source(&settings, "erp_main").overlap,
        Duration::from_secs(60)
    );
    assert!(settings.sources.values().all(|s| s.store == "acme"));
}

#[test]
fn payments_default_off_and_load_when_configured() {
    let settings = ok(&minimal_sources(), &[]);
    assert_eq!(
        source(&settings, "erp").payments,
        PaymentSettings::default()
    );
    assert!(!source(&settings, "erp").payments.enabled);

    let text = format!(
        "{}[sources.erp.payments]\nenabled = true\nwrite_back = true\n\
         statuses = [\"processing\", \"completed\", \"completed\"]\nreference_field = \"B2B Ref\"\n",
        minimal_sources()
    );
    let p = ok(&text, &[]).sources["erp"].payments.clone();
    assert!(p.enabled && p.write_back);
    assert_eq!(
        p.statuses,
        [PaymentStatus::Processing, PaymentStatus::Completed]
    );
    assert_eq!(p.reference_field.as_deref(), Some("B2B Ref"));
    // Environment overrides, as for every key.
    let env = ok(
        &minimal_sources(),
        &[
            ("B2BSYNC__SOURCES__ERP__PAYMENTS__ENABLED", "true"),
            (
                "B2BSYNC__SOURCES__ERP__PAYMENTS__STATUSES",
                "completed,awaiting_processing",
            ),
        ],
    );
    assert!(env.sources["erp"].payments.enabled);
    assert_eq!(env.sources["erp"].payments.statuses.len(), 2);
}

#[test]
fn payment_mistakes_are_named_by_key() {
    let text = format!(
        "{}[sources.erp.payments]\nwrite_back = true\n[sources.billing.payments]\n\
         enabled = true\nstatuses = [\"completed\", \"refunded\"]\nmode = \"x\"\n",
        minimal_sources()
    );
    let errors = problems_of(&text, &[]);
    assert_eq!(
        keys(&errors),
        [
            "sources.billing.payments.mode",
            "sources.billing.payments.statuses[1]",
            "sources.erp.payments.write_back",
        ],
        "{errors}"
    );
    assert!(message(&errors, "sources.erp.payments.write_back").contains("needs enabled = true"));
    assert!(
        message(&errors, "sources.billing.payments.statuses[1]").contains("refunds always count")
    );
    // Where the reference can go depends on the adapter.
    let text = format!(
        "{}[sources.billing.payments]\nreference_field = \"memo\"\n\
         [sources.exports.payments]\nreference_field = \"ref\"\n",
        minimal_sources()
    );
    let errors = problems_of(&text, &[]);
    assert_eq!(
        keys(&errors),
        [
            "sources.billing.payments.reference_field",
            "sources.exports.payments.reference_field",
        ],
        "{errors}"
    );
    assert!(message(&errors, "sources.billing.payments.reference_field").contains("comments"));
}

#[test]
fn limits_default_load_when_configured_and_take_overrides() {
    let settings = ok(&minimal_sources(), &[]);
    assert_eq!(source(&settings, "erp").limits, RecordLimits::default());
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let documented = load_with_env(&example, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        source(&documented, "erp_main").limits,
        RecordLimits::default(),
        "example.toml shows the defaults"
    );
    let text = format!(
        "{}[sources.erp.limits]\nmax_amount = \"2500.50\"\nmax_quantity = 40\n\
         max_decimal_places = 0\nnegative_quantities = false\nline_signs_agree = false\n",
        minimal_sources()
    );
    let limits = ok(
        &text,
        &[("B2BSYNC__SOURCES__ERP__LIMITS__NEGATIVE_TOTALS", "false")],
    )
    .sources["erp"]
        .limits
        .clone();
    assert_eq!(
        limits,
        RecordLimits {
            max_amount: rust_decimal::Decimal::new(250_050, 2),
            max_quantity: rust_decimal::Decimal::from(40),
            max_decimal_places: 0,
            negative_quantities: false,
            negative_totals: false,
            line_signs_agree: false,
        }
    );
    let text = format!(
        "{}[sources.erp.limits]\nmax_amount = 0\nmax_quantity = 1.5\n",
        minimal_sources()
    );
    let errors = problems_of(&text, &[]);
    assert_eq!(
        keys(&errors),
        [
            "sources.erp.limits.max_amount",
            "sources.erp.limits.max_quantity"
        ],
        "{errors}"
    );
    assert!(message(&errors, "sources.erp.limits.max_quantity").contains("as a string"));
}

/// The issue's own example: an Alloy source with nothing but the preset, URL and credentials.
fn alloy_source(preset: &str, version: &str, extra: &str) -> String {
    format!(
        r#"{MINIMAL}
[sources.erp_main]
kind = "unified"
store = "acme"
[sources.erp_main.unified]
preset = "{preset}"
base_url = "https://embedded.runalloy.com/{version}/one"
api_key = "{API_KEY}"
credential_id = "cred-alloy-1"
{extra}"#
    )
}

#[test]
fn alloy_presets_fill_paging_ids_customers_and_the_budget() {
    let settings = ok(&alloy_source("alloy-2024-03", "2024-03", ""), &[]);
    let unified = unified_of(source(&settings, "erp_main"));
    assert_eq!(unified.api.preset, UnifiedPreset::Alloy2024_03);
    assert_eq!(unified.api.paging, PagingStyle::PageNumber);
    assert_eq!(unified.api.first_page, 1);
    assert_eq!(unified.api.scan, ScanMode::Full);
    assert_eq!(
        unified.api.customer_lookup,
        Some(Duration::from_secs(86_400))
    );
    assert_eq!(unified.api.requests_per_minute.map(|n| n.get()), Some(150));
    assert_eq!(unified.http.page_size.get(), 100);
    assert_eq!(unified.names.credential_param, "credentialId");
    assert_eq!(unified.names.page_param, "pageNumber");
    assert_eq!(unified.names.limit_param, "pageSize");
    assert_eq!(unified.names.id_field, "id");
    assert_eq!(unified.names.external_id_field, "remoteId");
    assert_eq!(unified.names.customers_path, "accounting/customers");
    assert_eq!(
        unified.base_url.as_str(),
        "https://embedded.runalloy.com/2024-03/one/"
    );

    let settings = ok(
        &alloy_source(
            "alloy-2023-12",
            "2023-12",
            "page_size = 50\nrequests_per_minute = 300\ncustomers_refresh_secs = 3600\n",
        ),
        &[],
    );
    let unified = unified_of(source(&settings, "erp_main"));
    assert_eq!(unified.api.paging, PagingStyle::BodyCursor);
    assert_eq!(unified.names.credential_param, "connectionId");
    assert_eq!(unified.names.cursor_param, "cursor");
    assert_eq!(unified.names.next_cursor_path, "pageInfo.nextCursor");
    assert_eq!(unified.names.has_more_path, "pageInfo.hasNext");
    assert_eq!(unified.http.page_size.get(), 50);
    assert_eq!(unified.api.requests_per_minute.map(|n| n.get()), Some(300));
    assert_eq!(unified.api.customer_lookup, Some(Duration::from_secs(3600)));

    // Without base_url, the version's documented one; the credential parameter may follow
    // the Node SDK's reading of 2024-03.
    let text = alloy_source(
        "alloy-2024-03",
        "2024-03",
        "[sources.erp_main.unified.names]\ncredential_param = \"connectionId\"\n",
    )
    .replace(
        "base_url = \"https://embedded.runalloy.com/2024-03/one\"\n",
        "",
    );
    let settings = ok(&text, &[]);
    let unified = unified_of(source(&settings, "erp_main"));
    assert_eq!(
        unified.base_url.as_str(),
        "https://embedded.runalloy.com/2024-03/one/"
    );
    assert_eq!(unified.names.credential_param, "connectionId");

    // A source without a preset is `custom`, as before presets existed.
    let settings = ok(&minimal_sources(), &[]);
    let unified = unified_of(source(&settings, "erp"));
    assert_eq!(unified.api, UnifiedApi::default());
    assert_eq!(unified.names, UnifiedNames::default());
}

#[test]
fn an_unknown_preset_is_named_with_the_choices_and_nothing_else_is_blamed() {
    let errors = problems_of(
        &alloy_source("alloy-2025-01", "2024-03", "page_size = 100\n"),
        &[],
    );
    assert_eq!(
        keys(&errors),
        ["sources.erp_main.unified.preset"],
        "{errors}"
    );
    assert!(
        message(&errors, "sources.erp_main.unified.preset")
            .starts_with("expected one of \"alloy-2024-03\", \"alloy-2023-12\", \"custom\""),
        "{errors}"
    );
}

#[test]
fn alloy_presets_refuse_what_they_fix_and_alloys_limits() {
    let text = alloy_source(
        "alloy-2024-03",
        "2023-12",
        "page_size = 250\nrequests_per_minute = 0\nscan = \"incremental\"\npaging = \"offset\"\n\
         [sources.erp_main.unified.names]\npage_param = \"page\"\ncredential_param = \"credentialId\"\n",
    );
    let errors = problems_of(&text, &[]);
    assert_eq!(
        keys(&errors),
        [
            "sources.erp_main.unified.base_url",
            "sources.erp_main.unified.names.page_param",
            "sources.erp_main.unified.page_size",
            "sources.erp_main.unified.paging",
            "sources.erp_main.unified.requests_per_minute",
            "sources.erp_main.unified.scan",
        ],
        "{errors}"
    );
    assert!(message(&errors, "sources.erp_main.unified.base_url")
        .starts_with("names Alloy API version 2023-12, but preset = \"alloy-2024-03\""));
    assert!(message(&errors, "sources.erp_main.unified.page_size")
        .starts_with("must be between 1 and 100 (got 250)"));
    assert!(
        message(&errors, "sources.erp_main.unified.requests_per_minute")
            .contains("Alloy limits every connection")
    );
    for key in ["scan", "paging", "names.page_param"] {
        assert!(
            message(&errors, &format!("sources.erp_main.unified.{key}"))
                .starts_with("fixed by preset = \"alloy-2024-03\""),
            "{key}: {errors}"
        );
    }
}

#[test]
fn custom_sources_choose_paging_scan_ids_and_customer_lookup() {
    let text = minimal_sources().replace(
        "credential_id = \"cred_123\"",
        "credential_id = \"cred_123\"\npreset = \"custom\"\npaging = \"page_number\"\nfirst_page = 0\n\
         scan = \"full\"\ncustomer_lookup = true\ncustomers_refresh_secs = 600\nrequests_per_minute = 90\n\
         [sources.erp.unified.names]\npage_param = \"p\"\nid_field = \"uuid\"\nexternal_id_field = \"number\"\n\
         has_more_path = \"meta.more\"\ncustomers_path = \"crm/clients\"\ncustomer_name_field = \"name\"",
    );
    let settings = ok(&text, &[]);
    let unified = unified_of(source(&settings, "erp"));
    assert_eq!(
        unified.api,
        UnifiedApi {
            preset: UnifiedPreset::Custom,
            paging: PagingStyle::PageNumber,
            first_page: 0,
            scan: ScanMode::Full,
            customer_lookup: Some(Duration::from_secs(600)),
            requests_per_minute: std::num::NonZeroU32::new(90),
        }
    );
    assert_eq!(unified.names.page_param, "p");
    assert_eq!(unified.names.id_field, "uuid");
    assert_eq!(unified.names.external_id_field, "number");
    assert_eq!(unified.names.has_more_path, "meta.more");
    assert_eq!(unified.names.customers_path, "crm/clients");
    assert_eq!(unified.names.customer_name_field, "name");

    let text = minimal_sources().replace(
        "credential_id = \"cred_123\"",
        "credential_id = \"cred_123\"\nfirst_page = 2\ncustomers_refresh_secs = 600\npaging = \"pages\"\n\
         [sources.erp.unified.names]\nnext_cursor_path = \"pageInfo..next\"",
    );
    let errors = problems_of(&text, &[]);
    assert_eq!(
        keys(&errors),
        [
            "sources.erp.unified.names.next_cursor_path",
            "sources.erp.unified.paging",
        ],
        "{errors}"
    );
    let text = minimal_sources().replace(
        "credential_id = \"cred_123\"",
        "credential_id = \"cred_123\"\nfirst_page = 2\ncustomers_refresh_secs = 600",
    );
    let errors = problems_of(&text, &[]);
    assert_eq!(
        keys(&errors),
        ["sources.erp.unified.customers_refresh_secs"],
        "{errors}"
    );
}

#[test]
fn rebillia_amount_unit_is_auto_cents_or_dollars() {
    let unit = |settings: &Settings| rebillia_of(source(settings, "billing")).amount_unit;
    assert_eq!(
        unit(&ok(&minimal_sources(), &[])),
        RebilliaAmountUnit::Auto,
        "auto when unset"
    );
    for (written, want) in [
        ("auto", RebilliaAmountUnit::Auto),
        ("cents", RebilliaAmountUnit::Cents),
        ("Dollars", RebilliaAmountUnit::Dollars),
    ] {
        let text = minimal_sources().replace(
            "[sources.billing.rebillia]",
            &format!("[sources.billing.rebillia]\namount_unit = \"{written}\""),
        );
        assert_eq!(unit(&ok(&text, &[])), want, "{written}");
        assert_eq!(want.name(), written.to_lowercase());
    }
    let from_env = ok(
        &minimal_sources(),
        &[(
            "B2BSYNC__SOURCES__BILLING__REBILLIA__AMOUNT_UNIT",
            "dollars",
        )],
    );
    assert_eq!(unit(&from_env), RebilliaAmountUnit::Dollars);

    let text = minimal_sources().replace(
        "[sources.billing.rebillia]",
        "[sources.billing.rebillia]\namount_unit = \"euros\"",
    );
    let errors = problems_of(&text, &[]);
    assert_eq!(keys(&errors), ["sources.billing.rebillia.amount_unit"]);
    assert!(
        message(&errors, "sources.billing.rebillia.amount_unit")
            .starts_with("expected one of \"auto\", \"cents\", \"dollars\""),
        "{errors}"
    );
    // Only Rebillia has it: an unknown key anywhere else.
    let text = minimal_sources().replace(
        "[sources.erp.unified]",
        "[sources.erp.unified]\namount_unit = \"cents\"",
    );
    let errors = problems_of(&text, &[]);
    assert_eq!(keys(&errors), ["sources.erp.unified.amount_unit"]);
}

#[test]
fn a_reconcile_schedule_is_optional_and_read_in_the_sources_time_zone() {
    let settings = ok(&minimal_sources(), &[]);
    assert_eq!(source(&settings, "erp").reconcile_schedule, None);
    let text = minimal_sources().replace(
        "kind = \"unified\"\nstore = \"acme\"",
        "kind = \"unified\"\nstore = \"acme\"\nschedule_timezone = \"Europe/Berlin\"\nreconcile_schedule = \"0 6 1 * *\"",
    );
    let settings = ok(&text, &[]);
    let schedule = source(&settings, "erp")
        .reconcile_schedule
        .clone()
        .expect("a reconcile schedule");
    assert_eq!(schedule.expression(), "0 6 1 * *");
    assert_eq!(schedule.timezone().to_string(), "Europe/Berlin");
    let bad = minimal_sources().replace(
        "kind = \"unified\"\nstore = \"acme\"",
        "kind = \"unified\"\nstore = \"acme\"\nreconcile_schedule = \"every month\"",
    );
    let errors = problems_of(&bad, &[]);
    assert_eq!(keys(&errors), vec!["sources.erp.reconcile_schedule"]);
    let files = minimal_sources().replace(
        "kind = \"files\"\nstore = \"acme\"",
        "kind = \"files\"\nstore = \"acme\"\nreconcile_schedule = \"0 6 * * *\"",
    );
    let errors = problems_of(&files, &[]);
    assert_eq!(keys(&errors), vec!["sources.exports.reconcile_schedule"]);
    assert!(message(&errors, "sources.exports.reconcile_schedule").contains("files source"));
}
