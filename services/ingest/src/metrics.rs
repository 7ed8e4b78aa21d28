//! Every metric the ingest service exports, named in one place.
//!
//! Counters follow the core's `Stats` (one source of truth for what happened to a record);
//! the pipeline adds what only it knows: in-flight work, commits and consumer lag. The Kafka
//! producer's series (produced, latency, retries) carry this service's [`PREFIX`]. Exported
//! in Prometheus text format on `/metrics`.

/// The prefix of every series this service exports.
pub const PREFIX: &str = "mfagap_ingest";

use metrics::{counter, gauge, histogram};
use mfagap_core::Stats;

/// Counter: message bodies read from the source.
pub const MESSAGES: &str = "mfagap_ingest_messages_total";
/// Counter: records in those bodies, by `category` as written.
pub const RECORDS: &str = "mfagap_ingest_records_total";
/// Counter: records by the input `shape` they arrived in (`diagnostic`, `graph`,
/// `log_analytics`, `unknown`); the shapes add up to the records.
pub const SHAPES: &str = "mfagap_ingest_record_shapes_total";
/// Counter: message bodies by the `shape` of their records (`mixed` when they differ, `empty`
/// when there were none, `unknown` when the body was no document of records at all).
pub const MESSAGE_SHAPES: &str = "mfagap_ingest_message_shapes_total";
/// Counter: what became of each record, by `outcome`; the outcomes add up to the records.
pub const OUTCOMES: &str = "mfagap_ingest_record_outcomes_total";
/// Counter: sign-ins without MFA sent to the output, by `reason`.
pub const EMITTED: &str = "mfagap_ingest_emitted_total";
/// Counter: sign-ins with MFA, by the `evidence` found first.
pub const MFA: &str = "mfagap_ingest_mfa_total";
/// Counter: dead letters (whole messages and single records), by error `code`.
pub const DEAD_LETTERS: &str = "mfagap_ingest_dead_letters_total";
/// Counter: sign-ins not sent again because the duplicate window had seen them.
pub const DUPLICATES: &str = "mfagap_ingest_duplicates_suppressed_total";
/// Gauge: messages read whose records Kafka has not all acknowledged yet.
pub const IN_FLIGHT: &str = "mfagap_ingest_in_flight_messages";
/// Counter: resume points committed to the source, one per partition and commit.
pub const COMMITS: &str = "mfagap_ingest_commits_total";
/// Gauge: the resume point last committed per source `partition`: where a restart reads from.
pub const POSITION: &str = "mfagap_ingest_committed_position";
/// Gauge: events in each source `partition` not read yet; growing means ingest falls behind.
pub const LAG: &str = "mfagap_ingest_consumer_lag";

/// Counts what the core saw in one message.
pub fn record_stats(s: &Stats) {
    counter!(MESSAGES).increment(s.messages);
    for (category, n) in &s.by_category {
        counter!(RECORDS, "category" => category.clone()).increment(*n);
    }
    for (shape, n) in &s.messages_by_shape {
        counter!(MESSAGE_SHAPES, "shape" => shape.clone()).increment(*n);
    }
    for (shape, n) in &s.by_shape {
        counter!(SHAPES, "shape" => shape.clone()).increment(*n);
    }
    for (reason, n) in &s.emitted {
        counter!(EMITTED, "reason" => reason.as_str()).increment(*n);
        counter!(OUTCOMES, "outcome" => "emitted").increment(*n);
    }
    for (evidence, n) in &s.mfa_by_evidence {
        counter!(MFA, "evidence" => evidence.as_str()).increment(*n);
    }
    let outcomes = [
        ("mfa", s.mfa),
        ("failed", s.failed),
        ("skipped_other_category", s.skipped_other),
        ("skipped_workload", s.skipped_workload),
        ("duplicate", s.duplicates),
        ("dead_letter", s.dead_letter_records),
    ];
    for (outcome, n) in outcomes {
        if n > 0 {
            counter!(OUTCOMES, "outcome" => outcome).increment(n);
        }
    }
    if s.duplicates > 0 {
        counter!(DUPLICATES).increment(s.duplicates);
    }
    for (code, n) in &s.dead_letters_by_code {
        counter!(DEAD_LETTERS, "code" => code.clone()).increment(*n);
    }
}

/// Messages read and not yet fully acknowledged, now.
pub fn in_flight(n: usize) {
    gauge!(IN_FLIGHT).set(n as f64);
}

/// A partition's resume point was committed to the source.
pub fn committed(partition: &str, position: i64) {
    counter!(COMMITS).increment(1);
    gauge!(POSITION, "partition" => partition.to_owned()).set(position as f64);
}

/// Events of a partition not read yet, as the source last knew it.
pub fn lag(partition: &str, lag: i64) {
    gauge!(LAG, "partition" => partition.to_owned()).set(lag as f64);
}

/// Transactions ended, by outcome (`committed`, `aborted`): exactly-once delivery.
pub const TRANSACTIONS: &str = "mfagap_ingest_transactions_total";
/// How long committing a transaction took (send offsets or positions, then commit).
pub const TRANSACTION_COMMIT_LATENCY: &str = "mfagap_ingest_transaction_commit_seconds";
/// Records committed by transactions, by kind; with at-least-once delivery the producer's
/// own `mfagap_ingest_produced_total` counts them as Kafka acknowledges each.
pub const PRODUCED: &str = "mfagap_ingest_produced_total";

/// A transaction committed `kinds` records in `took`.
pub fn transaction_committed(
    kinds: &std::collections::BTreeMap<&'static str, u64>,
    took: std::time::Duration,
) {
    counter!(TRANSACTIONS, "outcome" => "committed").increment(1);
    metrics::histogram!(TRANSACTION_COMMIT_LATENCY).record(took.as_secs_f64());
    for (kind, n) in kinds {
        counter!(PRODUCED, "kind" => *kind).increment(*n);
    }
}

/// A transaction was aborted: none of its records will ever be read.
pub fn transaction_aborted() {
    counter!(TRANSACTIONS, "outcome" => "aborted").increment(1);
}

/// Counter: Event Hubs checkpoints written to the Blob store.
pub const CHECKPOINTS: &str = "mfagap_ingest_eventhubs_checkpoints_total";
/// Counter: checkpoint writes that failed; they are retried, but a steady rise means
/// restarts will read more again.
pub const CHECKPOINT_FAILURES: &str = "mfagap_ingest_eventhubs_checkpoint_failures_total";
/// Gauge: Event Hubs partitions this replica reads now.
pub const OWNED_PARTITIONS: &str = "mfagap_ingest_eventhubs_owned_partitions";
/// Counter: partitions whose receiver ended: taken by another replica, or failed for good.
pub const PARTITIONS_LOST: &str = "mfagap_ingest_eventhubs_partitions_lost_total";
/// Counter: exactly once: partitions dropped because another replica fenced their
/// transactional producer (took them over) while a transaction was open.
pub const PARTITIONS_FENCED: &str = "mfagap_ingest_eventhubs_partitions_fenced_total";
/// Counter: times the Event Hubs client was opened again after an error or a stall.
pub const PROCESSOR_RESTARTS: &str = "mfagap_ingest_eventhubs_processor_restarts_total";

/// An Event Hubs checkpoint reached the Blob store; when it is the partition's commit (at
/// least once), it is the committed position too.
pub fn checkpoint_written(partition: &str, sequence_number: i64, commits: bool) {
    counter!(CHECKPOINTS).increment(1);
    if commits {
        gauge!(POSITION, "partition" => partition.to_owned()).set(sequence_number as f64 + 1.0);
    }
}

/// A checkpoint write failed; it will be tried again.
pub fn checkpoint_failed() {
    counter!(CHECKPOINT_FAILURES).increment(1);
}

/// Event Hubs partitions this replica reads now.
pub fn owned_partitions(n: usize) {
    gauge!(OWNED_PARTITIONS).set(n as f64);
}

/// A partition's receiver ended: taken by another replica, or its link failed for good.
pub fn partition_lost() {
    counter!(PARTITIONS_LOST).increment(1);
}

/// A partition's transactional producer was fenced by its new owner.
pub fn partition_fenced() {
    counter!(PARTITIONS_FENCED).increment(1);
}

/// The Event Hubs client was opened again after an error.
pub fn processor_restarted() {
    counter!(PROCESSOR_RESTARTS).increment(1);
}

/// Histogram: from send to Kafka's acknowledgement, recorded by the shared producer
/// (`mfagap_runtime::kafka::Producer`, which names its series after [`PREFIX`]).
pub const PRODUCE_LATENCY: &str = "mfagap_ingest_produce_latency_seconds";
/// Counter: sends the shared producer retried after an error.
pub const PRODUCE_RETRIES: &str = "mfagap_ingest_produce_retries_total";

/// Registers every series whose first event may come late or never (a message read, a
/// reopen, a fenced partition, an aborted transaction, a retried send…), so that `/metrics`
/// lists them from the start: a dashboard shows 0 rather than nothing, `increase()` counts
/// the first event, and a service that never read anything is seen doing so (README.md,
/// "Alerts and runbooks"). Counters start at zero; gauges and histograms are registered
/// without a value, so one already set (the partitions the Event Hubs source owns) keeps it.
/// The Event Hubs series are registered whatever the source: with another one they stay at
/// zero.
pub fn register() {
    for name in [
        MESSAGES,
        DUPLICATES,
        COMMITS,
        PRODUCE_RETRIES,
        CHECKPOINTS,
        CHECKPOINT_FAILURES,
        PARTITIONS_LOST,
        PARTITIONS_FENCED,
        PROCESSOR_RESTARTS,
    ] {
        counter!(name).increment(0);
    }
    for outcome in ["committed", "aborted"] {
        counter!(TRANSACTIONS, "outcome" => outcome).increment(0);
    }
    for name in [IN_FLIGHT, OWNED_PARTITIONS] {
        let _ = gauge!(name);
    }
    for name in [PRODUCE_LATENCY, TRANSACTION_COMMIT_LATENCY] {
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
    fn records_are_counted_by_the_shape_they_arrived_in() {
        let handle = mfagap_runtime::metrics::install();
        let body = br#"{"records":[
            {"category":"AuditLogs","properties":{}},
            {"id":"g","createdDateTime":"2025-12-12T14:56:31Z","isInteractive":true,"status":{"errorCode":50126}},
            {"Type":"SigninLogs","Id":"l","ResultType":"50126","TimeGenerated":"2025-12-12T14:56:31Z"},
            {"Type":"AuditLogs"},
            {"neither":"of them"}]}"#;
        let mut stats = Stats::default();
        let source = mfagap_core::Source::default();
        mfagap_core::Processor::default().process(body, &source, 0, &mut stats, &mut |_| {});
        record_stats(&stats);
        let text = handle.render();
        let mut lines = series(&text, SHAPES);
        lines.sort();
        assert_eq!(
            lines,
            [
                format!("{SHAPES}{{shape=\"diagnostic\"}} 1"),
                format!("{SHAPES}{{shape=\"graph\"}} 1"),
                format!("{SHAPES}{{shape=\"log_analytics\"}} 2"),
                format!("{SHAPES}{{shape=\"unknown\"}} 1"),
            ],
            "{text}"
        );
        // That message mixed shapes; one more of a single shape, one empty, one not JSON.
        let mut stats = Stats::default();
        let graph = br#"{"value":[{"id":"g","createdDateTime":"2025-12-12T14:56:31Z","isInteractive":true,"status":{"errorCode":50126}}]}"#;
        for body in [&graph[..], b"[]", b"not json"] {
            mfagap_core::Processor::default().process(body, &source, 0, &mut stats, &mut |_| {});
        }
        record_stats(&stats);
        let text = handle.render();
        let mut lines = series(&text, MESSAGE_SHAPES);
        lines.sort();
        assert_eq!(
            lines,
            [
                format!("{MESSAGE_SHAPES}{{shape=\"empty\"}} 1"),
                format!("{MESSAGE_SHAPES}{{shape=\"graph\"}} 1"),
                format!("{MESSAGE_SHAPES}{{shape=\"mixed\"}} 1"),
                format!("{MESSAGE_SHAPES}{{shape=\"unknown\"}} 1"),
            ],
            "{text}"
        );
    }

    #[test]
    fn the_series_of_late_events_are_exported_from_the_start() {
        let handle = mfagap_runtime::metrics::install();
        // A gauge already set keeps its value when the series are registered.
        owned_partitions(3);
        register();
        let text = handle.render();
        for name in [
            MESSAGES,
            DUPLICATES,
            COMMITS,
            PRODUCE_RETRIES,
            CHECKPOINTS,
            CHECKPOINT_FAILURES,
            PARTITIONS_LOST,
            PARTITIONS_FENCED,
            PROCESSOR_RESTARTS,
            IN_FLIGHT,
        ] {
            assert_eq!(series(&text, name).len(), 1, "{name}:\n{text}");
        }
        let transactions = series(&text, TRANSACTIONS);
        for outcome in ["committed", "aborted"] {
            let label = format!("outcome=\"{outcome}\"");
            assert!(
                transactions.iter().any(|l| l.contains(&label)),
                "{TRANSACTIONS} {outcome}:\n{text}"
            );
        }
        assert_eq!(
            series(&text, OWNED_PARTITIONS),
            [format!("{OWNED_PARTITIONS} 3")]
        );
        // Histograms with buckets (the `_seconds` bounds of the recorder), not summaries.
        for name in [PRODUCE_LATENCY, TRANSACTION_COMMIT_LATENCY] {
            assert!(
                text.contains(&format!("# TYPE {name} histogram")),
                "{name}:\n{text}"
            );
            assert!(
                !series(&text, &format!("{name}_bucket")).is_empty(),
                "{name}:\n{text}"
            );
        }
        // Named as the shared producer names its series.
        assert_eq!(PRODUCE_LATENCY, format!("{PREFIX}_produce_latency_seconds"));
        assert_eq!(PRODUCE_RETRIES, format!("{PREFIX}_produce_retries_total"));
    }
}
