//! Throughput and memory of the `eventhubs` source: the Event Hubs test double → the real
//! `mfagap-ingest` binary (AMQP client, event processor, checkpoints in Azurite) → a local
//! Kafka-protocol broker.
//!
//! `cargo bench -p mfagap-ingest --bench eventhubs` loads `MFAGAP_BENCH_MESSAGES` generated
//! message bodies (default 3,000: about 90,000 records, 350 MB) into a 4-partition double,
//! runs the service until every event's position is committed, stops it with SIGTERM, and
//! reports input records/s and MB/s over wall time, the service's CPU time (`wait4`) and its
//! peak RSS (`VmHWM`). The double, Azurite and the broker share the machine's cores with it.

use mfagap_generate::{Generator, GeneratorConfig};
use mfagap_testkit::eventhubs::{EventHubsConfig, EventHubsDouble};
use mfagap_testkit::{Azurite, Broker, http_get, metric, unique};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let messages: u64 = std::env::var("MFAGAP_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000);
    let double = EventHubsDouble::start(EventHubsConfig::default()).unwrap();
    let mut g = Generator::new(GeneratorConfig::default());
    let (mut records, mut bytes) = (0u64, 0u64);
    for _ in 0..messages {
        let m = g.next_message();
        records += m.expected.len() as u64;
        bytes += m.body.len() as u64;
        double.append(None, &m.body);
    }
    let azurite = Azurite::start().expect("Azurite: run scripts/setup.sh");
    azurite.create_container("checkpoints").unwrap();
    let broker = Broker::noida().expect("a broker: run scripts/setup.sh");
    let (topic, dead) = (unique("bench-out"), unique("bench-dl"));
    broker.create_topic(&topic, 6).unwrap();
    broker.create_topic(&dead, 1).unwrap();
    let addr = format!("127.0.0.1:{}", mfagap_testkit::port());

    let started = Instant::now();
    // Reaped by `wait4` below, which also returns its resource usage.
    #[allow(clippy::zombie_processes)]
    let mut child = Command::new(env!("CARGO_BIN_EXE_mfagap-ingest"))
        .args([
            "--source",
            "eventhubs",
            "--checkpoint-store",
            "az://checkpoints",
        ])
        .env(
            "MFAGAP_EVENTHUBS_CONNECTION_STRING",
            double.emulator_connection_string(),
        )
        .env("AZURE_STORAGE_USE_EMULATOR", "true")
        .env(
            "AZURITE_BLOB_STORAGE_URL",
            format!("http://127.0.0.1:{}", azurite.port()),
        )
        .args(["--bootstrap", &broker.bootstrap, "--topic", &topic])
        .args(["--dead-letter-topic", &dead, "--listen", &addr])
        .args(["--commit-interval", "500ms", "--log", "warn"])
        .args(
            std::env::var("MFAGAP_BENCH_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(1800);
    // The kernel's high-water mark of the service's own memory. Not `wait4`'s maxrss: that
    // counts the moment between fork and exec, when the child still maps this process, which
    // holds every event of the double.
    let status = |key: &str| {
        std::fs::read_to_string(format!("/proc/{}/status", child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(key))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            })
            .map_or(0.0, |kb| kb / 1024.0)
    };
    let rss_now = || status("VmRSS:");
    let mut hwm = 0.0f64;
    let mut timeline = Vec::new();
    loop {
        let m = http_get(&addr, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default();
        timeline.push((metric(&m, "mfagap_ingest_messages_total"), rss_now()));
        hwm = hwm.max(status("VmHWM:"));
        if metric(&m, "mfagap_ingest_committed_position") >= messages as f64 {
            break;
        }
        assert!(Instant::now() < deadline, "not done in 30 minutes");
        std::thread::sleep(Duration::from_millis(100));
    }
    let wall = started.elapsed().as_secs_f64();
    mfagap_testkit::process::signal(child.id(), mfagap_testkit::process::SIGTERM);
    let stopping = Instant::now();
    let mut after = Vec::new();
    loop {
        let state =
            std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
        if state.is_empty() || state.contains(") Z ") {
            break;
        }
        after.push((stopping.elapsed().as_millis(), rss_now()));
        hwm = hwm.max(status("VmHWM:"));
        std::thread::sleep(Duration::from_millis(50));
    }
    if std::env::var_os("MFAGAP_BENCH_TIMELINE").is_some() {
        for (ms, rss) in after.iter().step_by((after.len() / 20).max(1)) {
            println!("stopping +{ms:>5} ms, RSS {rss:>7.1} MB");
        }
    }
    let ended = mfagap_testkit::process::wait_with_usage(&mut child);
    assert_eq!(ended.code, Some(0), "{ended:?}");
    let cpu = ended.cpu_secs;
    if std::env::var_os("MFAGAP_BENCH_TIMELINE").is_some() {
        for (read, rss) in timeline.iter().step_by((timeline.len() / 20).max(1)) {
            println!("read {read:>8.0} events, RSS {rss:>7.1} MB");
        }
    }
    println!(
        "input: {messages} events on 4 partitions, {records} records, {:.0} MB",
        bytes as f64 / 1e6
    );
    println!(
        "wall {wall:.2} s (start to last commit): {:.0} input records/s, {:.0} events/s, {:.1} MB/s; ingest CPU {cpu:.2} s; peak RSS {hwm:.1} MB",
        records as f64 / wall,
        messages as f64 / wall,
        bytes as f64 / 1e6 / wall
    );
}
