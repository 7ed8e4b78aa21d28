//! `mfagap check`: the preflight of a deployment. It reads the settings the services would
//! read (the `MFAGAP_…` variables and `--config`, as `mfagap run` reads them) and tries each
//! external part once: one line per check, `ok` with what it found or `FAILED` with the fix,
//! and exit status 0 only when every check passed. Secrets are never printed.

use anyhow::Result;
use mfagap_archiver::ArchiveArgs;
use mfagap_ingest::IngestArgs;
use mfagap_runtime::check::Check;
use std::time::Duration;

/// Which service's parts to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Service {
    /// The ingest service's source, output Kafka and topics (and transactions when it would
    /// deliver exactly once).
    Ingest,
    /// The archiver's Kafka, topics and dataset storage.
    Archive,
    /// Both.
    All,
}

#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// A TOML file of settings, as `mfagap run --config` takes (keys of ingest and archive).
    #[arg(long, value_name = "FILE", env = "MFAGAP_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Which service's parts to check.
    #[arg(long, value_enum, env = "MFAGAP_CHECK_SERVICE", default_value = "all")]
    pub service: Service,
    /// How long each check may wait for an answer.
    #[arg(long, value_name = "DURATION", env = "MFAGAP_CHECK_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// Runs the checks, prints one line each; `Ok(true)` when all passed.
pub(crate) fn run(args: CheckArgs) -> Result<bool> {
    // Only warnings: the lines below are the output, and what a failed connection makes the
    // Kafka client log is in them already.
    mfagap_runtime::service::init_logging(
        mfagap_runtime::LogFormat::Human,
        "warn,librdkafka=off,rdkafka=off",
    );
    let ingest: Option<IngestArgs> = match args.service {
        Service::Archive => None,
        _ => Some(crate::run::from_environment("ingest")?),
    };
    let archive: Option<ArchiveArgs> = match args.service {
        Service::Ingest => None,
        _ => Some(crate::run::from_environment("archive")?),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut checks: Vec<Check> = Vec::new();
    runtime.block_on(async {
        if let Some(i) = &ingest {
            match i.settings() {
                Ok(s) => checks.extend(mfagap_ingest::check::check(&s, args.timeout).await),
                Err(e) => checks.push(Check::failed(
                    "ingest settings",
                    format!("{e:#}"),
                    "fix the setting named (README, Configuration reference)",
                )),
            }
        }
        if let Some(a) = &archive {
            match a.settings() {
                Ok(s) => checks.extend(mfagap_archiver::check::check(&s, args.timeout).await),
                Err(e) => checks.push(Check::failed(
                    "archive settings",
                    format!("{e:#}"),
                    "fix the setting named (README, Configuration reference)",
                )),
            }
        }
    });
    let failed = checks.iter().filter(|c| !c.passed()).count();
    for c in &checks {
        println!("{c}");
    }
    println!("{} checks, {} failed", checks.len(), failed);
    Ok(failed == 0)
}
