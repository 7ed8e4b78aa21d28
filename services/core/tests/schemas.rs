//! The JSON Schemas in `schemas/` describe what really goes in and out: every record the
//! generator-driven pipeline emits validates against the output schema, and the input schema
//! accepts exactly the messages the decoder accepts.

use mfagap_core::lenient::Text;
use mfagap_core::{Classifier, ClassifierConfig, Output, Processor, Source, Stats};
use mfagap_generate::{ExpectedOutcome, Generator, GeneratorConfig};
use serde_json::Value;

fn schema(name: &str) -> jsonschema::Validator {
    let path = format!("{}/../../schemas/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let json: Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&json).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn emitted(include_workload: bool, messages: usize) -> Vec<Value> {
    emitted_from(include_workload, messages, &|n| Source {
        kind: Text("file".into()),
        file: Some(Text("generated.jsonl".into())),
        line: Some(n as u64 + 1),
        ..Source::default()
    })
}

fn emitted_from(
    include_workload: bool,
    messages: usize,
    source: &dyn Fn(usize) -> Source<'static>,
) -> Vec<Value> {
    let p = Processor::new(Classifier::new(ClassifierConfig {
        include_workload,
        ..ClassifierConfig::default()
    }));
    let mut g = Generator::new(GeneratorConfig {
        seed: 42,
        bad_record_share: 0.01,
        ..GeneratorConfig::default()
    });
    let mut out = Vec::new();
    let mut stats = Stats::default();
    for n in 0..messages {
        let m = g.next_message();
        let source = source(n);
        p.process(
            &m.body,
            &source,
            1_765_500_000_123_456,
            &mut stats,
            &mut |o| {
                if let Output::SignIn(s) = o {
                    let mut json = Vec::new();
                    s.write_json(&mut json);
                    out.push(serde_json::from_slice(&json).unwrap());
                }
            },
        );
    }
    out
}

#[test]
fn every_emitted_record_validates_against_the_output_schema() {
    let v = schema("output-signin.schema.json");
    for include_workload in [false, true] {
        let records = emitted(include_workload, 600);
        assert!(records.len() > 3000, "{} records", records.len());
        for r in &records {
            let errors: Vec<String> = v.iter_errors(r).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{errors:?}\n{r}");
        }
    }
}

#[test]
fn records_from_every_source_kind_validate_against_the_output_schema() {
    let v = schema("output-signin.schema.json");
    let t = |s: &str| Some(Text(s.to_owned().into()));
    let kinds: [(&str, Source<'static>); 5] = [
        (
            "eventhubs",
            Source {
                kind: Text("eventhubs".into()),
                event_hub: t("insights-logs-signinlogs"),
                partition: t("3"),
                offset: t("4294969456"),
                sequence_number: Some(118),
                enqueued_time: Some(1_765_500_000_000_000),
                ..Source::default()
            },
        ),
        (
            "kafka",
            Source {
                kind: Text("kafka".into()),
                event_hub: t("signins"),
                partition: t("0"),
                offset: t("77"),
                ..Source::default()
            },
        ),
        (
            "capture",
            Source {
                kind: Text("capture".into()),
                partition: t("1"),
                sequence_number: Some(9),
                file: t("capture/ns/hub/1/2025/12/12/10/00/00.avro"),
                line: Some(4),
                ..Source::default()
            },
        ),
        (
            "graph",
            Source {
                kind: Text("graph".into()),
                event_hub: t("beta"),
                partition: t("nonInteractiveUser"),
                sequence_number: Some(2),
                file: t("https://graph.microsoft.com/beta/auditLogs/signIns?$top=1000"),
                ..Source::default()
            },
        ),
        (
            "generator",
            Source {
                kind: Text("generator".into()),
                sequence_number: Some(5),
                ..Source::default()
            },
        ),
    ];
    for (kind, source) in kinds {
        let records = emitted_from(false, 10, &|_| source.clone());
        assert!(!records.is_empty());
        for r in &records {
            assert_eq!(r["source"]["kind"], kind);
            let errors: Vec<String> = v.iter_errors(r).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{kind}: {errors:?}\n{}", r["source"]);
        }
    }
}

#[test]
fn the_output_schema_rejects_what_the_record_must_never_be() {
    let v = schema("output-signin.schema.json");
    let good = emitted(false, 20).remove(0);
    assert!(v.is_valid(&good));
    let broken: [(&str, Value); 5] = [
        ("createdDateTime", "2025-12-12T14:56:31Z".into()),
        ("reason", "mfa".into()),
        ("loginSucceeded", false.into()),
        ("policies", "a,b".into()),
        ("id", Value::Null),
    ];
    for (field, value) in broken {
        let mut r = good.clone();
        r[field] = value;
        assert!(!v.is_valid(&r), "{field} broken and still valid");
    }
    let mut r = good.clone();
    r.as_object_mut().unwrap().remove("userAgent");
    assert!(!v.is_valid(&r), "a missing field is invalid");
}

#[test]
fn the_input_schema_accepts_exactly_the_messages_the_decoder_accepts() {
    let v = schema("input-message.schema.json");
    let mut g = Generator::new(GeneratorConfig {
        seed: 3,
        malformed_share: 0.05,
        bad_record_share: 0.02,
        ..GeneratorConfig::default()
    });
    let (mut good, mut bad) = (0, 0);
    for _ in 0..800 {
        let m = g.next_message();
        let Ok(json) = serde_json::from_slice::<Value>(&m.body) else {
            assert!(m.malformed.is_some());
            continue;
        };
        let clean = m.malformed.is_none()
            && m.expected
                .iter()
                .all(|e| !matches!(e.outcome, ExpectedOutcome::DeadLetter(_)));
        let errors: Vec<String> = v.iter_errors(&json).map(|e| e.to_string()).collect();
        assert_eq!(errors.is_empty(), clean, "{errors:?}\n{:?}", m.expected);
        if clean { good += 1 } else { bad += 1 }
    }
    assert!(good > 300 && bad > 50, "{good} good, {bad} bad");
}

#[test]
fn every_input_schema_refuses_a_list_where_the_decoder_refuses_one() {
    let diagnostic = serde_json::json!({
        "category": "SignInLogs",
        "time": "2025-12-12T14:56:31Z",
        "properties": {"id": "d", "status": {"errorCode": 0}},
    });
    let graph = serde_json::json!({
        "id": "g",
        "createdDateTime": "2025-12-12T14:56:31Z",
        "isInteractive": true,
        "status": {"errorCode": 0},
    });
    let row = serde_json::json!({
        "Type": "SigninLogs",
        "Id": "l",
        "TimeGenerated": "2025-12-12T14:56:31Z",
        "Status": {"errorCode": 0},
    });
    for (name, good, path) in [
        (
            "input-message.schema.json",
            diagnostic,
            "/properties/status",
        ),
        ("input-graph-signin.schema.json", graph, "/status"),
        ("input-log-analytics-row.schema.json", row, "/Status"),
    ] {
        let v = schema(name);
        assert!(v.is_valid(&good), "{name}: {good}");
        let mut bad = good.clone();
        *bad.pointer_mut(path).unwrap() = serde_json::json!([0]);
        assert!(!v.is_valid(&bad), "{name} accepts {bad}");
    }
}
