//! The process's Prometheus recorder, installed once.
//!
//! `mfagap run` hosts both services in one process, so there is one recorder and one
//! `/metrics`; each service names its own series (`mfagap_ingest_…`, `mfagap_archiver_…`),
//! and what the services share (the Kafka producer, for one) takes the caller's prefix.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Bucket bounds of every `…_seconds` histogram: from a millisecond (a produce on a local
/// broker) to a minute (a publish to slow object storage).
const SECONDS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Installs the recorder once per process and returns the handle that renders `/metrics`.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                    &SECONDS,
                )
                .expect("fixed, non-empty buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test's); then this one stays unused
            // and its handle renders nothing, which the caller can live with.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
