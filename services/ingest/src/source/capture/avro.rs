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
use std::io::{Read, Seek};
use std::path::Path;

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

/// A Capture file's events as message bodies, for a reader that takes bodies one at a time
/// (`mfagap filter`): each body with its event's number. An event without a body gives an
/// empty one, which the core makes a dead letter (as from the capture source).
pub struct EventBodies<R: Read> {
    events: Events<R>,
    /// Bytes of the bodies handed out so far.
    read: u64,
    body: Vec<u8>,
    max_message_bytes: usize,
}

impl EventBodies<std::io::BufReader<std::fs::File>> {
    /// The file's events when it is an Avro file (its first bytes say so); `None` when it is
    /// not, for a reader of other formats to open. `max_message_bytes` is kept for the
    /// reader's size check.
    pub fn open_if_avro(path: &Path, max_message_bytes: usize) -> Result<Option<Self>> {
        let name = path.display().to_string();
        let mut file = std::fs::File::open(path).with_context(|| format!("cannot read {name}"))?;
        if file.metadata().is_ok_and(|m| m.is_dir()) {
            return Ok(None); // the reader of other formats says what it is
        }
        let mut head = [0u8; 4];
        let mut n = 0;
        while n < head.len() {
            match file.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(got) => n += got,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).with_context(|| format!("cannot read {name}")),
            }
        }
        if !is_avro(&head[..n]) {
            return Ok(None);
        }
        file.seek(std::io::SeekFrom::Start(0))
            .with_context(|| format!("cannot read {name}"))?;
        Ok(Some(EventBodies {
            events: Events::open(std::io::BufReader::with_capacity(1 << 16, file), &name)?,
            read: 0,
            body: Vec::new(),
            max_message_bytes,
        }))
    }
}

impl<R: Read> EventBodies<R> {
    /// The next event's number (from 1) and body; `None` at the end of the file.
    pub fn next_body(&mut self) -> Result<Option<(u64, &[u8])>> {
        match self.events.next() {
            None => Ok(None),
            Some(Err(e)) => Err(e),
            Some(Ok(event)) => {
                self.body = event.body.unwrap_or_default();
                self.read += self.body.len() as u64;
                Ok(Some((event.index, &self.body)))
            }
        }
    }

    /// Bytes of the bodies handed out so far: the file decoded and decompressed, as a
    /// reader of plain files counts what it read.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// The largest message body the reader takes, as given to [`EventBodies::open_if_avro`].
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
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
    fn event_bodies_come_numbered_from_an_avro_file_and_not_from_another() {
        let dir = tempfile::tempdir().unwrap();
        let (avro, json) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&avro, capture_file(&[Some(b"[1]"), None], 0, Codec::Null)).unwrap();
        std::fs::write(&json, "[1]\n").unwrap();
        let mut bodies = EventBodies::open_if_avro(&avro, 64).unwrap().unwrap();
        assert_eq!(bodies.next_body().unwrap(), Some((1, &b"[1]"[..])));
        assert_eq!(
            bodies.next_body().unwrap(),
            Some((2, &b""[..])),
            "no body: an empty one"
        );
        assert_eq!(bodies.next_body().unwrap(), None);
        assert_eq!(bodies.bytes_read(), 3, "the bodies' bytes");
        assert_eq!(bodies.max_message_bytes(), 64);
        assert!(EventBodies::open_if_avro(&json, 64).unwrap().is_none());
        let e = EventBodies::open_if_avro(&dir.path().join("c"), 64)
            .err()
            .unwrap();
        assert!(format!("{e:#}").contains("cannot read"), "{e:#}");
        let tiny = dir.path().join("d");
        std::fs::write(&tiny, "[").unwrap();
        assert!(
            EventBodies::open_if_avro(&tiny, 64).unwrap().is_none(),
            "shorter than the magic"
        );
        assert!(
            EventBodies::open_if_avro(dir.path(), 64).unwrap().is_none(),
            "a directory is for the other reader to refuse"
        );
    }
}
