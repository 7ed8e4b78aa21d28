//! The `mfagap` command: the pipeline's services and the operator commands in one binary.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod broker;
mod check;
mod filter;
mod generate;
mod progress;
mod report;
mod run;
mod synthetic;

/// Finds the Entra ID sign-ins that succeeded without an MFA challenge, continuously.
#[derive(Debug, Parser)]
#[command(name = "mfagap", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Classify JSON Lines of Event Hubs message bodies; print the sign-ins without MFA.
    Filter(filter::FilterArgs),
    /// Write realistic synthetic sign-in messages (JSON Lines), deterministic for a seed.
    Generate(generate::GenerateArgs),
    /// Run the ingest service: sign-in logs from Event Hubs (or Kafka, or files) to Kafka.
    Ingest(Box<mfagap_ingest::IngestArgs>),
    /// Run the archiver service: the sign-ins without MFA from Kafka to Parquet, exactly once.
    Archive(Box<mfagap_archiver::ArchiveArgs>),
    /// Write the report (CSV, JSON Lines, a table or an HTML page) of a time window of the
    /// Parquet dataset.
    Report(report::ReportArgs),
    /// Run ingest and archiver in one process: by default on synthetic sign-ins and an
    /// in-process Kafka, with nothing to install; prints a summary and writes the report.
    Run(Box<run::RunArgs>),
    /// Check a deployment's settings against the parts they name (Event Hubs, checkpoint
    /// container, Kafka, dataset storage): one line per check, exit 0 only when all pass.
    Check(check::CheckArgs),
}

fn main() -> ExitCode {
    let argv: Vec<_> = std::env::args_os().collect();
    // The config file's keys are the flags of the command being run.
    let lookup = |key: &str| match argv.get(1).and_then(|a| a.to_str()) {
        Some("archive") => mfagap_archiver::config::env_of(key),
        Some("run") | Some("check") => run::env_of(key),
        _ => mfagap_ingest::config::env_of(key),
    };
    if let Err(e) = mfagap_runtime::config::apply_config_file_with(&argv, &lookup) {
        eprintln!("mfagap: {e:#}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse_from(argv);
    let result = match cli.command {
        Command::Filter(args) => filter::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Report(args) => report::run(args),
        Command::Run(args) => run::run(*args),
        Command::Check(args) => match check::run(args) {
            Ok(true) => return ExitCode::SUCCESS,
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
        Command::Ingest(args) => return mfagap_ingest::main_with(*args),
        Command::Archive(args) => return mfagap_archiver::main_with(*args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::from(141),
        Err(e) => {
            eprintln!("mfagap: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `mfagap filter … | head` closing the pipe early is not an error worth a message.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
