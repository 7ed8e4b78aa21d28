//! At least once: every record acknowledged by Kafka before its position moves.
//!
//! One idempotent producer carries every topic (see `mfagap_runtime::kafka::producer`). Each
//! message's records are sent by a task of their own; when all are acknowledged its ticket
//! comes back and the tracker (`offsets`) may move its partition's resume point. At most
//! `max_in_flight` messages wait for acknowledgements, so a slow or unreachable broker holds
//! the source back instead of filling memory. A crash re-sends what was not committed: the
//! output may hold a record twice, never miss one.

use super::{Drained, Sink, Work};
use crate::offsets::{Ticket, Tracker};
use mfagap_runtime::Error;
use mfagap_runtime::kafka::Producer;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The at-least-once sink.
pub struct AtLeastOnce {
    producer: Producer,
    tracker: Tracker,
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    /// The permit [`Sink::reserve`] took for the next [`Sink::send`].
    reserved: Option<OwnedSemaphorePermit>,
    done_tx: mpsc::UnboundedSender<Ticket>,
    done_rx: mpsc::UnboundedReceiver<Ticket>,
}

impl AtLeastOnce {
    /// A sink on `producer` that lets at most `max_in_flight` messages wait for acks.
    pub fn new(producer: Producer, max_in_flight: usize) -> AtLeastOnce {
        let max_in_flight = max_in_flight.max(1);
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        AtLeastOnce {
            producer,
            tracker: Tracker::new(),
            permits: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            reserved: None,
            done_tx,
            done_rx,
        }
    }

    fn collect_acks(&mut self) {
        while let Ok(t) = self.done_rx.try_recv() {
            self.tracker.done(&t);
        }
    }
}

#[async_trait::async_trait]
impl Sink for AtLeastOnce {
    async fn reserve(&mut self) -> Result<(), Error> {
        if self.reserved.is_none() {
            let permit = self
                .permits
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            self.reserved = Some(permit);
        }
        Ok(())
    }

    fn send(&mut self, work: Work) -> Result<(), Error> {
        let held = self.reserved.take();
        let ticket = self.tracker.begin(&work.partition, work.position);
        if work.records.is_empty() {
            self.tracker.done(&ticket);
            return Ok(());
        }
        let (producer, done) = (self.producer.clone(), self.done_tx.clone());
        tokio::spawn(async move {
            let acked =
                futures::future::join_all(work.records.iter().map(|r| producer.deliver(r))).await;
            drop(held);
            // A message whose records were not all acknowledged is never marked done, so its
            // position is never released.
            if acked.iter().all(Result::is_ok) {
                let _ = done.send(ticket);
            }
        });
        Ok(())
    }

    async fn positions(&mut self) -> Result<Vec<(String, i64)>, Error> {
        self.collect_acks();
        Ok(self.tracker.take_commits())
    }

    fn commit_failed(&mut self, points: &[(String, i64)]) {
        self.tracker.commit_failed(points);
    }

    fn forget(&mut self, partition: &str) {
        self.tracker.forget(partition);
    }

    fn in_flight(&self) -> usize {
        self.max_in_flight - self.permits.available_permits()
    }

    fn failed(&self) -> CancellationToken {
        self.producer.fatal().clone()
    }

    fn failure(&self) -> Error {
        Error::fatal(format!(
            "the Kafka producer failed for good; {} messages not acknowledged will be read again after a restart",
            self.tracker.outstanding()
        ))
    }

    async fn drain(&mut self, timeout: Option<Duration>) -> Result<Drained, Error> {
        self.collect_acks();
        let deadline = timeout.map(|t| Instant::now() + t);
        while self.tracker.outstanding() > 0 {
            let until = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = self.producer.fatal().cancelled() => {
                    return Err(Error::fatal(format!(
                        "the Kafka producer failed for good; {} messages not acknowledged will be read again after a restart",
                        self.tracker.outstanding()
                    )));
                }
                Some(t) = self.done_rx.recv() => self.tracker.done(&t),
                _ = tokio::time::sleep_until(until) => break,
            }
        }
        let undelivered = self.tracker.outstanding();
        let left = deadline.map_or(Duration::from_secs(10), |d| {
            d.saturating_duration_since(Instant::now())
        });
        if let Err(e) = self.producer.flush(left.max(Duration::from_millis(100))) {
            tracing::warn!(error = %e, "flush on shutdown");
        }
        Ok(Drained { undelivered })
    }
}
