//! Every Kafka client of mfagap is configured and created here, the same way.
//!
//! A [`KafkaConfig`] takes, in order: the settings a role needs by default, the operator's
//! `-X key=value` properties (which may change any default), then the settings that are
//! always forced for correctness (a warning says when an operator's property is ignored).
//! Creating the client logs the operator's properties with secret values redacted, and scrubs
//! every secret value out of a creation error, which librdkafka quotes. Statistics (the source
//! of consumer lag, [`lag`]) are turned on only for a client whose context reads them
//! ([`KafkaConfig::statistics`]): librdkafka's default context logs each report at `info`.
//!
//! [`producer`] is the retrying, idempotent producer the services share for outputs and dead
//! letters, with its metrics under the caller's prefix.

pub mod lag;
pub mod producer;

use crate::error::Error;
use crate::secret::{Property, Secret, display_property, scrub};
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::FromClientConfigAndContext;

pub use lag::{ConsumerLag, PartitionLag};
pub use producer::{OutRecord, Producer, ProducerSettings};

/// Whether `key` is a property only a consumer reads (librdkafka warns when a producer is
/// given one): `-X` settings shared by a service's consumer and producer skip these on the
/// producer.
pub fn consumer_only(key: &str) -> bool {
    key.starts_with("group.")
        || matches!(
            key,
            "isolation.level"
                | "session.timeout.ms"
                | "heartbeat.interval.ms"
                | "max.poll.interval.ms"
                | "auto.offset.reset"
                | "enable.auto.commit"
                | "auto.commit.interval.ms"
                | "enable.auto.offset.store"
                | "enable.partition.eof"
                | "partition.assignment.strategy"
                | "fetch.min.bytes"
                | "fetch.max.bytes"
                | "fetch.wait.max.ms"
                | "max.partition.fetch.bytes"
                | "queued.min.messages"
                | "queued.max.messages.kbytes"
                | "check.crcs"
        )
}

/// The settings of one Kafka client, built in the order defaults, operator, forced.
#[derive(Clone)]
pub struct KafkaConfig {
    /// What the client is for, in logs and errors: "output producer", "Kafka source", …
    what: &'static str,
    config: ClientConfig,
    /// The operator's properties, for logging (redacted) and scrubbing.
    properties: Vec<Property>,
    /// Secret values set by the service itself (a connection string as SASL password).
    secrets: Vec<Secret>,
    /// Whether librdkafka reports statistics to the client's context.
    statistics: bool,
}

impl KafkaConfig {
    /// A client of `bootstrap` with no other setting yet.
    pub fn new(what: &'static str, bootstrap: &str) -> KafkaConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", bootstrap);
        KafkaConfig {
            what,
            config,
            properties: Vec::new(),
            secrets: Vec::new(),
            statistics: false,
        }
    }

    /// A default of the role; the operator's properties may change it.
    pub fn set(&mut self, key: &str, value: &str) -> &mut KafkaConfig {
        self.config.set(key, value);
        self
    }

    /// A secret the service sets itself (e.g. an Event Hubs connection string as SASL
    /// password): never logged, scrubbed from errors.
    pub fn set_secret(&mut self, key: &str, value: &Secret) -> &mut KafkaConfig {
        self.config.set(key, value.expose());
        self.secrets.push(value.clone());
        self
    }

    /// The operator's `-X key=value` properties, applied over the defaults.
    pub fn operator(&mut self, properties: &[Property]) -> &mut KafkaConfig {
        for p in properties {
            self.config.set(&p.key, p.value.expose());
        }
        self.properties.extend(properties.iter().cloned());
        self
    }

    /// A setting correctness depends on: applied last, whatever `-X` said (with a warning).
    pub fn force(&mut self, key: &str, value: &str) -> &mut KafkaConfig {
        if self.config.get(key).is_some_and(|v| v != value)
            && self.properties.iter().any(|p| p.key == key)
        {
            tracing::warn!(
                property = key,
                "{key} is always {value} for the {}; ignoring -X {key}",
                self.what
            );
        }
        self.config.set(key, value);
        self
    }

    /// Statistics on at [`lag::STATISTICS_INTERVAL_MS`] (unless the operator chose an
    /// interval), for a context that reads them (consumer lag). Off otherwise: a default
    /// context would log every report.
    pub fn statistics(&mut self) -> &mut KafkaConfig {
        self.statistics = true;
        self
    }

    /// A setting's value as it stands now.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.config.get(key)
    }

    /// The operator's properties as they may be logged.
    pub fn shown_properties(&self) -> Vec<String> {
        self.properties
            .iter()
            .map(|p| display_property(&p.key, p.value.expose()))
            .collect()
    }

    /// Creates the client with `context`: the settings logged redacted, a failure scrubbed of
    /// every secret value.
    pub fn create<C, X>(&self, context: X) -> Result<C, Error>
    where
        C: FromClientConfigAndContext<X>,
        X: ClientContext,
    {
        let mut config = self.config.clone();
        if self.statistics {
            lag::enable_statistics(&mut config);
        }
        tracing::info!(
            bootstrap = config.get("bootstrap.servers").unwrap_or(""),
            properties = ?self.shown_properties(),
            "{}",
            self.what
        );
        config.create_with_context(context).map_err(|e| {
            // librdkafka quotes the value of a property it refuses, and a misspelt secret
            // name is one it refuses: every value the operator gave is scrubbed here.
            let secrets: Vec<&Secret> = self
                .secrets
                .iter()
                .chain(self.properties.iter().map(|p| &p.value))
                .collect();
            Error::configuration(format!(
                "cannot create the {} (check its -X properties): {}",
                self.what,
                scrub(&e.to_string(), &self.properties, &secrets)
            ))
        })
    }

    /// The underlying configuration, for a caller that needs a setting's effective value.
    pub fn client_config(&self) -> &ClientConfig {
        &self.config
    }
}

/// Preflight of a Kafka cluster through `client`: it answers a metadata request within
/// `timeout`, and each of `topics` (name, what it is for) exists. `part` names the cluster's
/// role in the lines (`kafka output`, …); `missing_fix` says what to do about a missing topic.
pub fn check_topics<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    part: &str,
    bootstrap: &str,
    topics: &[(&str, &str)],
    missing_fix: &str,
    timeout: std::time::Duration,
) -> Vec<crate::check::Check> {
    use crate::check::Check;
    let metadata = match client.fetch_metadata(None, timeout) {
        Ok(m) => m,
        Err(e) => {
            return vec![Check::failed(
                part,
                format!("{bootstrap} did not answer within {timeout:?}: {e}"),
                "check the bootstrap servers, that the brokers are reachable from here, and the TLS/SASL properties (-X)",
            )];
        }
    };
    let mut checks = vec![Check::ok(
        part,
        format!("{bootstrap}: {} broker(s) answer", metadata.brokers().len()),
    )];
    for (topic, what) in topics {
        let found = metadata.topics().iter().find(|t| t.name() == *topic);
        checks.push(match found {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => Check::ok(
                format!("{part} topic {topic}"),
                format!("{what}, {} partition(s)", t.partitions().len()),
            ),
            Some(t) if t.error().is_some() => Check::failed(
                format!("{part} topic {topic}"),
                format!(
                    "{what}: the broker answers {}",
                    t.error()
                        .map(|e| rdkafka::types::RDKafkaErrorCode::from(e).to_string())
                        .unwrap_or_default()
                ),
                missing_fix,
            ),
            _ => Check::failed(
                format!("{part} topic {topic}"),
                format!("{what}: no such topic"),
                missing_fix,
            ),
        });
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::producer::{BaseProducer, DefaultProducerContext};

    #[test]
    fn operator_properties_override_defaults_but_not_forced_settings() {
        let mut c = KafkaConfig::new("test producer", "127.0.0.1:1");
        c.set("linger.ms", "20").set("acks", "1");
        c.operator(&["linger.ms=5".parse().unwrap(), "acks=0".parse().unwrap()]);
        c.force("acks", "all");
        assert_eq!(c.get("linger.ms"), Some("5"));
        assert_eq!(c.get("acks"), Some("all"));
    }

    #[test]
    fn a_creation_error_names_the_client_and_never_a_secret_value() {
        let mut c = KafkaConfig::new("test producer", "127.0.0.1:1");
        c.set_secret(
            "sasl.password",
            &Secret::new("Endpoint=sb://x/;SharedAccessKey=k3y!"),
        );
        c.operator(&[
            "sasl.oauthbearer.client.secret=hunter22".parse().unwrap(),
            "no.such.property=hunter22".parse().unwrap(),
        ]);
        let e = c
            .create::<BaseProducer, _>(DefaultProducerContext)
            .err()
            .expect("an unknown property fails");
        let text = e.to_string();
        assert_eq!(e.kind(), crate::ErrorKind::Configuration);
        assert!(text.contains("test producer"), "{text}");
        assert!(
            !text.contains("k3y!") && !text.contains("hunter22"),
            "{text}"
        );
    }

    #[test]
    fn consumer_only_properties_are_told_apart_from_shared_ones() {
        for key in ["group.instance.id", "isolation.level", "session.timeout.ms"] {
            assert!(super::consumer_only(key), "{key}");
        }
        for key in [
            "sasl.password",
            "security.protocol",
            "compression.type",
            "acks",
        ] {
            assert!(!super::consumer_only(key), "{key}");
        }
    }
}
