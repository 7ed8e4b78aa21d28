//! The ingest loop: read, classify, send, and move the source only past what Kafka holds.
//!
//! Reading stops when `max_in_flight` messages await acknowledgement, so a slow or unreachable
//! broker slows the source instead of filling memory. Each message's records and dead letters
//! are sent by a task of their own; when all are acknowledged the message's ticket comes back
//! and the tracker (see `offsets`) may move its partition's resume point. Duplicate suppression
//! needs one window per stream, so it happens here, on the single task that sees every record.

use crate::deadletter;
use crate::metrics;
use crate::offsets::{Ticket, Tracker};
use crate::server::Readiness;
use crate::sink::{KafkaSink, OutRecord};
use crate::source::Source;
use anyhow::Result;
use mfagap_core::dedup::Window;
use mfagap_core::record::SCHEMA_VERSION;
use mfagap_core::{Output, Processor, Stats};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the pipeline needs besides its source and sink.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub processor: Processor,
    pub topic: String,
    pub dead_letter_topic: String,
    pub dedup_window: usize,
    pub max_in_flight: usize,
    pub commit_interval: Duration,
    pub grace_period: Duration,
}

/// How a run ended.
#[derive(Debug, Default)]
pub struct Summary {
    pub stats: Stats,
    /// Messages read whose outputs were not all acknowledged when the grace period ran out;
    /// their positions were not committed, so they will be read again.
    pub undelivered: usize,
}

/// Runs until the source ends or `stop` is cancelled; then drains, commits and returns.
pub async fn run<S: Source>(
    mut source: S,
    sink: KafkaSink,
    config: PipelineConfig,
    stop: CancellationToken,
    ready: Readiness,
) -> Result<Summary> {
    let permits = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Ticket>();
    let mut tracker = Tracker::new();
    let mut window = Window::new(config.dedup_window);
    let mut totals = Stats::default();
    let mut tick = tokio::time::interval(config.commit_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut permit = None;
    ready.set(true);

    let mut ended = false;
    while !ended {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = sink.fatal().cancelled() => break,
            Some(t) = done_rx.recv() => tracker.done(&t),
            _ = tick.tick() => {
                for p in source.revoked() {
                    tracker.forget(&p);
                }
                commit(&mut source, &mut tracker);
                for (p, lag) in source.lag() {
                    metrics::lag(&p, lag);
                }
                metrics::in_flight(config.max_in_flight - permits.available_permits());
            }
            p = permits.clone().acquire_owned(), if permit.is_none() => {
                permit = Some(p.expect("the semaphore is never closed"));
            }
            m = source.next(), if permit.is_some() => {
                let Some(msg) = m? else {
                    ended = true;
                    continue;
                };
                let now = chrono::Utc::now().timestamp_micros();
                let mut stats = Stats::default();
                let mut outs: Vec<OutRecord> = Vec::new();
                let (mut emitted, mut duplicates) = (Vec::new(), 0);
                config.processor.process(&msg.body, &msg.origin, now, &mut stats, &mut |o| match o {
                    Output::SignIn(s) => {
                        if window.first_time(s.dedup_key()) {
                            emitted.push(s.reason);
                            let mut payload = Vec::with_capacity(2048);
                            s.write_json(&mut payload);
                            let text = |t: &Option<mfagap_core::lenient::Text>| {
                                t.as_ref().map_or(String::new(), |t| t.as_str().to_owned())
                            };
                            outs.push(OutRecord {
                                topic: config.topic.clone(),
                                kind: "sign_in",
                                key: Some(s.key().as_bytes().to_vec()),
                                payload,
                                headers: vec![
                                    ("category", s.category.as_str().to_owned()),
                                    ("tenantId", text(&s.tenant_id)),
                                    ("reason", s.reason.as_str().to_owned()),
                                    ("schemaVersion", SCHEMA_VERSION.to_owned()),
                                ],
                            });
                        } else {
                            duplicates += 1;
                        }
                    }
                    Output::DeadLetter(d) => {
                        outs.push(deadletter::record(&d, &msg.origin, &config.dead_letter_topic));
                    }
                });
                for reason in emitted {
                    stats.count_emitted(reason);
                }
                stats.duplicates += duplicates;
                metrics::record_stats(&stats);
                totals.merge(&stats);
                let ticket = tracker.begin(&msg.partition, msg.position);
                let held = permit.take().expect("guarded by the branch condition");
                if outs.is_empty() {
                    tracker.done(&ticket);
                    drop(held);
                    continue;
                }
                let (sink, done) = (sink.clone(), done_tx.clone());
                tokio::spawn(async move {
                    let acked = futures::future::join_all(outs.iter().map(|r| sink.deliver(r))).await;
                    drop(held);
                    // A message whose outputs were not all acknowledged is never marked done,
                    // so its position is never committed.
                    if acked.into_iter().all(|a| a) {
                        let _ = done.send(ticket);
                    }
                });
            }
        }
    }
    drop(permit);

    // Drain: wait for what is in flight — without limit at the end of a finite input, within
    // the grace period after a stop signal.
    if sink.fatal().is_cancelled() {
        // Commit what was acknowledged, then fail: a restart resumes from there.
        while let Ok(t) = done_rx.try_recv() {
            tracker.done(&t);
        }
        commit(&mut source, &mut tracker);
        let _ = source.close().await;
        anyhow::bail!(
            "the Kafka producer failed for good; {} messages not acknowledged will be read again after a restart",
            tracker.outstanding()
        );
    }
    let mut deadline =
        (!ended || stop.is_cancelled()).then(|| Instant::now() + config.grace_period);
    while tracker.outstanding() > 0 {
        let until = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = sink.fatal().cancelled() => break,
            Some(t) = done_rx.recv() => tracker.done(&t),
            _ = tick.tick() => commit(&mut source, &mut tracker),
            _ = stop.cancelled(), if deadline.is_none() => {
                deadline = Some(Instant::now() + config.grace_period);
            }
            _ = tokio::time::sleep_until(until) => break,
        }
    }
    if sink.fatal().is_cancelled() {
        commit(&mut source, &mut tracker);
        let _ = source.close().await;
        anyhow::bail!(
            "the Kafka producer failed for good; {} messages not acknowledged will be read again after a restart",
            tracker.outstanding()
        );
    }
    let undelivered = tracker.outstanding();
    if undelivered > 0 {
        tracing::warn!(
            undelivered,
            "grace period over: messages not yet acknowledged are not committed and will be read again"
        );
    }
    for p in source.revoked() {
        tracker.forget(&p);
    }
    commit(&mut source, &mut tracker);
    let remaining = deadline.map_or(Duration::from_secs(10), |d| {
        d.saturating_duration_since(Instant::now())
    });
    if let Err(e) = sink.flush(remaining.max(Duration::from_millis(100))) {
        tracing::warn!(error = %e, "flush on shutdown");
    }
    source.close().await?;
    ready.set(false);
    Ok(Summary {
        stats: totals,
        undelivered,
    })
}

fn commit<S: Source>(source: &mut S, tracker: &mut Tracker) {
    // Called on every tick, with nothing new too: a source may have positions of its own
    // waiting for their time (Event Hubs checkpoints are written at an interval).
    let points = tracker.take_commits();
    match source.commit(&points) {
        Ok(()) => {
            for (p, pos) in &points {
                metrics::committed(p, *pos);
            }
        }
        Err(e) => {
            tracker.commit_failed(&points);
            tracing::warn!(error = %format!("{e:#}"), "commit failed; will retry");
        }
    }
}
