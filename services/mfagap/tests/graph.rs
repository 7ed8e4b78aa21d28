//! The Microsoft Graph source end to end, against the Graph double (`mfagap_testkit::graph`):
//! the generated corpus served as beta `signIn` resources in pages, throttled (429 with
//! `Retry-After`) and now and then unavailable (503), behind a bearer token the real
//! `azure_identity` managed identity credential gets from the double's token endpoint.
//!
//! What comes out is compared with what `mfagap filter` makes of the same `signIn` records.

mod common;

use common::{dead_letter_payloads, filter_reference, mfagap, output_records};
use mfagap_testkit::shapes::{GraphVersion, graph_sign_in};
use mfagap_testkit::{
    Broker, GraphConfig, GraphDouble, Input, generated, http_get, metric, unique,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ALL_TYPES: &str = "interactiveUser,nonInteractiveUser,servicePrincipal,managedIdentity";

/// The corpus's sign-ins as beta `signIn` resources (what Graph lists of them).
fn sign_ins(input: &Input) -> Vec<Value> {
    let mut out = Vec::new();
    for body in &input.bodies {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            continue;
        };
        for r in v["records"].as_array().into_iter().flatten() {
            if let Some(s) = graph_sign_in(r, GraphVersion::Beta) {
                out.push(s);
            }
        }
    }
    out
}

/// The served records as JSON Lines, one `signIn` per line: `filter`'s input.
fn as_input(served: &[Value]) -> Input {
    Input {
        bodies: served.iter().map(|v| v.to_string().into_bytes()).collect(),
        emits: Vec::new(),
    }
}

/// `--since` and `--until` around every served sign-in.
fn window(served: &[Value]) -> (String, String) {
    let times: Vec<chrono::DateTime<chrono::Utc>> = served
        .iter()
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v["createdDateTime"].as_str().unwrap())
                .unwrap()
                .to_utc()
        })
        .collect();
    let first = times.iter().min().unwrap();
    let last = *times.iter().max().unwrap() + chrono::Duration::seconds(1);
    (first.to_rfc3339(), last.to_rfc3339())
}

/// The environment of a run against the double.
fn graph_env(cmd: &mut Command, double: &GraphDouble) {
    cmd.env("MFAGAP_GRAPH_URL", double.url())
        .env("MFAGAP_GRAPH_CREDENTIAL", "managed-identity")
        .env_remove("MFAGAP_CONFIG")
        .env_remove("AZURE_FEDERATED_TOKEN_FILE")
        .env_remove("MSI_ENDPOINT")
        .env_remove("IMDS_ENDPOINT")
        .env_remove("IDENTITY_SERVER_THUMBPRINT");
    for (k, v) in double.identity_env() {
        cmd.env(k, v);
    }
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// `mfagap run --source graph` over a window of the corpus, in pages of 50, with every 7th
/// request throttled and every 13th unavailable: DuckDB reads back exactly `filter`'s
/// sign-ins, each once, each with `source` naming Graph, the endpoint version, the event
/// type and the page; the token came from the double's token endpoint and no request was
/// refused for its token.
#[test]
fn run_reads_every_sign_in_of_the_window_once() {
    let dir = tempfile::tempdir().unwrap();
    let double = GraphDouble::start(GraphConfig {
        throttle_every: 7,
        unavailable_every: 13,
        ..GraphConfig::default()
    })
    .unwrap();
    let served = double.add(sign_ins(&generated(400, 91, 3, false)));
    assert!(served.len() > 500, "{} sign-ins", served.len());
    let (since, until) = window(&served);
    let data = dir.path().join("data");
    let mut cmd = mfagap();
    graph_env(&mut cmd, &double);
    let out = cmd
        .args(["run", "--source", "graph", "--progress", "off", "--data"])
        .arg(&data)
        .env_remove("MFAGAP_RUN_SOURCE")
        .env("MFAGAP_GRAPH_SINCE", &since)
        .env("MFAGAP_GRAPH_UNTIL", &until)
        .env("MFAGAP_GRAPH_EVENT_TYPES", ALL_TYPES)
        .env("MFAGAP_GRAPH_PAGE_SIZE", "50")
        .env("MFAGAP_DEDUP_WINDOW", "0")
        .output()
        .unwrap();
    let summary = ok(&out);
    assert!(summary.contains("source         graph"), "{summary}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(double.token())
            && !summary.contains(double.token()),
        "the token is never printed"
    );
    let stats = double.stats();
    assert!(stats.throttled > 0 && stats.unavailable > 0, "{stats:?}");
    assert!(stats.tokens >= 1 && stats.bad_tokens == 0, "{stats:?}");

    let (want, _) = filter_reference(&as_input(&served), dir.path());
    assert!(!want.is_empty());
    let want: BTreeMap<(String, String), Value> = want
        .into_iter()
        .map(|v| {
            let key = (
                v["category"].as_str().unwrap().to_owned(),
                v["id"].as_str().unwrap().to_owned(),
            );
            (key, v)
        })
        .collect();
    let rows = mfagap_testkit::read_dataset(&data).unwrap();
    assert_eq!(rows.len(), want.len(), "as many rows as filter prints");
    let mut got = BTreeMap::new();
    for row in rows {
        let key = (
            row["category"].as_str().unwrap().to_owned(),
            row["id"].as_str().unwrap().to_owned(),
        );
        let source = &row["source"];
        assert_eq!(source["kind"], "graph", "{row}");
        assert_eq!(source["eventHub"], "beta", "the endpoint version: {row}");
        let event_type = match key.0.as_str() {
            "SignInLogs" => "interactiveUser",
            "NonInteractiveUserSignInLogs" => "nonInteractiveUser",
            other => panic!("a {other} sign-in emitted"),
        };
        assert_eq!(source["partition"], event_type, "{row}");
        let page = source["file"].as_str().unwrap();
        assert!(
            page.starts_with(&format!("{}/beta/auditLogs/signIns?", double.url())),
            "the page's URL: {row}"
        );
        assert!(source["sequenceNumber"].as_i64().unwrap() >= 1, "{row}");
        let mut r = row.clone();
        let o = r.as_object_mut().unwrap();
        for k in ["date", "hour", "filename", "source", "ingestedAt"] {
            o.remove(k);
        }
        assert!(got.insert(key, r).is_none(), "a row twice: {row}");
    }
    for (key, w) in &want {
        assert_eq!(got.get(key), Some(w), "{key:?}");
    }
}

/// `mfagap run --source graph` into a broker and dataset of its own, SIGKILLed mid-window —
/// the double holds its pages once a third of them were served, so the kill lands after the
/// last transaction committed and before the window's end — then run again into the same
/// broker and dataset: the second run resumes each event type where the first committed, and
/// DuckDB reads back exactly `filter`'s sign-ins, each once (duplicate suppression off).
///
/// The kill lands between transactions: the test broker (noida 0.2.3) hides every later
/// record of a producer from `read_committed` readers once one of its transactions was
/// aborted (ARCHITECTURE.md, "Test brokers"); a kill inside a transaction is
/// `exactly_once_from_graph_resumes_where_it_stopped`, read back from offset 0.
#[test]
fn a_run_killed_mid_window_and_run_again_holds_each_sign_in_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let input = generated(600, 29, 3, false);
    let probe = GraphDouble::start(GraphConfig::default()).unwrap();
    let pages_total = {
        let served = probe.add(sign_ins(&input));
        served.len() as u64 / 25
    };
    drop(probe);
    let double = GraphDouble::start(GraphConfig {
        hold_after: Some(pages_total / 3),
        ..GraphConfig::default()
    })
    .unwrap();
    let served = double.add(sign_ins(&input));
    let (since, until) = window(&served);
    let broker = Broker::noida().unwrap();
    let topic = unique("graph-run-topic");
    let positions = unique("graph-run-positions");
    broker.create_topic(&topic, 3).unwrap();
    let run = |listen: &str| {
        let mut cmd = mfagap();
        graph_env(&mut cmd, &double);
        cmd.args(["run", "--source", "graph", "--progress", "off"])
            .args(["--kafka-bootstrap", &broker.bootstrap, "--listen", listen])
            .args(["--log", "warn,mfagap_ingest::source::graph=info"])
            .arg("--data")
            .arg(&data)
            .env_remove("MFAGAP_RUN_SOURCE")
            .env("MFAGAP_TOPIC", &topic)
            .env("MFAGAP_POSITIONS_TOPIC", &positions)
            .env("MFAGAP_DELIVERY", "exactly-once")
            .env("MFAGAP_DEDUP_WINDOW", "0")
            .env("MFAGAP_ROLL_AGE", "500ms")
            .env("MFAGAP_GRAPH_SINCE", &since)
            .env("MFAGAP_GRAPH_UNTIL", &until)
            .env("MFAGAP_GRAPH_EVENT_TYPES", ALL_TYPES)
            .env("MFAGAP_GRAPH_PAGE_SIZE", "25");
        cmd
    };
    let addr = format!("127.0.0.1:{}", mfagap_testkit::port());
    let mut first = run(&addr)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Held: the pages served stop growing, and the last transaction commits.
    let deadline = Instant::now() + Duration::from_secs(120);
    let committed = || {
        let m = http_get(&addr, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default();
        metric(&m, "mfagap_ingest_transactions_total")
    };
    while double.stats().pages < pages_total / 3 || committed() < 1.0 {
        assert!(Instant::now() < deadline, "the first run read nothing");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut last = committed();
    loop {
        std::thread::sleep(Duration::from_millis(1500));
        let now = committed();
        if now == last {
            break;
        }
        last = now;
    }
    mfagap_testkit::process::signal(first.id(), libc::SIGKILL);
    let _ = first.wait();
    double.configure(GraphConfig::default());
    let out = run("127.0.0.1:0").output().unwrap();
    let summary = ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("resuming where the last committed transaction ended"),
        "{stderr}"
    );
    assert!(!stderr.contains(double.token()) && !summary.contains(double.token()));
    let pages: u64 = summary
        .strip_prefix("mfagap run: ")
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{summary}"));
    assert!(
        pages > 0 && pages < pages_total,
        "the second run read the rest of the window: {pages} pages of about {pages_total}"
    );

    let (want, _) = filter_reference(&as_input(&served), dir.path());
    let want: BTreeSet<(String, String)> = common::ids(&want);
    let rows = mfagap_testkit::read_dataset(&data).unwrap();
    let mut seen = BTreeMap::<(String, String), usize>::new();
    for r in &rows {
        *seen
            .entry((
                r["category"].as_str().unwrap().to_owned(),
                r["id"].as_str().unwrap().to_owned(),
            ))
            .or_default() += 1;
    }
    assert_eq!(
        rows.len(),
        want.len(),
        "each sign-in once, as filter prints it"
    );
    assert!(seen.values().all(|n| *n == 1), "nothing twice");
    assert_eq!(seen.into_keys().collect::<BTreeSet<_>>(), want);
}

/// A running `mfagap ingest --source graph`.
struct Ingest {
    child: Child,
    addr: String,
}

impl Ingest {
    fn metrics(&self) -> String {
        http_get(&self.addr, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }
}

fn ingest(
    double: &GraphDouble,
    b: &Broker,
    topics: (&str, &str),
    args: &[&str],
    log: &Path,
) -> Ingest {
    let addr = format!("127.0.0.1:{}", mfagap_testkit::port());
    let logfile = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut cmd = mfagap();
    graph_env(&mut cmd, double);
    let child = cmd
        .args(["ingest", "--source", "graph"])
        .args(["--bootstrap", &b.bootstrap, "--topic", topics.0])
        .args(["--dead-letter-topic", topics.1, "--listen", &addr])
        .args(["--dedup-window", "0", "--log-format", "json"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(logfile)
        .spawn()
        .unwrap();
    let i = Ingest { child, addr };
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(&i.addr, "/health/live").is_err() {
        assert!(Instant::now() < deadline, "no endpoint");
        std::thread::sleep(Duration::from_millis(50));
    }
    i
}

/// Exactly once from Graph: a read of the window SIGKILLed three times once it has committed
/// a transaction, and started again after each, resumes in each event type below the last
/// instant committed, passing over the ids it saw there. Read back, the output is
/// `filter`'s, record for record — nothing missing, nothing twice, duplicate suppression
/// off — and so are the dead letters.
#[test]
fn exactly_once_from_graph_resumes_where_it_stopped() {
    let b = Broker::noida().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let double = GraphDouble::start(GraphConfig {
        throttle_every: 9,
        unavailable_every: 17,
        latency: Duration::from_millis(5),
        ..GraphConfig::default()
    })
    .unwrap();
    let mut corpus = sign_ins(&generated(800, 73, 3, false));
    // Sign-ins the rule cannot judge (no status, a status that is not an object): each a
    // dead letter, at instants the corpus has, beside others.
    for (i, status) in [None, Some(serde_json::json!("0")), None]
        .into_iter()
        .enumerate()
    {
        let mut bad = corpus[i * 97].clone();
        bad["id"] = format!("bad-{i}").into();
        match status {
            Some(s) => bad["status"] = s,
            None => {
                bad.as_object_mut().unwrap().remove("status");
            }
        }
        corpus.push(bad);
    }
    let served = double.add(corpus);
    let (since, until) = window(&served);
    let (out, dead, positions) = (unique("out"), unique("dl"), unique("positions"));
    b.create_topic(&out, 3).unwrap();
    b.create_topic(&dead, 1).unwrap();
    let log = dir.path().join("graph.log");
    let args = [
        "--since",
        &since,
        "--until",
        &until,
        "--graph-event-type",
        ALL_TYPES,
        "--graph-page-size",
        "20",
        "--delivery",
        "exactly-once",
        "--positions-topic",
        &positions,
        "--transaction-messages",
        "3",
    ];
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    for run in 0..3 {
        let mut i = ingest(&double, &b, (&out, &dead), &args, &log);
        let deadline = Instant::now() + Duration::from_secs(120);
        while metric(&i.metrics(), "mfagap_ingest_transactions_total") < 1.0 {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("run {run} committed nothing:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(rng % 400));
        mfagap_testkit::process::signal(i.child.id(), libc::SIGKILL);
        let _ = i.child.wait();
    }
    let mut last = ingest(&double, &b, (&out, &dead), &args, &log);
    let status = last.child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "the last run reads the window:\n{text}");
    assert!(
        text.contains("Graph: resuming where the last committed transaction ended"),
        "runs after the first resumed"
    );
    assert!(!text.contains(double.token()), "the token is never printed");
    let (want, want_dead) = filter_reference(&as_input(&served), dir.path());
    let got = output_records(&b, &out);
    assert_eq!(got.len(), want.len(), "as many records as filter prints");
    assert!(got == want, "the same records as filter, record for record");
    assert!(!want_dead.is_empty(), "the corpus has bad records");
    let got_dead = dead_letter_payloads(&b, &dead);
    assert_eq!(
        got_dead.len(),
        want_dead.len(),
        "as many dead letters: {:?} against {:?}",
        got_dead
            .iter()
            .map(|d| String::from_utf8_lossy(d))
            .collect::<Vec<_>>(),
        want_dead
            .iter()
            .map(|d| String::from_utf8_lossy(d))
            .collect::<Vec<_>>()
    );
    for (g, w) in got_dead.iter().zip(&want_dead) {
        assert_eq!(
            String::from_utf8_lossy(g),
            String::from_utf8_lossy(w),
            "the dead letters, each once"
        );
    }
}

/// Sign-ins with fresh ids, created `minutes_ago` spread over a span, as beta `signIn`s.
fn recent(seed: u64, messages: u64, newest_ago: i64, span: i64) -> Vec<Value> {
    let mut all = sign_ins(&generated(messages, seed, 3, false));
    all.retain(|v| {
        matches!(
            v["signInEventTypes"][0].as_str(),
            Some("interactiveUser" | "nonInteractiveUser")
        )
    });
    let now = chrono::Utc::now();
    let n = all.len().max(1) as i64;
    for (i, v) in all.iter_mut().enumerate() {
        let ago = newest_ago + span * i as i64 / n;
        let t = now - chrono::Duration::seconds(ago);
        v["createdDateTime"] = t
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            .into();
        v["id"] = format!("{}-{seed}-{i}", v["id"].as_str().unwrap_or("x")).into();
    }
    all
}

/// `--follow`: after the window, sweeps every second reach 10 minutes back. Sign-ins added
/// to the double after the start — most inside that overlap, created before the sweep that
/// follows them began, as Graph lists a sign-in late — arrive once each, and so do those
/// listed again by every later sweep's overlap: the output is `filter`'s over everything
/// served, record for record, still after several more sweeps. Default event types.
#[test]
fn follow_reads_sign_ins_listed_late_once_each() {
    let b = Broker::noida().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let double = GraphDouble::start(GraphConfig::default()).unwrap();
    let mut served = double.add(recent(5, 120, 60, 1200));
    let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let (out, dead) = (unique("out"), unique("dl"));
    b.create_topic(&out, 3).unwrap();
    b.create_topic(&dead, 1).unwrap();
    let log = dir.path().join("follow.log");
    let args = [
        "--since",
        &since,
        "--follow",
        "--graph-poll-interval",
        "1s",
        "--graph-overlap",
        "10m",
        "--graph-page-size",
        "25",
        "--delivery",
        "at-least-once",
    ];
    let i = ingest(&double, &b, (&out, &dead), &args, &log);
    let wait_for = |served: &[Value]| {
        let (want, _) = filter_reference(&as_input(served), dir.path());
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let got = output_records(&b, &out);
            if got.len() >= want.len() {
                return (got, want);
            }
            assert!(
                Instant::now() < deadline,
                "{} of {} records\n{}",
                got.len(),
                want.len(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    let (got, want) = wait_for(&served);
    assert!(got == want, "the window, once");
    let before = metric(&i.metrics(), "mfagap_ingest_messages_total");
    // Late: created 2 to 8 minutes ago (inside the overlap, before the running sweep began).
    served.extend(double.add(recent(6, 60, 120, 360)));
    // And new: created in the last seconds.
    served.extend(double.add(recent(7, 30, 1, 2)));
    let (_, want) = wait_for(&served);
    std::thread::sleep(Duration::from_secs(4)); // more sweeps, each over the same overlap
    let got = output_records(&b, &out);
    let ids = |v: &[Value]| {
        v.iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(got.len(), want.len(), "nothing twice after more sweeps");
    assert_eq!(ids(&got), ids(&want));
    assert!(got == want, "everything served, once, as filter makes it");
    assert!(
        metric(&i.metrics(), "mfagap_ingest_messages_total") > before,
        "the new sign-ins came in pages of their own"
    );
    mfagap_testkit::process::signal(i.child.id(), libc::SIGTERM);
    let mut child = i.child;
    assert!(child.wait().unwrap().success(), "a clean stop on SIGTERM");
}

/// Without `--until` the window ends when the run starts (to the nanosecond, between Graph's
/// 100 ns ticks): the read ends there, exit 0, with every sign-in of the window once — it
/// used to sweep the last overlap again and again and never end.
#[test]
fn a_window_without_until_ends_at_the_start_of_the_run() {
    let b = Broker::noida().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let double = GraphDouble::start(GraphConfig::default()).unwrap();
    let served = double.add(recent(8, 60, 30, 600));
    let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let (out, dead) = (unique("out"), unique("dl"));
    b.create_topic(&out, 3).unwrap();
    b.create_topic(&dead, 1).unwrap();
    let log = dir.path().join("window.log");
    let args = ["--since", &since, "--graph-page-size", "25"];
    let mut i = ingest(&double, &b, (&out, &dead), &args, &log);
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = i.child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = i.child.kill();
            panic!(
                "still running after 90 s\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let (want, _) = filter_reference(&as_input(&served), dir.path());
    assert!(!want.is_empty());
    assert!(
        output_records(&b, &out) == want,
        "every sign-in of the window, once"
    );
}

/// Without `AuditLog.Read.All` Graph answers 403: `mfagap ingest` exits 1 with a message that
/// names the permission, and `mfagap check` fails its Graph line with the same; neither
/// prints the token. With the permission, `check` gets a token and reads a page.
#[test]
fn a_missing_permission_exits_1_naming_it_and_never_prints_the_token() {
    let double = GraphDouble::start(GraphConfig {
        denied: true,
        ..GraphConfig::default()
    })
    .unwrap();
    double.add(sign_ins(&generated(20, 3, 3, false)));
    let mut cmd = mfagap();
    graph_env(&mut cmd, &double);
    let out = cmd
        .args(["ingest", "--source", "graph", "--delivery", "at-least-once"])
        .args(["--bootstrap", "127.0.0.1:1", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("AuditLog.Read.All"), "{stderr}");
    assert!(stderr.contains("403"), "{stderr}");
    assert!(!stderr.contains(double.token()), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(double.stats().tokens >= 1, "the credential got its token");

    let check = |double: &GraphDouble| {
        let mut cmd = mfagap();
        graph_env(&mut cmd, double);
        cmd.args(["check", "--service", "ingest", "--timeout", "5s"])
            .env("MFAGAP_SOURCE", "graph")
            .env("MFAGAP_KAFKA_BOOTSTRAP", "127.0.0.1:1")
            .output()
            .unwrap()
    };
    let out = check(&double);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("graph "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.starts_with("FAILED"), "{stdout}");
    assert!(stdout.contains("AuditLog.Read.All"), "{stdout}");
    assert!(!stdout.contains(double.token()), "{stdout}");
    assert_ne!(out.status.code(), Some(0));

    double.configure(GraphConfig::default());
    let out = check(&double);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("graph "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.starts_with("ok"), "{stdout}");
    assert!(line.contains("/auditLogs/signIns read"), "{line}");
}
