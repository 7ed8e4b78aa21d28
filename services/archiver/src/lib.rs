//! The archiver service: the sign-ins without MFA from Kafka to a Parquet dataset, exactly once.
//!
//! The map of the crate, in the order a record travels:
//! - `archive`: the consumer loop — consume, buffer per partition, roll, follow rebalances;
//! - `rows`: each value decoded straight into Arrow columns of the shared schema;
//! - [`writer`]: a partition's rows as Arrow batches, one buffer per hour, then Parquet files;
//! - [`layout`]: where every file lives (hour partitions, commit records, staging) — the
//!   dataset's public shape, which `mfagap report` reads too;
//! - `commit`: the exactly-once publish protocol and its crash points;
//! - [`storage`]: a local directory or object storage behind five operations;
//! - `deadletter`: values that are not output records, with the reason;
//! - [`config`]: the flags and the [`ArchiveSettings`] they become; [`metrics`]: every series;
//! - [`check`]: the preflight of its Kafka and its storage (`mfagap check`).
//!
//! It depends on `mfagap-core` (the record, its Arrow schema) and `mfagap-runtime` (settings,
//! logging, signals, `/metrics` and health, Kafka clients) only. ARCHITECTURE.md draws the
//! whole path.

#![warn(missing_docs)]

mod archive;
pub mod check;
mod commit;
pub mod config;
mod deadletter;
pub mod layout;
pub mod metrics;
mod rows;
pub mod storage;
pub mod writer;

pub use archive::Summary;
pub use config::{ArchiveArgs, ArchiveSettings};
pub use layout::StartPosition;

use anyhow::{Context, Result};
use mfagap_runtime::kafka::{Producer, ProducerSettings};
use mfagap_runtime::{Readiness, server};
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs the service until `stop` is cancelled, then publishes what it holds.
pub async fn run(settings: ArchiveSettings, stop: CancellationToken) -> Result<Summary> {
    let handle = mfagap_runtime::metrics::install();
    metrics::register();
    let ready = Readiness::default();
    let addr = server::serve(settings.listen, handle, ready.clone(), stop.child_token()).await?;
    tracing::info!(%addr, "metrics on http://{addr}/metrics, health on /health/live and /health/ready");

    let store = storage::Store::open(&settings.data, &settings.storage_options)?;
    store
        .list(&object_store::path::Path::from("_mfagap/commits"))
        .await
        .context("cannot reach the dataset storage")?;
    tracing::info!(data = %store.location, "dataset");
    let sink = Producer::new(
        &ProducerSettings {
            bootstrap: settings.bootstrap.clone(),
            compression: "zstd".into(),
            properties: settings
                .kafka_properties
                .iter()
                .filter(|p| !mfagap_runtime::kafka::consumer_only(&p.key))
                .cloned()
                .collect(),
        },
        "dead-letter producer",
        metrics::PREFIX,
        ready.clone(),
    )?;
    let archiver = archive::Archiver {
        store,
        sink: sink.clone(),
        runtime: tokio::runtime::Handle::current(),
        ready,
        settings: settings.archive.clone(),
    };
    let loop_stop = stop.clone();
    let summary = tokio::task::spawn_blocking(move || archive::run(&settings, archiver, loop_stop))
        .await
        .context("the archiver loop panicked")?;
    let _ = tokio::task::spawn_blocking(move || sink.flush(Duration::from_secs(10))).await;
    stop.cancel(); // stops the endpoint
    summary
}

/// Asks glibc's allocator to reuse freed memory instead of returning it to the kernel.
///
/// Every Arrow batch grows its buffers to a few megabytes and frees them when encoded; by
/// default glibc serves such sizes with fresh `mmap`s, and the page faults of touching them
/// again took an eighth of the archiver's CPU in profiles. Memory stays bounded by
/// `--max-buffered`: this only keeps what was already used.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; called before other threads start.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// The service as its binary runs it: settings checked, logging, signals and the runtime
/// around [`run`], and the exit status (0 after a graceful stop, 1 on an error).
pub fn main_with(args: ArchiveArgs) -> ExitCode {
    keep_freed_memory();
    let (format, log) = (args.log_format, args.log.clone());
    mfagap_runtime::service::main_with(
        "mfagap-archiver",
        format,
        &log,
        |stop| async move { run(args.settings()?, stop).await },
        |s: &Summary| {
            tracing::info!(
                messages = s.messages,
                rows = s.rows,
                files = s.files,
                bytes = s.bytes,
                dead_letters = s.dead_letters,
                fenced = s.fenced,
                "stopped"
            );
        },
    )
}
