//! Event Hubs Capture files: the archive Azure keeps of a hub, replayed (backfill).
//!
//! Capture writes one Avro file per Event Hubs partition and time window, by default at
//! `{Namespace}/{EventHub}/{PartitionId}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}.avro`
//! in a Blob container or an ADLS Gen2 file system. The source lists a local file or
//! directory tree, or a container and prefix through `object_store` (the archiver's Azure
//! settings: account key, SAS, Entra ID, the emulator), and reads the `*.avro` files in
//! Capture path order: path segments compared as numbers where both are numbers (`9` before
//! `10`), so that a partition's files come in time order and partitions one after another.
//! Each file is decoded as a stream (`avro`) on a blocking thread, a few events ahead of the
//! pipeline; each event's `Body` is one message.
//!
//! Positions. Each Capture file is a partition of the pipeline (named by its identity: a
//! local file's canonical path and inode, a blob's URL and ETag) and each event's number in
//! the file its position. Capture files are immutable once written, so the number of an event
//! never changes: with exactly-once delivery the number of the last event delivered is
//! committed in the positions topic with the records (as the `file` source commits its
//! byte), and a replay killed half-way skips, in each file, the events already delivered.
//! With at-least-once delivery a replay starts from the beginning; duplicate suppression and
//! the output's contract make that safe.
//!
//! Design note: a partition per file rather than per Event Hubs partition keeps a resume
//! point exact without knowing which files a partition's sequence numbers continue in (a
//! capture with gaps, or files deleted by a retention policy, would make that guesswork).
//! An event without a body (Capture writes `null`) goes on as an empty message, which the
//! core turns into a dead letter whose headers name the file and the event; a file that is
//! not an Avro Capture file, or is damaged, stops the source with an error that names it.

pub mod avro;
mod config;

pub use avro::{Event, EventBodies, Events, is_avro};
pub use config::{CaptureArgs, CaptureSettings};

use super::{Message, Source};
use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use mfagap_core::Source as Origin;
use mfagap_core::lenient::Text;
use mfagap_runtime::Property;
use mfagap_runtime::check::Check;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Events decoded ahead of the pipeline, per file (an event is at most 1 MB, 20 MB on a
/// Dedicated cluster).
const AHEAD: usize = 16;

/// The scope of capture positions in the positions topic: per set of output topics, as for
/// files.
pub fn positions_scope(output_topics: &str) -> String {
    format!("capture:{output_topics}")
}

/// Opens the location the settings name; files are listed when the first is read.
pub fn build(settings: &CaptureSettings) -> Result<CaptureSource> {
    CaptureSource::new(settings)
}

/// Where a Capture file resumes: after the event of this number (from 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resume {
    /// The number of the last event delivered.
    pub event: u64,
}

impl Resume {
    /// What a position record's `resume` says, if it is a Capture file's.
    pub fn from_json(v: &serde_json::Value) -> Option<Resume> {
        Some(Resume {
            event: v["event"].as_u64()?,
        })
    }
}

/// Where the Capture files are.
#[derive(Clone)]
enum Root {
    /// A file or a directory tree.
    Local(PathBuf),
    /// A container (or file system) and a prefix in it.
    Container {
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
        /// The location without the prefix: what a blob's name is appended to.
        base: String,
    },
}

/// One Capture file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CaptureFile {
    /// A path or URL: the output records' `source.file`.
    name: String,
    /// Its identity: the pipeline partition and the positions key.
    identity: String,
    /// What the default Capture layout says of it: (event hub, partition id).
    hub: Option<String>,
    partition: Option<String>,
    at: At,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum At {
    Local(PathBuf),
    Blob(ObjectPath),
}

/// What the reading thread of a file sends.
enum Item {
    Event(Event),
    /// The file was read to its end; how many events it holds.
    End(u64),
    Failed(anyhow::Error),
}

/// The file being read.
struct Current {
    file: CaptureFile,
    events: mpsc::Receiver<Item>,
}

/// The `capture` source.
pub struct CaptureSource {
    location: String,
    root: Root,
    /// Still to read, in Capture path order; `None` until listed.
    files: Option<VecDeque<CaptureFile>>,
    current: Option<Current>,
    /// Where each file (by identity) resumes, when exactly-once delivery committed one.
    resume: HashMap<String, Resume>,
}

impl CaptureSource {
    /// Opens the location: a local path must exist, a URL must name a container.
    pub fn new(settings: &CaptureSettings) -> Result<CaptureSource> {
        let location = settings.location.trim().to_owned();
        let root = open_root(&location, &settings.storage_options)?;
        Ok(CaptureSource {
            location,
            root,
            files: None,
            current: None,
            resume: HashMap::new(),
        })
    }

    /// The location as one stable string (a local root canonical): with the output topics,
    /// what the transactional id of a replay is made of, so that a second replay of the same
    /// capture fences the first however many files were added since.
    pub fn identity(&self) -> String {
        match &self.root {
            Root::Local(p) => std::fs::canonicalize(p)
                .map(|c| c.display().to_string())
                .unwrap_or_else(|_| p.display().to_string()),
            Root::Container { .. } => self.location.clone(),
        }
    }

    /// Resume points committed by an earlier run (by identity): each file is read from there.
    pub fn resume_from(&mut self, resume: HashMap<String, Resume>) {
        self.resume = resume;
    }

    /// The Capture files, in the order they are read: (name, identity).
    pub async fn list(&self) -> Result<Vec<(String, String)>> {
        Ok(list(&self.root, &self.location)
            .await?
            .into_iter()
            .map(|f| (f.name, f.identity))
            .collect())
    }

    /// Cancel-safe: the file list is kept once whole, a file is taken off it once open.
    async fn open_next(&mut self) -> Result<bool> {
        if self.files.is_none() {
            let files = list(&self.root, &self.location).await?;
            tracing::info!(location = %self.location, files = files.len(), "capture files to read");
            self.files = Some(files.into());
        }
        let files = self.files.as_mut().expect("listed above");
        let Some(file) = files.front().cloned() else {
            return Ok(false);
        };
        let reader: Box<dyn Read + Send> = match &file.at {
            At::Local(path) => Box::new(
                std::fs::File::open(path).with_context(|| format!("cannot read {}", file.name))?,
            ),
            At::Blob(path) => {
                let Root::Container { store, .. } = &self.root else {
                    bail!(
                        "{} is a blob, but {} is not a container",
                        file.name,
                        self.location
                    );
                };
                let got = store
                    .get(path)
                    .await
                    .with_context(|| format!("cannot read {}", file.name))?;
                let stream = got.into_stream().map_err(std::io::Error::other).boxed();
                Box::new(tokio_util::io::SyncIoBridge::new(
                    tokio_util::io::StreamReader::new(stream),
                ))
            }
        };
        let skip = self.resume.get(&file.identity).copied().unwrap_or_default();
        if skip.event > 0 {
            tracing::info!(file = %file.name, event = skip.event, "resuming where the last committed transaction ended");
        }
        let (tx, rx) = mpsc::channel(AHEAD);
        let name = file.name.clone();
        tokio::task::spawn_blocking(move || read_events(reader, &name, skip.event, &tx));
        files.pop_front();
        self.current = Some(Current { file, events: rx });
        Ok(true)
    }
}

/// Decodes one file, events after `skip` only, until its end or until the source is gone.
fn read_events(reader: Box<dyn Read + Send>, name: &str, skip: u64, tx: &mpsc::Sender<Item>) {
    let events = match Events::open(std::io::BufReader::with_capacity(1 << 16, reader), name) {
        Ok(events) => events,
        Err(e) => {
            let _ = tx.blocking_send(Item::Failed(e));
            return;
        }
    };
    let mut count = 0;
    for event in events {
        match event {
            Ok(e) => {
                count = e.index;
                if e.index > skip && tx.blocking_send(Item::Event(e)).is_err() {
                    return; // the source was dropped
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Item::Failed(e));
                return;
            }
        }
    }
    let _ = tx.blocking_send(Item::End(count));
}

#[async_trait::async_trait]
impl Source for CaptureSource {
    async fn next(&mut self) -> Result<Option<Message>> {
        loop {
            if self.current.is_none() && !self.open_next().await? {
                return Ok(None);
            }
            let c = self.current.as_mut().expect("opened above");
            match c.events.recv().await {
                Some(Item::Event(e)) => return Ok(Some(message(&c.file, e))),
                Some(Item::End(count)) => {
                    let skipped = self.resume.get(&c.file.identity).map_or(0, |r| r.event);
                    if skipped > count {
                        tracing::warn!(file = %c.file.name, events = count, committed = skipped, "the file holds fewer events than were committed from it");
                    }
                    tracing::debug!(file = %c.file.name, events = count, "capture file read");
                    self.current = None;
                }
                Some(Item::Failed(e)) => {
                    self.current = None;
                    return Err(e);
                }
                None => {
                    let name = c.file.name.clone();
                    self.current = None;
                    bail!("reading {name} stopped before its end");
                }
            }
        }
    }

    fn commit(&mut self, points: &[(String, i64)]) -> Result<()> {
        for (file, event) in points {
            tracing::debug!(%file, delivered_before_event = event, "capture position");
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        self.current = None; // its reading thread stops at its next event
        Ok(())
    }
}

/// An event as the pipeline's message: the body, and where it came from.
fn message(file: &CaptureFile, e: Event) -> Message {
    let text = |s: &str| Text(s.to_owned().into());
    Message {
        partition: file.identity.clone(),
        position: e.index as i64,
        origin: Origin {
            kind: text("capture"),
            event_hub: file.hub.as_deref().map(text),
            partition: file.partition.as_deref().map(text),
            offset: e.offset.as_deref().map(text),
            sequence_number: e.sequence_number,
            enqueued_time: e
                .enqueued_time_utc
                .as_deref()
                .and_then(|t| mfagap_core::timestamp::parse(t).ok()),
            file: Some(text(&file.name)),
            line: Some(e.index),
        },
        resume: Some(serde_json::json!({"event": e.index, "sequenceNumber": e.sequence_number})),
        body: e.body.unwrap_or_default(),
    }
}

/// A local path, `file://`, or an Azure container URL.
fn open_root(location: &str, options: &[Property]) -> Result<Root> {
    let url = url::Url::parse(location)
        .ok()
        .filter(|u| u.scheme().len() > 1);
    match url.as_ref().map(url::Url::scheme) {
        None | Some("file") => {
            let path = match &url {
                Some(u) => u
                    .to_file_path()
                    .map_err(|_| anyhow::anyhow!("not a local path: {location}"))?,
                None => PathBuf::from(location),
            };
            if !options.is_empty() {
                bail!("--capture-storage-option applies to a container, not to a local path");
            }
            std::fs::metadata(&path).with_context(|| format!("cannot read {location}"))?;
            Ok(Root::Local(path))
        }
        Some("az" | "abfs" | "abfss" | "azure" | "adl" | "https" | "http") => {
            let u = url.as_ref().expect("a URL");
            let store = super::azure_builder(location, options)?
                .build()
                .with_context(|| format!("cannot open the capture container {location}"))?;
            let prefix = prefix_of(u);
            let trimmed = location.split(['?', '#']).next().unwrap_or(location);
            let trimmed = trimmed.trim_end_matches('/');
            let base = trimmed
                .strip_suffix(prefix.as_ref())
                .unwrap_or(trimmed)
                .trim_end_matches('/')
                .to_owned();
            Ok(Root::Container {
                store: Arc::new(store),
                prefix,
                base,
            })
        }
        Some(other) => bail!(
            "--capture {location:?}: {other}:// is not a path or an Azure container (az://, abfss://, https://)"
        ),
    }
}

/// The path inside the container. For `https://account.blob.core.windows.net/c/p` the first
/// segment is the container, which the builder takes from the URL.
fn prefix_of(u: &url::Url) -> ObjectPath {
    let path = u.path().trim_start_matches('/');
    let path = match u.scheme() {
        "https" | "http" => path.split_once('/').map_or("", |(_, rest)| rest),
        _ => path,
    };
    ObjectPath::from(path.trim_end_matches('/'))
}

/// Every Capture file at the root, in Capture path order.
async fn list(root: &Root, location: &str) -> Result<Vec<CaptureFile>> {
    let (mut files, others) = match root {
        Root::Local(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || list_local(&path))
                .await
                .context("listing the capture files")??
        }
        Root::Container {
            store,
            prefix,
            base,
        } => list_container(store.as_ref(), prefix, base).await?,
    };
    if others > 0 {
        tracing::info!(%location, others, "objects not named *.avro are not read");
    }
    if files.is_empty() {
        bail!("no Event Hubs Capture files (*.avro) in {location}");
    }
    files.sort_by(|a, b| capture_order(&a.0, &b.0));
    Ok(files.into_iter().map(|(_, f)| f).collect())
}

/// (relative path to sort by, file) of every `*.avro` file, and how many other files there
/// were. A file named on its own is read whatever its name.
fn list_local(root: &Path) -> Result<(Vec<(String, CaptureFile)>, usize)> {
    let local = |path: PathBuf, rel: String| -> Result<(String, CaptureFile)> {
        let (hub, partition) = layout(&path.to_string_lossy());
        Ok((
            rel,
            CaptureFile {
                name: path.display().to_string(),
                identity: super::file::identity(&path)?,
                hub,
                partition,
                at: At::Local(path),
            },
        ))
    };
    let meta =
        std::fs::metadata(root).with_context(|| format!("cannot read {}", root.display()))?;
    if !meta.is_dir() {
        return Ok((vec![local(root.to_path_buf(), String::new())?], 0));
    }
    let (mut files, mut others) = (Vec::new(), 0);
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
        {
            let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .with_context(|| format!("cannot read {}", path.display()))?;
            let meta = std::fs::metadata(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            if kind.is_dir() {
                dirs.push(path);
            } else if meta.is_dir() {
                // A link to a directory is not followed: it could lead back up the tree.
                others += 1;
            } else if is_capture_name(&path.to_string_lossy()) {
                let rel = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .replace(std::path::MAIN_SEPARATOR, "/");
                files.push(local(path, rel)?);
            } else {
                others += 1;
            }
        }
    }
    Ok((files, others))
}

async fn list_container(
    store: &dyn ObjectStore,
    prefix: &ObjectPath,
    base: &str,
) -> Result<(Vec<(String, CaptureFile)>, usize)> {
    let prefix_opt = (!prefix.as_ref().is_empty()).then_some(prefix);
    let mut objects: Vec<object_store::ObjectMeta> = store
        .list(prefix_opt)
        .try_collect()
        .await
        .with_context(|| format!("cannot list {base}/{prefix}"))?;
    if objects.is_empty() && prefix_opt.is_some() {
        // The prefix may name one blob.
        match store.head(prefix).await {
            Ok(meta) => objects.push(meta),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {base}/{prefix}")),
        }
    }
    let single = objects.len() == 1 && objects[0].location == *prefix;
    let (mut files, mut others) = (Vec::new(), 0);
    for o in objects {
        let key = o.location.as_ref();
        if !single && !is_capture_name(key) {
            others += 1;
            continue;
        }
        let name = format!("{base}/{key}");
        let version = o
            .e_tag
            .clone()
            .unwrap_or_else(|| o.last_modified.to_rfc3339());
        let rel = key
            .strip_prefix(prefix.as_ref())
            .unwrap_or(key)
            .trim_start_matches('/')
            .to_owned();
        let (hub, partition) = layout(key);
        files.push((
            rel,
            CaptureFile {
                identity: format!("{name}#{version}"),
                name,
                hub,
                partition,
                at: At::Blob(o.location),
            },
        ));
    }
    Ok((files, others))
}

fn is_capture_name(path: &str) -> bool {
    path.len() > 5 && path[path.len() - 5..].eq_ignore_ascii_case(".avro")
}

/// The event hub and partition id of a file named as Capture names it by default,
/// `…/{Namespace}/{EventHub}/{PartitionId}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}.avro`;
/// nothing for any other name (a custom name format).
fn layout(path: &str) -> (Option<String>, Option<String>) {
    let segments: Vec<&str> = path.split(['/', '\\']).collect();
    let n = segments.len();
    if n < 9 {
        return (None, None);
    }
    let digits = |s: &str, min: usize, max: usize| {
        (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    let second = segments[n - 1];
    let second = second.get(..second.len().saturating_sub(5)).unwrap_or("");
    let time = &segments[n - 6..n - 1];
    let dated = digits(time[0], 4, 4)
        && time[1..].iter().all(|s| digits(s, 1, 2))
        && digits(second, 1, 2)
        && is_capture_name(segments[n - 1]);
    let (hub, partition) = (segments[n - 8], segments[n - 7]);
    if dated && !hub.is_empty() && !partition.is_empty() {
        (Some(hub.to_owned()), Some(partition.to_owned()))
    } else {
        (None, None)
    }
}

/// Capture path order: segment by segment, numbers as numbers (`9` before `10`, `05.avro`
/// before `45.avro`), anything else byte by byte.
pub fn capture_order(a: &str, b: &str) -> Ordering {
    let mut a_segments = a.split('/');
    let mut b_segments = b.split('/');
    loop {
        match (a_segments.next(), b_segments.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match segment_order(x, y) {
                Ordering::Equal => {}
                other => return other,
            },
        }
    }
}

fn segment_order(a: &str, b: &str) -> Ordering {
    fn split(s: &str) -> (&str, &str) {
        s.split_at(s.bytes().take_while(u8::is_ascii_digit).count())
    }
    let ((da, ra), (db, rb)) = (split(a), split(b));
    if da.is_empty() || db.is_empty() {
        return a.cmp(b);
    }
    let (na, nb) = (da.trim_start_matches('0'), db.trim_start_matches('0'));
    na.len()
        .cmp(&nb.len())
        .then_with(|| na.cmp(nb))
        .then_with(|| ra.cmp(rb))
        .then_with(|| a.cmp(b))
}

/// Preflight (`mfagap check`): the location lists, and holds Capture files.
pub async fn check(settings: &CaptureSettings, timeout: Duration) -> Vec<Check> {
    let part = format!("capture {}", settings.location);
    let fix = "check --capture, and for a container its storage options and the identity's read and list permissions";
    let listed = async {
        let source = CaptureSource::new(settings)?;
        source.list().await
    };
    let check = match tokio::time::timeout(timeout, listed).await {
        Ok(Ok(files)) => Check::ok(
            part,
            format!(
                "{} Capture files, the first {}",
                files.len(),
                files.first().map_or("", |(name, _)| name.as_str())
            ),
        ),
        Ok(Err(e)) => Check::failed(part, format!("{e:#}"), fix),
        Err(_) => Check::failed(part, format!("no answer within {timeout:?}"), fix),
    };
    vec![check]
}

#[cfg(test)]
mod tests {
    use super::avro::tests::capture_file;
    use super::*;
    use apache_avro::Codec;

    fn settings(location: &Path) -> CaptureSettings {
        CaptureSettings {
            location: location.display().to_string(),
            storage_options: Vec::new(),
        }
    }

    fn write(root: &Path, rel: &str, data: &[u8]) -> PathBuf {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
        path
    }

    async fn drain(s: &mut CaptureSource) -> Vec<Message> {
        let mut got = Vec::new();
        while let Some(m) = s.next().await.unwrap() {
            got.push(m);
        }
        got
    }

    #[test]
    fn capture_paths_sort_numbers_as_numbers() {
        let mut paths = vec![
            "ns/hub/10/2026/11/29/07/00/00.avro",
            "ns/hub/9/2026/11/29/10/00/00.avro",
            "ns/hub/9/2026/11/29/9/00/00.avro",
            "ns/hub/9/2026/11/29/09/00/45.avro",
            "ns/hub/9/2026/11/29/09/00/5.avro",
            "ns/hub/2/2026/12/01/00/00/00.avro",
            "ns/hub/2/2026/2/01/00/00/00.avro",
            "a-hub/x.avro",
        ];
        paths.sort_by(|a, b| capture_order(a, b));
        assert_eq!(
            paths,
            [
                "a-hub/x.avro",
                "ns/hub/2/2026/2/01/00/00/00.avro",
                "ns/hub/2/2026/12/01/00/00/00.avro",
                "ns/hub/9/2026/11/29/09/00/5.avro",
                "ns/hub/9/2026/11/29/09/00/45.avro",
                "ns/hub/9/2026/11/29/9/00/00.avro",
                "ns/hub/9/2026/11/29/10/00/00.avro",
                "ns/hub/10/2026/11/29/07/00/00.avro",
            ]
        );
    }

    #[test]
    fn the_default_layout_names_the_hub_and_partition() {
        assert_eq!(
            layout("az://c/prefix/myns/signins/3/2026/11/29/07/05/00.avro"),
            (Some("signins".into()), Some("3".into()))
        );
        assert_eq!(
            layout("/data/ns/hub/0/2026/1/2/3/4/5.avro"),
            (Some("hub".into()), Some("0".into()))
        );
        assert_eq!(layout("/data/export/part-0001.avro"), (None, None));
        assert_eq!(
            layout("ns/hub/0/26/11/29/07/05/00.avro"),
            (None, None),
            "a two-digit year is not Capture's"
        );
    }

    #[tokio::test]
    async fn a_directory_tree_is_read_in_capture_order_with_sources() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("capture");
        let codec = Codec::Deflate(Default::default());
        write(
            &root,
            "ns/signins/1/2026/11/29/10/00/00.avro",
            &capture_file(&[Some(b"p1-h10")], 300, codec),
        );
        write(
            &root,
            "ns/signins/0/2026/11/29/9/05/00.avro",
            &capture_file(&[Some(b"p0-h9-a"), Some(b"p0-h9-b")], 10, codec),
        );
        write(
            &root,
            "ns/signins/0/2026/11/29/10/00/00.avro",
            &capture_file(&[None, Some(b"p0-h10")], 12, codec),
        );
        write(
            &root,
            "ns/signins/0/2026/11/29/10/00/notes.txt",
            b"not capture",
        );
        let mut s = build(&settings(&root)).unwrap();
        let got = drain(&mut s).await;
        let bodies: Vec<&[u8]> = got.iter().map(|m| m.body.as_slice()).collect();
        assert_eq!(
            bodies,
            [&b"p0-h9-a"[..], b"p0-h9-b", b"", b"p0-h10", b"p1-h10"]
        );
        let first = &got[0];
        assert_eq!(first.origin.kind.as_str(), "capture");
        assert_eq!(first.origin.event_hub.as_ref().unwrap().as_str(), "signins");
        assert_eq!(first.origin.partition.as_ref().unwrap().as_str(), "0");
        assert_eq!(first.origin.sequence_number, Some(10));
        assert_eq!(first.origin.offset.as_ref().unwrap().as_str(), "40960");
        assert_eq!(
            first.origin.enqueued_time,
            Some(mfagap_core::timestamp::parse("2025-11-14T01:48:53Z").unwrap())
        );
        assert!(
            first
                .origin
                .file
                .as_ref()
                .unwrap()
                .as_str()
                .ends_with("ns/signins/0/2026/11/29/9/05/00.avro")
        );
        assert_eq!((first.position, first.origin.line), (1, Some(1)));
        assert_eq!(
            (got[2].position, got[2].origin.sequence_number),
            (1, Some(12)),
            "an event without a body is an empty message"
        );
        assert_eq!(
            got[1].resume,
            Some(serde_json::json!({"event": 2, "sequenceNumber": 11}))
        );
        assert_ne!(got[0].partition, got[2].partition, "a partition per file");
    }

    #[tokio::test]
    async fn a_resume_point_skips_the_events_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "one.avro",
            &capture_file(&[Some(b"a"), Some(b"b"), Some(b"c")], 0, Codec::Null),
        );
        let mut first = build(&settings(&file)).unwrap();
        let a = first.next().await.unwrap().unwrap();
        let b = first.next().await.unwrap().unwrap();
        let mut again = build(&settings(&file)).unwrap();
        again.resume_from(
            [(
                a.partition.clone(),
                Resume::from_json(b.resume.as_ref().unwrap()).unwrap(),
            )]
            .into(),
        );
        let rest = drain(&mut again).await;
        assert_eq!(rest.len(), 1);
        assert_eq!((rest[0].body.as_slice(), rest[0].position), (&b"c"[..], 3));
    }

    #[tokio::test]
    async fn a_damaged_file_stops_the_source_with_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut good = capture_file(&[Some(b"a"), Some(b"b")], 0, Codec::Null);
        write(dir.path(), "ns/h/0/2026/01/01/00/00/00.avro", &good);
        good.truncate(good.len() - 10);
        write(dir.path(), "ns/h/0/2026/01/01/00/05/00.avro", &good);
        let mut s = build(&settings(dir.path())).unwrap();
        let mut bodies = Vec::new();
        let e = loop {
            match s.next().await {
                Ok(Some(m)) => bodies.push(m.body),
                Ok(None) => panic!("the damage went unnoticed"),
                Err(e) => break e,
            }
        };
        assert_eq!(
            bodies,
            [b"a".to_vec(), b"b".to_vec()],
            "the whole file before the damaged one"
        );
        assert!(
            format!("{e:#}").contains("00/05/00.avro is damaged"),
            "{e:#}"
        );

        write(dir.path(), "plain/x.avro", b"{\"records\":[]}\n");
        let mut s = build(&settings(&dir.path().join("plain"))).unwrap();
        let e = s.next().await.unwrap_err();
        assert!(
            format!("{e:#}").contains("x.avro is not an Avro file"),
            "{e:#}"
        );
    }

    #[tokio::test]
    async fn an_empty_location_and_a_missing_one_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = build(&settings(dir.path())).unwrap();
        let e = s.next().await.unwrap_err();
        assert!(
            format!("{e:#}").contains("no Event Hubs Capture files"),
            "{e:#}"
        );
        assert!(build(&settings(&dir.path().join("nope"))).is_err());
        let e = CaptureSource::new(&CaptureSettings {
            location: "s3://bucket/x".into(),
            storage_options: Vec::new(),
        })
        .err()
        .unwrap();
        assert!(
            format!("{e:#}").contains("not a path or an Azure container"),
            "{e:#}"
        );
    }

    #[test]
    fn a_container_url_keeps_its_prefix_and_names_blobs_by_url() {
        for (url, prefix, base) in [
            ("az://capture/prod/", "prod", "az://capture"),
            (
                "abfss://capture@acct.dfs.core.windows.net/a/b",
                "a/b",
                "abfss://capture@acct.dfs.core.windows.net",
            ),
            (
                "https://acct.blob.core.windows.net/capture/ns",
                "ns",
                "https://acct.blob.core.windows.net/capture",
            ),
            ("az://capture", "", "az://capture"),
        ] {
            let opts: Vec<Property> = vec![
                "azure_storage_account_name=acct".parse().unwrap(),
                "azure_storage_account_key=a2V5".parse().unwrap(),
            ];
            match open_root(url, &opts).unwrap() {
                Root::Container {
                    prefix: p, base: b, ..
                } => {
                    assert_eq!((p.as_ref(), b.as_str()), (prefix, base), "{url}");
                }
                Root::Local(_) => panic!("{url} is a container"),
            }
        }
    }
}
