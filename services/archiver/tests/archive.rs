//! The archiver end to end: the real binary as a child process, a real Kafka-protocol broker,
//! and the dataset read back by independent readers (DuckDB and pyarrow, from Python).
//!
//! The records produced are what the ingest service writes: output records of generated
//! sign-ins, each with a unique id so that "each row once" is checkable, plus hand-made ones
//! for the edges (unicode, empty lists, absent structs, instants written with an offset) and
//! values that are not records at all.

use mfagap_core::SignIn;
use mfagap_testkit::{Broker, Kind, http_get, metric, unique};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `n` output records as JSON, ids `r0…`, spread over several days and hours.
fn records(n: usize, seed: u64) -> Vec<Vec<u8>> {
    mfagap_testkit::output_records(n, seed, "r")
}

/// Records at the edges of the format, as JSON values to produce.
fn edge_records() -> Vec<Vec<u8>> {
    let base: Value = serde_json::from_slice(&records(1, 99)[0]).unwrap();
    let mut out = Vec::new();
    let mut v = base.clone();
    v["id"] = "edge-unicode".into();
    v["userDisplayName"] = "Zoë \"Ω\" d'Arc, 東京 🚀".into();
    v["userPrincipalName"] = "zoë@contoso.example".into();
    v["policies"] = serde_json::json!(["Require MFA, admins", "Block \"legacy\""]);
    out.push(v);
    let mut v = base.clone();
    v["id"] = "edge-empty".into();
    v["policies"] = serde_json::json!([]);
    v["authenticationMethods"] = serde_json::json!([]);
    v["location"] = Value::Null;
    v["deviceDetail"] = Value::Null;
    v["userAgent"] = Value::Null;
    v["isInteractive"] = Value::Null;
    v["tenantId"] = Value::Null;
    out.push(v);
    let mut v = base.clone();
    v["id"] = "edge-offset".into();
    // 23:30 on the 13th in UTC: lands in the previous day's last hour.
    v["createdDateTime"] = "2025-11-14T01:30:00.1234567+02:00".into();
    v["source"]["enqueuedTime"] = "11/14/2025 1:48:53 AM".into();
    out.push(v);
    let mut v = base;
    v["id"] = "edge-absent-optional".into();
    v.as_object_mut().unwrap().remove("riskState");
    v.as_object_mut().unwrap().remove("correlationId");
    out.push(v);
    out.into_iter()
        .map(|v| serde_json::to_vec(&v).unwrap())
        .collect()
}

/// A record as the dataset must hold it: parsed by the core, printed in its one form.
fn expected_row(bytes: &[u8]) -> Value {
    let r: SignIn = serde_json::from_slice(bytes).unwrap();
    serde_json::to_value(&r).unwrap()
}

/// A dataset row without the columns the reader adds.
fn row_record(row: &Value) -> Value {
    let mut r = row.clone();
    let o = r.as_object_mut().unwrap();
    for k in ["date", "hour", "filename"] {
        o.remove(k);
    }
    r
}

/// A running `mfagap-archiver`.
struct Archiver {
    child: Child,
    addr: String,
}

struct Setup<'a> {
    broker: &'a Broker,
    topic: String,
    dead: String,
    group: String,
    data: String,
    env: Vec<(String, String)>,
    extra: Vec<String>,
    log: PathBuf,
}

impl Setup<'_> {
    fn start(&self, fault: Option<&str>) -> Archiver {
        let addr = format!("127.0.0.1:{}", mfagap_testkit::port());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mfagap-archiver"));
        cmd.args([
            "--bootstrap",
            &self.broker.bootstrap,
            "--topic",
            &self.topic,
        ])
        .args(["--group", &self.group, "--dead-letter-topic", &self.dead])
        .args(["--data", &self.data, "--listen", &addr])
        .args(["--log-format", "json", "--log", "info"])
        .envs(self.env.iter().map(|(k, v)| (k, v)));
        for p in self.broker.extra_properties() {
            cmd.args(["-X", &p]);
        }
        cmd.args(&self.extra); // after: a test's own -X wins
        match fault {
            Some(f) => cmd.env("MFAGAP_ARCHIVER_FAULT", f),
            None => cmd.env_remove("MFAGAP_ARCHIVER_FAULT"),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap();
        let a = Archiver { child, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(&a.addr, "/health/live").is_err() {
            if Instant::now() > deadline {
                panic!(
                    "the archiver endpoint did not come up:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        a
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// A failed assertion must not leave a replica running.
impl Drop for Archiver {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Archiver {
    fn metrics(&self) -> String {
        http_get(&self.addr, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    /// Rows published by this process so far.
    fn rows(&self) -> f64 {
        metric(&self.metrics(), "mfagap_archiver_rows_total")
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        mfagap_testkit::process::signal(self.child.id(), mfagap_testkit::process::SIGTERM);
        self.child.wait().unwrap()
    }

    fn kill(mut self) {
        mfagap_testkit::process::signal(self.child.id(), mfagap_testkit::process::SIGKILL);
        let _ = self.child.wait();
    }

    fn wait(mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }
}

/// Waits until `done` holds, or fails with the log.
fn wait_for(s: &Setup, limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            let _ = std::fs::copy(
                &s.log,
                std::env::temp_dir().join("mfagap-archiver-failed.log"),
            );
            panic!("timed out waiting for {what}:\n{}", s.log_tail());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn setup<'a>(broker: &'a Broker, partitions: i32, data: String, dir: &Path) -> Setup<'a> {
    let s = Setup {
        broker,
        topic: unique("signins"),
        dead: unique("archiver-dl"),
        group: unique("archiver"),
        data,
        env: Vec::new(),
        extra: Vec::new(),
        log: dir.join("archiver.log"),
    };
    broker.create_topic(&s.topic, partitions).unwrap();
    broker.create_topic(&s.dead, 1).unwrap();
    s
}

/// Every id in the dataset with how many times it appears.
fn id_counts(rows: &[Value]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in rows {
        *out.entry(r["id"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    out
}

fn assert_each_once(rows: &[Value], produced: &[Vec<u8>]) {
    let counts = id_counts(rows);
    let expected: BTreeSet<String> = produced
        .iter()
        .map(|b| {
            serde_json::from_slice::<Value>(b).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "rows written twice, e.g. {twice:?}");
    let missing: Vec<_> = expected
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .take(5)
        .collect();
    assert!(missing.is_empty(), "rows missing, e.g. {missing:?}");
    assert_eq!(rows.len(), expected.len());
}

/// No temporary file is visible to a `*.parquet` glob, and every file name is a data file's.
fn assert_only_published_files(root: &Path) {
    for f in mfagap_testkit::parquet_files(root) {
        let rel = f.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        assert!(
            rel.starts_with("date=") && !rel.contains("_mfagap"),
            "unexpected file under a *.parquet glob: {rel}"
        );
    }
}

#[test]
fn archived_rows_read_back_equal_the_records_produced() {
    let broker = Broker::start(Kind::Noida).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let mut s = setup(&broker, 3, root.to_string_lossy().into_owned(), dir.path());
    s.extra = ["--roll-age", "1s"].map(String::from).to_vec();
    let mut produced = records(3000, 1);
    produced.extend(edge_records());
    let bad: Vec<Vec<u8>> = vec![
        b"not json".to_vec(),
        b"{\"id\":\"half a record\"}".to_vec(),
        b"{\"truncated\":".to_vec(),
    ];
    let mut all = produced.clone();
    all.extend(bad.iter().cloned());
    broker.produce(&s.topic, 3, &all).unwrap();

    let a = s.start(None);
    wait_for(&s, Duration::from_secs(60), "every row published", || {
        a.rows() as usize >= produced.len()
    });
    let m = a.metrics();
    assert_eq!(metric(&m, "mfagap_archiver_dead_letters_total"), 3.0, "{m}");
    assert!(metric(&m, "mfagap_archiver_files_total") >= 3.0);
    assert!(m.contains("mfagap_archiver_published_position{partition=\"0\"}"));
    wait_for(
        &s,
        Duration::from_secs(20),
        "no lag once all is published",
        || {
            let m = a.metrics();
            (0..3).all(|p| {
                m.contains(&format!(
                    "mfagap_archiver_consumer_lag{{partition=\"{p}\"}} 0\n"
                ))
            })
        },
    );
    assert!(a.terminate().success(), "{}", s.log_tail());

    let rows = mfagap_testkit::read_dataset(&root).unwrap();
    assert_each_once(&rows, &produced);
    let by_id: BTreeMap<&str, &Value> = rows
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r))
        .collect();
    for bytes in &produced {
        let want = expected_row(bytes);
        let got = by_id[want["id"].as_str().unwrap()];
        assert_eq!(row_record(got), want, "row {}", want["id"]);
        // The Hive columns are the UTC date and hour of createdDateTime.
        let created = want["createdDateTime"].as_str().unwrap();
        assert_eq!(got["date"].as_str().unwrap(), &created[..10]);
        assert_eq!(got["hour"].as_str().unwrap(), &created[11..13]);
    }
    let edge = by_id["edge-offset"];
    assert_eq!(edge["createdDateTime"], "2025-11-13T23:30:00.123456Z");
    assert_eq!(edge["date"], "2025-11-13");
    assert_eq!(by_id["edge-empty"]["policies"], serde_json::json!([]));
    assert_eq!(by_id["edge-empty"]["location"], Value::Null);

    // A second, independent reader sees the same rows.
    let mut again = mfagap_testkit::read_dataset_pyarrow(&root).unwrap();
    let mut first: Vec<Value> = rows.iter().map(row_record).collect();
    again.iter_mut().for_each(|r| *r = row_record(r));
    let key = |v: &Value| v["id"].as_str().unwrap().to_owned();
    first.sort_by_key(key);
    again.sort_by_key(key);
    assert_eq!(first, again);

    // File properties: ZSTD, statistics, the schema's UTC microsecond instants.
    let file = &mfagap_testkit::parquet_files(&root)[0];
    let meta = mfagap_testkit::parquet_metadata(file).unwrap().to_string();
    assert!(meta.contains("ZSTD"), "{meta}");
    assert!(meta.contains("timestamp[us, tz=UTC]"), "{meta}");

    // Dead letters keep their bytes and say why.
    let dl = broker.read_all(&s.dead).unwrap();
    let payloads: BTreeSet<Vec<u8>> = dl.iter().map(|r| r.payload.clone()).collect();
    assert_eq!(payloads, bad.iter().cloned().collect());
    assert!(dl.iter().all(|r| r.headers.contains_key("reason")));
    assert_only_published_files(&root);
}

/// Produces `n` records, then runs the archiver and kills it `kills` times at random moments
/// and once at each step of the publish protocol, restarting each time; at the end the
/// dataset holds each record exactly once.
fn crash_and_restart(s: &Setup, root_for_reading: &dyn Fn() -> PathBuf, n: usize, kills: usize) {
    let produced = records(n, 7);
    // The records arrive in slices, one before each run, so every run has work to be killed in.
    let runs = 4 + kills + 1;
    let slice = n.div_ceil(runs);
    let mut chunks = produced.chunks(slice);
    let mut feed = || {
        if let Some(c) = chunks.next() {
            s.broker.produce(&s.topic, 4, c).unwrap();
        }
    };
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // Faults first: each stops the process exactly between two steps.
    let mut injected = BTreeMap::<&str, usize>::new();
    for fault in [
        "after-stage:2",
        "after-commit:2",
        "mid-publish:1",
        "after-commit:5",
    ] {
        feed();
        let t0 = Instant::now();
        let mut a = s.start(Some(fault));
        let deadline = Instant::now() + Duration::from_secs(60);
        while a.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            !a.alive(),
            "fault {fault} was never reached:\n{}",
            s.log_tail()
        );
        // The injected fault, and nothing else: an abort, after its log line (a
        // configuration error exits 1, a panic 101).
        let status = a.wait();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(libc::SIGABRT),
            "fault {fault}: {status:?}\n{}",
            s.log_tail()
        );
        let point = fault.split(':').next().unwrap();
        let named = std::fs::read_to_string(&s.log)
            .unwrap_or_default()
            .matches(&format!("injected fault at {point}\n"))
            .count();
        let earlier = injected.entry(point).or_insert(0);
        assert_eq!(
            named,
            *earlier + 1,
            "fault {fault} named in the log:\n{}",
            s.log_tail()
        );
        *earlier = named;
        eprintln!("fault {fault} reached in {:?}", t0.elapsed());
    }
    for _ in 0..kills {
        feed();
        let t0 = Instant::now();
        let a = s.start(None);
        // Wait until it publishes again, then kill it somewhere in its next moments.
        let before = Instant::now();
        while a.rows() < 1.0 {
            assert!(
                before.elapsed() < Duration::from_secs(60),
                "a restarted replica published nothing in 60 s:\n{}",
                s.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(next() % 1500));
        a.kill();
        eprintln!("killed after {:?}", t0.elapsed());
    }
    feed();
    // Whatever the last kill left staged is older than the orphan age when the last run
    // recovers, so nothing may stay behind.
    std::thread::sleep(Duration::from_millis(4_500));
    let a = s.start(None);
    let dataset_rows = || {
        mfagap_testkit::read_dataset(&root_for_reading())
            .map(|r| r.len())
            .unwrap_or(0)
    };
    wait_for(
        s,
        Duration::from_secs(240),
        "every record published",
        || {
            std::thread::sleep(Duration::from_secs(1));
            dataset_rows() >= n
        },
    );
    assert!(a.terminate().success(), "{}", s.log_tail());
    let root = root_for_reading();
    let rows = mfagap_testkit::read_dataset(&root).unwrap();
    assert_each_once(&rows, &produced);
    assert_only_published_files(&root);
}

#[test]
fn crashes_at_any_moment_leave_each_record_exactly_once() {
    // tansu: noida-db's group coordinator never lets go of a killed member.
    let broker = Broker::start(Kind::Tansu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let mut s = setup(&broker, 4, root.to_string_lossy().into_owned(), dir.path());
    // A static member id, as a StatefulSet gives each pod: a restarted replica takes its
    // place in the group at once instead of waiting out the dead one's session.
    s.extra = crash_settings();
    s.extra.extend([
        "-X".into(),
        format!("group.instance.id={}", unique("replica")),
    ]);
    crash_and_restart(&s, &|| root.clone(), 50_000, 10);
    // Leftovers of the faults are gone: staged files are rolled forward or, once older than
    // the orphan age, deleted.
    let staging = root.join("_mfagap/staging");
    let left: Vec<PathBuf> = walk(&staging);
    assert!(left.is_empty(), "staged files left: {left:?}");
}

/// Settings of the crash tests: many small units, so that kills land in every step, and a
/// short session, because tansu holds a join for part of it.
fn crash_settings() -> Vec<String> {
    [
        "--roll-rows",
        "1500",
        "--roll-age",
        "300ms",
        "--orphan-age",
        "4s",
        "-X",
        "session.timeout.ms=2000",
        "-X",
        "heartbeat.interval.ms=500",
    ]
    .map(String::from)
    .to_vec()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn crashes_against_azure_blob_storage_leave_each_record_exactly_once() {
    let broker = Broker::start(Kind::Tansu).unwrap();
    let azurite = mfagap_testkit::Azurite::start().unwrap();
    azurite.create_container("signins").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut s = setup(&broker, 4, "az://signins/prod/nonmfa".into(), dir.path());
    s.env = vec![
        ("AZURE_STORAGE_USE_EMULATOR".into(), "true".into()),
        (
            "AZURITE_BLOB_STORAGE_URL".into(),
            format!("http://127.0.0.1:{}", azurite.port()),
        ),
    ];
    s.extra = crash_settings();
    let download = dir.path().join("download");
    let read_root = || {
        let _ = std::fs::remove_dir_all(&download);
        azurite
            .download("signins", "prod/nonmfa/", &download)
            .unwrap();
        download.clone()
    };
    crash_and_restart(&s, &read_root, 20_000, 4);
    let blobs = azurite.list_blobs("signins").unwrap();
    assert!(
        blobs
            .iter()
            .any(|(n, _)| n.starts_with("prod/nonmfa/_mfagap/commits/"))
    );
    assert!(
        blobs
            .iter()
            .filter(|(n, _)| n.ends_with(".parquet"))
            .all(|(n, _)| n.starts_with("prod/nonmfa/date=")),
        "{blobs:?}"
    );
}

#[test]
fn a_replica_joining_and_one_dying_leave_each_record_exactly_once() {
    // tansu: its group coordinator evicts a killed member after the session timeout.
    let broker = Broker::start(Kind::Tansu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let mut s = setup(&broker, 6, root.to_string_lossy().into_owned(), dir.path());
    s.extra = ["--roll-rows", "1000", "--roll-age", "300ms"]
        .map(String::from)
        .to_vec();
    let produced = records(30_000, 3);
    let (a, b, c) = (
        &produced[..10_000],
        &produced[10_000..20_000],
        &produced[20_000..],
    );
    broker.produce(&s.topic, 6, a).unwrap();
    let first = s.start(None);
    wait_for(
        &s,
        Duration::from_secs(90),
        "the first replica to publish",
        || first.rows() >= 2000.0,
    );
    broker.produce(&s.topic, 6, b).unwrap();
    let second = s.start(None);
    // Its partitions are assigned at their published positions (a gauge set on assignment).
    wait_for(
        &s,
        Duration::from_secs(90),
        "the second replica to take partitions",
        || {
            second
                .metrics()
                .contains("mfagap_archiver_published_position{")
        },
    );
    broker.produce(&s.topic, 6, c).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    first.kill();
    let count = || {
        mfagap_testkit::read_dataset(&root)
            .map(|r| r.len())
            .unwrap_or(0)
    };
    wait_for(
        &s,
        Duration::from_secs(180),
        "every record published",
        || {
            std::thread::sleep(Duration::from_secs(1));
            count() >= produced.len()
        },
    );
    assert!(second.rows() > 0.0, "the second replica published nothing");
    assert!(second.terminate().success(), "{}", s.log_tail());
    let rows = mfagap_testkit::read_dataset(&root).unwrap();
    assert_each_once(&rows, &produced);
    assert_only_published_files(&root);
}

/// Copies every object of a store into a local directory, keeping the paths.
fn download(store: &mfagap_archiver::storage::Store, dest: &Path) {
    let _ = std::fs::remove_dir_all(dest);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for meta in store
            .list(&object_store::path::Path::from(""))
            .await
            .unwrap()
        {
            let Some(bytes) = store.get(&meta.location).await.unwrap() else {
                continue; // published meanwhile
            };
            let path = dest.join(meta.location.as_ref());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    });
}

#[test]
fn crashes_against_s3_leave_each_record_exactly_once() {
    let broker = Broker::start(Kind::Tansu).unwrap();
    let s3 = mfagap_testkit::S3Server::start().unwrap();
    s3.create_bucket("signins").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = "s3://signins/prod/nonmfa";
    let mut s = setup(&broker, 4, root.into(), dir.path());
    s.extra = crash_settings();
    for o in s3.options() {
        s.extra.extend(["-O".into(), o]);
    }
    let options: Vec<mfagap_runtime::Property> =
        s3.options().iter().map(|o| o.parse().unwrap()).collect();
    let store = mfagap_archiver::storage::Store::open(root, &options).unwrap();
    let local = dir.path().join("download");
    let read_root = || {
        download(&store, &local);
        local.clone()
    };
    crash_and_restart(&s, &read_root, 20_000, 4);
    assert!(local.join("_mfagap/commits").exists());
    // The server refuses a second create of one name: the fence the commit relies on.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let name = object_store::path::Path::from("_mfagap/probe");
    let first = rt.block_on(store.create(&name, "a".into())).unwrap();
    let second = rt.block_on(store.create(&name, "b".into())).unwrap();
    assert_eq!((first, second), (true, false));
}
