//! Settings of the ingest service: flags, `MFAGAP_…` environment variables and a TOML file.
//!
//! Precedence is flag, then environment, then `--config` file. The file is applied by turning
//! each of its keys into the matching environment variable (when that variable is not already
//! set) before the flags are parsed, so one table of names covers all three ways and `--help`
//! documents every one of them.

use crate::secret::{Property, Secret};
use crate::source::StartAt;
use crate::source::eventhubs::Balancing;
use crate::source::eventhubs::connect::CredentialKind;
use anyhow::{Context, Result, bail};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Which input to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceKind {
    /// Event Hubs over AMQP: partitions shared among replicas, checkpoints in Blob storage.
    Eventhubs,
    /// Event Hubs through its Kafka endpoint, or any Kafka topic.
    Kafka,
    /// JSON Lines files or standard input.
    File,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, clap::Args)]
pub struct IngestArgs {
    /// A TOML file of settings (keys as the long flags, e.g. `topic = "x"`); flags and
    /// environment variables take precedence.
    #[arg(long, value_name = "FILE", env = "MFAGAP_CONFIG")]
    pub config: Option<PathBuf>,

    /// Where message bodies come from.
    #[arg(long, value_enum, env = "MFAGAP_SOURCE", default_value = "kafka")]
    pub source: SourceKind,
    /// Input files for the file source (`-` is standard input).
    #[arg(
        long = "input",
        value_name = "FILE",
        env = "MFAGAP_INPUT",
        value_delimiter = ','
    )]
    pub inputs: Vec<PathBuf>,
    /// Kafka source: bootstrap servers (derived from the connection string when absent).
    #[arg(long, value_name = "HOST:PORT", env = "MFAGAP_SOURCE_BOOTSTRAP")]
    pub source_bootstrap: Option<String>,
    /// Kafka source: topics, i.e. event hubs (the connection string's EntityPath when absent).
    #[arg(
        long = "source-topic",
        value_name = "TOPIC",
        env = "MFAGAP_SOURCE_TOPIC",
        value_delimiter = ','
    )]
    pub source_topics: Vec<String>,
    /// Event Hubs and Kafka sources: the consumer group (create a dedicated one in Event Hubs).
    #[arg(
        long,
        value_name = "GROUP",
        env = "MFAGAP_CONSUMER_GROUP",
        default_value = "mfagap-ingest"
    )]
    pub consumer_group: String,
    /// Event Hubs namespace (or event hub) connection string; prefer the environment variable.
    #[arg(
        long,
        value_name = "STRING",
        env = "MFAGAP_EVENTHUBS_CONNECTION_STRING",
        hide_env_values = true
    )]
    pub eventhubs_connection_string: Option<Secret>,
    /// Where a partition without a committed position starts: earliest, latest, or (Event
    /// Hubs) an RFC 3339 enqueued time.
    #[arg(
        long,
        value_name = "WHERE",
        env = "MFAGAP_START_POSITION",
        default_value = "earliest"
    )]
    pub start_position: StartAt,
    /// Event Hubs source: the namespace (`NAME` or `NAME.servicebus.windows.net`) when
    /// authenticating with Entra ID instead of a connection string.
    #[arg(long, value_name = "NAMESPACE", env = "MFAGAP_EVENTHUBS_NAMESPACE")]
    pub eventhubs_namespace: Option<String>,
    /// Event Hubs source: the event hub (the connection string's EntityPath when absent).
    #[arg(long, value_name = "NAME", env = "MFAGAP_EVENTHUB")]
    pub eventhub: Option<String>,
    /// Event Hubs source: the Entra ID credential used without a connection string.
    #[arg(
        long,
        value_enum,
        env = "MFAGAP_EVENTHUBS_CREDENTIAL",
        default_value = "auto"
    )]
    pub eventhubs_credential: CredentialKind,
    /// Event Hubs source: an AMQP endpoint to dial instead of the namespace (a proxy, the
    /// emulator); emulator connection strings set it themselves.
    #[arg(long, value_name = "URL", env = "MFAGAP_EVENTHUBS_ENDPOINT")]
    pub eventhubs_endpoint: Option<String>,
    /// Event Hubs source: the Blob container of checkpoints and ownership
    /// (`az://CONTAINER[/PREFIX]` or `https://ACCOUNT.blob.core.windows.net/CONTAINER`).
    #[arg(long, value_name = "URL", env = "MFAGAP_CHECKPOINT_STORE")]
    pub checkpoint_store: Option<String>,
    /// Event Hubs source: a storage setting of the checkpoint store (repeatable; `key=value`,
    /// e.g. `azure_storage_account_name=…`; without a key or SAS, Entra ID is used).
    #[arg(
        long = "checkpoint-store-option",
        value_name = "KEY=VALUE",
        env = "MFAGAP_CHECKPOINT_STORE_OPTIONS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub checkpoint_store_options: Vec<Property>,
    /// Event Hubs source: write a partition's checkpoint at least this often while it moves.
    #[arg(long, value_name = "DURATION", env = "MFAGAP_CHECKPOINT_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub checkpoint_interval: Duration,
    /// Event Hubs source: or sooner, once this many events are acknowledged past the last one.
    #[arg(
        long,
        value_name = "EVENTS",
        env = "MFAGAP_CHECKPOINT_EVERY",
        default_value_t = 50_000
    )]
    pub checkpoint_every: u64,
    /// Event Hubs source: how replicas share partitions.
    #[arg(
        long,
        value_enum,
        env = "MFAGAP_LOAD_BALANCING",
        default_value = "greedy"
    )]
    pub load_balancing: Balancing,
    /// Event Hubs source: how often ownership is renewed and the load balanced.
    #[arg(long, value_name = "DURATION", env = "MFAGAP_LOAD_BALANCING_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub load_balancing_interval: Duration,
    /// Event Hubs source: after this long without renewal a replica's partitions are taken
    /// over (it died); must exceed the load-balancing interval.
    #[arg(long, value_name = "DURATION", env = "MFAGAP_OWNERSHIP_EXPIRATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub ownership_expiration: Duration,
    /// Event Hubs source: events each partition receiver fetches ahead (memory: up to this
    /// many events of up to 1 MB per owned partition).
    #[arg(
        long,
        value_name = "EVENTS",
        env = "MFAGAP_PREFETCH",
        default_value_t = 50
    )]
    pub prefetch: u32,
    /// Event Hubs source: a partition receiver that gets nothing for this long while events
    /// wait is opened again (the watchdog also reports the consumer lag).
    #[arg(long, value_name = "DURATION", env = "MFAGAP_STALL_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub stall_timeout: Duration,
    /// librdkafka property for the source consumer (repeatable; `key=value`).
    #[arg(
        short = 'S',
        long = "source-property",
        value_name = "KEY=VALUE",
        env = "MFAGAP_SOURCE_PROPERTIES",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub source_properties: Vec<Property>,

    /// Output Kafka bootstrap servers.
    #[arg(
        long,
        value_name = "HOST:PORT",
        env = "MFAGAP_KAFKA_BOOTSTRAP",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap: String,
    /// Topic of the sign-ins without MFA.
    #[arg(
        long,
        value_name = "TOPIC",
        env = "MFAGAP_TOPIC",
        default_value = "entra.signins.nonmfa"
    )]
    pub topic: String,
    /// Topic of the dead letters.
    #[arg(
        long,
        value_name = "TOPIC",
        env = "MFAGAP_DEAD_LETTER_TOPIC",
        default_value = "entra.signins.deadletter"
    )]
    pub dead_letter_topic: String,
    /// Compression of the output (none, gzip, snappy, lz4, zstd).
    #[arg(
        long,
        value_name = "CODEC",
        env = "MFAGAP_COMPRESSION",
        default_value = "zstd"
    )]
    pub compression: String,
    /// librdkafka property for the output producer, as kcat's -X (repeatable; `key=value`):
    /// TLS, SASL/SCRAM/OAUTHBEARER, tuning.
    #[arg(
        short = 'X',
        long = "kafka-property",
        value_name = "KEY=VALUE",
        env = "MFAGAP_KAFKA_PROPERTIES",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub kafka_properties: Vec<Property>,

    /// Classify workload identities (service principals, managed identities) too.
    #[arg(long, env = "MFAGAP_INCLUDE_SERVICE_PRINCIPALS")]
    pub include_service_principals: bool,
    /// clientAppUsed values that count as legacy protocols (comma-separated; replaces the list).
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        env = "MFAGAP_LEGACY_CLIENTS"
    )]
    pub legacy_clients: Option<Vec<String>>,
    /// How many distinct sign-ins duplicate suppression remembers (0 turns it off).
    #[arg(long, value_name = "N", env = "MFAGAP_DEDUP_WINDOW", default_value_t = mfagap_core::dedup::DEFAULT_CAPACITY)]
    pub dedup_window: usize,

    /// Messages read but not yet acknowledged by Kafka, at most (bounds memory).
    #[arg(
        long,
        value_name = "N",
        env = "MFAGAP_MAX_IN_FLIGHT",
        default_value_t = 2000
    )]
    pub max_in_flight: usize,
    /// How often resume points are committed.
    #[arg(long, value_name = "DURATION", env = "MFAGAP_COMMIT_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub commit_interval: Duration,
    /// On SIGTERM/SIGINT, how long to wait for in-flight records before exiting.
    #[arg(long, value_name = "DURATION", env = "MFAGAP_GRACE_PERIOD", default_value = "30s", value_parser = humantime::parse_duration)]
    pub grace_period: Duration,

    /// Address of /metrics and /health/{live,ready}.
    #[arg(
        long,
        value_name = "ADDR",
        env = "MFAGAP_LISTEN",
        default_value = "127.0.0.1:9464"
    )]
    pub listen: SocketAddr,
    /// Log format.
    #[arg(long, value_enum, env = "MFAGAP_LOG_FORMAT", default_value = "human")]
    pub log_format: LogFormat,
    /// Log filter (RUST_LOG syntax), e.g. `info` or `mfagap_ingest=debug`.
    #[arg(
        long,
        value_name = "FILTER",
        env = "MFAGAP_LOG",
        default_value = "info"
    )]
    pub log: String,
}

impl IngestArgs {
    /// The Kafka output's settings.
    pub fn sink_config(&self) -> crate::sink::SinkConfig {
        crate::sink::SinkConfig {
            bootstrap: self.bootstrap.clone(),
            compression: self.compression.clone(),
            properties: self.kafka_properties.clone(),
        }
    }

    /// The pipeline's settings, the same whichever source feeds it.
    pub fn pipeline_config(&self) -> crate::pipeline::PipelineConfig {
        crate::pipeline::PipelineConfig {
            processor: mfagap_core::Processor::new(self.classifier()),
            topic: self.topic.clone(),
            dead_letter_topic: self.dead_letter_topic.clone(),
            dedup_window: self.dedup_window,
            max_in_flight: self.max_in_flight,
            commit_interval: self.commit_interval,
            grace_period: self.grace_period,
        }
    }

    /// The `eventhubs` source's settings, checked.
    pub fn eventhubs_config(&self) -> Result<crate::source::eventhubs::EventHubsConfig> {
        use crate::source::eventhubs::{EventHubsConfig, checkpointer::Policy, connect::Target};
        let target = Target::resolve(
            self.eventhubs_connection_string.as_ref(),
            self.eventhubs_namespace.as_deref(),
            self.eventhub.as_deref(),
            &self.consumer_group,
            self.eventhubs_endpoint.as_deref(),
            self.eventhubs_credential,
        )?;
        let Some(checkpoint_store) = self.checkpoint_store.clone() else {
            bail!(
                "the eventhubs source needs --checkpoint-store (a Blob container for checkpoints and partition ownership)"
            );
        };
        if self.ownership_expiration <= self.load_balancing_interval {
            bail!(
                "--ownership-expiration ({:?}) must exceed --load-balancing-interval ({:?})",
                self.ownership_expiration,
                self.load_balancing_interval
            );
        }
        Ok(EventHubsConfig {
            target,
            checkpoint_store,
            checkpoint_store_options: self.checkpoint_store_options.clone(),
            start: self.start_position,
            checkpoint: Policy {
                interval: self.checkpoint_interval,
                every: self.checkpoint_every.max(1),
            },
            balancing: self.load_balancing,
            balancing_interval: self.load_balancing_interval,
            ownership_expiration: self.ownership_expiration,
            prefetch: self.prefetch.max(1),
            stall_timeout: self.stall_timeout.max(Duration::from_secs(1)),
        })
    }

    pub fn classifier(&self) -> mfagap_core::Classifier {
        mfagap_core::Classifier::new(mfagap_core::ClassifierConfig::from_options(
            self.include_service_principals,
            self.legacy_clients.as_deref(),
        ))
    }
}

/// Finds `--config FILE` (or `MFAGAP_CONFIG`) in the arguments and applies the file's keys as
/// environment defaults, for the ingest service's settings. Must run before any thread is
/// started.
pub fn apply_config_file(args: &[OsString]) -> Result<()> {
    apply_config_file_with(args, &env_of)
}

/// As `apply_config_file`, with the table of names of the command being run: each service
/// (and `mfagap run`, which hosts both) passes the lookup of its own flags.
pub fn apply_config_file_with(
    args: &[OsString],
    env_of: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    let mut path = std::env::var_os("MFAGAP_CONFIG").map(PathBuf::from);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--config" {
            path = it.next().map(PathBuf::from);
        } else if let Some(p) = a.strip_prefix("--config=") {
            path = Some(PathBuf::from(p));
        }
    }
    let Some(path) = path else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    for (key, value) in
        config_env(&text).with_context(|| format!("in the config file {}", path.display()))?
    {
        let Some(name) = env_of(&key) else {
            bail!(
                "unknown setting {key:?} in the config file {}",
                path.display()
            );
        };
        if std::env::var_os(&name).is_none() {
            // SAFETY: called at the start of main, before any other thread exists.
            unsafe { std::env::set_var(&name, value) };
        }
    }
    Ok(())
}

/// The environment variable of a flag, by its long name (`dead-letter-topic` or
/// `dead_letter_topic`), as the flag itself declares it: one table of names for all three ways.
pub fn env_of(key: &str) -> Option<String> {
    env_of_flag::<IngestArgs>(key)
}

/// The environment variable of a flag of any settings struct, by its long name.
pub fn env_of_flag<A: clap::Args>(key: &str) -> Option<String> {
    let cmd = A::augment_args(clap::Command::new("settings"));
    let key = key.replace('_', "-");
    cmd.get_arguments()
        .find(|a| a.get_long() == Some(key.as_str()))
        .and_then(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
}

/// The settings of a config file, as (flag name, value) pairs: arrays are joined with commas;
/// a `[kafka-property]` table gives `key=value` items.
pub fn config_env(text: &str) -> Result<Vec<(String, String)>> {
    let table: toml::Table = text.parse().context("not valid TOML")?;
    let mut out = Vec::new();
    for (name, value) in table {
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(scalar)
                .collect::<Result<Vec<_>>>()?
                .join(","),
            toml::Value::Table(t) => t
                .iter()
                .map(|(k, v)| Ok(format!("{k}={}", scalar(v)?)))
                .collect::<Result<Vec<_>>>()?
                .join(","),
            toml::Value::Datetime(d) => d.to_string(),
        };
        out.push((name, text));
    }
    Ok(out)
}

fn scalar(v: &toml::Value) -> Result<String> {
    Ok(match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        _ => bail!("only strings, numbers and booleans can be listed"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys_become_environment_variables() {
        let env = config_env(
            r#"
            source = "file"
            dead-letter-topic = "dl"
            max_in_flight = 10
            include-service-principals = true
            input = ["a.jsonl", "b.jsonl"]
            [kafka-property]
            "linger.ms" = 5
            "sasl.password" = "pw"
            "#,
        )
        .unwrap();
        let get = |k: &str| {
            env.iter()
                .find(|(n, _)| env_of(n).as_deref() == Some(k))
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("MFAGAP_SOURCE"), Some("file"));
        assert_eq!(get("MFAGAP_DEAD_LETTER_TOPIC"), Some("dl"));
        assert_eq!(get("MFAGAP_MAX_IN_FLIGHT"), Some("10"));
        assert_eq!(get("MFAGAP_INCLUDE_SERVICE_PRINCIPALS"), Some("true"));
        assert_eq!(get("MFAGAP_INPUT"), Some("a.jsonl,b.jsonl"));
        assert_eq!(
            get("MFAGAP_KAFKA_PROPERTIES"),
            Some("linger.ms=5,sasl.password=pw")
        );
    }

    #[test]
    fn every_flag_has_an_environment_variable_that_a_config_key_reaches() {
        use clap::Args;
        let cmd = IngestArgs::augment_args(clap::Command::new("ingest"));
        for a in cmd.get_arguments() {
            let Some(long) = a.get_long() else { continue };
            let env = env_of(long).unwrap_or_else(|| panic!("--{long} has no variable"));
            assert!(env.starts_with("MFAGAP_"), "{env}");
        }
        assert_eq!(
            env_of("bootstrap").as_deref(),
            Some("MFAGAP_KAFKA_BOOTSTRAP")
        );
        assert_eq!(
            env_of("kafka_property").as_deref(),
            Some("MFAGAP_KAFKA_PROPERTIES")
        );
        assert_eq!(env_of("no-such-setting"), None);
    }

    #[test]
    fn a_bad_config_file_is_a_clear_error() {
        assert!(config_env("source = ").is_err());
        assert!(config_env("x = [[1]]").is_err());
    }
}
