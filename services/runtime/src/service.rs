//! The frame around a service: logging, the runtime, stop signals, the exit status.
//!
//! The caller owns shutdown: [`main_with`] hands the service a [`CancellationToken`] that the
//! first SIGTERM or SIGINT cancels (the service then drains and commits), and a second signal
//! exits at once. Every service of a process shares [`stop_on_signal`].

use anyhow::{Context, Result};
use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable lines, coloured on a terminal.
    Human,
    /// One JSON object per line, for a log collector.
    Json,
}

/// Logs go to stderr, human-readable or one JSON object per line, filtered by `filter`
/// (RUST_LOG syntax; a filter that does not parse falls back to `info`).
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

/// Sets up logging, the runtime and the stop signals, runs `service` until it returns, and
/// turns the outcome into an exit status: 0 after a clean end or a graceful stop (`ended`
/// logs what was done), 1 on an error (logged, and printed on stderr prefixed with `name`).
pub fn main_with<T, F, Fut>(
    name: &str,
    log_format: LogFormat,
    log: &str,
    service: F,
    ended: impl FnOnce(&T),
) -> ExitCode
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    init_logging(log_format, log);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let stop = CancellationToken::new();
        tokio::spawn(stop_on_signal(stop.clone()));
        service(stop).await
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(outcome) => {
            ended(&outcome);
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM or SIGINT: cancel `stop` (stop reading, drain, commit). A second signal exits at
/// once with status 130.
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
