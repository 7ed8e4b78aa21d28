//! `mfagap filter` as a user runs it: files and pipes in, records and a summary out.

use mfagap_generate::{ExpectedOutcome, Generator, GeneratorConfig};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn mfagap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mfagap"))
}

struct Fixture {
    dir: tempfile::TempDir,
    input: PathBuf,
    /// (category, id) of every sign-in that must be emitted, once, with its reason.
    emit: BTreeMap<(String, String), String>,
    /// Dead-letter codes, with how many.
    dead: BTreeMap<String, usize>,
    /// Successful workload sign-ins, counted once.
    workload_ok: usize,
}

fn fixture(messages: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    let mut g = Generator::new(GeneratorConfig {
        seed: 21,
        malformed_share: 0.03,
        bad_record_share: 0.01,
        duplicate_share: 0.03,
        ..GeneratorConfig::default()
    });
    let (mut emit, mut dead, mut workload_ok) = (BTreeMap::new(), BTreeMap::new(), 0);
    for _ in 0..messages {
        let m = g.next_message();
        file.write_all(&m.body).unwrap();
        file.write_all(b"\n").unwrap();
        if let Some(kind) = m.malformed {
            *dead.entry(kind.code().to_owned()).or_default() += 1;
        }
        for e in m.expected {
            match e.outcome {
                ExpectedOutcome::Emit { reason, .. } => {
                    emit.insert((e.category, e.id), reason.as_str().to_owned());
                }
                ExpectedOutcome::DeadLetter(code) => *dead.entry(code.to_owned()).or_default() += 1,
                ExpectedOutcome::Workload { succeeded: true } if !e.repeat => workload_ok += 1,
                _ => {}
            }
        }
    }
    file.flush().unwrap();
    Fixture {
        dir,
        input,
        emit,
        dead,
        workload_ok,
    }
}

fn lines(out: &[u8]) -> Vec<Value> {
    out.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("each output line is one JSON record"))
        .collect()
}

fn run(args: &[&str], input: &Path) -> Output {
    mfagap()
        .arg("filter")
        .args(args)
        .arg(input)
        .output()
        .unwrap()
}

#[test]
fn emits_each_non_mfa_sign_in_once_and_dead_letters_every_malformed_line() {
    let f = fixture(400);
    let dl = f.dir.path().join("dead.jsonl");
    let stats = f.dir.path().join("stats.json");
    let out = run(
        &[
            "--dead-letter",
            dl.to_str().unwrap(),
            "--stats",
            stats.to_str().unwrap(),
        ],
        &f.input,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = lines(&out.stdout);
    let mut seen = BTreeMap::new();
    for r in &got {
        let key = (
            r["category"].as_str().unwrap().to_owned(),
            r["id"].as_str().unwrap().to_owned(),
        );
        let reason = r["reason"].as_str().unwrap().to_owned();
        assert!(seen.insert(key, reason).is_none(), "emitted twice: {r}");
        assert_eq!(r["source"]["kind"], "file");
        assert!(r["source"]["line"].as_u64().unwrap() >= 1);
    }
    assert_eq!(
        seen, f.emit,
        "exactly the sign-ins the truth says, with its reasons"
    );

    let dead: Vec<Value> = lines(&std::fs::read(&dl).unwrap());
    let mut codes = BTreeMap::<String, usize>::new();
    for d in &dead {
        *codes
            .entry(d["code"].as_str().unwrap().to_owned())
            .or_default() += 1;
        assert!(d["error"].as_str().is_some_and(|e| !e.is_empty()));
        assert!(d["raw"].is_string() || d["rawBase64"].is_string(), "{d}");
        assert!(d["line"].as_u64().unwrap() >= 1);
    }
    assert_eq!(codes, f.dead);
    // Bytes that are not UTF-8 come back intact, in base64.
    assert!(dead.iter().any(|d| d["rawBase64"].is_string()));

    let s: Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert_eq!(s["messages"], 400);
    let emitted: u64 = s["emitted"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(emitted as usize, got.len());
    assert!(
        s["duplicates"].as_u64().unwrap() > 0,
        "the fixture repeats records"
    );

    let summary = String::from_utf8(out.stderr).unwrap();
    for word in [
        "messages",
        "SignInLogs",
        "legacy_protocol",
        "mfa_skipped",
        "single_factor",
        "skipped",
        "duplicates",
        "dead letters",
    ] {
        assert!(summary.contains(word), "summary names {word}:\n{summary}");
    }
}

#[test]
fn standard_input_and_every_thread_count_give_the_same_records() {
    let f = fixture(150);
    let ids = |out: &Output| -> BTreeSet<String> {
        assert!(out.status.success());
        lines(&out.stdout)
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let one = ids(&run(&["--threads", "1"], &f.input));
    let four = ids(&run(&["--threads", "4"], &f.input));
    let piped = mfagap()
        .args(["filter", "-"])
        .stdin(std::fs::File::open(&f.input).unwrap())
        .output()
        .unwrap();
    let stdin = ids(&piped);
    assert_eq!(one.len(), f.emit.len());
    assert_eq!(one, four);
    assert_eq!(one, stdin);
}

#[test]
fn a_file_read_twice_is_emitted_once_unless_the_window_is_off() {
    let f = fixture(100);
    let twice = |window: &str| {
        let out = mfagap()
            .args(["filter", "--dedup-window", window])
            .arg(&f.input)
            .arg(&f.input)
            .output()
            .unwrap();
        assert!(out.status.success());
        lines(&out.stdout).len()
    };
    assert_eq!(twice("500000"), f.emit.len());
    assert!(
        twice("0") >= 2 * f.emit.len(),
        "without the window every copy goes out"
    );
}

#[test]
fn workload_identities_only_with_the_flag() {
    let f = fixture(150);
    let count = |args: &[&str]| {
        let out = run(args, &f.input);
        assert!(out.status.success());
        lines(&out.stdout)
            .iter()
            .filter(|r| {
                let c = r["category"].as_str().unwrap();
                c.contains("ServicePrincipal") || c == "ManagedIdentitySignInLogs"
            })
            .count()
    };
    assert!(f.workload_ok > 0);
    assert_eq!(count(&[]), 0);
    assert_eq!(count(&["--include-service-principals"]), f.workload_ok);
}

#[test]
fn the_legacy_client_list_is_configurable() {
    let f = fixture(100);
    let out = run(&["--legacy-clients", "No Such Client"], &f.input);
    assert!(out.status.success());
    let got = lines(&out.stdout);
    assert_eq!(got.len(), f.emit.len());
    assert!(got.iter().all(|r| r["reason"] != "legacy_protocol"));
}

#[test]
fn an_unreadable_file_fails_clearly_before_any_output() {
    let f = fixture(5);
    let missing = f.dir.path().join("missing.jsonl");
    let out = mfagap()
        .arg("filter")
        .arg(&f.input)
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("cannot read") && err.contains("missing.jsonl"),
        "{err}"
    );

    let out = mfagap().arg("filter").arg(f.dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr).unwrap().contains("directory"));
}

#[test]
fn a_bad_flag_fails_with_usage() {
    let out = mfagap()
        .args(["filter", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("--no-such-flag")
    );
    let out = mfagap()
        .args(["filter", "--threads", "many"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_line_longer_than_a_chunk_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("long.jsonl");
    let mut g = Generator::new(GeneratorConfig {
        seed: 4,
        malformed_share: 0.0,
        bad_record_share: 0.0,
        duplicate_share: 0.0,
        ..GeneratorConfig::default()
    });
    // One message of about 2.5 MB: many generated messages joined into one envelope.
    let (mut records, mut size, mut expected) = (Vec::new(), 0, 0);
    while size < 2_500_000 {
        let m = g.next_message();
        size += m.body.len();
        let list = match serde_json::from_slice::<Value>(&m.body).unwrap() {
            Value::Object(mut o) => match o.remove("records") {
                Some(Value::Array(a)) => a,
                _ => vec![Value::Object(o)],
            },
            Value::Array(a) => a,
            other => vec![other],
        };
        expected += m
            .expected
            .iter()
            .filter(|e| matches!(e.outcome, ExpectedOutcome::Emit { .. }))
            .count();
        records.extend(list);
    }
    let body = serde_json::json!({ "records": records }).to_string();
    // The same message twice, the second without a final newline: its records are duplicates.
    std::fs::write(&input, format!("{body}\n{body}")).unwrap();
    let out = run(&[], &input);
    assert!(out.status.success());
    assert_eq!(lines(&out.stdout).len(), expected);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("messages       2"), "{err}");
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let f = fixture(200);
    let mut child = mfagap()
        .arg("filter")
        .arg(&f.input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 100];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
}

#[test]
fn generate_is_deterministic_for_a_seed() {
    let generate = |seed: &str| {
        let out = mfagap()
            .args(["generate", "--messages", "50", "--seed", seed])
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    };
    assert_eq!(generate("5"), generate("5"));
    assert_ne!(generate("5"), generate("6"));
    let bad = mfagap()
        .args(["generate", "--messages", "5", "--non-mfa-share", "2"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8(bad.stderr)
            .unwrap()
            .contains("between 0 and 1")
    );
}

/// The field check of the ECS output: every leaf of a document is an ECS field with its ECS
/// type (the definitions of npm `@elastic/ecs`, printed by `tests/ecs_fields.js`), a field of
/// Elastic's Azure integration with its type (`schemas/ecs/azure-signinlogs-fields.json`), or
/// under `mfagap.`, mfagap's own namespace. Anything else is an error, and so is a null, `""`,
/// `[]` or `{}` anywhere.
struct EcsCheck {
    /// ECS flat name → definition (`type`, `normalize`, `allowed_values`, `object_type`).
    ecs: serde_json::Map<String, Value>,
    /// The integration's fields outside ECS (declared, and passed through as keyword).
    integration: serde_json::Map<String, Value>,
}

/// What a leaf turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FieldKind {
    Ecs,
    Integration,
    Mfagap,
}

impl EcsCheck {
    fn load() -> EcsCheck {
        let root = mfagap_testkit::repo_root();
        let out = Command::new("node")
            .arg(root.join("tests/ecs_fields.js"))
            .output()
            .unwrap_or_else(|e| panic!("cannot run node (run scripts/setup.sh): {e}"));
        assert!(
            out.status.success(),
            "tests/ecs_fields.js: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let defs: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(defs["version"], "9.4.0");
        let ecs = defs["fields"].as_object().unwrap().clone();
        assert!(ecs.len() > 2500, "the whole of ECS, {} fields", ecs.len());
        let fixture: Value = serde_json::from_slice(
            &std::fs::read(root.join("schemas/ecs/azure-signinlogs-fields.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(fixture["source"]["version"], "1.41.0");
        let mut integration = fixture["declared"].as_object().unwrap().clone();
        integration.extend(fixture["dynamic"].as_object().unwrap().clone());
        for name in integration.keys() {
            assert!(
                !ecs.contains_key(name),
                "{name} is ECS, not the integration's"
            );
        }
        EcsCheck { ecs, integration }
    }

    /// The document's leaves with what each is, or every error found.
    fn check(&self, doc: &Value) -> Result<BTreeMap<String, FieldKind>, Vec<String>> {
        let (mut leaves, mut errors) = (BTreeMap::new(), Vec::new());
        if !doc.is_object() {
            errors.push("the document is not an object".to_owned());
        }
        self.walk("", doc, &mut leaves, &mut errors);
        if errors.is_empty() {
            Ok(leaves)
        } else {
            Err(errors)
        }
    }

    fn walk(
        &self,
        path: &str,
        v: &Value,
        leaves: &mut BTreeMap<String, FieldKind>,
        errors: &mut Vec<String>,
    ) {
        if !path.is_empty() {
            if let Some(def) = self.ecs.get(path) {
                check_value(path, def, v, errors);
                leaves.insert(path.to_owned(), FieldKind::Ecs);
                return;
            }
            if let Some(def) = self.integration.get(path) {
                check_value(path, def, v, errors);
                leaves.insert(path.to_owned(), FieldKind::Integration);
                return;
            }
        }
        match v {
            Value::Object(o) if !o.is_empty() => {
                for (k, x) in o {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    self.walk(&p, x, leaves, errors);
                }
            }
            _ if path.starts_with("mfagap.") => {
                no_empty(path, v, errors);
                leaves.insert(path.to_owned(), FieldKind::Mfagap);
            }
            _ if path.starts_with("azure.") => errors.push(format!(
                "{path}: not a field of the azure.signinlogs data stream"
            )),
            _ => errors.push(format!(
                "{path}: neither ECS, the integration's nor mfagap's"
            )),
        }
    }
}

/// Checks one field's value against its definition (ECS's, or the fixture's in ECS's shape).
fn check_value(path: &str, def: &Value, v: &Value, errors: &mut Vec<String>) {
    let ty = def["type"].as_str().unwrap_or("");
    let array = def["normalize"]
        .as_array()
        .is_some_and(|n| n.iter().any(|x| x == "array"));
    let allowed: Option<Vec<&str>> = def["allowed_values"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect());
    no_empty(path, v, errors);
    match ty {
        "alias" => {
            errors.push(format!("{path}: an alias cannot hold a value"));
            return;
        }
        "flattened" => {
            if !(v.is_object() || v.as_array().is_some_and(|a| a.iter().all(Value::is_object))) {
                errors.push(format!(
                    "{path}: flattened wants an object or objects, got {v}"
                ));
            }
            return;
        }
        "object" => {
            // `labels`: a flat map of `object_type` values.
            let inner = def["object_type"].as_str().unwrap_or("keyword");
            match v.as_object() {
                Some(o) => {
                    for (k, x) in o {
                        scalar(&format!("{path}.{k}"), inner, x, None, errors);
                    }
                }
                None => errors.push(format!("{path}: an object of {inner}, got {v}")),
            }
            return;
        }
        _ => {}
    }
    match (v, array) {
        (Value::Array(a), true) => {
            for x in a {
                scalar(path, ty, x, allowed.as_deref(), errors);
            }
        }
        (_, true) => errors.push(format!("{path}: ECS normalizes it to an array, got {v}")),
        (Value::Array(_), false) => errors.push(format!("{path}: one value, not an array: {v}")),
        (_, false) => scalar(path, ty, v, allowed.as_deref(), errors),
    }
}

fn scalar(path: &str, ty: &str, v: &Value, allowed: Option<&[&str]>, errors: &mut Vec<String>) {
    let ok = match ty {
        "keyword" | "constant_keyword" | "wildcard" | "match_only_text" | "text" => v.is_string(),
        "long" | "integer" | "short" | "byte" | "unsigned_long" => v.is_i64() || v.is_u64(),
        "float" | "double" | "half_float" | "scaled_float" => v.is_number(),
        "boolean" => v.is_boolean(),
        "ip" => v
            .as_str()
            .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok()),
        "date" => v
            .as_str()
            .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
        "geo_point" => v["lat"].is_number() && v["lon"].is_number(),
        other => {
            errors.push(format!("{path}: type {other} is not one the check knows"));
            return;
        }
    };
    if !ok {
        errors.push(format!("{path}: not a {ty}: {v}"));
    } else if let (Some(allowed), Some(s)) = (allowed, v.as_str())
        && !allowed.contains(&s)
    {
        errors.push(format!(
            "{path}: {s:?} is not one of ECS's values {allowed:?}"
        ));
    }
}

fn no_empty(path: &str, v: &Value, errors: &mut Vec<String>) {
    match v {
        Value::Null => errors.push(format!("{path}: null")),
        Value::String(s) if s.is_empty() => errors.push(format!("{path}: \"\"")),
        Value::Array(a) if a.is_empty() => errors.push(format!("{path}: []")),
        Value::Object(o) if o.is_empty() => errors.push(format!("{path}: {{}}")),
        Value::Array(a) => a.iter().for_each(|x| no_empty(path, x, errors)),
        Value::Object(o) => o
            .iter()
            .for_each(|(k, x)| no_empty(&format!("{path}.{k}"), x, errors)),
        _ => {}
    }
}

#[test]
fn ecs_output_has_the_types_of_ecs_and_of_the_integration_and_the_native_sign_ins() {
    let check = EcsCheck::load();
    let f = fixture(300);
    let args = ["--include-service-principals"];
    let native = run(&args, &f.input);
    assert!(native.status.success());
    let ecs = run(&[&args[..], &["--format", "ecs"]].concat(), &f.input);
    assert!(
        ecs.status.success(),
        "{}",
        String::from_utf8_lossy(&ecs.stderr)
    );
    let docs = lines(&ecs.stdout);
    assert!(docs.len() > 100, "{} documents", docs.len());

    let mut seen: BTreeMap<String, FieldKind> = BTreeMap::new();
    let mut ids: Vec<(String, String)> = Vec::new();
    for d in &docs {
        match check.check(d) {
            Ok(leaves) => seen.extend(leaves),
            Err(errors) => panic!("{}\nin {d}", errors.join("\n")),
        }
        // The values the data stream's constant_keyword fields and the rules expect.
        assert_eq!(d["data_stream"]["dataset"], "azure.signinlogs");
        assert_eq!(d["data_stream"]["type"], "logs");
        assert_eq!(d["event"]["dataset"], "azure.signinlogs");
        assert_eq!(d["event"]["module"], "azure");
        assert_eq!(d["ecs"]["version"], "8.11.0");
        assert_eq!(d["event"]["action"], "Sign-in activity");
        assert_eq!(d["event"]["outcome"], "success");
        assert_eq!(d["cloud"]["provider"], "azure");
        let s = &d["azure"]["signinlogs"];
        assert_eq!(s["result_type"], "0");
        assert_eq!(s["properties"]["status"]["error_code"], 0);
        assert_eq!(s["properties"]["id"], d["event"]["id"]);
        assert_eq!(d["labels"]["mfagap_reason"], d["mfagap"]["reason"]);
        let key = (
            s["category"].as_str().unwrap().to_owned(),
            d["event"]["id"].as_str().unwrap().to_owned(),
        );
        if let Some(reason) = f.emit.get(&key) {
            assert_eq!(d["labels"]["mfagap_reason"], reason.as_str(), "{d}");
        }
        ids.push(key);
    }
    let mut native_ids: Vec<(String, String)> = lines(&native.stdout)
        .iter()
        .map(|r| {
            (
                r["category"].as_str().unwrap().to_owned(),
                r["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    ids.sort();
    native_ids.sort();
    assert_eq!(ids, native_ids, "one document per native record");

    // The check looked at what matters: the fields the rules query, each with its kind.
    for (field, kind) in [
        ("@timestamp", FieldKind::Ecs),
        ("event.category", FieldKind::Ecs),
        ("event.type", FieldKind::Ecs),
        ("event.kind", FieldKind::Ecs),
        ("source.ip", FieldKind::Ecs),
        ("related.ip", FieldKind::Ecs),
        ("user.name", FieldKind::Ecs),
        ("user.email", FieldKind::Ecs),
        ("user_agent.original", FieldKind::Ecs),
        ("labels", FieldKind::Ecs),
        ("related.entity", FieldKind::Integration),
        ("geo.country_iso_code", FieldKind::Integration),
        ("azure.tenant_id", FieldKind::Integration),
        (
            "azure.signinlogs.properties.status.error_code",
            FieldKind::Integration,
        ),
        (
            "azure.signinlogs.properties.is_interactive",
            FieldKind::Integration,
        ),
        (
            "azure.signinlogs.properties.created_at",
            FieldKind::Integration,
        ),
        (
            "azure.signinlogs.properties.authentication_details",
            FieldKind::Integration,
        ),
        (
            "azure.signinlogs.properties.device_detail.is_managed",
            FieldKind::Integration,
        ),
        (
            "azure.signinlogs.properties.original_transfer_method",
            FieldKind::Integration,
        ),
        ("mfagap.reason", FieldKind::Mfagap),
    ] {
        assert_eq!(seen.get(field), Some(&kind), "{field}");
    }
}

#[test]
fn ecs_field_check_rejects_broken_documents() {
    let check = EcsCheck::load();
    let f = fixture(20);
    let out = run(&["--format", "ecs"], &f.input);
    assert!(out.status.success());
    let good = lines(&out.stdout)
        .into_iter()
        .find(|d| d["source"]["ip"].is_string() && d["user"]["email"].is_string())
        .expect("a document with an IP and an e-mail");
    assert!(check.check(&good).is_ok(), "{good}");

    type Breaks = fn(&mut Value);
    let broken: [(&str, Breaks); 14] = [
        ("event.outcome", |d| d["event"]["outcome"] = "ok".into()),
        ("event.kind", |d| d["event"]["kind"] = "signin".into()),
        ("event.category", |d| {
            d["event"]["category"] = "authentication".into()
        }),
        ("event.type", |d| {
            d["event"]["type"] = serde_json::json!(["logon"])
        }),
        ("source.ip", |d| d["source"]["ip"] = "not-an-ip".into()),
        ("related.ip", |d| {
            d["related"]["ip"] = serde_json::json!(["10.0.0.999"])
        }),
        ("@timestamp", |d| {
            d["@timestamp"] = "12/12/2025 3:03:58 PM".into()
        }),
        ("unknown_field", |d| d["unknown_field"] = "x".into()),
        ("azure.signinlogs.tenant_id", |d| {
            d["azure"]["signinlogs"]["tenant_id"] = "t".into()
        }),
        ("azure.signinlogs.properties.status.error_code", |d| {
            d["azure"]["signinlogs"]["properties"]["status"]["error_code"] = "0".into()
        }),
        ("azure.signinlogs.properties.is_interactive", |d| {
            d["azure"]["signinlogs"]["properties"]["is_interactive"] = "false".into()
        }),
        ("azure.signinlogs.properties.no_such_field", |d| {
            d["azure"]["signinlogs"]["properties"]["no_such_field"] = "x".into()
        }),
        ("labels.mfagap_reason", |d| {
            d["labels"]["mfagap_reason"] = serde_json::json!({"nested": "x"})
        }),
        ("user.name", |d| d["user"]["name"] = "".into()),
    ];
    for (field, breaks) in broken {
        let mut d = good.clone();
        breaks(&mut d);
        match check.check(&d) {
            Ok(_) => panic!("{field}: the broken document passed the check: {d}"),
            Err(errors) => assert!(
                errors.iter().any(|e| e.starts_with(field)),
                "{field}: {errors:?}"
            ),
        }
    }
}

/// Sign-ins the generator does not write but the OCSF mapping must get right, one message a
/// line: a legacy client, a skipped MFA, AD FS over IPv6, a guest with unicode names, an
/// identified device (the `host` profile), an address `ip_t` refuses, a record with nothing
/// but its id, and a user agent longer than 1.1.0 allows a string to be.
fn ocsf_tricky_messages() -> Vec<String> {
    // One line each: the properties are written over several lines here.
    let record = |id: &str, category: &str, properties: &str| {
        format!(
            r#"{{"records":[{{"category":"{category}","tenantId":"t-ocsf","resultType":"0","properties":{{"id":"{id}","createdDateTime":"2025-12-12T10:00:00.1234567Z","status":{{"errorCode":0}},{properties}}}}}]}}"#
        )
        .replace('\n', " ")
    };
    vec![
        record(
            "ocsf-legacy",
            "SignInLogs",
            r#""userPrincipalName":"alice@contoso.com","userId":"u1","userType":"Member","clientAppUsed":"IMAP4",
               "authenticationProtocol":"ropc","authenticationRequirement":"singleFactorAuthentication","sessionId":"s1",
               "appId":"a1","appDisplayName":"Office 365 Exchange Online","ipAddress":"203.0.113.7",
               "authenticationDetails":[{"authenticationMethod":"Password","succeeded":true}]"#,
        ),
        record(
            "ocsf-skipped",
            "SignInLogs",
            r#""userPrincipalName":"zoë@contoso.com","userDisplayName":"Zoë Smith","authenticationRequirement":"multiFactorAuthentication",
               "authenticationDetails":[{"authenticationMethod":"Password","succeeded":true},
                 {"authenticationMethod":"","succeeded":true,"authenticationStepResultDetail":"MFA skipped due to location"}]"#,
        ),
        record(
            "ocsf-adfs",
            "ADFSSignInLogs",
            r#""userPrincipalName":"carol@contoso.com","tokenIssuerType":"ADFederationServices","authenticationProtocol":"wsFederation",
               "authenticationRequirement":"","appDisplayName":"urn:federation:MicrosoftOnline","ipAddress":"2001:db8::1""#,
        ),
        record(
            "ocsf-guest",
            "NonInteractiveUserSignInLogs",
            r#""userPrincipalName":"bob_fabrikam.com#EXT#@contoso.onmicrosoft.com","userDisplayName":"Bob 東京 Müller",
               "userType":"Guest","authenticationRequirement":"singleFactorAuthentication","ipAddress":"198.51.100.4",
               "location":{"city":"東京","state":"東京都","countryOrRegion":"JP"},
               "authenticationDetails":[{"authenticationMethod":"Previously satisfied","succeeded":true}]"#,
        ),
        record(
            "ocsf-device",
            "SignInLogs",
            r#""userId":"u5","userPrincipalName":"o'neil@contoso.com","authenticationRequirement":"singleFactorAuthentication",
               "deviceDetail":{"deviceId":"dev-1","displayName":"ONEIL-PC","operatingSystem":"Windows10","browser":"Edge",
                 "isCompliant":true,"isManaged":true,"trustType":"Hybrid Azure AD joined"}"#,
        ),
        record(
            "ocsf-device-unknown-os",
            "SignInLogs",
            r#""userId":"u6","deviceDetail":{"deviceId":"dev-2","operatingSystem":"Plan9","trustType":"Azure AD registered"}"#,
        ),
        record(
            "ocsf-bad-address",
            "SignInLogs",
            r#""userId":"u7","ipAddress":"203.0.113.999","location":{"city":"Lagos","countryOrRegion":"NG"}"#,
        ),
        record(
            "ocsf-bare",
            "SignInLogs",
            r#""authenticationRequirement":null"#,
        ),
        record(
            "ocsf-long",
            "SignInLogs",
            &format!(r#""userId":"u8","userAgent":"{}""#, "é".repeat(70_000)),
        ),
    ]
}

/// Runs the OCSF validator (`tests/ocsf_validate.py`) on a JSON Lines file: its summary, or
/// its report of the invalid events.
fn ocsf_validate(file: &Path) -> Result<String, String> {
    let script = mfagap_testkit::repo_root().join("tests/ocsf_validate.py");
    mfagap_testkit::python([script.as_os_str(), file.as_os_str()]).map_err(|e| format!("{e:#}"))
}

/// (category, id) of each event, from where each version keeps the sign-in's id.
fn ocsf_sign_ins(events: &[Value], version: &str) -> BTreeSet<(String, String)> {
    let id_key = if version == "1.1.0" {
        "uid"
    } else {
        "original_event_uid"
    };
    events
        .iter()
        .map(|e| {
            let m = &e["metadata"];
            assert_eq!(m["version"], version, "{e}");
            (
                m["log_name"].as_str().unwrap().to_owned(),
                m[id_key].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn ocsf_output_of_each_version_is_valid_and_carries_the_native_sign_ins() {
    let f = fixture(300);
    let mut input = std::fs::OpenOptions::new()
        .append(true)
        .open(&f.input)
        .unwrap();
    for m in ocsf_tricky_messages() {
        writeln!(input, "{m}").unwrap();
    }
    drop(input);

    let native = run(&[], &f.input);
    assert!(native.status.success());
    let native: Vec<Value> = lines(&native.stdout);
    let native_ids: BTreeSet<(String, String)> = native
        .iter()
        .map(|r| {
            (
                r["category"].as_str().unwrap().to_owned(),
                r["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(native_ids.len(), native.len());
    for m in ocsf_tricky_messages() {
        let id = m
            .split(r#""id":""#)
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(native_ids.iter().any(|(_, i)| i == id), "{id} is emitted");
    }

    for version in ["1.1.0", "1.8.0"] {
        let out = run(&["--format", "ocsf", "--ocsf-version", version], &f.input);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let events = lines(&out.stdout);
        assert_eq!(events.len(), native.len(), "one event per native record");
        assert_eq!(ocsf_sign_ins(&events, version), native_ids);
        assert!(
            events
                .iter()
                .any(|e| e["metadata"]["profiles"] == serde_json::json!(["cloud", "host"])),
            "the host profile is exercised"
        );

        let file = f.dir.path().join(format!("ocsf-{version}.jsonl"));
        std::fs::write(&file, &out.stdout).unwrap();
        let summary = ocsf_validate(&file).unwrap_or_else(|e| panic!("OCSF {version}: {e}"));
        eprintln!("OCSF {version}: {}", summary.trim());
        assert!(
            summary.contains(&format!("{} events valid", events.len())),
            "{summary}"
        );

        // Broken events make it fail, each named: one the schema rejects, and two only the
        // validator's own checks catch (type_uid against activity_id, unused profiles).
        let mut schema_broken = events[0].clone();
        if version == "1.1.0" {
            schema_broken["auth_factors"] =
                serde_json::json!([{"factor_type_id": 11, "factor_type": "Password"}]);
            schema_broken["metadata"]["uid"] = "broken-schema".into();
        } else {
            schema_broken["user"]["foo_bar"] = 1.into();
            schema_broken["metadata"]["original_event_uid"] = "broken-schema".into();
        }
        let mut type_broken = schema_broken.clone();
        type_broken.as_object_mut().unwrap().remove("auth_factors");
        type_broken["user"]
            .as_object_mut()
            .unwrap()
            .remove("foo_bar");
        type_broken["activity_id"] = 2.into();
        type_broken["activity_name"] = "Logoff".into();
        let mut profile_broken = type_broken.clone();
        profile_broken["activity_id"] = 1.into();
        profile_broken["activity_name"] = "Logon".into();
        profile_broken["metadata"]["profiles"] = serde_json::json!(["cloud", "host"]);
        profile_broken.as_object_mut().unwrap().remove("device");
        let id_key = if version == "1.1.0" {
            "uid"
        } else {
            "original_event_uid"
        };
        type_broken["metadata"][id_key] = "broken-type-uid".into();
        profile_broken["metadata"][id_key] = "broken-profiles".into();
        let mut file_out = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        for e in [&schema_broken, &type_broken, &profile_broken] {
            writeln!(file_out, "{e}").unwrap();
        }
        drop(file_out);
        let report = ocsf_validate(&file).expect_err("broken events fail the validation");
        for needle in [
            "event broken-schema",
            if version == "1.1.0" {
                "'auth_factors' was unexpected"
            } else {
                "'foo_bar' was unexpected"
            },
            "event broken-type-uid",
            "type_uid: 300201 is not class_uid * 100 + activity_id (300202)",
            "event broken-profiles",
            "metadata/profiles",
            &format!("3 of {} events invalid", events.len() + 3),
        ] {
            assert!(report.contains(needle), "{needle:?} in:\n{report}");
        }
    }
}
