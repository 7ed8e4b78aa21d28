//! The ingest service end to end: the real binary as a child process, a real Kafka-protocol
//! broker (noida-db by default, tansu for the tests that do not touch its known gaps, or
//! `KAFKA_BOOTSTRAP`), generated sign-ins with malformed lines in them.
//!
//! These tests run `mfagap ingest`, which is the same code as the `mfagap-ingest` binary
//! (both call `mfagap_ingest::main_with`), so that `mfagap filter` — the reference the output
//! is compared with — is at hand in the same package.

mod common;

use common::{
    dead_letter_payloads, filter_in_order, filter_reference, ids, mfagap, output_records,
};
use mfagap_testkit::{Broker, Kind, comparable, generated, http_get, metric, unique};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Topics of one test.
struct Topics {
    input: String,
    output: String,
    dead: String,
    group: String,
    partitions: i32,
}

fn topics(b: &Broker, partitions: i32) -> Topics {
    let t = Topics {
        input: unique("in"),
        output: unique("out"),
        dead: unique("dl"),
        group: unique("grp"),
        partitions,
    };
    b.create_topic(&t.input, partitions).unwrap();
    b.create_topic(&t.output, 3).unwrap();
    b.create_topic(&t.dead, 1).unwrap();
    t
}

/// A running `mfagap ingest`.
struct Ingest {
    child: Child,
    addr: String,
}

impl Ingest {
    fn start(source: &Broker, output: &Broker, t: &Topics, extra: &[&str], log: &Path) -> Ingest {
        let addr = format!("127.0.0.1:{}", mfagap_testkit::port());
        let mut cmd = mfagap();
        cmd.args([
            "ingest",
            "--source",
            "kafka",
            "--source-bootstrap",
            &source.bootstrap,
        ])
        .args(["--source-topic", &t.input, "--consumer-group", &t.group])
        .args(["--bootstrap", &output.bootstrap, "--topic", &t.output])
        .args(["--dead-letter-topic", &t.dead, "--listen", &addr])
        .args(["--commit-interval", "300ms", "--log-format", "json"])
        .args(extra);
        // tansu's transactions and read_committed are not to be trusted: at least once there,
        // unless the test says otherwise.
        if output.kind == Kind::Tansu && !extra.contains(&"--delivery") {
            cmd.args(["--delivery", "at-least-once"]);
        }
        for p in source.extra_properties() {
            cmd.args(["-S", &p]);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap();
        let i = Ingest { child, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(&i.addr, "/health/live").is_err() {
            assert!(
                Instant::now() < deadline,
                "the ingest endpoint did not come up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        i
    }

    fn metrics(&self) -> String {
        http_get(&self.addr, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    /// `/metrics`, which must answer: a check that reads a series from it claims the
    /// service is up.
    fn metrics_now(&self) -> String {
        match http_get(&self.addr, "/metrics") {
            Ok((200, body)) => body,
            other => panic!("/metrics did not answer: {other:?}"),
        }
    }

    fn signal(&self, sig: i32) {
        mfagap_testkit::process::signal(self.child.id(), sig);
    }

    /// SIGTERM, and the exit status with how long it took.
    fn terminate(mut self) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        self.signal(libc::SIGTERM);
        let status = self.child.wait().unwrap();
        (status, started.elapsed())
    }

    fn kill(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Waits until the group has committed the end of every input partition.
fn wait_committed(b: &Broker, t: &Topics, ends: &BTreeMap<i32, i64>, limit: Duration, log: &Path) {
    let deadline = Instant::now() + limit;
    loop {
        let c = b
            .committed(&t.group, &t.input, t.partitions)
            .unwrap_or_default();
        if ends.iter().all(|(p, e)| c.get(p) == Some(e)) {
            return;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!("not all committed: {c:?} of {ends:?}\n{}", tail.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Where each input partition ends after round-robin production of `n` messages.
fn ends(n: usize, partitions: i32) -> BTreeMap<i32, i64> {
    (0..partitions)
        .map(|p| {
            (
                p,
                (0..n).filter(|i| *i as i32 % partitions == p).count() as i64,
            )
        })
        .collect()
}

/// Each partition's high watermark.
fn high_watermarks(b: &Broker, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let c: rdkafka::consumer::BaseConsumer = b.client_config().create().unwrap();
    (0..partitions)
        .map(|p| {
            let (_, high) = rdkafka::consumer::Consumer::fetch_watermarks(
                &c,
                topic,
                p,
                Duration::from_secs(10),
            )
            .unwrap();
            (p, high)
        })
        .collect()
}

/// How many records a topic holds now.
fn output_count(b: &Broker, topic: &str) -> i64 {
    (0..3)
        .map(|p| {
            let c: rdkafka::consumer::BaseConsumer = b.client_config().create().unwrap();
            rdkafka::consumer::Consumer::fetch_watermarks(&c, topic, p, Duration::from_secs(5))
                .map_or(0, |(l, h)| h - l)
        })
        .sum()
}

fn output_equals_filter_for_the_kafka_source(kind: Kind, messages: u64) {
    let b = Broker::start(kind).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t = topics(&b, 4);
    let input = generated(messages, 17, 2, true);
    b.produce(&t.input, t.partitions, &input.bodies).unwrap();
    let ingest = Ingest::start(&b, &b, &t, &[], &dir.path().join("ingest.log"));
    wait_committed(
        &b,
        &t,
        &ends(input.bodies.len(), t.partitions),
        Duration::from_secs(120),
        &dir.path().join("ingest.log"),
    );
    // Lag comes from the consumer's statistics: every partition read to its end shows 0.
    let deadline = Instant::now() + Duration::from_secs(20);
    let lag_zero = |m: &str| {
        (0..t.partitions).all(|p| {
            m.contains(&format!(
                "mfagap_ingest_consumer_lag{{partition=\"{}/{p}\"}} 0\n",
                t.input
            ))
        })
    };
    let mut m = ingest.metrics();
    while !lag_zero(&m) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        m = ingest.metrics();
    }
    assert!(
        lag_zero(&m),
        "lag of every input partition is 0 at the end:\n{m}"
    );
    let (status, _) = ingest.terminate();
    assert!(status.success(), "{status:?}");

    let (want, want_dead) = filter_reference(&input, dir.path());
    let got = output_records(&b, &t.output);
    assert_eq!(got.len(), want.len(), "as many records as filter prints");
    assert!(got == want, "the same JSON as filter, record for record");
    assert_eq!(
        ids(&got),
        input.all_emits(),
        "and the generator's truth agrees"
    );

    let mut dead: Vec<Vec<u8>> = b
        .read_all(&t.dead)
        .unwrap()
        .into_iter()
        .map(|r| {
            assert!(!r.headers["error"].is_empty() && !r.headers["errorCode"].is_empty());
            assert_eq!(r.headers["sourceTopic"], t.input);
            assert!(
                r.headers.contains_key("sourcePartition") && r.headers.contains_key("sourceOffset")
            );
            r.payload
        })
        .collect();
    dead.sort();
    assert!(!dead.is_empty());
    assert!(
        dead == want_dead,
        "the dead letters filter writes, byte for byte"
    );

    assert_eq!(metric(&m, "mfagap_ingest_messages_total"), messages as f64);
    assert_eq!(metric(&m, "mfagap_ingest_emitted_total"), got.len() as f64);
    assert_eq!(
        metric(&m, "mfagap_ingest_dead_letters_total"),
        dead.len() as f64
    );
    assert_eq!(
        metric(&m, "mfagap_ingest_produced_total"),
        (got.len() + dead.len()) as f64
    );
    assert!(metric(&m, "mfagap_ingest_duplicates_suppressed_total") > 0.0);
    if kind == Kind::Tansu {
        // tansu has no transactions: at least once, each record acknowledged on its own.
        assert!(metric(&m, "mfagap_ingest_produce_latency_seconds_count") > 0.0);
    } else {
        // `--delivery auto` on a broker with transactions: exactly once, said in the log.
        assert!(metric(&m, "mfagap_ingest_transaction_commit_seconds_count") > 0.0);
        let log = std::fs::read_to_string(dir.path().join("ingest.log")).unwrap();
        assert!(log.contains("delivery: exactly once"), "{log}");
    }
    assert!(m.contains("mfagap_ingest_records_total{category=\"SignInLogs\"}"));
}

#[test]
fn kafka_source_output_equals_filter_on_noida() {
    let n = std::env::var("MFAGAP_E2E_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok());
    output_equals_filter_for_the_kafka_source(Kind::Noida, n.unwrap_or(20_000));
}

#[test]
fn kafka_source_output_equals_filter_on_tansu() {
    output_equals_filter_for_the_kafka_source(Kind::Tansu, 5_000);
}

#[test]
fn file_source_gives_the_same_output_and_ends_by_itself() {
    file_source_gives_the_same_output(Kind::Noida);
}

#[test]
fn file_source_gives_the_same_output_on_tansu() {
    file_source_gives_the_same_output(Kind::Tansu);
}

fn file_source_gives_the_same_output(kind: Kind) {
    let b = Broker::start(kind).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t = topics(&b, 1);
    let input = generated(3_000, 23, 3, true);
    let file = dir.path().join("in.jsonl");
    input.write(&file).unwrap();
    let addr = format!("127.0.0.1:{}", mfagap_testkit::port());
    let out = mfagap()
        .args(["ingest", "--source", "file", "--input"])
        .arg(&file)
        .args(["--bootstrap", &b.bootstrap, "--topic", &t.output])
        .args(["--dead-letter-topic", &t.dead, "--listen", &addr])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (want, want_dead) = filter_reference(&input, dir.path());
    let got = output_records(&b, &t.output);
    assert!(got == want, "the file source gives what filter prints");
    let mut dead: Vec<Vec<u8>> = b
        .read_all(&t.dead)
        .unwrap()
        .into_iter()
        .map(|r| {
            assert_eq!(r.headers["sourceFile"], file.display().to_string());
            assert!(r.headers["sourceLine"].parse::<u64>().unwrap() >= 1);
            r.payload
        })
        .collect();
    dead.sort();
    assert!(dead == want_dead);
}

#[test]
fn four_threads_keep_every_record_and_dead_letter_in_input_order() {
    let b = Broker::start(Kind::Noida).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t = topics(&b, 1);
    // Duplicates in it too: which repeat is suppressed depends on the order records arrive.
    let input = generated(3_000, 29, 3, true);
    let file = dir.path().join("in.jsonl");
    input.write(&file).unwrap();
    let out = mfagap()
        .args(["ingest", "--source", "file", "--threads", "4", "--input"])
        .arg(&file)
        .args(["--bootstrap", &b.bootstrap, "--topic", &t.output])
        .args(["--dead-letter-topic", &t.dead])
        .args(["--listen", &format!("127.0.0.1:{}", mfagap_testkit::port())])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (want, want_dead) = filter_in_order(&file, dir.path());
    // Each output partition's offsets are the order the sink was handed its records: that
    // order must be filter's, every record in its place.
    let mut partitions: BTreeMap<i32, Vec<Value>> = BTreeMap::new();
    for r in b.read_all(&t.output).unwrap() {
        partitions
            .entry(r.partition)
            .or_default()
            .push(comparable(&r.payload));
    }
    assert!(partitions.len() > 1, "the sign-ins spread over partitions");
    let mut place: BTreeMap<String, usize> = BTreeMap::new();
    for (i, v) in want.iter().enumerate() {
        place.insert(v["id"].as_str().unwrap().to_owned(), i);
    }
    let mut count = 0;
    for (p, got) in &partitions {
        count += got.len();
        let at: Vec<usize> = got
            .iter()
            .map(|v| {
                let i = place[v["id"].as_str().unwrap()];
                assert!(*v == want[i], "the record filter printed");
                i
            })
            .collect();
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "partition {p} holds its records in input order"
        );
    }
    assert_eq!(count, want.len(), "every record once");
    let dead: Vec<Vec<u8>> = b
        .read_all(&t.dead)
        .unwrap()
        .into_iter()
        .map(|r| r.payload)
        .collect();
    assert!(!dead.is_empty());
    assert!(dead == want_dead, "the dead letters too, in input order");
}

#[test]
fn sigkill_at_random_moments_loses_nothing() {
    let kind = match std::env::var("MFAGAP_CRASH_BROKER").as_deref() {
        Ok("noida") => Kind::Noida,
        _ => Kind::Tansu,
    };
    let b = Broker::start(kind).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t = topics(&b, 4);
    let input = generated(12_000, 29, 3, false);
    b.produce(&t.input, t.partitions, &input.bodies).unwrap();
    let log = dir.path().join("ingest.log");
    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut kills = 0;
    // Dead members stay in the group until their session times out: keep it short.
    let group = [
        "-S",
        "session.timeout.ms=6000",
        "-S",
        "max.poll.interval.ms=10000",
    ];
    // A static member id, as a StatefulSet gives each pod: the restarted process takes the
    // killed one's place at once instead of waiting for the group to notice it died.
    let member = format!("group.instance.id={}", unique("member"));
    let mut produced = Vec::new();
    for _ in 0..6 {
        let mut args = vec!["--max-in-flight", "200", "-S", member.as_str()];
        args.extend(group);
        let ingest = Ingest::start(&b, &b, &t, &args, &log);
        // Kill it at a random moment once it is producing: mid-batch, mid-commit, anywhere.
        let deadline = Instant::now() + Duration::from_secs(120);
        let before = output_count(&b, &t.output);
        let all = ends(input.bodies.len(), t.partitions);
        let mut exhausted = false;
        let mut looked = Instant::now();
        while metric(&ingest.metrics(), "mfagap_ingest_produced_total") < 1.0 {
            // On a fast machine the earlier runs may have delivered and committed everything:
            // then there is nothing left to interrupt.
            if looked.elapsed() > Duration::from_secs(1) {
                looked = Instant::now();
                let c = b
                    .committed(&t.group, &t.input, t.partitions)
                    .unwrap_or_default();
                if all.iter().all(|(p, e)| c.get(p) == Some(e)) {
                    exhausted = true;
                    break;
                }
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("no progress after a restart:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if exhausted {
            ingest.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(next() % 700));
        ingest.kill();
        kills += 1;
        produced.push(output_count(&b, &t.output) - before);
    }
    assert!(kills > 0, "at least one run was killed mid-way");
    assert_eq!(produced.len(), kills, "a count per killed run");
    assert!(
        produced.iter().all(|n| *n > 0),
        "each run wrote before it died: {produced:?}"
    );
    let ingest = Ingest::start(&b, &b, &t, &group, &log);
    wait_committed(
        &b,
        &t,
        &ends(input.bodies.len(), t.partitions),
        Duration::from_secs(120),
        &dir.path().join("ingest.log"),
    );
    assert!(ingest.terminate().0.success());

    let got = b.read_all(&t.output).unwrap();
    let mut seen = BTreeMap::<(String, String), usize>::new();
    for r in &got {
        let v: Value = serde_json::from_slice(&r.payload).unwrap();
        let key = (
            v["category"].as_str().unwrap().to_owned(),
            v["id"].as_str().unwrap().to_owned(),
        );
        *seen.entry(key).or_default() += 1;
    }
    let want = input.all_emits();
    let missing: Vec<_> = want.iter().filter(|k| !seen.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} missing after {kills} kills",
        missing.len(),
        want.len()
    );
    assert_eq!(seen.len(), want.len(), "nothing that should not be there");
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "SIGKILL x{kills}: {} records expected, {} written, {duplicates} duplicates from at-least-once",
        want.len(),
        got.len()
    );
}

#[test]
fn an_output_broker_outage_stalls_with_flat_memory_and_loses_nothing() {
    an_output_broker_outage_loses_nothing(Kind::Noida);
}

fn an_output_broker_outage_loses_nothing(kind: Kind) {
    let source = Broker::start(kind).unwrap();
    let output = Broker::start(kind).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t = Topics {
        input: unique("in"),
        output: unique("out"),
        dead: unique("dl"),
        group: unique("grp"),
        partitions: 2,
    };
    source.create_topic(&t.input, 2).unwrap();
    output.create_topic(&t.output, 3).unwrap();
    output.create_topic(&t.dead, 1).unwrap();
    let input = generated(15_000, 31, 3, false);
    source
        .produce(&t.input, t.partitions, &input.bodies)
        .unwrap();
    let ingest = Ingest::start(
        &source,
        &output,
        &t,
        &[
            "--delivery",
            "at-least-once",
            "--max-in-flight",
            "500",
            "-X",
            "message.timeout.ms=5000",
        ],
        &dir.path().join("ingest.log"),
    );
    // Let it run, then take the output broker away for 12 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&ingest.metrics(), "mfagap_ingest_produced_total") < 1000.0 {
        assert!(Instant::now() < deadline, "no progress before the outage");
        std::thread::sleep(Duration::from_millis(100));
    }
    output.freeze();
    let pid = ingest.child.id();
    let mut rss = Vec::new();
    let mut read = Vec::new();
    for _ in 0..24 {
        std::thread::sleep(Duration::from_millis(500));
        rss.push(mfagap_testkit::rss_mb(pid).unwrap());
        read.push(metric(
            &ingest.metrics_now(),
            "mfagap_ingest_messages_total",
        ));
    }
    let (_, ready) = http_get(&ingest.addr, "/health/ready").unwrap();
    let ready_during = ready.trim() == "ready";
    output.thaw();
    let m = ingest.metrics_now();
    // Should the producer fail for good during the outage, the service exits non-zero without
    // committing what was not acknowledged, and a restart — what a supervisor does — resumes
    // from the last commit.
    let mut ingest = ingest;
    let mut restarts = 0;
    let ends = ends(input.bodies.len(), t.partitions);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let c = source
            .committed(&t.group, &t.input, t.partitions)
            .unwrap_or_default();
        if ends.iter().all(|(p, e)| c.get(p) == Some(e)) {
            break;
        }
        if let Some(status) = ingest.child.try_wait().unwrap() {
            // Only the fatal-producer path: exit status 1 and its message, not a panic (101)
            // or a signal.
            assert_eq!(status.code(), Some(1), "{status:?}");
            let log = std::fs::read_to_string(dir.path().join("ingest.log")).unwrap_or_default();
            assert!(
                log.contains("the Kafka producer failed for good"),
                "the fatal error is named in the log"
            );
            restarts += 1;
            ingest = Ingest::start(&source, &output, &t, &[], &dir.path().join("ingest.log"));
        }
        assert!(
            Instant::now() < deadline,
            "not all committed: {c:?} of {ends:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(ingest.terminate().0.success());
    eprintln!("outage on {kind:?}: {restarts} restart(s) after a fatal producer error");

    // During the outage reading stopped at the in-flight bound, and memory stayed flat.
    let settled = &read[4..];
    assert_eq!(settled.first(), settled.last(), "reading stalled: {read:?}");
    let (lo, hi) = rss[4..]
        .iter()
        .fold((f64::MAX, 0f64), |(l, h), x| (l.min(*x), h.max(*x)));
    assert!(hi - lo < 20.0, "memory flat during the outage: {rss:?}");
    assert!(hi < 200.0, "{rss:?}");
    assert!(!ready_during, "not ready while sends fail");
    assert!(metric(&m, "mfagap_ingest_produce_retries_total") > 0.0);
    eprintln!("outage: RSS {lo:.1}–{hi:.1} MB, messages read {read:?}");

    let got = output_records(&output, &t.output);
    let seen = ids(&got);
    assert_eq!(seen, input.all_emits(), "nothing lost across the outage");
}

#[test]
fn sigterm_drains_commits_and_exits_zero_within_the_grace_period() {
    sigterm_drains_commits_and_exits_zero(Kind::Noida);
}

#[test]
fn sigterm_drains_commits_and_exits_zero_on_tansu() {
    sigterm_drains_commits_and_exits_zero(Kind::Tansu);
}

fn sigterm_drains_commits_and_exits_zero(kind: Kind) {
    let b = Broker::start(kind).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t = topics(&b, 3);
    let input = generated(15_000, 37, 3, false);
    b.produce(&t.input, t.partitions, &input.bodies).unwrap();
    let ingest = Ingest::start(
        &b,
        &b,
        &t,
        &["--grace-period", "10s", "--max-in-flight", "300"],
        &dir.path().join("ingest.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&ingest.metrics(), "mfagap_ingest_messages_total") < 500.0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, took) = ingest.terminate();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(11), "{took:?}");

    // Everything read was produced and committed: the output holds exactly the sign-ins of
    // the messages before each partition's committed offset.
    let committed = b.committed(&t.group, &t.input, t.partitions).unwrap();
    let read: i64 = committed.values().sum();
    assert!(
        read > 0 && read < input.bodies.len() as i64,
        "stopped mid-way: {committed:?}"
    );
    let mut want = BTreeSet::new();
    for (i, emits) in input.emits.iter().enumerate() {
        let (p, offset) = (i as i32 % t.partitions, (i as i32 / t.partitions) as i64);
        if committed.get(&p).is_some_and(|c| offset < *c) {
            want.extend(emits.iter().cloned());
        }
    }
    let got = ids(&output_records(&b, &t.output));
    assert_eq!(got, want, "read ⇒ produced ⇒ committed, nothing beyond");
}

/// Kills `start()`'s process at random moments once it has written, `kills` times (each run
/// gets fresh input first, so that every run has work to be killed in), then lets a last run
/// finish; returns how many runs were killed.
fn kill_repeatedly(
    kills: usize,
    mut feed: impl FnMut(usize),
    mut start: impl FnMut() -> Ingest,
    written: impl Fn(&Ingest) -> bool,
    log: &Path,
) -> usize {
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut killed = 0;
    for run in 0..kills {
        feed(run);
        let ingest = start();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !written(&ingest) {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                panic!("run {run} wrote nothing:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(next() % 600));
        ingest.kill();
        killed += 1;
    }
    feed(kills);
    killed
}

/// Records of a topic read with read_committed, counted by (category, id).
fn counted(b: &Broker, topic: &str) -> BTreeMap<(String, String), usize> {
    let mut seen = BTreeMap::new();
    for r in b.read_all(topic).unwrap() {
        let v: Value = serde_json::from_slice(&r.payload).unwrap();
        let key = (
            v["category"].as_str().unwrap().to_owned(),
            v["id"].as_str().unwrap().to_owned(),
        );
        *seen.entry(key).or_default() += 1;
    }
    seen
}

/// Exactly once from a Kafka source: six SIGKILLs at random moments, each once the run has
/// committed a transaction, and a restart after each. Read with read_committed, the output
/// is `mfagap filter`'s record for record — nothing missing, nothing twice, duplicate
/// suppression off — and so are the dead letters.
#[test]
fn exactly_once_from_kafka_survives_sigkills_with_nothing_missing_or_twice() {
    let b = Broker::noida().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t = topics(&b, 4);
    let input = generated(6_000, 71, 3, false);
    let log = dir.path().join("ingest.log");
    let member = format!("group.instance.id={}", unique("member"));
    let args = [
        "--delivery",
        "exactly-once",
        "--dedup-window",
        "0",
        "--transaction-interval",
        "200ms",
        "--transaction-messages",
        "100",
        "-S",
        member.as_str(),
        "-S",
        "session.timeout.ms=6000",
    ];
    let slice = input.bodies.len().div_ceil(7);
    let kills = kill_repeatedly(
        6,
        |run| {
            let from = (run * slice).min(input.bodies.len());
            let to = ((run + 1) * slice).min(input.bodies.len());
            if from < to {
                b.produce(&t.input, t.partitions, &input.bodies[from..to])
                    .unwrap();
            }
        },
        || Ingest::start(&b, &b, &t, &args, &log),
        |i| metric(&i.metrics(), "mfagap_ingest_transactions_total") >= 1.0,
        &log,
    );
    assert_eq!(kills, 6);
    // The input went in round robin, slice by slice: each partition ends where the broker
    // says (no transactions there, so its high watermark is its end).
    let ingest = Ingest::start(&b, &b, &t, &args, &log);
    let input_ends = high_watermarks(&b, &t.input, t.partitions);
    assert_eq!(
        input_ends.values().sum::<i64>(),
        input.bodies.len() as i64,
        "every message went in"
    );
    wait_committed(&b, &t, &input_ends, Duration::from_secs(120), &log);
    assert!(ingest.terminate().0.success());
    // librdkafka's statistics feed the lag gauges; no client logs them (its default context
    // would, every second).
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("Client stats"),
        "statistics reports in the log"
    );

    let (want, want_dead) = filter_reference(&input, dir.path());
    let seen = counted(&b, &t.output);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} sign-ins twice after {kills} kills",
        twice.len()
    );
    let got = output_records(&b, &t.output);
    assert_eq!(got.len(), want.len(), "as many records as filter prints");
    assert!(got == want, "the same records as filter, record for record");
    let dead = dead_letter_payloads(&b, &t.dead);
    assert!(
        dead == want_dead,
        "the dead letters filter writes, each once: {} for {}",
        dead.len(),
        want_dead.len()
    );
}

/// Exactly once from files: a backfill killed half-way, six times, resumes where the last
/// committed transaction stopped; the output is `filter`'s, record for record.
#[test]
fn exactly_once_from_a_file_resumes_where_it_stopped() {
    let b = Broker::noida().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t = topics(&b, 1);
    let input = generated(4_000, 73, 3, false);
    let file = dir.path().join("in.jsonl");
    input.write(&file).unwrap();
    let positions = unique("positions");
    let log = dir.path().join("file.log");
    let run = || {
        let logfile = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let i = file_exactly_once(&b, &t, &file, &positions, "50", logfile);
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(&i.addr, "/health/live").is_err() {
            assert!(Instant::now() < deadline, "no endpoint");
            std::thread::sleep(Duration::from_millis(50));
        }
        i
    };
    let kills = kill_repeatedly(
        6,
        |_| {},
        run,
        |i| metric(&i.metrics(), "mfagap_ingest_transactions_total") >= 1.0,
        &log,
    );
    assert_eq!(kills, 6);
    let mut last = run();
    let status = last.child.wait().unwrap();
    assert!(status.success(), "the last run reads the file to its end");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("resuming where the last committed transaction ended"),
        "runs after the first resumed"
    );
    let (want, want_dead) = filter_reference(&input, dir.path());
    let got = output_records(&b, &t.output);
    assert_eq!(got.len(), want.len(), "as many records as filter prints");
    assert!(got == want, "the same records as filter, record for record");
    let dead = dead_letter_payloads(&b, &t.dead);
    assert!(dead == want_dead, "the dead letters, each once");
}

/// Two runs over the same file at once: the second initialises the same transactional id,
/// which aborts the first's open transaction and fences it. The first, thawed, cannot commit:
/// it stops with exit status 1 and says it was fenced; the second reads on from the positions
/// the first committed. The output is `filter`'s, record for record.
#[test]
fn a_second_run_over_the_same_file_fences_the_first_which_exits_1() {
    let b = Broker::noida().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t = topics(&b, 1);
    let input = generated(3_000, 91, 3, false);
    let file = dir.path().join("in.jsonl");
    input.write(&file).unwrap();
    let positions = unique("positions");
    let run = |name: &str| {
        let log = dir.path().join(format!("{name}.log"));
        let logfile = std::fs::File::create(&log).unwrap();
        (
            file_exactly_once(&b, &t, &file, &positions, "20", logfile),
            log,
        )
    };
    let (mut first, first_log) = run("first");
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&first.metrics(), "mfagap_ingest_transactions_total") < 2.0 {
        assert!(Instant::now() < deadline, "the first run committed nothing");
        std::thread::sleep(Duration::from_millis(10));
    }
    mfagap_testkit::process::signal(first.child.id(), mfagap_testkit::process::SIGSTOP);
    let (mut second, second_log) = run("second");
    let status = second.child.wait().unwrap();
    let log = std::fs::read_to_string(&second_log).unwrap();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("resuming where the last committed transaction ended"),
        "the second run resumed from the first's positions:\n{log}"
    );
    mfagap_testkit::process::signal(first.child.id(), mfagap_testkit::process::SIGCONT);
    let status = first.child.wait().unwrap();
    let log = std::fs::read_to_string(&first_log).unwrap();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("fenced"),
        "the first says it was fenced:\n{log}"
    );

    let (want, want_dead) = filter_reference(&input, dir.path());
    let got = output_records(&b, &t.output);
    assert_eq!(got.len(), want.len(), "nothing twice, nothing missing");
    assert!(got == want, "the same records as filter, record for record");
    assert!(
        dead_letter_payloads(&b, &t.dead) == want_dead,
        "the dead letters, each once"
    );
}

/// `mfagap ingest` over `file`, exactly once, duplicate suppression off, with transactions of
/// `transaction_messages` messages at most; its log goes to `log`.
fn file_exactly_once(
    b: &Broker,
    t: &Topics,
    file: &Path,
    positions: &str,
    transaction_messages: &str,
    log: std::fs::File,
) -> Ingest {
    let addr = format!("127.0.0.1:{}", mfagap_testkit::port());
    let child = mfagap()
        .args(["ingest", "--source", "file", "--input"])
        .arg(file)
        .args(["--bootstrap", &b.bootstrap, "--topic", &t.output])
        .args(["--dead-letter-topic", &t.dead, "--listen", &addr])
        .args(["--delivery", "exactly-once", "--positions-topic", positions])
        .args(["--dedup-window", "0"])
        .args(["--transaction-messages", transaction_messages])
        .args(["--log-format", "json"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Ingest { child, addr }
}

/// One ingest, three outputs: the native record (exactly once), OCSF (exactly once, as
/// `--delivery`) and ECS (asked at least once, sent beside the transactions). Each topic holds
/// the same sign-ins as `mfagap filter` prints, record for record by id, in its own shape and
/// with its own `format` header; one decode and one verdict fed all three.
#[test]
fn one_ingest_writes_native_ocsf_and_ecs_outputs_with_the_same_sign_ins() {
    let b = Broker::noida().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t = topics(&b, 1);
    let (ocsf, ecs) = (unique("ocsf"), unique("ecs"));
    b.create_topic(&ocsf, 2).unwrap();
    b.create_topic(&ecs, 2).unwrap();
    let input = generated(2_000, 57, 3, true);
    let file = dir.path().join("in.jsonl");
    input.write(&file).unwrap();
    let addr = format!("127.0.0.1:{}", mfagap_testkit::port());
    let out = mfagap()
        .args(["ingest", "--source", "file", "--input"])
        .arg(&file)
        .args(["--bootstrap", &b.bootstrap, "--topic", &t.output])
        .args(["--dead-letter-topic", &t.dead, "--listen", &addr])
        .args([
            "--delivery",
            "exactly-once",
            "--positions-topic",
            &unique("positions"),
        ])
        .args(["--extra-output", &format!("ocsf:{ocsf}")])
        .args(["--extra-output", &format!("ecs:{ecs}@at-least-once")])
        .env("MFAGAP_LOG", "info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    for (topic, delivery) in [
        (&t.output, "exactly once"),
        (&ocsf, "exactly once"),
        (&ecs, "at least once"),
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains(topic.as_str()) && l.contains(delivery)),
            "{topic} is delivered {delivery}:\n{log}"
        );
    }
    let (want, _) = filter_reference(&input, dir.path());
    let native = output_records(&b, &t.output);
    assert!(
        native == want,
        "the native output is filter's, record for record"
    );
    let mut want_ids: Vec<String> = want
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    want_ids.sort();
    assert!(want_ids.len() > 500, "{} sign-ins", want_ids.len());
    let shaped = |topic: &str, format: &str, id: &dyn Fn(&Value) -> Option<String>| {
        let mut got: Vec<String> = b
            .read_all(topic)
            .unwrap()
            .into_iter()
            .map(|r| {
                assert_eq!(r.headers["format"], format, "{topic}");
                let v: Value = serde_json::from_slice(&r.payload).unwrap();
                assert!(!r.headers["category"].is_empty());
                id(&v).unwrap_or_else(|| panic!("no sign-in id in the {format} event {v}"))
            })
            .collect();
        got.sort();
        got
    };
    let ocsf_ids = shaped(&ocsf, "ocsf", &|v| {
        assert_eq!(v["class_uid"], 3002);
        assert_eq!(v["is_mfa"], false);
        v["metadata"]["original_event_uid"]
            .as_str()
            .or(v["metadata"]["uid"].as_str())
            .map(str::to_owned)
    });
    assert!(ocsf_ids == want_ids, "OCSF: the same sign-ins, each once");
    let ecs_ids = shaped(&ecs, "ecs", &|v| {
        assert_eq!(v["event"]["outcome"], "success");
        v["event"]["id"].as_str().map(str::to_owned)
    });
    assert!(ecs_ids == want_ids, "ECS: the same sign-ins");
}
