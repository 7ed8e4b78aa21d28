//! Preflight of the archiver (`mfagap check`): its Kafka and topics, and the dataset's
//! storage — writable, with the conditional create the commit protocol stands on. One line
//! per check; only a probe object is written, then deleted.

use crate::ArchiveSettings;
use crate::storage::Store;
use mfagap_runtime::check::Check;
use mfagap_runtime::kafka::{KafkaConfig, check_topics};
use object_store::path::Path;
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use std::time::Duration;

/// Every check of the service's settings, each bounded by `timeout`.
pub async fn check(settings: &ArchiveSettings, timeout: Duration) -> Vec<Check> {
    let s = settings.clone();
    let mut out = tokio::task::spawn_blocking(move || kafka(&s, timeout))
        .await
        .unwrap_or_else(|e| vec![Check::failed("kafka input", e.to_string(), "report this")]);
    out.push(
        match tokio::time::timeout(timeout, storage(settings)).await {
            Ok(c) => c,
            Err(_) => Check::failed(
                "dataset",
                format!("{}: no answer within {timeout:?}", settings.data),
                "check the storage account or bucket, and network access to it",
            ),
        },
    );
    out
}

fn kafka(settings: &ArchiveSettings, timeout: Duration) -> Vec<Check> {
    let mut c = KafkaConfig::new("Kafka consumer preflight", &settings.bootstrap);
    c.set("group.id", &settings.group)
        .operator(&settings.kafka_properties);
    let consumer: BaseConsumer<DefaultConsumerContext> = match c.create(DefaultConsumerContext) {
        Ok(c) => c,
        Err(e) => {
            return vec![Check::failed(
                "kafka input",
                e.to_string(),
                "check the -X properties",
            )];
        }
    };
    check_topics(
        consumer.client(),
        "kafka input",
        &settings.bootstrap,
        &[
            (settings.archive.topic.as_str(), "sign-ins (native)"),
            (settings.archive.dead_letter_topic.as_str(), "dead letters"),
        ],
        "create the topic, or correct --topic and --dead-letter-topic",
        timeout,
    )
}

/// Opens the dataset root, creates a probe object if absent, checks that a second create of
/// it is refused (the commit records' fence), and deletes it.
async fn storage(settings: &ArchiveSettings) -> Check {
    let part = "dataset";
    let fix = "check --data and its permissions (a directory the service may write, or a container or bucket the identity may write, list and delete in)";
    let store = match Store::open(&settings.data, &settings.storage_options) {
        Ok(s) => s,
        Err(e) => return Check::failed(part, format!("{e:#}"), fix),
    };
    let probe = Path::from(format!(
        "_mfagap/check/{}",
        mfagap_runtime::check::probe_name("probe")
    ));
    match store.create(&probe, "probe".into()).await {
        Ok(true) => {}
        Ok(false) => {
            return Check::failed(
                part,
                format!("{}: a fresh probe object already existed", store.location),
                "run the check again",
            );
        }
        Err(e) => return Check::failed(part, format!("{e:#}"), fix),
    }
    let second = store.create(&probe, "probe".into()).await;
    let deleted = store.delete(&probe).await;
    match (second, deleted) {
        (Ok(false), Ok(())) => Check::ok(
            part,
            format!(
                "{}: wrote, refused a second create of, and deleted a probe object",
                store.location
            ),
        ),
        (Ok(true), _) => Check::failed(
            part,
            format!(
                "{}: a second create of the same object succeeded: the store does not support conditional writes",
                store.location
            ),
            "use a store with create-if-absent (Azure Blob, ADLS Gen2, S3 with conditional writes, a local disk)",
        ),
        (Err(e), _) | (_, Err(e)) => Check::failed(part, format!("{e:#}"), fix),
    }
}
