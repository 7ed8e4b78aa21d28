//! Preflight of the ingest service (`mfagap check`): its source, its output Kafka and topics,
//! and, when it would deliver exactly once, transactions and the positions topic. One line per
//! check; nothing is read or written but probes.

use crate::config::{DeliveryMode, IngestSettings};
use crate::source::SourceSettings;
use mfagap_runtime::check::Check;
use mfagap_runtime::kafka::check_topics;
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use rdkafka::producer::{BaseProducer, DefaultProducerContext, Producer};
use std::time::Duration;

/// Every check of the service's settings, each bounded by `timeout`.
pub async fn check(settings: &IngestSettings, timeout: Duration) -> Vec<Check> {
    let mut out = Vec::new();
    match &settings.source {
        SourceSettings::Eventhubs(h) => {
            out.extend(crate::source::eventhubs::check::check(h, timeout).await);
        }
        SourceSettings::Kafka(k) => out.extend(kafka_source(k, timeout).await),
        SourceSettings::Capture(c) => {
            out.extend(crate::source::capture::check(c, timeout).await);
        }
        SourceSettings::Graph(g) => {
            out.extend(crate::source::graph::check(g, timeout).await);
        }
        SourceSettings::File(f) => {
            if f.inputs.is_empty() {
                out.push(Check::ok("input", "standard input"));
            }
            for path in &f.inputs {
                let name = path.display().to_string();
                out.push(if name == "-" {
                    Check::ok("input", "standard input")
                } else {
                    match std::fs::File::open(path).and_then(|f| f.metadata()) {
                        Ok(m) => Check::ok(format!("input {name}"), format!("{} bytes", m.len())),
                        Err(e) => Check::failed(
                            format!("input {name}"),
                            format!("cannot read it: {e}"),
                            "check the path (--input) and its permissions",
                        ),
                    }
                });
            }
        }
    }
    out.extend(output(settings, timeout).await);
    out
}

async fn kafka_source(k: &crate::source::kafka::KafkaSettings, timeout: Duration) -> Vec<Check> {
    let (config, topics) = match crate::source::kafka::client_config(k) {
        Ok(c) => c,
        Err(e) => {
            return vec![Check::failed(
                "kafka source",
                format!("{e:#}"),
                "set --source-bootstrap and --source-topic",
            )];
        }
    };
    tokio::task::spawn_blocking(move || {
        let bootstrap = config.get("bootstrap.servers").unwrap_or("").to_owned();
        let consumer: BaseConsumer<DefaultConsumerContext> =
            match config.create(DefaultConsumerContext) {
                Ok(c) => c,
                Err(e) => {
                    return vec![Check::failed(
                        "kafka source",
                        e.to_string(),
                        "check the -S properties",
                    )];
                }
            };
        let named: Vec<(&str, &str)> = topics.iter().map(|t| (t.as_str(), "input")).collect();
        check_topics(
            consumer.client(),
            "kafka source",
            &bootstrap,
            &named,
            "create the topic (the event hub), or correct --source-topic",
            timeout,
        )
    })
    .await
    .unwrap_or_else(|e| vec![Check::failed("kafka source", e.to_string(), "report this")])
}

/// Whether this configuration would open transactions: as `delivery_plan` decides, without
/// the probe (`auto` counts).
fn wants_transactions(settings: &IngestSettings) -> bool {
    settings
        .pipeline
        .outputs
        .iter()
        .any(|o| match o.delivery.unwrap_or(settings.delivery) {
            DeliveryMode::ExactlyOnce => true,
            DeliveryMode::AtLeastOnce => false,
            DeliveryMode::Auto => true,
        })
}

async fn output(settings: &IngestSettings, timeout: Duration) -> Vec<Check> {
    let settings = settings.clone();
    tokio::task::spawn_blocking(move || {
        let producer: BaseProducer<DefaultProducerContext> = match settings
            .producer
            .config("output preflight")
            .create(DefaultProducerContext)
        {
            Ok(p) => p,
            Err(e) => {
                return vec![Check::failed(
                    "kafka output",
                    e.to_string(),
                    "check the -X properties",
                )];
            }
        };
        let mut topics: Vec<(String, String)> = settings
            .pipeline
            .outputs
            .iter()
            .map(|o| (o.topic.clone(), format!("sign-ins ({})", o.format)))
            .collect();
        topics.push((
            settings.pipeline.dead_letter_topic.clone(),
            "dead letters".to_owned(),
        ));
        let named: Vec<(&str, &str)> = topics
            .iter()
            .map(|(t, w)| (t.as_str(), w.as_str()))
            .collect();
        let mut out = check_topics(
            producer.client(),
            "kafka output",
            &settings.producer.bootstrap,
            &named,
            "create the topic (or correct --topic, --extra-output, --dead-letter-topic)",
            timeout,
        );
        let reachable = out.first().is_some_and(Check::passed);
        if reachable && wants_transactions(&settings) {
            out.push(transactions(&settings));
            out.push(positions_topic(&producer, &settings, timeout));
        }
        out
    })
    .await
    .unwrap_or_else(|e| vec![Check::failed("kafka output", e.to_string(), "report this")])
}

/// Initialises a transactional producer with an id of its own, as the auto delivery probes.
fn transactions(settings: &IngestSettings) -> Check {
    let id = format!(
        "{}-check-{}",
        settings.exactly_once.transactional_id_prefix,
        std::process::id()
    );
    match crate::sink::Txn::open(&settings.exactly_once, &id) {
        Ok(_) => Check::ok("kafka transactions", "a transactional producer initialised"),
        Err(e) if settings.delivery == DeliveryMode::Auto => Check::ok(
            "kafka transactions",
            format!("refused ({e}): --delivery auto will deliver at least once"),
        ),
        Err(e) => Check::failed(
            "kafka transactions",
            e.to_string(),
            "use a Kafka that supports transactions (0.11 or later, transaction.state.log settings met) and allow the principal WRITE on transactional ids with the --transactional-id-prefix, or use --delivery at-least-once",
        ),
    }
}

fn positions_topic(producer: &BaseProducer, settings: &IngestSettings, timeout: Duration) -> Check {
    let topic = &settings.exactly_once.positions.topic;
    let part = format!("kafka output topic {topic}");
    if matches!(settings.source, SourceSettings::Kafka(_)) {
        return Check::ok(
            part,
            "not needed: a Kafka source's offsets are committed with the group",
        );
    }
    match producer.client().fetch_metadata(Some(topic), timeout) {
        Ok(m) => match m.topics().first() {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => Check::ok(
                part,
                format!("positions, {} partition(s)", t.partitions().len()),
            ),
            _ => Check::ok(
                part,
                "positions: absent, created at start (compacted, 32 partitions)",
            ),
        },
        Err(e) => Check::failed(
            part,
            format!("positions: {e}"),
            "check that the principal may describe and create topics",
        ),
    }
}
