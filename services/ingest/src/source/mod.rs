//! Where message bodies come from: one small interface, one folder per input.
//!
//! A source hands out Event Hubs message bodies with their coordinates and, when the sink says
//! everything before a position is safely delivered (see `sink`), persists that position where
//! it belongs (a Kafka offset commit, an Event Hubs checkpoint). Sources never look inside a
//! body: decoding and the rule are the core's.
//!
//! Each source is a folder: its settings (`config.rs`: the flags under its own `--help`
//! heading, and the library settings they become), its implementation with a `build()` from
//! settings to a running source, and its tests. Adding a source is one folder, one
//! [`SourceKind`] variant and one arm in [`build`].

pub mod capture;
pub(crate) mod connection;
pub mod eventhubs;
pub mod file;
pub mod graph;
pub mod kafka;

use anyhow::Result;
use mfagap_core::Source as Origin;
use mfagap_runtime::Secret;

/// One message body as delivered, with where it came from.
#[derive(Debug, Clone)]
pub struct Message {
    /// The message body, untouched: what the core decodes and a dead letter keeps.
    pub body: Vec<u8>,
    /// The partition's name, unique within the source (e.g. `topic/3`, a file path).
    pub partition: String,
    /// The position within the partition: Kafka offset, Event Hubs sequence number, file line.
    pub position: i64,
    /// The coordinates that go into the output record's `source` and dead-letter headers.
    pub origin: Origin<'static>,
    /// What the source needs to resume right after this message, when its position alone
    /// is not enough (Event Hubs: the event's sequence number and offset; a file: the byte
    /// after the line). Exactly-once delivery commits it with the position.
    pub resume: Option<serde_json::Value>,
}

/// An input of the ingest pipeline.
#[async_trait::async_trait]
pub trait Source: Send {
    /// The next message; `None` when a finite input is exhausted. Cancel-safe: the pipeline
    /// selects on it beside its ticks and the stop signal.
    async fn next(&mut self) -> Result<Option<Message>>;

    /// Why the body the last [`Source::next`] returned is not whole, if it is not: a source
    /// that frames bodies itself (files) keeps only a bounded prefix of one over the largest
    /// size, and the pipeline makes it a dead letter.
    fn problem(&mut self) -> Option<mfagap_core::framing::Problem> {
        None
    }

    /// Persists resume points the sink released: for each partition, every position before
    /// the one given has been delivered.
    fn commit(&mut self, points: &[(String, i64)]) -> Result<()>;

    /// Partitions this replica lost since the last call (rebalance).
    fn revoked(&mut self) -> Vec<String> {
        Vec::new()
    }

    /// Messages not yet read, per partition, where the source knows it. Called on every tick
    /// of the pipeline, so it answers from what the source already knows, never by asking
    /// the broker.
    fn lag(&mut self) -> Vec<(String, i64)> {
        Vec::new()
    }

    /// Called once when the pipeline stops: persist the last positions and release what the
    /// source holds (partitions, connections).
    async fn close(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Which input to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceKind {
    /// Event Hubs over AMQP: partitions shared among replicas, checkpoints in Blob storage.
    Eventhubs,
    /// Event Hubs through its Kafka endpoint, or any Kafka topic.
    Kafka,
    /// Files or standard input: JSON Lines or one JSON document, plain, gzip or zstd.
    File,
    /// Event Hubs Capture files (Avro), on disk or in Blob storage / ADLS Gen2: a replay.
    Capture,
    /// Microsoft Graph's sign-in list: a window of the last 30 days, then optionally new ones.
    Graph,
}

/// `--source`: which input, and for `capture` optionally where (`capture:PATH|URL`, short
/// for `--source capture --capture PATH|URL`, as `mfagap run` spells it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    /// Which input.
    pub kind: SourceKind,
    /// The capture location given with the kind.
    pub location: Option<String>,
}

impl From<SourceKind> for SourceSpec {
    fn from(kind: SourceKind) -> SourceSpec {
        SourceSpec {
            kind,
            location: None,
        }
    }
}

impl std::str::FromStr for SourceSpec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<SourceSpec, String> {
        use clap::ValueEnum;
        if let Some(location) = s.strip_prefix("capture:") {
            let location = location.trim();
            if location.is_empty() {
                return Err(
                    "capture: needs a path or URL, e.g. capture:./capture or capture:az://container/prefix".into(),
                );
            }
            return Ok(SourceSpec {
                kind: SourceKind::Capture,
                location: Some(location.to_owned()),
            });
        }
        SourceKind::from_str(s, true)
            .map(SourceSpec::from)
            .map_err(|_| {
                format!(
                    "not a source: {s:?} (eventhubs, kafka, file, capture, capture:PATH|URL or graph)"
                )
            })
    }
}

/// Where a partition without a committed position starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest event retained.
    Earliest,
    /// Only events that arrive from now on.
    Latest,
    /// Events enqueued at or after this time (the `eventhubs` source).
    Time(std::time::SystemTime),
}

impl std::str::FromStr for StartAt {
    type Err = String;

    /// `earliest`, `latest`, or an RFC 3339 time such as `2026-11-01T00:00:00Z`.
    fn from_str(s: &str) -> std::result::Result<StartAt, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "earliest" => Ok(StartAt::Earliest),
            "latest" => Ok(StartAt::Latest),
            _ => chrono::DateTime::parse_from_rfc3339(s.trim())
                .map(|t| StartAt::Time(t.with_timezone(&chrono::Utc).into()))
                .map_err(|_| {
                    format!(
                        "{s:?} is not earliest, latest or an RFC 3339 time (2026-11-01T00:00:00Z)"
                    )
                }),
        }
    }
}

/// The flags every source shares, and each source's own, under their `--help` headings.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Source")]
pub struct SourceArgs {
    /// Where message bodies come from: eventhubs, kafka, file, capture (capture:PATH|URL
    /// is short for --source capture --capture PATH|URL), or graph (Microsoft Graph's
    /// sign-in list).
    #[arg(
        long = "source",
        value_name = "SOURCE",
        env = "MFAGAP_SOURCE",
        default_value = "kafka"
    )]
    pub kind: SourceSpec,
    /// Event Hubs and Kafka sources: the consumer group (create a dedicated one in Event Hubs).
    #[arg(
        long,
        value_name = "GROUP",
        env = "MFAGAP_CONSUMER_GROUP",
        default_value = "mfagap-ingest"
    )]
    pub consumer_group: String,
    /// Event Hubs namespace (or event hub) connection string, for the eventhubs source or the
    /// namespace's Kafka endpoint; prefer the environment variable.
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
    /// The largest message body in bytes, from any source: a larger event, line or array
    /// element is a dead letter `too_large` (its size in the headers, its first 64 KiB as the
    /// payload) and the pipeline goes on. The default, 20 MiB, is what an Event Hubs
    /// Dedicated event may carry; Standard and Premium allow 1 MiB.
    #[arg(long, value_name = "BYTES", env = "MFAGAP_MAX_MESSAGE_BYTES", default_value_t = mfagap_core::framing::DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,
    /// The `file` source's flags.
    #[command(flatten)]
    pub file: file::FileArgs,
    /// The `kafka` source's flags.
    #[command(flatten)]
    pub kafka: kafka::KafkaArgs,
    /// The `eventhubs` source's flags.
    #[command(flatten)]
    pub eventhubs: eventhubs::EventHubsArgs,
    /// The `capture` source's flags.
    #[command(flatten)]
    pub capture: capture::CaptureArgs,
    /// The `graph` source's flags.
    #[command(flatten)]
    pub graph: graph::GraphArgs,
}

/// The chosen source's settings, checked.
#[derive(Debug, Clone)]
pub enum SourceSettings {
    /// `--source file`.
    File(file::FileSettings),
    /// `--source kafka`.
    Kafka(kafka::KafkaSettings),
    /// `--source eventhubs` (boxed: far larger than the others).
    Eventhubs(Box<eventhubs::EventHubsSettings>),
    /// `--source capture`.
    Capture(capture::CaptureSettings),
    /// `--source graph`.
    Graph(graph::GraphSettings),
}

impl SourceArgs {
    /// The settings of the source `--source` names; errors name the missing or wrong flag.
    pub fn settings(&self) -> Result<SourceSettings> {
        Ok(match self.kind.kind {
            SourceKind::File => SourceSettings::File(self.file.settings(self.max_message_bytes)),
            SourceKind::Kafka => SourceSettings::Kafka(self.kafka.settings(self)?),
            SourceKind::Eventhubs => {
                SourceSettings::Eventhubs(Box::new(self.eventhubs.settings(self)?))
            }
            SourceKind::Capture => {
                SourceSettings::Capture(self.capture.settings(self.kind.location.as_deref())?)
            }
            SourceKind::Graph => SourceSettings::Graph(self.graph.settings()?),
        })
    }
}

/// An object-store builder for an Azure container URL (the environment's account and
/// credentials first, then `options`: `key=value` as `object_store` names them), shared by
/// the Event Hubs checkpoint store and the capture source. A value never shows in an error.
pub(crate) fn azure_builder(
    location: &str,
    options: &[mfagap_runtime::Property],
) -> Result<object_store::azure::MicrosoftAzureBuilder> {
    use anyhow::Context;
    let mut b = object_store::azure::MicrosoftAzureBuilder::from_env().with_url(location);
    for p in options {
        let key: object_store::azure::AzureConfigKey = p.key.parse().with_context(|| {
            format!(
                "unknown Azure storage option {}",
                mfagap_runtime::secret::display_property(&p.key, p.value.expose())
            )
        })?;
        b = b.with_config(key, p.value.expose());
    }
    Ok(b)
}

/// Starts the source the settings describe.
pub fn build(settings: &SourceSettings) -> Result<Box<dyn Source>> {
    Ok(match settings {
        SourceSettings::File(s) => Box::new(file::build(s)?),
        SourceSettings::Kafka(s) => Box::new(kafka::build(s)?),
        SourceSettings::Eventhubs(s) => Box::new(eventhubs::build(s, None)?),
        SourceSettings::Capture(s) => Box::new(capture::build(s)?),
        SourceSettings::Graph(s) => Box::new(graph::build(s)?),
    })
}

#[async_trait::async_trait]
impl<S: Source + ?Sized> Source for Box<S> {
    async fn next(&mut self) -> Result<Option<Message>> {
        (**self).next().await
    }
    fn problem(&mut self) -> Option<mfagap_core::framing::Problem> {
        (**self).problem()
    }
    fn commit(&mut self, points: &[(String, i64)]) -> Result<()> {
        (**self).commit(points)
    }
    fn revoked(&mut self) -> Vec<String> {
        (**self).revoked()
    }
    fn lag(&mut self) -> Vec<(String, i64)> {
        (**self).lag()
    }
    async fn close(&mut self) -> Result<()> {
        (**self).close().await
    }
}
