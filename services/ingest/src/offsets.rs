//! Where each source partition may safely resume: the one rule of delivery.
//!
//! # Design note
//!
//! A source position may move past a message only when every record and dead letter derived
//! from it, *and from every earlier message of the same partition*, has been acknowledged by
//! Kafka. Deliveries complete out of order (one message's records go to many Kafka partitions
//! and are retried independently), so the tracker keeps, per source partition, the set of
//! positions read but not yet fully acknowledged. The resume point is the lowest of them, or
//! one past the highest read when none is outstanding. Committing anything lower is safe
//! (it only causes re-reads, which duplicate suppression and at-least-once tolerate); committing
//! anything higher could lose data, and the tracker never offers it.
//!
//! Rebalances: when a partition is taken away, its state is forgotten and its *epoch* is
//! bumped. A delivery that completes later for the old epoch is ignored, so it cannot mark done
//! a position that the partition, assigned again, has read a second time and not yet delivered.

use std::collections::{BTreeSet, HashMap};

/// Where a message sits: its partition's name, the partition's epoch when it was read, and its
/// position (Kafka offset, Event Hubs sequence number, file line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ticket {
    pub partition: String,
    pub epoch: u64,
    pub position: i64,
}

#[derive(Debug, Default)]
struct Partition {
    epoch: u64,
    outstanding: BTreeSet<i64>,
    /// One past the highest position read.
    next: Option<i64>,
    /// The last resume point handed out for committing.
    committed: Option<i64>,
}

/// Tracks read and acknowledged positions of every source partition.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    partitions: HashMap<String, Partition>,
    epochs: HashMap<String, u64>,
}

impl Tracker {
    pub(crate) fn new() -> Tracker {
        Tracker::default()
    }

    /// A message was read; its outputs are about to be sent.
    pub(crate) fn begin(&mut self, partition: &str, position: i64) -> Ticket {
        let epoch = *self.epochs.get(partition).unwrap_or(&0);
        let p = self
            .partitions
            .entry(partition.to_owned())
            .or_insert_with(|| Partition {
                epoch,
                ..Partition::default()
            });
        p.outstanding.insert(position);
        p.next = Some(p.next.map_or(position + 1, |n| n.max(position + 1)));
        Ticket {
            partition: partition.to_owned(),
            epoch: p.epoch,
            position,
        }
    }

    /// Everything derived from the ticket's message is acknowledged.
    pub(crate) fn done(&mut self, t: &Ticket) {
        if let Some(p) = self.partitions.get_mut(&t.partition)
            && p.epoch == t.epoch
        {
            p.outstanding.remove(&t.position);
        }
    }

    /// The partition was taken away: forget it; late completions are ignored.
    pub(crate) fn forget(&mut self, partition: &str) {
        self.partitions.remove(partition);
        *self.epochs.entry(partition.to_owned()).or_insert(0) += 1;
    }

    /// The safe resume point of a partition: every position before it is acknowledged.
    /// Only the tests ask for one partition's point; the pipeline takes them all with
    /// [`Tracker::take_commits`].
    #[cfg(test)]
    pub(crate) fn resume_point(&self, partition: &str) -> Option<i64> {
        let p = self.partitions.get(partition)?;
        p.outstanding.first().copied().or(p.next)
    }

    /// Resume points that moved since they were last taken, to commit now.
    pub(crate) fn take_commits(&mut self) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for (name, p) in &mut self.partitions {
            let Some(point) = p.outstanding.first().copied().or(p.next) else {
                continue;
            };
            if p.committed != Some(point) {
                p.committed = Some(point);
                out.push((name.clone(), point));
            }
        }
        out.sort();
        out
    }

    /// A commit of these points failed: offer them again next time.
    pub(crate) fn commit_failed(&mut self, points: &[(String, i64)]) {
        for (name, point) in points {
            if let Some(p) = self.partitions.get_mut(name)
                && p.committed == Some(*point)
            {
                p.committed = None;
            }
        }
    }

    /// Messages read but not yet acknowledged, over all partitions.
    pub(crate) fn outstanding(&self) -> usize {
        self.partitions.values().map(|p| p.outstanding.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resume_point_waits_for_the_oldest_unacknowledged_message() {
        let mut t = Tracker::new();
        let a = t.begin("p0", 10);
        let b = t.begin("p0", 11);
        let c = t.begin("p0", 12);
        t.done(&c);
        t.done(&b);
        assert_eq!(t.resume_point("p0"), Some(10), "10 is not acknowledged yet");
        t.done(&a);
        assert_eq!(
            t.resume_point("p0"),
            Some(13),
            "all done: one past the last read"
        );
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = Tracker::new();
        let a = t.begin("p0", 5);
        let b = t.begin("p1", 7);
        t.done(&b);
        assert_eq!(t.resume_point("p0"), Some(5));
        assert_eq!(t.resume_point("p1"), Some(8));
        t.done(&a);
        assert_eq!(t.take_commits(), vec![("p0".into(), 6), ("p1".into(), 8)]);
        assert!(t.take_commits().is_empty(), "nothing moved since");
    }

    #[test]
    fn a_late_completion_from_before_a_rebalance_is_ignored() {
        let mut t = Tracker::new();
        let old = t.begin("p0", 3);
        t.forget("p0");
        assert_eq!(t.resume_point("p0"), None);
        let again = t.begin("p0", 3);
        t.done(&old);
        assert_eq!(
            t.resume_point("p0"),
            Some(3),
            "the re-read message is still pending"
        );
        t.done(&again);
        assert_eq!(t.resume_point("p0"), Some(4));
    }

    #[test]
    fn a_failed_commit_is_offered_again() {
        let mut t = Tracker::new();
        let a = t.begin("p0", 1);
        t.done(&a);
        let points = t.take_commits();
        assert_eq!(points, vec![("p0".into(), 2)]);
        t.commit_failed(&points);
        assert_eq!(t.take_commits(), points);
    }

    #[test]
    fn outstanding_counts_every_partition() {
        let mut t = Tracker::new();
        t.begin("a", 1);
        t.begin("b", 1);
        let x = t.begin("b", 2);
        t.done(&x);
        assert_eq!(t.outstanding(), 2);
    }
}
