//! `mfagap-archiver`: the archiver service on its own, as its container runs it.

use clap::Parser;
use std::process::ExitCode;

/// mimalloc rather than the system allocator: decoding allocates and frees small strings on
/// every thread, and glibc's malloc cost far more CPU (README, Benchmark).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
