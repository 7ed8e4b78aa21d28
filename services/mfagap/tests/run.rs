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

/// The file goes to Kafka exactly once (`mfagap ingest`), then `mfagap run` over the same
/// file is killed with SIGKILL while its archiver is part-way, and run again into the same
/// dataset and broker: each run's ingest resumes at the end of the file (at least once would
/// read it all again), the archiver where its last unit was published and on to the topic's
/// end, and the dataset (read by DuckDB) and `report.csv` hold every sign-in exactly as often
/// as `mfagap filter` prints it (duplicate suppression off, so nothing hides a second copy).
///
/// No kill lands inside an open transaction here: the test broker (noida 0.2.3) lists an
/// aborted transaction in every later fetch response, so a consumer that reads past one skips
/// all later records of that producer (ARCHITECTURE.md, "Test brokers"). A kill inside a
/// transaction, and the resume from it, is `ingest.rs`'s
/// `exactly_once_from_a_file_resumes_where_it_stopped`, read back from offset 0.
#[test]
fn a_run_killed_mid_way_and_run_again_holds_each_sign_in_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let input = dir.path().join("generated.jsonl");
    ok(&mfagap()
        .args(["generate", "--messages", "6000", "--seed", "11", "-o"])
        .arg(&input)
        .output()
        .unwrap());
    let broker = mfagap_testkit::Broker::noida().unwrap();
    let topic = mfagap_testkit::unique("run-topic");
    let positions = mfagap_testkit::unique("run-positions");
    broker.create_topic(&topic, 3).unwrap();
    let env = |cmd: &mut Command| {
        cmd.env("MFAGAP_TOPIC", &topic)
            .env("MFAGAP_POSITIONS_TOPIC", &positions)
            .env("MFAGAP_DELIVERY", "exactly-once")
            .env("MFAGAP_DEDUP_WINDOW", "0");
    };
    let mut ingest = mfagap();
    env(&mut ingest);
    ok(&ingest
        .args(["ingest", "--source", "file", "--input"])
        .arg(&input)
        .args(["--bootstrap", &broker.bootstrap, "--listen", "127.0.0.1:0"])
        .output()
        .unwrap());
    let run = || {
        let mut cmd = mfagap();
        env(&mut cmd);
        cmd.arg("run")
            .arg(format!("--source=file:{}", input.display()))
            .args(["--kafka-bootstrap", &broker.bootstrap, "--progress", "off"])
            .arg("--data")
            .arg(&data)
            .env("MFAGAP_ROLL_AGE", "500ms");
        cmd
    };
    let want = {
        let out = ok(&mfagap()
            .args(["filter", "--dedup-window", "0"])
            .arg(&input)
            .output()
            .unwrap());
        let mut want = BTreeMap::<(String, String), usize>::new();
        for l in out.lines() {
            let v = comparable(l.as_bytes());
            *want
                .entry((
                    v["category"].as_str().unwrap().to_owned(),
                    v["id"].as_str().unwrap().to_owned(),
                ))
                .or_default() += 1;
        }
        want
    };
    let want_rows: usize = want.values().sum();
    assert!(want.values().any(|n| *n > 1), "the input repeats sign-ins");

    // Kill the first run once its archiver has published a part of the topic: small files
    // keep it busy for a while.
    let addr = format!("127.0.0.1:{}", mfagap_testkit::port());
    let mut first = run()
        .args(["--listen", &addr])
        .env("MFAGAP_ROLL_ROWS", "100")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let m = mfagap_testkit::http_get(&addr, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default();
        if mfagap_testkit::metric(&m, "mfagap_archiver_rows_total") >= 1000.0 {
            break;
        }
        assert!(Instant::now() < deadline, "the first run published nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    mfagap_testkit::process::signal(first.id(), mfagap_testkit::process::SIGKILL);
    let _ = first.wait();
    let before = mfagap_testkit::read_dataset(&data).map_or(0, |r| r.len());
    assert!(
        before > 0 && before < want_rows,
        "the first run died mid-way: {before} of {want_rows}"
    );
    let out = run().args(["--listen", "127.0.0.1:0"]).output().unwrap();
    let summary = ok(&out);
    eprintln!("{summary}");
    assert_eq!(
        number(&summary, "messages"),
        0,
        "the file was read to its end before"
    );

    let rows = mfagap_testkit::read_dataset(&data).unwrap();
    let mut seen = BTreeMap::<(String, String), usize>::new();
    for r in &rows {
        *seen
            .entry((
                r["category"].as_str().unwrap().to_owned(),
                r["id"].as_str().unwrap().to_owned(),
            ))
            .or_default() += 1;
    }
    assert_eq!(
        rows.len(),
        want_rows,
        "each sign-in as often as filter prints it"
    );
    assert!(seen == want, "the same sign-ins as filter, each as often");
    let report = std::fs::read_to_string(data.join("report.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(report.as_bytes());
    assert_eq!(
        reader.records().count(),
        want.len(),
        "report.csv, each sign-in once (the report folds repeats)"
    );
}
