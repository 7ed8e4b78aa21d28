//! Whether partition receivers are alive, and how far behind they are.
//!
//! A receiver whose connection was recovered by the SDK can end up attached to nothing: no
//! error, no events. Silence alone proves nothing (a quiet partition is silent too), so the
//! watchdog asks the service, on a management connection of its own, for each owned
//! partition's last sequence number. A partition with events waiting, a pump not held back by
//! the pipeline, and nothing received for the stall timeout is stuck: the supervisor opens
//! everything again. The same answers give the consumer lag.
//!
//! Before a partition has passed anything on, what waits is counted from where its receiver
//! started: its checkpoint, read from the store when the question arises, or else the start
//! position. So a receiver that never delivers its first event is caught too. When neither
//! is known (a start at an enqueued time, or the store does not answer), the partition is not
//! judged: a receiver opened again for nothing would cost more than one left waiting.

use super::Shared;
use super::checkpoint_store::BlobCheckpointStore;
use super::checkpointer::Scope;
use super::connect::{Target, causes};
use anyhow::Result;
use azure_messaging_eventhubs::{CheckpointStore, ConsumerClient, StartLocation, StartPosition};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Where a partition without a checkpoint starts reading, as the processor was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    /// From the oldest event retained.
    Earliest,
    /// After this sequence number (`latest`, pinned when the processor opened).
    After(i64),
    /// From an enqueued time: which sequence number that is, only the service knows.
    Unknown,
}

impl Start {
    /// What the processor's start position for a partition means for the watchdog.
    pub(super) fn of(position: &StartPosition) -> Start {
        match (&position.location, position.inclusive) {
            (StartLocation::Earliest, _) => Start::Earliest,
            (StartLocation::SequenceNumber(s), false) => Start::After(*s),
            (StartLocation::SequenceNumber(s), true) => Start::After(s - 1),
            _ => Start::Unknown,
        }
    }
}

/// Polls partition properties for lag and liveness.
pub(super) struct Watchdog {
    client: ConsumerClient,
    stall: Duration,
    store: Arc<BlobCheckpointStore>,
    scope: Scope,
}

impl Watchdog {
    pub(super) async fn open(
        target: &Target,
        instance: &str,
        stall: Duration,
        store: Arc<BlobCheckpointStore>,
    ) -> Result<Watchdog> {
        let client = target.open(&format!("{instance}-watchdog")).await?;
        let scope = Scope {
            namespace: target.namespace.clone(),
            event_hub: target.event_hub.clone(),
            consumer_group: target.consumer_group.clone(),
        };
        Ok(Watchdog {
            client,
            stall,
            store,
            scope,
        })
    }

    /// The sequence number of every partition's checkpoint, or `None` if the store fails.
    async fn checkpoints(&self) -> Option<HashMap<String, i64>> {
        let listed = tokio::time::timeout(
            Duration::from_secs(10),
            self.store.list_checkpoints(
                &self.scope.namespace,
                &self.scope.event_hub,
                &self.scope.consumer_group,
            ),
        )
        .await;
        match listed {
            Ok(Ok(list)) => Some(
                list.into_iter()
                    .filter_map(|c| Some((c.partition_id, c.sequence_number?)))
                    .collect(),
            ),
            Ok(Err(e)) => {
                tracing::debug!(error = %causes(&e), "cannot read checkpoints");
                None
            }
            Err(_) => None,
        }
    }

    /// How often to look.
    pub(super) fn period(&self) -> Duration {
        (self.stall / 2).max(Duration::from_secs(1))
    }

    /// Updates the lag of every owned partition; names a stuck one, or the failure to ask.
    pub(super) async fn check(&self, shared: &Shared) -> Option<String> {
        let owned: Vec<String> = shared.owned_now().into_keys().collect();
        let mut failures = 0;
        // Read at most once per look, and only for partitions that have passed nothing on.
        let mut checkpoints: Option<Option<HashMap<String, i64>>> = None;
        for id in owned {
            let asked = tokio::time::timeout(
                Duration::from_secs(10),
                self.client.get_partition_properties(&id),
            )
            .await;
            let props = match asked {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => {
                    tracing::debug!(partition = %id, error = %causes(&e), "cannot read partition properties");
                    failures += 1;
                    continue;
                }
                Err(_) => {
                    failures += 1;
                    continue;
                }
            };
            let progress = shared
                .progress
                .lock()
                .expect("not poisoned")
                .get(&id)
                .cloned();
            let Some(p) = progress else { continue };
            let after = match p.forwarded {
                Some(f) => Some(f),
                None => {
                    if checkpoints.is_none() {
                        checkpoints = Some(self.checkpoints().await);
                    }
                    let start = shared
                        .starts
                        .lock()
                        .expect("not poisoned")
                        .get(&id)
                        .copied();
                    match checkpoints.as_ref().and_then(Option::as_ref) {
                        Some(c) => started_after(
                            c.get(&id).copied(),
                            start,
                            props.beginning_sequence_number,
                        ),
                        None => None,
                    }
                }
            };
            let Some(after) = after else {
                continue;
            };
            let last = props.last_enqueued_sequence_number;
            let lag = if props.is_empty {
                0
            } else {
                (last - after).max(0)
            };
            shared
                .lag
                .lock()
                .expect("not poisoned")
                .insert(id.clone(), lag);
            let quiet = Instant::now().duration_since(p.at);
            if lag > 0 && !p.sending && quiet >= self.stall {
                return Some(format!(
                    "partition {id} received nothing for {quiet:?} with {lag} events waiting"
                ));
            }
        }
        (failures > 0 && failures == shared.owned_now().len())
            .then(|| "the management connection does not answer".to_owned())
    }

    pub(super) async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.client.close()).await;
    }
}

/// The sequence number after which a partition that has passed nothing on started reading:
/// its checkpoint, else its start position; `None` when that is not known.
fn started_after(
    checkpoint: Option<i64>,
    start: Option<Start>,
    beginning_sequence_number: i64,
) -> Option<i64> {
    match (checkpoint, start) {
        (Some(c), _) => Some(c),
        (None, Some(Start::After(s))) => Some(s),
        (None, Some(Start::Earliest)) => Some(beginning_sequence_number - 1),
        (None, Some(Start::Unknown) | None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_comes_before_the_start_position() {
        assert_eq!(started_after(Some(42), Some(Start::Earliest), 10), Some(42));
        assert_eq!(started_after(Some(42), Some(Start::Unknown), 10), Some(42));
    }

    #[test]
    fn without_a_checkpoint_the_start_position_decides() {
        assert_eq!(started_after(None, Some(Start::Earliest), 10), Some(9));
        assert_eq!(started_after(None, Some(Start::After(77)), 10), Some(77));
        assert_eq!(started_after(None, Some(Start::Unknown), 10), None);
        assert_eq!(started_after(None, None, 10), None);
    }

    #[test]
    fn start_positions_translate_to_what_the_watchdog_counts_from() {
        let at = |location, inclusive| {
            Start::of(&StartPosition {
                location,
                inclusive,
            })
        };
        assert_eq!(at(StartLocation::Earliest, false), Start::Earliest);
        assert_eq!(at(StartLocation::SequenceNumber(5), false), Start::After(5));
        assert_eq!(at(StartLocation::SequenceNumber(5), true), Start::After(4));
        let t = std::time::SystemTime::UNIX_EPOCH;
        assert_eq!(at(StartLocation::EnqueuedTime(t), true), Start::Unknown);
        assert_eq!(at(StartLocation::Latest, false), Start::Unknown);
    }
}
