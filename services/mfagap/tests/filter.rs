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
