//! Where message bodies come from: one small interface, several inputs.
//!
//! A source hands out Event Hubs message bodies with their coordinates and, when the pipeline
//! says everything before a position is safely in Kafka, persists that position (a Kafka offset
//! commit, an Event Hubs checkpoint). Sources never look inside a body: decoding and the rule
//! are the core's.

pub mod eventhubs;
pub mod file;
pub mod kafka;

use anyhow::Result;
use mfagap_core::Source as Origin;
use std::future::Future;

/// One message body as delivered, with where it came from.
#[derive(Debug, Clone)]
pub struct Message {
    pub body: Vec<u8>,
    /// The partition's name, unique within the source (e.g. `topic/3`, a file path).
    pub partition: String,
    /// The position within the partition: Kafka offset, Event Hubs sequence number, file line.
    pub position: i64,
    /// The coordinates that go into the output record's `source` and dead-letter headers.
    pub origin: Origin<'static>,
}

/// An input of the ingest pipeline.
pub trait Source: Send {
    /// The next message; `None` when a finite input is exhausted.
    fn next(&mut self) -> impl Future<Output = Result<Option<Message>>> + Send;

    /// Persists resume points: for each partition, every position before the one given has
    /// been delivered.
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
    fn close(&mut self) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
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
