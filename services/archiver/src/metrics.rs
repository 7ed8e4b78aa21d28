//! Every metric the archiver exports, named in one place.
//!
//! What an operator asks of an archiver: is it keeping up (positions, lag, buffered rows),
//! what it wrote (rows, files, bytes, publish latency), and what it refused (dead letters by
//! reason) or lost to another replica (fenced units). The recorder is the ingest service's,
//! installed once per process, so `mfagap run` serves both services' metrics on one endpoint.

use metrics::{counter, gauge, histogram};
use std::time::Duration;

pub const MESSAGES: &str = "mfagap_archiver_messages_total";
pub const ROWS: &str = "mfagap_archiver_rows_total";
pub const FILES: &str = "mfagap_archiver_files_total";
pub const BYTES: &str = "mfagap_archiver_bytes_total";
pub const UNITS: &str = "mfagap_archiver_commits_total";
pub const PUBLISH_LATENCY: &str = "mfagap_archiver_publish_latency_seconds";
pub const PUBLISH_RETRIES: &str = "mfagap_archiver_publish_retries_total";
pub const FENCED: &str = "mfagap_archiver_fenced_units_total";
pub const DEAD_LETTERS: &str = "mfagap_archiver_dead_letters_total";
pub const POSITION: &str = "mfagap_archiver_published_position";
pub const LAG: &str = "mfagap_archiver_consumer_lag";
pub const BUFFERED_ROWS: &str = "mfagap_archiver_buffered_rows";
pub const BUFFERED_BYTES: &str = "mfagap_archiver_buffered_bytes";
pub const ROLLED_FORWARD: &str = "mfagap_archiver_rolled_forward_files_total";

pub fn messages(n: u64) {
    counter!(MESSAGES).increment(n);
}

pub fn dead_letter(reason: &'static str) {
    counter!(DEAD_LETTERS, "reason" => reason).increment(1);
}

pub fn published(rows: u64, files: usize, bytes: u64, latency: Duration) {
    counter!(ROWS).increment(rows);
    counter!(FILES).increment(files as u64);
    counter!(BYTES).increment(bytes);
    counter!(UNITS).increment(1);
    histogram!(PUBLISH_LATENCY).record(latency.as_secs_f64());
}

pub fn position(partition: i32, next: i64) {
    gauge!(POSITION, "partition" => partition.to_string()).set(next as f64);
}

pub fn lag(partition: i32, lag: i64) {
    gauge!(LAG, "partition" => partition.to_string()).set(lag as f64);
}

pub fn retry() {
    counter!(PUBLISH_RETRIES).increment(1);
}

pub fn fenced() {
    counter!(FENCED).increment(1);
}

pub fn rolled_forward(n: usize) {
    counter!(ROLLED_FORWARD).increment(n as u64);
}

pub fn buffered(rows: u64, bytes: u64) {
    gauge!(BUFFERED_ROWS).set(rows as f64);
    gauge!(BUFFERED_BYTES).set(bytes as f64);
}
