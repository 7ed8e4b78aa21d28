//! Settings of the `kafka` source: the namespace's Kafka endpoint, or any Kafka.

use crate::source::{SourceArgs, StartAt};
use anyhow::{Result, bail};
use mfagap_runtime::{Property, Secret};

/// The Kafka source's own flags (the consumer group, the connection string and the start
/// position are the shared source flags).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Kafka source")]
pub struct KafkaArgs {
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
}

/// Where a partition without a committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    /// The oldest record the topic retains.
    Earliest,
    /// Only records produced from now on.
    Latest,
}

/// The Kafka source's settings, checked.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// Bootstrap servers; derived from the connection string when absent.
    pub bootstrap: Option<String>,
    /// Topics (event hubs); the connection string's EntityPath when empty.
    pub topics: Vec<String>,
    /// The consumer group whose offsets are the resume points.
    pub group: String,
    /// An Event Hubs connection string: SASL PLAIN to the namespace's Kafka endpoint.
    pub connection_string: Option<Secret>,
    /// Where a partition without a committed offset starts.
    pub start: StartPosition,
    /// librdkafka properties passed through (`-S key=value`), applied last.
    pub properties: Vec<Property>,
}

impl KafkaArgs {
    /// The settings, checked; an error names the flag to fix.
    pub fn settings(&self, shared: &SourceArgs) -> Result<KafkaSettings> {
        Ok(KafkaSettings {
            bootstrap: self.source_bootstrap.clone(),
            topics: self.source_topics.clone(),
            group: shared.consumer_group.clone(),
            connection_string: shared.eventhubs_connection_string.clone(),
            start: match shared.start_position {
                StartAt::Earliest => StartPosition::Earliest,
                StartAt::Latest => StartPosition::Latest,
                StartAt::Time(_) => bail!(
                    "--start-position TIME needs --source eventhubs; the kafka source starts at earliest or latest"
                ),
            },
            properties: self.source_properties.clone(),
        })
    }
}
