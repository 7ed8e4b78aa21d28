//! Every metric the ingest service exports, named in one place.
//!
//! Counters follow the core's `Stats` (one source of truth for what happened to a record);
//! the pipeline adds what only it knows: produce latency, in-flight work, retries, commits and
//! consumer lag. Exported in Prometheus text format on `/metrics`.

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use mfagap_core::Stats;
use std::sync::OnceLock;
use std::time::Duration;

pub const MESSAGES: &str = "mfagap_ingest_messages_total";
pub const RECORDS: &str = "mfagap_ingest_records_total";
pub const OUTCOMES: &str = "mfagap_ingest_record_outcomes_total";
pub const EMITTED: &str = "mfagap_ingest_emitted_total";
pub const MFA: &str = "mfagap_ingest_mfa_total";
pub const DEAD_LETTERS: &str = "mfagap_ingest_dead_letters_total";
pub const DUPLICATES: &str = "mfagap_ingest_duplicates_suppressed_total";
pub const PRODUCE_LATENCY: &str = "mfagap_ingest_produce_latency_seconds";
pub const PRODUCE_RETRIES: &str = "mfagap_ingest_produce_retries_total";
pub const PRODUCED: &str = "mfagap_ingest_produced_total";
pub const IN_FLIGHT: &str = "mfagap_ingest_in_flight_messages";
pub const COMMITS: &str = "mfagap_ingest_commits_total";
pub const POSITION: &str = "mfagap_ingest_committed_position";
pub const LAG: &str = "mfagap_ingest_consumer_lag";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder once per process (the `mfagap run` command hosts several
/// services in one process) and returns the handle that renders `/metrics`.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0, 30.0, 60.0,
                    ],
                )
                .expect("valid buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests); then this one stays unused
            // and its handle renders nothing, which the caller can live with.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Counts what the core saw in one message.
pub fn record_stats(s: &Stats) {
    counter!(MESSAGES).increment(s.messages);
    for (category, n) in &s.by_category {
        counter!(RECORDS, "category" => category.clone()).increment(*n);
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

pub fn produced(topic_kind: &'static str, latency: Duration) {
    counter!(PRODUCED, "kind" => topic_kind).increment(1);
    histogram!(PRODUCE_LATENCY).record(latency.as_secs_f64());
}

pub fn retry() {
    counter!(PRODUCE_RETRIES).increment(1);
}

pub fn in_flight(n: usize) {
    gauge!(IN_FLIGHT).set(n as f64);
}

pub fn committed(partition: &str, position: i64) {
    counter!(COMMITS).increment(1);
    gauge!(POSITION, "partition" => partition.to_owned()).set(position as f64);
}

pub fn lag(partition: &str, lag: i64) {
    gauge!(LAG, "partition" => partition.to_owned()).set(lag as f64);
}

pub const CHECKPOINTS: &str = "mfagap_ingest_eventhubs_checkpoints_total";
pub const CHECKPOINT_FAILURES: &str = "mfagap_ingest_eventhubs_checkpoint_failures_total";
pub const OWNED_PARTITIONS: &str = "mfagap_ingest_eventhubs_owned_partitions";
pub const PARTITIONS_LOST: &str = "mfagap_ingest_eventhubs_partitions_lost_total";
pub const PROCESSOR_RESTARTS: &str = "mfagap_ingest_eventhubs_processor_restarts_total";

/// An Event Hubs checkpoint reached the Blob store.
pub fn checkpoint_written(partition: &str, sequence_number: i64) {
    counter!(CHECKPOINTS).increment(1);
    gauge!(POSITION, "partition" => partition.to_owned()).set(sequence_number as f64 + 1.0);
}

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

/// The Event Hubs client was opened again after an error.
pub fn processor_restarted() {
    counter!(PROCESSOR_RESTARTS).increment(1);
}
