//! `mfagap generate`: realistic synthetic sign-in streams for demos, tests and benchmarks.

use anyhow::{Context, Result};
use mfagap_generate::{Generator, GeneratorConfig};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub(crate) struct GenerateArgs {
    /// How many Event Hubs message bodies (JSON Lines) to write.
    #[arg(long, value_name = "N", env = "MFAGAP_MESSAGES")]
    pub messages: u64,
    /// Seed: the same seed gives the same bytes.
    #[arg(long, value_name = "S", default_value_t = 1, env = "MFAGAP_SEED")]
    pub seed: u64,
    /// Share of user sign-ins that succeed without MFA (0 to 1).
    #[arg(long, value_name = "F", default_value_t = GeneratorConfig::default().non_mfa_share)]
    pub non_mfa_share: f64,
    /// Share of messages that are malformed as a whole (0 to 1).
    #[arg(long, value_name = "F", default_value_t = GeneratorConfig::default().malformed_share)]
    pub malformed_share: f64,
    /// Share of records that are malformed inside a good message (0 to 1).
    #[arg(long, value_name = "F", default_value_t = GeneratorConfig::default().bad_record_share)]
    pub bad_record_share: f64,
    /// Share of records that repeat an earlier one (0 to 1).
    #[arg(long, value_name = "F", default_value_t = GeneratorConfig::default().duplicate_share)]
    pub duplicate_share: f64,
    /// Write here instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

impl GenerateArgs {
    pub(crate) fn config(&self) -> Result<GeneratorConfig> {
        for (name, v) in [
            ("--non-mfa-share", self.non_mfa_share),
            ("--malformed-share", self.malformed_share),
            ("--bad-record-share", self.bad_record_share),
            ("--duplicate-share", self.duplicate_share),
        ] {
            anyhow::ensure!(
                (0.0..=1.0).contains(&v),
                "{name} must be between 0 and 1, not {v}"
            );
        }
        Ok(GeneratorConfig {
            seed: self.seed,
            non_mfa_share: self.non_mfa_share,
            malformed_share: self.malformed_share,
            bad_record_share: self.bad_record_share,
            duplicate_share: self.duplicate_share,
            ..GeneratorConfig::default()
        })
    }
}

pub(crate) fn run(args: GenerateArgs) -> Result<()> {
    let mut generator = Generator::new(args.config()?);
    let out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 16, out);
    generator.write_jsonl(args.messages, &mut out)?;
    out.flush()?;
    Ok(())
}
