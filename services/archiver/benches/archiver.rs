//! Throughput and memory of the archiver: a local Kafka-protocol broker → published Parquet.
//!
//! `cargo bench -p mfagap-archiver --bench archiver` produces `MFAGAP_BENCH_RECORDS` output
//! records (default 200,000, about 300 MB of JSON) to a 4-partition topic of a noida-db broker
//! on this machine (or `KAFKA_BOOTSTRAP`), then runs the real `mfagap-archiver` binary until
//! every row is read and then stops it (publishing what it holds), twice: with the default roll settings and with small ones. It reports
//! rows/s over wall time and per CPU-second of the archiver (the kernel's figures, from
//! `wait4`), input MB/s, file count and sizes, and peak RSS (VmHWM, sampled until it exits). Target on a 2-core machine with the
//! broker on it: ≥ 250,000 rows/s per core; RSS bounded by the roll settings.

use mfagap_testkit::{Broker, http_get, metric, unique};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn records(n: usize) -> (Vec<Vec<u8>>, u64) {
    let out = mfagap_testkit::output_records(n, 0, "bench-");
    let bytes = out.iter().map(|r| r.len() as u64).sum();
    (out, bytes)
}

/// The process's peak resident memory (VmHWM) in MB; `None` once it has exited.
///
/// Not `wait4`'s `ru_maxrss`: the child is started by vfork, and the kernel counts the
/// parent's memory (here: every record produced) in the child's maximum at exec.
fn vm_hwm(pid: libc::pid_t) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn files(dir: &Path, out: &mut Vec<u64>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.to_string_lossy().ends_with(".parquet") {
            out.push(e.metadata().unwrap().len());
        }
    }
}

fn run(broker: &Broker, topic: &str, n: usize, input_bytes: u64, label: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", mfagap_testkit::port());
    let started = Instant::now();
    // Reaped by `wait4` below, which also returns its resource usage.
    #[allow(clippy::zombie_processes)]
    // MFAGAP_BENCH_WRAP runs the archiver under a profiler, e.g. `heaptrack -o /tmp/archiver`.
    let wrap: Vec<String> = std::env::var("MFAGAP_BENCH_WRAP")
        .map(|w| w.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    let mut cmd = match wrap.split_first() {
        Some((tool, args)) => {
            let mut c = Command::new(tool);
            c.args(args).arg(env!("CARGO_BIN_EXE_mfagap-archiver"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_mfagap-archiver")),
    };
    // Reaped by `wait4` below, which also returns its resource usage.
    #[allow(clippy::zombie_processes)]
    let mut child = cmd
        .args(["--bootstrap", &broker.bootstrap, "--topic", topic])
        .args(["--group", &unique("bench"), "--listen", &addr])
        .args(["--dead-letter-topic", &unique("bench-dl")])
        .arg("--data")
        .arg(dir.path())
        .args(["--log", "warn"])
        .args(extra)
        .args(
            broker
                .extra_properties()
                .iter()
                .flat_map(|p| ["-X".to_string(), p.clone()]),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut peak = 0.0f64;
    // Once every record is read, SIGTERM: the graceful stop publishes what is buffered, so
    // the exit is the moment everything is published.
    loop {
        let read = http_get(&addr, "/metrics")
            .map(|(_, m)| metric(&m, "mfagap_archiver_messages_total"))
            .unwrap_or(0.0);
        if std::env::var_os("MFAGAP_BENCH_TRACE").is_some() {
            let m = http_get(&addr, "/metrics")
                .map(|(_, m)| m)
                .unwrap_or_default();
            eprintln!(
                "{:6.2}s read {read:>8} rss {:>7.1} MB buffered {:>6.1} MB rows {}",
                started.elapsed().as_secs_f64(),
                mfagap_testkit::rss_mb(pid as u32).unwrap_or(0.0),
                metric(&m, "mfagap_archiver_buffered_bytes") / 1e6,
                metric(&m, "mfagap_archiver_rows_total"),
            );
        }
        peak = peak.max(vm_hwm(pid).unwrap_or(0.0));
        if read as usize >= n {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "too slow");
        std::thread::sleep(Duration::from_millis(20));
    }
    mfagap_testkit::process::signal(child.id(), mfagap_testkit::process::SIGTERM);
    // Until it exits (a zombie has no memory left to report).
    while let Some(h) = vm_hwm(pid) {
        peak = peak.max(h);
        std::thread::sleep(Duration::from_millis(5));
    }
    let ended = mfagap_testkit::process::wait_with_usage(&mut child);
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(ended.code, Some(0), "{ended:?}");
    let cpu = ended.cpu_secs;
    let mut sizes = Vec::new();
    files(dir.path(), &mut sizes);
    let rows = mfagap_testkit::read_dataset(dir.path())
        .map(|r| r.len())
        .unwrap_or(0);
    assert_eq!(rows, n, "rows in the dataset");
    let total: u64 = sizes.iter().sum();
    let mb = |b: u64| b as f64 / 1e6;
    println!("\n{label}: {n} rows, {:.0} MB of JSON", mb(input_bytes));
    println!(
        "  wall {wall:.2} s: {:.0} rows/s, {:.0} MB/s",
        n as f64 / wall,
        mb(input_bytes) / wall
    );
    println!(
        "  archiver CPU {cpu:.2} s: {:.0} rows/s per core, {:.0} MB/s per core",
        n as f64 / cpu,
        mb(input_bytes) / cpu
    );
    println!(
        "  {} files, {:.1} MB in all ({:.1}% of the JSON), {:.1}–{:.1} MB each",
        sizes.len(),
        mb(total),
        100.0 * total as f64 / input_bytes as f64,
        mb(*sizes.iter().min().unwrap_or(&0)),
        mb(*sizes.iter().max().unwrap_or(&0)),
    );
    println!("  peak RSS {peak:.1} MB");
}

fn topic_of(broker: &Broker, records: &[Vec<u8>]) -> String {
    let topic = unique("bench-signins");
    broker.create_topic(&topic, 4).unwrap();
    broker.produce(&topic, 4, records).unwrap();
    topic
}

fn main() {
    let n: usize = std::env::var("MFAGAP_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let (records, bytes) = records(n);
    let kind = match std::env::var("MFAGAP_BENCH_BROKER").as_deref() {
        Ok("tansu") => mfagap_testkit::Kind::Tansu,
        _ => mfagap_testkit::Kind::Noida,
    };
    let broker = Broker::start(kind).expect("a broker: run scripts/setup.sh");
    let extra: Vec<String> = std::env::var("MFAGAP_BENCH_ARGS")
        .map(|a| a.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    if !extra.is_empty() {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        run(
            &broker,
            &topic_of(&broker, &records),
            n,
            bytes,
            "MFAGAP_BENCH_ARGS",
            &extra,
        );
        return;
    }
    let topic = topic_of(&broker, &records);
    drop(records);
    run(&broker, &topic, n, bytes, "default roll settings", &[]);
    run(
        &broker,
        &topic,
        n,
        bytes,
        "small rolls (--roll-bytes 8MiB --max-buffered 32MiB)",
        &["--roll-bytes", "8MiB", "--max-buffered", "32MiB"],
    );
}
