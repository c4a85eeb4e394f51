//! The deployment files under `deploy/`: the Kubernetes manifests, the systemd unit and the
//! Dockerfile agree with each other, with the config loader and with `docs/deployment.md`.
//! File checks only, plus `kubectl kustomize` and `systemd-analyze` when they are installed
//! (both work offline); no network, no cluster, no Docker.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use b2b_invoice_sync::config::{load_with_env, Settings};
use serde::Deserialize;
use serde_norway::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const BIN: &str = env!("CARGO_BIN_EXE_b2b-invoice-sync");
const KUBERNETES: &str = "deploy/kubernetes";
const UNIT: &str = "deploy/systemd/b2b-invoice-sync.service";
/// Where the pods see the Secret's keys as files, and systemd puts the unit's credentials.
const SECRET_DIR: &str = "/var/run/secrets/b2b-invoice-sync/";
const CREDENTIALS_DIR: &str = "/run/credentials/b2b-invoice-sync.service/";
const CONFIG_PATH: &str = "/etc/b2b-invoice-sync/config.toml";
const HTTP_PORT: u64 = 9464;
/// Manifests that need the Prometheus Operator's CRDs: present, but not applied by default.
const OPT_IN: &[&str] = &["servicemonitor.yaml", "prometheus-rules.yaml"];
/// The oldest Kubernetes the manifests work on, as docs/deployment.md states it: the
/// PodDisruptionBudget's `unhealthyPodEvictionPolicy` is beta, on by default, from 1.27 (1.26 has
/// it as alpha, behind a feature gate, and drops it otherwise).
const MIN_KUBERNETES: (u32, u32) = (1, 27);
/// Fields newer than the rest of the manifests, with the release that has them on by default.
const NEWEST_FIELDS: &[(&str, &str, (u32, u32))] = &[(
    "PodDisruptionBudget",
    "spec.unhealthyPodEvictionPolicy",
    (1, 27),
)];
/// The config file kustomize's configMapGenerator turns into the ConfigMap the pods mount.
const CONFIG_MAP_FILE: &str = "deploy/kubernetes/config.toml";
/// The daemon's metric names, fixed by the `run` command.
const METRICS: &[&str] = &[
    "b2bsync_cycles_total",
    "b2bsync_cycle_duration_seconds",
    "b2bsync_invoices_total",
    "b2bsync_b2b_requests_total",
    "b2bsync_b2b_rate_limited_total",
    "b2bsync_b2b_request_duration_seconds",
    "b2bsync_erp_requests_total",
    "b2bsync_erp_rate_limited_total",
    "b2bsync_erp_request_duration_seconds",
    "b2bsync_budget_requests_per_minute",
    "b2bsync_budget_granted_total",
    "b2bsync_budget_in_flight",
    "b2bsync_failures_pending",
    "b2bsync_dead_letters",
    "b2bsync_ledger_in_flight",
    "b2bsync_last_success_timestamp_seconds",
    "b2bsync_last_success_age_seconds",
    "b2bsync_oldest_unsynced_change_age_seconds",
    "b2bsync_build_info",
    "b2bsync_payments_detected_total",
    "b2bsync_payments_written_total",
    "b2bsync_payments_failed_total",
    "b2bsync_payments_pending",
    "b2bsync_payments_stuck",
    "b2bsync_records_refused_total",
    "b2bsync_refused_records",
    "b2bsync_update_state_age_seconds",
    "b2bsync_reconcile_differences",
];

// ---------------------------------------------------------------------------------------------
// Kubernetes

#[test]
fn every_kubernetes_manifest_parses_and_names_itself() {
    let docs = manifests();
    for (file, doc) in &docs {
        for key in ["apiVersion", "kind", "metadata.name"] {
            let value = at(doc, key, file);
            assert!(
                value.as_str().is_some_and(|s| !s.is_empty()),
                "{}: {key} is not a non-empty string",
                file.display()
            );
        }
    }
    let mut kinds: BTreeSet<&str> = docs.iter().map(|(f, d)| text(d, "kind", f)).collect();
    // The ConfigMap is generated from config.toml by the kustomization.
    let generated = config_map_generators();
    kinds.extend(generated.iter().map(|_| "ConfigMap"));
    for kind in [
        "Kustomization",
        "Component",
        "Namespace",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "Job",
        "ServiceMonitor",
        "PrometheusRule",
    ] {
        assert!(kinds.contains(kind), "no {kind} under {KUBERNETES}");
    }
}

#[test]
fn probes_use_the_container_port_that_the_service_exposes() {
    let deployment = manifest("Deployment", "b2b-invoice-sync");
    let container = at(&deployment, "spec.template.spec.containers.0", "Deployment");
    let port = list(container, "ports", "container")
        .iter()
        .find(|p| p.get("containerPort").and_then(Value::as_u64) == Some(HTTP_PORT))
        .unwrap_or_else(|| panic!("the container does not declare port {HTTP_PORT}"));
    let port_name = text(port, "name", "container port");
    assert_eq!(port_name, "metrics");

    for (probe, path) in [
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ] {
        let get = at(container, &format!("{probe}.httpGet"), "container");
        assert_eq!(text(get, "path", probe), path, "{probe}");
        assert!(
            names_port(at(get, "port", probe), port_name),
            "{probe} does not probe port {port_name} / {HTTP_PORT}"
        );
    }

    let service = manifest("Service", "b2b-invoice-sync");
    let service_port = list(&service, "spec.ports", "Service")
        .iter()
        .find(|p| p.get("port").and_then(Value::as_u64) == Some(HTTP_PORT))
        .unwrap_or_else(|| panic!("the Service does not expose port {HTTP_PORT}"));
    assert!(
        names_port(at(service_port, "targetPort", "Service"), port_name),
        "the Service's targetPort is not the container's metrics port"
    );
    assert_eq!(text(service_port, "name", "Service port"), "metrics");

    let pod_labels = at(&deployment, "spec.template.metadata.labels", "Deployment");
    for (what, selector) in [
        (
            "Deployment selector",
            at(&deployment, "spec.selector.matchLabels", "Deployment"),
        ),
        ("Service selector", at(&service, "spec.selector", "Service")),
        (
            "PodDisruptionBudget selector",
            at(
                &manifest("PodDisruptionBudget", "b2b-invoice-sync"),
                "spec.selector.matchLabels",
                "PodDisruptionBudget",
            ),
        ),
    ] {
        assert_subset(selector, pod_labels, what);
    }
    let monitor = manifest("ServiceMonitor", "b2b-invoice-sync");
    assert_subset(
        at(&monitor, "spec.selector.matchLabels", "ServiceMonitor"),
        at(&service, "metadata.labels", "Service"),
        "ServiceMonitor selector",
    );
    assert_eq!(
        text(&monitor, "spec.endpoints.0.port", "ServiceMonitor"),
        "metrics"
    );
}

#[test]
fn the_deployment_mounts_only_what_the_kustomization_ships() {
    let kustomization = load_yaml(&root().join(KUBERNETES).join("kustomization.yaml"));
    let resources: Vec<&str> = list(&kustomization, "resources", "kustomization.yaml")
        .iter()
        .map(|r| r.as_str().unwrap_or_default())
        .collect();
    let mut shipped = BTreeSet::new();
    for resource in &resources {
        let file = root().join(KUBERNETES).join(resource);
        assert!(
            file.is_file(),
            "kustomization.yaml lists {resource}, which is missing"
        );
        for doc in yaml_documents(&file) {
            shipped.insert((
                text(&doc, "kind", &file).to_owned(),
                text(&doc, "metadata.name", &file).to_owned(),
            ));
        }
    }
    for (name, files) in config_map_generators() {
        for file in &files {
            assert!(
                root().join(KUBERNETES).join(file).is_file(),
                "configMapGenerator {name} names {file}, which is missing"
            );
        }
        shipped.insert(("ConfigMap".to_owned(), name));
    }
    // A manifest left out of the kustomization by mistake would never be applied.
    for file in yaml_files(&root().join(KUBERNETES), false) {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert!(
            name == "kustomization.yaml" || resources.contains(&name) || OPT_IN.contains(&name),
            "{name} is neither in kustomization.yaml's resources nor a known opt-in"
        );
    }

    let deployment = manifest("Deployment", "b2b-invoice-sync");
    let job = manifest("Job", "b2b-invoice-sync-migrate");
    for (what, workload) in [("Deployment", &deployment), ("Job", &job)] {
        let mounts = pod_mounts(workload, what);
        assert_eq!(mounts.config_map, "b2b-invoice-sync-config", "{what}");
        assert_eq!(mounts.secret, "b2b-invoice-sync-secrets", "{what}");
        assert!(shipped.contains(&("ConfigMap".to_owned(), mounts.config_map.clone())));
        assert!(shipped.contains(&("Secret".to_owned(), mounts.secret.clone())));
        let args = string_list(workload, "spec.template.spec.containers.0.args", what);
        let config_arg = args
            .iter()
            .position(|a| a == "--config")
            .map(|i| &args[i + 1]);
        assert_eq!(
            config_arg.map(String::as_str),
            Some(CONFIG_PATH),
            "{what} args"
        );
    }
    // The ConfigMap's key (the generator's file name) is the file that --config names.
    let generators = config_map_generators();
    let files = generators
        .get("b2b-invoice-sync-config")
        .expect("a configMapGenerator b2b-invoice-sync-config");
    assert_eq!(files, &["config.toml"]);
}

#[test]
fn pods_run_locked_down() {
    for (what, workload) in [
        ("Deployment", manifest("Deployment", "b2b-invoice-sync")),
        ("Job", manifest("Job", "b2b-invoice-sync-migrate")),
    ] {
        let pod = at(&workload, "spec.template.spec", what);
        let security = at(pod, "containers.0.securityContext", what);
        for (key, expected) in [
            ("runAsNonRoot", Value::Bool(true)),
            ("runAsUser", Value::from(10001)),
            ("readOnlyRootFilesystem", Value::Bool(true)),
            ("allowPrivilegeEscalation", Value::Bool(false)),
            ("seccompProfile.type", Value::from("RuntimeDefault")),
        ] {
            assert_eq!(at(security, key, what), &expected, "{what}: {key}");
        }
        assert_eq!(
            string_list(security, "capabilities.drop", what),
            ["ALL"],
            "{what}"
        );
        assert_eq!(
            pod_mounts(&workload, what).tmp,
            "/tmp",
            "{what}: no writable /tmp"
        );
    }
    let deployment = manifest("Deployment", "b2b-invoice-sync");
    assert_eq!(
        at(&deployment, "spec.replicas", "Deployment"),
        &Value::from(2)
    );
    let pdb = manifest("PodDisruptionBudget", "b2b-invoice-sync");
    assert_eq!(at(&pdb, "spec.minAvailable", "PDB"), &Value::from(1));
}

#[test]
fn the_configmap_config_loads_with_the_secrets_files() {
    let (settings, _dir) = load_configmap_config(&[]);
    assert_eq!(
        settings
            .daemon
            .http_address
            .map(|a| a.to_string())
            .as_deref(),
        Some("0.0.0.0:9464"),
        "the endpoints must listen on the pod IP"
    );
    assert!(settings.database.is_some(), "run needs [database]");
    assert!(settings.engine.auto_migrate);
    let grace = at(
        &manifest("Deployment", "b2b-invoice-sync"),
        "spec.template.spec.terminationGracePeriodSeconds",
        "Deployment",
    )
    .as_u64()
    .unwrap_or_default();
    assert!(
        settings.daemon.shutdown_deadline.as_secs() < grace,
        "shutdown_deadline_secs must end before the kubelet's SIGKILL ({grace} s)"
    );

    // What the migrate-job component sets must be a valid override.
    let patch = read(&format!("{KUBERNETES}/migrate-job/kustomization.yaml"));
    assert!(patch.contains("name: B2BSYNC__ENGINE__AUTO_MIGRATE") && patch.contains("\"false\""));
    let (settings, _dir) = load_configmap_config(&[("B2BSYNC__ENGINE__AUTO_MIGRATE", "false")]);
    assert!(!settings.engine.auto_migrate);
}

#[test]
fn the_migration_job_runs_migrate_with_the_daemons_image() {
    let job = manifest("Job", "b2b-invoice-sync-migrate");
    let deployment = manifest("Deployment", "b2b-invoice-sync");
    let args = string_list(&job, "spec.template.spec.containers.0.args", "Job");
    assert_eq!(args.first().map(String::as_str), Some("migrate"));
    assert_eq!(
        text(&job, "spec.template.spec.containers.0.image", "Job"),
        text(
            &deployment,
            "spec.template.spec.containers.0.image",
            "Deployment"
        ),
    );
    // Pod labels must keep the Job's pod out of the Service, the PDB and the Deployment.
    assert_eq!(
        text(
            &job,
            "spec.template.metadata.labels.app.kubernetes.io/component",
            "Job"
        ),
        "migration"
    );
}

#[test]
fn kustomize_builds_the_base_and_the_migrate_job_component() {
    let Some(kubectl) = on_path("kubectl") else {
        println!("skipped: kubectl is not on PATH, so `kubectl kustomize` was not run");
        return;
    };
    let base = kustomize(&kubectl, &root().join(KUBERNETES));
    let config_map = built_config_map(&base);
    assert_eq!(
        text(&config_map, "metadata.namespace", "ConfigMap"),
        "b2b-invoice-sync"
    );
    assert_eq!(
        text(&config_map, "data.config.toml", "ConfigMap"),
        read(CONFIG_MAP_FILE),
        "the ConfigMap does not hold config.toml as it is"
    );
    for (kind, name) in [
        ("Secret", "b2b-invoice-sync-secrets"),
        ("Deployment", "b2b-invoice-sync"),
        ("Service", "b2b-invoice-sync"),
        ("PodDisruptionBudget", "b2b-invoice-sync"),
        ("NetworkPolicy", "b2b-invoice-sync"),
    ] {
        let doc = find(&base, kind, name).unwrap_or_else(|| panic!("no {kind} {name} built"));
        assert_eq!(text(doc, "metadata.namespace", kind), "b2b-invoice-sync");
    }
    assert!(find(&base, "Job", "b2b-invoice-sync-migrate").is_none());

    // An overlay that enables the component, as docs/deployment.md describes.
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&root().join(KUBERNETES), &dir.path().join("base"));
    let overlay = dir.path().join("overlay");
    std::fs::create_dir(&overlay).expect("mkdir overlay");
    std::fs::write(
        overlay.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
         namespace: b2b-invoice-sync\nresources:\n  - ../base\n\
         components:\n  - ../base/migrate-job\n",
    )
    .expect("write overlay");
    let built = kustomize(&kubectl, &overlay);
    let job = find(&built, "Job", "b2b-invoice-sync-migrate").expect("the component adds the Job");
    assert_eq!(text(job, "metadata.namespace", "Job"), "b2b-invoice-sync");
    // The Job mounts the generated ConfigMap under its hashed name, as the Deployment does.
    let generated = text(&built_config_map(&built), "metadata.name", "ConfigMap").to_owned();
    assert_eq!(pod_mounts(job, "Job").config_map, generated);
    let deployment = find(&built, "Deployment", "b2b-invoice-sync").expect("Deployment");
    let image = "spec.template.spec.containers.0.image";
    assert_eq!(
        text(job, image, "Job"),
        text(deployment, image, "Deployment")
    );
    let env = list(
        deployment,
        "spec.template.spec.containers.0.env",
        "Deployment",
    );
    assert!(
        env.iter().any(|e| {
            e.get("name").and_then(Value::as_str) == Some("B2BSYNC__ENGINE__AUTO_MIGRATE")
                && e.get("value").and_then(Value::as_str) == Some("false")
        }),
        "the component does not turn auto_migrate off: {env:?}"
    );
}

#[test]
fn a_config_change_rolls_the_pods() {
    // The config comes from a configMapGenerator whose name carries a hash of the content, and
    // no plain ConfigMap manifest sits beside it.
    let generators = config_map_generators();
    assert!(
        generators.contains_key("b2b-invoice-sync-config"),
        "no configMapGenerator b2b-invoice-sync-config in kustomization.yaml"
    );
    let kustomization = read(&format!("{KUBERNETES}/kustomization.yaml"));
    assert!(
        !kustomization.contains("disableNameSuffixHash"),
        "the generated ConfigMap must keep its content hash in its name"
    );
    for (file, doc) in manifests() {
        assert_ne!(
            doc.get("kind").and_then(Value::as_str),
            Some("ConfigMap"),
            "{}: a plain ConfigMap does not roll the pods when it changes",
            file.display()
        );
    }

    let Some(kubectl) = on_path("kubectl") else {
        println!("skipped: kubectl is not on PATH, so the rollout was not built");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().join("base");
    copy_dir(&root().join(KUBERNETES), &base);
    let before = kustomize(&kubectl, &base);
    let config = base.join("config.toml");
    let toml = std::fs::read_to_string(&config).expect("read config.toml");
    assert!(toml.contains("log_filter = \"info\""));
    std::fs::write(
        &config,
        toml.replace("log_filter = \"info\"", "log_filter = \"debug\""),
    )
    .expect("write config.toml");
    let after = kustomize(&kubectl, &base);

    let name =
        |docs: &[Value]| text(&built_config_map(docs), "metadata.name", "ConfigMap").to_owned();
    let (old, new) = (name(&before), name(&after));
    assert_ne!(
        old, new,
        "the ConfigMap's name did not change with its content"
    );
    let template = |docs: &[Value]| {
        let deployment = find(docs, "Deployment", "b2b-invoice-sync").expect("Deployment");
        at(deployment, "spec.template", "Deployment").clone()
    };
    let (old_template, new_template) = (template(&before), template(&after));
    assert_ne!(
        old_template, new_template,
        "the pod template did not change: the pods would keep the old config"
    );
    for (docs, expected) in [(&before, &old), (&after, &new)] {
        let deployment = find(docs, "Deployment", "b2b-invoice-sync").expect("Deployment");
        assert_eq!(&pod_mounts(deployment, "Deployment").config_map, expected);
    }
}

#[test]
fn the_network_policy_allows_dns_postgresql_https_and_metrics_only() {
    let policy = manifest("NetworkPolicy", "b2b-invoice-sync");
    let types = string_list(&policy, "spec.policyTypes", "NetworkPolicy");
    assert_eq!(
        types,
        ["Ingress", "Egress"],
        "both directions are restricted"
    );
    // It covers the daemon's pods and the migration Job's.
    let selector = at(&policy, "spec.podSelector.matchLabels", "NetworkPolicy");
    for (kind, name) in [
        ("Deployment", "b2b-invoice-sync"),
        ("Job", "b2b-invoice-sync-migrate"),
    ] {
        let workload = manifest(kind, name);
        assert_subset(
            selector,
            at(&workload, "spec.template.metadata.labels", kind),
            &format!("NetworkPolicy selector on the {kind}'s pods"),
        );
    }

    let ports = |rules: &[Value]| -> BTreeSet<(String, String)> {
        rules
            .iter()
            .flat_map(|rule| list(rule, "ports", "NetworkPolicy rule"))
            .map(|p| {
                let port = at(p, "port", "NetworkPolicy port");
                let port = port
                    .as_u64()
                    .map(|n| n.to_string())
                    .or_else(|| port.as_str().map(str::to_owned))
                    .expect("a port number or name");
                (port, text(p, "protocol", "NetworkPolicy port").to_owned())
            })
            .collect()
    };
    let ingress = list(&policy, "spec.ingress", "NetworkPolicy");
    assert!(
        ingress
            .iter()
            .all(|rule| rule.get("ports").is_some_and(|p| !p.is_null())),
        "an ingress rule without ports opens every port"
    );
    let ingress = ports(ingress);
    assert_eq!(ingress.len(), 1, "ingress: {ingress:?}");
    let (port, protocol) = ingress.first().expect("one ingress port");
    assert_eq!(protocol, "TCP");
    assert!(
        port == "metrics" || port == &HTTP_PORT.to_string(),
        "ingress is not to the metrics port: {port}"
    );

    let egress_rules = list(&policy, "spec.egress", "NetworkPolicy");
    assert!(
        egress_rules
            .iter()
            .all(|rule| rule.get("ports").is_some_and(|p| !p.is_null())),
        "an egress rule without ports allows every port"
    );
    let egress = ports(egress_rules);
    let expected: BTreeSet<(String, String)> = [
        ("53", "UDP"),
        ("53", "TCP"),
        ("5432", "TCP"),
        ("443", "TCP"),
    ]
    .iter()
    .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
    .collect();
    assert_eq!(egress, expected, "egress: DNS, PostgreSQL and HTTPS only");

    // What the config and the Secret call must be what the policy lets out.
    let config = read(CONFIG_MAP_FILE);
    let urls: Vec<&str> = config
        .lines()
        .filter_map(|l| l.trim().strip_prefix("base_url = "))
        .map(|v| v.trim_matches('"'))
        .collect();
    assert!(!urls.is_empty(), "config.toml calls no API");
    for url in urls {
        let url = url::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(url.port_or_known_default(), Some(443), "{url}");
    }
    let secret = manifest("Secret", "b2b-invoice-sync-secrets");
    let database = text(&secret, "stringData.database-url", "Secret");
    let database = url::Url::parse(database).expect("the database URL parses");
    assert_eq!(database.port().unwrap_or(5432), 5432, "{database}");
}

#[test]
fn the_minimum_kubernetes_version_is_stated_and_the_manifests_validate_against_it() {
    let (major, minor) = MIN_KUBERNETES;
    let stated = format!("Kubernetes {major}.{minor} or newer");
    for file in [
        "docs/deployment.md",
        &format!("{KUBERNETES}/kustomization.yaml"),
    ] {
        assert!(
            read(file).contains(&stated),
            "{file} does not say {stated:?}"
        );
    }
    // The minimum is the newest field's release, not older (the field would be dropped) and not
    // newer than needed.
    let docs = manifests();
    // The floor without NEWEST_FIELDS (policy/v1 is from 1.21); kubernetes-validate below
    // checks every other field and API version against the schemas of the stated minimum.
    let mut needed = (1, 21);
    for (kind, path, since) in NEWEST_FIELDS {
        let used = docs.iter().any(|(_, d)| {
            d.get("kind").and_then(Value::as_str) == Some(*kind) && try_at(d, path).is_some()
        });
        if used {
            needed = needed.max(*since);
        }
    }
    assert_eq!(
        MIN_KUBERNETES, needed,
        "the stated minimum is not what the manifests' newest field needs"
    );

    // kubernetes-validate (PyPI) carries the API schemas of each release, so this runs offline.
    let Some(validate) = on_path("kubernetes-validate") else {
        println!(
            "skipped: kubernetes-validate is not on PATH (pip install kubernetes-validate), \
             so the manifests were not validated against the Kubernetes {major}.{minor} schemas"
        );
        return;
    };
    let files = yaml_files(&root().join(KUBERNETES), true);
    let validate_at = |version: Option<String>| {
        let mut command = Command::new(&validate);
        command.args(["--strict", "--quiet"]);
        if let Some(version) = &version {
            command.args(["--kubernetes-version", version]);
        }
        run(command.args(&files))
    };
    // At the minimum and at the newest release the validator knows (its default).
    for version in [Some(format!("{major}.{minor}.0")), None] {
        let out = validate_at(version.clone());
        let errors = String::from_utf8_lossy(&out.stdout).contains("ERROR");
        assert!(
            out.status.success() && !errors,
            "the manifests do not validate against Kubernetes {}:\n{}",
            version.as_deref().unwrap_or("(newest)"),
            output_text(&out)
        );
    }
    // Two releases back, the newest field is unknown: the minimum is real.
    let out = validate_at(Some(format!("{major}.{}.0", minor - 2)));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && stdout.contains("unhealthyPodEvictionPolicy"),
        "expected Kubernetes {major}.{} to refuse unhealthyPodEvictionPolicy:\n{}",
        minor - 2,
        output_text(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// systemd

#[test]
fn the_systemd_unit_has_the_settings_the_daemon_relies_on() {
    let unit = read(UNIT);
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=60",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "TimeoutStopSec=30",
        "EnvironmentFile=-/etc/b2b-invoice-sync/env",
        "ExecStart=/usr/local/bin/b2b-invoice-sync run --config /etc/b2b-invoice-sync/config.toml",
    ] {
        assert!(
            unit.lines().any(|l| l.trim() == line),
            "the unit lacks {line}"
        );
    }
    let settings = load_systemd_config(&[]);
    assert!(
        settings.daemon.shutdown_deadline.as_secs() < 30,
        "shutdown_deadline_secs must end before TimeoutStopSec"
    );
}

#[test]
fn systemd_analyze_verifies_the_unit_cleanly() {
    let Some(analyze) = on_path("systemd-analyze") else {
        println!("skipped: systemd-analyze is not on PATH, so the unit was not verified");
        return;
    };
    // The unit's name matters: credentials land in /run/credentials/<unit name>/.
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = dir.path().join("b2b-invoice-sync.service");
    let text = read(UNIT).replace(
        "ExecStart=/usr/local/bin/b2b-invoice-sync ",
        &format!("ExecStart={BIN} "),
    );
    assert!(
        text.contains(BIN),
        "ExecStart was not pointed at the test binary"
    );
    std::fs::write(&unit, text).expect("write unit");

    let out = run(Command::new(&analyze).arg("verify").arg(&unit));
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "systemd-analyze verify is not clean:\n{}",
        output_text(&out)
    );

    // Exposure 0.0 (locked down) .. 10.0 (unprotected), compared as tenths.
    let out = run(Command::new(&analyze)
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(&unit));
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("unrecognized option") || stderr.contains("Unknown command") {
        println!("skipped: this systemd-analyze cannot rate a unit file offline");
        return;
    }
    assert!(
        out.status.success(),
        "the unit's exposure is above 2.0:\n{}",
        output_text(&out)
    );
}

#[test]
fn the_systemd_sample_config_and_env_example_load() {
    let settings = load_systemd_config(&[]);
    assert!(settings.database.is_some(), "run needs [database]");

    // Every override env.example shows (commented or not) must name a real key.
    let overrides: Vec<(String, String)> = read("deploy/systemd/env.example")
        .lines()
        .map(|l| l.trim_start_matches('#').trim())
        .filter(|l| l.starts_with("B2BSYNC__"))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect();
    assert!(overrides.len() >= 3, "env.example shows few overrides");
    let pairs: Vec<(&str, &str)> = overrides.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    let settings = load_systemd_config(&pairs);
    assert_eq!(
        settings.daemon.http_address.map(|a| a.port()),
        Some(HTTP_PORT as u16)
    );
}

// ---------------------------------------------------------------------------------------------
// Dockerfile and docs

#[test]
fn the_dockerfile_runs_the_binary_as_non_root_on_port_9464() {
    let instructions = dockerfile_instructions(&read("deploy/Dockerfile"));
    let froms: Vec<&String> = instructions
        .iter()
        .filter(|(op, _)| op == "FROM")
        .map(|(_, arg)| arg)
        .collect();
    // Every base image pinned by digest; the builder on the runtime's Debian release (bookworm
    // = debian12, for glibc), with a Rust at or above Cargo.toml's rust-version.
    assert_eq!(froms.len(), 2, "a builder and a runtime stage: {froms:?}");
    for from in &froms {
        let image = from.split_whitespace().next().unwrap_or_default();
        let digest = image.split_once("@sha256:").map(|(_, d)| d);
        assert!(
            digest.is_some_and(|d| d.len() == 64 && d.chars().all(|c| c.is_ascii_hexdigit())),
            "FROM {from}: not pinned by a sha256 digest"
        );
    }
    let builder = froms[0];
    let rust = builder
        .strip_prefix("rust:")
        .and_then(|r| r.split_once("-bookworm@sha256:"))
        .map(|(version, _)| version)
        .unwrap_or_else(|| panic!("the builder is not rust:<version>-bookworm: {builder}"));
    assert!(builder.ends_with(" AS builder"), "{builder}");
    assert!(
        froms[1].starts_with("gcr.io/distroless/cc-debian12:nonroot@sha256:"),
        "the runtime is not distroless cc on Debian 12: {}",
        froms[1]
    );
    let version = |v: &str| -> Vec<u32> { v.split('.').filter_map(|p| p.parse().ok()).collect() };
    let manifest = read("Cargo.toml");
    let package_field = |key: &str| -> String {
        manifest
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = ")))
            .map(|v| v.trim_matches('"').to_owned())
            .unwrap_or_else(|| panic!("Cargo.toml has no {key}"))
    };
    assert!(
        version(rust) >= version(&package_field("rust-version")),
        "the builder's Rust {rust} is older than Cargo.toml's rust-version"
    );
    // The runtime stage: everything after the last FROM.
    let last_from = instructions
        .iter()
        .rposition(|(op, _)| op == "FROM")
        .expect("a FROM");
    let runtime = &instructions[last_from..];
    let only = |op: &str| -> Vec<&str> {
        runtime
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, a)| a.as_str())
            .collect()
    };
    let user = only("USER");
    let user = user.last().expect("the runtime stage sets USER");
    let uid = user.split(':').next().unwrap_or_default();
    assert!(
        !matches!(uid, "" | "0" | "root"),
        "the image runs as {user}"
    );
    assert_eq!(uid, "10001", "the Kubernetes manifests run as uid 10001");
    assert_eq!(only("EXPOSE"), ["9464"]);
    assert_eq!(
        only("ENTRYPOINT"),
        [r#"["/usr/local/bin/b2b-invoice-sync"]"#]
    );
    assert_eq!(
        only("CMD"),
        [format!(r#"["run", "--config", "{CONFIG_PATH}"]"#)]
    );

    // What the build stage copies must exist in the context (the repository root).
    for (op, arg) in &instructions {
        if op == "COPY" && !arg.starts_with("--from") {
            let mut parts: Vec<&str> = arg.split_whitespace().collect();
            parts.pop();
            for source in parts {
                assert!(root().join(source).exists(), "COPY {source}: no such path");
            }
        }
    }
    let ignore = read("deploy/Dockerfile.dockerignore");
    assert!(ignore.lines().any(|l| l.trim() == "target/"));

    // The binary the runtime copies is the stripped one.
    let builder_runs: Vec<&str> = instructions[..last_from]
        .iter()
        .filter(|(op, _)| op == "RUN")
        .map(|(_, a)| a.as_str())
        .collect();
    let copied = runtime
        .iter()
        .find(|(op, arg)| op == "COPY" && arg.starts_with("--from=builder "))
        .map(|(_, arg)| arg.split_whitespace().nth(1).unwrap_or_default())
        .expect("the runtime copies the binary from the builder");
    assert!(
        builder_runs
            .iter()
            .any(|run| run.contains("cargo build --release --locked --no-default-features")
                && run.contains(&format!(
                    "strip --strip-all -o {copied} target/release/b2b-invoice-sync"
                ))),
        "the image does not ship a stripped release binary without the test rigs at {copied}: {builder_runs:?}"
    );

    // OCI annotations, from Cargo.toml where it says them.
    let labels: std::collections::BTreeMap<String, String> = only("LABEL")
        .iter()
        .flat_map(|arg| label_pairs(arg))
        .collect();
    let args: std::collections::BTreeMap<String, String> = only("ARG")
        .iter()
        .map(|arg| match arg.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.trim_matches('"').to_owned()),
            None => ((*arg).to_owned(), String::new()),
        })
        .collect();
    let label = |key: &str| -> &str {
        labels
            .get(&format!("org.opencontainers.image.{key}"))
            .unwrap_or_else(|| panic!("no org.opencontainers.image.{key} label: {labels:?}"))
    };
    assert_eq!(label("title"), "b2b-invoice-sync");
    assert_eq!(label("description"), package_field("description"));
    assert_eq!(label("licenses"), package_field("license"));
    assert_eq!(label("version"), "${VERSION}");
    assert_eq!(args.get("VERSION"), Some(&package_field("version")));
    for (key, arg) in [
        ("revision", "REVISION"),
        ("created", "CREATED"),
        ("source", "SOURCE"),
    ] {
        assert_eq!(label(key), format!("${{{arg}}}"));
        assert!(args.contains_key(arg), "no ARG {arg} for the {key} label");
    }
    let runtime_image = froms[1].split_whitespace().next().unwrap_or_default();
    let (base_name, base_digest) = runtime_image
        .split_once('@')
        .expect("the runtime image has a digest");
    assert_eq!(label("base.name"), base_name);
    assert_eq!(label("base.digest"), base_digest);
}

#[test]
fn the_docs_alert_rules_match_the_prometheus_rule_and_name_real_metrics() {
    let docs = read("docs/deployment.md");
    for metric in METRICS {
        assert!(
            docs.contains(metric),
            "docs/deployment.md does not explain {metric}"
        );
    }
    let rules = yaml_blocks(&docs)
        .into_iter()
        .find(|b| b.get("groups").is_some())
        .expect("docs/deployment.md has a ```yaml block of Prometheus rules");
    let rule = manifest("PrometheusRule", "b2b-invoice-sync");
    assert_eq!(
        at(&rules, "groups", "docs"),
        at(&rule, "spec.groups", "PrometheusRule"),
        "the docs' rules and prometheus-rules.yaml differ"
    );
    // A typo in a metric name makes an alert that never fires.
    let exprs: Vec<&str> = list(&rules, "groups", "docs")
        .iter()
        .flat_map(|group| list(group, "rules", "docs group"))
        .map(|r| text(r, "expr", "rule"))
        .collect();
    assert!(exprs.len() >= 6, "few rules: {exprs:?}");
    for expr in exprs {
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("b2bsync_") {
                let base = word
                    .trim_end_matches("_bucket")
                    .trim_end_matches("_sum")
                    .trim_end_matches("_count");
                assert!(METRICS.contains(&base), "unknown metric {word} in {expr}");
            }
        }
    }
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

fn yaml_files(dir: &Path, recursive: bool) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            if recursive {
                files.extend(yaml_files(&path, true));
            }
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Every document of a (multi-document) YAML file; empty documents are skipped.
fn yaml_documents(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    parse_documents(&text, &file.display().to_string())
}

fn parse_documents(text: &str, origin: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{origin}: not YAML: {e}")))
        .filter(|doc| !doc.is_null())
        .collect()
}

fn load_yaml(file: &Path) -> Value {
    let mut docs = yaml_documents(file);
    assert_eq!(docs.len(), 1, "{}: one document expected", file.display());
    docs.remove(0)
}

/// The base kustomization's configMapGenerator entries: name -> the files it reads (each file's
/// name is its key in the ConfigMap).
fn config_map_generators() -> std::collections::BTreeMap<String, Vec<String>> {
    let kustomization = load_yaml(&root().join(KUBERNETES).join("kustomization.yaml"));
    let Some(generators) = kustomization.get("configMapGenerator") else {
        return Default::default();
    };
    let generators = generators
        .as_sequence()
        .expect("configMapGenerator is a list");
    generators
        .iter()
        .map(|g| {
            (
                text(g, "name", "configMapGenerator").to_owned(),
                string_list(g, "files", "configMapGenerator"),
            )
        })
        .collect()
}

/// The ConfigMap kustomize generated from config.toml (its name ends in a content hash).
fn built_config_map(docs: &[Value]) -> Value {
    let prefix = "b2b-invoice-sync-config-";
    let found: Vec<&Value> = docs
        .iter()
        .filter(|d| {
            d.get("kind").and_then(Value::as_str) == Some("ConfigMap")
                && d.get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.len() > prefix.len() && n.starts_with(prefix))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one generated ConfigMap {prefix}<hash> expected"
    );
    found[0].clone()
}

fn manifests() -> Vec<(PathBuf, Value)> {
    let files = yaml_files(&root().join(KUBERNETES), true);
    assert!(!files.is_empty(), "no YAML under {KUBERNETES}");
    files
        .into_iter()
        .flat_map(|f| yaml_documents(&f).into_iter().map(move |d| (f.clone(), d)))
        .collect()
}

fn manifest(kind: &str, name: &str) -> Value {
    let docs: Vec<Value> = manifests().into_iter().map(|(_, d)| d).collect();
    find(&docs, kind, name)
        .cloned()
        .unwrap_or_else(|| panic!("no {kind} named {name} under {KUBERNETES}"))
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter().find(|d| {
        d.get("kind").and_then(Value::as_str) == Some(kind)
            && d.get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                == Some(name)
    })
}

/// [`at`], or `None` where the path leads nowhere.
fn try_at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = value;
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(found) = current.get(rest) {
            return Some(found);
        }
        let (head, tail) = rest.split_once('.').unwrap_or((rest, ""));
        current = match head.parse::<usize>() {
            Ok(i) => current.get(i)?,
            Err(_) => current.get(head)?,
        };
        rest = tail;
    }
    Some(current)
}

/// The value at a dotted path; a number indexes a list. Label keys contain dots themselves
/// (`app.kubernetes.io/component`), so a key present whole wins over splitting it.
fn at<'a>(value: &'a Value, path: &str, origin: impl std::fmt::Debug) -> &'a Value {
    let mut current = value;
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(found) = current.get(rest) {
            return found;
        }
        let (head, tail) = rest.split_once('.').unwrap_or((rest, ""));
        let next = match head.parse::<usize>() {
            Ok(i) => current.get(i),
            Err(_) => current.get(head),
        };
        current = next.unwrap_or_else(|| panic!("{origin:?}: no {path} (missing at {head})"));
        rest = tail;
    }
    current
}

fn text<'a>(value: &'a Value, path: &str, origin: impl std::fmt::Debug) -> &'a str {
    at(value, path, &origin)
        .as_str()
        .unwrap_or_else(|| panic!("{origin:?}: {path} is not a string"))
}

fn list<'a>(value: &'a Value, path: &str, origin: impl std::fmt::Debug) -> &'a [Value] {
    at(value, path, &origin)
        .as_sequence()
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("{origin:?}: {path} is not a list"))
}

fn string_list(value: &Value, path: &str, origin: impl std::fmt::Debug) -> Vec<String> {
    list(value, path, &origin)
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A probe or Service may name the port or give its number.
fn names_port(port: &Value, name: &str) -> bool {
    port.as_str() == Some(name) || port.as_u64() == Some(HTTP_PORT)
}

fn assert_subset(selector: &Value, labels: &Value, what: &str) {
    let selector = selector.as_mapping().expect("a selector is a mapping");
    assert!(!selector.is_empty(), "{what} is empty");
    for (key, value) in selector {
        assert_eq!(
            labels.get(key),
            Some(value),
            "{what}: {key:?} does not match"
        );
    }
}

struct PodMounts {
    config_map: String,
    secret: String,
    tmp: String,
}

/// The ConfigMap, Secret and emptyDir volumes of a workload's first container, checked to be
/// mounted where the config expects them.
fn pod_mounts(workload: &Value, what: &str) -> PodMounts {
    let pod = at(workload, "spec.template.spec", what);
    let volumes = list(pod, "volumes", what);
    let mounts = list(pod, "containers.0.volumeMounts", what);
    let mount_of = |volume: &Value| -> (String, bool) {
        let name = volume.get("name");
        let mount = mounts
            .iter()
            .find(|m| m.get("name") == name)
            .unwrap_or_else(|| panic!("{what}: volume {name:?} is not mounted"));
        let read_only = mount.get("readOnly").and_then(Value::as_bool) == Some(true);
        (text(mount, "mountPath", what).to_owned(), read_only)
    };
    let mut found = PodMounts {
        config_map: String::new(),
        secret: String::new(),
        tmp: String::new(),
    };
    for volume in volumes {
        if let Some(cm) = volume.get("configMap") {
            let (path, read_only) = mount_of(volume);
            assert_eq!(format!("{path}/config.toml"), CONFIG_PATH, "{what}");
            assert!(read_only, "{what}: the config is mounted writable");
            found.config_map = text(cm, "name", what).to_owned();
        } else if let Some(secret) = volume.get("secret") {
            let (path, read_only) = mount_of(volume);
            assert_eq!(format!("{path}/"), SECRET_DIR, "{what}");
            assert!(read_only, "{what}: the secrets are mounted writable");
            found.secret = text(secret, "secretName", what).to_owned();
        } else if volume.get("emptyDir").is_some() {
            found.tmp = mount_of(volume).0;
        }
    }
    found
}

/// The ConfigMap's config.toml, with the Secret's keys written as the files it names.
fn load_configmap_config(env: &[(&str, &str)]) -> (Settings, tempfile::TempDir) {
    let toml = &read(CONFIG_MAP_FILE);
    let secret = manifest("Secret", "b2b-invoice-sync-secrets");
    let keys = at(&secret, "stringData", "Secret")
        .as_mapping()
        .expect("the Secret's stringData is a mapping");
    let dir = tempfile::tempdir().expect("tempdir");
    for (key, value) in keys {
        let key = key.as_str().expect("a string key");
        // An unused key hints at a config that names the wrong file.
        assert!(
            toml.contains(&format!("{SECRET_DIR}{key}\"")),
            "the Secret's {key} is named by no *_file key in the ConfigMap"
        );
        let value = value.as_str().expect("a string value");
        std::fs::write(dir.path().join(key), value).expect("write secret file");
    }
    let settings = load_rewritten(toml, SECRET_DIR, dir.path(), env);
    (settings, dir)
}

/// The systemd sample config, with a placeholder file for each of the unit's credentials.
fn load_systemd_config(env: &[(&str, &str)]) -> Settings {
    let toml = read("deploy/systemd/config.toml");
    let dir = tempfile::tempdir().expect("tempdir");
    let credentials: Vec<String> = read(UNIT)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("LoadCredential="))
        .filter_map(|c| c.split_once(':'))
        .map(|(name, _)| name.to_owned())
        .collect();
    assert!(!credentials.is_empty(), "the unit loads no credential");
    for name in &credentials {
        assert!(
            toml.contains(&format!("{CREDENTIALS_DIR}{name}\"")),
            "the unit's credential {name} is named by no *_file key in config.toml"
        );
        let placeholder = if name.contains("database-url") {
            "postgres://b2b_sync:secret@127.0.0.1:5432/b2b_sync"
        } else {
            "placeholder-secret"
        };
        std::fs::write(dir.path().join(name), placeholder).expect("write credential");
    }
    load_rewritten(&toml, CREDENTIALS_DIR, dir.path(), env)
}

/// Loads `toml` with its secret directory replaced by `dir`: a file the config names but `dir`
/// lacks fails the load, naming its key.
fn load_rewritten(toml: &str, secret_dir: &str, dir: &Path, env: &[(&str, &str)]) -> Settings {
    assert!(
        toml.contains(secret_dir),
        "the config reads nothing from {secret_dir}"
    );
    let local = format!("{}/", dir.display());
    let config = dir.join("config.toml");
    std::fs::write(&config, toml.replace(secret_dir, &local)).expect("write config");
    let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    load_with_env(&config, env).unwrap_or_else(|e| panic!("the config does not load:\n{e}"))
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} does not start: {e}"))
}

fn output_text(out: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn kustomize(kubectl: &Path, dir: &Path) -> Vec<Value> {
    let out = run(Command::new(kubectl).arg("kustomize").arg(dir));
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed:\n{}",
        dir.display(),
        output_text(&out)
    );
    parse_documents(&String::from_utf8_lossy(&out.stdout), "kustomize output")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let path = entry.expect("directory entry").path();
        let target = to.join(path.file_name().expect("a file name"));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

/// (INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    joined
        .into_iter()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (op, arg) = l.split_once(char::is_whitespace).unwrap_or((&l, ""));
            (op.to_ascii_uppercase(), arg.trim().to_owned())
        })
        .collect()
}

/// A LABEL instruction's `key="value"` pairs (values may be quoted and hold spaces).
fn label_pairs(arg: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = arg.trim();
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once('=')
            .unwrap_or_else(|| panic!("LABEL without '=': {rest}"));
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted
                    .find('"')
                    .unwrap_or_else(|| panic!("unclosed quote in LABEL {arg}"));
                (&quoted[..end], &quoted[end + 1..])
            }
            None => after.split_once(char::is_whitespace).unwrap_or((after, "")),
        };
        pairs.push((key.trim().to_owned(), value.to_owned()));
        rest = after.trim_start();
    }
    pairs
}

/// The ```yaml blocks of a Markdown text, parsed.
fn yaml_blocks(markdown: &str) -> Vec<Value> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        let fence = line.trim_start().starts_with("```");
        match current.take() {
            None if line.trim_start().starts_with("```yaml") => current = Some(String::new()),
            None => {}
            Some(block) if fence => {
                blocks.extend(parse_documents(
                    &block,
                    "a ```yaml block of docs/deployment.md",
                ));
            }
            Some(mut block) => {
                block.push_str(line);
                block.push('\n');
                current = Some(block);
            }
        }
    }
    blocks
}
