//! Settings of the ingest service: the flags (with their `MFAGAP_…` variables and `--config`
//! keys) and the library settings they become.
//!
//! [`IngestArgs`] is what clap parses, in groups that `--help` shows under their own headings:
//! the source (shared flags and each source's own, see `source`), the Kafka output, the rule,
//! delivery, and the service's endpoint and logs. [`IngestArgs::settings`] checks them and
//! gives [`IngestSettings`], which is all [`crate::run`] takes: the library never sees clap.

use crate::pipeline::{OutputTopic, PipelineSettings};
use crate::positions::PositionsTopic;
use crate::sink::ExactlyOnceSettings;
use crate::source::{SourceArgs, SourceSettings};
use anyhow::Result;
use mfagap_core::encode::{EncoderOptions, Format, OcsfVersion};
use mfagap_runtime::kafka::ProducerSettings;
use mfagap_runtime::{LogFormat, Property};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Every flag of the ingest service.
#[derive(Debug, Clone, clap::Args)]
pub struct IngestArgs {
    /// A TOML file of settings (keys as the long flags, e.g. `topic = "x"`); flags and
    /// environment variables take precedence.
    #[arg(long, value_name = "FILE", env = "MFAGAP_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where message bodies come from.
    #[command(flatten)]
    pub source: SourceArgs,
    /// Where sign-ins and dead letters go.
    #[command(flatten)]
    pub output: OutputArgs,
    /// The rule's settings.
    #[command(flatten)]
    pub rule: RuleArgs,
    /// In-flight bounds and commit timing.
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    /// The metrics and health endpoint, and logs.
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// Where the sign-ins without MFA and the dead letters go.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Kafka output")]
pub struct OutputArgs {
    /// Output Kafka bootstrap servers.
    #[arg(
        long,
        value_name = "HOST:PORT",
        env = "MFAGAP_KAFKA_BOOTSTRAP",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap: String,
    /// Topic of the sign-ins without MFA [default: entra.signins.nonmfa, with .ocsf or .ecs
    /// after it for those formats].
    #[arg(long, value_name = "TOPIC", env = "MFAGAP_TOPIC")]
    pub topic: Option<String>,
    /// Shape of the records on --topic: native (mfagap's record, what the archiver reads),
    /// ocsf (OCSF Authentication) or ecs (Elastic Common Schema).
    #[arg(
        long,
        value_name = "FORMAT",
        env = "MFAGAP_FORMAT",
        default_value = "native"
    )]
    pub format: Format,
    /// OCSF schema version of the ocsf outputs: 1.8.0 (the newest) or 1.1.0 (what Amazon
    /// Security Lake validates custom sources against).
    #[arg(
        long,
        value_name = "VERSION",
        env = "MFAGAP_OCSF_VERSION",
        default_value = "1.8.0"
    )]
    pub ocsf_version: OcsfVersion,
    /// One more output, beside --topic (repeatable): FORMAT[:TOPIC][@DELIVERY], e.g.
    /// `ocsf`, `ecs:siem.entra@at-least-once`; the topic defaults as --topic's does, the
    /// delivery to --delivery. One decode and one verdict per sign-in, one encoding per
    /// output.
    #[arg(
        long,
        value_name = "SPEC",
        env = "MFAGAP_EXTRA_OUTPUTS",
        value_delimiter = ','
    )]
    pub extra_output: Vec<OutputSpec>,
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
}

/// One output beside the main one: `FORMAT[:TOPIC][@DELIVERY]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    /// The encoding.
    pub format: Format,
    /// The topic; `None`: the format's default name.
    pub topic: Option<String>,
    /// `None`: as `--delivery` says.
    pub delivery: Option<DeliveryMode>,
}

impl std::str::FromStr for OutputSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<OutputSpec, String> {
        let (rest, delivery) = match s.trim().split_once('@') {
            Some((rest, d)) => {
                let d =
                    <DeliveryMode as clap::ValueEnum>::from_str(d.trim(), true).map_err(|_| {
                        format!("{s:?}: not a delivery: {d:?} (exactly-once, at-least-once, auto)")
                    })?;
                (rest, Some(d))
            }
            None => (s.trim(), None),
        };
        // A colon cannot be part of a Kafka topic name, so it cannot be misread.
        let (format, topic) = match rest.split_once(':') {
            Some((f, t)) if !t.trim().is_empty() => (f, Some(t.trim().to_owned())),
            Some((_, _)) => return Err(format!("{s:?}: empty topic after ':'")),
            None => (rest, None),
        };
        Ok(OutputSpec {
            format: format.parse().map_err(|e| format!("{s:?}: {e}"))?,
            topic,
            delivery,
        })
    }
}

/// The rule's operator settings.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Classification")]
pub struct RuleArgs {
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
    /// Messages decoded and classified at once, each on a thread of its own; 0 uses every
    /// core. Records keep their partition's order whatever the number.
    #[arg(long, value_name = "N", default_value_t = 0, env = "MFAGAP_THREADS")]
    pub threads: usize,
}

impl RuleArgs {
    /// `--threads`, with 0 resolved to the cores this process may use.
    pub fn threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }

    /// The classifier these flags describe.
    pub fn classifier(&self) -> mfagap_core::Classifier {
        mfagap_core::Classifier::new(mfagap_core::ClassifierConfig::from_options(
            self.include_service_principals,
            self.legacy_clients.as_deref(),
        ))
    }
}

/// What the output promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeliveryMode {
    /// Exactly once when the output Kafka supports transactions; at least once otherwise.
    Auto,
    /// Transactions: the records, the dead letters and the source positions they came from
    /// are committed together; read_committed consumers see each sign-in once.
    ExactlyOnce,
    /// An idempotent producer; positions move behind acknowledgements, and a crash or a
    /// partition move may write a record twice.
    AtLeastOnce,
}

/// How much is in flight and how often positions are persisted.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Delivery")]
pub struct DeliveryArgs {
    /// What the output promises (see README, Delivery guarantees).
    #[arg(long, value_enum, env = "MFAGAP_DELIVERY", default_value = "auto")]
    pub delivery: DeliveryMode,
    /// Exactly once: the compacted topic of Event Hubs and file positions (created if absent).
    #[arg(
        long,
        value_name = "TOPIC",
        env = "MFAGAP_POSITIONS_TOPIC",
        default_value = "entra.signins.positions"
    )]
    pub positions_topic: String,
    /// Exactly once: a transaction is committed once it has been open this long (within a
    /// quarter of it): the latency it adds.
    #[arg(long, value_name = "DURATION", env = "MFAGAP_TRANSACTION_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub transaction_interval: Duration,
    /// Exactly once: … or once it holds this many source messages.
    #[arg(
        long,
        value_name = "N",
        env = "MFAGAP_TRANSACTION_MESSAGES",
        default_value_t = 2000
    )]
    pub transaction_messages: usize,
    /// Exactly once: how long a transaction may stay open before the broker aborts it. It
    /// bounds how long a replica that crashed mid-transaction holds back every
    /// read_committed reader (the archiver, a replica taking over) — and a commit slowed
    /// past it by the broker fails, and the service restarts.
    #[arg(long, value_name = "DURATION", env = "MFAGAP_TRANSACTION_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub transaction_timeout: Duration,
    /// Exactly once: the first part of the transactional ids (one per replica, and one per
    /// Event Hubs partition).
    #[arg(
        long,
        value_name = "PREFIX",
        env = "MFAGAP_TRANSACTIONAL_ID_PREFIX",
        default_value = "mfagap"
    )]
    pub transactional_id_prefix: String,
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
}

/// The service's own endpoint and logs.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Service")]
pub struct ServiceArgs {
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

/// Everything the ingest service runs on, checked.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// The input, checked.
    pub source: SourceSettings,
    /// The output cluster.
    pub producer: ProducerSettings,
    /// Topics, format, rule and timing of the pipeline.
    pub pipeline: PipelineSettings,
    /// Messages read but not yet delivered, at most (at least once).
    pub max_in_flight: usize,
    /// What the output promises.
    pub delivery: DeliveryMode,
    /// How transactions run, when they do.
    pub exactly_once: ExactlyOnceSettings,
    /// Address of `/metrics` and the health endpoints (port 0: any free port).
    pub listen: SocketAddr,
}

impl IngestArgs {
    /// The settings, checked; an error names the flag to fix.
    pub fn settings(&self) -> Result<IngestSettings> {
        self.output.check()?;
        Ok(IngestSettings {
            source: self.source.settings()?,
            producer: self.output.producer(),
            pipeline: self.pipeline(),
            max_in_flight: self.delivery.max_in_flight,
            delivery: self.delivery.delivery,
            exactly_once: ExactlyOnceSettings {
                cluster: self.output.producer(),
                transactional_id_prefix: self.delivery.transactional_id_prefix.clone(),
                interval: self.delivery.transaction_interval,
                max_messages: self.delivery.transaction_messages.max(1),
                timeout: self.delivery.transaction_timeout,
                positions: PositionsTopic {
                    topic: self.delivery.positions_topic.clone(),
                    cluster: self.output.producer(),
                    count: Default::default(),
                },
            },
            listen: self.service.listen,
        })
    }

    /// The pipeline's settings, the same whichever source feeds it.
    pub fn pipeline(&self) -> PipelineSettings {
        PipelineSettings {
            processor: mfagap_core::Processor::new(self.rule.classifier()),
            outputs: self.output.outputs(),
            dead_letter_topic: self.output.dead_letter_topic.clone(),
            dedup_window: self.rule.dedup_window,
            max_message_bytes: self.source.max_message_bytes,
            commit_interval: self.delivery.commit_interval,
            grace_period: self.delivery.grace_period,
            threads: self.rule.threads(),
        }
    }
}

impl OutputArgs {
    /// The main output's topic: `--topic`, else its format's default name.
    pub fn topic(&self) -> String {
        self.topic
            .clone()
            .unwrap_or_else(|| self.format.default_topic().to_owned())
    }

    /// Every output: the main one, then each `--extra-output` in order.
    pub fn outputs(&self) -> Vec<OutputTopic> {
        let options = EncoderOptions {
            ocsf_version: self.ocsf_version,
        };
        let main = OutputTopic {
            topic: self.topic(),
            format: self.format,
            encoder: Arc::from(self.format.encoder(options)),
            delivery: None,
        };
        std::iter::once(main)
            .chain(self.extra_output.iter().map(|o| {
                OutputTopic {
                    topic: o
                        .topic
                        .clone()
                        .unwrap_or_else(|| o.format.default_topic().to_owned()),
                    format: o.format,
                    encoder: Arc::from(o.format.encoder(options)),
                    delivery: o.delivery,
                }
            }))
            .collect()
    }

    /// Two outputs on one topic would mix shapes a consumer cannot tell apart.
    pub fn check(&self) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for o in self.outputs() {
            if o.topic == self.dead_letter_topic {
                anyhow::bail!(
                    "the {} output's topic {} is the dead-letter topic (--topic, --extra-output, --dead-letter-topic)",
                    o.format,
                    o.topic
                );
            }
            if !seen.insert(o.topic.clone()) {
                anyhow::bail!(
                    "two outputs write to topic {}: give each its own (--topic, --extra-output FORMAT:TOPIC)",
                    o.topic
                );
            }
        }
        Ok(())
    }

    /// The output cluster's producer settings.
    pub fn producer(&self) -> ProducerSettings {
        ProducerSettings {
            bootstrap: self.bootstrap.clone(),
            compression: self.compression.clone(),
            properties: self.kafka_properties.clone(),
        }
    }
}

/// The environment variable of an ingest flag, by its long name (for the config file).
pub fn env_of(key: &str) -> Option<String> {
    mfagap_runtime::config::env_of_flag::<IngestArgs>(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_has_an_environment_variable_that_a_config_key_reaches() {
        use clap::Args;
        let cmd = IngestArgs::augment_args(clap::Command::new("ingest"));
        let mut n = 0;
        for a in cmd.get_arguments() {
            let Some(long) = a.get_long() else { continue };
            let env = env_of(long).unwrap_or_else(|| panic!("--{long} has no variable"));
            assert!(env.starts_with("MFAGAP_"), "{env}");
            n += 1;
        }
        assert!(n > 30, "the groups are all flattened in: {n} flags");
        assert_eq!(
            env_of("bootstrap").as_deref(),
            Some("MFAGAP_KAFKA_BOOTSTRAP")
        );
        assert_eq!(
            env_of("kafka_property").as_deref(),
            Some("MFAGAP_KAFKA_PROPERTIES")
        );
        assert_eq!(
            env_of("checkpoint-store").as_deref(),
            Some("MFAGAP_CHECKPOINT_STORE")
        );
        assert_eq!(env_of("input").as_deref(), Some("MFAGAP_INPUT"));
        assert_eq!(env_of("no-such-setting"), None);
    }

    #[test]
    fn a_source_is_checked_only_when_chosen() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: IngestArgs,
        }
        let file = Cli::parse_from(["ingest", "--source", "file", "--input", "a.jsonl"]);
        assert!(matches!(
            file.args.settings().unwrap().source,
            SourceSettings::File(ref f) if f.inputs == [PathBuf::from("a.jsonl")]
        ));
        let capture = Cli::parse_from(["ingest", "--source", "capture"]);
        let e = capture.args.settings().unwrap_err();
        assert!(format!("{e:#}").contains("--capture"), "{e:#}");
        let capture = Cli::parse_from(["ingest", "--source", "capture", "--capture", "az://c/ns"]);
        assert!(matches!(
            capture.args.settings().unwrap().source,
            SourceSettings::Capture(ref c) if c.location == "az://c/ns"
        ));
        // `capture:LOCATION` is short for both flags, as `mfagap run` spells it.
        let capture = Cli::parse_from(["ingest", "--source", "capture:./capture/ns"]);
        assert!(matches!(
            capture.args.settings().unwrap().source,
            SourceSettings::Capture(ref c) if c.location == "./capture/ns"
        ));
        let both = Cli::parse_from(["ingest", "--source", "capture:a", "--capture", "b"]);
        let e = both.args.settings().unwrap_err();
        assert!(format!("{e:#}").contains("two capture locations"), "{e:#}");
        for bad in ["capture:", "capture: ", "files", "file:a.jsonl"] {
            let e = Cli::try_parse_from(["ingest", "--source", bad]).err();
            assert!(e.is_some(), "{bad} was taken");
        }
        let eh = Cli::parse_from(["ingest", "--source", "eventhubs"]);
        let e = eh.args.settings().unwrap_err();
        assert!(format!("{e:#}").contains("--eventhubs-namespace"), "{e:#}");
        let kafka = Cli::parse_from([
            "ingest",
            "--source",
            "kafka",
            "--start-position",
            "2026-01-01T00:00:00Z",
        ]);
        let e = kafka.args.settings().unwrap_err();
        assert!(format!("{e:#}").contains("--source eventhubs"), "{e:#}");
    }

    #[test]
    fn an_extra_output_names_its_format_then_maybe_a_topic_and_a_delivery() {
        let spec = |s: &str| s.parse::<OutputSpec>();
        assert_eq!(
            spec("ocsf").unwrap(),
            OutputSpec {
                format: Format::Ocsf,
                topic: None,
                delivery: None
            }
        );
        assert_eq!(
            spec("ECS:siem.entra@at-least-once").unwrap(),
            OutputSpec {
                format: Format::Ecs,
                topic: Some("siem.entra".into()),
                delivery: Some(DeliveryMode::AtLeastOnce)
            }
        );
        assert_eq!(
            spec("native@exactly-once").unwrap().delivery,
            Some(DeliveryMode::ExactlyOnce)
        );
        assert!(spec("cef").unwrap_err().contains("not a format"));
        assert!(spec("ocsf@twice").unwrap_err().contains("not a delivery"));
        assert!(spec("ocsf:").unwrap_err().contains("empty topic"));
    }

    #[test]
    fn each_output_gets_its_own_topic_named_after_its_format_by_default() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: IngestArgs,
        }
        let parse = |extra: &[&str]| {
            let mut argv = vec!["ingest"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv).unwrap().args
        };
        let a = parse(&[
            "--extra-output",
            "ocsf",
            "--extra-output",
            "ecs:siem@at-least-once",
        ]);
        let outputs = a.output.outputs();
        let got: Vec<(&str, Format, Option<DeliveryMode>)> = outputs
            .iter()
            .map(|o| (o.topic.as_str(), o.format, o.delivery))
            .collect();
        assert_eq!(
            got,
            vec![
                ("entra.signins.nonmfa", Format::Native, None),
                ("entra.signins.nonmfa.ocsf", Format::Ocsf, None),
                ("siem", Format::Ecs, Some(DeliveryMode::AtLeastOnce)),
            ]
        );
        assert!(a.output.check().is_ok());
        assert_eq!(
            parse(&["--format", "ecs"]).output.topic(),
            "entra.signins.nonmfa.ecs"
        );
        let twice = parse(&["--extra-output", "ocsf", "--extra-output", "ocsf"]);
        assert!(
            twice
                .output
                .check()
                .unwrap_err()
                .to_string()
                .contains("two outputs write to topic")
        );
        let dead = parse(&["--extra-output", "ecs:entra.signins.deadletter"]);
        assert!(
            dead.output
                .check()
                .unwrap_err()
                .to_string()
                .contains("dead-letter")
        );
    }
}
