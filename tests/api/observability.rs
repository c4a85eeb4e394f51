//! The alert rules and the Grafana dashboard under `deploy/` against what the daemon exports.
//!
//! - The rules get what `promtool check rules` checks, offline: the groups and rules are well
//!   formed, every expression parses as PromQL (`promql-parser`), durations parse, templates in
//!   labels and annotations are balanced and use only `$labels`, `$value` and known functions.
//! - Every PromQL expression of the rules and of the dashboard names only series the daemon
//!   exports (or a rule records, or Prometheus and kube-state-metrics provide), with the labels
//!   the daemon gives them, and a histogram only through `_bucket`, `_sum` and `_count`.
//!
//! What the daemon exports is read from the source, not from a list kept here: the names are the
//! constants of `src/telemetry_metrics.rs`, their kinds and labels come from the `metrics`
//! macros in `src/` that emit them. A metric renamed or removed there fails these tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use b2b_invoice_sync::telemetry_metrics as m;
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self, Expr, VectorSelector};
use promql_parser::util::{walk_expr, ExprVisitor};
use serde::Deserialize;
use serde_json::Value as Json;
use serde_norway::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const RULES: &str = "deploy/kubernetes/prometheus-rules.yaml";
const DASHBOARD: &str = "deploy/grafana/b2b-invoice-sync.json";
const DOCS: &str = "docs/deployment.md";
/// Series that exist without the daemon: Prometheus's own, and kube-state-metrics'.
const EXTERNAL: &[(&str, &[&str])] = &[
    ("up", &["job", "instance"]),
    (
        "kube_deployment_status_replicas_unavailable",
        &["namespace", "deployment"],
    ),
];
/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: &[&str] = &[
    "job",
    "instance",
    "namespace",
    "pod",
    "container",
    "service",
];
/// Functions a rule template may call (Prometheus's template functions).
const TEMPLATE_FUNCTIONS: &[&str] = &[
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "printf",
    "title",
    "toUpper",
    "toLower",
    "query",
    "first",
    "value",
    "label",
    "reReplaceAll",
    "match",
    "stripPort",
    "graphLink",
    "tableLink",
];

// ---------------------------------------------------------------------------------------------
// What the daemon exports

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug, Default)]
struct Metric {
    kind: Option<Kind>,
    /// The label names of every emission site.
    labels: BTreeSet<String>,
    /// An emission site passes its labels in a form this reader cannot follow.
    labels_unknown: bool,
    /// Emission sites found (none: emitted through a variable, labels unknown).
    sites: usize,
}

impl Metric {
    fn labels(&self) -> Option<&BTreeSet<String>> {
        (!self.labels_unknown && self.sites > 0).then_some(&self.labels)
    }
}

/// The daemon's metric names from `src/telemetry_metrics.rs`, with kinds and labels from the
/// `metrics::{counter,gauge,histogram}!` calls in `src/`.
fn exported() -> BTreeMap<String, Metric> {
    let source = read("src/telemetry_metrics.rs");
    let mut constants = BTreeMap::new();
    for line in source.lines() {
        let Some(rest) = line.trim().strip_prefix("pub const ") else {
            continue;
        };
        let Some((ident, value)) = rest.split_once(": &str = ") else {
            continue;
        };
        let name = value.trim_end_matches(';').trim_matches('"');
        constants.insert(ident.trim().to_owned(), name.to_owned());
    }
    let mut metrics: BTreeMap<String, Metric> = constants
        .values()
        .filter(|n| n.starts_with("b2bsync_"))
        .map(|n| (n.clone(), Metric::default()))
        .collect();
    assert!(
        metrics.len() >= 10,
        "src/telemetry_metrics.rs: found only {metrics:?}"
    );

    let mut sites = 0;
    for file in rust_files(&root().join("src")) {
        let text = std::fs::read_to_string(&file).expect("read a source file");
        for (kind, mac) in [
            (Kind::Counter, "counter!("),
            (Kind::Gauge, "gauge!("),
            (Kind::Histogram, "histogram!("),
        ] {
            for (at, _) in text.match_indices(mac) {
                if text[..at].ends_with("absolute_") {
                    continue;
                }
                // `describe_*!` gives the kind (and no labels) of what may be emitted elsewhere
                // through a variable.
                let described = text[..at].ends_with("describe_");
                let Some(args) = macro_args(&text[at + mac.len()..]) else {
                    continue;
                };
                let Some(first) = args.first() else { continue };
                let name = if first.starts_with('"') {
                    first.trim_matches('"').to_owned()
                } else {
                    let ident = first.rsplit("::").next().unwrap_or_default().trim();
                    match constants.get(ident) {
                        Some(name) => name.clone(),
                        None => continue,
                    }
                };
                let Some(metric) = metrics.get_mut(&name) else {
                    continue;
                };
                assert!(
                    metric.kind.is_none() || metric.kind == Some(kind),
                    "{name} is emitted as two kinds ({:?} and {kind:?}), in {}",
                    metric.kind,
                    file.display()
                );
                metric.kind = Some(kind);
                if described {
                    continue;
                }
                sites += 1;
                metric.sites += 1;
                let labels: Option<BTreeSet<String>> = args[1..]
                    .iter()
                    .map(|arg| {
                        let (label, _) = arg.split_once("=>")?;
                        let label = label.trim();
                        (label.len() >= 2 && label.starts_with('"') && label.ends_with('"'))
                            .then(|| label.trim_matches('"').to_owned())
                    })
                    .collect();
                match labels {
                    Some(labels) => metric.labels.extend(labels),
                    None => metric.labels_unknown = true,
                }
            }
        }
    }
    assert!(
        sites >= 10,
        "found only {sites} metric emission sites in src/"
    );

    // What the recorder renders at start-up: the build info and the process metrics (named by
    // the metrics-process crate, not by a constant).
    let handle = m::install().expect("install the Prometheus recorder");
    m::collect_process();
    let text = handle.render();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let Some((name, kind)) = rest.split_once(' ') else {
            continue;
        };
        let kind = match kind.trim() {
            "counter" => Kind::Counter,
            "gauge" => Kind::Gauge,
            "histogram" => Kind::Histogram,
            _ => continue,
        };
        let labels: BTreeSet<String> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")))
            .flat_map(|l| {
                let inside = l[name.len() + 1..].split('}').next().unwrap_or_default();
                inside
                    .split(',')
                    .filter_map(|pair| pair.split_once('=').map(|(k, _)| k.trim().to_owned()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let metric = metrics.entry(name.to_owned()).or_default();
        assert!(
            metric.kind.is_none() || metric.kind == Some(kind),
            "{name} renders as a {kind:?} but src/ emits it as a {:?}",
            metric.kind
        );
        metric.kind = Some(kind);
        if metric.sites == 0 {
            metric.labels = labels;
            metric.sites = 1;
        }
    }
    metrics
}

/// The top-level, comma-separated arguments of a macro call, given the text after its `(`.
fn macro_args(text: &str) -> Option<Vec<String>> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut args = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if in_string {
            current.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                current.push(c);
            }
            '(' | '[' | '{' => {
                depth += 1;
                current.push(c);
            }
            ')' | ']' | '}' if depth == 0 => {
                args.push(current.trim().to_owned());
                return Some(args.into_iter().filter(|a| !a.is_empty()).collect());
            }
            ')' | ']' | '}' => {
                depth -= 1;
                current.push(c);
            }
            ',' if depth == 0 => args.push(std::mem::take(&mut current).trim().to_owned()),
            _ => current.push(c),
        }
    }
    None
}

#[test]
fn the_documented_metric_list_is_what_the_daemon_exports() {
    let exported = exported();
    let known = exported.values().filter(|m| m.kind.is_some()).count();
    assert!(
        known * 2 > exported.len(),
        "the kinds of most metrics should be readable from src/: {exported:?}"
    );
    // docs/deployment.md's table names each of the daemon's own, with its kind where the code
    // shows it (the process_* metrics share one row).
    let docs = read(DOCS);
    assert!(
        docs.contains("| `process_*` |"),
        "{DOCS}: no row for process_*"
    );
    for (name, metric) in exported.iter().filter(|(n, _)| n.starts_with("b2bsync_")) {
        let row = docs
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("{DOCS}: no row for {name} in the metrics table"));
        let kind = match metric.kind {
            Some(Kind::Counter) => "counter",
            Some(Kind::Gauge) => "gauge",
            Some(Kind::Histogram) => "histogram",
            None => continue,
        };
        assert!(
            row.contains(&format!("| {kind} |")),
            "{DOCS}: {name} is a {kind}: {row}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// PromQL against the exports

/// Grafana's interval variables, replaced by a duration so that the query parses.
fn without_grafana_variables(expr: &str) -> String {
    let mut out = expr.to_owned();
    for variable in [
        "${__rate_interval}",
        "$__rate_interval",
        "${__interval}",
        "$__interval",
        "${__range}",
        "$__range",
    ] {
        out = out.replace(variable, "5m");
    }
    out
}

/// Every series selector of an expression, range selectors' included.
struct Selectors(Vec<VectorSelector>);

impl Selectors {
    fn of(expr: &Expr) -> Vec<VectorSelector> {
        let mut visitor = Selectors(Vec::new());
        match walk_expr(&mut visitor, expr) {
            Ok(_) => visitor.0,
            Err(never) => match never {},
        }
    }
}

impl ExprVisitor for Selectors {
    type Error = std::convert::Infallible;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
        match expr {
            Expr::VectorSelector(vs) => self.0.push(vs.clone()),
            Expr::MatrixSelector(ms) => self.0.push(ms.vs.clone()),
            _ => {}
        }
        Ok(true)
    }
}

/// Parses `expr` and checks each series it selects; returns the daemon's metrics it uses.
fn check_promql(
    expr: &str,
    origin: &str,
    exported: &BTreeMap<String, Metric>,
    recorded: &BTreeSet<String>,
    problems: &mut Vec<String>,
) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let parsed = match parser::parse(&without_grafana_variables(expr)) {
        Ok(parsed) => parsed,
        Err(e) => {
            problems.push(format!(
                "{origin}: does not parse as PromQL: {e}\n    {expr}"
            ));
            return used;
        }
    };
    if !matches!(parsed.value_type(), ValueType::Vector | ValueType::Scalar) {
        problems.push(format!(
            "{origin}: evaluates to a {}, not an instant vector: {expr}",
            parsed.value_type()
        ));
    }
    for selector in Selectors::of(&parsed) {
        let name = selector.name.clone().or_else(|| {
            selector
                .matchers
                .matchers
                .iter()
                .find(|m| m.name == "__name__")
                .map(|m| m.value.clone())
        });
        let Some(name) = name else {
            problems.push(format!(
                "{origin}: a selector without a metric name: {expr}"
            ));
            continue;
        };
        let matchers: Vec<&str> = selector
            .matchers
            .matchers
            .iter()
            .map(|m| m.name.as_str())
            .filter(|n| *n != "__name__")
            .collect();
        if recorded.contains(&name) {
            continue;
        }
        if let Some((_, labels)) = EXTERNAL.iter().find(|(n, _)| *n == name) {
            for label in &matchers {
                if !labels.contains(label) && !TARGET_LABELS.contains(label) {
                    problems.push(format!("{origin}: {name} has no label {label}"));
                }
            }
            continue;
        }
        let histogram_part = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix).map(|base| (base, *suffix)));
        let (base, suffix) = match (exported.get(&name), histogram_part) {
            (Some(_), _) => (name.as_str(), None),
            (None, Some((base, suffix))) if exported.contains_key(base) => (base, Some(suffix)),
            _ => {
                problems.push(format!(
                    "{origin}: {name} is not a metric the daemon exports (src/telemetry_metrics.rs)"
                ));
                continue;
            }
        };
        let metric = &exported[base];
        match (metric.kind, suffix) {
            (Some(Kind::Histogram), None) => problems.push(format!(
                "{origin}: {name} is a histogram: select {name}_bucket, _sum or _count"
            )),
            (Some(kind), Some(suffix)) if kind != Kind::Histogram => problems.push(format!(
                "{origin}: {name}: {base} is a {kind:?}, it has no {suffix} series"
            )),
            _ => {}
        }
        if let Some(labels) = metric.labels() {
            for label in &matchers {
                let le = *label == "le" && suffix == Some("_bucket");
                if !labels.contains(*label) && !TARGET_LABELS.contains(label) && !le {
                    problems.push(format!(
                        "{origin}: {base} has no label {label} (it has {labels:?})"
                    ));
                }
            }
        }
        used.insert(base.to_owned());
    }
    used
}

// ---------------------------------------------------------------------------------------------
// Alert and recording rules: `promtool check rules`, offline

#[test]
fn the_alert_rules_pass_a_promtool_check_rules_equivalent() {
    let exported = exported();
    let rule = load_yaml(RULES);
    assert_eq!(
        rule.get("kind").and_then(Value::as_str),
        Some("PrometheusRule")
    );
    let groups = rule
        .get("spec")
        .and_then(|s| s.get("groups"))
        .and_then(Value::as_sequence)
        .expect("spec.groups is a list");
    let problems = check_rule_groups(groups, &exported);
    assert!(problems.is_empty(), "{RULES}:\n  {}", problems.join("\n  "));
}

#[test]
fn the_rule_check_finds_what_promtool_would() {
    // The check above must be able to fail: each broken group is refused, for its reason.
    let exported = exported();
    let cases = [
        ("expr: rate(b2bsync_cycles_total[5m]", "does not parse"),
        ("expr: b2bsync_cycle_total > 0", "not a metric the daemon exports"),
        ("expr: b2bsync_cycle_duration_seconds > 1", "is a histogram"),
        ("expr: b2bsync_dead_letters_bucket > 1", "has no _bucket"),
        ("expr: b2bsync_dead_letters{store=\"x\"} > 0", "has no label store"),
        ("expr: b2bsync_dead_letters > 0\n      for: 5 minutes", "for: not a duration"),
        (
            "expr: b2bsync_dead_letters > 0\n      annotations:\n        summary: \"{{ $labels.source }\"",
            "unbalanced",
        ),
        (
            "expr: max by (source) (b2bsync_dead_letters) > 0\n      annotations:\n        summary: \"{{ $labels.store }}\"",
            "$labels.store",
        ),
        (
            "expr: b2bsync_dead_letters > 0\n      annotations:\n        summary: \"{{ .Labels.source }}\"",
            "template",
        ),
    ];
    for (rule, reason) in cases {
        let yaml = format!("- name: g\n  rules:\n    - alert: A\n      {rule}\n");
        let groups: Value = serde_norway::from_str(&yaml).expect("test YAML");
        let groups = groups.as_sequence().expect("a list");
        let problems = check_rule_groups(groups, &exported);
        assert!(
            problems.iter().any(|p| p.contains(reason)),
            "{rule:?}: expected a problem with {reason:?}, got {problems:?}"
        );
    }
    let yaml = "- name: g\n  rules:\n    - record: 'not a name'\n      expr: vector(1)\n\
                \n- name: g\n  rules:\n    - record: ok:x\n      expr: vector(1)\n      for: 5m\n";
    let groups: Value = serde_norway::from_str(yaml).expect("test YAML");
    let problems = check_rule_groups(groups.as_sequence().expect("a list"), &exported);
    for reason in [
        "not a valid metric name",
        "group name g appears twice",
        "a recording rule has no for",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(reason)),
            "expected {reason:?} in {problems:?}"
        );
    }
}

/// What `promtool check rules` (Prometheus's `rulefmt`) refuses, and the metric checks above.
fn check_rule_groups(groups: &[Value], exported: &BTreeMap<String, Metric>) -> Vec<String> {
    let mut problems = Vec::new();
    let recorded: BTreeSet<String> = groups
        .iter()
        .filter_map(|g| g.get("rules").and_then(Value::as_sequence))
        .flatten()
        .filter_map(|r| r.get("record").and_then(Value::as_str).map(str::to_owned))
        .collect();
    let mut group_names = BTreeSet::new();
    for group in groups {
        let name = group
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if name.is_empty() {
            problems.push("a group without a name".to_owned());
        } else if !group_names.insert(name.to_owned()) {
            problems.push(format!("group name {name} appears twice"));
        }
        for key in ["interval", "query_offset"] {
            if let Some(value) = group.get(key) {
                check_duration(value, &format!("group {name}: {key}"), &mut problems);
            }
        }
        let Some(rules) = group.get("rules").and_then(Value::as_sequence) else {
            problems.push(format!("group {name}: no list of rules"));
            continue;
        };
        for (i, rule) in rules.iter().enumerate() {
            check_rule(
                rule,
                &format!("group {name}, rule {i}"),
                exported,
                &recorded,
                &mut problems,
            );
        }
    }
    problems
}

fn check_rule(
    rule: &Value,
    origin: &str,
    exported: &BTreeMap<String, Metric>,
    recorded: &BTreeSet<String>,
    problems: &mut Vec<String>,
) {
    let Some(map) = rule.as_mapping() else {
        problems.push(format!("{origin}: not a mapping"));
        return;
    };
    for key in map.keys() {
        let key = key.as_str().unwrap_or_default();
        if ![
            "record",
            "alert",
            "expr",
            "for",
            "keep_firing_for",
            "labels",
            "annotations",
        ]
        .contains(&key)
        {
            problems.push(format!("{origin}: unknown field {key}"));
        }
    }
    let record = rule.get("record").and_then(Value::as_str);
    let alert = rule.get("alert").and_then(Value::as_str);
    let origin = match (record, alert) {
        (Some(r), None) => {
            if !is_metric_name(r) {
                problems.push(format!("{origin}: record {r:?} is not a valid metric name"));
            }
            for key in ["for", "keep_firing_for", "annotations"] {
                if rule.get(key).is_some() {
                    problems.push(format!("{origin} ({r}): a recording rule has no {key}"));
                }
            }
            format!("{origin} ({r})")
        }
        (None, Some(a)) if !a.is_empty() => format!("{origin} ({a})"),
        _ => {
            problems.push(format!(
                "{origin}: exactly one of record and alert is needed"
            ));
            return;
        }
    };
    let expr = rule.get("expr").and_then(Value::as_str).unwrap_or_default();
    if expr.trim().is_empty() {
        problems.push(format!("{origin}: no expr"));
        return;
    }
    check_promql(expr, &origin, exported, recorded, problems);
    for key in ["for", "keep_firing_for"] {
        if let Some(value) = rule.get(key) {
            check_duration(value, &format!("{origin}: {key}"), problems);
        }
    }
    for key in ["labels", "annotations"] {
        let Some(values) = rule.get(key) else {
            continue;
        };
        let Some(values) = values.as_mapping() else {
            problems.push(format!("{origin}: {key} is not a mapping"));
            continue;
        };
        for (name, value) in values {
            let name = name.as_str().unwrap_or_default();
            if !is_label_name(name) || name.starts_with("__") {
                problems.push(format!(
                    "{origin}: {key}: {name:?} is not a valid label name"
                ));
            }
            let Some(value) = value.as_str() else {
                problems.push(format!("{origin}: {key}.{name} is not a string"));
                continue;
            };
            check_template(value, expr, &format!("{origin}: {key}.{name}"), problems);
        }
    }
}

fn check_duration(value: &Value, origin: &str, problems: &mut Vec<String>) {
    let text = value.as_str().unwrap_or_default();
    if promql_parser::util::parse_duration(text).is_err() {
        problems.push(format!("{origin}: not a duration: {value:?}"));
    }
}

/// A Go template as Prometheus fills it in: balanced `{{ }}`, and each action uses only
/// `$labels.NAME`, `$value`, `$externalLabels.NAME`, `$externalURL`, strings, numbers and
/// Prometheus's template functions. A `$labels.NAME` must be a label the expression keeps.
fn check_template(text: &str, expr: &str, origin: &str, problems: &mut Vec<String>) {
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            problems.push(format!("{origin}: unbalanced {{{{ in {text:?}"));
            return;
        };
        let action = &rest[start + 2..start + 2 + len];
        if action.contains("{{") {
            problems.push(format!("{origin}: unbalanced {{{{ in {text:?}"));
            return;
        }
        let action = action.trim().trim_start_matches('-').trim_end_matches('-');
        for token in action.split_whitespace() {
            let token = token.trim_matches(|c| c == '(' || c == ')');
            let ok = if let Some(label) = token.strip_prefix("$labels.") {
                if !expr.contains(label) {
                    problems.push(format!(
                        "{origin}: $labels.{label}: the expression keeps no label {label}"
                    ));
                }
                is_label_name(label)
            } else {
                token == "$value"
                    || token == "$externalURL"
                    || token == "|"
                    || token
                        .strip_prefix("$externalLabels.")
                        .is_some_and(is_label_name)
                    || TEMPLATE_FUNCTIONS.contains(&token)
                    || (token.starts_with('"') && token.ends_with('"'))
                    || token.parse::<f64>().is_ok()
            };
            if !ok {
                problems.push(format!(
                    "{origin}: template action {{{{ {action} }}}}: {token:?} is not something a Prometheus template knows"
                ));
            }
        }
        rest = &rest[start + 2 + len + 2..];
    }
    if rest.contains("}}") {
        problems.push(format!("{origin}: unbalanced }}}} in {text:?}"));
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

// ---------------------------------------------------------------------------------------------
// The Grafana dashboard

#[test]
fn the_grafana_dashboard_queries_only_what_the_daemon_exports() {
    let exported = exported();
    let dashboard = dashboard();
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();

    for key in ["title", "uid"] {
        assert!(
            dashboard[key].as_str().is_some_and(|s| !s.is_empty()),
            "the dashboard has no {key}"
        );
    }
    assert!(dashboard["schemaVersion"].as_u64().is_some());

    // Variables: a Prometheus data source picked at import, and label_values() queries.
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list");
    let datasource = variables
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a data source variable, so that no data source uid is hard-coded");
    assert_eq!(datasource["query"], "prometheus");
    let datasource_ref = format!("${{{}}}", datasource["name"].as_str().unwrap_or_default());
    let mut variable_names = BTreeSet::new();
    for variable in variables {
        let name = variable["name"].as_str().unwrap_or_default().to_owned();
        assert!(variable_names.insert(name.clone()), "variable {name} twice");
        if variable["type"] != "query" {
            continue;
        }
        let query = variable["query"]["query"]
            .as_str()
            .or_else(|| variable["query"].as_str())
            .unwrap_or_default();
        let args = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {name}: not label_values(METRIC, LABEL): {query}"));
        let (selector, label) = args
            .rsplit_once(',')
            .unwrap_or_else(|| panic!("variable {name}: label_values needs a metric: {query}"));
        let origin = format!("variable {name}");
        let metrics = check_promql(
            selector.trim(),
            &origin,
            &exported,
            &BTreeSet::new(),
            &mut problems,
        );
        for metric in metrics {
            if let Some(labels) = exported[&metric].labels() {
                assert!(
                    labels.contains(label.trim()) || TARGET_LABELS.contains(&label.trim()),
                    "{origin}: {metric} has no label {}",
                    label.trim()
                );
            }
        }
        assert_eq!(
            variable["datasource"]["uid"],
            datasource_ref.as_str(),
            "{origin}"
        );
    }

    // Panels, rows' collapsed panels included.
    let panels = all_panels(&dashboard);
    assert!(panels.len() >= 10, "few panels: {}", panels.len());
    let mut ids = BTreeSet::new();
    for panel in &panels {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "a panel without a title: {panel}");
        let id = panel["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("{title}: no id"));
        assert!(ids.insert(id), "panel id {id} twice ({title})");
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64(), grid["w"].as_u64());
        assert!(
            matches!((x, w), (Some(x), Some(w)) if x + w <= 24) && grid["h"].as_u64().is_some(),
            "{title}: gridPos {grid}"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"],
            datasource_ref.as_str(),
            "{title}"
        );
        let targets = panel["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        assert!(!targets.is_empty(), "{title}: no query");
        let mut refs = BTreeSet::new();
        for target in targets {
            let reference = target["refId"].as_str().unwrap_or_default();
            assert!(
                refs.insert(reference.to_owned()),
                "{title}: refId {reference} twice"
            );
            let expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("{title}: a query without expr"));
            // Every $variable a query uses must be defined.
            for word in expr.split('$').skip(1) {
                let name: String = word
                    .trim_start_matches('{')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    name.starts_with("__") || variable_names.contains(&name),
                    "{title}: ${name} is no variable of the dashboard"
                );
            }
            let origin = format!("panel {title:?} {reference}");
            used.extend(check_promql(
                expr,
                &origin,
                &exported,
                &BTreeSet::new(),
                &mut problems,
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{DASHBOARD}:\n  {}",
        problems.join("\n  ")
    );

    // What an operator looks at first, each on the dashboard.
    for (topic, metrics) in [
        ("cycles", &[m::CYCLES, m::CYCLE_DURATION][..]),
        ("invoices by action", &[m::INVOICES]),
        ("B2B budget use", &[m::BUDGET_GRANTED, m::BUDGET_RPM]),
        ("B2B 429s", &[m::B2B_RATE_LIMITED]),
        (
            "failures and dead letters",
            &[m::FAILURES_PENDING, m::DEAD_LETTERS],
        ),
        ("staleness", &[m::LAST_SUCCESS_AGE, m::OLDEST_UNSYNCED_AGE]),
        (
            "the process",
            &[
                "process_cpu_seconds_total",
                "process_resident_memory_bytes",
                m::BUILD_INFO,
            ],
        ),
        (
            "payments",
            &[
                m::PAYMENTS_DETECTED,
                m::PAYMENTS_WRITTEN,
                m::PAYMENTS_FAILED,
                m::PAYMENTS_PENDING,
                m::PAYMENTS_STUCK,
            ],
        ),
    ] {
        for metric in metrics {
            assert!(
                used.contains(*metric),
                "the dashboard shows no {metric} ({topic})"
            );
        }
    }
    let by_action = panels.iter().any(|p| {
        p["targets"].as_array().is_some_and(|targets| {
            targets.iter().any(|t| {
                t["expr"]
                    .as_str()
                    .is_some_and(|e| e.contains(m::INVOICES) && e.contains("by (action"))
            })
        })
    });
    assert!(by_action, "no panel splits {} by action", m::INVOICES);
}

#[test]
fn the_dashboard_check_fails_on_a_renamed_metric() {
    let exported = exported();
    let mut problems = Vec::new();
    let used = check_promql(
        "sum by (source) (increase(b2bsync_cycles_total{source=~\"$source\"}[$__rate_interval]))",
        "ok",
        &exported,
        &BTreeSet::new(),
        &mut problems,
    );
    assert!(problems.is_empty(), "{problems:?}");
    assert!(used.contains(m::CYCLES));
    for (expr, reason) in [
        ("b2bsync_cycle_total", "not a metric the daemon exports"),
        ("rate(b2bsync_cycles_total)", "does not parse"),
        (
            "b2bsync_b2b_requests_total{source=\"x\"}",
            "has no label source",
        ),
        ("b2bsync_cycles_total[5m]", "not an instant vector"),
    ] {
        let mut problems = Vec::new();
        check_promql(expr, "case", &exported, &BTreeSet::new(), &mut problems);
        assert!(
            problems.iter().any(|p| p.contains(reason)),
            "{expr}: expected {reason:?}, got {problems:?}"
        );
    }
}

#[test]
fn the_docs_describe_the_dashboard() {
    let docs = read(DOCS);
    assert!(docs.contains(DASHBOARD), "{DOCS} does not name {DASHBOARD}");
    for panel in all_panels(&dashboard()) {
        if panel["type"] == "row" {
            let title = panel["title"].as_str().unwrap_or_default();
            assert!(
                docs.contains(&format!("**{title}**")),
                "{DOCS} does not describe the dashboard's row {title:?}"
            );
        }
    }
}

fn dashboard() -> Json {
    serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD}: not JSON: {e}"))
}

/// Every panel, with the panels of collapsed rows.
fn all_panels(dashboard: &Json) -> Vec<Json> {
    let mut out = Vec::new();
    for panel in dashboard["panels"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        out.push(panel.clone());
        if let Some(inner) = panel["panels"].as_array() {
            out.extend(inner.iter().cloned());
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn root() -> PathBuf {
    PathBuf::from(ROOT)
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn load_yaml(relative: &str) -> Value {
    let text = read(relative);
    let mut docs: Vec<Value> = serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{relative}: {e}")))
        .filter(|doc| !doc.is_null())
        .collect();
    assert_eq!(docs.len(), 1, "{relative}: one document expected");
    docs.remove(0)
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}
