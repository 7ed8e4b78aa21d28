//! The partitions' event logs: what the double serves, and where a receiver starts reading.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// One stored event, with the system properties the service stamps on it.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// Per partition, from 0.
    pub sequence_number: i64,
    /// Byte position of the event in its partition, as the service reports it (a decimal string
    /// on the wire).
    pub offset: i64,
    /// Milliseconds since the Unix epoch.
    pub enqueued_ms: i64,
    pub partition_key: Option<String>,
    pub body: Arc<[u8]>,
}

/// One partition: an append-only log and a channel that tells streaming receivers its length.
///
/// Retention is a watermark: events below `begin` have expired. They are no longer served,
/// the partition properties report `begin` as `begin_sequence_number`, and a receiver that
/// asks for an expired position starts at the oldest event retained, as the service does.
pub(crate) struct Partition {
    events: RwLock<Vec<Arc<Event>>>,
    /// The sequence number of the oldest event retained.
    begin: AtomicUsize,
    next_offset: AtomicU64,
    length: watch::Sender<usize>,
    /// Events delivered to receivers, over every link.
    pub delivered: AtomicU64,
}

/// Where a receiver starts, parsed from the selector filter the client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StartAt {
    /// `amqp.annotation.x-opt-offset > '-1'`.
    Earliest,
    /// `amqp.annotation.x-opt-offset > '@latest'`: only events appended after the attach.
    Latest,
    Offset {
        value: i64,
        inclusive: bool,
    },
    SequenceNumber {
        value: i64,
        inclusive: bool,
    },
    /// Milliseconds since the Unix epoch.
    EnqueuedTime {
        value: i64,
        inclusive: bool,
    },
}

impl StartAt {
    /// Parses the selector expression the client builds in `StartPosition::start_expression`,
    /// e.g. `amqp.annotation.x-opt-sequence-number >='12'`. The error is the text the link is
    /// refused with.
    pub(crate) fn parse(expression: &str) -> Result<StartAt, String> {
        let invalid = || format!("The selector filter '{expression}' is not supported.");
        let expression = expression.trim();
        let (field, rest) = expression.split_once('>').ok_or_else(invalid)?;
        let (inclusive, rest) = match rest.strip_prefix('=') {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        let value = rest
            .trim()
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .ok_or_else(invalid)?;
        let number = || value.parse::<i64>().map_err(|_| invalid());
        match field.trim() {
            "amqp.annotation.x-opt-offset" => match value {
                "-1" if !inclusive => Ok(StartAt::Earliest),
                "@latest" => Ok(StartAt::Latest),
                _ => Ok(StartAt::Offset {
                    value: number()?,
                    inclusive,
                }),
            },
            "amqp.annotation.x-opt-sequence-number" => Ok(StartAt::SequenceNumber {
                value: number()?,
                inclusive,
            }),
            "amqp.annotation.x-opt-enqueued-time" => Ok(StartAt::EnqueuedTime {
                value: number()?,
                inclusive,
            }),
            _ => Err(invalid()),
        }
    }
}

impl Partition {
    fn new() -> Partition {
        Partition {
            events: RwLock::new(Vec::new()),
            begin: AtomicUsize::new(0),
            next_offset: AtomicU64::new(0),
            length: watch::channel(0).0,
            delivered: AtomicU64::new(0),
        }
    }

    pub(crate) fn append(&self, partition_key: Option<&str>, body: &[u8]) -> Arc<Event> {
        let mut events = self.events.write().unwrap_or_else(|e| e.into_inner());
        let offset = self.next_offset.load(Ordering::Relaxed);
        self.next_offset
            .store(offset + body.len().max(1) as u64, Ordering::Relaxed);
        let event = Arc::new(Event {
            sequence_number: events.len() as i64,
            offset: offset as i64,
            enqueued_ms: now_ms(),
            partition_key: partition_key.map(str::to_owned),
            body: Arc::from(body),
        });
        events.push(event.clone());
        let len = events.len();
        drop(events);
        self.length.send_replace(len);
        event
    }

    /// The event at `index` (its sequence number), if appended yet and not expired.
    pub(crate) fn get(&self, index: usize) -> Option<Arc<Event>> {
        if index < self.begin() {
            return None;
        }
        self.read().get(index).cloned()
    }

    /// The sequence number of the oldest event retained.
    pub(crate) fn begin(&self) -> usize {
        self.begin.load(Ordering::Acquire)
    }

    /// Expires every event before sequence number `sequence_number` (retention passed them).
    pub(crate) fn expire_before(&self, sequence_number: usize) {
        let len = self.len();
        self.begin
            .fetch_max(sequence_number.min(len), Ordering::AcqRel);
    }

    pub(crate) fn len(&self) -> usize {
        self.read().len()
    }

    /// The last event, for the partition properties.
    pub(crate) fn last(&self) -> Option<Arc<Event>> {
        self.read().last().cloned()
    }

    /// A receiver of the partition's length, to wait for appends.
    pub(crate) fn subscribe(&self) -> watch::Receiver<usize> {
        self.length.subscribe()
    }

    /// The index of the first event a receiver starting at `start` gets, or the service's
    /// refusal: an offset must be the offset of an event (or `-1`, `@latest`). A position
    /// before the oldest event retained starts at that event.
    pub(crate) fn first_index(&self, start: &StartAt) -> Result<usize, String> {
        let events = self.read();
        let begin = self.begin().min(events.len());
        let first =
            |pred: &dyn Fn(&Event) -> bool| begin + events[begin..].partition_point(|e| !pred(e));
        Ok(match *start {
            StartAt::Earliest => begin,
            StartAt::Latest => events.len(),
            StartAt::Offset { value, inclusive } => {
                let retained_from = events.get(begin).map_or(i64::MAX, |e| e.offset);
                let at_boundary = events.binary_search_by_key(&value, |e| e.offset).is_ok();
                if value >= retained_from && !at_boundary {
                    return Err(format!(
                        "The supplied offset '{value}' is not the offset of an event in the partition. Offsets must be taken from received events."
                    ));
                }
                first(&|e| {
                    if inclusive {
                        e.offset >= value
                    } else {
                        e.offset > value
                    }
                })
            }
            StartAt::SequenceNumber { value, inclusive } => first(&|e| {
                if inclusive {
                    e.sequence_number >= value
                } else {
                    e.sequence_number > value
                }
            }),
            StartAt::EnqueuedTime { value, inclusive } => first(&|e| {
                if inclusive {
                    e.enqueued_ms >= value
                } else {
                    e.enqueued_ms > value
                }
            }),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Event>>> {
        self.events.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Every partition of the event hub.
pub(crate) struct Store {
    pub partitions: Vec<Partition>,
    round_robin: AtomicUsize,
}

impl Store {
    pub(crate) fn new(partition_count: usize) -> Store {
        Store {
            partitions: (0..partition_count).map(|_| Partition::new()).collect(),
            round_robin: AtomicUsize::new(0),
        }
    }

    /// Appends one event: to the partition the key hashes to, or round robin without a key.
    /// Returns the partition and the sequence number.
    pub(crate) fn append(&self, partition_key: Option<&str>, body: &[u8]) -> (usize, i64) {
        let n = self.partitions.len();
        let partition = match partition_key {
            Some(key) => (fnv1a(key.as_bytes()) % n as u64) as usize,
            None => self.round_robin.fetch_add(1, Ordering::Relaxed) % n,
        };
        let event = self.partitions[partition].append(partition_key, body);
        (partition, event.sequence_number)
    }

    /// The partition with this id ("0", "1", …), if it exists.
    pub(crate) fn partition(&self, id: &str) -> Option<&Partition> {
        let index: usize = id.parse().ok()?;
        if id != index.to_string() {
            return None;
        }
        self.partitions.get(index)
    }
}

/// A stable hash (FNV-1a, 64 bits), so a key lands on the same partition in every run.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_start_expression_the_client_builds() {
        let parse = |s: &str| StartAt::parse(s).unwrap();
        assert_eq!(
            parse("amqp.annotation.x-opt-offset > '-1'"),
            StartAt::Earliest
        );
        assert_eq!(
            parse("amqp.annotation.x-opt-offset > '@latest'"),
            StartAt::Latest
        );
        assert_eq!(
            parse("amqp.annotation.x-opt-offset >='120'"),
            StartAt::Offset {
                value: 120,
                inclusive: true
            }
        );
        assert_eq!(
            parse("amqp.annotation.x-opt-sequence-number >'7'"),
            StartAt::SequenceNumber {
                value: 7,
                inclusive: false
            }
        );
        assert_eq!(
            parse("amqp.annotation.x-opt-enqueued-time >'1700000000000'"),
            StartAt::EnqueuedTime {
                value: 1_700_000_000_000,
                inclusive: false
            }
        );
        assert!(StartAt::parse("amqp.annotation.x-opt-offset = 'x'").is_err());
        assert!(StartAt::parse("something >'1'").is_err());
    }

    #[test]
    fn offsets_are_byte_positions_and_starts_are_exclusive_or_inclusive() {
        let store = Store::new(1);
        for body in [&b"abc"[..], b"de", b"f"] {
            store.append(None, body);
        }
        let p = &store.partitions[0];
        let offsets: Vec<i64> = (0..3).map(|i| p.get(i).unwrap().offset).collect();
        assert_eq!(offsets, [0, 3, 5]);
        let at = |start| p.first_index(&start);
        let offset = |value, inclusive| StartAt::Offset { value, inclusive };
        assert_eq!(at(offset(3, false)), Ok(2));
        assert_eq!(at(offset(3, true)), Ok(1));
        assert_eq!(
            at(StartAt::SequenceNumber {
                value: 0,
                inclusive: false
            }),
            Ok(1)
        );
        assert_eq!(at(StartAt::Latest), Ok(3));
    }

    #[test]
    fn an_offset_inside_an_event_or_past_the_end_is_refused() {
        let store = Store::new(1);
        for body in [&b"abc"[..], b"de", b"f"] {
            store.append(None, body);
        }
        let p = &store.partitions[0];
        for value in [1, 4, 99] {
            let e = p
                .first_index(&StartAt::Offset {
                    value,
                    inclusive: false,
                })
                .unwrap_err();
            assert!(e.contains(&format!("'{value}'")), "{e}");
        }
    }

    #[test]
    fn retention_moves_the_beginning_and_an_expired_start_begins_there() {
        let store = Store::new(1);
        for body in [&b"abc"[..], b"de", b"f", b"gh"] {
            store.append(None, body);
        }
        let p = &store.partitions[0];
        p.expire_before(2);
        assert_eq!(p.begin(), 2);
        assert!(p.get(1).is_none() && p.get(2).is_some());
        assert_eq!(p.first_index(&StartAt::Earliest), Ok(2));
        // The offset of an expired event, and a sequence number before the beginning.
        let expired = StartAt::Offset {
            value: 0,
            inclusive: false,
        };
        assert_eq!(p.first_index(&expired), Ok(2));
        let early = StartAt::SequenceNumber {
            value: 0,
            inclusive: true,
        };
        assert_eq!(p.first_index(&early), Ok(2));
        p.expire_before(1);
        assert_eq!(p.begin(), 2, "retention never moves back");
    }

    #[test]
    fn a_key_always_lands_on_the_same_partition() {
        let store = Store::new(4);
        let first = store.append(Some("user-1"), b"x").0;
        for _ in 0..10 {
            assert_eq!(store.append(Some("user-1"), b"y").0, first);
        }
        assert!(store.partition("4").is_none());
        assert!(store.partition("01").is_none());
        assert!(store.partition("3").is_some());
    }
}
