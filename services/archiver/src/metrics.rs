//! Every metric the archiver exports, named in one place.
//!
//! What an operator asks of an archiver: is it keeping up (positions, lag, buffered rows),
//! what it wrote (rows, files, bytes, publish latency), and what it refused (dead letters by
//! reason) or lost to another replica (fenced units). The recorder is installed once per process
//! (`mfagap_runtime::metrics`), so `mfagap run` serves both services' metrics on one endpoint;
//! the dead-letter producer's series carry this service's [`PREFIX`].

/// The prefix of every series this service exports.
pub const PREFIX: &str = "mfagap_archiver";

use metrics::{counter, gauge, histogram};
use std::time::Duration;

/// Counter: Kafka records read.
pub const MESSAGES: &str = "mfagap_archiver_messages_total";
/// Counter: rows published to Parquet.
pub const ROWS: &str = "mfagap_archiver_rows_total";
/// Counter: Parquet files published.
pub const FILES: &str = "mfagap_archiver_files_total";
/// Counter: bytes of Parquet published.
pub const BYTES: &str = "mfagap_archiver_bytes_total";
/// Counter: units committed, each one partition's run of offsets.
pub const UNITS: &str = "mfagap_archiver_commits_total";
/// Histogram: seconds to stage, commit and publish one unit.
pub const PUBLISH_LATENCY: &str = "mfagap_archiver_publish_latency_seconds";
/// Counter: publishes retried after a storage error; a steady rise means storage is failing.
pub const PUBLISH_RETRIES: &str = "mfagap_archiver_publish_retries_total";
/// Counter: units dropped because another replica committed their offsets first (after a
/// rebalance); nothing is lost: the partition resumes from what is committed.
pub const FENCED: &str = "mfagap_archiver_fenced_units_total";
/// Counter: Kafka values that are not output records, by `reason`.
pub const DEAD_LETTERS: &str = "mfagap_archiver_dead_letters_total";
/// Gauge: the next offset to publish, per `partition`.
pub const POSITION: &str = "mfagap_archiver_published_position";
/// Gauge: records of each `partition` not yet published; growing means the archiver falls
/// behind.
pub const LAG: &str = "mfagap_archiver_consumer_lag";
/// Gauge: rows held in memory, not yet published.
pub const BUFFERED_ROWS: &str = "mfagap_archiver_buffered_rows";
/// Gauge: memory those rows take; past `--max-buffered` the largest unit is published early.
pub const BUFFERED_BYTES: &str = "mfagap_archiver_buffered_bytes";
/// Counter: staged files of a committed unit published on recovery: a writer died between
/// its commit and its publish.
pub const ROLLED_FORWARD: &str = "mfagap_archiver_rolled_forward_files_total";
/// Gauge: partitions this replica is assigned.
pub const ASSIGNED: &str = "mfagap_archiver_assigned_partitions";
/// Gauge: of those, the ones read to their end (the broker's last stable offset) with
/// nothing newer yet: what `mfagap run` waits for before it lets the archiver publish, so a
/// run also archives what an earlier run that died left unread.
pub const AT_END: &str = "mfagap_archiver_partitions_at_end";

/// Kafka records read since the last call.
pub fn messages(n: u64) {
    counter!(MESSAGES).increment(n);
}

/// Partitions assigned, and of those the ones read to their end.
pub fn partitions(assigned: usize, at_end: usize) {
    gauge!(ASSIGNED).set(assigned as f64);
    gauge!(AT_END).set(at_end as f64);
}

/// A value refused as not an output record.
pub fn dead_letter(reason: &'static str) {
    counter!(DEAD_LETTERS, "reason" => reason).increment(1);
}

/// A unit was committed and published.
pub fn published(rows: u64, files: usize, bytes: u64, latency: Duration) {
    counter!(ROWS).increment(rows);
    counter!(FILES).increment(files as u64);
    counter!(BYTES).increment(bytes);
    counter!(UNITS).increment(1);
    histogram!(PUBLISH_LATENCY).record(latency.as_secs_f64());
}

/// A partition's next offset to publish.
pub fn position(partition: i32, next: i64) {
    gauge!(POSITION, "partition" => partition.to_string()).set(next as f64);
}

/// A partition's records not yet published.
pub fn lag(partition: i32, lag: i64) {
    gauge!(LAG, "partition" => partition.to_string()).set(lag as f64);
}

/// A publish failed and will be tried again.
pub fn retry() {
    counter!(PUBLISH_RETRIES).increment(1);
}

/// A unit was dropped: another replica committed its offsets first.
pub fn fenced() {
    counter!(FENCED).increment(1);
}

/// Staged files published by recovery.
pub fn rolled_forward(n: usize) {
    counter!(ROLLED_FORWARD).increment(n as u64);
}

/// Rows and bytes held in memory now, over every partition.
pub fn buffered(rows: u64, bytes: u64) {
    gauge!(BUFFERED_ROWS).set(rows as f64);
    gauge!(BUFFERED_BYTES).set(bytes as f64);
}
