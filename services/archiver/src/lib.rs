//! The archiver service: the sign-ins without MFA from Kafka to a Parquet dataset, exactly once.
//!
//! A consumer group reads the ingest service's topic (`archive`); each partition's records
//! become Arrow batches of the shared schema and Parquet files (`writer`), laid out by hour
//! (`layout`), published by the protocol in `commit` on a local directory or object storage
//! (`storage`). Values that are not output records become dead letters (`deadletter`).
//! Settings, metrics and health sit beside them (`config`, `metrics`), as in the ingest service.

pub mod archive;
pub mod commit;
pub mod config;
pub mod deadletter;
pub mod layout;
pub mod metrics;
pub mod storage;
pub mod writer;

pub use archive::Summary;
pub use config::ArchiveArgs;

use anyhow::{Context, Result};
use mfagap_ingest::server::{self, Readiness};
use mfagap_ingest::sink::{KafkaSink, SinkConfig};
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs the service until `stop` is cancelled, then publishes what it holds.
pub async fn run(args: ArchiveArgs, stop: CancellationToken) -> Result<Summary> {
    let handle = mfagap_ingest::metrics::install();
    let ready = Readiness::default();
    let addr = server::serve(args.listen, handle, ready.clone(), stop.child_token()).await?;
    tracing::info!(%addr, "metrics on http://{addr}/metrics, health on /health/live and /health/ready");

    let store = storage::Store::open(&args.data, &args.storage_options)?;
    store
        .list(&object_store::path::Path::from("_mfagap/commits"))
        .await
        .context("cannot reach the dataset storage")?;
    tracing::info!(data = %store.location, "dataset");
    let sink = KafkaSink::new(
        &SinkConfig {
            bootstrap: args.bootstrap.clone(),
            compression: "zstd".into(),
            properties: args.kafka_properties.clone(),
        },
        ready.clone(),
    )?;
    let settings = archive::Settings::from_args(&args)?;
    let archiver = archive::Archiver {
        store,
        sink: sink.clone(),
        runtime: tokio::runtime::Handle::current(),
        ready,
        settings,
    };
    let loop_stop = stop.clone();
    let summary = tokio::task::spawn_blocking(move || archive::run(&args, archiver, loop_stop))
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
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// Sets up logging, signals and the runtime, runs the service, and turns the outcome into an
/// exit status: 0 after a graceful stop, 1 on an error.
pub fn main_with(args: ArchiveArgs) -> ExitCode {
    keep_freed_memory();
    mfagap_ingest::init_logging(args.log_format, &args.log);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mfagap-archiver: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let stop = CancellationToken::new();
        tokio::spawn(mfagap_ingest::stop_on_signal(stop.clone()));
        run(args, stop).await
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(s) => {
            tracing::info!(
                messages = s.messages,
                rows = s.rows,
                files = s.files,
                bytes = s.bytes,
                dead_letters = s.dead_letters,
                fenced = s.fenced,
                "stopped"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("mfagap-archiver: {e:#}");
            ExitCode::FAILURE
        }
    }
}
