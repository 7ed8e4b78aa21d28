//! Exactly once from Kafka to Parquet: how a unit of rows is published, and where a partition
//! resumes.
//!
//! # Design note
//!
//! A *unit* is everything the archiver read from one Kafka partition between two publishes:
//! offsets `first..=last`, its sign-ins split into one file per hour of `createdDateTime`,
//! and its dead letters. A unit is published in four steps:
//!
//! 1. **Stage.** Each file is written under `_mfagap/staging/…/*.parquet.inprogress`, a name no
//!    `*.parquet` glob matches, and is durable when the write returns (`storage`).
//! 2. **Wait** for Kafka to acknowledge the unit's dead letters (the caller does this).
//! 3. **Commit.** The commit record `_mfagap/commits/<topic>/<partition>/<first>.json`, listing
//!    the staged and final name of every file, is *created* — a write that fails if the name
//!    exists. This is the instant the unit becomes part of the dataset. Its name is a claim on
//!    offset `first`: of two writers holding the same partition (a replica that has not yet
//!    noticed it lost it, and its successor), only one can commit a unit starting there; the
//!    other is *fenced*, drops its unit and resumes from what is committed.
//! 4. **Publish.** Each staged file is moved to its final name (an atomic rename, or an atomic
//!    object copy then a delete of the staged copy).
//!
//! When a partition is assigned, `recover` reads its commit records: the resume offset is the
//! `last + 1` of the newest one (Kafka's committed offsets are written after every publish for
//! monitoring only, and never read). Any staged file that a commit names is published now —
//! the roll-forward of a writer that died between steps 3 and 4. Staged files that no commit
//! names are leftovers of a writer that died before step 3; they are deleted once older than
//! the orphan age (a younger one may belong to a live writer about to commit, so it is left
//! alone, and a writer never commits files it staged longer ago than half the orphan age).
//! The same age applies to the temp files of local writes killed before their rename, which
//! no listing shows (`storage`).
//!
//! So at any instant: a row is in exactly one published file or in none yet (a crash between
//! 3 and 4 delays it until the partition's next assignment, never loses it); a file is never
//! visible half-written; and a unit spanning several hours is all-or-nothing, decided by one
//! atomic create.
//!
//! Commit records are small and one is written per unit; `recover` keeps the newest
//! `KEEP_COMMITS` of a partition plus any younger than a day, which bounds both storage and
//! recovery time, and a fenced writer is at most a few units behind the tip.

use crate::layout::{self, Commit, CommittedFile, Range};
use crate::storage::Store;
use crate::writer::EncodedFile;
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use object_store::path::Path;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Commit records of a partition always kept, however old.
pub(crate) const KEEP_COMMITS: usize = 1000;
const KEEP_YOUNGER_THAN: Duration = Duration::from_secs(24 * 3600);

/// Fault injection for the crash tests: `MFAGAP_ARCHIVER_FAULT=<point>:<n>` aborts the process
/// the `n`-th time it reaches `point` (`after-stage`, `after-commit`, `mid-publish`), so a test
/// can stop it exactly between two steps of the protocol, where a random kill rarely lands.
fn fault(point: &str) {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static SPEC: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let spec = SPEC.get_or_init(|| {
        let v = std::env::var("MFAGAP_ARCHIVER_FAULT").ok()?;
        let (p, n) = v.split_once(':')?;
        Some((p.to_owned(), n.parse().ok()?))
    });
    if let Some((p, n)) = spec
        && p == point
        && SEEN.fetch_add(1, Ordering::Relaxed) + 1 == *n
    {
        eprintln!("mfagap-archiver: injected fault at {point}");
        std::process::abort();
    }
}

/// A unit ready to publish.
#[derive(Debug)]
pub(crate) struct Unit {
    pub topic: String,
    pub partition: i32,
    pub range: Range,
    pub files: Vec<EncodedFile>,
    pub dead_letters: u64,
}

impl Unit {
    pub(crate) fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }
    pub(crate) fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.data.len() as u64).sum()
    }
}

/// How a publish ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The unit is part of the dataset; the partition resumes at `commit.next()`.
    Committed(Commit),
    /// Another writer committed from this offset first (or this one took too long): the unit
    /// was dropped and the partition must be recovered again.
    Fenced,
}

/// Where a partition stands after recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// The offset to resume from; `None` when nothing of the partition was ever committed.
    pub resume: Option<i64>,
    /// Staged files rolled forward to their published names.
    pub rolled_forward: usize,
    /// Leftover staged files deleted.
    pub orphans_deleted: usize,
}

/// Publishes the unit (steps 1, 3 and 4 of the design note; the caller did step 2).
pub(crate) async fn publish(
    store: &Store,
    unit: &Unit,
    writer: &str,
    orphan_age: Duration,
) -> Result<Outcome> {
    let started = Instant::now();
    let mut files = Vec::with_capacity(unit.files.len());
    for f in &unit.files {
        let staged = layout::staged_file(&unit.topic, unit.partition, unit.range, writer, f.hour);
        let path = layout::data_file(&unit.topic, unit.partition, f.hour, f.offsets);
        store.put(&staged, f.data.clone()).await?;
        files.push(CommittedFile {
            staged: staged.to_string(),
            path: path.to_string(),
            rows: f.rows,
            bytes: f.data.len() as u64,
        });
    }
    fault("after-stage");
    if started.elapsed() > orphan_age / 2 {
        tracing::warn!(
            partition = unit.partition,
            "staging took longer than half the orphan age; dropping the unit"
        );
        discard(store, &files).await;
        return Ok(Outcome::Fenced);
    }
    let commit = Commit {
        topic: unit.topic.clone(),
        partition: unit.partition,
        first: unit.range.first,
        last: unit.range.last,
        files,
        dead_letters: unit.dead_letters,
        writer: writer.to_owned(),
        committed_at: mfagap_core::timestamp::format(chrono::Utc::now().timestamp_micros()),
    };
    let name = layout::commit_file(&unit.topic, unit.partition, unit.range.first);
    let body = serde_json::to_vec_pretty(&commit).context("commit record")?;
    if !store.create(&name, Bytes::from(body)).await? {
        // Ours, from an attempt whose answer was lost? Then it is committed after all.
        if let Some(existing) = read_commit(store, &name).await?
            && existing == commit_without_time(&commit, &existing)
        {
            roll_forward(store, &existing, None).await?;
            return Ok(Outcome::Committed(existing));
        }
        tracing::warn!(
            partition = unit.partition,
            first = unit.range.first,
            "another writer committed from this offset; dropping the unit"
        );
        discard(store, &commit.files).await;
        return Ok(Outcome::Fenced);
    }
    fault("after-commit");
    roll_forward(store, &commit, None).await?;
    Ok(Outcome::Committed(commit))
}

/// `ours` with the commit time of `existing`, to compare everything else.
fn commit_without_time(ours: &Commit, existing: &Commit) -> Commit {
    Commit {
        committed_at: existing.committed_at.clone(),
        ..ours.clone()
    }
}

async fn discard(store: &Store, files: &[CommittedFile]) {
    for f in files {
        if let Err(e) = store.delete(&Path::from(f.staged.as_str())).await {
            tracing::warn!(error = %format!("{e:#}"), "cannot delete a dropped staged file; it is deleted as an orphan later");
        }
    }
}

async fn read_commit(store: &Store, name: &Path) -> Result<Option<Commit>> {
    let Some(bytes) = store.get(name).await? else {
        return Ok(None);
    };
    let commit = serde_json::from_slice(&bytes)
        .with_context(|| format!("the commit record {name} in {} is corrupt", store.location))?;
    Ok(Some(commit))
}

/// Moves every staged file of a commit to its published name. With `staged` (what a listing
/// found), only those files are touched; without, every file is tried.
async fn roll_forward(
    store: &Store,
    commit: &Commit,
    staged: Option<&HashSet<String>>,
) -> Result<usize> {
    let mut moved = 0;
    for f in &commit.files {
        if staged.is_some_and(|s| !s.contains(&f.staged)) {
            continue;
        }
        let from = Path::from(f.staged.as_str());
        let to = Path::from(f.path.as_str());
        if store.publish(&from, &to).await? {
            moved += 1;
        }
        if commit.files.len() > 1 {
            fault("mid-publish");
        }
    }
    Ok(moved)
}

/// Derives a partition's resume offset from its commit records and completes or cleans what
/// a crashed writer left (see the design note).
pub(crate) async fn recover(
    store: &Store,
    topic: &str,
    partition: i32,
    orphan_age: Duration,
) -> Result<Recovered> {
    let records = store.list(&layout::commits_dir(topic, partition)).await?;
    let mut commits = Vec::with_capacity(records.len());
    for meta in &records {
        if !meta.location.as_ref().ends_with(".json") {
            continue;
        }
        match read_commit(store, &meta.location).await? {
            Some(c) => commits.push((meta.clone(), c)),
            None => bail!(
                "the commit record {} vanished while recovering",
                meta.location
            ),
        }
    }
    commits.sort_by_key(|(_, c)| c.first);
    let staged_objects = store.list(&layout::staging_dir(topic, partition)).await?;
    let staged: HashSet<String> = staged_objects
        .iter()
        .map(|m| m.location.to_string())
        .collect();
    let mut rolled_forward = 0;
    let mut named = HashSet::new();
    for (_, c) in &commits {
        for f in &c.files {
            named.insert(f.staged.clone());
        }
        if c.files.iter().any(|f| staged.contains(&f.staged)) {
            rolled_forward += roll_forward(store, c, Some(&staged)).await?;
        }
    }
    let now = chrono::Utc::now();
    let mut orphans_deleted = 0;
    for m in &staged_objects {
        let name = m.location.to_string();
        let age = (now - m.last_modified).to_std().unwrap_or_default();
        if !named.contains(&name) && age > orphan_age {
            store.delete(&m.location).await?;
            orphans_deleted += 1;
        }
    }
    // What a local write killed mid-way left; listings never show it (see `storage`).
    for dir in [
        layout::staging_dir(topic, partition),
        layout::commits_dir(topic, partition),
    ] {
        orphans_deleted += store.sweep_interrupted_writes(&dir, orphan_age)?;
    }
    if commits.len() > KEEP_COMMITS {
        let cut = commits.len() - KEEP_COMMITS;
        for (meta, _) in &commits[..cut] {
            let age = (now - meta.last_modified).to_std().unwrap_or_default();
            if age > KEEP_YOUNGER_THAN {
                store.delete(&meta.location).await?;
            }
        }
    }
    let resume = commits.iter().map(|(_, c)| c.next()).max();
    if rolled_forward > 0 || orphans_deleted > 0 {
        tracing::info!(
            topic,
            partition,
            rolled_forward,
            orphans_deleted,
            "completed what an earlier writer left"
        );
    }
    Ok(Recovered {
        resume,
        rolled_forward,
        orphans_deleted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(hour: i64, first: i64, last: i64) -> EncodedFile {
        EncodedFile {
            hour,
            rows: (last - first + 1) as u64,
            offsets: Range { first, last },
            data: Bytes::from(format!("rows {first}..{last}")),
        }
    }

    fn unit(first: i64, last: i64, hours: &[i64]) -> Unit {
        Unit {
            topic: "t".into(),
            partition: 2,
            range: Range { first, last },
            files: hours.iter().map(|h| file(*h, first, last)).collect(),
            dead_letters: 0,
        }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap(), &[]).unwrap();
        (dir, store)
    }

    fn published(dir: &std::path::Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.to_string_lossy().ends_with(".parquet") {
                    out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        out
    }

    const AGE: Duration = Duration::from_secs(600);

    #[tokio::test]
    async fn a_unit_over_two_hours_is_published_whole_and_sets_the_resume_point() {
        let (dir, store) = store();
        assert_eq!(recover(&store, "t", 2, AGE).await.unwrap().resume, None);
        let out = publish(&store, &unit(0, 9, &[0, 1]), "w", AGE)
            .await
            .unwrap();
        assert!(matches!(out, Outcome::Committed(ref c) if c.next() == 10));
        assert_eq!(
            published(dir.path()),
            [
                "date=1970-01-01/hour=00/t-2-0-9.parquet",
                "date=1970-01-01/hour=01/t-2-0-9.parquet"
            ]
        );
        let r = recover(&store, "t", 2, AGE).await.unwrap();
        assert_eq!(r.resume, Some(10));
        assert!(
            store
                .list(&layout::staging_dir("t", 2))
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_second_writer_from_the_same_offset_is_fenced() {
        let (dir, store) = store();
        let first = publish(&store, &unit(0, 9, &[0]), "a", AGE).await.unwrap();
        assert!(matches!(first, Outcome::Committed(_)));
        let second = publish(&store, &unit(0, 5, &[3]), "b", AGE).await.unwrap();
        assert!(matches!(second, Outcome::Fenced));
        assert_eq!(
            published(dir.path()),
            ["date=1970-01-01/hour=00/t-2-0-9.parquet"]
        );
        // The fenced writer's staged file is gone too.
        assert!(
            store
                .list(&layout::staging_dir("t", 2))
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_retried_publish_of_the_same_unit_counts_as_committed() {
        let (dir, store) = store();
        let u = unit(0, 9, &[0]);
        assert!(matches!(
            publish(&store, &u, "a", AGE).await.unwrap(),
            Outcome::Committed(_)
        ));
        assert!(matches!(
            publish(&store, &u, "a", AGE).await.unwrap(),
            Outcome::Committed(_)
        ));
        assert_eq!(published(dir.path()).len(), 1);
    }

    #[tokio::test]
    async fn a_crash_after_the_commit_is_rolled_forward_on_recovery() {
        let (dir, store) = store();
        let u = unit(10, 19, &[0, 5]);
        // Steps 1 and 3 only, as if the writer died before publishing.
        let mut files = Vec::new();
        for f in &u.files {
            let staged = layout::staged_file("t", 2, u.range, "w", f.hour);
            store.put(&staged, f.data.clone()).await.unwrap();
            files.push(CommittedFile {
                staged: staged.to_string(),
                path: layout::data_file("t", 2, f.hour, f.offsets).to_string(),
                rows: f.rows,
                bytes: f.data.len() as u64,
            });
        }
        let c = Commit {
            topic: "t".into(),
            partition: 2,
            first: 10,
            last: 19,
            files,
            dead_letters: 0,
            writer: "w".into(),
            committed_at: String::new(),
        };
        let name = layout::commit_file("t", 2, 10);
        store
            .put(&name, serde_json::to_vec(&c).unwrap().into())
            .await
            .unwrap();
        assert!(published(dir.path()).is_empty());
        let r = recover(&store, "t", 2, AGE).await.unwrap();
        assert_eq!(r.resume, Some(20));
        assert_eq!(r.rolled_forward, 2);
        assert_eq!(published(dir.path()).len(), 2);
        let again = recover(&store, "t", 2, AGE).await.unwrap();
        assert_eq!(again.rolled_forward, 0);
    }

    #[tokio::test]
    async fn staged_files_without_a_commit_are_deleted_only_when_old() {
        let (dir, store) = store();
        let staged = layout::staged_file("t", 2, Range { first: 0, last: 9 }, "dead", 0);
        store.put(&staged, Bytes::from_static(b"x")).await.unwrap();
        let r = recover(&store, "t", 2, AGE).await.unwrap();
        assert_eq!(
            (r.resume, r.orphans_deleted),
            (None, 0),
            "young: maybe a live writer's"
        );
        let r = recover(&store, "t", 2, Duration::ZERO).await.unwrap();
        assert_eq!(r.orphans_deleted, 1);
        assert!(!store.exists(&staged).await.unwrap());
        assert!(published(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn a_local_write_killed_before_its_rename_is_deleted_only_when_old() {
        let (dir, store) = store();
        // What the local backend leaves when killed mid-`put` (staging) or mid-`create`
        // (commits): the temp file beside the name it was writing.
        let staged = layout::staged_file("t", 2, Range { first: 0, last: 9 }, "dead", 0);
        let commit = layout::commit_file("t", 2, 0);
        let temps: Vec<std::path::PathBuf> = [format!("{staged}#1"), format!("{commit}#2")]
            .iter()
            .map(|p| dir.path().join(p))
            .collect();
        for t in &temps {
            std::fs::create_dir_all(t.parent().unwrap()).unwrap();
            std::fs::write(t, b"half").unwrap();
        }
        assert!(
            store.list(&Path::from("")).await.unwrap().is_empty(),
            "listings never show them"
        );
        let r = recover(&store, "t", 2, AGE).await.unwrap();
        assert_eq!(r.orphans_deleted, 0, "young: maybe a live writer's");
        assert!(temps.iter().all(|t| t.exists()));
        let r = recover(&store, "t", 2, Duration::ZERO).await.unwrap();
        assert_eq!(r.orphans_deleted, 2);
        assert!(temps.iter().all(|t| !t.exists()), "{temps:?}");
        assert_eq!(r.resume, None);
    }

    #[tokio::test]
    async fn a_unit_of_dead_letters_only_still_moves_the_resume_point() {
        let (_dir, store) = store();
        let mut u = unit(0, 4, &[]);
        u.dead_letters = 5;
        assert!(matches!(
            publish(&store, &u, "w", AGE).await.unwrap(),
            Outcome::Committed(_)
        ));
        assert_eq!(recover(&store, "t", 2, AGE).await.unwrap().resume, Some(5));
    }

    #[tokio::test]
    async fn a_slow_stage_gives_the_unit_up() {
        let (dir, store) = store();
        let out = publish(&store, &unit(0, 9, &[0]), "w", Duration::ZERO)
            .await
            .unwrap();
        assert!(matches!(out, Outcome::Fenced));
        assert!(published(dir.path()).is_empty());
        assert_eq!(recover(&store, "t", 2, AGE).await.unwrap().resume, None);
    }

    #[tokio::test]
    async fn a_corrupt_commit_record_stops_recovery_with_its_name() {
        let (_dir, store) = store();
        let name = layout::commit_file("t", 2, 0);
        store
            .put(&name, Bytes::from_static(b"{not json"))
            .await
            .unwrap();
        let e = recover(&store, "t", 2, AGE).await.unwrap_err();
        assert!(format!("{e:#}").contains("corrupt"), "{e:#}");
    }
}
