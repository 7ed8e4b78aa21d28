//! Exactly once: records and the source positions they came from, committed together.
//!
//! # Design note
//!
//! Each transaction holds the output records and dead letters of the messages it took and
//! the resume points of the source partitions those messages came from; the commit makes
//! all of them visible at once to `read_committed` consumers (the archiver first), an abort
//! none of them. A source position therefore never moves without its records, nor records
//! without their position: after a crash, a restart resumes exactly after what was
//! committed, and what was not committed was never seen.
//!
//! Where the positions go depends on the source:
//! - a Kafka source's consumer group offsets are sent to the transaction with the group's
//!   metadata (`send_offsets_to_transaction`, KIP-447): the group coordinator refuses them
//!   from a member of an older generation, so a replica that lost its partitions in a
//!   rebalance cannot commit them; before a revocation completes the open transaction is
//!   committed (the source calls [`KafkaOffsets::commit_before_revoke`]);
//! - an Event Hubs partition or a file writes a record to the positions topic
//!   (`positions`), inside the same transaction.
//!
//! Zombie fencing. One transactional id per *Event Hubs partition*
//! (`<prefix>-<scope hash>-<partition>`): a replica that takes a partition over initialises
//! that id before it reads the partition's position ([`TxnRegistry::fence`]), which aborts
//! the previous owner's open transaction and bumps the producer epoch, so the previous owner
//! — stolen from by load balancing, paused, partitioned away, thawed later — can never
//! commit that partition's output again. Its next send or commit there fails as fenced: it
//! drops the partition as it drops a lost one (`taken_over`), and goes on with the others:
//! a steal is routine when a replica joins, and exiting on it would make two replicas take
//! partitions from each other in turn, each restart fencing the other. A file source has one id per set of inputs, so a second run fences the first.
//! A Kafka source has one id per replica and relies on the group generation (above).
//!
//! Outputs at least once beside the transactions. An output asked at least once (say a SIEM
//! topic on a cluster that ingest shares with the archiver) is sent by an idempotent producer
//! of its own ([`ExactlyOnce::with_side_outputs`]), outside the transactions; before each
//! commit every such send is awaited, so a committed position never passes a record of
//! those outputs that Kafka has not acknowledged. A crash re-sends, to them, what followed
//! the last commit: at least once there, exactly once everywhere else.
//!
//! Reading goes on while a transaction commits. A commit waits for the broker to acknowledge
//! every record of the transaction and to write its markers; stopping the pipeline for that
//! long cost a fifth of the throughput. So a commit runs on a blocking thread while the
//! pipeline keeps reading, and the messages that arrive for a committing transaction wait, in
//! order, to open its next one once the commit is collected (at most one transaction's worth:
//! then reading waits). A waiting message has no position committed anywhere, so when its
//! partition changes hands meanwhile it is dropped, and read again by whoever owns the
//! partition now. A Kafka source does not overlap: its revocation commits the open
//! transaction from the consumer's callback, and a message waiting then would be sent after
//! its partition had left.
//!
//! Errors. A commit that fails for a reason that may pass (a broker away) is retried; one
//! that requires an abort aborts, and then, like a fenced or fatal producer, fails the sink:
//! the pipeline stops without committing and exits 1, and the restart resumes from the
//! positions last committed. Nothing is skipped or written twice either way.

use super::{Drained, Sink, Work};
use crate::positions::{PositionRecord, PositionsTopic};
use mfagap_runtime::kafka::{KafkaConfig, OutRecord, ProducerSettings};
use mfagap_runtime::{Error, ErrorKind};
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long one transactional call (init, send offsets, commit, abort) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of exactly-once delivery.
#[derive(Debug, Clone)]
pub struct ExactlyOnceSettings {
    /// The output cluster.
    pub cluster: ProducerSettings,
    /// The first part of every transactional id this service uses.
    pub transactional_id_prefix: String,
    /// A transaction is committed at least this often: the end-to-end latency it adds.
    pub interval: Duration,
    /// … or once it holds this many source messages (bounds the work an abort repeats).
    pub max_messages: usize,
    /// `transaction.timeout.ms`: how long a crashed replica's open transaction holds back
    /// read_committed readers.
    pub timeout: Duration,
    /// Where Event Hubs and file positions go.
    pub positions: PositionsTopic,
}

/// Where the positions of the source go, and how transactions are cut.
#[derive(Clone)]
pub enum SourcePositions {
    /// A Kafka source: offsets of its consumer group, one transaction per replica.
    KafkaOffsets(Arc<KafkaOffsets>),
    /// Records of the positions topic under `scope`, one transaction for the replica (`id`
    /// names it, stable across runs so that a run fences the one before).
    Topic {
        /// The positions' scope (`file`).
        scope: String,
        /// The transactional id, stable across runs.
        id: String,
    },
    /// Records of the positions topic under `scope`, one transaction per source partition,
    /// opened (and the previous owner fenced) by the source when it takes a partition.
    PerPartition {
        /// The positions' scope (hub and consumer group).
        scope: String,
        /// The transactions, one per partition taken.
        registry: Arc<TxnRegistry>,
    },
    /// Nothing to resume from (the synthetic source): records only.
    None,
}

/// What the Kafka source lends the sink: its group's metadata, and a way to commit before a
/// revocation completes.
pub struct KafkaOffsets {
    /// The consumer group's current metadata (generation, member).
    metadata: Box<dyn Fn() -> Option<ConsumerGroupMetadata> + Send + Sync>,
    /// The single transaction of this replica (set by the sink).
    txn: Mutex<Option<Arc<Mutex<Txn>>>>,
    /// A name of this replica stable across restarts (its static group membership), when
    /// there is one: its transactional id then stays the same, so that a restart aborts
    /// what the crashed run left open at once instead of after the transaction timeout.
    replica: Option<String>,
    /// The sink's failure signal, for a commit that fails in the revocation.
    failure: Mutex<Option<Failure>>,
}

impl KafkaOffsets {
    /// Offsets of the group whose metadata `metadata` gives.
    pub fn new(
        metadata: Box<dyn Fn() -> Option<ConsumerGroupMetadata> + Send + Sync>,
        replica: Option<String>,
    ) -> KafkaOffsets {
        KafkaOffsets {
            metadata,
            replica,
            txn: Mutex::new(None),
            failure: Mutex::new(None),
        }
    }

    /// Commits the open transaction with `metadata` before a revocation completes: after it,
    /// the revoked partitions' offsets could not be committed by this member any more.
    pub fn commit_before_revoke(&self, metadata: &ConsumerGroupMetadata) -> Result<(), Error> {
        let Some(txn) = self.txn.lock().expect("not poisoned").clone() else {
            return Ok(());
        };
        let mut txn = txn.lock().expect("not poisoned");
        let committed = txn.commit(&CommitWith::Offsets(metadata)).map(|_| ());
        if let Err(e) = &committed
            && let Some(failure) = &*self.failure.lock().expect("not poisoned")
        {
            failure.set(e);
        }
        committed
    }
}

/// The sink's failure signal: the first error, and a token the pipeline watches.
#[derive(Clone, Default)]
struct Failure {
    token: CancellationToken,
    error: Arc<Mutex<Option<Error>>>,
}

impl Failure {
    fn set(&self, e: &Error) {
        let mut slot = self.error.lock().expect("not poisoned");
        if slot.is_none() {
            *slot = Some(Error::new(e.kind(), e.to_string()));
        }
        self.token.cancel();
    }

    fn get(&self) -> Error {
        self.error
            .lock()
            .expect("not poisoned")
            .as_ref()
            .map_or_else(
                || Error::fatal("the exactly-once sink failed"),
                |e| Error::new(e.kind(), e.to_string()),
            )
    }
}

/// How a commit records positions.
enum CommitWith<'a> {
    Offsets(&'a ConsumerGroupMetadata),
    Topic {
        scope: &'a str,
        topic: &'a str,
        /// The topic's partition count, for each record's slot.
        count: i32,
    },
    Nothing,
}

/// One transactional producer and what its open transaction holds.
pub struct Txn {
    id: String,
    producer: ThreadedProducer<DefaultProducerContext>,
    open: bool,
    /// Source messages in the open transaction.
    messages: usize,
    began: Instant,
    /// Per source partition: the resume point after the last message taken, and what the
    /// source needs to resume there.
    positions: BTreeMap<String, (i64, Option<serde_json::Value>)>,
    /// Records in the open transaction, by kind, for the metrics of a commit.
    kinds: BTreeMap<&'static str, u64>,
}

impl Txn {
    /// A transactional producer with id `id`, initialised: any earlier producer with the same
    /// id is fenced and its open transaction aborted. Blocking.
    pub fn open(settings: &ExactlyOnceSettings, id: &str) -> Result<Txn, Error> {
        let mut c: KafkaConfig = settings.cluster.config("transactional output producer");
        c.force("transactional.id", id).force(
            "transaction.timeout.ms",
            &settings.timeout.as_millis().max(1000).to_string(),
        );
        let producer: ThreadedProducer<DefaultProducerContext> =
            c.create(DefaultProducerContext)?;
        producer
            .init_transactions(CALL_TIMEOUT)
            .map_err(|e| classify("cannot start transactions", &e))?;
        tracing::info!(transactional_id = id, "transactional producer ready");
        Ok(Txn {
            id: id.to_owned(),
            producer,
            open: false,
            messages: 0,
            began: Instant::now(),
            positions: BTreeMap::new(),
            kinds: BTreeMap::new(),
        })
    }

    /// Adds one message's records to the open transaction (beginning one if needed).
    fn send(&mut self, work: &Work) -> Result<(), Error> {
        if !self.open {
            self.producer
                .begin_transaction()
                .map_err(|e| classify("cannot begin a transaction", &e))?;
            self.open = true;
            self.began = Instant::now();
        }
        for r in &work.records {
            self.produce(r)?;
            *self.kinds.entry(r.kind).or_default() += 1;
        }
        self.messages += 1;
        self.positions.insert(
            work.partition.clone(),
            (work.position + 1, work.resume.clone()),
        );
        Ok(())
    }

    fn produce(&self, r: &OutRecord) -> Result<(), Error> {
        self.produce_to(r, None)
    }

    /// Sends a record to `partition`, or where its key (or the partitioner) puts it.
    fn produce_to(&self, r: &OutRecord, partition: Option<i32>) -> Result<(), Error> {
        loop {
            let mut record = BaseRecord::<[u8], [u8]>::to(&r.topic)
                .payload(&r.payload)
                .headers(r.owned_headers());
            if let Some(k) = &r.key {
                record = record.key(k);
            }
            if let Some(p) = partition {
                record = record.partition(p);
            }
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                // The local queue is full: its thread drains it to the broker.
                Err((
                    KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    _,
                )) => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => {
                    // A producer fenced while its transaction was open refuses sends as
                    // fatal; its fatal error says why.
                    if let Some((code, reason)) = self.producer.client().fatal_error()
                        && is_fenced(code)
                    {
                        return Err(Error::fenced(format!(
                            "cannot send a record: {reason} (another replica took over with the same transactional id)"
                        )));
                    }
                    return Err(classify("cannot send a record", &e));
                }
            }
        }
    }

    /// Commits the open transaction with the positions it holds; returns them. Blocking.
    fn commit(&mut self, with: &CommitWith<'_>) -> Result<Vec<(String, i64)>, Error> {
        if !self.open {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        match with {
            CommitWith::Offsets(metadata) => {
                let mut tpl = TopicPartitionList::new();
                for (name, (next, _)) in &self.positions {
                    let Some((topic, partition)) = name.rsplit_once('/') else {
                        continue;
                    };
                    let Ok(partition) = partition.parse::<i32>() else {
                        continue;
                    };
                    tpl.add_partition_offset(topic, partition, Offset::Offset(*next))
                        .map_err(|e| Error::fatal(e.to_string()))?;
                }
                if tpl.count() > 0 {
                    self.retry("cannot send offsets to the transaction", |p| {
                        p.send_offsets_to_transaction(&tpl, metadata, CALL_TIMEOUT)
                    })?;
                }
            }
            CommitWith::Topic {
                scope,
                topic,
                count,
            } => {
                let records: Vec<(OutRecord, i32)> = self
                    .positions
                    .iter()
                    .map(|(partition, (next, resume))| {
                        let record = PositionRecord {
                            scope: (*scope).to_owned(),
                            partition: partition.clone(),
                            position: *next,
                            resume: resume.clone(),
                            writer: self.id.clone(),
                        };
                        (
                            record.out_record(topic),
                            PositionRecord::slot(partition, *count),
                        )
                    })
                    .collect();
                for (r, slot) in &records {
                    self.produce_to(r, Some(*slot))?;
                }
            }
            CommitWith::Nothing => {}
        }
        self.retry("cannot commit the transaction", |p| {
            p.commit_transaction(CALL_TIMEOUT)
        })?;
        self.open = false;
        self.messages = 0;
        tracing::debug!(transactional_id = %self.id, positions = ?self.positions.iter().map(|(p, (n, _))| (p, n)).collect::<Vec<_>>(), "transaction committed");
        crate::metrics::transaction_committed(&std::mem::take(&mut self.kinds), started.elapsed());
        let committed = std::mem::take(&mut self.positions)
            .into_iter()
            .map(|(p, (next, _))| (p, next))
            .collect();
        Ok(committed)
    }

    /// Runs a transactional call, again while its error may pass; aborts the transaction
    /// when the error requires it.
    fn retry(
        &mut self,
        what: &str,
        call: impl Fn(&ThreadedProducer<DefaultProducerContext>) -> Result<(), KafkaError>,
    ) -> Result<(), Error> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match call(&self.producer) {
                Ok(()) => return Ok(()),
                Err(KafkaError::Transaction(e))
                    if e.is_retriable() && Instant::now() < deadline =>
                {
                    tracing::warn!(error = %e, "{what}; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => {
                    let error = classify(what, &e);
                    if let KafkaError::Transaction(t) = &e
                        && t.txn_requires_abort()
                        && let Err(a) = self.abort()
                    {
                        tracing::warn!(error = %a, transactional_id = %self.id, "abort failed");
                    }
                    return Err(error);
                }
            }
        }
    }

    /// Aborts the open transaction: nothing of it is ever seen. Blocking. An error says the
    /// producer cannot go on (fenced: another replica took its partition over).
    fn abort(&mut self) -> Result<(), Error> {
        if !self.open {
            return Ok(());
        }
        self.open = false;
        self.messages = 0;
        self.positions.clear();
        self.kinds.clear();
        crate::metrics::transaction_aborted();
        self.producer
            .abort_transaction(CALL_TIMEOUT)
            .map_err(|e| classify("cannot abort the transaction", &e))
    }
}

/// Whether an error code says that a newer producer with the same transactional id exists.
fn is_fenced(code: rdkafka::types::RDKafkaErrorCode) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        code,
        C::ProducerFenced | C::InvalidProducerEpoch | C::Fenced
    )
}

/// What a failed transactional call means for the pipeline.
fn classify(what: &str, e: &KafkaError) -> Error {
    let message = format!("{what}: {e}");
    match e {
        KafkaError::Transaction(t) if t.is_fatal() => {
            if is_fenced(t.code()) {
                Error::fenced(format!(
                    "{message} (another replica took over with the same transactional id)"
                ))
            } else {
                Error::fatal(message)
            }
        }
        KafkaError::Transaction(t)
            if matches!(
                t.code(),
                rdkafka::types::RDKafkaErrorCode::UnsupportedVersion
                    | rdkafka::types::RDKafkaErrorCode::UnsupportedFeature
                    | rdkafka::types::RDKafkaErrorCode::UnsupportedForMessageFormat
                    | rdkafka::types::RDKafkaErrorCode::ClusterAuthorizationFailed
                    | rdkafka::types::RDKafkaErrorCode::TransactionalIdAuthorizationFailed
            ) =>
        {
            Error::configuration(format!(
                "{message}: the output Kafka does not allow transactions for this client (use --delivery at-least-once, or grant it)"
            ))
        }
        _ => Error::fatal(message),
    }
}

/// The per-partition transactional producers of an Event Hubs replica.
pub struct TxnRegistry {
    settings: ExactlyOnceSettings,
    /// `<prefix>-<scope hash>-`: the partition id completes each transactional id.
    id_prefix: String,
    txns: Mutex<HashMap<String, Arc<Mutex<Txn>>>>,
}

impl TxnRegistry {
    /// A registry for the partitions of `scope`.
    pub fn new(settings: &ExactlyOnceSettings, scope: &str) -> TxnRegistry {
        TxnRegistry {
            settings: settings.clone(),
            id_prefix: format!(
                "{}-{:016x}-",
                settings.transactional_id_prefix,
                xxhash(scope)
            ),
            txns: Mutex::new(HashMap::new()),
        }
    }

    /// Opens the transactional producer of `partition` unless it is open: the previous
    /// owner's is fenced. Blocking; call it before reading the partition's position.
    pub fn fence(&self, partition: &str) -> Result<(), Error> {
        if self.get(partition).is_some() {
            return Ok(());
        }
        let id = format!("{}{}", self.id_prefix, partition.replace('/', "-"));
        let txn = Txn::open(&self.settings, &id)?;
        self.txns
            .lock()
            .expect("not poisoned")
            .insert(partition.to_owned(), Arc::new(Mutex::new(txn)));
        Ok(())
    }

    fn get(&self, partition: &str) -> Option<Arc<Mutex<Txn>>> {
        self.txns
            .lock()
            .expect("not poisoned")
            .get(partition)
            .cloned()
    }

    fn remove(&self, partition: &str) -> Option<Arc<Mutex<Txn>>> {
        self.txns.lock().expect("not poisoned").remove(partition)
    }

    /// Removes `partition`'s producer if it is still `txn` (not one opened since).
    fn remove_if(&self, partition: &str, txn: &Arc<Mutex<Txn>>) -> bool {
        let mut txns = self.txns.lock().expect("not poisoned");
        if txns.get(partition).is_some_and(|t| Arc::ptr_eq(t, txn)) {
            txns.remove(partition);
            return true;
        }
        false
    }

    /// Whether `partition` has an open producer (a partition dropped as taken over has none
    /// until the source takes it again).
    pub fn holds(&self, partition: &str) -> bool {
        self.get(partition).is_some()
    }

    fn all(&self) -> Vec<(String, Arc<Mutex<Txn>>)> {
        self.txns
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|(p, t)| (p.clone(), t.clone()))
            .collect()
    }
}

/// A stable hash of a scope, for transactional ids that fit Kafka's limits.
fn xxhash(s: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(s.as_bytes())
}

/// A commit running on a blocking thread: the Event Hubs partition it is for (per-partition
/// transactions), its transaction, and the positions it makes final.
type Commit = tokio::task::JoinHandle<(
    Option<String>,
    Arc<Mutex<Txn>>,
    Result<Vec<(String, i64)>, Error>,
)>;

/// A transaction's identity while its commit runs (the address of its shared producer).
fn key(txn: &Arc<Mutex<Txn>>) -> usize {
    Arc::as_ptr(txn) as usize
}

/// The outputs delivered at least once beside the transactions, and their sends in flight.
struct SideOutputs {
    producer: mfagap_runtime::kafka::Producer,
    topics: std::collections::HashSet<String>,
    sending: tokio::task::JoinSet<Result<(), Error>>,
}

/// The exactly-once sink.
pub struct ExactlyOnce {
    /// Outputs asked at least once, if any.
    side: Option<SideOutputs>,
    settings: ExactlyOnceSettings,
    positions: SourcePositions,
    /// The replica's one transaction (every mode but per partition).
    single: Option<Arc<Mutex<Txn>>>,
    failure: Failure,
    /// Partitions handed back to the source, whose late messages are not taken.
    forgotten: std::collections::HashSet<String>,
    /// Positions committed and not yet handed to the source.
    committed: Vec<(String, i64)>,
    /// Commit tasks not yet collected (see [`ExactlyOnce::commit_all`]).
    commits: std::collections::VecDeque<Commit>,
    /// Whether reading goes on while a commit runs (every source but Kafka; see the design
    /// note): the messages taken meanwhile wait in `waiting`.
    overlap: bool,
    /// Transactions whose commit runs, with the messages that commit holds.
    committing: HashMap<usize, usize>,
    /// Messages taken while their transaction was committing, in order, with that
    /// transaction: each goes into its next one once the commit is collected — unless the
    /// partition changed hands meanwhile (see [`ExactlyOnce::collect`]).
    waiting: std::collections::VecDeque<(usize, Work)>,
}

impl ExactlyOnce {
    /// The sink; opens the replica's transactional producer unless transactions are per
    /// partition. Blocking (it initialises transactions).
    pub fn open(
        settings: ExactlyOnceSettings,
        positions: SourcePositions,
    ) -> Result<ExactlyOnce, Error> {
        let single = match &positions {
            SourcePositions::PerPartition { .. } => None,
            SourcePositions::Topic { id, .. } => Some(Txn::open(&settings, id)?),
            SourcePositions::KafkaOffsets(_) | SourcePositions::None => {
                let replica = match &positions {
                    SourcePositions::KafkaOffsets(k) => k.replica.clone(),
                    _ => None,
                };
                let id = format!(
                    "{}-{}",
                    settings.transactional_id_prefix,
                    replica.unwrap_or_else(instance_id)
                );
                Some(Txn::open(&settings, &id)?)
            }
        }
        .map(|t| Arc::new(Mutex::new(t)));
        let failure = Failure::default();
        if let (SourcePositions::KafkaOffsets(k), Some(txn)) = (&positions, &single) {
            *k.txn.lock().expect("not poisoned") = Some(txn.clone());
            *k.failure.lock().expect("not poisoned") = Some(failure.clone());
        }
        // A Kafka source's revocation commits the open transaction from the consumer's
        // callback: a message still waiting then would be sent after its partition left.
        let overlap = !matches!(positions, SourcePositions::KafkaOffsets(_));
        Ok(ExactlyOnce {
            overlap,
            committing: HashMap::new(),
            waiting: Default::default(),
            side: None,
            settings,
            positions,
            single,
            failure,
            forgotten: std::collections::HashSet::new(),
            committed: Vec::new(),
            commits: Default::default(),
        })
    }

    /// Sends the records of `topics` by `producer`, at least once, outside the transactions;
    /// each commit first waits until Kafka acknowledged every one sent before it.
    pub fn with_side_outputs(
        mut self,
        producer: mfagap_runtime::kafka::Producer,
        topics: Vec<String>,
    ) -> ExactlyOnce {
        if !topics.is_empty() {
            self.side = Some(SideOutputs {
                producer,
                topics: topics.into_iter().collect(),
                sending: tokio::task::JoinSet::new(),
            });
        }
        self
    }

    /// Awaits every side-output send started so far. Cancel-safe: the sends run on, and the
    /// next call awaits what is left.
    async fn side_delivered(&mut self) -> Result<(), Error> {
        let Some(side) = self.side.as_mut() else {
            return Ok(());
        };
        while let Some(done) = side.sending.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(self.fail(e)),
                Err(e) => {
                    return Err(
                        self.fail(Error::fatal(format!("an at-least-once send failed: {e}")))
                    );
                }
            }
        }
        Ok(())
    }

    fn txn_for(&self, partition: &str) -> Option<Arc<Mutex<Txn>>> {
        match &self.positions {
            SourcePositions::PerPartition { registry, .. } => registry.get(partition),
            _ => self.single.clone(),
        }
    }

    fn open_txns(&self) -> Vec<(Option<String>, Arc<Mutex<Txn>>)> {
        match &self.positions {
            SourcePositions::PerPartition { registry, .. } => registry
                .all()
                .into_iter()
                .map(|(p, t)| (Some(p), t))
                .collect(),
            _ => self.single.iter().map(|t| (None, t.clone())).collect(),
        }
    }

    /// An Event Hubs partition whose producer was fenced: another replica took it over while
    /// its transaction was open (a load-balancing steal, or this replica paused past its
    /// ownership). The broker aborted that transaction; the partition is dropped here as a
    /// lost partition is, and its new owner resumes from the last committed position. If the
    /// source still reads it (it has not noticed the loss yet), its messages are dropped
    /// until the source takes it again, fencing anew and resuming from the positions topic.
    fn taken_over(
        &mut self,
        partition: &str,
        txn: &Arc<Mutex<Txn>>,
        e: Error,
    ) -> Result<(), Error> {
        let SourcePositions::PerPartition { registry, .. } = &self.positions else {
            return Err(self.fail(e));
        };
        if !registry.remove_if(partition, txn) {
            return Ok(()); // the source took the partition again since: a new producer
        }
        self.forgotten.insert(partition.to_owned());
        crate::metrics::partition_fenced();
        tracing::warn!(
            partition,
            error = %e,
            "partition taken over by another replica while its transaction was open: that transaction is aborted and the partition dropped"
        );
        Ok(())
    }

    fn fail(&self, e: Error) -> Error {
        self.failure.set(&e);
        e
    }

    /// Starts the commit of every open transaction (each on a blocking thread, together)
    /// that is not committing already — of those open for `interval` when `due_only`; the
    /// positions they commit wait in `committed` for the source. With `wait`, or when reading
    /// may not overlap a commit, returns once every commit is done; otherwise reading goes on
    /// meanwhile, and the commits are collected later.
    ///
    /// Cancel-safe (the pipeline's `select!` may drop it while it awaits): the commit tasks
    /// run on, and the next call collects what they committed.
    async fn commit_all(&mut self, due_only: bool, wait: bool) -> Result<(), Error> {
        let wait = wait || !self.overlap;
        self.collect(wait).await?;
        // The at-least-once outputs' records of what is about to be committed: acknowledged
        // first.
        self.side_delivered().await?;
        let interval = self.settings.interval;
        let topic = self.settings.positions.topic.clone();
        for (partition, txn) in self.open_txns() {
            if self.committing.contains_key(&key(&txn)) {
                continue;
            }
            let messages = {
                let t = txn.lock().expect("not poisoned");
                if !t.open || (due_only && t.began.elapsed() < interval) {
                    continue;
                }
                t.messages
            };
            self.committing.insert(key(&txn), messages);
            let positions = self.positions.clone();
            let topic = topic.clone();
            let topic_settings = self.settings.positions.clone();
            self.commits.push_back(tokio::task::spawn_blocking(move || {
                let committed = (|| {
                    let mut t = txn.lock().expect("not poisoned");
                    let metadata;
                    let with = match &positions {
                        SourcePositions::KafkaOffsets(k) => {
                            metadata = (k.metadata)();
                            match &metadata {
                                Some(m) => CommitWith::Offsets(m),
                                None => {
                                    return Err(Error::fatal(
                                        "the Kafka source has no group metadata to commit offsets with",
                                    ));
                                }
                            }
                        }
                        SourcePositions::Topic { scope, .. }
                        | SourcePositions::PerPartition { scope, .. } => CommitWith::Topic {
                            scope: scope.as_str(),
                            topic: topic.as_str(),
                            count: topic_settings.count()?,
                        },
                        SourcePositions::None => CommitWith::Nothing,
                    };
                    t.commit(&with)
                })();
                (partition, txn, committed)
            }));
        }
        if wait {
            self.collect(true).await?;
        }
        Ok(())
    }

    /// Collects the commit tasks that are done (all of them, waiting, with `all`), keeping
    /// what each committed, then hands the waiting messages to the transactions no longer
    /// committing. Cancel-safe: a task leaves the queue only once its result is kept.
    async fn collect(&mut self, all: bool) -> Result<(), Error> {
        let mut i = 0;
        while i < self.commits.len() {
            if !all && !self.commits[i].is_finished() {
                i += 1;
                continue;
            }
            let done = (&mut self.commits[i]).await;
            self.commits.remove(i);
            match done {
                Ok((partition, txn, result)) => {
                    self.committing.remove(&key(&txn));
                    match result {
                        Ok(points) => self.committed.extend(points),
                        Err(e) if e.kind() == ErrorKind::Fenced && partition.is_some() => {
                            let partition = partition.expect("checked");
                            self.taken_over(&partition, &txn, e)?;
                        }
                        Err(e) => return Err(self.fail(e)),
                    }
                }
                Err(e) => return Err(self.fail(Error::fatal(format!("a commit task failed: {e}")))),
            }
        }
        let waiting = std::mem::take(&mut self.waiting);
        for (waited_for, work) in waiting {
            match self.txn_for(&work.partition) {
                Some(t) if key(&t) == waited_for => self.deliver(work)?,
                // The partition was lost, or lost and taken again, while the message waited:
                // its position was never committed, so whoever owns the partition now reads
                // it again from the committed one.
                _ => {
                    tracing::debug!(partition = %work.partition, position = work.position, "a waiting message of a partition that changed hands is dropped")
                }
            }
        }
        Ok(())
    }

    /// Puts one message's records into its partition's transaction, or makes it wait while
    /// that transaction commits.
    fn deliver(&mut self, work: Work) -> Result<(), Error> {
        let txn = self.txn_for(&work.partition);
        if txn.is_none() && self.forgotten.contains(&work.partition) {
            return Ok(()); // handed back: its new owner reads it from the committed position
        }
        // Taken again since (the source fenced it anew): its messages count again.
        self.forgotten.remove(&work.partition);
        let Some(txn) = txn else {
            return Err(self.fail(Error::fatal(format!(
                "no transaction for partition {}: it was not opened (fenced) before its first message",
                work.partition
            ))));
        };
        if self.committing.contains_key(&key(&txn)) {
            self.waiting.push_back((key(&txn), work));
            return Ok(());
        }
        let sent = txn.lock().expect("not poisoned").send(&work);
        match sent {
            Err(e)
                if e.kind() == ErrorKind::Fenced
                    && matches!(self.positions, SourcePositions::PerPartition { .. }) =>
            {
                self.taken_over(&work.partition, &txn, e)
            }
            other => other.map_err(|e| self.fail(e)),
        }
    }

    /// Messages taken and not yet committed: in open transactions, in commits running, and
    /// waiting for one.
    fn messages(&self) -> usize {
        let open: usize = self
            .open_txns()
            .iter()
            .map(|(_, t)| {
                self.committing
                    .get(&key(t))
                    .copied()
                    .unwrap_or_else(|| t.lock().expect("not poisoned").messages)
            })
            .sum();
        open + self.waiting.len()
    }

    /// Messages in the open transactions that are not committing: what the next commit takes.
    fn uncommitted(&self) -> usize {
        self.open_txns()
            .iter()
            .filter(|(_, t)| !self.committing.contains_key(&key(t)))
            .map(|(_, t)| t.lock().expect("not poisoned").messages)
            .sum()
    }
}

#[async_trait::async_trait]
impl Sink for ExactlyOnce {
    async fn reserve(&mut self) -> Result<(), Error> {
        // First what a cancelled call left running, and the commits done meanwhile.
        let max = self.settings.max_messages.max(1);
        self.collect(!self.overlap).await?;
        // A full transaction waits for its commit while the next one fills: no more than
        // one transaction's worth of messages waits.
        if self.waiting.len() >= max {
            self.collect(true).await?;
        }
        if self.uncommitted() >= max {
            self.commit_all(false, false).await?;
        }
        Ok(())
    }

    fn send(&mut self, mut work: Work) -> Result<(), Error> {
        if self.txn_for(&work.partition).is_none() && self.forgotten.contains(&work.partition) {
            return Ok(()); // handed back: its new owner reads it from the committed position
        }
        if let Some(side) = self.side.as_mut() {
            let (aside, kept): (Vec<OutRecord>, Vec<OutRecord>) = std::mem::take(&mut work.records)
                .into_iter()
                .partition(|r| side.topics.contains(&r.topic));
            work.records = kept;
            for r in aside {
                let producer = side.producer.clone();
                side.sending
                    .spawn(async move { producer.deliver(&r).await });
            }
        }
        self.deliver(work)
    }

    async fn positions(&mut self) -> Result<Vec<(String, i64)>, Error> {
        self.commit_all(true, false).await?;
        Ok(std::mem::take(&mut self.committed))
    }

    fn commit_failed(&mut self, points: &[(String, i64)]) {
        // The positions are committed in Kafka already; what failed is the source's own
        // record of them (an Event Hubs checkpoint), which the next commit writes again.
        tracing::debug!(?points, "the source could not record committed positions");
    }

    fn forget(&mut self, partition: &str) {
        if let SourcePositions::PerPartition { registry, .. } = &self.positions
            && let Some(txn) = registry.remove(partition)
        {
            // Its open transaction dies with it: nothing of it was committed, and the next
            // owner starts from what was. The next owner may have fenced it already, which
            // aborted it just the same.
            let name = partition.to_owned();
            std::thread::spawn(move || {
                if let Err(e) = txn.lock().expect("not poisoned").abort() {
                    tracing::info!(partition = %name, error = %e, "a lost partition's transaction was aborted by its new owner");
                }
            });
            self.forgotten.insert(partition.to_owned());
        }
        // Not committed, so read again by the next owner.
        self.waiting.retain(|(_, w)| w.partition != partition);
    }

    fn in_flight(&self) -> usize {
        self.messages()
    }

    fn failed(&self) -> CancellationToken {
        self.failure.token.clone()
    }

    fn failure(&self) -> Error {
        self.failure.get()
    }

    async fn drain(&mut self, timeout: Option<Duration>) -> Result<Drained, Error> {
        let undelivered = self.messages();
        let commit = self.commit_all(false, true);
        match timeout {
            None => commit.await.map(|_| Drained::default()),
            Some(t) => match tokio::time::timeout(t, commit).await {
                Ok(done) => done.map(|_| Drained::default()),
                Err(_) => Ok(Drained { undelivered }),
            },
        }
    }
}

/// A name for this replica, unique per process.
fn instance_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "mfagap".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    format!("{host}-{}-{nanos:08x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::types::RDKafkaErrorCode as C;

    #[test]
    fn a_newer_producer_with_the_same_id_is_told_apart_from_other_failures() {
        for code in [C::ProducerFenced, C::InvalidProducerEpoch, C::Fenced] {
            assert!(is_fenced(code), "{code:?}");
        }
        for code in [
            C::BrokerTransportFailure,
            C::MessageTimedOut,
            C::TransactionCoordinatorFenced,
        ] {
            assert!(!is_fenced(code), "{code:?}");
        }
    }

    #[test]
    fn transactional_ids_are_short_and_stable_whatever_the_scope() {
        let long = format!("eventhubs:{}/hub/group", "n".repeat(500));
        assert_eq!(xxhash(&long), xxhash(&long));
        assert_ne!(xxhash(&long), xxhash("eventhubs:other/hub/group"));
    }
}
