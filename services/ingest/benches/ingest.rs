//! Throughput and memory of the ingest service: file source → a local Kafka-protocol broker.
//!
//! `cargo bench -p mfagap-ingest --bench ingest` generates `MFAGAP_BENCH_MESSAGES` message
//! bodies (default 6,000: about 180,000 records, 700 MB), starts a noida-db broker on this
//! machine (or uses `KAFKA_BOOTSTRAP`), and runs the real `mfagap-ingest` binary over the file
//! until every record is acknowledged. It reports input records/s and MB/s over wall time,
//! the service's CPU time and its peak RSS as the kernel measured them (`wait4`). Targets on
//! a 2-core machine with the broker on it: ≥ 50,000 input records/s, RSS < 200 MB.

use mfagap_generate::{Generator, GeneratorConfig};
use mfagap_testkit::{Broker, unique};
use std::io::{BufWriter, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

fn main() {
    let messages: u64 = std::env::var("MFAGAP_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.jsonl");
    let mut out = BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut g = Generator::new(GeneratorConfig::default());
    let mut records = 0u64;
    for _ in 0..messages {
        let m = g.next_message();
        records += m.expected.len() as u64;
        out.write_all(&m.body).unwrap();
        out.write_all(b"\n").unwrap();
    }
    out.flush().unwrap();
    drop(out);
    let bytes = std::fs::metadata(&path).unwrap().len();

    let broker = Broker::noida().expect("a broker: run scripts/setup.sh");
    let (topic, dead) = (unique("bench-out"), unique("bench-dl"));
    broker.create_topic(&topic, 6).unwrap();
    broker.create_topic(&dead, 1).unwrap();

    let started = Instant::now();
    // Reaped by `wait4` below, which also returns its resource usage.
    #[allow(clippy::zombie_processes)]
    let mut child = Command::new(env!("CARGO_BIN_EXE_mfagap-ingest"))
        .args(["--source", "file", "--input"])
        .arg(&path)
        .args(["--bootstrap", &broker.bootstrap, "--topic", &topic])
        .args(["--dead-letter-topic", &dead, "--listen", "127.0.0.1:0"])
        .args(["--log", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let ended = mfagap_testkit::process::wait_with_usage(&mut child);
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(ended.code, Some(0), "{ended:?}");
    let (cpu, rss) = (ended.cpu_secs, ended.max_rss_mb);
    let produced = broker.read_all(&topic).unwrap().len();
    println!(
        "input: {messages} messages, {records} records, {:.0} MB; produced {produced} records",
        bytes as f64 / 1e6
    );
    println!(
        "wall {wall:.2} s: {:.0} input records/s, {:.1} MB/s; ingest CPU {cpu:.2} s; peak RSS {rss:.1} MB",
        records as f64 / wall,
        bytes as f64 / 1e6 / wall
    );
    println!(
        "targets: ≥ 50,000 records/s {}; RSS < 200 MB {}",
        if records as f64 / wall >= 50_000.0 {
            "met"
        } else {
            "MISSED"
        },
        if rss < 200.0 { "met" } else { "MISSED" }
    );
}
