//! The Kafka output: emitted sign-ins and dead letters, delivered or retried, never skipped.
//!
//! One idempotent producer carries both topics, so a retry inside librdkafka never writes a
//! record twice and records of one key stay in order. A send that fails for good (a delivery
//! timeout during a long outage, a broker error) is sent again with exponential backoff until it
//! is acknowledged; the source position of its message does not move meanwhile.

use crate::metrics;
use crate::secret::{Property, display_property, scrub};
use crate::server::Readiness;
use anyhow::{Context, Result};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// One record to write: a sign-in or a dead letter.
#[derive(Debug, Clone)]
pub struct OutRecord {
    pub topic: String,
    /// `sign_in` or `dead_letter`, for metrics.
    pub kind: &'static str,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

/// Settings of the output cluster.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub bootstrap: String,
    pub compression: String,
    /// librdkafka properties passed through (`-X key=value`), applied last.
    pub properties: Vec<Property>,
}

/// The producer, shared by every delivery task.
#[derive(Clone)]
pub struct KafkaSink {
    producer: FutureProducer,
    ready: Readiness,
    failing: Arc<AtomicUsize>,
    /// Cancelled when the producer hit a fatal error (e.g. fenced): it can send nothing more.
    fatal: CancellationToken,
}

impl KafkaSink {
    pub fn new(config: &SinkConfig, ready: Readiness) -> Result<KafkaSink> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &config.bootstrap)
            .set("compression.type", &config.compression)
            // Throughput: large batches, a short linger, bounded memory in librdkafka's queue.
            .set("linger.ms", "20")
            .set("batch.size", "1000000")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.kbytes", "65536")
            .set("queue.buffering.max.messages", "100000")
            .set("message.max.bytes", "1000000")
            .set("socket.keepalive.enable", "true");
        for p in &config.properties {
            c.set(&p.key, p.value.expose());
        }
        // Always, whatever -X says: acks from all replicas and no duplicate on retry.
        let forced = [("enable.idempotence", "true"), ("acks", "all")];
        for (k, v) in forced {
            if c.get(k).is_some_and(|x| x != v) {
                tracing::warn!(
                    property = k,
                    "{k} is always {v} for the output; ignoring -X {k}"
                );
            }
            c.set(k, v);
        }
        let shown: Vec<String> = config
            .properties
            .iter()
            .map(|p| display_property(&p.key, p.value.expose()))
            .collect();
        tracing::info!(bootstrap = %config.bootstrap, compression = %config.compression, properties = ?shown, "Kafka output");
        let producer: FutureProducer = c.create().map_err(|e| {
            anyhow::anyhow!(
                "cannot create the Kafka producer (check -X properties): {}",
                scrub(&e.to_string(), &config.properties, &[])
            )
        })?;
        Ok(KafkaSink {
            producer,
            ready,
            failing: Arc::new(AtomicUsize::new(0)),
            fatal: CancellationToken::new(),
        })
    }

    /// Cancelled once the producer cannot send anymore; the service must stop without
    /// committing what was not acknowledged, so that a restart sends it again.
    pub fn fatal(&self) -> &CancellationToken {
        &self.fatal
    }

    /// Delivers one record, retrying until Kafka acknowledges it; `false` only when the
    /// producer failed for good.
    pub async fn deliver(&self, r: &OutRecord) -> bool {
        let mut backoff = Duration::from_millis(100);
        let mut failed = false;
        loop {
            let started = Instant::now();
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for (k, v) in &r.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_bytes()),
                });
            }
            let mut record = FutureRecord::<[u8], [u8]>::to(&r.topic)
                .payload(&r.payload)
                .headers(headers);
            if let Some(k) = &r.key {
                record = record.key(k);
            }
            // Timeout::Never: a full local queue waits (backpressure) rather than failing.
            match self.producer.send(record, Timeout::Never).await {
                Ok(_) => {
                    metrics::produced(r.kind, started.elapsed());
                    if failed && self.failing.fetch_sub(1, Ordering::Relaxed) == 1 {
                        self.ready.set(true);
                    }
                    return true;
                }
                Err(_) if self.fatal.is_cancelled() => return false,
                Err((e, _)) => {
                    if let Some((code, reason)) = self.producer.client().fatal_error() {
                        tracing::error!(%code, %reason, "the Kafka producer failed for good");
                        self.ready.set(false);
                        self.fatal.cancel();
                        return false;
                    }
                    if !failed {
                        failed = true;
                        self.failing.fetch_add(1, Ordering::Relaxed);
                        self.ready.set(false);
                    }
                    metrics::retry();
                    tracing::warn!(topic = %r.topic, error = %e, retry_in = ?backoff, "send failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Waits for everything queued to be acknowledged, up to `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer
            .flush(timeout)
            .context("the Kafka producer could not flush")
    }

    /// Whether the cluster answers a metadata request.
    pub fn reachable(&self, timeout: Duration) -> bool {
        self.producer.client().fetch_metadata(None, timeout).is_ok()
    }
}
