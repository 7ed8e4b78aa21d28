//! The walls between crates that ARCHITECTURE.md draws, checked on the resolved dependency
//! graph (`cargo metadata`), so a `Cargo.toml` edit that breaks one fails here.

use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::process::Command;

/// The resolved graph: package id → (name, ids of its normal dependencies on this platform).
fn graph() -> HashMap<String, (String, Vec<String>)> {
    let meta = metadata();
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let mut graph = HashMap::new();
    for node in meta["resolve"]["nodes"].as_array().expect("resolve nodes") {
        let id = node["id"].as_str().unwrap().to_owned();
        let deps = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                // Normal dependencies only (kind null), as this platform resolves them.
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].is_null())
            })
            .map(|d| d["pkg"].as_str().unwrap().to_owned())
            .collect();
        graph.insert(id.clone(), (names[id.as_str()].to_owned(), deps));
    }
    graph
}

/// `cargo metadata` of the workspace, as this platform resolves it.
fn metadata() -> Value {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .args(["--filter-platform", &host()])
        .current_dir(mfagap_testkit::repo_root())
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("metadata is JSON")
}

/// The platform this test runs on, as rustc names it.
fn host() -> String {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc names its host")
        .to_owned()
}

/// The names of every crate `package` links in a normal build, itself included.
fn closure(package: &str) -> BTreeSet<String> {
    let g = graph();
    let root = g
        .iter()
        .find(|(_, (name, _))| name == package)
        .map(|(id, _)| id.clone())
        .unwrap_or_else(|| panic!("{package} is a workspace member"));
    let (mut seen, mut todo) = (BTreeSet::new(), vec![root]);
    let mut names = BTreeSet::new();
    while let Some(id) = todo.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        let (name, deps) = &g[&id];
        names.insert(name.clone());
        todo.extend(deps.iter().cloned());
    }
    names
}

fn forbidden(names: &BTreeSet<String>, prefixes: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter(|n| prefixes.iter().any(|p| n.starts_with(p)))
        .cloned()
        .collect()
}

#[test]
fn the_archiver_links_no_event_hubs_amqp_or_ingest_code() {
    let names = closure("mfagap-archiver");
    assert!(
        names.contains("mfagap-core") && names.contains("mfagap-runtime"),
        "the archiver stands on core and runtime: {names:?}"
    );
    assert!(names.contains("rdkafka") && names.contains("parquet"));
    let bad = forbidden(
        &names,
        &["azure_", "fe2o3", "mfagap-ingest", "mfagap-generate"],
    );
    assert!(bad.is_empty(), "the archiver links {bad:?}");
}

#[test]
fn core_and_runtime_link_no_crate_of_ours_and_no_generator() {
    let core = closure("mfagap-core");
    let bad = forbidden(&core, &["mfagap-", "rand", "rdkafka", "azure_", "tokio"]);
    assert_eq!(
        bad,
        vec!["mfagap-core".to_owned()],
        "the core that services link is decode, classify, record, batch"
    );
    let runtime = closure("mfagap-runtime");
    let bad = forbidden(
        &runtime,
        &["mfagap-", "azure_", "fe2o3", "arrow", "parquet"],
    );
    assert_eq!(bad, vec!["mfagap-runtime".to_owned()]);
}

#[test]
fn the_ingest_service_does_not_link_the_archiver_nor_parquet() {
    let names = closure("mfagap-ingest");
    let bad = forbidden(&names, &["mfagap-archiver", "parquet", "mfagap-generate"]);
    assert!(bad.is_empty(), "the ingest service links {bad:?}");
    assert!(names.contains("azure_messaging_eventhubs"));
}

/// Proc macros and the crates only they and build scripts use are built unoptimised in the dev
/// profile; everything else a test links, at `opt-level` 1 (`Cargo.toml`, `[profile.dev]`).
/// Cargo lets `package."*"` win over `build-override`, so the build-time crates are named one
/// by one; this keeps the list equal to the graph: a new proc macro must be added (or it
/// compiles optimised, slowly), a crate that left must go (or Cargo warns), and a crate a test
/// also runs must never be on it.
#[test]
fn the_dev_profile_leaves_exactly_the_build_time_crates_unoptimised() {
    let meta = metadata();
    let packages: HashMap<&str, (&str, bool)> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let proc_macro = p["targets"].as_array().unwrap().iter().any(|t| {
                t["kind"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k == "proc-macro")
            });
            (
                p["id"].as_str().unwrap(),
                (p["name"].as_str().unwrap(), proc_macro),
            )
        })
        .collect();
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let nodes: HashMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    // Walk from the members: a dependency is run (linked into a test or a binary) unless it
    // is reached through a build dependency or a proc macro.
    let (mut run, mut build) = (BTreeSet::new(), BTreeSet::new());
    let mut todo: Vec<(&str, bool)> = members.iter().map(|m| (*m, false)).collect();
    let mut seen = BTreeSet::new();
    while let Some((id, at_build)) = todo.pop() {
        if !seen.insert((id, at_build)) {
            continue;
        }
        let (name, _) = packages[id];
        if !members.contains(id) {
            let set = if at_build { &mut build } else { &mut run };
            set.insert(name);
        }
        for d in nodes[id]["deps"].as_array().unwrap() {
            let dep = d["pkg"].as_str().unwrap();
            for k in d["dep_kinds"].as_array().unwrap() {
                let kind = k["kind"].as_str();
                if kind == Some("dev") && !members.contains(id) {
                    continue;
                }
                let dep_at_build = at_build || kind == Some("build") || packages[dep].1;
                todo.push((dep, dep_at_build));
            }
        }
    }
    let build_only: BTreeSet<&str> = build.difference(&run).copied().collect();

    let manifest = std::fs::read_to_string(mfagap_testkit::repo_root().join("Cargo.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&manifest).expect("Cargo.toml is TOML");
    let listed: BTreeSet<&str> = manifest["profile"]["dev"]["package"]
        .as_table()
        .expect("[profile.dev.package]")
        .iter()
        .filter(|(_, v)| v.get("opt-level").and_then(toml::Value::as_integer) == Some(0))
        .map(|(k, _)| k.as_str())
        .collect();
    let missing: Vec<_> = build_only.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&build_only).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "[profile.dev.package] in Cargo.toml: add `<name> = {{ opt-level = 0 }}` for the \
         build-time-only crates {missing:?}; remove {stale:?} (not in the graph, or also run)"
    );
    assert!(
        build_only.contains("syn") && run.contains("serde_json"),
        "the walk tells build time from run time"
    );
}
