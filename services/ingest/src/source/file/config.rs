//! Settings of the `file` source.

use std::path::PathBuf;

/// The file source's flags.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "File source")]
pub struct FileArgs {
    /// Input files for the file source (`-` is standard input): JSON Lines, or one JSON
    /// document (an array, a `{"records":[…]}` envelope or a Graph page, read element by
    /// element); gzip or zstd compressed or not.
    #[arg(
        long = "input",
        value_name = "FILE",
        env = "MFAGAP_INPUT",
        value_delimiter = ','
    )]
    pub inputs: Vec<PathBuf>,
}

/// What the file source reads.
#[derive(Debug, Clone)]
pub struct FileSettings {
    /// Files in order; empty means standard input.
    pub inputs: Vec<PathBuf>,
    /// The largest message body: a longer line or element is not held (see `--max-message-bytes`).
    pub max_message_bytes: usize,
}

impl Default for FileSettings {
    fn default() -> Self {
        FileSettings {
            inputs: Vec::new(),
            max_message_bytes: mfagap_core::framing::DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

impl FileArgs {
    /// The settings these flags give, with the sources' largest message body; files are
    /// checked when the source opens them.
    pub fn settings(&self, max_message_bytes: usize) -> FileSettings {
        FileSettings {
            inputs: self.inputs.clone(),
            max_message_bytes,
        }
    }
}
