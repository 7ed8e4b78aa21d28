//! The idempotent producer the services share: records delivered or retried, never skipped.
//!
//! One idempotent producer carries every topic of a service, so a retry inside librdkafka never
//! writes a record twice and records of one key stay in order. A send that fails for good (a
//! delivery timeout during a long outage, a broker error) is sent again with backoff until it
//! is acknowledged; the caller moves no position meanwhile. Only librdkafka's fatal error ends
//! the retries: [`Producer::deliver`] then returns an [`ErrorKind::Fatal`] error and
//! [`Producer::fatal`] is cancelled, so the service stops without committing.
//!
//! Its metrics carry the service's prefix: `PREFIX_produced_total{kind}`,
//! `PREFIX_produce_latency_seconds`, `PREFIX_produce_retries_total`.

use super::KafkaConfig;
use crate::backoff::Backoff;
use crate::error::{Error, ErrorKind};
use crate::secret::Property;
use crate::server::Readiness;
use anyhow::Context;
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::util::Timeout;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// One record to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    /// The topic it goes to: the sign-ins' or the dead letters'.
    pub topic: String,
    /// What it is, for the `kind` label of the produced counter: `sign_in`, `dead_letter`, …
    pub kind: &'static str,
    /// The Kafka key, which picks the partition; `None` spreads records over partitions.
    pub key: Option<Vec<u8>>,
    /// The Kafka value.
    pub payload: Vec<u8>,
    /// Kafka headers, in order.
    pub headers: Vec<(&'static str, String)>,
}

impl OutRecord {
    /// The record's headers as librdkafka takes them.
    pub fn owned_headers(&self) -> OwnedHeaders {
        let mut headers = OwnedHeaders::new_with_capacity(self.headers.len());
        for (k, v) in &self.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        headers
    }
}

/// Settings of the cluster a producer writes to.
#[derive(Debug, Clone)]
pub struct ProducerSettings {
    /// Bootstrap servers, `host:port` separated by commas.
    pub bootstrap: String,
    /// none, gzip, snappy, lz4, zstd.
    pub compression: String,
    /// librdkafka properties passed through (`-X key=value`), applied over the defaults.
    pub properties: Vec<Property>,
}

impl ProducerSettings {
    /// The configuration of an idempotent producer with these settings: large batches, a
    /// short linger, bounded memory in librdkafka's queue; acks from all replicas and
    /// idempotence forced. Callers may add to it (a transactional id) before creating it.
    pub fn config(&self, what: &'static str) -> KafkaConfig {
        let mut c = KafkaConfig::new(what, &self.bootstrap);
        c.set("compression.type", &self.compression)
            .set("linger.ms", "20")
            .set("batch.size", "1000000")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.kbytes", "65536")
            .set("queue.buffering.max.messages", "100000")
            .set("message.max.bytes", "1000000")
            .set("socket.keepalive.enable", "true")
            .operator(&self.properties)
            .force("enable.idempotence", "true")
            .force("acks", "all");
        c
    }
}

/// The series a producer counts, named with its service's prefix.
#[derive(Debug)]
struct Names {
    produced: String,
    latency: String,
    retries: String,
}

/// The producer, shared by every delivery task.
#[derive(Clone)]
pub struct Producer {
    producer: FutureProducer,
    ready: Readiness,
    failing: Arc<AtomicUsize>,
    /// Cancelled when the producer hit a fatal error: it can send nothing more.
    fatal: CancellationToken,
    names: Arc<Names>,
}

impl Producer {
    /// Creates an idempotent producer; `prefix` names its metrics (`mfagap_ingest`, …) and
    /// `ready` goes false while sends fail.
    pub fn new(
        settings: &ProducerSettings,
        what: &'static str,
        prefix: &str,
        ready: Readiness,
    ) -> Result<Producer, Error> {
        let producer: FutureProducer = settings.config(what).create(DefaultClientContext)?;
        Ok(Producer {
            producer,
            ready,
            failing: Arc::new(AtomicUsize::new(0)),
            fatal: CancellationToken::new(),
            names: Arc::new(Names {
                produced: format!("{prefix}_produced_total"),
                latency: format!("{prefix}_produce_latency_seconds"),
                retries: format!("{prefix}_produce_retries_total"),
            }),
        })
    }

    /// Cancelled once the producer cannot send anymore; the service must stop without
    /// committing what was not acknowledged, so that a restart sends it again.
    pub fn fatal(&self) -> &CancellationToken {
        &self.fatal
    }

    /// Delivers one record, retrying until Kafka acknowledges it; an error only when the
    /// producer failed for good ([`ErrorKind::Fatal`]).
    pub async fn deliver(&self, r: &OutRecord) -> Result<(), Error> {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        let mut failed = false;
        loop {
            let started = Instant::now();
            let mut record = FutureRecord::<[u8], [u8]>::to(&r.topic)
                .payload(&r.payload)
                .headers(r.owned_headers());
            if let Some(k) = &r.key {
                record = record.key(k);
            }
            // Timeout::Never: a full local queue waits (backpressure) rather than failing.
            match self.producer.send(record, Timeout::Never).await {
                Ok(_) => {
                    metrics::counter!(self.names.produced.clone(), "kind" => r.kind).increment(1);
                    metrics::histogram!(self.names.latency.clone())
                        .record(started.elapsed().as_secs_f64());
                    if failed && self.failing.fetch_sub(1, Ordering::Relaxed) == 1 {
                        self.ready.set(true);
                    }
                    return Ok(());
                }
                Err(_) if self.fatal.is_cancelled() => {
                    return Err(Error::fatal("the Kafka producer failed for good"));
                }
                Err((e, _)) => {
                    if let Some((code, reason)) = self.producer.client().fatal_error() {
                        tracing::error!(%code, %reason, "the Kafka producer failed for good");
                        self.ready.set(false);
                        self.fatal.cancel();
                        return Err(Error::new(
                            ErrorKind::Fatal,
                            format!("the Kafka producer failed for good: {code}: {reason}"),
                        ));
                    }
                    if !failed {
                        failed = true;
                        self.failing.fetch_add(1, Ordering::Relaxed);
                        self.ready.set(false);
                    }
                    metrics::counter!(self.names.retries.clone()).increment(1);
                    let wait = backoff.next_delay();
                    tracing::warn!(topic = %r.topic, error = %e, retry_in = ?wait, "send failed; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Waits for everything queued to be acknowledged, up to `timeout`.
    pub fn flush(&self, timeout: Duration) -> anyhow::Result<()> {
        self.producer
            .flush(timeout)
            .context("the Kafka producer could not flush")
    }

    /// Whether the cluster answers a metadata request.
    pub fn reachable(&self, timeout: Duration) -> bool {
        self.producer.client().fetch_metadata(None, timeout).is_ok()
    }
}
