//! `mfagap filter` over the same records in each input layout a user may have: JSON Lines of
//! message bodies, one JSON array on a single line, a pretty-printed array, and that array
//! compressed with gzip and with zstd.
//!
//! `cargo bench -p mfagap --bench input_formats` writes (once, then reuses) a generated JSON
//! Lines input of at least `MFAGAP_BENCH_BYTES` bytes (default 1.1 GB) under `target/`, and
//! from it the other layouts: every record of every message as one element of an array (as an
//! export of the sign-in logs writes it). It runs the real binary on each with every core and
//! reports MB/s of (decompressed) input, the CPU time, and the child's peak RSS measured by the
//! kernel (`wait4`; the inputs are written by a child process, so that this one stays small
//! when it forks the runs). Targets: each single document within 20% of JSON Lines throughput, peak
//! RSS under 100 MB.
//!
//! Then the splitting alone, in this process, on the one-line array: the framing scanner
//! against serde_json's streaming reader (a sequence visitor over `io::Read` that takes each
//! element as raw JSON) — the crate-based way to do the same.

use mfagap_core::framing::{self, Framer};
use mfagap_generate::{Generator, GeneratorConfig};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Set in the child process that writes the inputs.
const GENERATE: &str = "MFAGAP_BENCH_GENERATE";

fn main() {
    // `cargo bench` passes `--bench`; anything else (a filter) is ignored.
    let target: u64 = std::env::var("MFAGAP_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_100_000_000);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let inputs = inputs(&dir, target);
    if std::env::var_os(GENERATE).is_some() {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{:>22} {:>10} {:>10} {:>8} {:>10} {:>8} {:>12} {:>10}",
        "input", "file MB", "JSON MB", "wall s", "MB/s", "CPU s", "records", "RSS MB"
    );
    let mut lines_rate = 0.0;
    // The target is the single document's; a compressed file adds its decompression, reported
    // apart.
    let (mut worst_ratio, mut worst_compressed) = (f64::MAX, f64::MAX);
    let mut worst_rss = 0.0f64;
    for (name, path, json_bytes) in &inputs {
        let r = run(path, cores);
        let rate = *json_bytes as f64 / 1e6 / r.wall;
        if *name == "JSON Lines" {
            lines_rate = rate;
        } else if name.ends_with("gzip") || name.ends_with("zstd") {
            worst_compressed = worst_compressed.min(rate / lines_rate);
        } else {
            worst_ratio = worst_ratio.min(rate / lines_rate);
        }
        worst_rss = worst_rss.max(r.rss_mb);
        println!(
            "{:>22} {:>10.0} {:>10.0} {:>8.2} {:>10.0} {:>8.2} {:>12} {:>10.1}",
            name,
            std::fs::metadata(path).unwrap().len() as f64 / 1e6,
            *json_bytes as f64 / 1e6,
            r.wall,
            rate,
            r.cpu,
            r.records,
            r.rss_mb
        );
    }
    println!(
        "single documents: at least {:.0}% of JSON Lines throughput (target ≥ 80%) {}; peak RSS {worst_rss:.1} MB (target < 100) {}",
        worst_ratio * 100.0,
        verdict(worst_ratio >= 0.8),
        verdict(worst_rss < 100.0)
    );
    println!(
        "compressed documents: at least {:.0}% of JSON Lines throughput (decompression on top)",
        worst_compressed * 100.0
    );

    println!();
    let array = &inputs[1].1;
    let bytes = std::fs::metadata(array).unwrap().len() as f64;
    let started = Instant::now();
    let mut f = Framer::new(
        BufReader::new(File::open(array).unwrap()),
        framing::DEFAULT_MAX_MESSAGE_BYTES,
    );
    let mut n = 0u64;
    while f.next().unwrap().is_some() {
        n += 1;
    }
    let scanner = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut de = serde_json::Deserializer::from_reader(BufReader::new(File::open(array).unwrap()));
    let m = CountElements::deserialize(&mut de).unwrap().0;
    let serde = started.elapsed().as_secs_f64();
    assert_eq!(n, m, "both see every element");
    println!("splitting the one-line array alone ({n} elements, one thread):");
    println!(
        "  framing scanner            {:>8.0} MB/s",
        bytes / 1e6 / scanner
    );
    println!(
        "  serde_json SeqAccess (io)  {:>8.0} MB/s",
        bytes / 1e6 / serde
    );
}

/// Counts the elements of a JSON array, each taken as raw JSON (as a body would be).
struct CountElements(u64);

impl<'de> Deserialize<'de> for CountElements {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = CountElements;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<CountElements, A::Error> {
                let mut n = 0;
                while seq.next_element::<Box<RawValue>>()?.is_some() {
                    n += 1;
                }
                Ok(CountElements(n))
            }
        }
        d.deserialize_seq(Visitor)
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// Each layout's name, file, and decompressed size; written once, reused across runs (the
/// generator is deterministic).
fn inputs(dir: &Path, bytes: u64) -> Vec<(&'static str, PathBuf, u64)> {
    let stem = dir.join(format!("formats-{bytes}"));
    let lines = stem.with_extension("jsonl");
    let array = stem.with_extension("array.json");
    let pretty = stem.with_extension("pretty.json");
    let gzip = stem.with_extension("array.json.gz");
    let zstd = stem.with_extension("array.json.zst");
    if std::env::var_os(GENERATE).is_none() {
        if !zstd.exists() {
            // In a process of its own: the kernel counts a parent's peak RSS at fork time
            // into its child's, so the runs below start from a small parent.
            let status = Command::new(std::env::current_exe().unwrap())
                .env(GENERATE, "1")
                .status()
                .unwrap();
            assert!(status.success(), "generating the inputs failed");
        }
    } else if !zstd.exists() {
        eprintln!(
            "generating {} MB of input in each layout…",
            bytes / 1_000_000
        );
        write(&lines, |out| {
            // Whole messages that are not JSON cannot be elements of an array: none here, so
            // that every layout holds the same records.
            let mut g = Generator::new(GeneratorConfig {
                malformed_share: 0.0,
                ..GeneratorConfig::default()
            });
            let mut written = 0u64;
            while written < bytes {
                let m = g.next_message();
                out.write_all(&m.body).unwrap();
                out.write_all(b"\n").unwrap();
                written += m.body.len() as u64 + 1;
            }
        });
        #[derive(Deserialize)]
        struct Envelope<'a> {
            #[serde(borrow)]
            records: Vec<&'a RawValue>,
        }
        let each_record = |f: &mut dyn FnMut(&RawValue)| {
            let text = std::fs::read(&lines).unwrap();
            for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                // An envelope, a bare array of records, or one record.
                if let Ok(e) = serde_json::from_slice::<Envelope>(line) {
                    e.records.into_iter().for_each(&mut *f);
                } else if let Ok(a) = serde_json::from_slice::<Vec<&RawValue>>(line) {
                    a.into_iter().for_each(&mut *f);
                } else {
                    f(serde_json::from_slice(line).unwrap());
                }
            }
        };
        write(&array, |out| {
            out.write_all(b"[").unwrap();
            let mut first = true;
            each_record(&mut |r| {
                if !std::mem::take(&mut first) {
                    out.write_all(b",").unwrap();
                }
                out.write_all(r.get().as_bytes()).unwrap();
            });
            out.write_all(b"]").unwrap();
        });
        write(&pretty, |out| {
            out.write_all(b"[\n").unwrap();
            let mut first = true;
            each_record(&mut |r| {
                if !std::mem::take(&mut first) {
                    out.write_all(b",\n").unwrap();
                }
                let v: serde_json::Value = serde_json::from_str(r.get()).unwrap();
                serde_json::to_writer_pretty(&mut *out, &v).unwrap();
            });
            out.write_all(b"\n]\n").unwrap();
        });
        write(&gzip, |out| {
            let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            std::io::copy(&mut File::open(&array).unwrap(), &mut gz).unwrap();
            gz.finish().unwrap();
        });
        write(&zstd, |out| {
            zstd::stream::copy_encode(File::open(&array).unwrap(), out, 3).unwrap();
        });
    }
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    let array_bytes = size(&array);
    vec![
        ("JSON Lines", lines.clone(), size(&lines)),
        ("array, one line", array, array_bytes),
        ("array, pretty-printed", pretty.clone(), size(&pretty)),
        ("array, gzip", gzip, array_bytes),
        ("array, zstd", zstd, array_bytes),
    ]
}

fn write(path: &Path, f: impl FnOnce(&mut BufWriter<File>)) {
    let tmp = path.with_extension("partial");
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp).unwrap());
    f(&mut out);
    out.flush().unwrap();
    drop(out);
    std::fs::rename(&tmp, path).unwrap();
}

struct Run {
    records: u64,
    wall: f64,
    cpu: f64,
    rss_mb: f64,
}

fn run(path: &Path, threads: usize) -> Run {
    let stats = path.with_extension("stats.json");
    let started = Instant::now();
    // Reaped by `wait4` below, which also returns its resource usage.
    #[allow(clippy::zombie_processes)]
    let mut child = Command::new(env!("CARGO_BIN_EXE_mfagap"))
        .args(["filter", "--threads", &threads.to_string(), "--stats"])
        .arg(&stats)
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the mfagap binary runs");
    let ended = mfagap_testkit::process::wait_with_usage(&mut child);
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(ended.code, Some(0), "filter failed: {ended:?}");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    Run {
        records: s["records"].as_u64().unwrap(),
        wall,
        cpu: ended.cpu_secs,
        rss_mb: ended.max_rss_mb,
    }
}
