//! `mfagap-archiver`: the archiver service on its own, as its container runs it.

use clap::Parser;
use std::process::ExitCode;

/// Reads the sign-ins without MFA from Kafka and writes them, exactly once, as a Parquet dataset.
#[derive(Debug, Parser)]
#[command(name = "mfagap-archiver", version, about)]
struct Cli {
    #[command(flatten)]
    args: mfagap_archiver::ArchiveArgs,
}

fn main() -> ExitCode {
    let argv: Vec<_> = std::env::args_os().collect();
    if let Err(e) =
        mfagap_runtime::config::apply_config_file_with(&argv, &mfagap_archiver::config::env_of)
    {
        eprintln!("mfagap-archiver: {e:#}");
        return ExitCode::from(2);
    }
    mfagap_archiver::main_with(Cli::parse_from(argv).args)
}
