//! The ingest service: Entra ID sign-in logs from Event Hubs to Kafka, nothing lost.
//!
//! Sources (`source`) hand out message bodies; the core decides; the pipeline (`pipeline`)
//! sends sign-ins and dead letters (`deadletter`) to Kafka (`sink`) and moves source positions
//! only past what Kafka acknowledged (`offsets`). Metrics and health (`metrics`, `server`),
//! settings (`config`) and secrets (`secret`) sit beside them.

pub mod config;
pub mod connection;
pub mod consumer_lag;
pub mod deadletter;
pub mod metrics;
pub mod offsets;
pub mod pipeline;
pub mod secret;
pub mod server;
pub mod sink;
pub mod source;

pub use config::IngestArgs;

use anyhow::{Context, Result};
use config::{LogFormat, SourceKind};
use pipeline::Summary;
use server::Readiness;
use sink::KafkaSink;
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs the service until its source ends or `stop` is cancelled.
pub async fn run(args: IngestArgs, stop: CancellationToken) -> Result<Summary> {
    let handle = metrics::install();
    let ready = Readiness::default();
    let addr = server::serve(args.listen, handle, ready.clone(), stop.child_token()).await?;
    tracing::info!(%addr, "metrics on http://{addr}/metrics, health on /health/live and /health/ready");

    let sink = KafkaSink::new(&args.sink_config(), ready.clone())?;
    let (probe, bootstrap) = (sink.clone(), args.bootstrap.clone());
    tokio::task::spawn_blocking(move || {
        if !probe.reachable(Duration::from_secs(5)) {
            tracing::warn!(%bootstrap, "the output Kafka does not answer yet; records wait until it does");
        }
    });
    let config = args.pipeline_config();
    let summary = match args.source {
        SourceKind::Eventhubs => {
            let source = source::eventhubs::EventHubsSource::start(args.eventhubs_config()?)?;
            pipeline::run(source, sink, config, stop.clone(), ready).await?
        }
        SourceKind::File => {
            let source = source::file::FileSource::new(args.inputs.clone())?;
            pipeline::run(source, sink, config, stop.clone(), ready).await?
        }
        SourceKind::Kafka => {
            let source = source::kafka::KafkaSource::new(&source::kafka::KafkaSourceConfig {
                bootstrap: args.source_bootstrap.clone(),
                topics: args.source_topics.clone(),
                group: args.consumer_group.clone(),
                connection_string: args.eventhubs_connection_string.clone(),
                start: match args.start_position {
                    source::StartAt::Earliest => source::kafka::StartPosition::Earliest,
                    source::StartAt::Latest => source::kafka::StartPosition::Latest,
                    source::StartAt::Time(_) => anyhow::bail!(
                        "--start-position TIME needs --source eventhubs; the kafka source starts at earliest or latest"
                    ),
                },
                properties: args.source_properties.clone(),
            })?;
            pipeline::run(source, sink, config, stop.clone(), ready).await?
        }
    };
    stop.cancel(); // stops the endpoint
    Ok(summary)
}

/// Sets up logging, signals and the runtime, runs the service, and turns the outcome into an
/// exit status: 0 after a clean end or a graceful stop, 1 on an error.
pub fn main_with(args: IngestArgs) -> ExitCode {
    init_logging(args.log_format, &args.log);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mfagap-ingest: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let stop = CancellationToken::new();
        tokio::spawn(stop_on_signal(stop.clone()));
        run(args, stop).await
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(summary) => {
            tracing::info!(
                undelivered = summary.undelivered,
                "stopped\n{}",
                summary.stats
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("mfagap-ingest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM or SIGINT: stop reading, drain, commit. A second signal exits at once. Every
/// service of the process shares it.
pub async fn stop_on_signal(stop: CancellationToken) {
    if let Err(e) = wait_for_signals(stop).await {
        tracing::error!("{e:#}");
    }
}

#[cfg(unix)]
async fn wait_for_signals(stop: CancellationToken) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stop signal: finishing in-flight work");
    stop.cancel();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::warn!("second stop signal: exiting now");
    std::process::exit(130);
}

#[cfg(not(unix))]
async fn wait_for_signals(stop: CancellationToken) -> Result<()> {
    tokio::signal::ctrl_c().await.context("Ctrl-C handler")?;
    stop.cancel();
    Ok(())
}

/// Logs go to stderr, human-readable or one JSON object per line.
pub fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
