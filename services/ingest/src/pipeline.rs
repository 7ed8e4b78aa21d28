//! The ingest loop: read, classify, encode, hand to the sink, persist what the sink releases.
//!
//! Reading waits while the sink has no room ([`Sink::reserve`]), so a slow or unreachable
//! broker slows the source instead of filling memory. Each message is decoded and classified
//! once; every emitted sign-in is encoded once per output and dead letters go to their topic.
//! On every tick the positions the sink releases are handed to the source to persist (see
//! `sink` for who decides).
//!
//! Design note: classification on every core, in input order. Decoding, classifying and
//! encoding a message is nearly all of the CPU ingest spends, so it runs on up to
//! `--threads` blocking threads at once (one [`Job`] per message), while this task reads the
//! next messages and hands finished ones to the sink. Finished messages are taken in the order
//! they were read (a `FuturesOrdered`), whichever thread finished first, so every partition's
//! records reach the sink in their source order and the sink's positions stay the ones the
//! delivery rule expects — exactly as with one thread. Duplicate suppression needs one window
//! per stream, so it happens here too, on the single task that sees every record, as each
//! message is handed on. A message read from a partition that is revoked before it is handed
//! on is dropped: its position was never committed, so the new owner reads it again (the
//! exactly-once Kafka source commits its transaction inside the revocation, so a message
//! sent after it would be written twice). Reading reserves room in the sink before each
//! message, so at most `--threads` messages more than the sink's limit are held.

use crate::deadletter;
use crate::metrics;
use crate::sink::{Sink, Work};
use crate::source::Source;
use anyhow::Result;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use mfagap_core::dedup::Key;
use mfagap_core::dedup::Window;
use mfagap_core::encode::Encoder;
use mfagap_core::framing;
use mfagap_core::{Output, Processor, Reason, Stats};
use mfagap_runtime::Readiness;
use mfagap_runtime::kafka::OutRecord;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One Kafka output: a topic and the encoding of what it carries.
#[derive(Debug, Clone)]
pub struct OutputTopic {
    /// The Kafka topic.
    pub topic: String,
    /// The encoding's name, for logs and errors.
    pub format: mfagap_core::encode::Format,
    /// Turns each emitted sign-in into this topic's key, payload and headers.
    pub encoder: Arc<dyn Encoder>,
    /// This output's guarantee; `None`: the service's `--delivery`.
    pub delivery: Option<crate::DeliveryMode>,
}

/// What the pipeline needs besides its source and sink.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// Decodes and classifies every message body: the rule lives here.
    pub processor: Processor,
    /// Where emitted sign-ins go: each output gets every one, in its own encoding.
    pub outputs: Vec<OutputTopic>,
    /// Where messages and records that cannot be processed go, with their bytes.
    pub dead_letter_topic: String,
    /// Distinct sign-ins remembered for duplicate suppression (0 turns it off).
    pub dedup_window: usize,
    /// The largest message body: a larger one is a dead letter `too_large`.
    pub max_message_bytes: usize,
    /// How often released positions are persisted.
    pub commit_interval: Duration,
    /// On a stop signal, how long to wait for what is in flight.
    pub grace_period: Duration,
    /// Messages decoded and classified at once, each on a blocking thread (at least 1).
    pub threads: usize,
}

/// How a run ended.
#[derive(Debug, Default)]
pub struct Summary {
    /// What happened to every message and record read.
    pub stats: Stats,
    /// Messages read whose outputs were not all delivered when the grace period ran out;
    /// their positions were not committed, so they will be read again.
    pub undelivered: usize,
}

/// Runs until the source ends or `stop` is cancelled; then drains, commits and returns.
pub async fn run<S: Source, K: Sink>(
    mut source: S,
    mut sink: K,
    settings: PipelineSettings,
    stop: CancellationToken,
    ready: Readiness,
) -> Result<Summary> {
    let threads = settings.threads.max(1);
    let mut order = Order {
        window: Window::new(settings.dedup_window),
        totals: Stats::default(),
        jobs: FuturesOrdered::new(),
        read: 0,
        lost: HashMap::new(),
    };
    let settings = Arc::new(settings);
    let mut tick = tokio::time::interval(settings.commit_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reserved = false;
    let failed = sink.failed();
    ready.set(true);

    let mut ended = false;
    while !ended {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = failed.cancelled() => {
                ready.set(false);
                commit(&mut source, &mut sink).await;
                let _ = source.close().await;
                return Err(sink.failure().into());
            }
            _ = tick.tick() => {
                order.revocations(&mut source, &mut sink);
                commit(&mut source, &mut sink).await;
                for (p, lag) in source.lag() {
                    metrics::lag(&p, lag);
                }
                metrics::in_flight(sink.in_flight());
            }
            done = order.jobs.next(), if !order.jobs.is_empty() => {
                let done = done.expect("not empty")?;
                order.hand_on(done, &mut source, &mut sink)?;
            }
            r = sink.reserve(), if !reserved => {
                r?;
                reserved = true;
            }
            m = source.next(), if reserved && order.jobs.len() < threads => {
                let Some(msg) = m? else {
                    ended = true;
                    continue;
                };
                reserved = false;
                // Too large (or cut short by a source that keeps only a prefix of it): one
                // dead letter with the size in its headers, and on to the next message.
                let problem = source
                    .problem()
                    .or_else(|| framing::too_large(&msg.body, settings.max_message_bytes));
                order.read += 1;
                let (settings, read) = (settings.clone(), order.read);
                order.jobs.push_back(tokio::task::spawn_blocking(move || {
                    Job { msg, problem, read }.run(&settings)
                }));
            }
        }
    }

    // What was read is handed on before the drain, as it would have been with one thread.
    while let Some(done) = order.jobs.next().await {
        order.hand_on(done?, &mut source, &mut sink)?;
    }
    let totals = std::mem::take(&mut order.totals);

    // Drain: what is in flight — without limit at the end of a finite input, within the grace
    // period after a stop signal.
    let timeout = (!ended || stop.is_cancelled()).then_some(settings.grace_period);
    let drained = tokio::select! {
        d = sink.drain(timeout) => d,
        // A stop during the drain of a finite input bounds it by the grace period too.
        _ = stop.cancelled(), if timeout.is_none() => sink.drain(Some(settings.grace_period)).await,
    };
    let drained = match drained {
        Ok(d) => d,
        Err(e) => {
            ready.set(false);
            commit(&mut source, &mut sink).await;
            let _ = source.close().await;
            return Err(e.into());
        }
    };
    if drained.undelivered > 0 {
        tracing::warn!(
            undelivered = drained.undelivered,
            "grace period over: messages not yet delivered are not committed and will be read again"
        );
    }
    order.revocations(&mut source, &mut sink);
    commit(&mut source, &mut sink).await;
    metrics::in_flight(sink.in_flight());
    source.close().await?;
    ready.set(false);
    Ok(Summary {
        stats: totals,
        undelivered: drained.undelivered,
    })
}

/// One message to decode, classify and encode, on a blocking thread.
struct Job {
    msg: crate::source::Message,
    /// Why the body is not whole, if it is not: then it is a dead letter as it stands.
    problem: Option<framing::Problem>,
    /// The message's number in reading order, to tell it from messages read after a
    /// revocation of its partition.
    read: u64,
}

/// A message's outputs, before duplicate suppression.
struct Done {
    partition: String,
    position: i64,
    resume: Option<serde_json::Value>,
    read: u64,
    /// Its counts, but for what duplicate suppression decides.
    stats: Stats,
    /// In the order the core gave them.
    outputs: Vec<Produced>,
}

/// What one record of a message became.
enum Produced {
    /// An emitted sign-in, encoded once per output.
    SignIn {
        key: Key,
        reason: Reason,
        records: Vec<OutRecord>,
    },
    /// A dead letter.
    DeadLetter(OutRecord),
}

impl Job {
    fn run(self, settings: &PipelineSettings) -> Done {
        let Job { msg, problem, read } = self;
        let mut stats = Stats::default();
        let mut outputs = Vec::new();
        let topic = &settings.dead_letter_topic;
        if let Some(problem) = problem {
            stats.count_unread_message(problem.code());
            outputs.push(Produced::DeadLetter(deadletter::framing(
                &msg.body,
                problem,
                &msg.origin,
                topic,
            )));
        } else {
            let now = chrono::Utc::now().timestamp_micros();
            settings
                .processor
                .process(&msg.body, &msg.origin, now, &mut stats, &mut |o| {
                    outputs.push(match o {
                        Output::SignIn(s) => Produced::SignIn {
                            key: s.dedup_key(),
                            reason: s.reason,
                            records: settings
                                .outputs
                                .iter()
                                .map(|out| {
                                    let e = out.encoder.encode(&s);
                                    OutRecord {
                                        topic: out.topic.clone(),
                                        kind: "sign_in",
                                        key: e.key,
                                        payload: e.payload,
                                        headers: e.headers,
                                    }
                                })
                                .collect(),
                        },
                        Output::DeadLetter(d) => {
                            Produced::DeadLetter(deadletter::record(&d, &msg.origin, topic))
                        }
                    })
                });
        }
        Done {
            partition: msg.partition,
            position: msg.position,
            resume: msg.resume,
            read,
            stats,
            outputs,
        }
    }
}

/// What the pipeline keeps in reading order: the jobs running, duplicate suppression, totals.
struct Order {
    window: Window,
    totals: Stats,
    jobs: FuturesOrdered<JoinHandle<Done>>,
    /// Messages read so far.
    read: u64,
    /// Partitions revoked, with how many messages had been read then: messages of theirs
    /// read before are not handed on.
    lost: HashMap<String, u64>,
}

impl Order {
    /// Tells the sink of partitions the source lost, and remembers to drop their messages
    /// still being classified.
    fn revocations<S: Source, K: Sink>(&mut self, source: &mut S, sink: &mut K) {
        for p in source.revoked() {
            sink.forget(&p);
            self.lost.insert(p, self.read);
        }
    }

    /// Hands a classified message to the sink, in reading order, after duplicate
    /// suppression.
    fn hand_on<S: Source, K: Sink>(
        &mut self,
        done: Done,
        source: &mut S,
        sink: &mut K,
    ) -> Result<()> {
        self.revocations(source, sink);
        if self
            .lost
            .get(&done.partition)
            .is_some_and(|&read| done.read <= read)
        {
            tracing::debug!(partition = %done.partition, position = done.position, "a message of a revoked partition is dropped; its new owner reads it again");
            return Ok(());
        }
        let mut stats = done.stats;
        let mut records = Vec::with_capacity(done.outputs.len());
        for produced in done.outputs {
            match produced {
                Produced::SignIn {
                    key,
                    reason,
                    records: encoded,
                } => {
                    if self.window.first_time(key) {
                        stats.count_emitted(reason);
                        records.extend(encoded);
                    } else {
                        stats.duplicates += 1;
                    }
                }
                Produced::DeadLetter(r) => records.push(r),
            }
        }
        metrics::record_stats(&stats);
        self.totals.merge(&stats);
        sink.send(Work {
            partition: done.partition,
            position: done.position,
            records,
            resume: done.resume,
        })?;
        Ok(())
    }
}

/// Hands the positions the sink releases to the source. Called on every tick, with nothing
/// new too: a source may have positions of its own waiting for their time (Event Hubs
/// checkpoints are written at an interval).
async fn commit<S: Source, K: Sink>(source: &mut S, sink: &mut K) {
    let points = match sink.positions().await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "no positions released");
            return;
        }
    };
    match source.commit(&points) {
        Ok(()) => {
            for (p, pos) in &points {
                metrics::committed(p, *pos);
            }
        }
        Err(e) => {
            sink.commit_failed(&points);
            tracing::warn!(error = %format!("{e:#}"), "commit failed; will retry");
        }
    }
}
