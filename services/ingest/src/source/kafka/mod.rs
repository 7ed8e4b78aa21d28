//! Event Hubs through its Kafka endpoint, or any Kafka: a consumer group, commits by the rule.
//!
//! Offsets are never committed automatically: the pipeline hands over resume points that the
//! delivery rule allows (see `offsets`). With an Event Hubs connection string the consumer
//! speaks SASL_SSL PLAIN (`$ConnectionString` and the string as password) and keeps its idle
//! and metadata timers under the 240 s after which Azure's load balancer drops idle
//! connections.

mod config;

pub use config::{KafkaArgs, KafkaSettings, StartPosition};

use super::connection::ConnectionInfo;
use super::{Message, Source};
use crate::sink::KafkaOffsets;
use anyhow::{Context, Result, bail};
use mfagap_core::Source as Origin;
use mfagap_core::lenient::Text;
use mfagap_runtime::kafka::{ConsumerLag, KafkaConfig};
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Subscribes to the topics the settings name.
pub fn build(settings: &KafkaSettings) -> Result<KafkaSource> {
    KafkaSource::new(settings)
}

/// Notes partitions revoked by a rebalance, for the pipeline to forget, and keeps the lag
/// librdkafka's statistics report.
struct Ctx {
    revoked: Arc<Mutex<Vec<String>>>,
    lag: ConsumerLag,
    /// With exactly-once delivery: the transaction to commit before partitions go.
    exactly_once: Arc<std::sync::OnceLock<Arc<KafkaOffsets>>>,
}

impl ClientContext for Ctx {
    fn stats(&self, statistics: rdkafka::Statistics) {
        self.lag.update(&statistics);
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(
        &self,
        consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let names: Vec<String> = tpl
                    .elements()
                    .iter()
                    .map(|e| format!("{}/{}", e.topic(), e.partition()))
                    .collect();
                tracing::info!(partitions = ?names, "partitions revoked");
                // Exactly once: what was read from them is committed now, with their offsets,
                // while this member's generation can still commit them.
                if let (Some(offsets), Some(metadata)) =
                    (self.exactly_once.get(), consumer.group_metadata())
                    && let Err(e) = offsets.commit_before_revoke(&metadata)
                {
                    tracing::error!(error = %e, "the transaction could not be committed before the revocation");
                }
                self.revoked.lock().expect("not poisoned").extend(names);
            }
            Rebalance::Assign(tpl) => {
                let names: Vec<String> = tpl
                    .elements()
                    .iter()
                    .map(|e| format!("{}/{}", e.topic(), e.partition()))
                    .collect();
                tracing::info!(partitions = ?names, "partitions assigned");
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

/// The `kafka` source.
pub struct KafkaSource {
    consumer: Arc<StreamConsumer<Ctx>>,
    revoked: Arc<Mutex<Vec<String>>>,
    partitions: HashMap<String, (String, i32)>,
    last: Vec<(String, i64)>,
    lag: ConsumerLag,
    exactly_once: Arc<std::sync::OnceLock<Arc<KafkaOffsets>>>,
    /// The static member id (`group.instance.id`), when the operator gave one: a stable
    /// name for this replica across restarts.
    instance: Option<String>,
}

/// The source consumer's settings (without statistics) and its topics; errors name the
/// missing flag.
pub(crate) fn client_config(config: &KafkaSettings) -> Result<(KafkaConfig, Vec<String>)> {
    let conn = config
        .connection_string
        .as_ref()
        .map(ConnectionInfo::parse)
        .transpose()?;
    let bootstrap = match (&config.bootstrap, &conn) {
        (Some(b), _) => b.clone(),
        (None, Some(c)) => c.kafka_bootstrap(),
        (None, None) => {
            bail!("the kafka source needs --source-bootstrap or an Event Hubs connection string")
        }
    };
    let mut topics = config.topics.clone();
    if topics.is_empty() {
        match conn.as_ref().and_then(|c| c.entity_path.clone()) {
            Some(hub) => topics.push(hub),
            None => bail!("the kafka source needs --source-topic (the event hub name)"),
        }
    }
    let mut c = KafkaConfig::new("Kafka source", &bootstrap);
    c.set("group.id", &config.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set(
            "auto.offset.reset",
            match config.start {
                StartPosition::Earliest => "earliest",
                StartPosition::Latest => "latest",
            },
        )
        // What Event Hubs needs, and harmless elsewhere: keepalive, idle and metadata
        // timers under Azure's 240 s idle cut-off, a 60 s request timeout, fetches < 1 MB.
        .set("socket.keepalive.enable", "true")
        .set("metadata.max.age.ms", "180000")
        .set("connections.max.idle.ms", "180000")
        .set("socket.timeout.ms", "60000")
        // The prefetch queue is the consumer's memory: keep it modest.
        .set("queued.max.messages.kbytes", "16384")
        // And refill it as soon as it drains, not a second later (librdkafka's default
        // backoff once it was full): with bodies of 100 KB and more it is full often.
        .set("fetch.queue.backoff.ms", "10")
        .set("session.timeout.ms", "30000")
        .set("heartbeat.interval.ms", "3000")
        .set("max.partition.fetch.bytes", "1000000")
        .set("fetch.max.bytes", "1000000")
        .set("message.max.bytes", "1000000");
    if let (Some(conn), Some(secret)) = (&conn, &config.connection_string) {
        c.set(
            "security.protocol",
            if conn.emulator {
                "SASL_PLAINTEXT"
            } else {
                "SASL_SSL"
            },
        )
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", "$ConnectionString")
        .set_secret("sasl.password", secret);
    }
    c.operator(&config.properties);
    Ok((c, topics))
}

impl KafkaSource {
    /// Creates the consumer and subscribes to the topics; errors name the missing flag.
    pub fn new(config: &KafkaSettings) -> Result<KafkaSource> {
        let (mut c, topics) = client_config(config)?;
        c.statistics();
        tracing::info!(?topics, group = %config.group, event_hubs = config.connection_string.is_some(), "Kafka source topics");
        let revoked = Arc::new(Mutex::new(Vec::new()));
        let lag = ConsumerLag::default();
        let exactly_once = Arc::new(std::sync::OnceLock::new());
        let consumer: StreamConsumer<Ctx> = c.create(Ctx {
            revoked: revoked.clone(),
            lag: lag.clone(),
            exactly_once: exactly_once.clone(),
        })?;
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&refs)
            .context("cannot subscribe to the source topics")?;
        Ok(KafkaSource {
            consumer: Arc::new(consumer),
            revoked,
            partitions: HashMap::new(),
            last: Vec::new(),
            lag,
            exactly_once,
            instance: config
                .properties
                .iter()
                .find(|p| p.key == "group.instance.id")
                .map(|p| p.value.expose().to_owned()),
        })
    }

    /// Exactly-once delivery: from now on the consumer group's offsets are committed inside
    /// the output transactions only (the source commits nothing itself); returns what the
    /// transactional sink needs for that.
    pub fn exactly_once(&mut self) -> Arc<KafkaOffsets> {
        let consumer = self.consumer.clone();
        let offsets = Arc::new(KafkaOffsets::new(
            Box::new(move || consumer.group_metadata()),
            self.instance.clone(),
        ));
        let _ = self.exactly_once.set(offsets.clone());
        offsets
    }

    fn tpl(&self, points: &[(String, i64)]) -> Result<TopicPartitionList> {
        let mut tpl = TopicPartitionList::new();
        for (name, offset) in points {
            if let Some((topic, p)) = self.partitions.get(name) {
                tpl.add_partition_offset(topic, *p, Offset::Offset(*offset))?;
            }
        }
        Ok(tpl)
    }
}

#[async_trait::async_trait]
impl Source for KafkaSource {
    async fn next(&mut self) -> Result<Option<Message>> {
        let m = loop {
            match self.consumer.recv().await {
                Ok(m) => break m,
                // librdkafka recovers from transport and broker errors by itself; a fatal
                // client error cannot be recovered and ends the run.
                Err(KafkaError::MessageConsumptionFatal(code)) => {
                    bail!("the Kafka source failed for good: {code}")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Kafka source error; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        let (topic, partition, offset) = (m.topic().to_owned(), m.partition(), m.offset());
        let name = format!("{topic}/{partition}");
        self.partitions
            .entry(name.clone())
            .or_insert_with(|| (topic.clone(), partition));
        let enqueued = m.timestamp().to_millis().map(|ms| ms * 1000);
        Ok(Some(Message {
            body: m.payload().unwrap_or_default().to_vec(),
            partition: name,
            position: offset,
            origin: Origin {
                kind: Text("kafka".into()),
                event_hub: Some(Text(topic.into())),
                partition: Some(Text(partition.to_string().into())),
                offset: Some(Text(offset.to_string().into())),
                enqueued_time: enqueued,
                ..Origin::default()
            },
            resume: None,
        }))
    }

    fn commit(&mut self, points: &[(String, i64)]) -> Result<()> {
        if self.exactly_once.get().is_some() {
            return Ok(()); // committed inside the transaction
        }
        let tpl = self.tpl(points)?;
        if tpl.count() > 0 {
            self.consumer
                .commit(&tpl, CommitMode::Async)
                .context("cannot commit source offsets")?;
        }
        for (name, offset) in points {
            match self.last.iter_mut().find(|(n, _)| n == name) {
                Some(entry) => entry.1 = *offset,
                None => self.last.push((name.clone(), *offset)),
            }
        }
        Ok(())
    }

    fn revoked(&mut self) -> Vec<String> {
        let names = std::mem::take(&mut *self.revoked.lock().expect("not poisoned"));
        self.last.retain(|(n, _)| !names.contains(n));
        names
    }

    fn lag(&mut self) -> Vec<(String, i64)> {
        self.lag
            .snapshot()
            .into_iter()
            .filter_map(|((topic, p), lag)| Some((format!("{topic}/{p}"), lag.unread?)))
            .collect()
    }

    async fn close(&mut self) -> Result<()> {
        if self.exactly_once.get().is_some() {
            self.consumer.unsubscribe();
            return Ok(());
        }
        let tpl = self.tpl(&self.last)?;
        if tpl.count() > 0 {
            self.consumer
                .commit(&tpl, CommitMode::Sync)
                .context("cannot commit source offsets on shutdown")?;
        }
        self.consumer.unsubscribe();
        Ok(())
    }
}
