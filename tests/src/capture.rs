//! Event Hubs Capture files for the tests of the `capture` source, written by another Avro
//! implementation than the one the service reads with: Python's `fastavro` in the `.tools/py`
//! virtual environment, with the schema Microsoft documents for Capture.

use crate::python::python;
use anyhow::{Context, Result};
use base64::Engine;
use std::path::{Path, PathBuf};

/// Writes the events given as JSON (`SPEC`) to an Avro file (`OUT`) with `CODEC`:
/// `python -c WRITER SPEC OUT CODEC`.
const WRITER: &str = r#"
import base64, json, sys
from fastavro import parse_schema, writer

schema = parse_schema({
    "type": "record", "name": "EventData", "namespace": "Microsoft.ServiceBus.Messaging",
    "fields": [
        {"name": "SequenceNumber", "type": "long"},
        {"name": "Offset", "type": "string"},
        {"name": "EnqueuedTimeUtc", "type": "string"},
        {"name": "SystemProperties", "type": {"type": "map", "values": ["long", "double", "string", "bytes"]}},
        {"name": "Properties", "type": {"type": "map", "values": ["long", "double", "string", "bytes"]}},
        {"name": "Body", "type": ["null", "bytes"]},
    ],
})
spec, out, codec = sys.argv[1:4]
with open(spec) as f:
    events = json.load(f)

def records():
    for e in events:
        body = e["body"]
        yield {
            "SequenceNumber": e["sequenceNumber"],
            "Offset": e["offset"],
            "EnqueuedTimeUtc": e["enqueuedTimeUtc"],
            "SystemProperties": {
                "x-opt-sequence-number": e["sequenceNumber"],
                "x-opt-offset": e["offset"],
                "x-opt-enqueued-time": 1763000000000,
            },
            "Properties": {"origin": "diagnostic-settings", "weight": 0.5, "tag": b"\x00\x01"},
            "Body": None if body is None else base64.b64decode(body),
        }

with open(out, "wb") as f:
    # Small blocks, so that a file holds several and a reader crosses block boundaries.
    writer(f, schema, records(), codec=codec, sync_interval=4096)
"#;

/// One event of a Capture file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureEvent {
    /// `SequenceNumber`.
    pub sequence_number: i64,
    /// `Offset`.
    pub offset: String,
    /// `EnqueuedTimeUtc`, as Capture writes it (`11/29/2026 7:05:12 AM`).
    pub enqueued_time_utc: String,
    /// `Body`; `None` writes `null`.
    pub body: Option<Vec<u8>>,
}

impl CaptureEvent {
    /// An event of this body at this sequence number, its offset and enqueued time made up
    /// from the number.
    pub fn new(sequence_number: i64, body: &[u8]) -> CaptureEvent {
        CaptureEvent {
            sequence_number,
            offset: (sequence_number * 1024).to_string(),
            enqueued_time_utc: format!(
                "11/29/2026 7:{:02}:{:02} AM",
                (sequence_number / 60) % 60,
                sequence_number % 60
            ),
            body: Some(body.to_vec()),
        }
    }
}

/// Writes a Capture file of these events at `path` (its folders made) with the Avro `codec`
/// (`null`, `deflate` or `snappy`), by `fastavro`.
pub fn write_capture_file(path: &Path, events: &[CaptureEvent], codec: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let spec: Vec<serde_json::Value> = events
        .iter()
        .map(|e| {
            serde_json::json!({
                "sequenceNumber": e.sequence_number,
                "offset": e.offset,
                "enqueuedTimeUtc": e.enqueued_time_utc,
                "body": e.body.as_ref().map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
            })
        })
        .collect();
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), serde_json::to_vec(&spec)?)?;
    python([
        "-c".as_ref(),
        WRITER.as_ref(),
        file.path().as_os_str(),
        path.as_os_str(),
        codec.as_ref(),
    ] as [&std::ffi::OsStr; 5])
    .with_context(|| format!("fastavro could not write {}", path.display()))?;
    Ok(())
}

/// The path Capture gives a file by default, relative to its container:
/// `{namespace}/{hub}/{partition}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}.avro`, the
/// time's fields two digits (four for the year), as Capture writes them.
pub fn capture_path(
    namespace: &str,
    hub: &str,
    partition: u32,
    (year, month, day, hour, minute, second): (u32, u32, u32, u32, u32, u32),
) -> PathBuf {
    PathBuf::from(format!(
        "{namespace}/{hub}/{partition}/{year:04}/{month:02}/{day:02}/{hour:02}/{minute:02}/{second:02}.avro"
    ))
}
