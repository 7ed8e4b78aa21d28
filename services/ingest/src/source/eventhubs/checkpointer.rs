//! Event Hubs checkpoints from the delivery rule's resume points.
//!
//! # Design note
//!
//! The pipeline hands over, per partition, a resume point `r`: every event with a sequence
//! number below `r` is acknowledged by Kafka (see `offsets`). An Event Hubs checkpoint names
//! the last *processed* event and readers resume after it, so the checkpoint for `r` is the
//! event `r - 1`, with its own offset (kept from when it was read, until it is written).
//!
//! Blob writes cost money and time, so a partition's checkpoint is written when its last write
//! is older than the interval or at least `every` events behind — whichever comes first — and
//! always on shutdown and when the partition is lost, so a restart re-reads nothing that was
//! acknowledged. Writes run on a task of their own: a slow or failing Blob store never stalls
//! reading. A failed write is retried with the newest point of that partition; nothing older
//! than what is stored is ever written, and nothing newer than what Kafka acknowledged.
//!
//! Only partitions this replica owns get checkpoints: after a partition moves, its new owner's
//! progress must not be overwritten by events the old owner read late.

use super::checkpoint_store::BlobCheckpointStore;
use crate::metrics;
use anyhow::Result;
use azure_messaging_eventhubs::CheckpointStore;
use azure_messaging_eventhubs::models::Checkpoint;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// How often checkpoints are written.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// A moving partition's checkpoint is written at least this often (`--checkpoint-interval`).
    pub interval: Duration,
    /// Or sooner, once this many events are past the last one written (`--checkpoint-every`).
    pub every: u64,
}

/// The event hub and consumer group the checkpoints belong to.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    pub namespace: String,
    pub event_hub: String,
    pub consumer_group: String,
}

enum Command {
    Write(Checkpoint),
    Flush(oneshot::Sender<Result<()>>),
}

#[derive(Debug, Default)]
struct PartitionState {
    /// (sequence number, offset) of events read and not yet behind a written checkpoint.
    read: VecDeque<(i64, Option<String>)>,
    /// The newest point allowed but not yet handed to the writer.
    pending: Option<(i64, Option<String>)>,
    /// When and at which sequence number the last checkpoint was handed to the writer.
    last: Option<(Instant, i64)>,
}

/// Decides what to checkpoint; the writing happens on its own task.
pub(crate) struct Checkpointer {
    policy: Policy,
    scope: Scope,
    partitions: HashMap<String, PartitionState>,
    writer: mpsc::UnboundedSender<Command>,
}

impl Checkpointer {
    /// `commits`: whether a written checkpoint is the commit of its partition (at least once),
    /// or follows a commit made elsewhere (exactly once: the transaction is the commit, and the
    /// committed-position gauge is its).
    pub(crate) fn spawn(
        store: Arc<BlobCheckpointStore>,
        scope: Scope,
        policy: Policy,
        commits: bool,
    ) -> Checkpointer {
        let (writer, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(store, scope.event_hub.clone(), commits, rx));
        Checkpointer {
            policy,
            scope,
            partitions: HashMap::new(),
            writer,
        }
    }

    /// An event was handed to the pipeline.
    pub(crate) fn read(
        &mut self,
        partition_id: &str,
        sequence_number: i64,
        offset: Option<String>,
    ) {
        let p = self.partitions.entry(partition_id.to_owned()).or_default();
        // A partition read again from its checkpoint starts lower: what was kept is stale.
        if p.read.back().is_some_and(|(s, _)| *s >= sequence_number) {
            p.read.clear();
        }
        p.read.push_back((sequence_number, offset));
    }

    /// Every event before `resume` is acknowledged; checkpoints it if the policy says so.
    pub(crate) fn allow(&mut self, partition_id: &str, resume: i64, now: Instant) {
        let Some(p) = self.partitions.get_mut(partition_id) else {
            return;
        };
        let last = resume - 1;
        while p.read.front().is_some_and(|(s, _)| *s < last) {
            p.read.pop_front();
        }
        let Some((s, offset)) = p.read.front().cloned().filter(|(s, _)| *s == last) else {
            tracing::debug!(partition = %partition_id, resume, front = ?p.read.front().map(|f| f.0), "no checkpoint: the event before the resume point was not read by this receiver");
            return;
        };
        if p.last.is_some_and(|(_, written)| written >= s) {
            return;
        }
        p.pending = Some((s, offset));
        let due = match p.last {
            None => true,
            Some((at, written)) => {
                now.duration_since(at) >= self.policy.interval
                    || (s - written) as u64 >= self.policy.every
            }
        };
        if due {
            self.hand_over(partition_id, now);
        }
    }

    /// Hands over the pending points whose interval has passed: a partition that went quiet
    /// right after a write still gets its last point written within the interval.
    pub(crate) fn hand_over_due(&mut self, now: Instant) {
        let due: Vec<String> = self
            .partitions
            .iter()
            .filter(|(_, p)| {
                p.pending.is_some()
                    && p.last
                        .is_none_or(|(at, _)| now.duration_since(at) >= self.policy.interval)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.hand_over(&id, now);
        }
    }

    /// Hands every pending point to the writer, due or not.
    pub(crate) fn hand_over_all(&mut self, now: Instant) {
        let ids: Vec<String> = self.partitions.keys().cloned().collect();
        for id in ids {
            self.hand_over(&id, now);
        }
    }

    /// The partition is no longer ours: write what it has pending, then forget it.
    pub(crate) fn lost(&mut self, partition_id: &str) {
        self.hand_over(partition_id, Instant::now());
        self.partitions.remove(partition_id);
    }

    fn hand_over(&mut self, partition_id: &str, now: Instant) {
        let Some(p) = self.partitions.get_mut(partition_id) else {
            return;
        };
        let Some((s, offset)) = p.pending.take() else {
            return;
        };
        p.last = Some((now, s));
        let _ = self.writer.send(Command::Write(Checkpoint {
            fully_qualified_namespace: self.scope.namespace.clone(),
            event_hub_name: self.scope.event_hub.clone(),
            consumer_group: self.scope.consumer_group.clone(),
            partition_id: partition_id.to_owned(),
            offset,
            sequence_number: Some(s),
        }));
    }

    /// Writes everything handed over so far; returns when it is stored or the writer gave up.
    pub(crate) async fn flush(&mut self) -> Result<()> {
        self.hand_over_all(Instant::now());
        let (tx, rx) = oneshot::channel();
        if self.writer.send(Command::Flush(tx)).is_err() {
            anyhow::bail!("the checkpoint writer has stopped");
        }
        rx.await
            .map_err(|_| anyhow::anyhow!("the checkpoint writer has stopped"))?
    }
}

/// Writes checkpoints in order of arrival, keeping only the newest per partition while the
/// store fails, and retrying every second.
async fn write_loop(
    store: Arc<BlobCheckpointStore>,
    event_hub: String,
    commits: bool,
    mut rx: mpsc::UnboundedReceiver<Command>,
) {
    let mut queue: BTreeMap<String, Checkpoint> = BTreeMap::new();
    let mut retry_at: Option<Instant> = None;
    loop {
        let command = match retry_at {
            Some(at) => tokio::select! {
                c = rx.recv() => c,
                _ = tokio::time::sleep_until(at) => {
                    retry_at = write_all(&store, &event_hub, commits, &mut queue).await.err().map(|_| Instant::now() + Duration::from_secs(1));
                    continue;
                }
            },
            None => rx.recv().await,
        };
        let Some(command) = command else { return };
        match command {
            Command::Write(c) => {
                let newer = queue
                    .get(&c.partition_id)
                    .is_none_or(|q| q.sequence_number <= c.sequence_number);
                if newer {
                    queue.insert(c.partition_id.clone(), c);
                }
                if retry_at.is_none() {
                    retry_at = write_all(&store, &event_hub, commits, &mut queue)
                        .await
                        .err()
                        .map(|_| Instant::now() + Duration::from_secs(1));
                }
            }
            Command::Flush(done) => {
                let mut result = write_all(&store, &event_hub, commits, &mut queue).await;
                for _ in 0..4 {
                    if result.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    result = write_all(&store, &event_hub, commits, &mut queue).await;
                }
                retry_at = result
                    .as_ref()
                    .err()
                    .map(|_| Instant::now() + Duration::from_secs(1));
                let _ = done.send(result);
            }
        }
    }
}

async fn write_all(
    store: &BlobCheckpointStore,
    event_hub: &str,
    commits: bool,
    queue: &mut BTreeMap<String, Checkpoint>,
) -> Result<()> {
    let mut failed = None;
    let ids: Vec<String> = queue.keys().cloned().collect();
    for id in ids {
        let c = queue[&id].clone();
        let s = c.sequence_number.unwrap_or(-1);
        match store.update_checkpoint(c).await {
            Ok(()) => {
                queue.remove(&id);
                metrics::checkpoint_written(&format!("{event_hub}/{id}"), s, commits);
                tracing::debug!(partition = %id, sequence_number = s, "checkpoint written");
            }
            Err(e) => {
                metrics::checkpoint_failed();
                tracing::warn!(partition = %id, error = %e, store = %store.location, "cannot write the checkpoint; will retry");
                failed = Some(anyhow::anyhow!(
                    "cannot write the checkpoint of partition {id} to {}: {e}",
                    store.location
                ));
            }
        }
    }
    failed.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpointer(policy: Policy) -> (Checkpointer, mpsc::UnboundedReceiver<Command>) {
        let (writer, rx) = mpsc::unbounded_channel();
        let c = Checkpointer {
            policy,
            scope: Scope {
                namespace: "ns".into(),
                event_hub: "hub".into(),
                consumer_group: "g".into(),
            },
            partitions: HashMap::new(),
            writer,
        };
        (c, rx)
    }

    fn written(rx: &mut mpsc::UnboundedReceiver<Command>) -> Vec<(String, i64, Option<String>)> {
        let mut out = Vec::new();
        while let Ok(c) = rx.try_recv() {
            if let Command::Write(c) = c {
                out.push((c.partition_id, c.sequence_number.unwrap(), c.offset));
            }
        }
        out
    }

    #[tokio::test]
    async fn the_checkpoint_names_the_last_acknowledged_event_with_its_offset() {
        let (mut c, mut rx) = checkpointer(Policy {
            interval: Duration::from_secs(10),
            every: 1000,
        });
        for s in 0..5 {
            c.read("0", s, Some(format!("{}", s * 100)));
        }
        let t0 = Instant::now();
        c.allow("0", 3, t0);
        assert_eq!(written(&mut rx), vec![("0".into(), 2, Some("200".into()))]);
    }

    #[tokio::test]
    async fn checkpoints_wait_for_the_interval_or_the_count() {
        let (mut c, mut rx) = checkpointer(Policy {
            interval: Duration::from_secs(10),
            every: 100,
        });
        for s in 0..300 {
            c.read("0", s, None);
        }
        let t0 = Instant::now();
        c.allow("0", 1, t0);
        assert_eq!(
            written(&mut rx).len(),
            1,
            "the first point is written at once"
        );
        c.allow("0", 50, t0 + Duration::from_secs(1));
        assert!(
            written(&mut rx).is_empty(),
            "neither 10 s nor 100 events yet"
        );
        c.allow("0", 102, t0 + Duration::from_secs(2));
        assert_eq!(written(&mut rx)[0].1, 101, "100 events behind");
        c.allow("0", 110, t0 + Duration::from_secs(13));
        assert_eq!(written(&mut rx)[0].1, 109, "10 s since the last write");
        c.allow("0", 120, t0 + Duration::from_secs(14));
        assert!(written(&mut rx).is_empty());
        c.hand_over_due(t0 + Duration::from_secs(20));
        assert!(written(&mut rx).is_empty(), "6 s since the last write");
        c.hand_over_due(t0 + Duration::from_secs(23));
        assert_eq!(
            written(&mut rx)[0].1,
            119,
            "a quiet partition's last point is written once the interval passes"
        );
        c.allow("0", 130, t0 + Duration::from_secs(24));
        c.hand_over_all(t0 + Duration::from_secs(15));
        assert_eq!(
            written(&mut rx)[0].1,
            129,
            "shutdown writes what is pending"
        );
    }

    #[tokio::test]
    async fn a_lost_partition_writes_its_pending_point_and_is_forgotten() {
        let (mut c, mut rx) = checkpointer(Policy {
            interval: Duration::from_secs(10),
            every: 1000,
        });
        for s in 0..10 {
            c.read("1", s, None);
        }
        let t0 = Instant::now();
        c.allow("1", 2, t0);
        c.allow("1", 8, t0);
        assert_eq!(written(&mut rx).len(), 1);
        c.lost("1");
        assert_eq!(written(&mut rx)[0].1, 7);
        c.allow("1", 10, t0);
        assert!(written(&mut rx).is_empty(), "no longer ours");
    }

    #[tokio::test]
    async fn reading_a_partition_again_from_its_checkpoint_drops_stale_offsets() {
        let (mut c, mut rx) = checkpointer(Policy {
            interval: Duration::ZERO,
            every: 1,
        });
        c.read("0", 5, Some("a".into()));
        c.read("0", 6, Some("b".into()));
        c.read("0", 3, Some("x".into()));
        c.read("0", 4, Some("y".into()));
        c.allow("0", 5, Instant::now());
        assert_eq!(written(&mut rx), vec![("0".into(), 4, Some("y".into()))]);
    }
}
