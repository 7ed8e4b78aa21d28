//! The ingest service: Entra ID sign-in logs from Event Hubs to Kafka, nothing lost.
//!
//! The map of the crate, in the order a message travels:
//! - [`source`]: where message bodies come from, one folder per input (`file`, `kafka`,
//!   `eventhubs`, `capture`, `graph`), each with its settings and a `build()`;
//! - [`pipeline`]: decode and classify once (the core's `Processor`), encode per output
//!   (the core's encoders), turn bad input into dead letters (`deadletter`);
//! - [`sink`]: delivery — the sink takes each message's records and decides when a source
//!   position may move ([`sink::AtLeastOnce`], [`sink::ExactlyOnce`]); `offsets` is the
//!   tracker the first keeps;
//! - [`config`]: the flags and the [`IngestSettings`] they become; `metrics`: every series;
//! - [`check`]: the preflight of the source and the output (`mfagap check`).
//!
//! What every service shares (secrets, config file, logging, signals, `/metrics` and health,
//! Kafka clients) is `mfagap-runtime`'s. ARCHITECTURE.md draws the whole path.

#![warn(missing_docs)]

pub mod check;
pub mod config;
mod deadletter;
pub mod metrics;
mod offsets;
pub mod pipeline;
pub mod positions;
pub mod sink;
pub mod source;

pub use config::{DeliveryMode, IngestArgs, IngestSettings};
pub use pipeline::Summary;

use anyhow::{Context, Result};
use mfagap_runtime::kafka::Producer;
use mfagap_runtime::{Backoff, ErrorKind, Readiness, server};
use sink::{ExactlyOnce, ExactlyOnceSettings, SourcePositions};
use source::{Source, SourceSettings};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs the service until its source ends or `stop` is cancelled.
pub async fn run(settings: IngestSettings, stop: CancellationToken) -> Result<Summary> {
    run_observed(settings, stop, Readiness::default()).await
}

/// [`run`], with the readiness its health endpoint answers from given by the caller: ready
/// once the sink is open (with exactly-once, once any earlier run's open transaction is
/// fenced and aborted) and the source is reading.
pub async fn run_observed(
    settings: IngestSettings,
    stop: CancellationToken,
    ready: Readiness,
) -> Result<Summary> {
    let handle = mfagap_runtime::metrics::install();
    metrics::register();
    let addr = server::serve(settings.listen, handle, ready.clone(), stop.child_token()).await?;
    tracing::info!(%addr, "metrics on http://{addr}/metrics, health on /health/live and /health/ready");
    // The source first: its settings are checked (and a Kafka source joins its group) before
    // the output is probed for transactions.
    let summary = match &settings.source {
        SourceSettings::Kafka(k) => {
            let mut source = source::kafka::build(k)?;
            if let Some(side) = delivery_plan(&settings, &stop).await? {
                let offsets = source.exactly_once();
                let sink = open_exactly_once(
                    &settings,
                    SourcePositions::KafkaOffsets(offsets),
                    side,
                    &ready,
                )
                .await?;
                pipeline::run(source, sink, transactional(&settings), stop.clone(), ready).await?
            } else {
                at_least_once(source, &settings, stop.clone(), ready).await?
            }
        }
        SourceSettings::File(f) => {
            let source = source::file::build(f)?;
            if let Some(side) = delivery_plan(&settings, &stop).await? {
                let (source, sink) = file_exactly_once(&settings, source, side, &ready).await?;
                pipeline::run(source, sink, transactional(&settings), stop.clone(), ready).await?
            } else {
                at_least_once(source, &settings, stop.clone(), ready).await?
            }
        }
        SourceSettings::Capture(c) => {
            let source = source::capture::build(c)?;
            if let Some(side) = delivery_plan(&settings, &stop).await? {
                let (source, sink) = capture_exactly_once(&settings, source, side, &ready).await?;
                pipeline::run(source, sink, transactional(&settings), stop.clone(), ready).await?
            } else {
                at_least_once(source, &settings, stop.clone(), ready).await?
            }
        }
        SourceSettings::Graph(g) => {
            let source = source::graph::build(g)?;
            if let Some(side) = delivery_plan(&settings, &stop).await? {
                let (source, sink) = graph_exactly_once(&settings, source, side, &ready).await?;
                pipeline::run(source, sink, transactional(&settings), stop.clone(), ready).await?
            } else {
                at_least_once(source, &settings, stop.clone(), ready).await?
            }
        }
        SourceSettings::Eventhubs(h) => {
            if let Some(side) = delivery_plan(&settings, &stop).await? {
                let (source, sink) = eventhubs_exactly_once(&settings, h, side, &ready).await?;
                pipeline::run(source, sink, transactional(&settings), stop.clone(), ready).await?
            } else {
                let source = source::build(&settings.source)?;
                at_least_once(source, &settings, stop.clone(), ready).await?
            }
        }
    };
    stop.cancel(); // stops the endpoint
    Ok(summary)
}

/// The pipeline over a source that is already running and has no positions of its own to
/// resume from (`mfagap run`'s generator), with the output and the delivery the settings
/// name.
pub async fn run_with<S: Source>(
    source: S,
    settings: &IngestSettings,
    stop: CancellationToken,
    ready: Readiness,
) -> Result<Summary> {
    if let Some(side) = delivery_plan(settings, &stop).await? {
        let sink = open_exactly_once(settings, SourcePositions::None, side, &ready).await?;
        pipeline::run(source, sink, transactional(settings), stop, ready).await
    } else {
        at_least_once(source, settings, stop, ready).await
    }
}

async fn at_least_once<S: Source>(
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
    pipeline::run(source, sink, settings.pipeline.clone(), stop, ready).await
}

/// Whether this run delivers exactly once: as asked, or (`auto`) when the output Kafka
/// initialises a transactional producer; one that refuses transactions gets at-least-once,
/// said in the log. A broker that does not answer yet is waited for, as it would be anyway.
async fn exactly_once(settings: &IngestSettings, stop: &CancellationToken) -> Result<bool> {
    match settings.delivery {
        DeliveryMode::AtLeastOnce => return Ok(false),
        DeliveryMode::ExactlyOnce => {
            tracing::info!("delivery: exactly once");
            return Ok(true);
        }
        DeliveryMode::Auto => {}
    }
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    loop {
        let eo = settings.exactly_once.clone();
        let probe = tokio::task::spawn_blocking(move || {
            let id = format!(
                "{}-probe-{}",
                eo.transactional_id_prefix,
                std::process::id()
            );
            sink::Txn::open(&eo, &id).map(|_| ())
        });
        let probe = tokio::select! {
            p = probe => p.context("probing the output Kafka for transactions")?,
            // Stopped first: nothing was read, so the at-least-once path ends at once.
            _ = stop.cancelled() => return Ok(false),
        };
        match probe {
            Ok(()) => {
                tracing::info!("delivery: exactly once (the output Kafka supports transactions)");
                return Ok(true);
            }
            Err(e) if e.kind() == ErrorKind::Configuration => {
                tracing::warn!(error = %e, "delivery: at least once (the output Kafka refuses transactions)");
                return Ok(false);
            }
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?wait, "cannot tell whether the output Kafka supports transactions yet");
                tokio::select! {
                    _ = stop.cancelled() => return Ok(false),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// Which sink delivers: `None` when no output is exactly once (the at-least-once sink carries
/// every output), else the exactly-once sink, with the topics of the outputs asked at least
/// once, which it sends beside its transactions. An output without a delivery of its own
/// follows `--delivery` (resolved once: `auto` probes the output Kafka).
async fn delivery_plan(
    settings: &IngestSettings,
    stop: &CancellationToken,
) -> Result<Option<Vec<String>>> {
    let outputs = &settings.pipeline.outputs;
    let inherit = outputs
        .iter()
        .any(|o| o.delivery.is_none_or(|d| d == DeliveryMode::Auto));
    let main = inherit && exactly_once(settings, stop).await?;
    let (mut transactional, mut side) = (false, Vec::new());
    for o in outputs {
        let eo = match o.delivery {
            Some(DeliveryMode::ExactlyOnce) => true,
            Some(DeliveryMode::AtLeastOnce) => false,
            Some(DeliveryMode::Auto) | None => main,
        };
        tracing::info!(
            topic = %o.topic,
            format = %o.format,
            delivery = if eo { "exactly once" } else { "at least once" },
            "output"
        );
        if eo {
            transactional = true;
        } else {
            side.push(o.topic.clone());
        }
    }
    Ok(transactional.then_some(side))
}

/// The pipeline settings with exactly-once delivery: the pipeline's tick, which commits the
/// transactions open for `--transaction-interval`, comes four times per interval, so that a
/// transaction is committed within a quarter interval of its due time (with one tick per
/// interval, one begun just after a tick would wait nearly two).
fn transactional(settings: &IngestSettings) -> pipeline::PipelineSettings {
    let mut p = settings.pipeline.clone();
    p.commit_interval = p
        .commit_interval
        .min(settings.exactly_once.interval / 4)
        .max(Duration::from_millis(10));
    p
}

/// The exactly-once sink over `positions` (blocking init on a thread of its own).
async fn open_exactly_once(
    settings: &IngestSettings,
    positions: SourcePositions,
    side: Vec<String>,
    ready: &Readiness,
) -> Result<ExactlyOnce> {
    let eo: ExactlyOnceSettings = settings.exactly_once.clone();
    let sink = tokio::task::spawn_blocking(move || ExactlyOnce::open(eo, positions))
        .await
        .context("opening the transactional producer")?
        .map_err(anyhow::Error::new)?;
    if side.is_empty() {
        return Ok(sink);
    }
    let producer = Producer::new(
        &settings.producer,
        "at-least-once output",
        metrics::PREFIX,
        ready.clone(),
    )?;
    Ok(sink.with_side_outputs(producer, side))
}

/// Event Hubs exactly once: partitions fenced and resumed from the positions topic as they
/// are taken.
async fn eventhubs_exactly_once(
    settings: &IngestSettings,
    h: &source::eventhubs::EventHubsSettings,
    side: Vec<String>,
    ready: &Readiness,
) -> Result<(Box<dyn Source>, ExactlyOnce)> {
    let eo = &settings.exactly_once;
    eo.positions.ensure().await?;
    let scope = source::eventhubs::positions_scope(h);
    let registry = Arc::new(sink::TxnRegistry::new(eo, &scope));
    let source = source::eventhubs::build(
        h,
        Some(source::eventhubs::ExactlyOnce {
            registry: registry.clone(),
            positions: eo.positions.clone(),
        }),
    )?;
    let sink = open_exactly_once(
        settings,
        SourcePositions::PerPartition { scope, registry },
        side,
        ready,
    )
    .await?;
    Ok((Box::new(source), sink))
}

/// Files exactly once: the previous run over the same inputs and outputs is fenced, then
/// each file resumes where the positions topic says it stopped.
async fn file_exactly_once(
    settings: &IngestSettings,
    mut source: source::file::FileSource,
    side: Vec<String>,
    ready: &Readiness,
) -> Result<(source::file::FileSource, ExactlyOnce)> {
    // One transactional id per set of inputs and output topics: a second run fences the
    // first before it reads where the first stopped.
    let identity = source.identities().join("\n");
    let (sink, committed) = replay_exactly_once(
        settings,
        source::file::positions_scope,
        "file",
        &identity,
        side,
        ready,
        source::file::Resume::from_json,
    )
    .await?;
    source.resume_from(committed.into_iter().collect());
    Ok((source, sink))
}

/// Capture files exactly once, as files: the previous replay of the same location to the
/// same outputs is fenced, then each Capture file resumes after the last event the positions
/// topic says was delivered.
async fn capture_exactly_once(
    settings: &IngestSettings,
    mut source: source::capture::CaptureSource,
    side: Vec<String>,
    ready: &Readiness,
) -> Result<(source::capture::CaptureSource, ExactlyOnce)> {
    // Named by the location, not by its files: a replay started again after Capture wrote
    // more files still fences the one before.
    let identity = source.identity();
    let (sink, committed) = replay_exactly_once(
        settings,
        source::capture::positions_scope,
        "capture",
        &identity,
        side,
        ready,
        source::capture::Resume::from_json,
    )
    .await?;
    source.resume_from(committed.into_iter().collect());
    Ok((source, sink))
}

/// Graph exactly once, as a replay: the previous run over the same endpoint and tenant to
/// the same outputs is fenced, then each event type resumes where its committed progress
/// says.
async fn graph_exactly_once(
    settings: &IngestSettings,
    mut source: source::graph::GraphSource,
    side: Vec<String>,
    ready: &Readiness,
) -> Result<(source::graph::GraphSource, ExactlyOnce)> {
    let identity = source.identity();
    let (sink, committed) = replay_exactly_once(
        settings,
        source::graph::positions_scope,
        "graph",
        &identity,
        side,
        ready,
        source::graph::Progress::from_json,
    )
    .await?;
    source.resume_from(committed.into_iter().collect());
    Ok((source, sink))
}

/// What a replay (files, Capture files, Graph) shares exactly once: positions under a scope named
/// after the output topics, one transactional id per scope and `identity` (opening it fences
/// the previous run), then the resume points that run committed, per partition, as `parse`
/// reads them (one it cannot read is left out: that partition starts over).
async fn replay_exactly_once<R>(
    settings: &IngestSettings,
    scope_of: fn(&str) -> String,
    kind: &str,
    identity: &str,
    side: Vec<String>,
    ready: &Readiness,
    parse: fn(&serde_json::Value) -> Option<R>,
) -> Result<(ExactlyOnce, Vec<(String, R)>)> {
    let eo = &settings.exactly_once;
    eo.positions.ensure().await?;
    let topics: Vec<&str> = settings
        .pipeline
        .outputs
        .iter()
        .map(|o| o.topic.as_str())
        .collect();
    let scope = scope_of(&topics.join(","));
    let id = format!(
        "{}-{kind}-{:016x}",
        eo.transactional_id_prefix,
        xxhash_rust::xxh3::xxh3_64(format!("{scope}\n{identity}").as_bytes())
    );
    let positions = eo.positions.clone();
    let sink = open_exactly_once(
        settings,
        SourcePositions::Topic {
            scope: scope.clone(),
            id,
        },
        side,
        ready,
    )
    .await?;
    let committed = tokio::task::spawn_blocking(move || positions.read(&scope, None))
        .await
        .context("reading the positions topic")??;
    let resumes = committed
        .into_iter()
        .filter_map(|(p, r)| Some((p, parse(r.resume.as_ref()?)?)))
        .collect();
    Ok((sink, resumes))
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
