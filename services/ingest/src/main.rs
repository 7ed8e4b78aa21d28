//! `mfagap-ingest`: the ingest service on its own, as its container runs it.

use clap::Parser;
use std::process::ExitCode;

/// Reads Entra ID sign-in logs, keeps the successful sign-ins without MFA, writes them to Kafka.
#[derive(Debug, Parser)]
#[command(name = "mfagap-ingest", version, about)]
struct Cli {
    #[command(flatten)]
    args: mfagap_ingest::IngestArgs,
}

fn main() -> ExitCode {
    let argv: Vec<_> = std::env::args_os().collect();
    if let Err(e) =
        mfagap_runtime::config::apply_config_file_with(&argv, &mfagap_ingest::config::env_of)
    {
        eprintln!("mfagap-ingest: {e:#}");
        return ExitCode::from(2);
    }
    mfagap_ingest::main_with(Cli::parse_from(argv).args)
}
