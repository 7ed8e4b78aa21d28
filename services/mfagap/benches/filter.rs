//! Throughput and memory of `mfagap filter` over `generate` output, as a user would run it,
//! against a Python filter of the same rule on the same input.
//!
//! `cargo bench -p mfagap --bench filter` writes (once, then reuses) a generated input of at least
//! `MFAGAP_BENCH_BYTES` bytes (default 1.1 GB) under `target/`, runs the real binary on it with
//! one worker thread and with two, and reports per run: MB/s of input (wall clock and per
//! CPU-second, the figure that says how fast one core is), records/s, and the child's peak RSS
//! measured by the kernel. A small input is run too, to show that memory does not grow with the
//! input. Then `filter_baseline.py` (beside this file: the rule in Python with the standard
//! `json` module) reads the same input with `python3`; it must emit as many sign-ins as
//! `mfagap filter` did, or the bench fails. Targets (README.md, "Benchmark"): ≥ 1.5 GB/s on 2
//! cores, ≥ 15× the Python filter, peak RSS < 100 MB. On a machine shared with other work the
//! wall clock says less than the CPU time, so the throughput two whole cores would give
//! (2 × MB per CPU-second) is printed beside it.
//!
//! Then each output format on the large input, two workers, in the same run: the CPU time of
//! OCSF (both versions) and ECS against the native record's. Target: each costs ≤ 25% more.

use mfagap_generate::{Generator, GeneratorConfig};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

fn main() {
    // `cargo bench` passes `--bench`; anything else (a filter) is ignored.
    let target: u64 = std::env::var("MFAGAP_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_100_000_000);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let big = input(&dir, target);
    let small = input(&dir, target / 10);
    // The target is for two cores: two workers, whatever this machine has.
    let cores = 2;
    println!(
        "{:>10} {:>8} {:>8} {:>10} {:>12} {:>12} {:>12} {:>10}",
        "input MB", "threads", "wall s", "MB/s", "CPU s", "MB/s/core", "records/s", "RSS MB"
    );
    let mut worst_rss = 0.0f64;
    let mut both = None;
    for (path, threads) in [(&small, 1), (&big, 1), (&big, cores)] {
        let r = run(path, threads, &[]);
        println!(
            "{:>10.0} {:>8} {:>8.2} {:>10.0} {:>12.2} {:>12.0} {:>12.0} {:>10.1}",
            r.bytes as f64 / 1e6,
            threads,
            r.wall,
            r.bytes as f64 / 1e6 / r.wall,
            r.cpu,
            r.bytes as f64 / 1e6 / r.cpu,
            r.records as f64 / r.wall,
            r.rss_mb
        );
        worst_rss = worst_rss.max(r.rss_mb);
        if path == &big && threads == cores {
            both = Some(r);
        }
    }
    let both = both.expect("the two-core run ran");
    let python = baseline(&big);
    println!(
        "{:>10} {:>8} {:>8.2} {:>10.0} {:>12.2} {:>12.0} {:>12.0} {:>10.1}",
        "python",
        1,
        python.wall,
        python.bytes as f64 / 1e6 / python.wall,
        python.cpu,
        python.bytes as f64 / 1e6 / python.cpu,
        python.records as f64 / python.wall,
        python.rss_mb
    );
    assert_eq!(
        python.emitted, both.emitted,
        "the Python baseline and mfagap filter emit as many sign-ins"
    );
    let wall_mbs = both.bytes as f64 / 1e6 / both.wall;
    let cpu_mbs = 2.0 * both.bytes as f64 / 1e6 / both.cpu;
    let ratio = python.wall / both.wall;
    println!(
        "2 cores: {wall_mbs:.0} MB/s (target ≥ 1500) {}; 2 × MB per CPU-second: {cpu_mbs:.0} MB/s {}",
        verdict(wall_mbs >= 1500.0),
        verdict(cpu_mbs >= 1500.0)
    );
    println!(
        "against Python ({} sign-ins emitted by both): {ratio:.1}× (target ≥ 15×) {}",
        both.emitted,
        verdict(ratio >= 15.0)
    );
    println!(
        "peak RSS {worst_rss:.1} MB (target < 100) {}",
        verdict(worst_rss < 100.0)
    );

    println!();
    println!(
        "{:>14} {:>8} {:>10} {:>8} {:>12} {:>10} {:>10}",
        "format", "wall s", "MB/s", "CPU s", "records/s", "RSS MB", "CPU cost"
    );
    let formats: [(&str, &[&str]); 4] = [
        ("native", &["--format", "native"]),
        (
            "ocsf 1.8.0",
            &["--format", "ocsf", "--ocsf-version", "1.8.0"],
        ),
        (
            "ocsf 1.1.0",
            &["--format", "ocsf", "--ocsf-version", "1.1.0"],
        ),
        ("ecs", &["--format", "ecs"]),
    ];
    let mut native_cpu = 0.0;
    let mut worst_cost = 0.0f64;
    for (name, args) in formats {
        let r = run(&big, cores, args);
        if name == "native" {
            native_cpu = r.cpu;
        }
        let cost = r.cpu / native_cpu - 1.0;
        worst_cost = worst_cost.max(cost);
        println!(
            "{:>14} {:>8.2} {:>10.0} {:>8.2} {:>12.0} {:>10.1} {:>9.1}%",
            name,
            r.wall,
            r.bytes as f64 / 1e6 / r.wall,
            r.cpu,
            r.records as f64 / r.wall,
            r.rss_mb,
            cost * 100.0
        );
    }
    println!(
        "OCSF and ECS cost at most {:.1}% CPU against native (target ≤ 25%) {}",
        worst_cost * 100.0,
        verdict(worst_cost <= 0.25)
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// A generated input of at least `bytes`, reused across runs (the generator is deterministic).
fn input(dir: &Path, bytes: u64) -> PathBuf {
    let path = dir.join(format!("bench-input-{bytes}.jsonl"));
    if std::fs::metadata(&path).is_ok_and(|m| m.len() >= bytes) {
        return path;
    }
    eprintln!("generating {} MB of input…", bytes / 1_000_000);
    let tmp = path.with_extension("partial");
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp).unwrap());
    let mut g = Generator::new(GeneratorConfig::default());
    let mut written = 0u64;
    while written < bytes {
        let m = g.next_message();
        out.write_all(&m.body).unwrap();
        out.write_all(b"\n").unwrap();
        written += m.body.len() as u64 + 1;
    }
    out.flush().unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

struct Run {
    bytes: u64,
    records: u64,
    emitted: u64,
    wall: f64,
    cpu: f64,
    rss_mb: f64,
}

/// `filter_baseline.py` over the same input, its summary read from its standard error.
fn baseline(path: &Path) -> Run {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/filter_baseline.py");
    let started = Instant::now();
    // Reaped by `wait4` below, which also returns its resource usage.
    #[allow(clippy::zombie_processes)]
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    // Its standard error is one line, far less than a pipe holds, so it is read after the end.
    let ended = mfagap_testkit::process::wait_with_usage(&mut child);
    let wall = started.elapsed().as_secs_f64();
    let mut summary = String::new();
    child
        .stderr
        .take()
        .expect("standard error is piped")
        .read_to_string(&mut summary)
        .unwrap();
    assert_eq!(ended.code, Some(0), "the Python filter failed: {summary}");
    let s: serde_json::Value = serde_json::from_str(summary.trim()).unwrap();
    Run {
        bytes: std::fs::metadata(path).unwrap().len(),
        records: s["records"].as_u64().unwrap(),
        emitted: s["emitted"].as_u64().unwrap(),
        wall,
        cpu: ended.cpu_secs,
        rss_mb: ended.max_rss_mb,
    }
}

fn run(path: &Path, threads: usize, extra: &[&str]) -> Run {
    let stats = path.with_extension(format!("stats-{threads}.json"));
    let started = Instant::now();
    // Reaped by `wait4` below, which also returns its resource usage.
    #[allow(clippy::zombie_processes)]
    let mut child = Command::new(env!("CARGO_BIN_EXE_mfagap"))
        .args(["filter", "--threads", &threads.to_string(), "--stats"])
        .arg(&stats)
        .args(extra)
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the mfagap binary runs");
    // wait4 gives this child's own CPU time and peak RSS, as the kernel counted them.
    let ended = mfagap_testkit::process::wait_with_usage(&mut child);
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(ended.code, Some(0), "filter failed: {ended:?}");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    Run {
        bytes: std::fs::metadata(path).unwrap().len(),
        records: s["records"].as_u64().unwrap(),
        emitted: s["emitted"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum(),
        wall,
        cpu: ended.cpu_secs,
        rss_mb: ended.max_rss_mb,
    }
}
