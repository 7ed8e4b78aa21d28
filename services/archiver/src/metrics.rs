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

/// Counter: dead letters the dead-letter producer had acknowledged, by `kind`
/// (`mfagap_runtime::kafka::Producer`, which names its series after [`PREFIX`]).
pub const PRODUCED: &str = "mfagap_archiver_produced_total";
/// Histogram: from sending a dead letter to Kafka's acknowledgement.
pub const PRODUCE_LATENCY: &str = "mfagap_archiver_produce_latency_seconds";
/// Counter: dead-letter sends retried after an error.
pub const PRODUCE_RETRIES: &str = "mfagap_archiver_produce_retries_total";

/// Every reason a value is refused for (`deadletter::Refusal`), each counted from zero.
const DEAD_LETTER_REASONS: [&str; 5] = [
    "empty",
    "not_json",
    "not_a_record",
    "schema_version",
    "format",
];

/// Registers every series whose first event may come late or never (a published file, a
/// storage retry, a fenced unit, a dead letter…), so that `/metrics` lists them from the
/// start: a dashboard shows 0 rather than nothing, `increase()` counts the first event, and
/// an archiver that never published anything is seen doing so (README.md, "Alerts and
/// runbooks"). Counters start at zero; gauges and histograms are registered without a
/// value, so one already set keeps it.
pub fn register() {
    for name in [
        MESSAGES,
        ROWS,
        FILES,
        BYTES,
        UNITS,
        PUBLISH_RETRIES,
        FENCED,
        ROLLED_FORWARD,
        PRODUCE_RETRIES,
    ] {
        counter!(name).increment(0);
    }
    counter!(PRODUCED, "kind" => "dead_letter").increment(0);
    for reason in DEAD_LETTER_REASONS {
        counter!(DEAD_LETTERS, "reason" => reason).increment(0);
    }
    for name in [BUFFERED_ROWS, BUFFERED_BYTES, ASSIGNED, AT_END] {
        let _ = gauge!(name);
    }
    for name in [PUBLISH_LATENCY, PRODUCE_LATENCY] {
        let _ = histogram!(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of `name` (any labels) in the rendered text.
    fn series<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .collect()
    }

    #[test]
    fn the_series_of_late_events_are_exported_from_the_start() {
        let handle = mfagap_runtime::metrics::install();
        // A gauge already set keeps its value when the series are registered.
        buffered(7, 4096);
        register();
        let text = handle.render();
        for name in [
            MESSAGES,
            ROWS,
            FILES,
            BYTES,
            UNITS,
            PUBLISH_RETRIES,
            FENCED,
            ROLLED_FORWARD,
            PRODUCE_RETRIES,
            ASSIGNED,
            AT_END,
        ] {
            assert_eq!(series(&text, name).len(), 1, "{name}:\n{text}");
        }
        assert_eq!(series(&text, BUFFERED_ROWS), [format!("{BUFFERED_ROWS} 7")]);
        assert_eq!(
            series(&text, PRODUCED),
            [format!("{PRODUCED}{{kind=\"dead_letter\"}} 0")]
        );
        let dead_letters = series(&text, DEAD_LETTERS);
        for reason in DEAD_LETTER_REASONS {
            let label = format!("reason=\"{reason}\"");
            assert!(
                dead_letters.iter().any(|l| l.contains(&label)),
                "{DEAD_LETTERS} {reason}:\n{text}"
            );
        }
        for name in [PUBLISH_LATENCY, PRODUCE_LATENCY] {
            assert!(
                text.contains(&format!("# TYPE {name} histogram")),
                "{name}:\n{text}"
            );
            assert!(
                !series(&text, &format!("{name}_bucket")).is_empty(),
                "{name}:\n{text}"
            );
        }
        assert_eq!(PRODUCED, format!("{PREFIX}_produced_total"));
        assert_eq!(PRODUCE_LATENCY, format!("{PREFIX}_produce_latency_seconds"));
        assert_eq!(PRODUCE_RETRIES, format!("{PREFIX}_produce_retries_total"));
    }

    #[test]
    fn every_reason_a_value_is_refused_for_is_counted_from_zero() {
        use crate::deadletter::parse;
        let valid = br#"{"id":"x"}"#;
        // Payload, schemaVersion header, format header.
        let refused: [[Option<&[u8]>; 3]; 6] = [
            [None, None, None],
            [Some(b"{\"id\":"), None, None],
            [Some(&[0xff, 0xfe]), None, None],
            [Some(valid), None, None],
            [Some(valid), Some(b"3"), None],
            [Some(valid), None, Some(b"ocsf")],
        ];
        let mut reasons = std::collections::BTreeSet::new();
        for [payload, version, format] in refused {
            let reason = parse(payload, version, format).unwrap_err().reason;
            assert!(
                DEAD_LETTER_REASONS.contains(&reason),
                "{reason} is not registered at zero"
            );
            reasons.insert(reason);
        }
        assert_eq!(reasons.len(), DEAD_LETTER_REASONS.len(), "{reasons:?}");
    }
}
