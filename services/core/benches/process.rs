//! CPU cost of one record through the core alone: decode, classify, build and encode, on one
//! thread, with no reading, splitting or writing around it.
//!
//! `cargo bench -p mfagap-core --bench process` generates `MFAGAP_BENCH_BYTES` (default
//! 200 MB) of JSON Lines in memory (or reads `MFAGAP_BENCH_INPUT`, one message body per
//! line) and reports, per message body: parsing alone (serde_json skipping every value, the
//! floor any decoder on it pays), `Processor::process` with nothing encoded, then with the
//! native encoder. Where
//! the time of `mfagap filter` goes is in README.md, "Benchmark".

use mfagap_core::encode::{EncoderOptions, Format};
use mfagap_core::lenient::Text;
use mfagap_core::{Classifier, ClassifierConfig, Output, Processor, Source, Stats};
use mfagap_generate::{Generator, GeneratorConfig};
use serde::de::IgnoredAny;
use std::time::Instant;

fn main() {
    let bodies = input();
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    let p = Processor::new(Classifier::new(ClassifierConfig::default()));
    let encoder = Format::Native.encoder(EncoderOptions::default());
    let source = Source {
        kind: Text("file".into()),
        ..Source::default()
    };
    let mut stats = Stats::default();
    let mut out = Vec::with_capacity(1 << 20);
    let mut emitted = 0u64;
    let pass = |name: &str, f: &mut dyn FnMut(&[u8])| {
        let started = Instant::now();
        for b in &bodies {
            f(b);
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{name:>28}: {:>7.0} MB/s {:>8.2} s",
            bytes as f64 / 1e6 / secs,
            secs
        );
        secs
    };
    // A few generated bodies are broken on purpose; they cost their parse all the same.
    pass("parse, skipping every value", &mut |b| {
        std::hint::black_box(serde_json::from_slice::<IgnoredAny>(b).is_ok());
    });
    let mut records = 0;
    pass("process, nothing encoded", &mut |b| {
        let mut s = Stats::default();
        p.process(b, &source, 0, &mut s, &mut |o| {
            std::hint::black_box(o);
        });
        records += s.records;
    });
    let secs = pass("process + native encoding", &mut |b| {
        p.process(b, &source, 0, &mut stats, &mut |o| {
            if let Output::SignIn(s) = o {
                encoder.write_payload(&s, &mut out);
                out.clear();
                emitted += 1;
            }
        });
    });
    assert_eq!(records, stats.records, "both passes read every record");
    println!(
        "{} records, {} emitted: {:.2} CPU-µs per record",
        stats.records,
        emitted,
        secs * 1e6 / stats.records as f64
    );
}

fn input() -> Vec<Vec<u8>> {
    if let Ok(path) = std::env::var("MFAGAP_BENCH_INPUT") {
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        return text
            .split(|&b| b == b'\n')
            .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
            .map(<[u8]>::to_vec)
            .collect();
    }
    let target: usize = std::env::var("MFAGAP_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000_000);
    let mut g = Generator::new(GeneratorConfig::default());
    let (mut bodies, mut total) = (Vec::new(), 0);
    while total < target {
        let m = g.next_message();
        total += m.body.len();
        bodies.push(m.body);
    }
    bodies
}
