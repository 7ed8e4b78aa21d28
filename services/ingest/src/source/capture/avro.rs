//! The Avro container Event Hubs Capture writes: one record per event, read as a stream.
//!
//! Capture's schema is the record `Microsoft.ServiceBus.Messaging.EventData` with the fields
//! `SequenceNumber` (long), `Offset` (string), `EnqueuedTimeUtc` (string), `SystemProperties`
//! and `Properties` (maps of long, double, string or bytes) and `Body` (null or bytes). Files
//! are read block by block (null, deflate or snappy codec), so memory is bounded by one block,
//! not by the file.
//!
//! Design note: the reader is told nothing about the schema beyond "a record with a `Body`
//! field". The other fields are taken by name when present and of the documented type, so a
//! file written with a variant of the schema (`null` added to the maps' unions, as some
//! writers do) reads the same; a file whose records have no `Body` is not a Capture file and
//! fails at once, naming the file.

use anyhow::{Context, Result, bail};
use apache_avro::Schema;
use apache_avro::types::Value;
use std::io::Read;

/// The first bytes of every Avro container file.
pub const MAGIC: &[u8; 4] = b"Obj\x01";

/// Whether these first bytes of a file are an Avro container's.
pub fn is_avro(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

/// One captured event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its number in the file, from 1: the position a replay resumes after.
    pub index: u64,
    /// `SequenceNumber`: the event's number in its Event Hubs partition.
    pub sequence_number: Option<i64>,
    /// `Offset`, as Event Hubs wrote it.
    pub offset: Option<String>,
    /// `EnqueuedTimeUtc`, as Event Hubs wrote it.
    pub enqueued_time_utc: Option<String>,
    /// `Body`: the message body; `None` when the event has none (`null`).
    pub body: Option<Vec<u8>>,
}

/// The events of one Capture file, in file order.
pub struct Events<R: Read> {
    reader: apache_avro::Reader<'static, R>,
    name: String,
    index: u64,
}

impl<R: Read> Events<R> {
    /// Reads the file's header; `name` (a path or URL) is what errors say.
    pub fn open(reader: R, name: &str) -> Result<Events<R>> {
        let reader = apache_avro::Reader::new(reader)
            .with_context(|| format!("{name} is not an Avro file (an Event Hubs Capture file)"))?;
        match reader.writer_schema() {
            Schema::Record(r) if r.fields.iter().any(|f| f.name == "Body") => {}
            other => bail!(
                "{name} is an Avro file but not an Event Hubs Capture file: its records are not EventData records with a Body field (schema {})",
                other.canonical_form()
            ),
        }
        Ok(Events {
            reader,
            name: name.to_owned(),
            index: 0,
        })
    }

    /// How many events were read so far.
    pub fn read(&self) -> u64 {
        self.index
    }
}

impl<R: Read> Iterator for Events<R> {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Result<Event>> {
        let value = match self.reader.next()? {
            Ok(v) => v,
            Err(e) => {
                return Some(Err(anyhow::Error::new(e).context(format!(
                    "{} is damaged after event {}: not a whole Avro file",
                    self.name, self.index
                ))));
            }
        };
        self.index += 1;
        let Value::Record(fields) = value else {
            return Some(Err(anyhow::anyhow!(
                "{}: event {} is not a record",
                self.name,
                self.index
            )));
        };
        let mut event = Event {
            index: self.index,
            sequence_number: None,
            offset: None,
            enqueued_time_utc: None,
            body: None,
        };
        for (name, value) in fields {
            let value = unwrap_union(value);
            match (name.as_str(), value) {
                ("SequenceNumber", Value::Long(n)) => event.sequence_number = Some(n),
                ("SequenceNumber", Value::Int(n)) => event.sequence_number = Some(n.into()),
                ("Offset", Value::String(s)) => event.offset = Some(s),
                ("EnqueuedTimeUtc", Value::String(s)) => event.enqueued_time_utc = Some(s),
                ("Body", Value::Bytes(b)) => event.body = Some(b),
                ("Body", Value::String(s)) => event.body = Some(s.into_bytes()),
                _ => {}
            }
        }
        Some(Ok(event))
    }
}

fn unwrap_union(v: Value) -> Value {
    match v {
        Value::Union(_, inner) => unwrap_union(*inner),
        other => other,
    }
}

/// A Capture file as JSON Lines: each event's body on a line of its own, for readers of
/// message bodies one per line (`mfagap filter`).
///
/// A body is JSON, where a line break can only be whitespace between tokens (one inside a
/// string is escaped): line breaks in a body become spaces, which leaves its JSON as it was.
/// An event without a body has no line to be: it is an error that names the file and the
/// event (the ingest service's `capture` source sends it on as an empty message, a dead
/// letter).
pub struct JsonLines<R: Read> {
    events: Events<R>,
    line: Vec<u8>,
    at: usize,
}

impl<R: Read> JsonLines<R> {
    /// Reads the file's header; `name` is what errors say.
    pub fn open(reader: R, name: &str) -> Result<JsonLines<R>> {
        Ok(JsonLines {
            events: Events::open(reader, name)?,
            line: Vec::new(),
            at: 0,
        })
    }
}

impl<R: Read> Read for JsonLines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.line.len() {
            let Some(event) = self.events.next() else {
                return Ok(0);
            };
            let event = event.map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{e:#}"))
            })?;
            let body = event.body.unwrap_or_default();
            if body.iter().all(u8::is_ascii_whitespace) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{}: event {} (sequence number {}) has no body",
                        self.events.name,
                        event.index,
                        event
                            .sequence_number
                            .map_or_else(|| "unknown".to_owned(), |n| n.to_string())
                    ),
                ));
            }
            self.line.clear();
            self.line.extend(body.iter().map(|b| match b {
                b'\n' | b'\r' => b' ',
                b => *b,
            }));
            self.line.push(b'\n');
            self.at = 0;
        }
        let n = buf.len().min(self.line.len() - self.at);
        buf[..n].copy_from_slice(&self.line[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A local file for a reader of JSON Lines: as it is, or, when it is an Avro file (its first
/// bytes say so), its events' bodies one per line ([`JsonLines`]).
pub fn json_lines_of(mut file: std::fs::File, name: &str) -> Result<Box<dyn Read + Send>> {
    let mut head = [0u8; 4];
    let mut n = 0;
    while n < head.len() {
        let got = file
            .read(&mut head[n..])
            .with_context(|| format!("cannot read {name}"))?;
        if got == 0 {
            break;
        }
        n += got;
    }
    let whole = std::io::Cursor::new(head[..n].to_vec()).chain(file);
    if is_avro(&head[..n]) {
        Ok(Box::new(JsonLines::open(whole, name)?))
    } else {
        Ok(Box::new(whole))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use apache_avro::Codec;
    use apache_avro::types::Record;

    /// Capture's schema as Microsoft documents it.
    pub(crate) const SCHEMA: &str = r#"{
        "type": "record", "name": "EventData", "namespace": "Microsoft.ServiceBus.Messaging",
        "fields": [
            {"name": "SequenceNumber", "type": "long"},
            {"name": "Offset", "type": "string"},
            {"name": "EnqueuedTimeUtc", "type": "string"},
            {"name": "SystemProperties", "type": {"type": "map", "values": ["long", "double", "string", "bytes"]}},
            {"name": "Properties", "type": {"type": "map", "values": ["long", "double", "string", "bytes"]}},
            {"name": "Body", "type": ["null", "bytes"]}
        ]
    }"#;

    /// A Capture file of these bodies (`None`: no body), sequence numbers from `first`.
    pub(crate) fn capture_file(bodies: &[Option<&[u8]>], first: i64, codec: Codec) -> Vec<u8> {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let mut w = apache_avro::Writer::with_codec(&schema, Vec::new(), codec).unwrap();
        for (i, body) in bodies.iter().enumerate() {
            let mut r = Record::new(&schema).unwrap();
            r.put("SequenceNumber", first + i as i64);
            r.put("Offset", format!("{}", 4096 * (first + i as i64)));
            r.put("EnqueuedTimeUtc", "11/14/2025 1:48:53 AM");
            r.put(
                "SystemProperties",
                Value::Map(
                    [(
                        "x-opt-enqueued-time".to_owned(),
                        Value::Union(0, Box::new(Value::Long(1))),
                    )]
                    .into(),
                ),
            );
            r.put("Properties", Value::Map(Default::default()));
            r.put(
                "Body",
                match body {
                    Some(b) => Value::Union(1, Box::new(Value::Bytes(b.to_vec()))),
                    None => Value::Union(0, Box::new(Value::Null)),
                },
            );
            w.append_value(r).unwrap();
        }
        w.into_inner().unwrap()
    }

    #[test]
    fn events_come_in_file_order_with_their_fields() {
        let file = capture_file(
            &[Some(b"{\"a\":1}"), None, Some(b"x")],
            40,
            Codec::Deflate(Default::default()),
        );
        assert!(is_avro(&file));
        let events: Vec<Event> = Events::open(&file[..], "f.avro")
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(events.len(), 3);
        assert_eq!(
            events[0],
            Event {
                index: 1,
                sequence_number: Some(40),
                offset: Some("163840".into()),
                enqueued_time_utc: Some("11/14/2025 1:48:53 AM".into()),
                body: Some(b"{\"a\":1}".to_vec()),
            }
        );
        assert_eq!((events[1].index, events[1].body.as_deref()), (2, None));
        assert_eq!(
            (events[2].sequence_number, events[2].body.as_deref()),
            (Some(42), Some(&b"x"[..]))
        );
    }

    #[test]
    fn snappy_and_uncompressed_files_read_the_same() {
        for codec in [Codec::Null, Codec::Snappy] {
            let file = capture_file(&[Some(b"one"), Some(b"two")], 0, codec);
            let bodies: Vec<Vec<u8>> = Events::open(&file[..], "f")
                .unwrap()
                .map(|e| e.unwrap().body.unwrap())
                .collect();
            assert_eq!(bodies, [b"one".to_vec(), b"two".to_vec()], "{codec:?}");
        }
    }

    #[test]
    fn what_is_not_a_capture_file_is_an_error_that_names_it() {
        let e = Events::open(&b"{\"records\":[]}\n"[..], "in/x.avro")
            .err()
            .unwrap();
        assert!(
            format!("{e:#}").contains("in/x.avro is not an Avro file"),
            "{e:#}"
        );
        let other = Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#,
        )
        .unwrap();
        let mut w = apache_avro::Writer::new(&other, Vec::new()).unwrap();
        let mut r = Record::new(&other).unwrap();
        r.put("a", 1i64);
        w.append_value(r).unwrap();
        let e = Events::open(&w.into_inner().unwrap()[..], "y.avro")
            .err()
            .unwrap();
        assert!(
            format!("{e:#}").contains("not an Event Hubs Capture file"),
            "{e:#}"
        );
    }

    #[test]
    fn a_damaged_file_reads_up_to_the_damage_then_says_where() {
        let mut file = capture_file(&[Some(b"one"), Some(b"two")], 0, Codec::Null);
        let cut = file.len() - 20;
        file.truncate(cut);
        let mut events = Events::open(&file[..], "d.avro").unwrap();
        let e = events.find_map(Result::err).unwrap();
        assert!(
            format!("{e:#}").contains("d.avro is damaged after event 0"),
            "{e:#}"
        );
        assert!(events.next().is_none(), "nothing after the error");
        // Every prefix of a file, and every byte flipped, is an error or events, never a panic.
        let whole = capture_file(
            &[Some(b"{\"records\":[]}"), None, Some(b"two")],
            7,
            Codec::Deflate(Default::default()),
        );
        for n in 0..whole.len() {
            if let Ok(events) = Events::open(&whole[..n], "p") {
                events.for_each(drop);
            }
            let mut flipped = whole.clone();
            flipped[n] ^= 0x5a;
            if let Ok(events) = Events::open(&flipped[..], "f") {
                events.for_each(drop);
            }
        }
    }

    #[test]
    fn as_json_lines_each_body_is_one_line() {
        let file = capture_file(&[Some(b"{\"a\":\n1}"), Some(b"[2]")], 0, Codec::Null);
        let mut text = String::new();
        JsonLines::open(&file[..], "f")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "{\"a\": 1}\n[2]\n");
        let without = capture_file(&[Some(b"[1]"), None], 9, Codec::Null);
        let e = JsonLines::open(&without[..], "n.avro")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("n.avro: event 2 (sequence number 10) has no body"),
            "{e}"
        );
    }

    #[test]
    fn a_file_is_sniffed_for_avro_by_its_first_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (avro, json, tiny) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        std::fs::write(&avro, capture_file(&[Some(b"[1]")], 0, Codec::Null)).unwrap();
        std::fs::write(&json, "[1]\n[2]\n").unwrap();
        std::fs::write(&tiny, "[").unwrap();
        let read = |p: &std::path::Path| {
            let mut s = String::new();
            json_lines_of(std::fs::File::open(p).unwrap(), "x")
                .unwrap()
                .read_to_string(&mut s)
                .unwrap();
            s
        };
        assert_eq!(read(&avro), "[1]\n");
        assert_eq!(read(&json), "[1]\n[2]\n");
        assert_eq!(read(&tiny), "[");
    }
}
