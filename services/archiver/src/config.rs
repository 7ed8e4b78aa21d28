//! Settings of the archiver: flags, `MFAGAP_…` environment variables and the `--config` file.
//!
//! The same three ways as the ingest service, through the same table of names (each flag's
//! `env`). Names shared with the ingest service (`MFAGAP_KAFKA_BOOTSTRAP`, `MFAGAP_TOPIC`)
//! mean the same thing in both, so one environment configures a whole pipeline; names that
//! would differ carry `ARCHIVER`.

use crate::archive::Settings;
use crate::layout::StartPosition;
use mfagap_runtime::{LogFormat, Property};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Every flag of the archiver.
#[derive(Debug, Clone, clap::Args)]
pub struct ArchiveArgs {
    /// A TOML file of settings (keys as the long flags, e.g. `data = "s3://bucket/signins"`);
    /// flags and environment variables take precedence.
    #[arg(long, value_name = "FILE", env = "MFAGAP_CONFIG")]
    pub config: Option<PathBuf>,

    /// Kafka bootstrap servers.
    #[arg(
        long,
        value_name = "HOST:PORT",
        env = "MFAGAP_KAFKA_BOOTSTRAP",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap: String,
    /// Topic of the sign-ins without MFA (what the ingest service writes).
    #[arg(
        long,
        value_name = "TOPIC",
        env = "MFAGAP_TOPIC",
        default_value = "entra.signins.nonmfa"
    )]
    pub topic: String,
    /// Consumer group of the archiver replicas.
    #[arg(
        long,
        value_name = "GROUP",
        env = "MFAGAP_ARCHIVER_GROUP",
        default_value = "mfagap-archiver"
    )]
    pub group: String,
    /// Topic of values that are not valid output records.
    #[arg(
        long,
        value_name = "TOPIC",
        env = "MFAGAP_ARCHIVER_DEAD_LETTER_TOPIC",
        default_value = "entra.signins.archiver.deadletter"
    )]
    pub dead_letter_topic: String,
    /// librdkafka property for the consumer and the dead-letter producer (repeatable;
    /// `key=value`): TLS, SASL, tuning.
    #[arg(
        short = 'X',
        long = "kafka-property",
        value_name = "KEY=VALUE",
        env = "MFAGAP_ARCHIVER_KAFKA_PROPERTIES",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub kafka_properties: Vec<Property>,
    /// Where a partition starts when nothing of it has been published yet.
    #[arg(
        long,
        value_enum,
        env = "MFAGAP_ARCHIVER_START_POSITION",
        default_value = "earliest"
    )]
    pub start_position: StartPosition,

    /// Root of the dataset: a directory, or `az://container/path`, `abfss://…`, `s3://bucket/path`.
    #[arg(
        long,
        value_name = "PATH|URL",
        env = "MFAGAP_DATA",
        default_value = "./mfagap-data"
    )]
    pub data: String,
    /// Object storage option (repeatable; `key=value`, e.g. `azure_storage_account_name=x`);
    /// the usual `AZURE_*` and `AWS_*` variables are read too.
    #[arg(
        short = 'O',
        long = "storage-option",
        value_name = "KEY=VALUE",
        env = "MFAGAP_STORAGE_OPTIONS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub storage_options: Vec<Property>,

    /// A partition's open file is published once it holds this many rows.
    #[arg(
        long,
        value_name = "N",
        env = "MFAGAP_ROLL_ROWS",
        default_value_t = 1_000_000
    )]
    pub roll_rows: usize,
    /// … or once its rows take this much memory (e.g. `256MiB`; files come out about a
    /// tenth of it with ZSTD).
    #[arg(long, value_name = "SIZE", env = "MFAGAP_ROLL_BYTES", default_value = "256MiB", value_parser = parse_size)]
    pub roll_bytes: u64,
    /// … or once its oldest row waited this long.
    #[arg(long, value_name = "DURATION", env = "MFAGAP_ROLL_AGE", default_value = "5m", value_parser = humantime::parse_duration)]
    pub roll_age: Duration,
    /// Memory of all buffered rows together, at most: past it the largest unit is published
    /// early. The process needs about this plus 100 MB.
    #[arg(long, value_name = "SIZE", env = "MFAGAP_MAX_BUFFERED", default_value = "512MiB", value_parser = parse_size)]
    pub max_buffered: u64,
    /// Rows per Parquet row group.
    #[arg(
        long,
        value_name = "N",
        env = "MFAGAP_ROW_GROUP_ROWS",
        default_value_t = 122_880
    )]
    pub row_group_rows: usize,
    /// ZSTD level of the Parquet pages (1 fastest … 22 smallest).
    #[arg(long, value_name = "LEVEL", env = "MFAGAP_ZSTD_LEVEL", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=22))]
    pub zstd_level: i32,
    /// Staged files older than this with no commit are a crashed writer's leftovers and are
    /// deleted; a writer never commits a file it staged longer ago than half of this.
    #[arg(long, value_name = "DURATION", env = "MFAGAP_ORPHAN_AGE", default_value = "15m", value_parser = humantime::parse_duration)]
    pub orphan_age: Duration,
    /// On SIGTERM/SIGINT, how long publishing what is held may take before exiting.
    #[arg(long, value_name = "DURATION", env = "MFAGAP_ARCHIVER_GRACE_PERIOD", default_value = "60s", value_parser = humantime::parse_duration)]
    pub grace_period: Duration,

    /// Address of /metrics and /health/{live,ready}.
    #[arg(
        long,
        value_name = "ADDR",
        env = "MFAGAP_ARCHIVER_LISTEN",
        default_value = "127.0.0.1:9465"
    )]
    pub listen: SocketAddr,
    /// Log format.
    #[arg(long, value_enum, env = "MFAGAP_LOG_FORMAT", default_value = "human")]
    pub log_format: LogFormat,
    /// Log filter (RUST_LOG syntax), e.g. `info` or `mfagap_archiver=debug`.
    #[arg(
        long,
        value_name = "FILTER",
        env = "MFAGAP_LOG",
        default_value = "info"
    )]
    pub log: String,
}

/// Everything the archiver runs on, checked: what [`crate::run`] takes (the library never
/// sees clap).
#[derive(Debug, Clone)]
pub struct ArchiveSettings {
    /// Kafka bootstrap servers of the topic and of the dead-letter topic.
    pub bootstrap: String,
    /// Consumer group of the archiver replicas.
    pub group: String,
    /// librdkafka properties of the consumer and the dead-letter producer.
    pub kafka_properties: Vec<Property>,
    /// Root of the dataset: a directory or an object-store URL.
    pub data: String,
    /// Object storage options.
    pub storage_options: Vec<Property>,
    /// Address of `/metrics` and the health endpoints (port 0: any free port).
    pub listen: SocketAddr,
    /// What to read and how to roll and publish.
    pub archive: Settings,
}

impl ArchiveArgs {
    /// The settings, checked; an error names the flag to fix.
    pub fn settings(&self) -> anyhow::Result<ArchiveSettings> {
        Ok(ArchiveSettings {
            bootstrap: self.bootstrap.clone(),
            group: self.group.clone(),
            kafka_properties: self.kafka_properties.clone(),
            data: self.data.clone(),
            storage_options: self.storage_options.clone(),
            listen: self.listen,
            archive: Settings::from_args(self)?,
        })
    }
}

/// The environment variable of an archiver flag, by its long name (for the config file).
pub fn env_of(key: &str) -> Option<String> {
    mfagap_runtime::config::env_of_flag::<ArchiveArgs>(key)
}

/// A size in bytes: `1000`, `64KB`, `128MiB`, `1GiB` (units are case-insensitive).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .replace('_', "")
        .parse()
        .map_err(|_| format!("not a size: {s:?} (e.g. 128MiB)"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "kib" => 1 << 10,
        "mb" | "m" => 1_000_000,
        "mib" => 1 << 20,
        "gb" | "g" => 1_000_000_000,
        "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} in {s:?}")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("size too large: {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ArchiveArgs,
    }

    #[test]
    fn sizes_take_decimal_and_binary_units() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("64KB"), Ok(64_000));
        assert_eq!(parse_size("128MiB"), Ok(128 << 20));
        assert_eq!(parse_size("1 gib"), Ok(1 << 30));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999999GiB").is_err());
    }

    #[test]
    fn defaults_avoid_small_files_and_bound_memory() {
        let cli = Cli::parse_from(["archiver"]);
        let a = cli.args;
        assert_eq!(a.data, "./mfagap-data");
        assert_eq!(a.roll_bytes, 256 << 20);
        assert!(a.max_buffered >= a.roll_bytes);
        assert_eq!(a.roll_age, Duration::from_secs(300));
    }

    #[test]
    fn every_flag_has_its_variable_for_the_config_file() {
        assert_eq!(env_of("roll-rows").as_deref(), Some("MFAGAP_ROLL_ROWS"));
        assert_eq!(
            env_of("storage_option").as_deref(),
            Some("MFAGAP_STORAGE_OPTIONS")
        );
        assert_eq!(env_of("nope"), None);
    }
}
