//! Consumer lag from librdkafka's own statistics, never from a query to the broker.
//!
//! Why not ask the broker for watermarks: the query goes down the same connection as the
//! consumer's fetch, which the broker holds for up to `fetch.wait.max.ms` when there is nothing
//! new, and the Kafka protocol answers requests in order. A watermark query with a short
//! timeout therefore times out routinely, and librdkafka drops a connection on a timed-out
//! request (`socket.max.fails`), taking the in-flight fetch with it. On a broker that holds
//! fetches long, partitions were seen to stop for minutes that way; and each query blocked the
//! caller for up to its timeout. The fetcher already learns every partition's high watermark
//! from each fetch response, and librdkafka's statistics hand it over at no cost.

use rdkafka::Statistics;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// How often librdkafka reports statistics unless the operator sets
/// `statistics.interval.ms` themselves: the freshness of the lag gauges.
pub const STATISTICS_INTERVAL_MS: &str = "1000";

/// What one assigned partition still has ahead of this consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLag {
    /// Messages on the broker not yet handed to the application.
    pub unread: Option<i64>,
    /// Messages on the broker past the group's last commit.
    pub uncommitted: Option<i64>,
}

/// The latest statistics of one consumer, shared between its client context (which
/// librdkafka calls) and the loop that publishes the gauges.
#[derive(Debug, Clone, Default)]
pub struct ConsumerLag {
    latest: Arc<Mutex<BTreeMap<(String, i32), PartitionLag>>>,
}

impl ConsumerLag {
    /// Takes a statistics report: called from the client context's `stats`.
    pub fn update(&self, stats: &Statistics) {
        let mut next = BTreeMap::new();
        for (topic, t) in &stats.topics {
            for (&partition, p) in &t.partitions {
                // -1 is librdkafka's internal "unassigned" partition; `desired` marks the
                // partitions this consumer is assigned.
                if partition < 0 || !p.desired {
                    continue;
                }
                let unread = (p.hi_offset >= 0 && p.app_offset >= 0)
                    .then(|| (p.hi_offset - p.app_offset).max(0));
                let uncommitted = (p.consumer_lag >= 0).then_some(p.consumer_lag);
                next.insert(
                    (topic.clone(), partition),
                    PartitionLag {
                        unread,
                        uncommitted,
                    },
                );
            }
        }
        *self.latest.lock().expect("not poisoned") = next;
    }

    /// The assigned partitions as of the last report, by topic and partition.
    pub fn snapshot(&self) -> BTreeMap<(String, i32), PartitionLag> {
        self.latest.lock().expect("not poisoned").clone()
    }
}

/// Turns statistics on at [`STATISTICS_INTERVAL_MS`] unless the operator chose an interval.
pub fn enable_statistics(config: &mut rdkafka::ClientConfig) {
    if config.get("statistics.interval.ms").is_none() {
        config.set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::statistics::{Partition, Topic};

    fn partition(id: i32, desired: bool, hi: i64, app: i64, lag: i64) -> Partition {
        Partition {
            partition: id,
            desired,
            hi_offset: hi,
            ls_offset: hi,
            app_offset: app,
            consumer_lag: lag,
            ..Partition::default()
        }
    }

    fn report(partitions: Vec<Partition>) -> Statistics {
        let topic = Topic {
            topic: "in".into(),
            partitions: partitions.into_iter().map(|p| (p.partition, p)).collect(),
            ..Topic::default()
        };
        Statistics {
            topics: [("in".to_owned(), topic)].into(),
            ..Statistics::default()
        }
    }

    #[test]
    fn assigned_partitions_report_unread_and_uncommitted_messages() {
        let lag = ConsumerLag::default();
        lag.update(&report(vec![
            partition(0, true, 100, 60, 70),
            partition(1, true, 5, -1, -1),
            partition(2, false, 50, 0, 50),
            partition(-1, false, -1, -1, -1),
        ]));
        let got = lag.snapshot();
        assert_eq!(got.len(), 2, "only assigned partitions: {got:?}");
        assert_eq!(
            got[&("in".to_owned(), 0)],
            PartitionLag {
                unread: Some(40),
                uncommitted: Some(70)
            }
        );
        assert_eq!(
            got[&("in".to_owned(), 1)],
            PartitionLag {
                unread: None,
                uncommitted: None
            },
            "nothing read or committed yet: unknown, not zero"
        );
    }

    #[test]
    fn a_new_report_replaces_partitions_that_were_revoked() {
        let lag = ConsumerLag::default();
        lag.update(&report(vec![partition(0, true, 10, 10, 0)]));
        lag.update(&report(vec![partition(3, true, 10, 4, 6)]));
        let got = lag.snapshot();
        assert_eq!(
            got.keys().cloned().collect::<Vec<_>>(),
            vec![("in".to_owned(), 3)]
        );
    }

    #[test]
    fn an_interval_the_operator_set_is_kept() {
        let mut c = rdkafka::ClientConfig::new();
        enable_statistics(&mut c);
        assert_eq!(
            c.get("statistics.interval.ms"),
            Some(STATISTICS_INTERVAL_MS)
        );
        let mut c = rdkafka::ClientConfig::new();
        c.set("statistics.interval.ms", "0");
        enable_statistics(&mut c);
        assert_eq!(c.get("statistics.interval.ms"), Some("0"));
    }
}
