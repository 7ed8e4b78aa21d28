//! Files that are one JSON document (an array of message bodies, pretty-printed or on one
//! line), compressed or not, read by `mfagap filter` and by `mfagap ingest --source file` as
//! JSON Lines of the same bodies are; bodies over `--max-message-bytes` as dead letters
//! `too_large`.

mod common;

use common::{dead_letter_payloads, mfagap, output_records};
use mfagap_testkit::{Broker, Input, comparable, generated, http_get, metric, unique};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The generated bodies that are JSON (a whole message that is not cannot be an element of
/// an array), as the values an array holds.
fn json_bodies(input: &Input) -> Vec<Value> {
    input
        .bodies
        .iter()
        .filter_map(|b| serde_json::from_slice(b).ok())
        .collect()
}

/// The same message bodies in each layout: JSON Lines, a one-line array, a pretty-printed
/// array, and the pretty-printed array in gzip and in zstd.
struct Layouts {
    lines: PathBuf,
    array: PathBuf,
    pretty: PathBuf,
    gzip: PathBuf,
    zstd: PathBuf,
}

fn layouts(dir: &Path, bodies: &[Value]) -> Layouts {
    let l = Layouts {
        lines: dir.join("bodies.jsonl"),
        array: dir.join("bodies.json"),
        pretty: dir.join("pretty.json"),
        // Named for neither: the content tells.
        gzip: dir.join("pretty-gzip"),
        zstd: dir.join("pretty.json.zst"),
    };
    let mut lines = Vec::new();
    for b in bodies {
        serde_json::to_writer(&mut lines, b).unwrap();
        lines.push(b'\n');
    }
    std::fs::write(&l.lines, lines).unwrap();
    std::fs::write(&l.array, serde_json::to_vec(bodies).unwrap()).unwrap();
    let pretty = serde_json::to_vec_pretty(bodies).unwrap();
    std::fs::write(&l.pretty, &pretty).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&pretty).unwrap();
    std::fs::write(&l.gzip, gz.finish().unwrap()).unwrap();
    std::fs::write(&l.zstd, zstd::encode_all(&pretty[..], 3).unwrap()).unwrap();
    l
}

/// What `mfagap filter` makes of a file: records (comparable, sorted), dead-letter codes with
/// how many, dead letters' bytes (sorted), and the stats.
struct Filtered {
    records: Vec<Value>,
    codes: BTreeMap<String, u64>,
    dead: Vec<Vec<u8>>,
    stats: Value,
}

fn filter(file: &Path, extra: &[&str]) -> Filtered {
    let dir = tempfile::tempdir().unwrap();
    let (dl, stats) = (dir.path().join("dead.jsonl"), dir.path().join("stats.json"));
    let out = mfagap()
        .arg("filter")
        .arg("--dead-letter")
        .arg(&dl)
        .arg("--stats")
        .arg(&stats)
        .args(extra)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut records: Vec<Value> = out
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(comparable)
        .collect();
    records.sort_by_key(|v| v["id"].as_str().unwrap().to_owned());
    let mut codes = BTreeMap::new();
    let mut dead = Vec::new();
    for l in std::fs::read(&dl).unwrap().split(|b| *b == b'\n') {
        if l.is_empty() {
            continue;
        }
        let v: Value = serde_json::from_slice(l).unwrap();
        *codes
            .entry(v["code"].as_str().unwrap().to_owned())
            .or_default() += 1;
        dead.push(match v["raw"].as_str() {
            Some(raw) => raw.as_bytes().to_vec(),
            None => common::base64_decode(v["rawBase64"].as_str().unwrap()),
        });
    }
    dead.sort();
    let stats = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    Filtered {
        records,
        codes,
        dead,
        stats,
    }
}

#[test]
fn filter_reads_every_layout_of_the_same_bodies_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let bodies = json_bodies(&generated(600, 5, 8, true));
    let l = layouts(dir.path(), &bodies);
    let want = filter(&l.lines, &[]);
    assert!(want.records.len() > 200, "a test with sign-ins in it");
    assert!(!want.codes.is_empty(), "and with dead letters");
    for file in [&l.array, &l.pretty, &l.gzip, &l.zstd] {
        let got = filter(file, &[]);
        let name = file.display();
        assert_eq!(got.records.len(), want.records.len(), "{name}");
        assert!(got.records == want.records, "{name}: the same records");
        assert_eq!(got.codes, want.codes, "{name}: the same dead letters");
        assert_eq!(got.stats, want.stats, "{name}: the same counts");
    }
    // The one-line array holds the bodies byte for byte: the dead letters are the same bytes.
    assert!(filter(&l.array, &[]).dead == want.dead);
}

#[test]
fn filter_makes_a_body_over_the_largest_size_a_dead_letter_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut bodies = json_bodies(&generated(50, 9, 3, false));
    let small = filter_of_bodies(dir.path(), &bodies);
    let pad = "x".repeat(200_000);
    bodies.insert(10, serde_json::json!({"records": [{"pad": pad}]}));
    let file = dir.path().join("big.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&bodies).unwrap()).unwrap();
    let got = filter(&file, &["--max-message-bytes", "100000"]);
    assert!(got.records == small.records, "every other body flows");
    assert_eq!(got.codes.get("too_large"), Some(&1));
    let mut want_codes = small.codes.clone();
    *want_codes.entry("too_large".into()).or_default() += 1;
    assert_eq!(got.codes, want_codes);
    let big = got
        .dead
        .iter()
        .find(|d| d.len() == 64 << 10)
        .expect("the dead letter keeps the first 64 KiB");
    assert!(big.starts_with(b"{\n"));
    assert_eq!(got.stats["deadLettersByCode"]["too_large"], 1);
    assert_eq!(
        got.stats["deadLetterMessages"].as_u64().unwrap(),
        small.stats["deadLetterMessages"].as_u64().unwrap() + 1
    );
    // The size is in the dead letter.
    let out = mfagap()
        .args(["filter", "--max-message-bytes", "100000", "--dead-letter"])
        .arg(dir.path().join("dl.jsonl"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = std::fs::read_to_string(dir.path().join("dl.jsonl")).unwrap();
    let entry: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["code"] == "too_large")
        .unwrap();
    // Pretty-printed one level deeper than on its own: more than its own pretty size.
    let size = serde_json::to_vec_pretty(&bodies[10]).unwrap().len();
    assert!(entry["size"].as_u64().unwrap() >= size as u64, "{entry}");
    assert_eq!(entry["element"], 11);
}

fn filter_of_bodies(dir: &Path, bodies: &[Value]) -> Filtered {
    let file = dir.join("small.jsonl");
    let mut text = Vec::new();
    for b in bodies {
        serde_json::to_writer(&mut text, b).unwrap();
        text.push(b'\n');
    }
    std::fs::write(&file, text).unwrap();
    filter(&file, &[])
}

#[test]
fn a_truncated_document_is_read_up_to_its_cut_and_one_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let bodies = json_bodies(&generated(40, 3, 3, false));
    let pretty = serde_json::to_vec_pretty(&bodies).unwrap();
    let file = dir.path().join("cut.json");
    std::fs::write(&file, &pretty[..pretty.len() * 2 / 3]).unwrap();
    let got = filter(&file, &[]);
    assert_eq!(got.codes.get("truncated"), Some(&1), "{:?}", got.codes);
    assert!(!got.records.is_empty(), "the elements before the cut flow");
}

/// A running `mfagap ingest --source file`.
struct Ingest {
    child: Child,
    addr: String,
}

impl Ingest {
    fn start(b: &Broker, file: &Path, out: &str, dead: &str, extra: &[&str], log: &Path) -> Ingest {
        let addr = format!("127.0.0.1:{}", mfagap_testkit::port());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = mfagap()
            .args(["ingest", "--source", "file", "--input"])
            .arg(file)
            .args(["--bootstrap", &b.bootstrap, "--topic", out])
            .args(["--dead-letter-topic", dead, "--listen", &addr])
            .args(["--dedup-window", "0", "--log-format", "json"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Ingest { child, addr }
    }

    fn metrics(&self) -> String {
        http_get(&self.addr, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }
}

fn dead_letter_codes(b: &Broker, topic: &str) -> BTreeMap<String, u64> {
    let mut codes = BTreeMap::new();
    for r in b.read_all(topic).unwrap() {
        *codes.entry(r.headers["errorCode"].clone()).or_default() += 1;
    }
    codes
}

#[test]
fn ingest_of_a_pretty_printed_gzip_array_gives_the_output_of_the_json_lines_file() {
    let b = Broker::noida().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bodies = json_bodies(&generated(400, 17, 6, false));
    let l = layouts(dir.path(), &bodies);
    let mut outputs = Vec::new();
    for file in [&l.lines, &l.gzip] {
        let (out, dead) = (unique("out"), unique("dl"));
        b.create_topic(&out, 3).unwrap();
        b.create_topic(&dead, 1).unwrap();
        let log = dir.path().join(format!("{}.log", out));
        let mut i = Ingest::start(
            &b,
            file,
            &out,
            &dead,
            &["--positions-topic", &unique("pos")],
            &log,
        );
        let status = i.child.wait().unwrap();
        assert!(
            status.success(),
            "{}",
            std::fs::read_to_string(&log).unwrap()
        );
        outputs.push((output_records(&b, &out), dead_letter_codes(&b, &dead)));
    }
    let want = filter(&l.lines, &[]);
    assert_eq!(outputs[0].0.len(), want.records.len());
    assert!(outputs[0].0 == want.records, "JSON Lines: filter's records");
    assert_eq!(outputs[1].0.len(), outputs[0].0.len());
    assert!(
        outputs[1].0 == outputs[0].0,
        "the document: the same records"
    );
    assert_eq!(outputs[1].1, outputs[0].1, "and the same dead letters");
    assert_eq!(outputs[0].1, want.codes);
}

#[test]
fn exactly_once_from_a_document_resumes_inside_it_after_each_kill() {
    let b = Broker::noida().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bodies = json_bodies(&generated(3_000, 73, 3, false));
    let l = layouts(dir.path(), &bodies);
    let (out, dead, positions) = (unique("out"), unique("dl"), unique("positions"));
    b.create_topic(&out, 3).unwrap();
    b.create_topic(&dead, 1).unwrap();
    let log = dir.path().join("ingest.log");
    // The zstd file: resuming decompresses again and skips what was delivered.
    let run = || {
        Ingest::start(
            &b,
            &l.zstd,
            &out,
            &dead,
            &[
                "--delivery",
                "exactly-once",
                "--positions-topic",
                &positions,
                "--transaction-messages",
                "40",
            ],
            &log,
        )
    };
    let mut kills = 0;
    for _ in 0..5 {
        let mut i = run();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut done = false;
        while metric(&i.metrics(), "mfagap_ingest_transactions_total") < 1.0 {
            if i.child.try_wait().unwrap().is_some() {
                done = true;
                break;
            }
            assert!(Instant::now() < deadline, "no transaction");
            std::thread::sleep(Duration::from_millis(10));
        }
        if done {
            break;
        }
        i.child.kill().unwrap(); // SIGKILL: nothing flushed, nothing committed on the way out
        i.child.wait().unwrap();
        kills += 1;
    }
    assert!(kills >= 3, "killed mid-way {kills} times");
    let mut last = run();
    assert!(
        last.child.wait().unwrap().success(),
        "the last run reads to the end"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("resuming where the last committed transaction ended")
            && text.contains("\"index\""),
        "runs after the first resumed"
    );
    let want = filter(&l.zstd, &[]);
    let got = output_records(&b, &out);
    assert_eq!(got.len(), want.records.len(), "0 missing, 0 duplicates");
    assert!(got == want.records, "filter's records, record for record");
    assert!(
        dead_letter_payloads(&b, &dead) == want.dead,
        "the dead letters, each once"
    );
    // And the same records as the bodies as JSON Lines.
    assert!(filter(&l.lines, &[]).records == want.records);
}

#[test]
fn a_kafka_message_over_the_largest_size_is_a_dead_letter_with_its_size() {
    let b = Broker::noida().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (input, out, dead) = (unique("in"), unique("out"), unique("dl"));
    b.create_topic(&input, 1).unwrap();
    b.create_topic(&out, 1).unwrap();
    b.create_topic(&dead, 1).unwrap();
    let mut bodies = generated(20, 4, 3, false).bodies;
    let want = filter_of_bodies(
        dir.path(),
        &json_bodies(&Input {
            bodies: bodies.clone(),
            emits: Vec::new(),
        }),
    );
    let big = format!("{{\"records\":[{{\"pad\":\"{}\"}}]}}", "x".repeat(300_000));
    let big_len = big.len();
    bodies.insert(5, big.into_bytes());
    b.produce(&input, 1, &bodies).unwrap();
    let addr = format!("127.0.0.1:{}", mfagap_testkit::port());
    let log = dir.path().join("ingest.log");
    let mut child = mfagap()
        .args([
            "ingest",
            "--source",
            "kafka",
            "--source-bootstrap",
            &b.bootstrap,
        ])
        .args(["--source-topic", &input, "--consumer-group", &unique("g")])
        .args(["--bootstrap", &b.bootstrap, "--topic", &out])
        .args(["--dead-letter-topic", &dead, "--listen", &addr])
        .args(["--max-message-bytes", "200000", "--log-format", "json"])
        .args(["--positions-topic", &unique("pos")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut records = Vec::new();
    let mut too_large = None;
    while Instant::now() < deadline {
        records = b.read_all(&out).unwrap();
        too_large = b
            .read_all(&dead)
            .unwrap()
            .into_iter()
            .find(|r| r.headers["errorCode"] == "too_large");
        if records.len() >= want.records.len() && too_large.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    let too_large =
        too_large.unwrap_or_else(|| panic!("{}", std::fs::read_to_string(&log).unwrap()));
    assert_eq!(too_large.headers["messageBytes"], big_len.to_string());
    assert_eq!(too_large.payload.len(), 64 << 10, "the first 64 KiB");
    assert_eq!(
        records.len(),
        want.records.len(),
        "every other message flows"
    );
}
