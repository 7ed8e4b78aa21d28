//! How fast the generator writes message bodies: `mfagap run` generates its input in the same
//! process as the services, so this is CPU the run spends before any sign-in is classified.
//!
//! `cargo bench -p mfagap-generate --bench generate` writes `MFAGAP_BENCH_MESSAGES` (default
//! 5,000) bodies with the default settings and prints messages/s, records/s and MB/s on one
//! thread.

use mfagap_generate::{Generator, GeneratorConfig};
use std::time::Instant;

fn main() {
    let messages: u64 = std::env::var("MFAGAP_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let mut g = Generator::new(GeneratorConfig::default());
    let (mut records, mut bytes) = (0u64, 0u64);
    let started = Instant::now();
    for _ in 0..messages {
        let m = g.next_message();
        records += m.expected.len() as u64;
        bytes += m.body.len() as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "generator: {messages} messages, {records} records, {:.0} MB in {secs:.2} s: {:.0} messages/s, {:.0} records/s, {:.0} MB/s on one thread",
        bytes as f64 / 1e6,
        messages as f64 / secs,
        records as f64 / secs,
        bytes as f64 / 1e6 / secs
    );
}
