//! JSON Lines files or standard input: backfill and replay.
//!
//! Each file is a partition and each line a position. A file has nowhere to keep a resume
//! point, so commits are only logged (at debug level) and counted: a replay starts from the
//! beginning, and duplicate suppression plus the output's at-least-once contract make that safe.

mod config;

pub use config::{FileArgs, FileSettings};

use super::{Message, Source};
use anyhow::{Context, Result};
use mfagap_core::Source as Origin;
use mfagap_core::lenient::Text;
use std::path::PathBuf;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Opens the files the settings name (standard input when none).
pub fn build(settings: &FileSettings) -> Result<FileSource> {
    FileSource::new(settings.inputs.clone())
}

/// The `file` source.
pub struct FileSource {
    inputs: Vec<PathBuf>,
    current: Option<(String, BufReader<Box<dyn AsyncRead + Send + Unpin>>)>,
    line: i64,
    buf: Vec<u8>,
}

impl FileSource {
    /// Checks that every input can be opened before anything is read.
    pub fn new(inputs: Vec<PathBuf>) -> Result<FileSource> {
        let inputs = if inputs.is_empty() {
            vec![PathBuf::from("-")]
        } else {
            inputs
        };
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
        }
        let mut inputs = inputs;
        inputs.reverse(); // popped from the end
        Ok(FileSource {
            inputs,
            current: None,
            line: 0,
            buf: Vec::new(),
        })
    }

    /// Cancel-safe: the input is taken off the list only once it is open.
    async fn open_next(&mut self) -> Result<bool> {
        let Some(path) = self.inputs.last().cloned() else {
            return Ok(false);
        };
        let (name, reader): (String, Box<dyn AsyncRead + Send + Unpin>) = if path.as_os_str() == "-"
        {
            ("-".into(), Box::new(tokio::io::stdin()))
        } else {
            let f = tokio::fs::File::open(&path)
                .await
                .with_context(|| format!("cannot read {}", path.display()))?;
            (path.display().to_string(), Box::new(f))
        };
        self.inputs.pop();
        self.current = Some((name, BufReader::with_capacity(1 << 20, reader)));
        self.line = 0;
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
            let (name, reader) = self.current.as_mut().expect("opened above");
            // Cancel-safe: a line cut short by a cancelled read stays in `buf` and the next
            // call completes it; `buf` is emptied only when a whole line is taken.
            let n = reader
                .read_until(b'\n', &mut self.buf)
                .await
                .with_context(|| format!("cannot read {name}"))?;
            if n == 0 && self.buf.is_empty() {
                self.current = None;
                continue;
            }
            self.line += 1;
            let mut body = std::mem::take(&mut self.buf);
            while body.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                body.pop();
            }
            if body.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(Message {
                body,
                partition: name.clone(),
                position: self.line,
                origin: Origin {
                    kind: Text("file".into()),
                    file: Some(Text(name.clone().into())),
                    line: Some(self.line as u64),
                    ..Origin::default()
                },
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

    #[test]
    fn a_missing_file_fails_before_reading() {
        let e = FileSource::new(vec!["/no/such/file.jsonl".into()])
            .err()
            .unwrap();
        assert!(format!("{e:#}").contains("/no/such/file.jsonl"));
    }
}
