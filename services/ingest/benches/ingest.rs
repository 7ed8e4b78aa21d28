//! Throughput, latency and memory of the ingest service, at least once and exactly once, on
//! the same input in the same run.
//!
//! `cargo bench -p mfagap-ingest --bench ingest` starts a noida-db broker on this machine (or
//! uses `KAFKA_BOOTSTRAP`) and runs the real `mfagap-ingest` binary:
//!
//! 1. **Throughput**: a file of `MFAGAP_BENCH_MESSAGES` generated message bodies (default
//!    6,000: about 180,000 records, 800 MB), per delivery mode, until the service ends; the
//!    modes alternate for `MFAGAP_BENCH_ROUNDS` rounds (default 3) and medians are compared.
//!    Reported: input records/s over wall time, the service's CPU time per record and its peak
//!    RSS, as the kernel measured them (`wait4`).
//! 2. **Latency**: the Kafka source fed at `MFAGAP_BENCH_RATE` messages/s (default 200) for
//!    `MFAGAP_BENCH_SECONDS` (default 20), once per mode; a `read_committed` consumer of the
//!    output measures, per record, the time from the input message's timestamp (its enqueue)
//!    to the moment it could read it. Reported: p50 and p99.
//!
//! Targets on a 2-core machine with the broker on it: ≥ 50,000 input records/s, RSS < 200 MB,
//! exactly once within 15% of at least once in throughput.

use mfagap_generate::{Generator, GeneratorConfig};
use mfagap_testkit::{Broker, unique};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use std::io::{BufWriter, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const MODES: [&str; 2] = ["at-least-once", "exactly-once"];

fn main() {
    let messages = env("MFAGAP_BENCH_MESSAGES", 6_000);
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
    println!(
        "input: {messages} messages, {records} records, {:.0} MB",
        bytes as f64 / 1e6
    );

    // The modes alternate over several rounds and the medians are compared: one run of each
    // on a 2-core machine shared with the broker varies by ±10%.
    let rounds = env("MFAGAP_BENCH_ROUNDS", 3).max(1);
    let mut throughput: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        for (m, mode) in MODES.into_iter().enumerate() {
            let (topic, dead) = (unique("bench-out"), unique("bench-dl"));
            broker.create_topic(&topic, 6).unwrap();
            broker.create_topic(&dead, 1).unwrap();
            let started = Instant::now();
            let mut child = Command::new(env!("CARGO_BIN_EXE_mfagap-ingest"))
                .args(["--source", "file", "--input"])
                .arg(&path)
                .args(["--bootstrap", &broker.bootstrap, "--topic", &topic])
                .args(["--dead-letter-topic", &dead, "--listen", "127.0.0.1:0"])
                .args([
                    "--delivery",
                    mode,
                    "--positions-topic",
                    &unique("positions"),
                ])
                .args(["--log", "warn"])
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            let ended = mfagap_testkit::process::wait_with_usage(&mut child);
            let wall = started.elapsed().as_secs_f64();
            assert_eq!(ended.code, Some(0), "{mode}: {ended:?}");
            let produced = broker.read_all(&topic).unwrap().len();
            let rate = records as f64 / wall;
            println!(
                "{mode:>14} (round {}): wall {wall:.2} s, {rate:.0} input records/s, {:.1} MB/s; CPU {:.2} s ({:.2} µs per record); peak RSS {:.1} MB; produced {produced}",
                round + 1,
                bytes as f64 / 1e6 / wall,
                ended.cpu_secs,
                ended.cpu_secs * 1e6 / records as f64,
                ended.max_rss_mb
            );
            throughput[m].push(rate);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (alo, eo) = (median(&mut throughput[0]), median(&mut throughput[1]));
    println!(
        "medians over {rounds} rounds: at least once {alo:.0}, exactly once {eo:.0} input records/s: exactly once costs {:.1}% (target ≤ 15%)",
        (1.0 - eo / alo) * 100.0
    );

    let rate = env("MFAGAP_BENCH_RATE", 200);
    let seconds = env("MFAGAP_BENCH_SECONDS", 20);
    for mode in MODES {
        let (p50, p99, n) = latency(&broker, mode, rate, seconds);
        println!(
            "{mode:>14}: {n} records at {rate} messages/s: enqueue → visible to read_committed p50 {:.0} ms, p99 {:.0} ms",
            p50 * 1e3,
            p99 * 1e3
        );
    }
}

/// Feeds the Kafka source at `rate` messages/s for `seconds` and measures how long each
/// output record took from its input's enqueue until a read_committed consumer read it.
fn latency(broker: &Broker, mode: &str, rate: u64, seconds: u64) -> (f64, f64, usize) {
    let (input, topic, dead) = (unique("lat-in"), unique("lat-out"), unique("lat-dl"));
    broker.create_topic(&input, 4).unwrap();
    broker.create_topic(&topic, 6).unwrap();
    broker.create_topic(&dead, 1).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mfagap-ingest"))
        .args(["--source", "kafka", "--source-bootstrap", &broker.bootstrap])
        .args(["--source-topic", &input, "--consumer-group", &unique("lat")])
        .args(["--bootstrap", &broker.bootstrap, "--topic", &topic])
        .args(["--dead-letter-topic", &dead, "--listen", "127.0.0.1:0"])
        .args(["--delivery", mode, "--start-position", "earliest"])
        .args(["--log", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let consumer: BaseConsumer = broker
        .client_config()
        .set("group.id", unique("lat-reader"))
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .set("receive.message.max.bytes", "1000000000")
        .create()
        .unwrap();
    consumer.subscribe(&[topic.as_str()]).unwrap();
    let producer: rdkafka::producer::BaseProducer = broker
        .client_config()
        .set("linger.ms", "0")
        .set("message.max.bytes", "10000000")
        .create()
        .unwrap();
    let mut g = Generator::new(GeneratorConfig {
        seed: 99,
        max_records: 3,
        malformed_share: 0.0,
        ..GeneratorConfig::default()
    });
    let total = rate * seconds;
    let started = Instant::now();
    let mut sent = 0u64;
    let mut latencies = Vec::new();
    let end = started + Duration::from_secs(seconds + 20);
    while Instant::now() < end {
        // Send what is due by now.
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        while sent < due {
            let body = g.next_message().body;
            let record = rdkafka::producer::BaseRecord::<[u8], [u8]>::to(&input)
                .payload(&body)
                .partition((sent % 4) as i32);
            producer.send(record).map_err(|(e, _)| e).unwrap();
            sent += 1;
        }
        producer.poll(Duration::ZERO);
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(5)) {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64()
                * 1e3;
            let v: serde_json::Value =
                serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or_default();
            if let Some(t) = v["source"]["enqueuedTime"].as_str()
                && let Ok(t) = chrono::DateTime::parse_from_rfc3339(t)
            {
                latencies.push((now_ms - t.timestamp_millis() as f64) / 1e3);
            }
        }
        if sent >= total && started.elapsed() > Duration::from_secs(seconds + 5) {
            break;
        }
    }
    mfagap_testkit::process::signal(child.id(), mfagap_testkit::process::SIGTERM);
    let _ = child.wait();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    (at(0.5), at(0.99), latencies.len())
}
