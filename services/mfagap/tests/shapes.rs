//! The same sign-in in any input shape gives the same output record: a generated corpus, every
//! record converted to a Graph `signIn` (v1.0 and beta) and to a Log Analytics row (nested
//! columns as JSON, as strings, as the table reference types them), run through `mfagap
//! filter`; and Microsoft's documented examples of each shape, with the verdict each must get.

use mfagap_generate::{Generator, GeneratorConfig};
use mfagap_testkit::shapes::{self, Columns, GraphVersion};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What one `filter` run gave: the output records by (category, id), and the summary.
struct Run {
    records: BTreeMap<(String, String), Value>,
    stats: Value,
}

/// Runs `filter` on a file of JSON Lines, with workload identities, so every category emits.
fn filter(input: &Path) -> Run {
    let stats = input.with_extension("stats.json");
    let out = Command::new(env!("CARGO_BIN_EXE_mfagap"))
        .args(["filter", "--include-service-principals", "--stats"])
        .arg(&stats)
        .arg(input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut records = BTreeMap::new();
    for line in out.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let r: Value = serde_json::from_slice(line).unwrap();
        let key = (
            r["category"].as_str().unwrap().to_owned(),
            r["id"].as_str().unwrap().to_owned(),
        );
        assert!(records.insert(key, r).is_none(), "emitted twice");
    }
    let stats = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    Run { records, stats }
}

fn write_lines(path: &Path, bodies: &[Value]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for b in bodies {
        serde_json::to_writer(&mut f, b).unwrap();
        f.write_all(b"\n").unwrap();
    }
    f.flush().unwrap();
}

/// The fields that differ by design: where mfagap read the record (`source`: the converted
/// file has other lines) and when (`ingestedAt`: the time of the run).
fn comparable(r: &Value) -> Value {
    let mut r = r.clone();
    let o = r.as_object_mut().unwrap();
    o.remove("source");
    o.remove("ingestedAt");
    r
}

/// One way of writing the corpus: the messages, and the records it could not carry by
/// category.
struct Written {
    bodies: Vec<Value>,
    left_out: BTreeMap<String, usize>,
    carried: Vec<(String, String)>,
}

/// Converts each diagnostic message into one message of another shape (`None` from `convert`
/// leaves a record out); `single` writes one record per line instead.
fn convert(
    messages: &[Value],
    one: impl Fn(&Value) -> Option<Value>,
    wrap: impl Fn(Vec<Value>, usize) -> Value,
    single: bool,
) -> Written {
    let mut w = Written {
        bodies: Vec::new(),
        left_out: BTreeMap::new(),
        carried: Vec::new(),
    };
    for (n, m) in messages.iter().enumerate() {
        let mut converted = Vec::new();
        for r in shapes::records_of(m) {
            let category = r["category"].as_str().unwrap().to_owned();
            match one(&r) {
                Some(c) => {
                    let id = r["properties"]["id"].as_str().unwrap_or("").to_owned();
                    w.carried.push((category, id));
                    converted.push(c);
                }
                None => *w.left_out.entry(category).or_default() += 1,
            }
        }
        if single {
            w.bodies.extend(converted);
        } else if !converted.is_empty() {
            w.bodies.push(wrap(converted, n));
        }
    }
    w
}

#[test]
fn every_generated_sign_in_gives_the_same_record_in_every_shape() {
    let dir = tempfile::tempdir().unwrap();
    // Only well-formed records: the broken ones have no sign-in to carry into another shape
    // (the decoder's own tests give each shape its dead letters). Repeats stay in, so
    // duplicate suppression is compared too.
    let mut g = Generator::new(GeneratorConfig {
        seed: 16,
        malformed_share: 0.0,
        bad_record_share: 0.0,
        duplicate_share: 0.02,
        ..GeneratorConfig::default()
    });
    let messages: Vec<Value> = (0..300)
        .map(|_| serde_json::from_slice(&g.next_message().body).unwrap())
        .collect();
    let diagnostic = dir.path().join("diagnostic.jsonl");
    write_lines(&diagnostic, &messages);
    let want = filter(&diagnostic);
    assert!(want.records.len() > 500, "{} records", want.records.len());
    for category in [
        "SignInLogs",
        "NonInteractiveUserSignInLogs",
        "ADFSSignInLogs",
        "ServicePrincipalSignInLogs",
        "ManagedIdentitySignInLogs",
    ] {
        assert!(
            want.records.keys().any(|(c, _)| c == category),
            "the corpus emits {category}"
        );
    }

    let page = |v: GraphVersion| {
        move |list: Vec<Value>, n: usize| {
            let token = format!("page{n}");
            shapes::graph_page(list, v, Some(&token))
        }
    };
    let rows = |c: Columns| move |r: &Value| shapes::log_analytics_row(r, c);
    #[allow(clippy::type_complexity)]
    let variants: [(&str, Written, &str, &[&str]); 7] = [
        (
            "graph-v1.0-single",
            convert(
                &messages,
                |r| shapes::graph_sign_in(r, GraphVersion::V1),
                |l, _| Value::Array(l),
                true,
            ),
            "graph",
            &[
                "ADFSSignInLogs",
                "ServicePrincipalSignInLogs",
                "ManagedIdentitySignInLogs",
                "MicrosoftServicePrincipalSignInLogs",
                "AuditLogs",
            ],
        ),
        (
            "graph-v1.0-array",
            convert(
                &messages,
                |r| shapes::graph_sign_in(r, GraphVersion::V1),
                |l, _| Value::Array(l),
                false,
            ),
            "graph",
            &[
                "ADFSSignInLogs",
                "ServicePrincipalSignInLogs",
                "ManagedIdentitySignInLogs",
                "MicrosoftServicePrincipalSignInLogs",
                "AuditLogs",
            ],
        ),
        (
            "graph-v1.0-page",
            convert(
                &messages,
                |r| shapes::graph_sign_in(r, GraphVersion::V1),
                page(GraphVersion::V1),
                false,
            ),
            "graph",
            &[
                "ADFSSignInLogs",
                "ServicePrincipalSignInLogs",
                "ManagedIdentitySignInLogs",
                "MicrosoftServicePrincipalSignInLogs",
                "AuditLogs",
            ],
        ),
        (
            "graph-beta-page",
            convert(
                &messages,
                |r| shapes::graph_sign_in(r, GraphVersion::Beta),
                page(GraphVersion::Beta),
                false,
            ),
            "graph",
            &[
                "ADFSSignInLogs",
                "MicrosoftServicePrincipalSignInLogs",
                "AuditLogs",
            ],
        ),
        (
            "log-analytics-json-export",
            convert(
                &messages,
                rows(Columns::Json),
                |l, _| shapes::data_export(l),
                false,
            ),
            "log_analytics",
            &["MicrosoftServicePrincipalSignInLogs"],
        ),
        (
            "log-analytics-strings-array",
            convert(
                &messages,
                rows(Columns::Strings),
                |l, _| Value::Array(l),
                false,
            ),
            "log_analytics",
            &["MicrosoftServicePrincipalSignInLogs"],
        ),
        (
            "log-analytics-documented-single",
            convert(
                &messages,
                rows(Columns::AsDocumented),
                |l, _| Value::Array(l),
                true,
            ),
            "log_analytics",
            &["MicrosoftServicePrincipalSignInLogs"],
        ),
    ];

    for (name, written, shape, may_leave_out) in variants {
        for category in written.left_out.keys() {
            assert!(
                may_leave_out.contains(&category.as_str()),
                "{name} left out {category} records"
            );
        }
        let path = dir.path().join(format!("{name}.jsonl"));
        write_lines(&path, &written.bodies);
        let got = filter(&path);

        // Exactly the emitted records of the sign-ins this shape carries, field for field.
        let carried: std::collections::BTreeSet<_> = written.carried.iter().cloned().collect();
        let expected: BTreeMap<_, _> = want
            .records
            .iter()
            .filter(|(k, _)| carried.contains(*k))
            .map(|(k, r)| (k.clone(), comparable(r)))
            .collect();
        assert!(expected.len() > 300, "{name}: {} records", expected.len());
        assert_eq!(
            got.records.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{name}: the same sign-ins"
        );
        for (key, r) in &got.records {
            assert_eq!(
                comparable(r),
                expected[key],
                "{name}: {key:?} differs from the diagnostic record's output"
            );
        }

        // Every record read is of this shape and accounted for; none is a dead letter.
        let s = &got.stats;
        assert_eq!(s["records"], written.carried.len() as u64, "{name}");
        assert_eq!(
            s["byShape"],
            serde_json::json!({ shape: written.carried.len() }),
            "{name}"
        );
        assert_eq!(s["deadLetterRecords"], 0, "{name}");
        assert_eq!(s["deadLetterMessages"], 0, "{name}");
    }
    assert_eq!(
        want.stats["byShape"],
        serde_json::json!({ "diagnostic": want.stats["records"] })
    );
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/shapes")
        .join(name)
}

/// A documented example, as one message on one line (the files are pretty-printed).
fn run_fixture(dir: &Path, name: &str) -> (Run, Vec<Value>) {
    let doc: Value = serde_json::from_slice(&std::fs::read(fixture(name)).unwrap()).unwrap();
    let path = dir.join(name).with_extension("jsonl");
    write_lines(&path, &[doc]);
    let dead = path.with_extension("dead.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_mfagap"))
        .args(["filter", "--dead-letter"])
        .arg(&dead)
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let dead = std::fs::read(&dead).unwrap_or_default();
    let dead = dead
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    (filter(&path), dead)
}

#[test]
fn microsofts_documented_examples_get_their_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    // (file, shape, category, what the rule must say).
    for (name, shape, category, verdict) in [
        (
            "graph-v1.0-list-signins.json",
            "graph",
            "SignInLogs",
            "single_factor",
        ),
        (
            "graph-beta-list-signins.json",
            "graph",
            "SignInLogs",
            "failed",
        ),
        (
            "signinlogs-row.json",
            "log_analytics",
            "SignInLogs",
            "single_factor",
        ),
        (
            "aadnoninteractiveusersigninlogs-row.json",
            "log_analytics",
            "NonInteractiveUserSignInLogs",
            "mfa:step_completed",
        ),
        (
            "adfssigninlogs-row.json",
            "log_analytics",
            "ADFSSignInLogs",
            "single_factor",
        ),
        // The 2018 example of `GET /beta/auditLogs/signIns/{id}` predates `isInteractive` and
        // `signInEventTypes`: nothing says which log it belongs to, and nothing is guessed.
        (
            "graph-beta-get-signin-2018.json",
            "graph",
            "(none)",
            "dead:no_category",
        ),
    ] {
        let (run, dead) = run_fixture(dir.path(), name);
        let s = &run.stats;
        assert_eq!(s["records"], 1, "{name}");
        assert_eq!(s["byShape"], serde_json::json!({ shape: 1 }), "{name}");
        assert_eq!(
            s["byCategory"],
            serde_json::json!({ category: 1 }),
            "{name}"
        );
        let got = if s["failed"] == 1 {
            "failed".to_owned()
        } else if s["mfa"] == 1 {
            let evidence = s["mfaByEvidence"].as_object().unwrap();
            format!("mfa:{}", evidence.keys().next().unwrap())
        } else if let Some(r) = run.records.values().next() {
            assert_eq!(r["category"], category, "{name}");
            r["reason"].as_str().unwrap().to_owned()
        } else {
            assert_eq!(dead.len(), 1, "{name}");
            format!("dead:{}", dead[0]["code"].as_str().unwrap())
        };
        assert_eq!(got, verdict, "{name}");
    }
}

#[test]
fn the_documented_graph_sign_in_and_its_signinlogs_row_give_the_same_record() {
    let dir = tempfile::tempdir().unwrap();
    let (graph, _) = run_fixture(dir.path(), "graph-v1.0-list-signins.json");
    let (row, _) = run_fixture(dir.path(), "signinlogs-row.json");
    let (g, r) = (
        graph.records.values().next().unwrap(),
        row.records.values().next().unwrap(),
    );
    // What both documents state; the row also says what the 2020 Graph example leaves out
    // (authenticationRequirement, the password step, the user agent, the tenant).
    for field in [
        "id",
        "category",
        "createdDateTime",
        "reason",
        "userPrincipalName",
        "userDisplayName",
        "userId",
        "appId",
        "appDisplayName",
        "ipAddress",
        "clientAppUsed",
        "isInteractive",
        "resourceId",
        "resourceDisplayName",
        "conditionalAccessStatus",
        "policies",
        "location",
        "correlationId",
        "riskLevelDuringSignIn",
        "riskState",
        "mfaRequired",
    ] {
        assert_eq!(g[field], r[field], "{field}");
    }
    assert_eq!(r["createdDateTime"], "2020-03-13T19:15:41.619583Z");
    assert_eq!(r["resourceId"], "00000003-0000-0000-c000-000000000000");
    assert_eq!(r["tenantId"], "4f7a7bc2-28e2-46a3-b90e-5ade5bc90138");
    assert_eq!(r["location"]["city"], "Redmond");
}

fn schema(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../schemas")
        .join(name);
    let json: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    jsonschema::validator_for(&json).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc).map(|e| e.to_string()).take(3).collect()
}

#[test]
fn the_input_schemas_of_each_shape_describe_what_filter_reads() {
    let graph = schema("input-graph-signin.schema.json");
    let rows = schema("input-log-analytics-row.schema.json");
    let mut g = Generator::new(GeneratorConfig {
        seed: 5,
        malformed_share: 0.0,
        bad_record_share: 0.0,
        ..GeneratorConfig::default()
    });
    let (mut pages, mut exports) = (0, 0);
    for n in 0..150 {
        let m: Value = serde_json::from_slice(&g.next_message().body).unwrap();
        let records = shapes::records_of(&m);
        let beta: Vec<Value> = records
            .iter()
            .filter_map(|r| shapes::graph_sign_in(r, GraphVersion::Beta))
            .collect();
        let v1: Vec<Value> = records
            .iter()
            .filter_map(|r| shapes::graph_sign_in(r, GraphVersion::V1))
            .collect();
        let page = shapes::graph_page(beta, GraphVersion::Beta, Some(&n.to_string()));
        assert_eq!(errors(&graph, &page), Vec::<String>::new(), "{page}");
        assert_eq!(errors(&graph, &Value::Array(v1)), Vec::<String>::new());
        pages += 1;
        for columns in [Columns::Json, Columns::Strings, Columns::AsDocumented] {
            let export = shapes::data_export(
                records
                    .iter()
                    .filter_map(|r| shapes::log_analytics_row(r, columns))
                    .collect(),
            );
            assert_eq!(errors(&rows, &export), Vec::<String>::new(), "{export}");
            exports += 1;
        }
    }
    assert!(pages == 150 && exports == 450);

    let doc = |name: &str| -> Value {
        serde_json::from_slice(&std::fs::read(fixture(name)).unwrap()).unwrap()
    };
    for name in [
        "graph-v1.0-list-signins.json",
        "graph-beta-list-signins.json",
    ] {
        assert_eq!(errors(&graph, &doc(name)), Vec::<String>::new(), "{name}");
    }
    for name in [
        "signinlogs-row.json",
        "aadnoninteractiveusersigninlogs-row.json",
        "adfssigninlogs-row.json",
    ] {
        assert_eq!(errors(&rows, &doc(name)), Vec::<String>::new(), "{name}");
    }
    // What filter dead-letters, the schemas reject.
    assert!(!graph.is_valid(&doc("graph-beta-get-signin-2018.json")));
    let sign_in = doc("graph-v1.0-list-signins.json")["value"][0].clone();
    let broken: [(&str, Value); 4] = [
        ("id", Value::Null),
        ("createdDateTime", "yesterday".into()),
        ("status", serde_json::json!({"errorCode": "Success"})),
        ("isInteractive", Value::Null),
    ];
    for (field, value) in broken {
        let mut s = sign_in.clone();
        s[field] = value;
        assert!(!graph.is_valid(&s), "graph {field} broken and still valid");
    }
    let mut s = sign_in.clone();
    s["signInEventTypes"] = serde_json::json!(["unknownFutureValue"]);
    assert!(!graph.is_valid(&s), "an unknown event type is no category");
    let row = doc("signinlogs-row.json");
    let mut r = row.clone();
    r.as_object_mut().unwrap().remove("Id");
    assert!(!rows.is_valid(&r), "a sign-in row without Id");
    let mut r = row.clone();
    let o = r.as_object_mut().unwrap();
    o.remove("Type");
    o.remove("Category");
    assert!(!rows.is_valid(&r), "a row with neither Type nor Category");
    let mut r = row.clone();
    r["ResultType"] = "Success".into();
    r["Status"] = serde_json::json!({"errorCode": "Success"});
    assert!(!rows.is_valid(&r), "a result that is no code");
    let mut r = row;
    r["Type"] = "AuditLogs".into();
    r["ResultType"] = "success".into();
    r.as_object_mut().unwrap().remove("Id");
    assert!(
        rows.is_valid(&r),
        "other tables pass whatever their columns"
    );
}
