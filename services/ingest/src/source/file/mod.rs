//! JSON Lines files or standard input: backfill and replay.
//!
//! Each file is a partition (named by its identity: canonical path and inode) and each line a
//! position. A file has nowhere to keep a resume point of its own: with at-least-once
//! delivery a replay starts from the beginning, and duplicate suppression and the output's
//! contract make that safe; with exactly-once delivery the position (the byte after the last
//! line delivered) is committed in the positions topic with the records, and a run killed
//! half-way resumes there.

mod config;

pub use config::{FileArgs, FileSettings};

use super::{Message, Source};
use anyhow::{Context, Result};
use mfagap_core::Source as Origin;
use mfagap_core::lenient::Text;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// The scope of file positions in the positions topic: per set of output topics, so that the
/// same file sent elsewhere is read from its start, as a new pipeline would read it.
pub fn positions_scope(output_topics: &str) -> String {
    format!("file:{output_topics}")
}

/// Opens the files the settings name (standard input when none).
pub fn build(settings: &FileSettings) -> Result<FileSource> {
    FileSource::new(settings.inputs.clone())
}

/// Where a file resumes: the byte after the last line delivered, and that line's number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resume {
    /// The byte after the last line delivered.
    pub byte: u64,
    /// That line's number (1-based), so that numbering goes on where it stopped.
    pub line: i64,
}

impl Resume {
    /// What a position record's `resume` says, if it is a file's.
    pub fn from_json(v: &serde_json::Value) -> Option<Resume> {
        Some(Resume {
            byte: v["byte"].as_u64()?,
            line: v["line"].as_i64()?,
        })
    }
}

/// The `file` source.
pub struct FileSource {
    /// Still to read, last first: the path and its identity.
    inputs: Vec<(PathBuf, String)>,
    current: Option<Current>,
    buf: Vec<u8>,
    /// Where each file (by identity) resumes, when exactly-once delivery committed one.
    resume: HashMap<String, Resume>,
}

/// The file being read.
struct Current {
    /// As the operator named it: the output records' `source.file`.
    name: String,
    /// Its identity: the pipeline partition and the positions key.
    identity: String,
    reader: BufReader<Box<dyn AsyncRead + Send + Unpin>>,
    line: i64,
    /// Bytes of the file taken so far (whole lines).
    byte: u64,
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
            buf: Vec::new(),
            resume: HashMap::new(),
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

    /// Cancel-safe: the input is taken off the list only once it is open.
    async fn open_next(&mut self) -> Result<bool> {
        let Some((path, identity)) = self.inputs.last().cloned() else {
            return Ok(false);
        };
        let start = self.resume.get(&identity).copied().unwrap_or_default();
        let (name, reader): (String, Box<dyn AsyncRead + Send + Unpin>) = if path.as_os_str() == "-"
        {
            ("-".into(), Box::new(tokio::io::stdin()))
        } else {
            let mut f = tokio::fs::File::open(&path)
                .await
                .with_context(|| format!("cannot read {}", path.display()))?;
            if start.byte > 0 {
                use tokio::io::AsyncSeekExt;
                f.seek(std::io::SeekFrom::Start(start.byte))
                    .await
                    .with_context(|| {
                        format!("cannot resume {} at byte {}", path.display(), start.byte)
                    })?;
                tracing::info!(file = %path.display(), byte = start.byte, line = start.line, "resuming where the last committed transaction ended");
            }
            (path.display().to_string(), Box::new(f))
        };
        self.inputs.pop();
        self.current = Some(Current {
            name,
            identity,
            reader: BufReader::with_capacity(1 << 20, reader),
            line: start.line,
            byte: start.byte,
        });
        Ok(true)
    }
}

#[async_trait::async_trait]
impl Source for FileSource {
    async fn next(&mut self) -> Result<Option<Message>> {
        loop {
            if self.current.is_none() && !self.open_next().await? {
                return Ok(None);
            }
            let c = self.current.as_mut().expect("opened above");
            // Cancel-safe: a line cut short by a cancelled read stays in `buf` and the next
            // call completes it; `buf` is emptied only when a whole line is taken.
            let n = c
                .reader
                .read_until(b'\n', &mut self.buf)
                .await
                .with_context(|| format!("cannot read {}", c.name))?;
            if n == 0 && self.buf.is_empty() {
                self.current = None;
                continue;
            }
            c.line += 1;
            let mut body = std::mem::take(&mut self.buf);
            c.byte += body.len() as u64;
            while body.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                body.pop();
            }
            if body.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(Message {
                body,
                partition: c.identity.clone(),
                position: c.line,
                origin: Origin {
                    kind: Text("file".into()),
                    file: Some(Text(c.name.clone().into())),
                    line: Some(c.line as u64),
                    ..Origin::default()
                },
                resume: Some(serde_json::json!({"byte": c.byte, "line": c.line})),
            }));
        }
    }

    fn commit(&mut self, points: &[(String, i64)]) -> Result<()> {
        for (file, line) in points {
            tracing::debug!(%file, delivered_before_line = line, "file position");
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
