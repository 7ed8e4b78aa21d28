//! The ingest service: Entra ID sign-in logs from Event Hubs to Kafka, nothing lost.
//!
//! The map of the crate, in the order a message travels:
//! - [`source`]: where message bodies come from, one folder per input (`file`, `kafka`,
//!   `eventhubs`), each with its settings and a `build()`;
//! - [`pipeline`]: decode and classify once (the core's `Processor`), encode per output
//!   (the core's encoders), turn bad input into dead letters (`deadletter`);
//! - [`sink`]: delivery — the sink takes each message's records and decides when a source
//!   position may move ([`sink::AtLeastOnce`] today); `offsets` is the tracker it keeps;
//! - [`config`]: the flags and the [`IngestSettings`] they become; `metrics`: every series.
//!
//! What every service shares (secrets, config file, logging, signals, `/metrics` and health,
//! Kafka clients) is `mfagap-runtime`'s. ARCHITECTURE.md draws the whole path.

#![warn(missing_docs)]

pub mod config;
mod deadletter;
pub mod metrics;
mod offsets;
pub mod pipeline;
pub mod sink;
pub mod source;

pub use config::{IngestArgs, IngestSettings};
pub use pipeline::Summary;

use anyhow::Result;
use mfagap_runtime::kafka::Producer;
use mfagap_runtime::{Readiness, server};
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs the service until its source ends or `stop` is cancelled.
pub async fn run(settings: IngestSettings, stop: CancellationToken) -> Result<Summary> {
    let handle = mfagap_runtime::metrics::install();
    let ready = Readiness::default();
    let addr = server::serve(settings.listen, handle, ready.clone(), stop.child_token()).await?;
    tracing::info!(%addr, "metrics on http://{addr}/metrics, health on /health/live and /health/ready");
    let source = source::build(&settings.source)?;
    run_with(source, &settings, stop.clone(), ready).await
}

/// The pipeline over a source that is already running, with the output the settings name:
/// what [`run`] does after opening its endpoint, and what `mfagap run` does with its own
/// source (the generator) and endpoint.
pub async fn run_with<S: source::Source>(
    source: S,
    settings: &IngestSettings,
    stop: CancellationToken,
    ready: Readiness,
) -> Result<Summary> {
    let producer = Producer::new(
        &settings.producer,
        "Kafka output",
        metrics::PREFIX,
        ready.clone(),
    )?;
    let (probe, bootstrap) = (producer.clone(), settings.producer.bootstrap.clone());
    tokio::task::spawn_blocking(move || {
        if !probe.reachable(Duration::from_secs(5)) {
            tracing::warn!(%bootstrap, "the output Kafka does not answer yet; records wait until it does");
        }
    });
    let sink = sink::AtLeastOnce::new(producer, settings.max_in_flight);
    let summary =
        pipeline::run(source, sink, settings.pipeline.clone(), stop.clone(), ready).await?;
    stop.cancel(); // stops the endpoint
    Ok(summary)
}

/// The service as its binary runs it: settings checked, logging, signals and the runtime
/// around [`run`], and the exit status (0 after a clean end or a graceful stop, 1 on an
/// error).
pub fn main_with(args: IngestArgs) -> ExitCode {
    let (format, log) = (args.service.log_format, args.service.log.clone());
    mfagap_runtime::service::main_with(
        "mfagap-ingest",
        format,
        &log,
        |stop| async move { run(args.settings()?, stop).await },
        |summary: &Summary| {
            tracing::info!(
                undelivered = summary.undelivered,
                "stopped\n{}",
                summary.stats
            );
        },
    )
}
