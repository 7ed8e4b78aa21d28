//! The deployment files, checked without a container engine or a cluster: docker-compose.yml
//! against the Compose Specification, deploy/k8s against the Kubernetes API schemas (strict:
//! an unknown or misspelt field fails), deploy/Dockerfile with hadolint, and what ties the
//! files to each other and to the services' settings.
//!
//! The validators are the pinned PyPI packages `scripts/setup.sh` installs into `.tools/deploy`
//! (linked from `.tools/bin`); each works offline once installed. One test feeds each of them a
//! broken copy of the real file, so a validator that silently checks nothing would show.

use mfagap_testkit::repo_root;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Kubernetes versions the manifests must be valid for: the oldest still in common
/// support, so no newer field creeps in, and the newest the validator knows.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

fn tool(name: &str) -> PathBuf {
    let path = repo_root().join(".tools/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh",
        path.display()
    );
    path
}

/// Runs a tool; returns whether it succeeded and everything it printed.
fn run(name: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(tool(name))
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("paths here are UTF-8")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The Kubernetes manifests to validate: every YAML file in deploy/k8s but the kustomization,
/// which is kustomize's configuration, not an API object.
fn manifests() -> Vec<PathBuf> {
    let dir = repo_root().join("deploy/k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "manifests missing from {}", dir.display());
    files
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// YAML documents as JSON, read by PyYAML in the validators' virtual environment (the test
/// crate has no YAML parser, and reading YAML by hand would test the hand, not the file).
fn yaml_documents(path: &Path) -> Vec<Value> {
    let python = repo_root().join(".tools/deploy/bin/python");
    assert!(
        python.exists(),
        "{} missing: run scripts/setup.sh",
        python.display()
    );
    let out = Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml\n\
             json.dump([d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None], sys.stdout)",
            path_str(path),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cannot read {} as YAML: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn compose() -> Value {
    yaml_documents(&repo_root().join("docker-compose.yml"))
        .pop()
        .expect("docker-compose.yml is one document")
}

fn kubernetes_objects() -> Vec<Value> {
    manifests().iter().flat_map(|p| yaml_documents(p)).collect()
}

fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/k8s"))
}

/// `30s`, `2m`, `90` as seconds (the services' grace periods are humantime durations; only
/// the forms the deployment files use are needed here).
fn seconds(text: &str) -> u64 {
    let (n, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = n
        .parse()
        .unwrap_or_else(|_| panic!("not a duration: {text:?}"));
    match unit {
        "" | "s" => n,
        "m" => n * 60,
        _ => panic!("unexpected duration unit in {text:?}"),
    }
}

/// `key=value;key=value` connection strings.
fn connection_string_part<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    s.split(';')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

// ---------------------------------------------------------------------------------------------
// The validators on the real files.

#[test]
fn compose_file_matches_the_compose_specification() {
    let (ok, out) = run(
        "check-jsonschema",
        &[
            "--builtin-schema",
            "vendor.compose-spec",
            "docker-compose.yml",
        ],
    );
    assert!(
        ok,
        "docker-compose.yml does not match the Compose Specification:\n{out}"
    );
}

#[test]
fn kubernetes_manifests_pass_strict_schema_validation() {
    let files = manifests();
    for version in KUBERNETES_VERSIONS {
        let mut args = vec!["--strict", "--kubernetes-version", version];
        args.extend(files.iter().map(|p| path_str(p)));
        let (ok, out) = run("kubernetes-validate", &args);
        assert!(
            ok,
            "deploy/k8s is not valid for Kubernetes {version}:\n{out}"
        );
        // A kind the validator has no schema for is only a warning: every object must have
        // been checked.
        assert!(
            !out.contains("WARN"),
            "an object was not checked for {version}:\n{out}"
        );
    }
}

#[test]
fn dockerfile_passes_the_linter() {
    let (ok, out) = run(
        "hadolint",
        &["--failure-threshold", "warning", "deploy/Dockerfile"],
    );
    assert!(ok, "hadolint flags deploy/Dockerfile:\n{out}");
}

#[test]
fn each_validator_rejects_a_broken_copy_of_its_file() {
    let tmp = tempfile::tempdir().unwrap();

    // A depends_on condition Compose does not have.
    let compose = read("docker-compose.yml");
    assert!(compose.contains("condition: service_completed_successfully"));
    let bad = tmp.path().join("docker-compose.yml");
    std::fs::write(
        &bad,
        compose.replace(
            "condition: service_completed_successfully",
            "condition: service_completed",
        ),
    )
    .unwrap();
    let (ok, out) = run(
        "check-jsonschema",
        &["--builtin-schema", "vendor.compose-spec", path_str(&bad)],
    );
    assert!(!ok, "a bad depends_on condition passed:\n{out}");
    assert!(out.contains("service_completed"), "{out}");

    // A misspelt field: only strict validation catches it, and the test runs strict.
    let ingest = read("deploy/k8s/ingest.yaml");
    assert!(ingest.contains("readinessProbe:"));
    let bad = tmp.path().join("ingest.yaml");
    std::fs::write(&bad, ingest.replace("readinessProbe:", "readinessProbes:")).unwrap();
    for version in KUBERNETES_VERSIONS {
        let (ok, out) = run(
            "kubernetes-validate",
            &["--strict", "--kubernetes-version", version, path_str(&bad)],
        );
        assert!(!ok, "a misspelt field passed for {version}:\n{out}");
        assert!(out.contains("readinessProbes"), "{out}");
    }

    // Unpinned apt packages without the justified ignore: a warning, which must fail.
    let dockerfile = read("deploy/Dockerfile");
    assert!(dockerfile.contains("# hadolint ignore=DL3008\n"));
    let bad = tmp.path().join("Dockerfile");
    std::fs::write(&bad, dockerfile.replace("# hadolint ignore=DL3008\n", "")).unwrap();
    let (ok, out) = run(
        "hadolint",
        &["--failure-threshold", "warning", path_str(&bad)],
    );
    assert!(!ok, "an unpinned apt-get install passed the linter:\n{out}");
    assert!(out.contains("DL3008"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// What ties the files together.

/// Every `MFAGAP_…` name a string literal in the services' sources declares.
fn declared_settings() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for service in std::fs::read_dir(repo_root().join("services")).unwrap() {
        let src = service.unwrap().path().join("src");
        if src.is_dir() {
            walk(&src, &mut files);
        }
    }
    let mut names = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, _) in text.match_indices("\"MFAGAP_") {
            let rest = &text[i + 1..];
            let end = rest
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len());
            if rest[end..].starts_with('"') {
                names.insert(rest[..end].to_string());
            }
        }
    }
    names
}

/// Every `MFAGAP_…` name a text mentions.
fn mentioned_settings(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in text.match_indices("MFAGAP_") {
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[i..];
        let end = rest
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(rest.len());
        // `MFAGAP_*` and `MFAGAP_…` in prose name no setting.
        let name = rest[..end].trim_end_matches('_');
        if name.len() > "MFAGAP".len() {
            names.insert(name.to_string());
        }
    }
    names
}

#[test]
fn deployment_files_use_only_settings_the_services_declare() {
    let declared = declared_settings();
    assert!(
        declared.contains("MFAGAP_KAFKA_BOOTSTRAP") && declared.contains("MFAGAP_ARCHIVER_LISTEN"),
        "the services' settings were not found: {declared:?}"
    );
    let mut unknown = Vec::new();
    let mut files = vec![
        "docker-compose.yml".to_string(),
        "deploy/Dockerfile".to_string(),
    ];
    files.extend(
        std::fs::read_dir(repo_root().join("deploy/k8s"))
            .unwrap()
            .map(|e| format!("deploy/k8s/{}", e.unwrap().file_name().to_string_lossy())),
    );
    for file in &files {
        for name in mentioned_settings(&read(file)) {
            if !declared.contains(&name) {
                unknown.push(format!("{file}: {name}"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "settings no service declares (a typo, or a renamed flag):\n{}",
        unknown.join("\n")
    );
}

#[test]
fn kustomization_lists_every_manifest_but_the_secret_example() {
    let kustomization = yaml_documents(&repo_root().join("deploy/k8s/kustomization.yaml"));
    let listed: BTreeSet<String> = kustomization[0]["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let expected: BTreeSet<String> = manifests()
        .iter()
        .map(|p| file_name(p))
        .filter(|n| !n.ends_with(".example.yaml"))
        .collect();
    assert_eq!(listed, expected, "kustomization.yaml resources");
    // The example holds placeholders only: nothing in it may look like a real key.
    let example = read("deploy/k8s/secret.example.yaml");
    let mut checked = 0;
    for line in example.lines().filter(|l| !l.trim_start().starts_with('#')) {
        for part in line.split([';', ',']) {
            if let Some((k, v)) = part.split_once('=') {
                let k = k.to_ascii_lowercase();
                let secretish = k.ends_with("key") || k.ends_with("password");
                checked += usize::from(secretish);
                assert!(!secretish || v == "REPLACE_ME", "not a placeholder: {part}");
            }
        }
    }
    assert!(checked >= 3, "no keys or passwords found in the example");
}

#[test]
fn deployments_outlast_the_grace_period_and_probe_the_metrics_port() {
    let objects = kubernetes_objects();
    let config = object(&objects, "ConfigMap", "mfagap");
    for (name, port, grace_var, default_grace) in [
        ("mfagap-ingest", 9464, "MFAGAP_GRACE_PERIOD", "30s"),
        (
            "mfagap-archiver",
            9465,
            "MFAGAP_ARCHIVER_GRACE_PERIOD",
            "60s",
        ),
    ] {
        let deployment = object(&objects, "Deployment", name);
        let pod = &deployment["spec"]["template"];
        let spec = &pod["spec"];
        let container = &spec["containers"][0];
        let env = |var: &str| {
            container["env"]
                .as_array()
                .and_then(|e| e.iter().find(|v| v["name"] == var))
                .and_then(|v| v["value"].as_str())
                .or_else(|| config["data"][var].as_str())
        };
        // Killed before the grace period ends, a replica loses the drain it was doing.
        let grace = seconds(env(grace_var).unwrap_or(default_grace));
        let termination = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
        assert!(
            termination > grace,
            "{name}: terminationGracePeriodSeconds {termination} <= {grace_var} {grace}"
        );
        // The probes and the Service reach the port the service listens on.
        assert_eq!(container["ports"][0]["containerPort"], port, "{name}");
        assert_eq!(container["ports"][0]["name"], "metrics", "{name}");
        assert_eq!(
            container["livenessProbe"]["httpGet"]["path"],
            "/health/live"
        );
        assert_eq!(
            container["readinessProbe"]["httpGet"]["path"],
            "/health/ready"
        );
        for probe in ["livenessProbe", "readinessProbe"] {
            assert_eq!(
                container[probe]["httpGet"]["port"], "metrics",
                "{name} {probe}"
            );
        }
        let listen_var = if port == 9464 {
            "MFAGAP_LISTEN"
        } else {
            "MFAGAP_ARCHIVER_LISTEN"
        };
        assert_eq!(
            env(listen_var),
            Some(format!("0.0.0.0:{port}").as_str()),
            "{name}"
        );
        let service = object(&objects, "Service", &format!("{name}-metrics"));
        assert_eq!(service["spec"]["ports"][0]["name"], "metrics");
        assert_eq!(service["spec"]["ports"][0]["port"], port);
        assert_eq!(
            service["metadata"]["annotations"]["prometheus.io/port"],
            port.to_string()
        );
        // Selectors select the pods.
        let labels = &pod["metadata"]["labels"];
        let pdb = object(&objects, "PodDisruptionBudget", name);
        for selector in [
            &deployment["spec"]["selector"]["matchLabels"],
            &service["spec"]["selector"],
            &pdb["spec"]["selector"]["matchLabels"],
        ] {
            for (k, v) in selector.as_object().unwrap() {
                assert_eq!(&labels[k], v, "{name}: selector {k}");
            }
        }
        // Workload identity: the webhook acts on the pod label and the account's client id.
        assert_eq!(labels["azure.workload.identity/use"], "true", "{name}");
        let account = spec["serviceAccountName"].as_str().unwrap();
        let sa = object(&objects, "ServiceAccount", account);
        assert!(sa["metadata"]["annotations"]["azure.workload.identity/client-id"].is_string());
        // Hardening.
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(
            spec["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let sc = &container["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(
            sc["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{name}"
        );
        for kind in ["requests", "limits"] {
            assert!(
                container["resources"][kind]["memory"].is_string(),
                "{name} {kind}"
            );
        }
    }
}

#[test]
fn compose_reads_the_event_hub_the_emulator_config_declares() {
    let compose = compose();
    let services = &compose["services"];
    let emulator: Value = serde_json::from_str(&read("deploy/emulator/Config.json")).unwrap();
    let namespace = &emulator["UserConfig"]["NamespaceConfig"][0];
    // The emulator accepts this one namespace name only.
    assert_eq!(namespace["Name"], "emulatorNs1");

    let ingest = &services["ingest"]["environment"];
    assert_eq!(ingest["MFAGAP_SOURCE"], "eventhubs");
    let conn = ingest["MFAGAP_EVENTHUBS_CONNECTION_STRING"]
        .as_str()
        .unwrap();
    assert_eq!(
        connection_string_part(conn, "UseDevelopmentEmulator"),
        Some("true")
    );
    let host = connection_string_part(conn, "Endpoint")
        .and_then(|e| e.strip_prefix("sb://"))
        .unwrap()
        .trim_end_matches('/');
    assert!(
        services[host].is_object(),
        "the Endpoint host {host} is no compose service"
    );
    let hub = connection_string_part(conn, "EntityPath").expect("EntityPath");
    let entity = namespace["Entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["Name"] == hub)
        .unwrap_or_else(|| panic!("event hub {hub} is not in deploy/emulator/Config.json"));
    // The emulator's schema has PartitionCount as a string and forbids declaring $default.
    assert!(
        entity["PartitionCount"]
            .as_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
            >= 1
    );
    let groups: Vec<&str> = entity["ConsumerGroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["Name"].as_str().unwrap())
        .collect();
    assert!(
        !groups.iter().any(|g| g.eq_ignore_ascii_case("$default")),
        "{groups:?}"
    );
    let group = ingest["MFAGAP_CONSUMER_GROUP"].as_str().unwrap();
    assert!(
        groups.contains(&group),
        "consumer group {group} not declared: {groups:?}"
    );

    // The emulator reads its config from the mounted file.
    let mounts = services[host]["volumes"].to_string();
    assert!(
        mounts
            .contains("./deploy/emulator/Config.json:/Eventhubs_Emulator/ConfigFiles/Config.json"),
        "{mounts}"
    );
    // The feeder produces to that hub, from the file generate writes, and the archiver reads
    // the topic the ingest service writes.
    let feeder = services["feeder"]["command"].to_string();
    assert!(
        feeder.contains(&format!("-t {hub} -l /feed/signins.jsonl")),
        "{feeder}"
    );
    let generate = services["generate"]["command"].to_string();
    assert!(
        generate.contains("/var/lib/mfagap/signins.jsonl"),
        "{generate}"
    );
    assert_eq!(
        services["archiver"]["environment"]["MFAGAP_TOPIC"],
        ingest["MFAGAP_TOPIC"]
    );
    // Both services come from deploy/Dockerfile, each as its own target.
    for (service, target) in [
        ("ingest", "ingest"),
        ("archiver", "archiver"),
        ("generate", "mfagap"),
    ] {
        assert_eq!(
            services[service]["build"]["dockerfile"],
            "deploy/Dockerfile"
        );
        assert_eq!(services[service]["build"]["target"], target);
        assert!(
            read("deploy/Dockerfile").contains(&format!(" AS {target}\n")),
            "no target {target} in deploy/Dockerfile"
        );
    }
}
