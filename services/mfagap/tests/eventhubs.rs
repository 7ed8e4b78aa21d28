//! The `eventhubs` source end to end: the real Event Hubs client of `mfagap ingest` (the same
//! code as the `mfagap-ingest` binary) against the Event Hubs test double, checkpoints and
//! ownership in Azurite, output to a real Kafka-protocol broker.

mod common;

use common::{filter_reference, ids, mfagap, output_records};
use mfagap_testkit::eventhubs::{EventHubsConfig, EventHubsDouble};
use mfagap_testkit::{Azurite, Broker, Input, Kind, generated, http_get, metric, unique};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Everything one test runs against.
struct World {
    double: EventHubsDouble,
    azurite: Azurite,
    broker: Broker,
    container: String,
    output: String,
    dead: String,
    dir: tempfile::TempDir,
}

impl World {
    fn new(kind: Kind) -> World {
        World::with(kind, EventHubsConfig::default())
    }

    fn with(kind: Kind, config: EventHubsConfig) -> World {
        let double = EventHubsDouble::start(config).unwrap();
        let azurite = Azurite::start().unwrap();
        let container = "checkpoints".to_owned();
        azurite.create_container(&container).unwrap();
        let broker = Broker::start(kind).unwrap();
        let (output, dead) = (unique("out"), unique("dl"));
        broker.create_topic(&output, 3).unwrap();
        broker.create_topic(&dead, 1).unwrap();
        World {
            double,
            azurite,
            broker,
            container,
            output,
            dead,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Starts a replica; `name` tells its log apart.
    fn ingest(&self, name: &str, connection: &str, extra: &[&str]) -> Ingest {
        let addr = format!("127.0.0.1:{}", mfagap_testkit::port());
        let log = self.dir.path().join(format!("{name}.log"));
        let mut cmd = self.command();
        cmd.args(["ingest", "--source", "eventhubs"])
            .env("MFAGAP_EVENTHUBS_CONNECTION_STRING", connection)
            .env("MFAGAP_CONSUMER_GROUP", "mfagap-ingest")
            .args([
                "--bootstrap",
                &self.broker.bootstrap,
                "--topic",
                &self.output,
            ])
            .args(["--dead-letter-topic", &self.dead, "--listen", &addr])
            .args(["--commit-interval", "300ms", "--log-format", "json"])
            .env("MFAGAP_CHECKPOINT_INTERVAL", "1s")
            .args(extra);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = cmd.stdout(Stdio::null()).stderr(file).spawn().unwrap();
        let i = Ingest {
            child: Some(child),
            addr,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(&i.addr, "/health/live").is_err() {
            assert!(Instant::now() < deadline, "no endpoint\n{}", i.log_tail());
            std::thread::sleep(Duration::from_millis(100));
        }
        i
    }

    /// `mfagap` with checkpoints and ownership in this world's Azurite container.
    fn command(&self) -> std::process::Command {
        let mut cmd = mfagap();
        self.checkpoints_in_azurite(&mut cmd);
        cmd
    }

    /// Checkpoints and ownership in this world's Azurite container.
    fn checkpoints_in_azurite(&self, cmd: &mut std::process::Command) {
        cmd.env(
            "MFAGAP_CHECKPOINT_STORE",
            format!("az://{}", self.container),
        )
        .env("AZURE_STORAGE_USE_EMULATOR", "true")
        .env(
            "AZURITE_BLOB_STORAGE_URL",
            format!("http://127.0.0.1:{}", self.azurite.port()),
        );
    }

    /// The checkpoint blobs as another Blob client reads them: partition → sequence number.
    fn checkpoints(&self) -> BTreeMap<String, i64> {
        self.blobs("/checkpoint/", "sequencenumber")
            .into_iter()
            .map(|(p, s)| (p, s.parse().unwrap()))
            .collect()
    }

    /// The ownership blobs: partition → owner ("" when released).
    fn owners(&self) -> BTreeMap<String, String> {
        self.blobs("/ownership/", "ownerid")
    }

    fn blobs(&self, kind: &str, key: &str) -> BTreeMap<String, String> {
        // `{namespace}/{hub}/{group}/{kind}/{partition}`; the namespace is the one the client
        // was opened with (the endpoint's host for an emulator connection string).
        let marker = format!("/{}/mfagap-ingest{kind}", self.double.event_hub());
        self.azurite
            .list_metadata(&self.container)
            .unwrap()
            .into_iter()
            .filter_map(|(name, meta)| {
                let (_, partition) = name.split_once(&marker)?;
                let partition = partition.to_owned();
                Some((partition, meta.get(key).cloned().unwrap_or_default()))
            })
            .collect()
    }

    fn append(&self, input: &Input, range: std::ops::Range<usize>) {
        self.double.append_bodies(input.bodies[range].iter());
    }

    fn events(&self) -> usize {
        (0..self.double.partition_count())
            .map(|p| self.double.len(p))
            .sum()
    }
}

/// A running `mfagap ingest --source eventhubs`; killed if still running when dropped.
struct Ingest {
    child: Option<Child>,
    addr: String,
    log: PathBuf,
}

impl Ingest {
    fn metrics(&self) -> String {
        http_get(&self.addr, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    fn owned(&self) -> f64 {
        metric(&self.metrics(), "mfagap_ingest_eventhubs_owned_partitions")
    }

    fn log_tail(&self) -> String {
        tail(&self.log)
    }

    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            mfagap_testkit::process::signal(c.id(), sig);
        }
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        self.child.take().unwrap().wait().unwrap()
    }

    fn kill(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.take().unwrap().wait();
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(
        std::env::var("MFAGAP_TEST_LOG_LINES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(40),
    )..]
        .join("\n")
}

/// Waits until `cond` holds, or fails with `what` and the logs.
fn wait(limit: Duration, what: &str, logs: &[&Ingest], mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() > deadline {
            let logs: Vec<String> = logs
                .iter()
                .map(|i| {
                    let m = i.metrics();
                    let ours: Vec<&str> = m
                        .lines()
                        .filter(|l| l.starts_with("mfagap_ingest_") && !l.contains("bucket"))
                        .collect();
                    format!("{}\n{}", i.log_tail(), ours.join("\n"))
                })
                .collect();
            panic!("timed out: {what}\n{}", logs.join("\n----\n"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Messages the replicas have read, summed.
fn read(replicas: &[&Ingest]) -> f64 {
    replicas
        .iter()
        .map(|i| metric(&i.metrics(), "mfagap_ingest_messages_total"))
        .sum()
}

#[test]
fn eventhubs_source_output_equals_filter_and_dead_letters_equal_the_malformed() {
    let w = World::new(Kind::Noida);
    let n = std::env::var("MFAGAP_E2E_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000u64);
    let input = generated(n, 23, 2, true);
    w.append(&input, 0..input.bodies.len());
    // The emulator's form of connection string: turned into plain AMQP on its port.
    let ingest = w.ingest("ingest", &w.double.emulator_connection_string(), &[]);
    let started = Instant::now();
    wait(
        Duration::from_secs(180),
        "every event read and acknowledged",
        &[&ingest],
        || metric(&ingest.metrics(), "mfagap_ingest_committed_position") == n as f64,
    );
    let elapsed = started.elapsed();
    let m = ingest.metrics();
    assert_eq!(
        metric(&m, "mfagap_ingest_eventhubs_owned_partitions"),
        4.0,
        "one replica owns every partition"
    );
    let status = ingest.terminate();
    assert!(status.success(), "{status:?}");
    eprintln!(
        "{n} messages through the double in {elapsed:?} ({:.0}/s)",
        n as f64 / elapsed.as_secs_f64()
    );

    let (want, want_dead) = filter_reference(&input, w.dir.path());
    let got = output_records(&w.broker, &w.output);
    assert_eq!(got.len(), want.len(), "as many records as filter prints");
    assert!(got == want, "the same JSON as filter, record for record");
    assert_eq!(ids(&got), input.all_emits());

    let mut dead: Vec<Vec<u8>> = w
        .broker
        .read_all(&w.dead)
        .unwrap()
        .into_iter()
        .map(|r| {
            assert!(!r.headers["errorCode"].is_empty());
            assert_eq!(r.headers["sourceTopic"], w.double.event_hub());
            r.payload
        })
        .collect();
    dead.sort();
    assert!(!dead.is_empty());
    assert!(
        dead == want_dead,
        "the dead letters filter writes, byte for byte"
    );

    // Each record says where it came from.
    let raw = w.broker.read_all(&w.output).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&raw[0].payload).unwrap();
    let source = &v["source"];
    assert_eq!(source["kind"], "eventhubs");
    assert_eq!(source["eventHub"], w.double.event_hub());
    let p: usize = source["partition"].as_str().unwrap().parse().unwrap();
    let s = source["sequenceNumber"].as_i64().unwrap();
    assert_eq!(
        source["offset"].as_str(),
        w.double.offset_of(p, s).as_deref()
    );
    assert!(source["enqueuedTime"].is_string());

    // The last checkpoints name each partition's last event, where other SDKs read them,
    // and the graceful stop released every partition.
    let want_cp: BTreeMap<String, i64> = (0..4)
        .map(|p| (p.to_string(), w.double.last_sequence_number(p).unwrap()))
        .collect();
    assert_eq!(w.checkpoints(), want_cp);
    let owners = w.owners();
    assert_eq!(owners.len(), 4);
    assert!(owners.values().all(String::is_empty), "{owners:?}");
}

#[test]
fn two_replicas_share_the_partitions_and_one_takes_over_when_the_other_is_killed() {
    let w = World::new(Kind::Noida);
    let input = generated(6_000, 29, 2, false);
    w.append(&input, 0..2_000);
    // A namespace connection string with the hub named apart, dialled through an endpoint.
    let cs = w.double.connection_string(false);
    let endpoint = w.double.endpoint();
    let fast = [
        "--eventhub",
        w.double.event_hub(),
        "--eventhubs-endpoint",
        &endpoint,
        "--load-balancing-interval",
        "1s",
        "--ownership-expiration",
        "5s",
    ];
    let a = w.ingest("a", &cs, &fast);
    let b = w.ingest("b", &cs, &fast);
    let split = Instant::now();
    wait(
        Duration::from_secs(40),
        "two partitions each",
        &[&a, &b],
        || a.owned() == 2.0 && b.owned() == 2.0,
    );
    eprintln!("balanced 2/2 in {:?}", split.elapsed());
    let owners = w.owners();
    assert_eq!(
        owners
            .values()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        2,
        "two owners in the ownership blobs: {owners:?}"
    );
    w.append(&input, 2_000..4_000);
    wait(Duration::from_secs(60), "4,000 read", &[&a, &b], || {
        read(&[&a, &b]) >= 4_000.0
    });
    // Let a checkpoint round pass, then kill A without warning.
    std::thread::sleep(Duration::from_millis(1_500));
    let checkpointed = w.checkpoints();
    a.kill();
    let killed = Instant::now();
    w.append(&input, 4_000..6_000);
    wait(
        Duration::from_secs(40),
        "the survivor owns all four",
        &[&b],
        || b.owned() == 4.0,
    );
    eprintln!("taken over in {:?}", killed.elapsed());
    wait(
        Duration::from_secs(60),
        "every event acknowledged",
        &[&b],
        || {
            let cp = w.checkpoints();
            (0..4).all(|p| cp.get(&p.to_string()).copied() == w.double.last_sequence_number(p))
        },
    );
    let status = b.terminate();
    assert!(status.success());

    let got = output_records(&w.broker, &w.output);
    assert_eq!(ids(&got), input.all_emits(), "nothing expected is missing");
    // The survivor resumed A's partitions from their checkpoints, not from the start.
    for p in 0..4 {
        let len = w.double.len(p) as u64;
        let from = checkpointed
            .get(&p.to_string())
            .map_or(0, |s| *s as u64 + 1);
        assert!(
            w.double.delivered(p) < 2 * len,
            "partition {p}: {} delivered for {len} events (checkpoint at {from})",
            w.double.delivered(p)
        );
    }
}

#[test]
fn a_restart_after_sigterm_resumes_from_the_checkpoints_without_reading_again() {
    let w = World::new(Kind::Noida);
    let input = generated(4_000, 31, 2, false);
    let cs = w.double.emulator_connection_string();
    w.append(&input, 0..2_000);
    let first = w.ingest("first", &cs, &["--checkpoint-interval", "1h"]);
    wait(Duration::from_secs(60), "2,000 read", &[&first], || {
        metric(&first.metrics(), "mfagap_ingest_committed_position") == 2_000.0
    });
    assert!(first.terminate().success());
    // Even with an hour between checkpoints, the stop wrote them and released the partitions.
    assert!(w.owners().values().all(String::is_empty));
    let delivered: Vec<u64> = (0..4).map(|p| w.double.delivered(p)).collect();
    assert_eq!(delivered.iter().sum::<u64>(), 2_000);

    w.append(&input, 2_000..4_000);
    // Ownership was released: no need to wait the 60 s for it to expire.
    let second = w.ingest("second", &cs, &[]);
    wait(
        Duration::from_secs(15),
        "all four owned at once",
        &[&second],
        || second.owned() == 4.0,
    );
    wait(Duration::from_secs(60), "the rest read", &[&second], || {
        metric(&second.metrics(), "mfagap_ingest_messages_total") == 2_000.0
    });
    assert!(second.terminate().success());
    for p in 0..4 {
        assert_eq!(
            w.double.delivered(p),
            w.double.len(p) as u64,
            "partition {p}: every event delivered exactly once over both runs"
        );
    }
    let got = output_records(&w.broker, &w.output);
    assert_eq!(ids(&got), input.all_emits());
    assert_eq!(got.len(), input.all_emits().len(), "no duplicates");
}

#[test]
fn a_dropped_connection_is_reopened_and_nothing_is_lost_or_read_twice() {
    let w = World::new(Kind::Noida);
    let input = generated(6_000, 37, 2, false);
    // A receiver the SDK leaves attached to nothing after a reconnect is found within seconds.
    let ingest = w.ingest(
        "ingest",
        &w.double.emulator_connection_string(),
        &["--stall-timeout", "3s"],
    );
    w.append(&input, 0..3_000);
    wait(Duration::from_secs(60), "some read", &[&ingest], || {
        read(&[&ingest]) >= 1_000.0
    });
    let before = w.double.connections_accepted();
    w.double.drop_connections();
    w.append(&input, 3_000..6_000);
    wait(
        Duration::from_secs(90),
        "every event read",
        &[&ingest],
        || read(&[&ingest]) >= w.events() as f64,
    );
    assert!(
        w.double.connections_accepted() > before,
        "the client connected again"
    );
    wait(
        Duration::from_secs(15),
        "the watchdog reports no lag",
        &[&ingest],
        || {
            ingest
                .metrics()
                .contains("mfagap_ingest_consumer_lag{partition=\"signinlogs/0\"} 0")
        },
    );
    let m = ingest.metrics();
    assert!(ingest.terminate().success());
    assert_eq!(
        metric(&m, "mfagap_ingest_messages_total"),
        6_000.0,
        "events the client received again after reconnecting were not passed on twice"
    );
    let got = output_records(&w.broker, &w.output);
    assert_eq!(ids(&got), input.all_emits(), "nothing lost");
}

/// One run of a replica whose first receiver on partition 1 stays attached and silent,
/// before its first event: it must be found stuck, opened again, and read to the end.
fn read_past_a_silent_receiver(w: &World, name: &str, expect: f64) {
    w.double.mute(1, 1);
    let cs = w.double.emulator_connection_string();
    let ingest = w.ingest(name, &cs, &["--stall-timeout", "2s"]);
    wait(
        Duration::from_secs(60),
        "every event read despite the silent receiver",
        &[&ingest],
        || read(&[&ingest]) >= expect,
    );
    let m = ingest.metrics();
    let log = std::fs::read_to_string(&ingest.log).unwrap();
    assert!(ingest.terminate().success());
    assert!(
        log.contains("partition 1 received nothing for"),
        "the watchdog named the silent partition:\n{log}"
    );
    assert!(metric(&m, "mfagap_ingest_eventhubs_processor_restarts_total") >= 1.0);
    assert_eq!(metric(&m, "mfagap_ingest_messages_total"), expect);
}

#[test]
fn a_receiver_silent_from_its_first_event_is_found_and_opened_again() {
    let w = World::new(Kind::Noida);
    let input = generated(4_000, 43, 2, false);
    // No checkpoint yet: what waits is counted from the start position (earliest).
    w.append(&input, 0..2_000);
    read_past_a_silent_receiver(&w, "first", 2_000.0);
    // From a checkpoint: what waits is counted from it.
    assert_eq!(
        w.checkpoints().len(),
        4,
        "the first run checkpointed every partition"
    );
    w.append(&input, 2_000..4_000);
    read_past_a_silent_receiver(&w, "second", 2_000.0);
    let got = output_records(&w.broker, &w.output);
    assert_eq!(ids(&got), input.all_emits(), "nothing lost");

    // Caught up at the checkpoints with nothing new: nothing waits, so nothing is reopened
    // (counting from the start position instead of the checkpoint would see 4,000 waiting).
    let idle = w.ingest(
        "idle",
        &w.double.emulator_connection_string(),
        &["--stall-timeout", "2s"],
    );
    wait(Duration::from_secs(15), "all four owned", &[&idle], || {
        idle.owned() == 4.0
    });
    std::thread::sleep(Duration::from_secs(6));
    let m = idle.metrics();
    assert!(idle.terminate().success());
    assert_eq!(
        metric(&m, "mfagap_ingest_eventhubs_processor_restarts_total"),
        0.0,
        "a caught-up partition is not stuck"
    );
    for p in 0..4 {
        assert!(
            m.contains(&format!(
                "mfagap_ingest_consumer_lag{{partition=\"signinlogs/{p}\"}} 0\n"
            )),
            "partition {p} reports no lag before its first event:\n{m}"
        );
    }
}

#[test]
fn a_wrong_sas_key_is_a_clear_error_naming_the_namespace_without_the_key() {
    let w = World::new(Kind::Noida);
    let wrong_key = "V1JPTkctS0VZLW5vdC10aGUtcmlnaHQtb25lLWF0LWFsbA==";
    let cs = w
        .double
        .emulator_connection_string()
        .replace(w.double.key(), wrong_key);
    assert!(cs.contains(wrong_key));
    let started = Instant::now();
    let out = w
        .command()
        .args(["ingest", "--source", "eventhubs"])
        .env("MFAGAP_EVENTHUBS_CONNECTION_STRING", &cs)
        .args(["--bootstrap", &w.broker.bootstrap, "--topic", &w.output])
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "fails fast, not after endless retries"
    );
    let last = text.lines().last().unwrap_or_default();
    assert!(last.contains("127.0.0.1"), "names the namespace: {last}");
    assert!(
        last.contains("InvalidSignature") || last.contains("401"),
        "names the cause: {last}"
    );
    assert!(!text.contains(wrong_key), "the key never appears: {text}");
    assert!(w.double.authorizations_refused() > 0);
}

#[test]
fn mfagap_run_with_the_eventhubs_source_archives_every_sign_in_before_it_stops() {
    let w = World::new(Kind::Noida);
    let input = generated(2_000, 41, 2, false);
    w.append(&input, 0..input.bodies.len());
    let data = w.dir.path().join("data");
    let addr = format!("127.0.0.1:{}", mfagap_testkit::port());
    let log = w.dir.path().join("run.log");
    let child = w
        .command()
        .args(["run", "--source", "eventhubs", "--progress", "off"])
        .arg("--data")
        .arg(&data)
        .args(["--listen", &addr])
        .env(
            "MFAGAP_EVENTHUBS_CONNECTION_STRING",
            w.double.emulator_connection_string(),
        )
        .env("MFAGAP_ROLL_AGE", "1h")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let m = http_get(&addr, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default();
        if metric(&m, "mfagap_ingest_committed_position") == 2_000.0 {
            break;
        }
        assert!(Instant::now() < deadline, "not all read\n{}", tail(&log));
        std::thread::sleep(Duration::from_millis(200));
    }
    // An endless source: the run ends on SIGTERM, after the archiver has published it all.
    mfagap_testkit::process::signal(child.id(), mfagap_testkit::process::SIGTERM);
    let out = child.wait_with_output().unwrap();
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{:?}\n{}", out.status, tail(&log));
    let want = input.all_emits();
    assert!(
        summary.contains(&format!("archived       {} rows", want.len())),
        "{summary}"
    );
    let rows = mfagap_testkit::dataset::read_dataset(&data).unwrap();
    let got: std::collections::BTreeSet<(String, String)> = rows
        .iter()
        .map(|v| {
            (
                v["category"].as_str().unwrap().to_owned(),
                v["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(rows.len(), want.len(), "each sign-in once in Parquet");
    assert_eq!(got, want);
    assert!(
        w.owners().values().all(String::is_empty),
        "ownership released"
    );
}

#[test]
fn partitions_without_a_checkpoint_start_at_latest_or_at_an_enqueued_time() {
    let w = World::new(Kind::Noida);
    let input = generated(3_000, 43, 2, false);
    let cs = w.double.emulator_connection_string();
    w.append(&input, 0..1_000);
    std::thread::sleep(Duration::from_millis(1_100));
    let from = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    std::thread::sleep(Duration::from_millis(1_100));
    w.append(&input, 1_000..2_000);

    // An enqueued time: what was enqueued before it is not read.
    let timed = w.ingest(
        "time",
        &cs,
        &["--start-position", &from, "--consumer-group", "from-time"],
    );
    wait(
        Duration::from_secs(60),
        "the second 1,000 read",
        &[&timed],
        || read(&[&timed]) == 1_000.0,
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(read(&[&timed]), 1_000.0, "and nothing older");
    assert!(timed.terminate().success());

    // Latest: only what arrives after the start.
    let latest = w.ingest(
        "latest",
        &cs,
        &[
            "--start-position",
            "latest",
            "--consumer-group",
            "from-latest",
        ],
    );
    wait(
        Duration::from_secs(30),
        "all four owned",
        &[&latest],
        || latest.owned() == 4.0,
    );
    w.append(&input, 2_000..3_000);
    wait(
        Duration::from_secs(60),
        "the last 1,000 read",
        &[&latest],
        || read(&[&latest]) == 1_000.0,
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(read(&[&latest]), 1_000.0, "and nothing older");
    assert!(latest.terminate().success());

    let want: std::collections::BTreeSet<(String, String)> = input.emits[1_000..3_000]
        .iter()
        .flatten()
        .cloned()
        .collect();
    assert_eq!(ids(&output_records(&w.broker, &w.output)), want);
}

/// A managed-identity token endpoint as App Service serves it (`IDENTITY_ENDPOINT`): every
/// request gets `token`, valid for an hour. Returns its URL and a count of requests.
fn token_endpoint(token: &'static str) -> (String, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/msi/token", listener.local_addr().unwrap());
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 8192];
            let n = stream.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).to_lowercase();
            let expires = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                + 3600;
            let (status, body) = if request.contains("x-identity-header: id-header") {
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                (
                    "200 OK",
                    format!(
                        r#"{{"access_token":"{token}","expires_on":"{expires}","resource":"https://eventhubs.azure.net","token_type":"Bearer"}}"#
                    ),
                )
            } else {
                ("401 Unauthorized", "{}".to_owned())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, served)
}

#[test]
fn a_managed_identity_token_from_azure_identity_authenticates_without_a_connection_string() {
    const TOKEN: &str = "entra-access-token-for-the-double";
    let w = World::with(
        Kind::Noida,
        EventHubsConfig {
            bearer_token: Some(TOKEN.to_owned()),
            ..EventHubsConfig::default()
        },
    );
    let input = generated(1_000, 47, 2, false);
    w.append(&input, 0..1_000);
    let (endpoint, served) = token_endpoint(TOKEN);
    let addr = format!("127.0.0.1:{}", mfagap_testkit::port());
    let log = w.dir.path().join("entra.log");
    let child = w
        .command()
        .args(["ingest", "--source", "eventhubs"])
        .args(["--eventhubs-namespace", w.double.namespace()])
        .args(["--eventhub", w.double.event_hub()])
        .args(["--eventhubs-credential", "managed-identity"])
        .args(["--eventhubs-endpoint", &w.double.endpoint()])
        .env_remove("MFAGAP_EVENTHUBS_CONNECTION_STRING")
        .env("IDENTITY_ENDPOINT", &endpoint)
        .env("IDENTITY_HEADER", "id-header")
        .args(["--bootstrap", &w.broker.bootstrap, "--topic", &w.output])
        .args(["--dead-letter-topic", &w.dead, "--listen", &addr])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let ingest = Ingest {
        child: Some(child),
        addr,
        log,
    };
    wait(
        Duration::from_secs(60),
        "every event read",
        &[&ingest],
        || metric(&ingest.metrics(), "mfagap_ingest_committed_position") == 1_000.0,
    );
    assert!(ingest.terminate().success());
    assert!(
        served.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the token came from the managed-identity endpoint"
    );
    assert_eq!(w.double.authorizations_refused(), 0);
    assert_eq!(
        ids(&output_records(&w.broker, &w.output)),
        input.all_emits()
    );
}
