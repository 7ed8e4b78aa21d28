//! Source positions kept in Kafka, for exactly-once delivery.
//!
//! A Kafka source commits its consumer group's offsets inside the output transaction. An
//! Event Hubs partition or a file has no such thing: their resume points are records of a
//! compacted topic (`--positions-topic`), written inside the same transaction as the output
//! records they vouch for, so both become visible together or not at all. A replica that
//! takes a partition over reads the topic with `isolation.level=read_committed` (after
//! fencing the previous owner's producer, see `sink::exactly_once`): what it finds is exactly
//! what was committed.
//!
//! One record per source partition, keyed `<scope>|<partition>`, where the scope names the
//! source (`eventhubs:<namespace>/<hub>/<consumer group>`, `file`); compaction keeps the
//! last.
//!
//! Layout. A `read_committed` reader stops at the first transaction still open on a
//! partition of the topic, whoever wrote it (see [`PositionsTopic::read`]). So that taking
//! Event Hubs partition `k` over never waits for another partition's writer, the record of
//! `k` goes to partition `k mod N` of the topic (created with [`PARTITIONS`], the most a
//! Standard event hub has): on a hub of up to `N` partitions, each topic partition has one
//! writer, the transactional id that the replica taking `k` over fences first. On a larger
//! hub partitions share, and a takeover may wait for a crashed replica's open transaction to
//! reach its timeout (`--transaction-timeout`).

use mfagap_runtime::Error;
use mfagap_runtime::kafka::{KafkaConfig, OutRecord, ProducerSettings};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The partitions the topic is created with: the most partitions a Standard event hub has.
pub const PARTITIONS: i32 = 32;

/// How long reading the positions topic to its end may take.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The reader's context: the end of a partition is how a read finishes, not an error to log
/// (librdkafka reports it to the context as well as to `poll`).
struct Reader;

impl ClientContext for Reader {
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::warn!(%error, reason, "positions reader");
        }
    }
}

impl ConsumerContext for Reader {}

/// One source partition's committed resume point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PositionRecord {
    /// The source's scope (see the module note).
    pub scope: String,
    /// The partition's name in the pipeline (`hub/3`, a file's identity).
    pub partition: String,
    /// The resume point: every position below it is delivered.
    pub position: i64,
    /// What the source needs to resume there (Event Hubs: sequence number and offset of the
    /// last event; a file: the byte after the last line, and its number).
    pub resume: Option<serde_json::Value>,
    /// The transactional id that wrote it, for an operator reading the topic.
    pub writer: String,
}

impl PositionRecord {
    /// The record's key in the topic.
    pub fn key(scope: &str, partition: &str) -> String {
        format!("{scope}|{partition}")
    }

    /// The topic partition of a source partition's record, for a topic of `count`
    /// partitions: an Event Hubs partition `…/k` goes to `k mod count`, anything else by hash.
    pub fn slot(partition: &str, count: i32) -> i32 {
        let count = count.max(1);
        let numbered = partition
            .rsplit_once('/')
            .and_then(|(_, k)| k.parse::<u64>().ok());
        let n = numbered.unwrap_or_else(|| xxhash_rust::xxh3::xxh3_64(partition.as_bytes()));
        (n % count as u64) as i32
    }

    /// The record as the transactional producer sends it (to [`PositionRecord::slot`]).
    pub(crate) fn out_record(&self, topic: &str) -> OutRecord {
        OutRecord {
            topic: topic.to_owned(),
            kind: "position",
            key: Some(Self::key(&self.scope, &self.partition).into_bytes()),
            payload: serde_json::to_vec(self).expect("a position record serializes"),
            headers: Vec::new(),
        }
    }
}

/// The positions topic of one output cluster.
#[derive(Debug, Clone)]
pub struct PositionsTopic {
    /// The topic's name (`--positions-topic`).
    pub topic: String,
    /// The output cluster (the topic lives where the transactions are).
    pub cluster: ProducerSettings,
    /// Its partition count, once known (it does not change under a running service).
    pub count: Arc<OnceLock<i32>>,
}

impl PositionsTopic {
    /// Creates the topic, compacted, unless it exists. Some clusters (a managed one without
    /// the right to create topics) refuse: then it must exist, and the error says so.
    pub async fn ensure(&self) -> Result<(), Error> {
        let mut c = KafkaConfig::new("positions admin", &self.cluster.bootstrap);
        c.operator(&self.cluster.properties);
        let admin: AdminClient<DefaultClientContext> = c.create(DefaultClientContext)?;
        // An existing topic needs no create (nor the right to create topics).
        let (name, config) = (self.topic.clone(), c.clone());
        let exists = tokio::task::spawn_blocking(move || {
            let client: rdkafka::consumer::BaseConsumer = config
                .create(rdkafka::consumer::DefaultConsumerContext)
                .ok()?;
            let m = client
                .fetch_metadata(Some(&name), Duration::from_secs(10))
                .ok()?;
            m.topics()
                .iter()
                .find(|t| t.name() == name)
                .map(|t| t.error().is_none() && !t.partitions().is_empty())
        })
        .await
        .ok()
        .flatten()
        .unwrap_or(false);
        if exists {
            return Ok(());
        }
        let topic = NewTopic::new(&self.topic, PARTITIONS, TopicReplication::Fixed(-1))
            .set("cleanup.policy", "compact");
        let results = admin
            .create_topics(
                [&topic],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
            )
            .await
            .map_err(|e| {
                Error::retryable(format!(
                    "cannot create the positions topic {}: {e}",
                    self.topic
                ))
            })?;
        for r in results {
            match r {
                Ok(_) => tracing::info!(topic = %self.topic, "positions topic created (compacted)"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) => {
                    return Err(Error::configuration(format!(
                        "cannot create the positions topic {t} ({code}); create it with cleanup.policy=compact or name another with --positions-topic"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Every committed position of `scope`, by partition. Blocking: call it off the async
    /// runtime.
    ///
    /// A `read_committed` consumer stops at the last stable offset: the first record of a
    /// transaction still open, on any partition of the topic, from any writer. Records
    /// committed after it — the very position this replica needs — stay hidden until that
    /// transaction ends, so reading "to the end" would return a stale position and the
    /// partition would be read again and written twice. The read therefore first takes the
    /// high watermark of every partition (everything written before the caller fenced the
    /// previous owner, so that owner's last transaction is resolved below it), waits until
    /// the last stable offset has passed it — open transactions of live replicas end within
    /// their interval, those of a crashed one at its transaction timeout — and then reads.
    ///
    /// `only`: the source partitions wanted (their [`PositionRecord::slot`]s are read, and
    /// the result may hold others of the same slots); `None` reads every partition.
    pub fn read(
        &self,
        scope: &str,
        only: Option<&[String]>,
    ) -> Result<HashMap<String, PositionRecord>, Error> {
        let deadline = Instant::now() + READ_TIMEOUT;
        let consumer = self.consumer("positions reader", "read_committed")?;
        let mut partitions = self.partitions(&consumer)?;
        if let Some(wanted) = only {
            let count = partitions.len() as i32;
            let slots: BTreeSet<i32> = wanted
                .iter()
                .map(|w| PositionRecord::slot(w, count))
                .collect();
            partitions.retain(|p| slots.contains(p));
        }
        let ends = {
            let everything = self.consumer("positions watermarks", "read_uncommitted")?;
            let mut ends = HashMap::new();
            for p in &partitions {
                let (_, high) = everything
                    .fetch_watermarks(&self.topic, *p, Duration::from_secs(10))
                    .map_err(|e| {
                        Error::retryable(format!("cannot read the positions topic: {e}"))
                    })?;
                ends.insert(*p, high);
            }
            ends
        };
        let mut waiting_said = false;
        for p in &partitions {
            loop {
                let (_, stable) = consumer
                    .fetch_watermarks(&self.topic, *p, Duration::from_secs(10))
                    .map_err(|e| {
                        Error::retryable(format!("cannot read the positions topic: {e}"))
                    })?;
                if stable >= ends[p] {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(Error::retryable(format!(
                        "a transaction on the positions topic {} stayed open for {READ_TIMEOUT:?} (a crashed replica's ends at its transaction.timeout.ms)",
                        self.topic
                    )));
                }
                if !waiting_said {
                    tracing::info!(topic = %self.topic, partition = p, stable, high = ends[p], "waiting for transactions open on the positions topic to end");
                    waiting_said = true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition_offset(&self.topic, *p, Offset::Beginning)
                .map_err(|e| Error::fatal(e.to_string()))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| Error::retryable(format!("cannot read the positions topic: {e}")))?;
        let mut open: BTreeSet<i32> = partitions.into_iter().collect();
        let mut out = HashMap::new();
        let prefix = format!("{scope}|");
        while !open.is_empty() {
            if Instant::now() > deadline {
                return Err(Error::retryable(format!(
                    "the positions topic {} was not read to its end in {READ_TIMEOUT:?}",
                    self.topic
                )));
            }
            match consumer.poll(Duration::from_millis(200)) {
                None => {}
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    open.remove(&p);
                }
                Some(Err(e)) => {
                    return Err(Error::retryable(format!(
                        "cannot read the positions topic: {e}"
                    )));
                }
                Some(Ok(m)) => {
                    let key_matches = m.key().is_some_and(|k| k.starts_with(prefix.as_bytes()));
                    if !key_matches {
                        continue;
                    }
                    if let Some(record) = m
                        .payload()
                        .and_then(|p| serde_json::from_slice::<PositionRecord>(p).ok())
                    {
                        out.insert(record.partition.clone(), record);
                    }
                }
            }
        }
        Ok(out)
    }

    /// A consumer of the topic with no group offsets of its own.
    fn consumer(&self, what: &'static str, isolation: &str) -> Result<BaseConsumer<Reader>, Error> {
        let mut c = KafkaConfig::new(what, &self.cluster.bootstrap);
        c.set("group.id", "mfagap-positions-reader")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .operator(&self.cluster.properties)
            .force("isolation.level", isolation);
        c.create(Reader)
    }

    /// The topic's partition count (asked once, then remembered). Blocking.
    pub fn count(&self) -> Result<i32, Error> {
        if let Some(n) = self.count.get() {
            return Ok(*n);
        }
        let consumer = self.consumer("positions metadata", "read_committed")?;
        let n = self.partitions(&consumer)?.len() as i32;
        Ok(*self.count.get_or_init(|| n))
    }

    /// The topic's partitions; an error if it does not exist.
    fn partitions(&self, consumer: &BaseConsumer<Reader>) -> Result<Vec<i32>, Error> {
        let metadata = consumer
            .fetch_metadata(Some(&self.topic), Duration::from_secs(10))
            .map_err(|e| Error::retryable(format!("cannot read the positions topic: {e}")))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(Error::configuration(format!(
                "the positions topic {} does not exist",
                self.topic
            )));
        }
        let _ = self.count.set(partitions.len() as i32);
        Ok(partitions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_hubs_partition_goes_to_its_number_modulo_the_partition_count() {
        assert_eq!(PositionRecord::slot("signinlogs/3", 32), 3);
        assert_eq!(PositionRecord::slot("signinlogs/35", 32), 3);
        assert_eq!(PositionRecord::slot("signinlogs/0", 1), 0);
        // A topic of 0 partitions (not yet known) is taken as 1.
        assert_eq!(PositionRecord::slot("signinlogs/7", 0), 0);
    }

    #[test]
    fn any_other_name_goes_to_a_stable_slot_within_the_count() {
        let name = "/data/in.jsonl:1234:5678";
        let slot = PositionRecord::slot(name, 32);
        assert!((0..32).contains(&slot));
        assert_eq!(
            PositionRecord::slot(name, 32),
            slot,
            "the same name, the same slot"
        );
        let slots: std::collections::BTreeSet<i32> = (0..200)
            .map(|i| PositionRecord::slot(&format!("file-{i}"), 32))
            .collect();
        assert!(slots.len() > 16, "names spread over the slots: {slots:?}");
    }

    #[test]
    fn a_record_is_keyed_by_scope_and_partition_and_reads_back_as_written() {
        let r = PositionRecord {
            scope: "eventhubs:ns/hub/group".into(),
            partition: "hub/2".into(),
            position: 42,
            resume: Some(serde_json::json!({"sequenceNumber": 41, "offset": "9000"})),
            writer: "mfagap-abc-hub-2".into(),
        };
        let out = r.out_record("entra.signins.positions");
        assert_eq!(out.topic, "entra.signins.positions");
        assert_eq!(out.kind, "position");
        assert_eq!(
            out.key.as_deref(),
            Some("eventhubs:ns/hub/group|hub/2".as_bytes())
        );
        let back: PositionRecord = serde_json::from_slice(&out.payload).unwrap();
        assert_eq!(back, r);
        let json: serde_json::Value = serde_json::from_slice(&out.payload).unwrap();
        assert_eq!(
            json["position"], 42,
            "camelCase fields an operator can read"
        );
    }
}
