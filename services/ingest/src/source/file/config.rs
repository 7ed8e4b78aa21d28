//! Settings of the `file` source.

use std::path::PathBuf;

/// The file source's flags.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "File source")]
pub struct FileArgs {
    /// Input files for the file source (`-` is standard input).
    #[arg(
        long = "input",
        value_name = "FILE",
        env = "MFAGAP_INPUT",
        value_delimiter = ','
    )]
    pub inputs: Vec<PathBuf>,
}

/// What the file source reads.
#[derive(Debug, Clone, Default)]
pub struct FileSettings {
    /// Files in order; empty means standard input.
    pub inputs: Vec<PathBuf>,
}

impl FileArgs {
    /// The settings these flags give; files are checked when the source opens them.
    pub fn settings(&self) -> FileSettings {
        FileSettings {
            inputs: self.inputs.clone(),
        }
    }
}
