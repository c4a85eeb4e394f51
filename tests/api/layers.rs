//! The layering rule of docs/ARCHITECTURE.md ("Layers"), checked on the source: a top-level
//! module of the library imports only modules below it in [`LAYERS`], never one above, so the
//! pure layer sits at the bottom and nothing runs back up.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The library's top-level modules, bottom first. A module may use only modules listed before it.
const LAYERS: &[&str] = &[
    // Pure: types and rules, no I/O.
    "domain",
    "failpoints",
    "process",
    "outbound",
    "schedule",
    "telemetry_metrics",
    // Settings, read into domain types.
    "config",
    // The wire clients and the store.
    "b2b",
    "store",
    "source",
    // Stages of a cycle that are not the invoice pipeline.
    "customers",
    "payments",
    // The cycle, and the reconciliation that reads what cycles left.
    "sync",
    "reconcile",
    // The process: the daemon and its logging.
    "daemon",
    "telemetry",
    // The test rigs (feature `rigs`): they drive everything above. `sandbox` is its own crate in
    // the workspace (see CRATES), re-exported by lib.rs.
    "sandbox",
    "bench",
    "demo",
];

/// Layers that are crates of their own in the workspace, re-exported by lib.rs
/// (`pub use <crate> as <module>`), with their source folder. Their `crate::` names their own
/// modules, so the layer scan leaves them out; instead they must never name the product crate.
const CRATES: &[(&str, &str)] = &[("sandbox", "sandbox")];

/// Imports that still run up a layer, each with why: the test fails when one of them is gone
/// (then delete it here) as well as when a new one appears.
const KNOWN: &[(&str, &str, &str)] = &[];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules a file names as `crate::<module>`, comments left out.
fn imports(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `b2b_invoice_sync::crate::` does not exist; `$crate::` is a macro's own crate.
            let before = &rest[..i];
            if !name.is_empty() && !before.ends_with('$') {
                out.insert(name);
            }
            rest = after;
        }
    }
    out
}

/// module -> the modules it imports (itself left out).
fn edges(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for module in LAYERS {
        if CRATES.iter().any(|(m, _)| m == module) {
            out.entry((*module).to_owned()).or_default();
            continue;
        }
        let mut files = Vec::new();
        let dir = src.join(module);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        }
        let file = src.join(format!("{module}.rs"));
        if file.is_file() {
            files.push(file);
        }
        assert!(!files.is_empty(), "no source for module `{module}`");
        let entry = out.entry((*module).to_owned()).or_default();
        for f in files {
            let text = std::fs::read_to_string(&f).expect("a source file reads");
            entry.extend(imports(&text).into_iter().filter(|m| m != module));
        }
    }
    out
}

/// The module a line of lib.rs declares: `pub mod <name>;`, or a workspace crate re-exported as
/// `pub use <crate> as <name>;`.
fn top_level_module(line: &str) -> Option<&str> {
    let line = line.trim();
    let name = match line.strip_prefix("pub mod ") {
        Some(name) => name,
        None => line.strip_prefix("pub use ")?.split_once(" as ")?.1,
    };
    Some(name.trim_end_matches(';'))
}

#[test]
fn every_top_level_module_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs reads");
    let declared: BTreeSet<&str> = lib.lines().filter_map(top_level_module).collect();
    let layered: BTreeSet<&str> = LAYERS.iter().copied().collect();
    assert_eq!(
        declared, layered,
        "lib.rs's modules and the layer list differ"
    );
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rank: BTreeMap<&str, usize> = LAYERS.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let mut upward = BTreeSet::new();
    for (module, targets) in edges(&src) {
        for t in targets {
            let Some(&to) = rank.get(t.as_str()) else {
                panic!("`{module}` uses `crate::{t}`, which is not a module in the layer list");
            };
            if to > rank[module.as_str()] {
                upward.insert((module.clone(), t));
            }
        }
    }
    let known: BTreeSet<(String, String)> = KNOWN
        .iter()
        .map(|(a, b, _)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    let new: Vec<_> = upward.difference(&known).collect();
    assert!(
        new.is_empty(),
        "imports up a layer (module -> the higher module it uses): {new:?}"
    );
    let gone: Vec<_> = known.difference(&upward).collect();
    assert!(
        gone.is_empty(),
        "these no longer run up a layer: delete them from KNOWN: {gone:?}"
    );
}

#[test]
fn the_scan_sees_imports_and_skips_comments() {
    let text = "use crate::b2b::model::Amount; // see crate::sync\n\
                let x = crate::store::process_name(); $crate::metrics!();\n\
                //! crate::daemon in a doc comment\n";
    let found: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(found, ["b2b", "store"]);
}

#[test]
fn the_test_rigs_and_only_they_sit_behind_the_rigs_feature() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs reads");
    let mut gated = BTreeSet::new();
    let mut previous = "";
    for line in lib.lines() {
        if let Some(module) = top_level_module(line) {
            if previous.trim() == "#[cfg(feature = \"rigs\")]" {
                gated.insert(module.to_owned());
            }
        }
        previous = line;
    }
    let rigs: BTreeSet<String> = ["bench", "demo", "sandbox"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(gated, rigs, "lib.rs: the modules behind the rigs feature");
}

#[test]
fn the_sandbox_crates_never_name_the_product_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (module, dir) in CRATES {
        let dir = root.join(dir);
        // The manifest: no dependency on the product package (the product's `rigs` feature
        // depends on this crate; the other way round would be a cycle).
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml reads");
        let depends = manifest
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .any(|l| l.starts_with("b2b-invoice-sync") || l.starts_with("b2b_invoice_sync"));
        assert!(
            !depends,
            "{module}: Cargo.toml depends on the product crate"
        );
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        assert!(!files.is_empty(), "no source for crate `{module}`");
        for f in files {
            let text = std::fs::read_to_string(&f).expect("a source file reads");
            let names = text
                .lines()
                .map(|l| l.split("//").next().unwrap_or_default())
                .any(|code| code.contains("b2b_invoice_sync"));
            assert!(!names, "{}: names the product crate", f.display());
        }
    }
}
