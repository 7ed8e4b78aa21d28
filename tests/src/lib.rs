//! The end-to-end harness: a real Kafka-protocol broker and the helpers tests need around it.
//!
//! Tests never mock our own Kafka calls: they talk to a real broker. `KAFKA_BOOTSTRAP` points
//! the suite at an existing Kafka; otherwise the harness starts one of the brokers that
//! `scripts/setup.sh` installs under `.tools/` — noida-db (the default) or tansu — on a free
//! port with a fresh data directory, and stops it when the test ends. Every test makes its own
//! topics, so tests share nothing.
//!
//! For what the services write to Parquet and Blob storage: [`Azurite`] (the Azure Blob
//! Storage emulator), and [`read_dataset`] / [`read_dataset_pyarrow`] / [`parquet_metadata`],
//! which read Parquet back with DuckDB and pyarrow in the `.tools/py` virtual environment.
//!
//! For what the ingest service reads: [`EventHubsDouble`], an Azure Event Hubs test double that
//! the real Event Hubs client connects to.

pub mod azurite;
pub mod capture;
pub mod dataset;
pub mod eventhubs;
pub mod graph;
pub mod process;
pub mod python;
pub mod s3;
pub mod shapes;

pub use azurite::Azurite;
pub use capture::{CaptureEvent, capture_path, write_capture_file};
pub use dataset::{parquet_files, parquet_metadata, read_dataset, read_dataset_pyarrow};
pub use eventhubs::{EventHubsConfig, EventHubsDouble};
pub use graph::{GraphConfig, GraphDouble, GraphStats};
pub use python::python;
pub use s3::S3Server;

use anyhow::{Context, Result, bail};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Which broker implementation a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// noida-db's Kafka service: passes groups, idempotence and transactions.
    Noida,
    /// tansu: a second, independent implementation (in-memory storage).
    Tansu,
    /// Whatever `KAFKA_BOOTSTRAP` points at.
    External,
}

/// A running broker; stopped when dropped.
pub struct Broker {
    pub kind: Kind,
    pub bootstrap: String,
    port: u16,
    data: Option<tempfile::TempDir>,
    child: Option<Child>,
}

/// The repository root, where `.tools/` lives.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

impl Broker {
    /// The broker for this test: `KAFKA_BOOTSTRAP` if set, else a fresh one of `kind`.
    pub fn start(kind: Kind) -> Result<Broker> {
        if let Ok(bootstrap) = std::env::var("KAFKA_BOOTSTRAP") {
            return Ok(Broker {
                kind: Kind::External,
                bootstrap,
                port: 0,
                data: None,
                child: None,
            });
        }
        let port = free_port();
        let mut b = Broker {
            kind,
            bootstrap: format!("127.0.0.1:{port}"),
            port,
            data: Some(tempfile::tempdir()?),
            child: None,
        };
        b.spawn()?;
        Ok(b)
    }

    /// The default broker of the suite: noida-db.
    pub fn noida() -> Result<Broker> {
        Broker::start(Kind::Noida)
    }

    fn spawn(&mut self) -> Result<()> {
        let tools = repo_root().join(".tools");
        let port = self.port.to_string();
        let mut cmd = match self.kind {
            Kind::Noida => {
                let bin = tools.join("bin/noida");
                let mut c = Command::new(&bin);
                c.args(["start", "--only", "kafka", "--host", "127.0.0.1"])
                    .args(["--kafka-port", &port, "--data-dir"])
                    .arg(self.data.as_ref().expect("a data dir").path());
                c
            }
            Kind::Tansu => {
                let bin = tools.join("bin/tansu");
                let url = format!("tcp://127.0.0.1:{port}");
                let mut c = Command::new(&bin);
                c.args(["broker", "--listener-url", &url])
                    .args(["--advertised-listener-url", &url])
                    .args(["--storage-engine", "memory://tansu/"]);
                c
            }
            Kind::External => return Ok(()),
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start the {:?} broker: run scripts/setup.sh",
                    self.kind
                )
            })?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let producer: BaseProducer = self.client_config().create()?;
        loop {
            match producer
                .client()
                .fetch_metadata(None, Duration::from_secs(2))
            {
                Ok(m) if !m.brokers().is_empty() => return Ok(()),
                _ if Instant::now() > deadline => bail!("the broker did not come up"),
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Stops the broker process (an outage); its data stays for `resume`.
    pub fn pause(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes the broker process (SIGSTOP): connections hang and nothing answers, as when a
    /// network path breaks, while its data stays intact for `thaw`.
    pub fn freeze(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args(["-STOP", &c.id().to_string()])
                .status();
        }
    }

    /// Lets a frozen broker run again (SIGCONT).
    pub fn thaw(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
        }
    }

    /// Starts the broker again on the same port and data.
    pub fn resume(&mut self) -> Result<()> {
        self.spawn()
    }

    /// A client configuration for this broker, with the settings each implementation needs.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        c
    }

    /// librdkafka properties the services need for this broker (passed as `-X`).
    pub fn extra_properties(&self) -> Vec<String> {
        match self.kind {
            // tansu holds group joins for half the session timeout: keep it short.
            Kind::Tansu => vec!["session.timeout.ms=6000".into()],
            // noida-db ignores fetch.max.bytes and may answer a fetch with ~100 MB.
            Kind::Noida => vec!["receive.message.max.bytes=1000000000".into()],
            Kind::External => vec![],
        }
    }

    /// Creates a topic with `partitions` partitions and waits until it is visible.
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = self.client_config().create()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let results = rt.block_on(admin.create_topics([&topic], &AdminOptions::new()))?;
        for r in results {
            r.map_err(|(t, e)| anyhow::anyhow!("cannot create topic {t}: {e}"))?;
        }
        let consumer: BaseConsumer = self.client_config().create()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let md = consumer
                .fetch_metadata(Some(name), Duration::from_secs(5))
                .ok();
            let n = md
                .as_ref()
                .and_then(|m| m.topics().first().map(|t| t.partitions().len()))
                .unwrap_or(0);
            if n == partitions as usize {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("topic {name} has {n} of {partitions} partitions");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Writes each body as one message, round-robin over the partitions, and waits for acks.
    pub fn produce(&self, topic: &str, partitions: i32, bodies: &[Vec<u8>]) -> Result<()> {
        let producer: BaseProducer = self
            .client_config()
            .set("linger.ms", "5")
            .set("message.max.bytes", "10000000")
            .create()?;
        for (i, body) in bodies.iter().enumerate() {
            let record = BaseRecord::<(), [u8]>::to(topic)
                .payload(body)
                .partition(i as i32 % partitions);
            send_waiting(&producer, record);
        }
        producer.flush(Duration::from_secs(60))?;
        Ok(())
    }

    /// Writes `records` to `topic` as they are — partition, key, headers, payload — without
    /// a transaction: a copy of what another topic committed.
    pub fn copy_records(&self, topic: &str, records: &[Record]) -> Result<()> {
        let producer: BaseProducer = self
            .client_config()
            .set("linger.ms", "5")
            .set("message.max.bytes", "10000000")
            .create()?;
        for r in records {
            let mut headers = rdkafka::message::OwnedHeaders::new();
            for (k, v) in &r.headers {
                headers = headers.insert(rdkafka::message::Header {
                    key: k,
                    value: Some(v.as_bytes()),
                });
            }
            let mut record = BaseRecord::<[u8], [u8]>::to(topic)
                .payload(&r.payload)
                .partition(r.partition)
                .headers(headers);
            if let Some(k) = &r.key {
                record = record.key(k.as_bytes());
            }
            send_waiting(&producer, record);
        }
        producer.flush(Duration::from_secs(60))?;
        Ok(())
    }

    /// Every committed message of a topic, from the beginning up to its current end, as a
    /// `read_committed` consumer sees it: records of aborted or open transactions are not
    /// there. The end of a partition written by transactions is its end-of-partition event,
    /// since the last offsets are commit markers no consumer receives.
    pub fn read_all(&self, topic: &str) -> Result<Vec<Record>> {
        let consumer: BaseConsumer = self
            .client_config()
            .set("group.id", format!("reader-{}", unique("g")))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            // Whole partitions in one fetch response: noida lists an aborted transaction in
            // every later response, which would hide later records of its producer
            // (ARCHITECTURE.md, "Test brokers").
            .set("fetch.max.bytes", "500000000")
            .set("max.partition.fetch.bytes", "500000000")
            .set("receive.message.max.bytes", "1000000000")
            .set(
                "enable.partition.eof",
                if self.kind == Kind::Tansu {
                    "false"
                } else {
                    "true"
                },
            )
            .create()?;
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let parts = md
            .topics()
            .first()
            .map(|t| t.partitions().len() as i32)
            .unwrap_or(0);
        let mut ends = BTreeMap::new();
        let mut tpl = TopicPartitionList::new();
        for p in 0..parts {
            let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
            // tansu answers "latest" lookups wrongly: read it until it goes quiet instead.
            let high = if self.kind == Kind::Tansu {
                i64::MAX
            } else {
                high
            };
            if high > low {
                ends.insert(p, high);
                tpl.add_partition_offset(topic, p, Offset::Beginning)?;
            }
        }
        let mut out = Vec::new();
        if ends.is_empty() {
            return Ok(out);
        }
        consumer.assign(&tpl)?;
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut done = BTreeMap::new();
        let mut last = Instant::now();
        while done.len() < ends.len() {
            if Instant::now() > deadline {
                bail!("reading {topic} timed out");
            }
            let Some(m) = consumer.poll(Duration::from_millis(500)) else {
                if self.kind == Kind::Tansu && last.elapsed() > Duration::from_secs(5) {
                    break;
                }
                continue;
            };
            last = Instant::now();
            let m = match m {
                Err(rdkafka::error::KafkaError::PartitionEOF(p)) => {
                    done.insert(p, ());
                    continue;
                }
                m => m?,
            };
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_owned(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Record {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                payload: m.payload().unwrap_or_default().to_vec(),
                headers,
            });
            if m.offset() + 1 >= ends[&m.partition()] {
                done.insert(m.partition(), ());
            }
        }
        Ok(out)
    }

    /// The committed offsets of a consumer group on a topic, by partition.
    pub fn committed(
        &self,
        group: &str,
        topic: &str,
        partitions: i32,
    ) -> Result<BTreeMap<i32, i64>> {
        let consumer: BaseConsumer = self
            .client_config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let c = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
        Ok(c.elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.thaw();
        self.pause();
    }
}

/// Sends `record`, waiting while the producer's queue is full.
fn send_waiting<K: rdkafka::message::ToBytes + ?Sized>(
    producer: &BaseProducer,
    mut record: BaseRecord<'_, K, [u8]>,
) {
    loop {
        match producer.send(record) {
            Ok(()) => break,
            Err((_, back)) => {
                record = back;
                producer.poll(Duration::from_millis(50));
            }
        }
    }
    producer.poll(Duration::ZERO);
}

/// One message read back from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

/// A name no other test uses, for topics and groups.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Generated message bodies (malformed lines included) and, per message, the (category, id)
/// of each sign-in it must emit the first time it is seen.
pub struct Input {
    pub bodies: Vec<Vec<u8>>,
    pub emits: Vec<Vec<(String, String)>>,
}

impl Input {
    /// Every (category, id) that must reach the output topic.
    pub fn all_emits(&self) -> std::collections::BTreeSet<(String, String)> {
        self.emits.iter().flatten().cloned().collect()
    }

    /// Writes the bodies as JSON Lines.
    pub fn write(&self, path: &std::path::Path) -> Result<()> {
        let mut out = Vec::new();
        for b in &self.bodies {
            out.extend_from_slice(b);
            out.push(b'\n');
        }
        std::fs::write(path, out)?;
        Ok(())
    }
}

/// `messages` generated message bodies of up to `max_records` records each, with malformed
/// messages and records, and repeated records when `duplicates` is set.
pub fn generated(messages: u64, seed: u64, max_records: usize, duplicates: bool) -> Input {
    use mfagap_generate::{ExpectedOutcome, Generator, GeneratorConfig};
    let mut g = Generator::new(GeneratorConfig {
        seed,
        max_records,
        malformed_share: 0.01,
        bad_record_share: 0.01,
        duplicate_share: if duplicates { 0.01 } else { 0.0 },
        ..GeneratorConfig::default()
    });
    let (mut bodies, mut emits) = (Vec::new(), Vec::new());
    for _ in 0..messages {
        let m = g.next_message();
        emits.push(
            m.expected
                .into_iter()
                .filter(|e| matches!(e.outcome, ExpectedOutcome::Emit { .. }) && !e.repeat)
                .map(|e| (e.category, e.id))
                .collect(),
        );
        bodies.push(m.body);
    }
    Input { bodies, emits }
}

/// `n` output records as the ingest service writes them (JSON), ids `{prefix}0…` so that
/// "each record once" is checkable, from generated sign-ins spread over days and hours.
pub fn output_records(n: usize, seed: u64, prefix: &str) -> Vec<Vec<u8>> {
    let mut g = mfagap_generate::Generator::new(mfagap_generate::GeneratorConfig {
        seed,
        malformed_share: 0.0,
        bad_record_share: 0.0,
        duplicate_share: 0.0,
        ..Default::default()
    });
    let p = mfagap_core::Processor::default();
    let mut stats = mfagap_core::Stats::default();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let body = g.next_message().body;
        p.process(
            &body,
            &Default::default(),
            1_763_000_000_000_000,
            &mut stats,
            &mut |o| {
                if let mfagap_core::Output::SignIn(mut s) = o
                    && out.len() < n
                {
                    s.id = mfagap_core::lenient::Text(format!("{prefix}{}", out.len()).into());
                    out.push(serde_json::to_vec(&s).expect("a record serializes"));
                }
            },
        );
    }
    out
}

/// `GET path` on a local HTTP endpoint: (status, body). Enough for /metrics and /health.
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("an HTTP status line")?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}

/// The sum of a Prometheus metric over all its label sets (chunked bodies tolerated).
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A free local port for a service's metrics endpoint.
pub fn port() -> u16 {
    free_port()
}

/// The resident memory of a process in MB, from /proc.
pub fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// A record's JSON without the fields that say where and when it was read, which differ
/// between two runs over the same sign-ins.
pub fn comparable(payload: &[u8]) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_slice(payload).expect("a JSON record");
    let o = v.as_object_mut().expect("an object");
    o.remove("source");
    o.remove("ingestedAt");
    v
}
