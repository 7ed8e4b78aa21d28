//! Files or standard input: backfill and replay.
//!
//! A file is JSON Lines (a message body per line) or one JSON document (an array, a
//! `{"records":[…]}` envelope or a Microsoft Graph page, each element a message body), plain,
//! gzip or zstd: `mfagap_core::framing` reads it, as it does for `mfagap filter`, on a thread
//! of its own a few bodies ahead of the pipeline. A body over `--max-message-bytes` is not
//! held: the framing keeps its first bytes and its size, and the pipeline makes it a dead
//! letter `too_large` ([`Source::problem`]).
//!
//! Each file is a partition (named by its identity: canonical path and inode) and each body a
//! position (its line number, or its element number in a document). A file has nowhere to
//! keep a resume point of its own: with at-least-once delivery a replay starts from the
//! beginning, and duplicate suppression and the output's contract make that safe; with
//! exactly-once delivery the position (the byte after the last body delivered and, in a
//! document, the array the scanner is in) is committed in the positions topic with the
//! records, and a run killed half-way resumes there. Bytes count the decompressed stream: a
//! compressed file resumes by decompressing it again and skipping them.

mod config;

pub use config::{FileArgs, FileSettings};

use super::{Message, Source};
use anyhow::{Context, Result};
use mfagap_core::Source as Origin;
use mfagap_core::framing::{self, Framer, Layout, Nesting, Problem};
use mfagap_core::lenient::Text;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// Batches of bodies read ahead of the pipeline, per file.
const AHEAD: usize = 2;

/// Bytes of bodies in one batch, about (one body more than this at most).
const BATCH_BYTES: usize = 1 << 20;

/// The scope of file positions in the positions topic: per set of output topics, so that the
/// same file sent elsewhere is read from its start, as a new pipeline would read it.
pub fn positions_scope(output_topics: &str) -> String {
    format!("file:{output_topics}")
}

/// Opens the files the settings name (standard input when none).
pub fn build(settings: &FileSettings) -> Result<FileSource> {
    let mut s = FileSource::new(settings.inputs.clone())?;
    s.max_message_bytes = settings.max_message_bytes;
    Ok(s)
}

/// Where a file resumes: right after the last body delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume(pub framing::Resume);

impl Resume {
    /// What a position record's `resume` says, if it is a file's: JSON Lines `{"byte",
    /// "line"}` (the line delivered last), a document `{"byte", "line", "element", "in"}`
    /// (lines before the byte, the element delivered last, and the brackets open there: `[`
    /// or `{[`).
    pub fn from_json(v: &serde_json::Value) -> Option<Resume> {
        let byte = v["byte"].as_u64()?;
        let line = v["line"].as_u64()?;
        Some(Resume(match v.get("in") {
            None => framing::Resume {
                byte,
                line,
                index: line,
                layout: Layout::Lines,
            },
            Some(n) => framing::Resume {
                byte,
                line,
                index: v["element"].as_u64()?,
                layout: Layout::Document(Nesting::parse(n.as_str()?)?),
            },
        }))
    }

    /// The resume point as [`Resume::from_json`] reads it.
    pub fn to_json(&self) -> serde_json::Value {
        let r = &self.0;
        match r.layout {
            Layout::Lines => serde_json::json!({"byte": r.byte, "line": r.index}),
            Layout::Document(n) => serde_json::json!({
                "byte": r.byte,
                "line": r.line,
                "element": r.index,
                "in": n.as_str(),
            }),
        }
    }
}

/// The `file` source.
pub struct FileSource {
    /// Still to read, last first: the path and its identity.
    inputs: Vec<(PathBuf, String)>,
    current: Option<Current>,
    /// Where each file (by identity) resumes, when exactly-once delivery committed one.
    resume: HashMap<String, Resume>,
    max_message_bytes: usize,
    /// The problem of the body `next` returned last.
    problem: Option<Problem>,
}

/// The file being read.
struct Current {
    /// As the operator named it: the output records' `source.file`.
    name: String,
    /// Its identity: the pipeline partition and the positions key.
    identity: String,
    /// Batches of bodies from the reading thread; closed at the end of the file.
    rx: mpsc::Receiver<Result<Vec<Body>>>,
    /// The batch being handed out.
    ready: VecDeque<Body>,
}

/// One body, owned, as the reading thread sends it.
struct Body {
    bytes: Vec<u8>,
    problem: Option<Problem>,
    start: u64,
    line: u64,
    index: u64,
    resume: framing::Resume,
}

/// A file's identity: its canonical path and its inode, so that a file replaced under the
/// same name is a new file. Standard input is `-`.
pub fn identity(path: &Path) -> Result<String> {
    if path.as_os_str() == "-" {
        return Ok("-".to_owned());
    }
    let canonical =
        std::fs::canonicalize(path).with_context(|| format!("cannot read {}", path.display()))?;
    let meta =
        std::fs::metadata(&canonical).with_context(|| format!("cannot read {}", path.display()))?;
    #[cfg(unix)]
    let inode = {
        use std::os::unix::fs::MetadataExt;
        format!("{}:{}", meta.dev(), meta.ino())
    };
    #[cfg(not(unix))]
    let inode = String::from("0:0");
    Ok(format!("{}#{inode}", canonical.display()))
}

impl FileSource {
    /// Checks that every input can be opened before anything is read.
    pub fn new(inputs: Vec<PathBuf>) -> Result<FileSource> {
        let inputs = if inputs.is_empty() {
            vec![PathBuf::from("-")]
        } else {
            inputs
        };
        let mut named = Vec::with_capacity(inputs.len());
        for p in &inputs {
            if p.as_os_str() != "-" {
                let meta =
                    std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
                anyhow::ensure!(
                    !meta.is_dir(),
                    "cannot read {}: it is a directory",
                    p.display()
                );
            }
            named.push((p.clone(), identity(p)?));
        }
        named.reverse(); // popped from the end
        Ok(FileSource {
            inputs: named,
            current: None,
            resume: HashMap::new(),
            max_message_bytes: framing::DEFAULT_MAX_MESSAGE_BYTES,
            problem: None,
        })
    }

    /// The identities of the inputs, in order: what a run's transactional id is made of.
    pub fn identities(&self) -> Vec<String> {
        self.inputs.iter().rev().map(|(_, i)| i.clone()).collect()
    }

    /// Resume points committed by an earlier run (by identity): each file is read from there.
    pub fn resume_from(&mut self, resume: HashMap<String, Resume>) {
        self.resume = resume;
    }

    /// Starts reading the next input on a thread of its own; false when none is left.
    fn open_next(&mut self) -> bool {
        let Some((path, identity)) = self.inputs.pop() else {
            return false;
        };
        let start = self.resume.get(&identity).map(|r| r.0);
        let name = if path.as_os_str() == "-" {
            "-".to_owned()
        } else {
            path.display().to_string()
        };
        if let Some(r) = &start {
            tracing::info!(file = %name, byte = r.byte, line = r.line, index = r.index, "resuming where the last committed transaction ended");
        }
        let (tx, rx) = mpsc::channel(AHEAD);
        let max = self.max_message_bytes;
        let thread_name = name.clone();
        // A plain thread, not the runtime's blocking pool: one blocked on standard input does
        // not hold the runtime's shutdown; it ends when its receiver is gone.
        let spawned = std::thread::Builder::new()
            .name("file-reader".into())
            .spawn(move || read_file(&path, &thread_name, start, max, &tx));
        if let Err(e) = spawned {
            let (tx, rx_err) = mpsc::channel(1);
            let _ = tx.try_send(Err(
                anyhow::Error::new(e).context("cannot start a reading thread")
            ));
            self.current = Some(Current {
                name,
                identity,
                rx: rx_err,
                ready: VecDeque::new(),
            });
            return true;
        }
        self.current = Some(Current {
            name,
            identity,
            rx,
            ready: VecDeque::new(),
        });
        true
    }
}

/// The bodies read and not yet handed to the source.
#[derive(Default)]
struct Batch {
    bodies: Vec<Body>,
    bytes: usize,
}

/// Standard input may pause with whole bodies read and batched: they are handed out before
/// each read that may block, so a body never waits for more input to come.
struct HandOutBeforeRead<R> {
    inner: R,
    batch: std::sync::Arc<std::sync::Mutex<Batch>>,
    tx: mpsc::Sender<Result<Vec<Body>>>,
}

impl<R: std::io::Read> std::io::Read for HandOutBeforeRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let bodies = std::mem::take(&mut *self.batch.lock().expect("not poisoned")).bodies;
        if !bodies.is_empty() && self.tx.blocking_send(Ok(bodies)).is_err() {
            return Ok(0); // the source is gone: read no more
        }
        self.inner.read(buf)
    }
}

/// Reads one file to its end (or until the source is gone), in batches of bodies.
fn read_file(
    path: &Path,
    name: &str,
    start: Option<framing::Resume>,
    max: usize,
    tx: &mpsc::Sender<Result<Vec<Body>>>,
) {
    let batch = std::sync::Arc::new(std::sync::Mutex::new(Batch::default()));
    let opened = if path.as_os_str() == "-" {
        let stdin = HandOutBeforeRead {
            inner: std::io::stdin(),
            batch: batch.clone(),
            tx: tx.clone(),
        };
        framing::decompress(std::io::BufReader::with_capacity(1 << 20, stdin)).map(|(r, _)| r)
    } else {
        framing::open(path, start.as_ref()).map(|(r, _)| r)
    };
    let reader = match opened {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.blocking_send(Err(anyhow::Error::new(e).context(format!(
                "cannot read {name}{}",
                start.map_or(String::new(), |r| format!(" from byte {}", r.byte))
            ))));
            return;
        }
    };
    let mut framer = match start {
        // Standard input cannot be skipped to a byte: it is read from where it is.
        Some(r) if path.as_os_str() != "-" => Framer::resume(reader, max, &r),
        _ => Framer::new(reader, max),
    };
    let take = || std::mem::take(&mut *batch.lock().expect("not poisoned")).bodies;
    loop {
        match framer.next() {
            Ok(Some(f)) => {
                let full = {
                    let mut b = batch.lock().expect("not poisoned");
                    b.bytes += f.body.len();
                    b.bodies.push(Body {
                        bytes: f.body.to_vec(),
                        problem: f.problem,
                        start: f.start,
                        line: f.line,
                        index: f.index,
                        resume: f.resume,
                    });
                    b.bytes >= BATCH_BYTES || b.bodies.len() >= 1024
                };
                if full && tx.blocking_send(Ok(take())).is_err() {
                    return; // the source is gone
                }
            }
            Ok(None) => {
                let rest = take();
                if !rest.is_empty() {
                    let _ = tx.blocking_send(Ok(rest));
                }
                return;
            }
            Err(e) => {
                let rest = take();
                if !rest.is_empty() && tx.blocking_send(Ok(rest)).is_err() {
                    return;
                }
                let _ = tx.blocking_send(Err(
                    anyhow::Error::new(e).context(format!("cannot read {name}"))
                ));
                return;
            }
        }
    }
}

#[async_trait::async_trait]
impl Source for FileSource {
    async fn next(&mut self) -> Result<Option<Message>> {
        self.problem = None;
        loop {
            if self.current.is_none() && !self.open_next() {
                return Ok(None);
            }
            let c = self.current.as_mut().expect("opened above");
            let Some(b) = c.ready.pop_front() else {
                // Cancel-safe: a batch is either received whole or left in the channel.
                match c.rx.recv().await {
                    Some(batch) => c.ready.extend(batch?),
                    None => self.current = None,
                }
                continue;
            };
            let document = matches!(b.resume.layout, Layout::Document(_));
            self.problem = b.problem;
            return Ok(Some(Message {
                body: b.bytes,
                partition: c.identity.clone(),
                position: b.index as i64,
                origin: Origin {
                    kind: Text("file".into()),
                    file: Some(Text(c.name.clone().into())),
                    line: Some(b.line),
                    // In a document the line does not tell one element from the next.
                    offset: document.then(|| Text(b.start.to_string().into())),
                    ..Origin::default()
                },
                resume: Some(Resume(b.resume).to_json()),
            }));
        }
    }

    fn problem(&mut self) -> Option<Problem> {
        self.problem.take()
    }

    fn commit(&mut self, points: &[(String, i64)]) -> Result<()> {
        for (file, position) in points {
            tracing::debug!(%file, delivered_before = position, "file position");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_become_messages_with_their_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.jsonl");
        std::fs::write(&a, "{\"records\":[]}\r\n\n  \n[1]\nlast-without-newline").unwrap();
        let mut s = FileSource::new(vec![a.clone()]).unwrap();
        let mut got = Vec::new();
        while let Some(m) = s.next().await.unwrap() {
            got.push((
                String::from_utf8(m.body).unwrap(),
                m.position,
                m.origin.line,
            ));
        }
        assert_eq!(
            got,
            vec![
                ("{\"records\":[]}".to_owned(), 1, Some(1)),
                ("[1]".to_owned(), 4, Some(4)),
                ("last-without-newline".to_owned(), 5, Some(5)),
            ]
        );
    }

    #[tokio::test]
    async fn a_resume_point_skips_the_lines_delivered_and_counts_on() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.jsonl");
        std::fs::write(&a, "one\ntwo\r\nthree\n").unwrap();
        let mut first = FileSource::new(vec![a.clone()]).unwrap();
        let one = first.next().await.unwrap().unwrap();
        let two = first.next().await.unwrap().unwrap();
        assert_eq!(
            two.resume,
            Some(serde_json::json!({"byte": 9, "line": 2})),
            "the byte after the line, its \\r\\n included"
        );
        assert_eq!(one.partition, identity(&a).unwrap());
        let mut again = FileSource::new(vec![a.clone()]).unwrap();
        let resume = Resume::from_json(two.resume.as_ref().unwrap()).unwrap();
        again.resume_from([(two.partition.clone(), resume)].into());
        let three = again.next().await.unwrap().unwrap();
        assert_eq!((three.body.as_slice(), three.position), (&b"three"[..], 3));
        assert!(again.next().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_gzip_document_gives_its_elements_and_resumes_inside_its_array() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("page.json.gz");
        let doc = "{\n  \"@odata.context\": \"x\",\n  \"value\": [\n    {\"id\": \"1\"},\n    {\"id\": \"2\"},\n    {\"id\": \"3\"}\n  ]\n}\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(doc.as_bytes()).unwrap();
        std::fs::write(&a, gz.finish().unwrap()).unwrap();
        let mut first = FileSource::new(vec![a.clone()]).unwrap();
        let one = first.next().await.unwrap().unwrap();
        assert_eq!(
            (one.body.as_slice(), one.position),
            (&b"{\"id\": \"1\"}"[..], 1)
        );
        assert_eq!(one.origin.line, Some(4));
        assert_eq!(one.origin.offset.as_ref().map(|t| t.as_str()), Some("44"));
        let two = first.next().await.unwrap().unwrap();
        assert_eq!(
            two.resume,
            Some(serde_json::json!({"byte": 72, "line": 4, "element": 2, "in": "{["}))
        );
        let mut again = FileSource::new(vec![a.clone()]).unwrap();
        let resume = Resume::from_json(two.resume.as_ref().unwrap()).unwrap();
        again.resume_from([(two.partition.clone(), resume)].into());
        let three = again.next().await.unwrap().unwrap();
        assert_eq!(
            (three.body.as_slice(), three.position),
            (&b"{\"id\": \"3\"}"[..], 3)
        );
        assert_eq!(three.origin.line, Some(6));
        assert!(again.next().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_line_over_the_largest_size_is_cut_and_named_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.jsonl");
        std::fs::write(&a, format!("one\n{}\nthree\n", "x".repeat(300))).unwrap();
        let mut s = build(&FileSettings {
            inputs: vec![a],
            max_message_bytes: 100,
        })
        .unwrap();
        assert_eq!(s.next().await.unwrap().unwrap().body, b"one");
        assert_eq!(s.problem(), None);
        let big = s.next().await.unwrap().unwrap();
        assert_eq!(big.body.len(), 100);
        assert_eq!(
            s.problem(),
            Some(Problem::TooLarge {
                size: 300,
                max: 100
            })
        );
        let three = s.next().await.unwrap().unwrap();
        assert_eq!((three.body.as_slice(), s.problem()), (&b"three"[..], None));
    }

    #[test]
    fn a_replaced_file_is_another_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.jsonl");
        std::fs::write(&a, "one\n").unwrap();
        let before = identity(&a).unwrap();
        std::fs::remove_file(&a).unwrap();
        std::fs::write(dir.path().join("other"), "x").unwrap();
        std::fs::write(&a, "one\n").unwrap();
        assert_ne!(identity(&a).unwrap(), before);
    }

    #[test]
    fn a_missing_file_fails_before_reading() {
        let e = FileSource::new(vec!["/no/such/file.jsonl".into()])
            .err()
            .unwrap();
        assert!(format!("{e:#}").contains("/no/such/file.jsonl"));
    }
}
