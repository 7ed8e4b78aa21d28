//! Event Hubs Capture replay end to end: Capture files written by another Avro implementation
//! (Python's `fastavro`, with the schema Microsoft documents), laid out as Capture lays them
//! out, on disk and in Azurite, read by `mfagap run`, `mfagap ingest` and `mfagap filter`.
//!
//! The bodies are the generated corpus (malformed messages and records included); what comes
//! out is compared with what `mfagap filter` makes of the same bodies as JSON Lines.

mod common;

use common::{dead_letter_payloads, filter_reference, mfagap, output_records};
use mfagap_testkit::{
    Azurite, Broker, CaptureEvent, Input, capture_path, generated, http_get, metric, unique,
    write_capture_file,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

/// The Event Hubs partitions of the corpus: 10 after 1, as numbers sort.
const PARTITIONS: [u32; 3] = [0, 1, 10];
/// The capture windows of each partition (hour, minute, second): hour 9 before hour 10.
const WINDOWS: [(u32, u32, u32); 4] = [(9, 55, 0), (9, 59, 30), (10, 0, 0), (10, 5, 0)];

/// Where each message of the corpus went: its file (relative to the container) and sequence
/// number, and its Event Hubs partition.
struct Placed {
    file: PathBuf,
    partition: u32,
    sequence_number: i64,
}

/// The corpus as Capture files: message `i` to partition `PARTITIONS[i % 3]`, each
/// partition's messages over its windows in order, sequence numbers from 100 per partition.
/// Returns the files (relative path, events) and where each message went.
fn lay_out(input: &Input) -> (Vec<(PathBuf, Vec<CaptureEvent>)>, Vec<Placed>) {
    let mut per_partition: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for i in 0..input.bodies.len() {
        per_partition
            .entry(PARTITIONS[i % PARTITIONS.len()])
            .or_default()
            .push(i);
    }
    let mut files: BTreeMap<PathBuf, Vec<CaptureEvent>> = BTreeMap::new();
    let mut placed: Vec<Option<Placed>> = (0..input.bodies.len()).map(|_| None).collect();
    for (partition, messages) in &per_partition {
        for (k, &i) in messages.iter().enumerate() {
            let (h, m, s) = WINDOWS[k * WINDOWS.len() / messages.len()];
            let file = capture_path("mfagap-ns", "signins", *partition, (2026, 11, 29, h, m, s));
            let sequence_number = 100 + k as i64;
            files
                .entry(file.clone())
                .or_default()
                .push(CaptureEvent::new(sequence_number, &input.bodies[i]));
            placed[i] = Some(Placed {
                file,
                partition: *partition,
                sequence_number,
            });
        }
    }
    (
        files.into_iter().collect(),
        placed.into_iter().map(Option::unwrap).collect(),
    )
}

/// Writes the files under `root` with fastavro (deflate, as Capture writes them).
fn write_files(root: &Path, files: &[(PathBuf, Vec<CaptureEvent>)]) {
    for (rel, events) in files {
        write_capture_file(&root.join(rel), events, "deflate").unwrap();
    }
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

/// The message that emitted each sign-in, by (category, id).
fn emitted_by(input: &Input) -> BTreeMap<(String, String), usize> {
    let mut by = BTreeMap::new();
    for (i, emits) in input.emits.iter().enumerate() {
        for key in emits {
            by.insert(key.clone(), i);
        }
    }
    by
}

/// `mfagap run --source capture:LOCATION` into a fresh dataset; the dataset, read by DuckDB,
/// holds exactly `filter`'s sign-ins, each with the Capture file and sequence number it came
/// from (`file_name` gives the name a file is known by).
fn run_replays(
    input: &Input,
    placed: &[Placed],
    location: &str,
    env: &[(&str, String)],
    file_name: impl Fn(&Path) -> String,
    dir: &Path,
) {
    let data = dir.join(format!("data-{}", unique("run")));
    let mut cmd = mfagap();
    cmd.args(["run", "--source", &format!("capture:{location}")])
        .args(["--progress", "off", "--data"])
        .arg(&data)
        .env_remove("MFAGAP_CONFIG")
        .env_remove("MFAGAP_RUN_SOURCE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let summary = ok(&cmd.output().unwrap());
    assert!(
        summary.contains(&format!("source         capture files in {location}")),
        "{summary}"
    );

    let (want, _) = filter_reference(input, dir);
    let want: BTreeMap<(String, String), Value> = want
        .into_iter()
        .map(|v| {
            let key = (
                v["category"].as_str().unwrap().to_owned(),
                v["id"].as_str().unwrap().to_owned(),
            );
            (key, v)
        })
        .collect();
    let by = emitted_by(input);
    let rows = mfagap_testkit::read_dataset(&data).unwrap();
    assert_eq!(rows.len(), want.len(), "as many rows as filter prints");
    let mut got = BTreeMap::new();
    for row in rows {
        let key = (
            row["category"].as_str().unwrap().to_owned(),
            row["id"].as_str().unwrap().to_owned(),
        );
        let p = &placed[by[&key]];
        let source = &row["source"];
        assert_eq!(source["kind"], "capture", "{row}");
        assert_eq!(source["eventHub"], "signins", "{row}");
        assert_eq!(source["partition"], p.partition.to_string(), "{row}");
        assert_eq!(source["sequenceNumber"], p.sequence_number, "{row}");
        assert_eq!(
            source["offset"],
            (p.sequence_number * 1024).to_string(),
            "{row}"
        );
        assert_eq!(source["file"], file_name(&p.file), "{row}");
        assert!(!source["enqueuedTime"].is_null(), "{row}");
        let mut r = row.clone();
        let o = r.as_object_mut().unwrap();
        for k in ["date", "hour", "filename", "source", "ingestedAt"] {
            o.remove(k);
        }
        assert!(got.insert(key, r).is_none(), "a row twice: {row}");
    }
    for (key, w) in &want {
        assert_eq!(got.get(key), Some(w), "{key:?}");
    }
}

/// `mfagap run --source capture:` over the corpus on disk and in Azurite (the same files):
/// DuckDB reads back exactly `filter`'s sign-ins, each with its Capture file (path or URL),
/// partition and sequence number.
#[test]
fn run_replays_capture_files_on_disk_and_in_azurite() {
    let dir = tempfile::tempdir().unwrap();
    let input = generated(1_500, 31, 3, false);
    let (files, placed) = lay_out(&input);
    assert_eq!(files.len(), PARTITIONS.len() * WINDOWS.len());
    let root = dir.path().join("capture");
    write_files(&root, &files);

    run_replays(
        &input,
        &placed,
        &root.display().to_string(),
        &[],
        |rel| root.join(rel).display().to_string(),
        dir.path(),
    );

    let azurite = Azurite::start().unwrap();
    azurite.create_container("capture").unwrap();
    for (rel, _) in &files {
        let name = format!("eh/{}", rel.display());
        azurite
            .upload("capture", &name, &std::fs::read(root.join(rel)).unwrap())
            .unwrap();
    }
    // Something Capture did not write, beside the files: not read.
    azurite
        .upload("capture", "eh/README.txt", b"not a capture file")
        .unwrap();
    run_replays(
        &input,
        &placed,
        "az://capture/eh",
        &[
            ("AZURE_STORAGE_USE_EMULATOR", "true".into()),
            (
                "AZURITE_BLOB_STORAGE_URL",
                format!("http://127.0.0.1:{}", azurite.port()),
            ),
        ],
        |rel| format!("az://capture/eh/{}", rel.display()),
        dir.path(),
    );
}

/// `mfagap ingest --source capture`, at least once: the files are read in Capture path order
/// (partition 10 after 1, hour 10 after 9; the source logs each file it finishes); the
/// records are `filter`'s, each with its file and sequence number, and an event without a
/// body is one dead letter more, whose headers name its file and sequence number. A damaged
/// file stops the ingest with an error that names it, and no panic.
#[test]
fn ingest_reads_capture_files_in_path_order_and_stops_at_a_damaged_one() {
    let b = Broker::noida().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = generated(900, 37, 3, false);
    let (mut files, placed) = lay_out(&input);
    // An event without a body at the end of partition 1's first file.
    let (empty_file, last) = {
        let (rel, events) = files
            .iter_mut()
            .find(|(rel, _)| rel.starts_with("mfagap-ns/signins/1/"))
            .unwrap();
        let mut event = CaptureEvent::new(99_999, b"");
        event.body = None;
        events.push(event);
        (rel.clone(), events.len())
    };
    let root = dir.path().join("capture");
    write_files(&root, &files);
    let (out, dead) = (unique("out"), unique("dl"));
    b.create_topic(&out, 1).unwrap();
    b.create_topic(&dead, 1).unwrap();
    let ingest = |location: &Path| {
        mfagap()
            .args(["ingest", "--source", "capture", "--capture"])
            .arg(location)
            .args(["--bootstrap", &b.bootstrap, "--topic", &out])
            .args(["--dead-letter-topic", &dead, "--delivery", "at-least-once"])
            .args(["--dedup-window", "0", "--listen", "127.0.0.1:0"])
            .args(["--log-format", "json", "--log", "info,mfagap_ingest=debug"])
            .output()
            .unwrap()
    };
    let run = ingest(&root);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    // The files in the order the source finished them (its log), and the records' sources.
    let finished: Vec<String> = String::from_utf8_lossy(&run.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "capture file read")
        .map(|v| v["fields"]["file"].as_str().unwrap().to_owned())
        .collect();
    let mut expected: Vec<(u32, usize, String)> = files
        .iter()
        .map(|(rel, _)| {
            let name = root.join(rel).display().to_string();
            let partition = rel
                .iter()
                .nth(2)
                .unwrap()
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let window = WINDOWS
                .iter()
                .position(|(h, m, s)| rel.ends_with(format!("{h:02}/{m:02}/{s:02}.avro")))
                .unwrap();
            (partition, window, name)
        })
        .collect();
    expected.sort();
    let expected: Vec<String> = expected.into_iter().map(|(_, _, name)| name).collect();
    assert_eq!(
        finished, expected,
        "partitions 0, 1, 10; in each, hour 9 before hour 10"
    );
    let by = emitted_by(&input);
    for r in b.read_all(&out).unwrap() {
        let v: Value = serde_json::from_slice(&r.payload).unwrap();
        let key = (
            v["category"].as_str().unwrap().to_owned(),
            v["id"].as_str().unwrap().to_owned(),
        );
        let p = &placed[by[&key]];
        assert_eq!(v["source"]["sequenceNumber"], p.sequence_number);
        assert_eq!(
            v["source"]["file"],
            root.join(&p.file).display().to_string()
        );
    }
    let (want, mut want_dead) = filter_reference(&input, dir.path());
    assert!(
        output_records(&b, &out) == want,
        "the same records as filter"
    );
    want_dead.push(Vec::new());
    want_dead.sort();
    assert!(
        dead_letter_payloads(&b, &dead) == want_dead,
        "filter's dead letters, and the event without a body"
    );
    let empty = b
        .read_all(&dead)
        .unwrap()
        .into_iter()
        .find(|r| r.payload.is_empty())
        .unwrap();
    assert_eq!(empty.headers["sourceKind"], "capture");
    assert_eq!(empty.headers["sourceSequenceNumber"], "99999");
    assert_eq!(empty.headers["sourceLine"], last.to_string());
    assert_eq!(
        empty.headers["sourceFile"],
        root.join(&empty_file).display().to_string()
    );

    // A damaged file (not Avro at all) after the others.
    let damaged = root.join(capture_path(
        "mfagap-ns",
        "signins",
        11,
        (2026, 11, 29, 0, 0, 0),
    ));
    std::fs::create_dir_all(damaged.parent().unwrap()).unwrap();
    std::fs::write(&damaged, b"{\"records\":[]}\n").unwrap();
    let run = ingest(&root);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{} is not an Avro file", damaged.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A running `mfagap ingest`.
struct Ingest {
    child: Child,
    addr: String,
}

impl Ingest {
    fn metrics(&self) -> String {
        http_get(&self.addr, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    fn kill(mut self) {
        mfagap_testkit::process::signal(self.child.id(), libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Exactly once from Capture files: a replay SIGKILLed four times once it has committed a
/// transaction, and restarted after each, resumes in each file after the last event
/// committed. Read with read_committed, the output is `filter`'s, record for record —
/// nothing missing, nothing twice, duplicate suppression off — and so are the dead letters.
#[test]
fn exactly_once_from_capture_files_resumes_where_it_stopped() {
    let b = Broker::noida().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = generated(3_000, 73, 3, false);
    let (files, _) = lay_out(&input);
    let root = dir.path().join("capture");
    write_files(&root, &files);
    let (out, dead, positions) = (unique("out"), unique("dl"), unique("positions"));
    b.create_topic(&out, 3).unwrap();
    b.create_topic(&dead, 1).unwrap();
    let log = dir.path().join("capture.log");
    let start = || {
        let addr = format!("127.0.0.1:{}", mfagap_testkit::port());
        let logfile = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = mfagap()
            .args(["ingest", "--source", "capture", "--capture"])
            .arg(&root)
            .args(["--bootstrap", &b.bootstrap, "--topic", &out])
            .args(["--dead-letter-topic", &dead, "--listen", &addr])
            .args([
                "--delivery",
                "exactly-once",
                "--positions-topic",
                &positions,
            ])
            .args(["--dedup-window", "0", "--transaction-messages", "50"])
            .args(["--log-format", "json"])
            .stdout(Stdio::null())
            .stderr(logfile)
            .spawn()
            .unwrap();
        let i = Ingest { child, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(&i.addr, "/health/live").is_err() {
            assert!(Instant::now() < deadline, "no endpoint");
            std::thread::sleep(Duration::from_millis(50));
        }
        i
    };
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    for run in 0..4 {
        let ingest = start();
        let deadline = Instant::now() + Duration::from_secs(120);
        while metric(&ingest.metrics(), "mfagap_ingest_transactions_total") < 1.0 {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("run {run} committed nothing:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(rng % 400));
        ingest.kill();
    }
    let mut last = start();
    let status = last.child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "the last run reads every file:\n{text}");
    assert!(
        text.contains("resuming where the last committed transaction ended"),
        "runs after the first resumed"
    );
    let (want, want_dead) = filter_reference(&input, dir.path());
    let got = output_records(&b, &out);
    assert_eq!(got.len(), want.len(), "as many records as filter prints");
    assert!(got == want, "the same records as filter, record for record");
    assert!(
        dead_letter_payloads(&b, &dead) == want_dead,
        "the dead letters, each once"
    );
}

/// `mfagap filter` reads Capture files (known by their first bytes) as it reads JSON Lines:
/// the files give the same records and dead letters as the bodies as JSON Lines, whatever the
/// codec. An event without a body is a dead letter at its event's number, as from the
/// capture source; a damaged file is an error that names it.
#[test]
fn filter_reads_capture_files_as_the_bodies_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let input = generated(1_200, 41, 3, false);
    let (files, _) = lay_out(&input);
    let jsonl = dir.path().join("bodies.jsonl");
    input.write(&jsonl).unwrap();
    let filter = |paths: &[PathBuf], dead: &Path| {
        let out = ok(&mfagap()
            .args(["filter", "--dead-letter"])
            .arg(dead)
            .args(paths)
            .output()
            .unwrap());
        let mut records: Vec<Value> = out
            .lines()
            .map(|l| mfagap_testkit::comparable(l.as_bytes()))
            .collect();
        records.sort_by_key(|v| v["id"].as_str().unwrap().to_owned());
        let mut dead: Vec<Value> = std::fs::read_to_string(dead)
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("file");
                v.as_object_mut().unwrap().remove("line");
                v
            })
            .collect();
        dead.sort_by_key(|v| v.to_string());
        (records, dead)
    };
    let want = filter(&[jsonl], &dir.path().join("want-dead.jsonl"));
    assert!(!want.0.is_empty() && !want.1.is_empty());
    for codec in ["deflate", "snappy", "null"] {
        let root = dir.path().join(codec);
        let mut paths = Vec::new();
        for (rel, events) in &files {
            write_capture_file(&root.join(rel), events, codec).unwrap();
            paths.push(root.join(rel));
        }
        let got = filter(&paths, &dir.path().join(format!("{codec}-dead.jsonl")));
        assert!(got == want, "{codec}: the same records and dead letters");
    }

    let mut event = CaptureEvent::new(7, b"");
    event.body = None;
    let bodiless = dir.path().join("bodiless.avro");
    write_capture_file(&bodiless, &[CaptureEvent::new(6, b"[]"), event], "null").unwrap();
    let dead = dir.path().join("bodiless-dead.jsonl");
    ok(&mfagap()
        .args(["filter", "--dead-letter"])
        .arg(&dead)
        .arg(&bodiless)
        .output()
        .unwrap());
    let letters: Vec<Value> = std::fs::read_to_string(&dead)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["file"], bodiless.display().to_string());
    assert_eq!(
        (&letters[0]["line"], &letters[0]["raw"]),
        (&Value::from(2), &Value::from(""))
    );

    let mut damaged = std::fs::read(&bodiless).unwrap();
    damaged.truncate(damaged.len() - 8);
    let damaged_path = dir.path().join("damaged.avro");
    std::fs::write(&damaged_path, damaged).unwrap();
    let out = mfagap().arg("filter").arg(&damaged_path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{} is damaged", damaged_path.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
