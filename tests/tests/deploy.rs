//! The deployment files, checked without a container engine or a cluster: docker-compose.yml
//! against the Compose Specification, deploy/k8s against the Kubernetes API schemas (strict:
//! an unknown or misspelt field fails), deploy/Dockerfile with hadolint, and what ties the
//! files to each other and to the services' settings.
//!
//! The observability files (README.md, "Alerts and runbooks") too: the alerting rules with
//! promtool (`check rules`, and the unit tests of deploy/observability/alerts.test.yaml), the
//! PrometheusRule in deploy/k8s against the operator's resource definition and against the
//! plain rules file, the Grafana dashboard's structure and queries, and every metric the rules
//! and the dashboard name against what a running `mfagap run` exports on /metrics.
//!
//! The validators are the pinned PyPI packages `scripts/setup.sh --test` installs into
//! `.tools/deploy` (linked from `.tools/bin`), and promtool from Debian's prometheus package
//! (linked there too); each works offline once installed. One test feeds each of them a broken
//! copy of the real file, so a validator that silently checks nothing would show.

use mfagap_testkit::{http_get, repo_root};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The Kubernetes versions the manifests must be valid for: the oldest still in common
/// support, so no newer field creeps in, and the newest the validator knows.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

fn tool(name: &str) -> PathBuf {
    let path = repo_root().join(".tools/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh --test",
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

/// Custom resources in deploy/k8s: (apiVersion, kind, the schema they are checked against).
/// The Kubernetes validator bundles the built-in API only and cannot check them, so each is
/// validated (strictly: unknown fields fail) against a schema made from its resource
/// definition's `openAPIV3Schema`.
const CUSTOM_RESOURCES: [(&str, &str, &str); 1] = [(
    "monitoring.coreos.com/v1",
    "PrometheusRule",
    "deploy/observability/prometheusrule.schema.json",
)];

/// The schema of a manifest whose objects are all custom resources of one kind; `None` for a
/// manifest of built-in kinds. A file mixing both would escape one of the two checks.
fn custom_resource_schema(path: &Path) -> Option<&'static str> {
    let docs = yaml_documents(path);
    let schemas: Vec<Option<&'static str>> = docs
        .iter()
        .map(|d| {
            CUSTOM_RESOURCES
                .iter()
                .find(|(api, kind, _)| d["apiVersion"] == *api && d["kind"] == *kind)
                .map(|(_, _, schema)| *schema)
        })
        .collect();
    assert!(
        schemas.windows(2).all(|w| w[0] == w[1]),
        "{} mixes custom resources with other objects",
        path.display()
    );
    schemas.first().copied().flatten()
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
        "{} missing: run scripts/setup.sh --test",
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
    let (custom, builtin): (Vec<PathBuf>, Vec<PathBuf>) = manifests()
        .into_iter()
        .partition(|p| custom_resource_schema(p).is_some());
    for version in KUBERNETES_VERSIONS {
        let mut args = vec!["--strict", "--kubernetes-version", version];
        args.extend(builtin.iter().map(|p| path_str(p)));
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
    // The custom resources, each against its definition's schema (itself a valid schema).
    let names: Vec<String> = custom.iter().map(|p| file_name(p)).collect();
    assert_eq!(
        names,
        ["prometheusrule.yaml"],
        "custom resources in deploy/k8s"
    );
    for file in &custom {
        let schema = custom_resource_schema(file).unwrap();
        let (ok, out) = run("check-jsonschema", &["--check-metaschema", schema]);
        assert!(ok, "{schema} is not a valid JSON Schema:\n{out}");
        let (ok, out) = run(
            "check-jsonschema",
            &["--schemafile", schema, path_str(file)],
        );
        assert!(ok, "{} does not match {schema}:\n{out}", file.display());
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

    // A misspelt field of the PrometheusRule: its schema is strict.
    let rule = read("deploy/k8s/prometheusrule.yaml");
    assert!(rule.contains("          annotations:\n"));
    let bad = tmp.path().join("prometheusrule.yaml");
    std::fs::write(
        &bad,
        rule.replacen("          annotations:\n", "          anotations:\n", 1),
    )
    .unwrap();
    let (ok, out) = run(
        "check-jsonschema",
        &[
            "--schemafile",
            "deploy/observability/prometheusrule.schema.json",
            path_str(&bad),
        ],
    );
    assert!(!ok, "a misspelt PrometheusRule field passed:\n{out}");
    assert!(out.contains("anotations"), "{out}");

    // An expression that does not parse fails `check rules`; a threshold moved fails the
    // unit test that pins it (the copies side by side: the test names its rules file).
    let rules = read("deploy/observability/alerts.yaml");
    let tests = read("deploy/observability/alerts.test.yaml");
    assert!(rules.contains("mfagap_ingest_consumer_lag > 1000\n"));
    let rules_file = tmp.path().join("alerts.yaml");
    std::fs::write(
        &rules_file,
        rules.replacen("consumer_lag > 1000\n", "consumer_lag > > 1000\n", 1),
    )
    .unwrap();
    let (ok, out) = run("promtool", &["check", "rules", path_str(&rules_file)]);
    assert!(!ok, "an expression that does not parse passed:\n{out}");
    assert!(out.contains("could not parse expression"), "{out}");
    std::fs::write(
        &rules_file,
        rules.replacen("consumer_lag > 1000\n", "consumer_lag > 100000\n", 1),
    )
    .unwrap();
    let tests_file = tmp.path().join("alerts.test.yaml");
    std::fs::write(&tests_file, &tests).unwrap();
    let (ok, out) = run("promtool", &["test", "rules", path_str(&tests_file)]);
    assert!(!ok, "a moved threshold passed the unit tests:\n{out}");
    assert!(out.contains("MfagapIngestLagGrowing"), "{out}");
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

// ---------------------------------------------------------------------------------------------
// Alerting rules and the dashboard (README.md, "Alerts and runbooks").

const RULES: &str = "deploy/observability/alerts.yaml";
const RULE_TESTS: &str = "deploy/observability/alerts.test.yaml";
const PROMETHEUS_RULE: &str = "deploy/k8s/prometheusrule.yaml";
const DASHBOARD: &str = "deploy/observability/mfagap-dashboard.json";

/// Series the rules and the dashboard read that no mfagap service exports: kube-state-metrics'
/// pod status (MfagapServiceNotReady, the readiness panel) and Prometheus's own `up`.
const EXTERNAL_METRICS: [&str; 3] = ["kube_pod_status_phase", "kube_pod_status_ready", "up"];

fn rules_file() -> Value {
    yaml_documents(&repo_root().join(RULES))
        .pop()
        .expect("the rules file is one document")
}

/// Every alerting rule of the rules file.
fn alert_rules() -> Vec<Value> {
    let rules: Vec<Value> = rules_file()["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").clone())
        .collect();
    assert!(rules.len() >= 6, "alerts missing from {RULES}");
    rules
}

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"))
}

/// Every panel, those inside collapsed rows too.
fn panels(dashboard: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        out.push(p.clone());
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner.iter().cloned());
        }
    }
    out
}

/// The PromQL of every dashboard query: (where, expression). A variable's `label_values(m,
/// label)` gives its metric selector.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(dashboard) {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                format!(
                    "panel {:?} {}",
                    p["title"].as_str().unwrap_or_default(),
                    t["refId"].as_str().unwrap_or_default()
                ),
                t["expr"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    for v in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if v["type"] == "query" {
            let name = v["name"].as_str().unwrap_or_default();
            let q = v["query"]["query"]
                .as_str()
                .or_else(|| v["query"].as_str())
                .unwrap_or_default();
            let selector = q
                .strip_prefix("label_values(")
                .and_then(|r| r.split_once(','))
                .map(|(m, _)| m.trim())
                .unwrap_or_else(|| panic!("variable {name}: not label_values(…): {q}"));
            out.push((format!("variable {name}"), selector.to_owned()));
        }
    }
    out
}

/// Grafana's variables replaced by values Prometheus takes, so a dashboard query can be
/// checked as PromQL.
fn without_grafana_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("$ingest_job", ".*")
        .replace("$archiver_job", ".*")
}

/// The metric names a PromQL expression reads, each with the function it is the direct
/// argument of (`rate`, `deriv`, `sum`…; `None` at the top). Labels (in `{…}`, in `by (…)`
/// and the like), ranges, strings, numbers, keywords and Grafana `$variables` are skipped.
fn metric_names(expr: &str) -> Vec<(String, Option<String>)> {
    const KEYWORDS: [&str; 11] = [
        "and", "or", "unless", "bool", "offset", "inf", "nan", "atan2", "by", "without", "on",
    ];
    const LABEL_LISTS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const AGGREGATIONS: [&str; 13] = [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = Vec::new();
    let mut calls: Vec<Option<String>> = Vec::new();
    let mut pending: Option<String> = None;
    let (mut braces, mut brackets) = (0usize, 0usize);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        match c {
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            '[' => brackets += 1,
            ']' => brackets = brackets.saturating_sub(1),
            _ => {}
        }
        if braces > 0 || brackets > 0 || c == '}' || c == ']' {
            i += 1;
            continue;
        }
        if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '$' || c.is_ascii_digit() || c == '.' {
            // A variable, a number or a duration.
            i += 1;
            while i < chars.len() && (ident(chars[i]) || chars[i] == '.') {
                i += 1;
            }
            continue;
        }
        if c == '(' {
            calls.push(pending.take());
            i += 1;
            continue;
        }
        if c == ')' {
            calls.pop();
            i += 1;
            continue;
        }
        if !ident(c) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && ident(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let next = chars[i..].iter().find(|c| !c.is_whitespace()).copied();
        if LABEL_LISTS.contains(&word.as_str()) {
            // `by (job, instance)`: label names up to the closing parenthesis.
            if next == Some('(') {
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                i += 1;
            }
        } else if next == Some('(') || AGGREGATIONS.contains(&word.as_str()) {
            pending = Some(word);
        } else if !KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
            names.push((word, calls.last().cloned().flatten()));
        }
    }
    names
}

/// What a running service exports: metric family → type (`# TYPE` lines), and every sample
/// name (`…_bucket` of a histogram included).
struct Exported {
    types: BTreeMap<String, String>,
    samples: BTreeSet<String>,
}

impl Exported {
    fn parse(text: &str) -> Exported {
        let mut types = BTreeMap::new();
        let mut samples = BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    types.insert(name.to_owned(), kind.to_owned());
                }
            } else if !line.starts_with('#') && !line.trim().is_empty() {
                let end = line.find(['{', ' ']).unwrap_or(line.len());
                samples.insert(line[..end].to_owned());
            }
        }
        Exported { types, samples }
    }

    /// The type of the family a sample name belongs to.
    fn type_of(&self, sample: &str) -> Option<&str> {
        if let Some(t) = self.types.get(sample) {
            return Some(t);
        }
        ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
            let family = sample.strip_suffix(suffix)?;
            self.types.get(family).map(String::as_str)
        })
    }
}

/// What is wrong with the metrics the expressions read: names no service exports (nor
/// [`EXTERNAL_METRICS`]), and functions given a metric of the wrong type (`rate()` of a gauge,
/// `deriv()` of a counter).
fn metric_problems(exprs: &[(String, String)], exported: &Exported) -> Vec<String> {
    let mut problems = Vec::new();
    for (place, expr) in exprs {
        let names = metric_names(expr);
        if names.is_empty() {
            problems.push(format!("{place}: no metric in {expr:?}"));
        }
        for (name, call) in names {
            if EXTERNAL_METRICS.contains(&name.as_str()) {
                continue;
            }
            if !exported.samples.contains(&name) {
                problems.push(format!("{place}: {name} is not exported"));
                continue;
            }
            let kind = exported.type_of(&name).unwrap_or("untyped");
            // A counter, a histogram's buckets, sum or count (type_of finds a histogram by
            // those samples only), or a summary's sum or count.
            let counted = matches!(kind, "counter" | "histogram")
                || (kind == "summary" && (name.ends_with("_sum") || name.ends_with("_count")));
            let fits = match call.as_deref() {
                Some("rate" | "irate" | "increase" | "resets") => counted,
                Some("deriv" | "delta" | "idelta" | "predict_linear") => kind == "gauge",
                _ => true,
            };
            if !fits {
                problems.push(format!(
                    "{place}: {}({name}) of a {kind}",
                    call.unwrap_or_default()
                ));
            }
        }
    }
    problems
}

/// The mfagap binary, built beside this test (target/<profile>/): `cargo test --workspace`
/// builds it; for this test alone, `cargo build -p mfagap` first.
fn mfagap_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let bin = profile.join(format!("mfagap{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p mfagap`",
        bin.display()
    );
    bin
}

/// `/metrics` of `mfagap run` once both services have worked: the ingest service reads
/// generated sign-ins (malformed ones among them) from a Kafka topic, so its consumer lag is
/// reported, and writes them exactly once; the archiver reads them and publishes Parquet.
/// The series of events such a run never sees (Event Hubs reopens, storage retries, fenced
/// partitions, aborts) are there from the services' start, at zero.
fn exported_by_a_running_service() -> String {
    use mfagap_testkit::unique;
    let broker = mfagap_testkit::Broker::noida().expect("a broker");
    let input = unique("deploy-in");
    let output = unique("deploy-out");
    let dead = unique("deploy-dl");
    let archiver_dead = unique("deploy-adl");
    broker.create_topic(&input, 2).unwrap();
    broker.create_topic(&output, 2).unwrap();
    broker.create_topic(&dead, 1).unwrap();
    broker.create_topic(&archiver_dead, 1).unwrap();
    let generated = mfagap_testkit::generated(600, 17, 10, true);
    broker.produce(&input, 2, &generated.bodies).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.log");
    let addr = format!("127.0.0.1:{}", mfagap_testkit::port());
    let property = broker.extra_properties().join(",");
    let mut cmd = Command::new(mfagap_binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("MFAGAP_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(["run", "--source", "kafka", "--progress", "off"])
        .args(["--kafka-bootstrap", &broker.bootstrap, "--listen", &addr])
        .arg("--data")
        .arg(dir.path().join("data"))
        .env("MFAGAP_SOURCE_BOOTSTRAP", &broker.bootstrap)
        .env("MFAGAP_SOURCE_TOPIC", &input)
        .env("MFAGAP_CONSUMER_GROUP", unique("deploy-ingest"))
        .env("MFAGAP_TOPIC", &output)
        .env("MFAGAP_DEAD_LETTER_TOPIC", &dead)
        .env("MFAGAP_ARCHIVER_DEAD_LETTER_TOPIC", &archiver_dead)
        .env("MFAGAP_ARCHIVER_GROUP", unique("deploy-archiver"))
        .env("MFAGAP_POSITIONS_TOPIC", unique("deploy-positions"))
        .env("MFAGAP_ROLL_AGE", "1s")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    if !property.is_empty() {
        for var in [
            "MFAGAP_SOURCE_PROPERTIES",
            "MFAGAP_KAFKA_PROPERTIES",
            "MFAGAP_ARCHIVER_KAFKA_PROPERTIES",
        ] {
            cmd.env(var, &property);
        }
    }
    let mut child = cmd.spawn().expect("start mfagap run");
    let tail = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };

    // Everything read, dead letters counted, something published, both lags reported.
    let messages = generated.bodies.len() as f64;
    let deadline = Instant::now() + Duration::from_secs(120);
    let text = loop {
        let text = http_get(&addr, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default();
        let m = |name: &str| mfagap_testkit::metric(&text, name);
        if m("mfagap_ingest_messages_total") >= messages
            && m("mfagap_ingest_dead_letters_total") > 0.0
            && m("mfagap_archiver_rows_total") > 0.0
            && text.contains("mfagap_ingest_consumer_lag{")
            && text.contains("mfagap_archiver_consumer_lag{")
        {
            break text;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("mfagap run ended early ({status}):\n{}", tail());
        }
        if Instant::now() > deadline {
            mfagap_testkit::process::signal(child.id(), mfagap_testkit::process::SIGKILL);
            let _ = child.wait();
            panic!(
                "the run did not get there in time; /metrics:\n{text}\n{}",
                tail()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    mfagap_testkit::process::signal(child.id(), mfagap_testkit::process::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            mfagap_testkit::process::signal(child.id(), mfagap_testkit::process::SIGKILL);
            let _ = child.wait();
            panic!("mfagap run did not stop on SIGTERM:\n{}", tail());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    text
}

#[test]
fn promtool_checks_the_rules_and_every_alert_fires_and_stays_silent_in_the_unit_tests() {
    let rules = alert_rules();
    let (ok, out) = run("promtool", &["check", "rules", RULES]);
    assert!(ok, "promtool check rules {RULES}:\n{out}");
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", rules.len())),
        "{out}"
    );
    let (ok, out) = run("promtool", &["test", "rules", RULE_TESTS]);
    assert!(ok, "promtool test rules {RULE_TESTS}:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");

    // Each alert has a case where it fires and one where it stays silent, and its test
    // reads the rules file the deployment uses.
    let tests = yaml_documents(&repo_root().join(RULE_TESTS))
        .pop()
        .expect("one document");
    assert_eq!(
        tests["rule_files"],
        serde_json::json!(["alerts.yaml"]),
        "{RULE_TESTS} must test {RULES}"
    );
    let mut fires = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for case in tests["tests"].as_array().expect("tests") {
        for t in case["alert_rule_test"].as_array().into_iter().flatten() {
            let name = t["alertname"].as_str().unwrap().to_owned();
            let expected = t["exp_alerts"].as_array().map_or(0, Vec::len);
            if expected > 0 {
                fires.insert(name);
            } else {
                silent.insert(name);
            }
        }
    }
    for rule in &rules {
        let name = rule["alert"].as_str().expect("alerting rules only");
        assert!(fires.contains(name), "no unit test makes {name} fire");
        assert!(silent.contains(name), "no unit test keeps {name} silent");
    }
}

#[test]
fn alerts_have_a_severity_a_service_and_a_runbook_in_the_readme() {
    let readme = read("README.md");
    let metrics = readme
        .find("\n## Metrics and health\n")
        .expect("README: Metrics and health");
    let start = readme
        .find("\n## Alerts and runbooks\n")
        .expect("README: Alerts and runbooks");
    let next_after_metrics = metrics + 1 + readme[metrics + 1..].find("\n## ").unwrap();
    assert_eq!(
        next_after_metrics, start,
        "Alerts and runbooks comes right after Metrics and health"
    );
    let section_end = readme[start + 1..]
        .find("\n## ")
        .map_or(readme.len(), |i| start + 1 + i);
    let section = &readme[start..section_end];
    let repository = read("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("repository = "))
        .map(|v| v.trim_matches('"').to_owned())
        .expect("the workspace's repository");
    let mut runbooks = 0;
    for rule in alert_rules() {
        let name = rule["alert"].as_str().unwrap();
        assert!(
            ["warning", "critical"].contains(&rule["labels"]["severity"].as_str().unwrap_or("")),
            "{name}: severity"
        );
        // MfagapServiceNotReady and MfagapMetricsAbsent name the service from the series.
        let service = rule["labels"]["service"].as_str();
        assert!(
            service.is_none_or(|s| s == "ingest" || s == "archiver"),
            "{name}: service {service:?}"
        );
        assert!(
            service.is_some() || rule["expr"].as_str().unwrap().contains("\"service\""),
            "{name}: no service label"
        );
        for key in ["summary", "description"] {
            assert!(
                rule["annotations"][key]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{name}: {key}"
            );
        }
        let anchor = name.to_ascii_lowercase();
        assert_eq!(
            rule["annotations"]["runbook_url"],
            format!("{repository}/blob/main/README.md#{anchor}"),
            "{name}: runbook_url"
        );
        // The heading the anchor resolves to, with a paragraph under it.
        let heading = format!("\n### {name}\n\n");
        let at = section
            .find(&heading)
            .unwrap_or_else(|| panic!("no runbook for {name} in Alerts and runbooks"));
        let body = &section[at + heading.len()..];
        let paragraph = &body[..body.find("\n### ").unwrap_or(body.len())];
        assert!(
            paragraph.split_whitespace().count() > 30,
            "{name}: the runbook says too little"
        );
        assert!(
            section.contains(&format!("(#{anchor})")),
            "{name} is missing from the table of alerts"
        );
        runbooks += 1;
    }
    assert_eq!(
        section.matches("\n### ").count(),
        runbooks,
        "a runbook for an alert that does not exist"
    );
}

#[test]
fn prometheus_rule_manifest_holds_the_rules_file_groups() {
    let docs = yaml_documents(&repo_root().join(PROMETHEUS_RULE));
    assert_eq!(docs.len(), 1, "{PROMETHEUS_RULE}: one object");
    let rule = &docs[0];
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(
        rule["spec"]["groups"],
        rules_file()["groups"],
        "{PROMETHEUS_RULE} and {RULES} differ: edit both"
    );
    assert_eq!(
        rules_file().as_object().unwrap().keys().collect::<Vec<_>>(),
        ["groups"],
        "{RULES} holds more than groups"
    );
}

#[test]
fn dashboard_reads_the_datasource_variable_and_its_queries_are_promql() {
    let dashboard = dashboard();
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating");
    let datasource = variables
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a data source variable");
    assert_eq!(datasource["query"], "prometheus", "of type prometheus");
    let var = format!("${{{}}}", datasource["name"].as_str().unwrap());
    // No data source uid anywhere but the variable: not in panels, targets or variables.
    fn datasources<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    if k == "datasource" {
                        out.push(x);
                    }
                    datasources(x, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| datasources(x, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    datasources(&dashboard, &mut found);
    for d in &found {
        assert_eq!(
            d["uid"],
            var.as_str(),
            "a data source other than {var}: {d}"
        );
        assert_eq!(d["type"], "prometheus", "{d}");
    }
    assert!(
        dashboard.get("__inputs").is_none(),
        "the dashboard asks for its data source through {var}"
    );

    let mut ids = BTreeSet::new();
    let mut queries = 0;
    for p in panels(&dashboard) {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(
            ids.insert(p["id"].as_u64().expect("a panel id")),
            "{title}: id"
        );
        assert!(
            p["gridPos"]["w"].as_u64().is_some_and(|w| w <= 24),
            "{title}"
        );
        if p["type"] == "row" {
            assert!(p.get("targets").is_none(), "row {title} has queries");
            continue;
        }
        assert_eq!(p["datasource"]["uid"], var.as_str(), "panel {title}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title} has no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], var.as_str(), "panel {title}");
            queries += 1;
        }
    }
    // The variables the queries use are the dashboard's or Grafana's own.
    let defined: BTreeSet<String> = variables
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect();
    let all = dashboard_queries(&dashboard);
    assert!(all.len() > queries, "the job variables query nothing");
    for (place, expr) in &all {
        for (i, _) in expr.match_indices('$') {
            let name: String = expr[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                defined.contains(&name) || name.starts_with("__"),
                "{place}: ${name} is no variable of the dashboard"
            );
        }
    }
    // Every query parses: promtool checks them as recording rules.
    let rules: Vec<Value> = all
        .iter()
        .enumerate()
        .map(|(i, (_, e))| {
            serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": without_grafana_variables(e)})
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("dashboard-queries.yaml");
    // JSON is YAML.
    let doc = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    std::fs::write(&file, doc.to_string()).unwrap();
    let (ok, out) = run("promtool", &["check", "rules", path_str(&file)]);
    assert!(ok, "a dashboard query is not PromQL:\n{out}");
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", all.len())),
        "{out}"
    );

    // What the dashboard must show (README.md, "Alerts and runbooks").
    let used: BTreeSet<String> = all
        .iter()
        .flat_map(|(_, e)| metric_names(e))
        .map(|(n, _)| n)
        .collect();
    for needed in [
        "mfagap_ingest_messages_total",
        "mfagap_ingest_produced_total",
        "mfagap_ingest_emitted_total",
        "mfagap_ingest_dead_letters_total",
        "mfagap_ingest_consumer_lag",
        "mfagap_ingest_produce_latency_seconds_bucket",
        "mfagap_ingest_in_flight_messages",
        "mfagap_ingest_eventhubs_processor_restarts_total",
        "mfagap_ingest_transactions_total",
        "mfagap_ingest_eventhubs_partitions_fenced_total",
        "mfagap_archiver_rows_total",
        "mfagap_archiver_files_total",
        "mfagap_archiver_consumer_lag",
        "mfagap_archiver_publish_retries_total",
        "mfagap_archiver_fenced_units_total",
        "kube_pod_status_ready",
    ] {
        assert!(
            used.contains(needed),
            "the dashboard does not show {needed}"
        );
    }
}

#[test]
fn the_metric_name_reader_finds_metrics_and_only_metrics() {
    let names = |e: &str| -> Vec<(String, Option<String>)> { metric_names(e) };
    let one = |n: &str, f: Option<&str>| vec![(n.to_owned(), f.map(str::to_owned))];
    assert_eq!(
        names(
            r#"sum by (job, instance) (rate(a_total{job=~"$ingest_job", x="by (y)"}[$__rate_interval]))"#
        ),
        one("a_total", Some("rate"))
    );
    assert_eq!(
        names("histogram_quantile(0.99, sum by (le) (rate(b_seconds_bucket[5m])))"),
        one("b_seconds_bucket", Some("rate"))
    );
    assert_eq!(
        names("c > 1000\nand\nderiv(c[15m]) > 0 unless on (pod) max by (pod) (d) == 1"),
        vec![
            ("c".to_owned(), None),
            ("c".to_owned(), Some("deriv".to_owned())),
            ("d".to_owned(), Some("max".to_owned())),
        ]
    );
    assert_eq!(
        names(r#"label_replace(absent(e), "service", "ingest", "", "") or f offset 5m"#),
        vec![
            ("e".to_owned(), Some("absent".to_owned())),
            ("f".to_owned(), None)
        ]
    );
}

#[test]
fn dashboard_and_rules_name_only_metrics_a_running_service_exports() {
    let text = exported_by_a_running_service();
    let exported = Exported::parse(&text);
    // Histograms are histograms (buckets), not summaries: the `_seconds` bucket bounds of
    // services/runtime/src/metrics.rs.
    for family in [
        "mfagap_ingest_produce_latency_seconds",
        "mfagap_ingest_transaction_commit_seconds",
        "mfagap_archiver_publish_latency_seconds",
        "mfagap_archiver_produce_latency_seconds",
    ] {
        assert_eq!(
            exported.types.get(family).map(String::as_str),
            Some("histogram"),
            "{family}\n{text}"
        );
    }

    let mut exprs: Vec<(String, String)> = alert_rules()
        .iter()
        .map(|r| {
            (
                format!("rule {}", r["alert"].as_str().unwrap_or_default()),
                r["expr"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    exprs.extend(dashboard_queries(&dashboard()));
    // The unit tests' input series, so that they test series that exist.
    let tests = yaml_documents(&repo_root().join(RULE_TESTS)).pop().unwrap();
    for case in tests["tests"].as_array().unwrap() {
        for s in case["input_series"].as_array().into_iter().flatten() {
            exprs.push((
                format!("{RULE_TESTS} series"),
                s["series"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let problems = metric_problems(&exprs, &exported);
    assert!(
        problems.is_empty(),
        "metrics the services do not export as used:\n{}\n\n/metrics:\n{text}",
        problems.join("\n")
    );

    // The check itself: a misspelt name, a name of nobody's, and a gauge under rate() fail.
    let wrong = [
        ("misspelt", "sum(rate(mfagap_ingest_messagez_total[5m]))"),
        ("nobody's", "kube_pod_status_redy == 0"),
        ("gauge", "rate(mfagap_ingest_consumer_lag[5m])"),
        ("counter", "deriv(mfagap_archiver_files_total[15m])"),
        (
            "no buckets",
            "rate(mfagap_archiver_buffered_rows_bucket[5m])",
        ),
    ]
    .map(|(p, e)| (p.to_owned(), e.to_owned()));
    let found = metric_problems(&wrong, &exported);
    assert_eq!(found.len(), wrong.len(), "{found:#?}");
    for (place, _) in &wrong {
        assert!(
            found.iter().any(|f| f.starts_with(&format!("{place}:"))),
            "{place} passed: {found:#?}"
        );
    }
}
