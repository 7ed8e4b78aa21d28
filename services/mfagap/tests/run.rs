//! `mfagap run` as a first-time user runs it: no broker, no configuration, nothing installed.
//!
//! The run's dataset is read back by DuckDB and compared, record for record, with what
//! `mfagap filter` makes of `mfagap generate` for the same seed and count; its report must
//! hold exactly the emitted sign-ins; its summary must say so.

use mfagap_testkit::comparable;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const MESSAGES: &str = "3000";
const SEED: &str = "7";

fn mfagap() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mfagap"));
    for var in [
        "MFAGAP_CONFIG",
        "MFAGAP_DATA",
        "MFAGAP_KAFKA_BOOTSTRAP",
        "MFAGAP_TOPIC",
        "MFAGAP_MESSAGES",
        "MFAGAP_SEED",
        "MFAGAP_RUN_SOURCE",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The number after `label` at the start of a summary line.
fn number(summary: &str, label: &str) -> u64 {
    summary
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} line in\n{summary}"))
}

/// The reference: `mfagap generate | mfagap filter`, keyed by (category, id).
fn reference(dir: &Path) -> BTreeMap<(String, String), Value> {
    let input = dir.join("generated.jsonl");
    ok(&mfagap()
        .args(["generate", "--messages", MESSAGES, "--seed", SEED, "-o"])
        .arg(&input)
        .output()
        .unwrap());
    let out = ok(&mfagap().arg("filter").arg(&input).output().unwrap());
    out.lines()
        .map(|l| {
            let v = comparable(l.as_bytes());
            let key = (
                v["category"].as_str().unwrap().to_owned(),
                v["id"].as_str().unwrap().to_owned(),
            );
            (key, v)
        })
        .collect()
}

/// What identifies a sign-in in the report, which has no id column.
fn report_key(upn: &str, created: &str, reason: &str, category: &str) -> String {
    format!("{upn}|{created}|{reason}|{category}")
}

#[test]
fn a_run_without_configuration_archives_exactly_what_filter_emits() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let started = Instant::now();
    let out = mfagap()
        .args(["run", "--messages", MESSAGES, "--seed", SEED])
        .args(["--progress", "plain", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let took = started.elapsed();
    let summary = ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("mfagap run took {took:?}\n{summary}");
    assert!(took < Duration::from_secs(60), "{took:?}");
    assert!(
        stderr.contains("in-process Kafka on 127.0.0.1:") && stderr.contains("kcat -b"),
        "{stderr}"
    );

    // The summary's numbers.
    assert_eq!(number(&summary, "messages"), 3000);
    let emitted = number(&summary, "emitted");
    assert_eq!(number(&summary, "archived"), emitted, "{summary}");
    let reasons: u64 = ["legacy_protocol", "mfa_skipped", "single_factor"]
        .iter()
        .map(|r| number(&summary, &format!("  {r}")))
        .sum();
    assert_eq!(reasons, emitted);
    assert!(summary.contains("top users without MFA"), "{summary}");
    let report_line = summary.lines().find(|l| l.starts_with("report ")).unwrap();
    assert!(
        report_line.contains(&format!("({emitted} rows)")),
        "{report_line}"
    );

    // The dataset, read by DuckDB, is what filter emits for the same input.
    let want = reference(dir.path());
    assert_eq!(
        want.len() as u64,
        emitted,
        "the same count as the reference"
    );
    let rows = mfagap_testkit::read_dataset(&data).unwrap();
    assert_eq!(rows.len() as u64, emitted);
    let mut got = BTreeMap::new();
    for row in rows {
        assert_eq!(row["source"]["kind"], "generator");
        let mut r = row.clone();
        let o = r.as_object_mut().unwrap();
        for k in ["date", "hour", "filename", "source", "ingestedAt"] {
            o.remove(k);
        }
        let key = (
            r["category"].as_str().unwrap().to_owned(),
            r["id"].as_str().unwrap().to_owned(),
        );
        assert!(got.insert(key, r).is_none(), "a row twice: {row}");
    }
    assert_eq!(got.len(), want.len());
    for (key, w) in &want {
        assert_eq!(got.get(key), Some(w), "{key:?}");
    }

    // The report holds the same sign-ins.
    let report = data.join("report.csv");
    let mut reader = csv::Reader::from_path(&report).unwrap();
    let mut in_report: Vec<String> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            report_key(&r[0], &r[2], &r[12], &r[13])
        })
        .collect();
    let mut expected: Vec<String> = want
        .values()
        .map(|v| {
            report_key(
                v["userPrincipalName"].as_str().unwrap_or(""),
                v["createdDateTime"].as_str().unwrap(),
                v["reason"].as_str().unwrap(),
                v["category"].as_str().unwrap(),
            )
        })
        .collect();
    in_report.sort();
    expected.sort();
    assert_eq!(in_report.len() as u64, emitted);
    assert!(in_report == expected, "the report's sign-ins differ");
}

#[test]
fn a_bad_source_is_a_clear_error() {
    let out = mfagap()
        .args(["run", "--source", "carrier-pigeon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("generator, file:PATH"));
}
