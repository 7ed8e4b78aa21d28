//! The in-process Kafka of `mfagap run`: nothing to install for a first run.
//!
//! librdkafka ships a mock cluster that speaks the real Kafka protocol on local ports
//! (plaintext, no authentication): the ingest producer, the archiver's consumer group and any
//! outside client such as `kcat -b ADDR -L` talk to it as to a broker. It lives as long as the
//! process and keeps everything in memory, so it is for demos and tests, never for data that
//! must outlive the run.

use anyhow::{Context, Result};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

/// A running mock cluster with the run's topics.
pub(crate) struct Embedded {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl Embedded {
    /// Starts one broker on a free local port and creates `topics` as (name, partitions).
    pub(crate) fn start(topics: &[(&str, i32)]) -> Result<Embedded> {
        let cluster = MockCluster::new(1).context("cannot start the in-process Kafka broker")?;
        for (name, partitions) in topics {
            cluster
                .create_topic(name, *partitions, 1)
                .with_context(|| format!("cannot create the topic {name}"))?;
        }
        Ok(Embedded { cluster })
    }

    /// `host:port` for `bootstrap.servers`.
    pub(crate) fn bootstrap(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}
