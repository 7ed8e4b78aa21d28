//! The archiver's loop: consume, buffer per partition, roll, publish; follow rebalances.
//!
//! One thread owns the Kafka consumer, the buffers and the Parquet encoders, so no lock guards
//! them and a rebalance callback (which librdkafka runs inside `poll`, on this thread) can
//! never race a publish. Storage calls run on the service's runtime through its handle.
//!
//! Rebalances are eager: every assignment is preceded by a revocation of everything. On
//! revocation the buffers of the revoked partitions are dropped (their records are re-read by
//! whoever gets them); on assignment each partition is recovered (`commit::recover`) and
//! assigned at its published position, inside the callback, before any fetch starts. Kafka's
//! committed offsets are written after each publish, for lag monitoring only.

use crate::commit::{self, Outcome, Unit};
use crate::config::{ArchiveArgs, ArchiveSettings};
use crate::deadletter;
use crate::layout::{Hour, Range, StartPosition};
use crate::metrics;
use crate::storage::Store;
use crate::writer::{self, FileSettings, HourBuffer};
use anyhow::{Context, Result, bail};
use mfagap_runtime::kafka::{ConsumerLag, KafkaConfig, Producer};
use mfagap_runtime::{Backoff, Readiness};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What happened in one run, for the log line at the end and for `mfagap run`'s summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Kafka records read.
    pub messages: u64,
    /// Rows published to Parquet.
    pub rows: u64,
    /// Parquet files published.
    pub files: u64,
    /// Bytes of Parquet published.
    pub bytes: u64,
    /// Records that were not output records, sent to the dead-letter topic.
    pub dead_letters: u64,
    /// Units dropped because another replica committed their offsets first.
    pub fenced: u64,
}

/// What the loop needs besides the consumer.
pub(crate) struct Archiver {
    pub store: Store,
    /// The dead-letter producer.
    pub sink: Producer,
    pub runtime: Handle,
    pub ready: Readiness,
    pub settings: Settings,
}

/// The roll and publish settings, from `ArchiveArgs`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub topic: String,
    pub dead_letter_topic: String,
    pub start: StartPosition,
    pub roll_rows: usize,
    pub roll_bytes: u64,
    pub roll_age: Duration,
    pub max_buffered: u64,
    pub orphan_age: Duration,
    pub grace_period: Duration,
    pub file: FileSettings,
    /// This process's name in commit records and staged names.
    pub writer: String,
}

impl Settings {
    pub fn from_args(a: &ArchiveArgs) -> Result<Settings> {
        Ok(Settings {
            topic: a.topic.clone(),
            dead_letter_topic: a.dead_letter_topic.clone(),
            start: a.start_position,
            roll_rows: a.roll_rows.max(1),
            roll_bytes: a.roll_bytes.max(1),
            roll_age: a.roll_age,
            max_buffered: a.max_buffered.max(1),
            orphan_age: a.orphan_age,
            grace_period: a.grace_period,
            file: FileSettings::new(a.zstd_level, a.row_group_rows)?,
            writer: writer_id(),
        })
    }
}

/// A name unique to this process: host, pid and a random suffix.
fn writer_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(40)
        .collect();
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// A rebalance, as the callback saw it, for the loop to act on.
#[derive(Debug)]
enum Event {
    Assigned(Vec<(i32, i64)>),
    Revoked(Vec<i32>),
}

/// Runs recovery and seeks inside librdkafka's rebalance callback.
struct Ctx {
    store: Store,
    start: StartPosition,
    orphan_age: Duration,
    runtime: Handle,
    events: Arc<Mutex<Vec<Event>>>,
    failure: Arc<Mutex<Option<anyhow::Error>>>,
    lag: ConsumerLag,
}

impl ClientContext for Ctx {
    fn stats(&self, statistics: rdkafka::Statistics) {
        self.lag.update(&statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // The end of a partition is news (`partitions_at_end`), not an error.
        if matches!(
            &error,
            KafkaError::PartitionEOF(_)
                | KafkaError::Global(rdkafka::types::RDKafkaErrorCode::PartitionEOF)
        ) {
            return;
        }
        tracing::error!("librdkafka: {error}: {reason}");
    }
}

impl Ctx {
    /// Recovers every assigned partition and sets its start offset in `tpl`.
    fn recover(&self, tpl: &mut TopicPartitionList) -> Result<Vec<(i32, i64)>> {
        let mut out = Vec::new();
        let elements: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        for (topic, p) in elements {
            let r = self
                .runtime
                .block_on(commit::recover(&self.store, &topic, p, self.orphan_age))
                .with_context(|| format!("cannot recover partition {topic}/{p}"))?;
            metrics::rolled_forward(r.rolled_forward);
            let offset = match (r.resume, self.start) {
                (Some(o), _) => Offset::Offset(o),
                (None, StartPosition::Earliest) => Offset::Beginning,
                (None, StartPosition::Latest) => Offset::End,
            };
            tpl.set_partition_offset(&topic, p, offset)?;
            tracing::info!(topic, partition = p, resume = ?r.resume, "partition assigned");
            out.push((p, r.resume.unwrap_or(-1)));
        }
        Ok(out)
    }
}

impl ConsumerContext for Ctx {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => match self.recover(tpl) {
                Ok(assigned) => {
                    if let Err(e) = consumer.assign(tpl) {
                        *self.failure.lock().expect("not poisoned") =
                            Some(anyhow::anyhow!("cannot assign partitions: {e}"));
                    }
                    self.events
                        .lock()
                        .expect("not poisoned")
                        .push(Event::Assigned(assigned));
                }
                Err(e) => {
                    // Without a published position a partition cannot be read exactly once:
                    // take nothing and stop; a restart recovers again.
                    let _ = consumer.unassign();
                    *self.failure.lock().expect("not poisoned") = Some(e);
                }
            },
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(partitions = ?revoked, "partitions revoked");
                self.events
                    .lock()
                    .expect("not poisoned")
                    .push(Event::Revoked(revoked));
                let _ = consumer.unassign();
            }
            other => {
                tracing::warn!(error = ?other, "rebalance error");
                let _ = consumer.unassign();
            }
        }
    }
}

/// The open unit of one assigned partition.
struct Partition {
    /// The next offset to read; anything below is already published or buffered.
    next: i64,
    /// First offset of the open unit, once it holds anything.
    first: Option<i64>,
    files: BTreeMap<Hour, HourBuffer>,
    rows: u64,
    dead_letters: Vec<JoinHandle<Result<(), mfagap_runtime::Error>>>,
    opened: Option<Instant>,
    /// Read to the broker's end (a partition-EOF event) and nothing read since.
    at_end: bool,
}

impl Partition {
    fn new(next: i64) -> Partition {
        Partition {
            next,
            first: None,
            files: BTreeMap::new(),
            rows: 0,
            dead_letters: Vec::new(),
            opened: None,
            at_end: false,
        }
    }

    /// Memory the unit holds, for `--roll-bytes` and `--max-buffered`.
    fn memory(&self) -> u64 {
        self.files.values().map(HourBuffer::memory).sum()
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    fn touch(&mut self, offset: i64) {
        self.first.get_or_insert(offset);
        self.opened.get_or_insert_with(Instant::now);
        self.next = offset + 1;
    }
}

/// Builds the consumer: eager rebalances, no automatic commits, explicit start offsets.
fn consumer(args: &ArchiveSettings, ctx: Ctx) -> Result<BaseConsumer<Ctx>> {
    let mut c = KafkaConfig::new("Kafka consumer", &args.bootstrap);
    c.set("group.id", &args.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("session.timeout.ms", "30000")
        .set("heartbeat.interval.ms", "3000")
        // A publish to slow object storage may hold the loop for a while.
        .set("max.poll.interval.ms", "600000")
        // Prefetch is per assigned partition: 8 MB each keeps fetches large enough to stay
        // ahead of the encoder while memory stays a small multiple of the partition count.
        .set("queued.max.messages.kbytes", "8192")
        .set("queued.min.messages", "10000")
        // Once a partition's prefetch is full, its next fetch waits this long after the
        // queue drains below it (librdkafka's default, 1 s): with 8 MB of records of about
        // 2 KB that capped reading at a few thousand rows a second per partition, and the
        // archiver's CPU stood idle.
        .set("fetch.queue.backoff.ms", "10")
        .set("socket.keepalive.enable", "true")
        .operator(&args.kafka_properties)
        .statistics();
    // The resume logic assumes eager rebalances: revoke everything, then assign.
    if c.get("partition.assignment.strategy")
        .is_some_and(|s| s.contains("cooperative"))
    {
        tracing::warn!("the archiver uses eager rebalancing; ignoring the cooperative strategy");
    }
    c.set("partition.assignment.strategy", "range,roundrobin");
    let topic = args.archive.topic.as_str();
    tracing::info!(topic, group = %args.group, "archiver topic");
    let consumer: BaseConsumer<Ctx> = c.create(ctx)?;
    consumer
        .subscribe(&[topic])
        .context("cannot subscribe to the topic")?;
    Ok(consumer)
}

/// The loop; returns when `stop` is cancelled (after publishing what it holds) or on an error
/// it cannot get past.
pub(crate) fn run(args: &ArchiveSettings, a: Archiver, stop: CancellationToken) -> Result<Summary> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let failure = Arc::new(Mutex::new(None));
    let lag = ConsumerLag::default();
    let consumer = consumer(
        args,
        Ctx {
            store: a.store.clone(),
            start: a.settings.start,
            orphan_age: a.settings.orphan_age,
            runtime: a.runtime.clone(),
            events: events.clone(),
            failure: failure.clone(),
            lag: lag.clone(),
        },
    )?;
    let mut l = Loop {
        a,
        events,
        failure,
        lag,
        parts: HashMap::new(),
        summary: Summary::default(),
        last_lag: Instant::now(),
        last_tick: Instant::now(),
        counted: 0,
        iterations: 0,
    };
    let result = l.run(&consumer, &stop);
    consumer.unsubscribe();
    result.map(|()| l.summary)
}

type Kafka = BaseConsumer<Ctx>;

struct Loop {
    a: Archiver,
    events: Arc<Mutex<Vec<Event>>>,
    failure: Arc<Mutex<Option<anyhow::Error>>>,
    lag: ConsumerLag,
    parts: HashMap<i32, Partition>,
    summary: Summary,
    last_lag: Instant,
    last_tick: Instant,
    /// Messages already added to the metric.
    counted: u64,
    iterations: u64,
}

impl Loop {
    fn run(&mut self, c: &Kafka, stop: &CancellationToken) -> Result<()> {
        self.a.ready.set(true);
        while !stop.is_cancelled() {
            let polled = c.poll(Duration::from_millis(100));
            self.apply_events();
            if let Some(e) = self.failure.lock().expect("not poisoned").take() {
                return Err(e);
            }
            let idle = polled.is_none();
            match polled {
                None => {}
                Some(Ok(m)) => self.handle(c, &m)?,
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    if let Some(part) = self.parts.get_mut(&p) {
                        part.at_end = true;
                    }
                }
                Some(Err(e)) => {
                    if let Some((code, reason)) = c.client().fatal_error() {
                        bail!("the Kafka consumer failed for good: {code}: {reason}");
                    }
                    tracing::warn!(error = %e, "Kafka consumer error; continuing");
                }
            }
            // Housekeeping ten times a second, not per message: reading the clock and
            // updating metrics per record showed in profiles.
            self.iterations += 1;
            if (idle || self.iterations.is_multiple_of(256))
                && self.last_tick.elapsed() >= Duration::from_millis(100)
            {
                self.last_tick = Instant::now();
                metrics::messages(self.summary.messages - self.counted);
                self.counted = self.summary.messages;
                self.roll_due(c)?;
                metrics::partitions(
                    self.parts.len(),
                    self.parts.values().filter(|p| p.at_end).count(),
                );
                if self.last_lag.elapsed() > Duration::from_secs(1) {
                    self.report_lag();
                    self.last_lag = Instant::now();
                }
            }
        }
        metrics::messages(self.summary.messages - self.counted);
        self.counted = self.summary.messages;
        tracing::info!("stopping: publishing what is buffered");
        let deadline = Instant::now() + self.a.settings.grace_period;
        let parts: Vec<i32> = self.parts.keys().copied().collect();
        for p in parts {
            if Instant::now() > deadline {
                tracing::warn!("grace period over; the rest is read again on the next start");
                break;
            }
            self.publish(c, p, Some(deadline))?;
        }
        Ok(())
    }

    fn apply_events(&mut self) {
        let events = std::mem::take(&mut *self.events.lock().expect("not poisoned"));
        if events.is_empty() {
            return;
        }
        for e in events {
            match e {
                Event::Revoked(ps) => {
                    for p in ps {
                        if let Some(part) = self.parts.remove(&p)
                            && !part.is_empty()
                        {
                            tracing::info!(
                                partition = p,
                                rows = part.rows,
                                "dropping the buffer of a revoked partition"
                            );
                        }
                    }
                }
                Event::Assigned(ps) => {
                    for (p, resume) in ps {
                        self.parts.insert(p, Partition::new(resume));
                        if resume >= 0 {
                            metrics::position(p, resume);
                        }
                    }
                }
            }
        }
        self.report_buffered();
    }

    fn handle(&mut self, c: &Kafka, m: &rdkafka::message::BorrowedMessage<'_>) -> Result<()> {
        let (p, offset) = (m.partition(), m.offset());
        let Some(part) = self.parts.get_mut(&p) else {
            return Ok(()); // not ours (any more): whoever owns it reads it
        };
        part.at_end = false;
        if offset < part.next {
            return Ok(()); // already buffered or published
        }
        self.summary.messages += 1;
        let header = |name: &str| {
            m.headers()
                .and_then(|h| h.iter().find(|h| h.key == name).and_then(|h| h.value))
        };
        let payload = m.payload();
        let appended = match deadletter::check(payload, header("schemaVersion"), header("format")) {
            Ok(json) => writer::append_value(
                &mut part.files,
                json,
                offset,
                payload.map_or(0, <[u8]>::len),
            )?,
            Err(refusal) => Err(refusal),
        };
        match appended {
            Ok(()) => part.rows += 1,
            Err(refusal) => {
                metrics::dead_letter(refusal.reason);
                self.summary.dead_letters += 1;
                tracing::debug!(
                    partition = p,
                    offset,
                    reason = refusal.reason,
                    "dead letter"
                );
                let out = deadletter::record(
                    &self.a.settings.dead_letter_topic,
                    &refusal,
                    m.key(),
                    payload,
                    (m.topic(), p, offset),
                );
                let sink = self.a.sink.clone();
                part.dead_letters.push(
                    self.a
                        .runtime
                        .spawn(async move { sink.deliver(&out).await }),
                );
            }
        }
        part.touch(offset);
        let s = &self.a.settings;
        if part.rows as usize >= s.roll_rows
            || part.memory() >= s.roll_bytes
            || part.dead_letters.len() >= 10_000
        {
            self.publish(c, p, None)?;
        }
        Ok(())
    }

    /// Publishes units that are old enough, and the largest while memory is over its bound.
    fn roll_due(&mut self, c: &Kafka) -> Result<()> {
        let age = self.a.settings.roll_age;
        let due: Vec<i32> = self
            .parts
            .iter()
            .filter(|(_, part)| part.opened.is_some_and(|t| t.elapsed() >= age))
            .map(|(p, _)| *p)
            .collect();
        for p in due {
            self.publish(c, p, None)?;
        }
        loop {
            let total: u64 = self.parts.values().map(Partition::memory).sum();
            if total < self.a.settings.max_buffered {
                break;
            }
            let Some(largest) = self
                .parts
                .iter()
                .filter(|(_, part)| !part.is_empty())
                .max_by_key(|(_, part)| part.memory())
                .map(|(p, _)| *p)
            else {
                break;
            };
            self.publish(c, largest, None)?;
        }
        self.report_buffered();
        Ok(())
    }

    /// Publishes a partition's open unit, retrying storage errors until it is done, fenced,
    /// or (on shutdown) the deadline passes.
    fn publish(&mut self, c: &Kafka, p: i32, deadline: Option<Instant>) -> Result<()> {
        let Some(part) = self.parts.get_mut(&p) else {
            return Ok(());
        };
        let Some(first) = part.first.take() else {
            return Ok(());
        };
        let started = Instant::now();
        let range = Range {
            first,
            last: part.next - 1,
        };
        let files = std::mem::take(&mut part.files);
        let handles = std::mem::take(&mut part.dead_letters);
        part.rows = 0;
        part.opened = None;
        let mut encoded = Vec::with_capacity(files.len());
        for (_, f) in files {
            encoded.push(f.encode(&self.a.settings.file)?);
        }
        let dead_letters = handles.len() as u64;
        for h in handles {
            let delivered = self
                .a
                .runtime
                .block_on(h)
                .context("a dead-letter delivery task failed")?;
            if let Err(e) = delivered {
                return Err(anyhow::Error::new(e).context(
                    "the dead-letter producer failed; nothing of this unit is committed",
                ));
            }
        }
        let unit = Unit {
            topic: self.a.settings.topic.clone(),
            partition: p,
            range,
            files: encoded,
            dead_letters,
        };
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        let outcome = loop {
            let attempt = self.a.runtime.block_on(commit::publish(
                &self.a.store,
                &unit,
                &self.a.settings.writer,
                self.a.settings.orphan_age,
            ));
            match attempt {
                Ok(o) => break o,
                Err(e) => {
                    metrics::retry();
                    self.a.ready.set(false);
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %format!("{e:#}"), partition = p, retry_in = ?wait, "publish failed; retrying");
                    if deadline.is_some_and(|d| Instant::now() + wait > d) {
                        bail!("cannot publish before the grace period ends: {e:#}");
                    }
                    std::thread::sleep(wait);
                }
            }
        };
        self.a.ready.set(true);
        match outcome {
            Outcome::Committed(done) => {
                let bytes = unit.bytes();
                metrics::published(unit.rows(), done.files.len(), bytes, started.elapsed());
                metrics::position(p, done.next());
                self.summary.rows += unit.rows();
                self.summary.files += done.files.len() as u64;
                self.summary.bytes += bytes;
                tracing::debug!(
                    partition = p,
                    first = done.first,
                    last = done.last,
                    rows = unit.rows(),
                    files = done.files.len(),
                    "published"
                );
                self.commit_for_monitoring(c, p, done.next());
            }
            Outcome::Fenced => {
                metrics::fenced();
                self.summary.fenced += 1;
                self.resync(c, p)?;
            }
        }
        Ok(())
    }

    /// After being fenced: recover the partition again and read on from what is published.
    fn resync(&mut self, c: &Kafka, p: i32) -> Result<()> {
        let topic = self.a.settings.topic.clone();
        let r = self.a.runtime.block_on(commit::recover(
            &self.a.store,
            &topic,
            p,
            self.a.settings.orphan_age,
        ))?;
        let offset = match (r.resume, self.a.settings.start) {
            (Some(o), _) => Offset::Offset(o),
            (None, StartPosition::Earliest) => Offset::Beginning,
            (None, StartPosition::Latest) => Offset::End,
        };
        self.parts.insert(p, Partition::new(r.resume.unwrap_or(-1)));
        c.seek(&topic, p, offset, Duration::from_secs(10))
            .with_context(|| format!("cannot seek partition {p} to {offset:?}"))?;
        Ok(())
    }

    fn commit_for_monitoring(&self, c: &Kafka, p: i32, next: i64) {
        let mut tpl = TopicPartitionList::new();
        if tpl
            .add_partition_offset(&self.a.settings.topic, p, Offset::Offset(next))
            .is_ok()
            && let Err(e) = c.commit(&tpl, CommitMode::Async)
        {
            tracing::debug!(error = %e, "monitoring commit failed");
        }
    }

    /// Records not yet published: the monitoring commit follows each publish, so librdkafka's
    /// committed lag is exactly that.
    fn report_lag(&self) {
        for ((topic, p), lag) in self.lag.snapshot() {
            if topic == self.a.settings.topic
                && let Some(n) = lag.uncommitted
            {
                metrics::lag(p, n);
            }
        }
    }

    fn report_buffered(&self) {
        let rows = self.parts.values().map(|p| p.rows).sum();
        let bytes = self.parts.values().map(Partition::memory).sum();
        metrics::buffered(rows, bytes);
    }
}
