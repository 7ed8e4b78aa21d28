//! Throughput, latency and memory of the ingest service, at least once and exactly once, on
//! one and on every core, on the same input in the same run.
//!
//! `cargo bench -p mfagap-ingest --bench ingest` starts a noida-db broker on this machine (or
//! uses `KAFKA_BOOTSTRAP`) and runs the real `mfagap-ingest` binary. `MFAGAP_BENCH_PHASES`
//! (default `delivery,threads,sizes,latency`) picks the phases:
//!
//! 1. **delivery**: a file of `MFAGAP_BENCH_MESSAGES` generated message bodies (default 6,000:
//!    about 175,000 records, 820 MB), per delivery mode, until the service ends; the modes
//!    alternate for `MFAGAP_BENCH_ROUNDS` rounds (default 3) and medians are compared.
//!    Reported: input records/s over wall time, the service's CPU time per record and its peak
//!    RSS (`VmHWM`, sampled).
//! 2. **threads**: the same file with the default delivery (exactly once on this broker) and
//!    `--threads 1` then `--threads 2`, alternating for the same rounds: records/s, and records
//!    per CPU-second of the service (what one core handles).
//! 3. **sizes**: inputs of `MFAGAP_BENCH_SIZES` MB (default `10,100,1000`), defaults: peak RSS
//!    against input size.
//! 4. **latency**: the Kafka source fed at `MFAGAP_BENCH_RATE` messages/s (default 200) for
//!    `MFAGAP_BENCH_SECONDS` (default 20), once per mode; a `read_committed` consumer of the
//!    output measures, per record, the time from the input message's timestamp (its enqueue)
//!    to the moment it could read it. Reported: p50 and p99.
//!
//! Targets on a 2-core machine with the broker on it: ≥ 120,000 input records/s on both
//! cores, RSS < 200 MB, exactly once within 15% of at least once in throughput.

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

/// A generated input file.
struct Input {
    path: std::path::PathBuf,
    messages: u64,
    records: u64,
    bytes: u64,
}

/// Writes generated message bodies, one per line, until `messages` or `bytes` is reached.
fn input(path: std::path::PathBuf, messages: u64, bytes: u64) -> Input {
    let mut out = BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut g = Generator::new(GeneratorConfig::default());
    let (mut n, mut records, mut written) = (0u64, 0u64, 0u64);
    while n < messages && written < bytes {
        let m = g.next_message();
        records += m.expected.len() as u64;
        out.write_all(&m.body).unwrap();
        out.write_all(b"\n").unwrap();
        written += m.body.len() as u64 + 1;
        n += 1;
    }
    out.flush().unwrap();
    Input {
        path,
        messages: n,
        records,
        bytes: written,
    }
}

/// What one run of the service over a file measured.
struct Run {
    wall: f64,
    cpu: f64,
    rss_mb: f64,
}

/// Runs `mfagap-ingest` over `input` with these flags, to the end of the file.
fn ingest(broker: &Broker, input: &Input, flags: &[&str]) -> Run {
    let (topic, dead) = (unique("bench-out"), unique("bench-dl"));
    broker.create_topic(&topic, 6).unwrap();
    broker.create_topic(&dead, 1).unwrap();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mfagap-ingest"))
        .args(["--source", "file", "--input"])
        .arg(&input.path)
        .args(["--bootstrap", &broker.bootstrap, "--topic", &topic])
        .args(["--dead-letter-topic", &dead, "--listen", "127.0.0.1:0"])
        .args(["--positions-topic", &unique("positions")])
        .args(["--log", "warn"])
        .args(flags)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let ended = mfagap_testkit::process::wait_with_usage(&mut child);
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(ended.code, Some(0), "{flags:?}: {ended:?}");
    assert!(
        !broker.read_all(&topic).unwrap().is_empty(),
        "{flags:?}: sign-ins written"
    );
    Run {
        wall,
        cpu: ended.cpu_secs,
        rss_mb: ended.max_rss_mb,
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn main() {
    let phases = std::env::var("MFAGAP_BENCH_PHASES")
        .unwrap_or_else(|_| "delivery,threads,sizes,latency".to_owned());
    let phase = |name: &str| phases.split(',').any(|p| p.trim() == name);
    let dir = tempfile::tempdir().unwrap();
    let main_input = input(
        dir.path().join("input.jsonl"),
        env("MFAGAP_BENCH_MESSAGES", 6_000),
        u64::MAX,
    );
    let (records, bytes) = (main_input.records, main_input.bytes);
    let broker = Broker::noida().expect("a broker: run scripts/setup.sh");
    println!(
        "input: {} messages, {records} records, {:.0} MB",
        main_input.messages,
        bytes as f64 / 1e6
    );
    let rounds = env("MFAGAP_BENCH_ROUNDS", 3).max(1);

    if phase("delivery") {
        // The modes alternate over several rounds and the medians are compared: one run of
        // each on a 2-core machine shared with the broker varies by ±10%.
        let mut throughput: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for round in 0..rounds {
            for (m, mode) in MODES.into_iter().enumerate() {
                let r = ingest(&broker, &main_input, &["--delivery", mode]);
                let rate = records as f64 / r.wall;
                println!(
                    "{mode:>14} (round {}): wall {:.2} s, {rate:.0} input records/s, {:.1} MB/s; CPU {:.2} s ({:.2} µs per record); peak RSS {:.1} MB",
                    round + 1,
                    r.wall,
                    bytes as f64 / 1e6 / r.wall,
                    r.cpu,
                    r.cpu * 1e6 / records as f64,
                    r.rss_mb
                );
                throughput[m].push(rate);
            }
        }
        let (alo, eo) = (median(&mut throughput[0]), median(&mut throughput[1]));
        println!(
            "medians over {rounds} rounds: at least once {alo:.0}, exactly once {eo:.0} input records/s: exactly once costs {:.1}% (target ≤ 15%) {}",
            (1.0 - eo / alo) * 100.0,
            verdict(eo >= alo * 0.85)
        );
    }

    if phase("threads") {
        let mut rate: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        let mut per_cpu: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        let mut rss: [f64; 2] = [0.0; 2];
        for round in 0..rounds {
            for (i, threads) in ["1", "2"].into_iter().enumerate() {
                let r = ingest(&broker, &main_input, &["--threads", threads]);
                println!(
                    "{threads} thread(s) (round {}): wall {:.2} s, {:.0} input records/s, {:.0} records per CPU-second; peak RSS {:.1} MB",
                    round + 1,
                    r.wall,
                    records as f64 / r.wall,
                    records as f64 / r.cpu,
                    r.rss_mb
                );
                rate[i].push(records as f64 / r.wall);
                per_cpu[i].push(records as f64 / r.cpu);
                rss[i] = rss[i].max(r.rss_mb);
            }
        }
        for (i, threads) in [1, 2].into_iter().enumerate() {
            println!(
                "--threads {threads}: median {:.0} input records/s, {:.0} records per CPU-second of the service, peak RSS {:.1} MB",
                median(&mut rate[i]),
                median(&mut per_cpu[i]),
                rss[i]
            );
        }
        let both = median(&mut rate[1]);
        println!(
            "both cores: {both:.0} input records/s (target ≥ 120,000) {}; peak RSS {:.1} MB (target < 200) {}",
            verdict(both >= 120_000.0),
            rss[1],
            verdict(rss[1] < 200.0)
        );
    }

    if phase("sizes") {
        let sizes = std::env::var("MFAGAP_BENCH_SIZES").unwrap_or_else(|_| "10,100,1000".into());
        for mb in sizes
            .split(',')
            .filter_map(|s| s.trim().parse::<u64>().ok())
        {
            let sized = input(
                dir.path().join(format!("{mb}mb.jsonl")),
                u64::MAX,
                mb * 1_000_000,
            );
            let r = ingest(&broker, &sized, &[]);
            println!(
                "input {:.0} MB ({} records): peak RSS {:.1} MB, {:.0} input records/s",
                sized.bytes as f64 / 1e6,
                sized.records,
                r.rss_mb,
                sized.records as f64 / r.wall
            );
            std::fs::remove_file(&sized.path).unwrap();
        }
    }

    if phase("latency") {
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
