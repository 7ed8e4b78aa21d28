//! The ingest loop: read, classify, encode, hand to the sink, persist what the sink releases.
//!
//! Reading waits while the sink has no room ([`Sink::reserve`]), so a slow or unreachable
//! broker slows the source instead of filling memory. Each message is decoded and classified
//! once; every emitted sign-in is encoded once per output and dead letters go to their topic.
//! On every tick the positions the sink releases are handed to the source to persist (see
//! `sink` for who decides). Duplicate suppression needs one window per stream, so it happens
//! here, on the single task that sees every record.

use crate::deadletter;
use crate::metrics;
use crate::sink::{Sink, Work};
use crate::source::Source;
use anyhow::Result;
use mfagap_core::dedup::Window;
use mfagap_core::encode::Encoder;
use mfagap_core::framing;
use mfagap_core::{Output, Processor, Stats};
use mfagap_runtime::Readiness;
use mfagap_runtime::kafka::OutRecord;
use std::sync::Arc;
use std::time::Duration;
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
    let mut window = Window::new(settings.dedup_window);
    let mut totals = Stats::default();
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
                for p in source.revoked() {
                    sink.forget(&p);
                }
                commit(&mut source, &mut sink).await;
                for (p, lag) in source.lag() {
                    metrics::lag(&p, lag);
                }
                metrics::in_flight(sink.in_flight());
            }
            r = sink.reserve(), if !reserved => {
                r?;
                reserved = true;
            }
            m = source.next(), if reserved => {
                let Some(msg) = m? else {
                    ended = true;
                    continue;
                };
                reserved = false;
                let now = chrono::Utc::now().timestamp_micros();
                let mut stats = Stats::default();
                let mut records: Vec<OutRecord> = Vec::new();
                let (mut emitted, mut duplicates) = (Vec::new(), 0);
                // Too large (or cut short by a source that keeps only a prefix of it): one
                // dead letter with the size in its headers, and on to the next message.
                let problem = source
                    .problem()
                    .or_else(|| framing::too_large(&msg.body, settings.max_message_bytes));
                if let Some(problem) = problem {
                    stats.count_unread_message(problem.code());
                    let topic = &settings.dead_letter_topic;
                    records.push(deadletter::framing(&msg.body, problem, &msg.origin, topic));
                } else {
                    settings.processor.process(&msg.body, &msg.origin, now, &mut stats, &mut |o| match o {
                        Output::SignIn(s) => {
                            if window.first_time(s.dedup_key()) {
                                emitted.push(s.reason);
                                for out in &settings.outputs {
                                    let e = out.encoder.encode(&s);
                                    records.push(OutRecord {
                                        topic: out.topic.clone(),
                                        kind: "sign_in",
                                        key: e.key,
                                        payload: e.payload,
                                        headers: e.headers,
                                    });
                                }
                            } else {
                                duplicates += 1;
                            }
                        }
                        Output::DeadLetter(d) => {
                            records.push(deadletter::record(&d, &msg.origin, &settings.dead_letter_topic));
                        }
                    });
                }
                for reason in emitted {
                    stats.count_emitted(reason);
                }
                stats.duplicates += duplicates;
                metrics::record_stats(&stats);
                totals.merge(&stats);
                sink.send(Work {
                    partition: msg.partition,
                    position: msg.position,
                    records,
                    resume: msg.resume,
                })?;
            }
        }
    }

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
    for p in source.revoked() {
        sink.forget(&p);
    }
    commit(&mut source, &mut sink).await;
    metrics::in_flight(sink.in_flight());
    source.close().await?;
    ready.set(false);
    Ok(Summary {
        stats: totals,
        undelivered: drained.undelivered,
    })
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
