//! `mfagap filter`: files of message bodies in, emitted sign-ins out, on every core.
//!
//! Three stages joined by bounded channels, so memory is fixed whatever the input size:
//! one reader cuts each input into message bodies (JSON Lines, or one JSON document split
//! into its elements, plain or compressed: see `mfagap_core::framing`) and hands them out in
//! chunks, workers decode, classify and serialize whole chunks (the expensive part, in
//! parallel), and the writer — the only stage that sees records in sequence — suppresses
//! duplicates and writes. Output order follows chunk completion, not input order, which the
//! command's contract allows.

use anyhow::{Context, Result, bail};
use base64::Engine;
use crossbeam_channel::{Receiver, Sender, bounded};
use mfagap_core::dedup::{self, Key, Window};
use mfagap_core::encode::{Encoder, EncoderOptions, Format, OcsfVersion};
use mfagap_core::framing::{self, Framer, Layout, Problem};
use mfagap_core::lenient::Text;
use mfagap_core::{Classifier, ClassifierConfig, Output, Processor, Reason, Source, Stats};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Size of the chunks the reader hands to workers: large enough to amortise channel
/// hand-offs, small enough that a few in flight per worker keep memory low.
const CHUNK: usize = 1 << 20;

/// Bodies in a chunk at most: a chunk of tiny bodies stays a chunk of reasonable work.
const CHUNK_BODIES: usize = 16 << 10;

#[derive(Debug, clap::Args)]
pub(crate) struct FilterArgs {
    /// Files of Event Hubs message bodies: JSON Lines, or one JSON document (an array, a
    /// `{"records":[…]}` envelope or a Graph page, split into its elements); gzip or zstd
    /// compressed or not. `-` (the default) reads standard input.
    #[arg(value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// Classify workload identities (service principals, managed identities) too.
    #[arg(long, env = "MFAGAP_INCLUDE_SERVICE_PRINCIPALS")]
    pub include_service_principals: bool,
    /// Write each malformed message or record here (JSON Lines: file, line, record, code, error, raw).
    #[arg(long, value_name = "FILE", env = "MFAGAP_DEAD_LETTER")]
    pub dead_letter: Option<PathBuf>,
    /// clientAppUsed values that count as legacy protocols (comma-separated; replaces the default list).
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        env = "MFAGAP_LEGACY_CLIENTS"
    )]
    pub legacy_clients: Option<Vec<String>>,
    /// How many distinct sign-ins duplicate suppression remembers (0 turns it off).
    #[arg(long, value_name = "N", default_value_t = dedup::DEFAULT_CAPACITY, env = "MFAGAP_DEDUP_WINDOW")]
    pub dedup_window: usize,
    /// The largest message body in bytes: a line, array element or record over it is a dead
    /// letter `too_large` that keeps its first 64 KiB. The default, 20 MiB, is what an Event
    /// Hubs Dedicated event may carry; Standard and Premium allow 1 MiB.
    #[arg(long, value_name = "BYTES", default_value_t = framing::DEFAULT_MAX_MESSAGE_BYTES, env = "MFAGAP_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: usize,
    /// Worker threads; 0 uses every core.
    #[arg(long, value_name = "N", default_value_t = 0, env = "MFAGAP_THREADS")]
    pub threads: usize,
    /// Also write the summary as JSON to this file.
    #[arg(long, value_name = "FILE", env = "MFAGAP_STATS")]
    pub stats: Option<PathBuf>,
    /// Shape of each emitted line: `native` (mfagap's record), `ocsf` (OCSF Authentication)
    /// or `ecs` (Elastic Common Schema).
    #[arg(
        long,
        value_name = "FORMAT",
        env = "MFAGAP_FORMAT",
        default_value = "native"
    )]
    pub format: Format,
    /// OCSF schema version of `--format ocsf`: 1.8.0 (the newest) or 1.1.0 (what Amazon
    /// Security Lake validates custom sources against).
    #[arg(
        long,
        value_name = "VERSION",
        env = "MFAGAP_OCSF_VERSION",
        default_value = "1.8.0"
    )]
    pub ocsf_version: OcsfVersion,
}

impl FilterArgs {
    fn classifier(&self) -> Classifier {
        Classifier::new(ClassifierConfig::from_options(
            self.include_service_principals,
            self.legacy_clients.as_deref(),
        ))
    }
}

/// One input: a name for dead letters and `source.file`, and its message bodies.
struct Input {
    name: String,
    bodies: Box<dyn Bodies>,
}

/// One message body of an input, and where it was.
struct Body<'a> {
    bytes: &'a [u8],
    /// Set when the body could not be taken whole: it is a dead letter.
    problem: Option<Problem>,
    /// The line it starts on.
    line: u64,
    /// Its number in the input and its (uncompressed) byte offset, for the elements of a
    /// document, where a line does not tell one body from the next.
    element: Option<(u64, u64)>,
}

/// The message bodies of one input, in order.
trait Bodies: Send {
    /// The next body; `None` at the end of the input.
    fn next(&mut self) -> io::Result<Option<Body<'_>>>;
    /// Bytes read so far, decompressed.
    fn read_so_far(&self) -> u64;
}

impl<R: Read + Send> Bodies for Framer<R> {
    fn next(&mut self) -> io::Result<Option<Body<'_>>> {
        let document = matches!(self.layout(), Some(Layout::Document(_)));
        Ok(Framer::next(self)?.map(|f| Body {
            bytes: f.body,
            problem: f.problem,
            line: f.line,
            element: document.then_some((f.index, f.start)),
        }))
    }

    fn read_so_far(&self) -> u64 {
        self.bytes_read()
    }
}

/// An Event Hubs Capture file: each event's body, numbered as lines are.
impl<R: Read + Send> Bodies for mfagap_ingest::source::capture::EventBodies<R> {
    fn next(&mut self) -> io::Result<Option<Body<'_>>> {
        let max = self.max_message_bytes();
        let next = self
            .next_body()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:#}")))?;
        Ok(next.map(|(event, bytes)| Body {
            bytes,
            problem: framing::too_large(bytes, max),
            line: event,
            element: None,
        }))
    }

    fn read_so_far(&self) -> u64 {
        self.bytes_read()
    }
}

/// Opens one input and turns it into message bodies: the one place that knows the formats of
/// input files. JSON Lines or one JSON document, plain, gzip or zstd, or an Event Hubs
/// Capture (Avro) file (told by the content, not the name).
fn open_bodies(path: &Path, max_message_bytes: usize) -> Result<Input> {
    if path.as_os_str() == "-" {
        let (reader, _) = framing::decompress(BufReader::with_capacity(CHUNK, io::stdin()))
            .context("cannot read standard input")?;
        return Ok(Input {
            name: "-".into(),
            bodies: Box::new(Framer::new(reader, max_message_bytes)),
        });
    }
    use mfagap_ingest::source::capture::EventBodies;
    if let Some(events) = EventBodies::open_if_avro(path, max_message_bytes)? {
        return Ok(Input {
            name: path.display().to_string(),
            bodies: Box::new(events),
        });
    }
    let (reader, _) =
        framing::open(path, None).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Input {
        name: path.display().to_string(),
        bodies: Box::new(Framer::new(reader, max_message_bytes)),
    })
}

/// A run of whole message bodies from one input, one after the other in `data`.
struct Chunk {
    input: usize,
    data: Vec<u8>,
    bodies: Vec<Meta>,
}

/// Where one body of a chunk is, and where it was in its input.
struct Meta {
    end: usize,
    problem: Option<Problem>,
    line: u64,
    element: Option<(u64, u64)>,
}

/// What a worker made of a chunk: serialized records awaiting the duplicate check.
struct Done {
    json: Vec<u8>,
    records: Vec<(Key, Reason, usize, usize)>,
    dead: Vec<u8>,
    stats: Stats,
}

pub(crate) fn run(args: FilterArgs) -> Result<()> {
    let started = Instant::now();
    let inputs = open_inputs(&args.inputs, args.max_message_bytes)?;
    let names: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
    let mut dead_out = match &args.dead_letter {
        Some(path) => Some(BufWriter::new(File::create(path).with_context(|| {
            format!("cannot create the dead-letter file {}", path.display())
        })?)),
        None => None,
    };
    let threads = match args.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let processor = Processor::new(args.classifier());
    let encoder = args.format.encoder(EncoderOptions {
        ocsf_version: args.ocsf_version,
    });
    let (chunk_tx, chunk_rx) = bounded::<Chunk>(threads * 2);
    let (done_tx, done_rx) = bounded::<Done>(threads * 2);

    let (input_pool, output_pool) = (Pool::new(threads * 4 + 2), Pool::new(threads * 4 + 2));
    let mut stats = Stats::default();
    let mut bytes_in = 0u64;
    let outcome: Result<()> = std::thread::scope(|s| {
        let reader = {
            let pool = input_pool.clone();
            s.spawn(move || read_chunks(inputs, chunk_tx, pool))
        };
        for _ in 0..threads {
            let (rx, tx, p, names) = (chunk_rx.clone(), done_tx.clone(), &processor, &names);
            let (inputs, outputs, encoder) = (&input_pool, &output_pool, &*encoder);
            s.spawn(move || work(p, encoder, names, rx, tx, inputs, outputs));
        }
        drop((chunk_rx, done_tx));

        // Owned here so that an early return (a closed stdout) drops it, which stops the
        // workers and then the reader instead of leaving them blocked on full channels.
        let done_rx = done_rx;
        let stdout = io::stdout();
        let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
        let mut window = Window::new(args.dedup_window);
        for done in done_rx.iter() {
            stats.merge(&done.stats);
            for (key, reason, start, end) in done.records {
                if window.first_time(key) {
                    stats.count_emitted(reason);
                    out.write_all(&done.json[start..end])?;
                } else {
                    stats.duplicates += 1;
                }
            }
            if let Some(d) = dead_out.as_mut() {
                d.write_all(&done.dead)?;
            }
            output_pool.give(done.json);
        }
        out.flush()?;
        bytes_in = reader.join().expect("the reader thread does not panic")?;
        Ok(())
    });
    outcome?;
    if let Some(mut d) = dead_out {
        d.flush().context("cannot write the dead-letter file")?;
    }
    stats.check().map_err(anyhow::Error::msg)?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!("{stats}");
    eprintln!(
        "read {:.1} MB (decompressed) in {secs:.2} s ({:.0} MB/s, {:.0} records/s) on {threads} worker threads",
        bytes_in as f64 / 1e6,
        bytes_in as f64 / 1e6 / secs.max(1e-9),
        stats.records as f64 / secs.max(1e-9)
    );
    if let Some(path) = &args.stats {
        let json = serde_json::to_vec_pretty(&stats)?;
        std::fs::write(path, json)
            .with_context(|| format!("cannot write the stats file {}", path.display()))?;
    }
    Ok(())
}

/// Opens every input before reading any, so a typo fails at once with nothing written.
fn open_inputs(paths: &[PathBuf], max_message_bytes: usize) -> Result<Vec<Input>> {
    let default = [PathBuf::from("-")];
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    if paths.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
        bail!("standard input (-) can be named only once");
    }
    paths
        .iter()
        .map(|p| open_bodies(p, max_message_bytes))
        .collect()
}

/// Buffers that went through the pipeline come back here to be filled again: a fresh
/// megabyte per chunk would cost a page fault per 4 KB, more than the parsing of it.
#[derive(Clone)]
struct Pool {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
}

impl Pool {
    fn new(size: usize) -> Pool {
        let (tx, rx) = bounded(size);
        Pool { tx, rx }
    }

    fn take(&self, capacity: usize) -> Vec<u8> {
        self.rx
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(capacity))
    }

    fn give(&self, mut buf: Vec<u8>) {
        buf.clear();
        let _ = self.tx.try_send(buf); // a full pool lets the buffer go
    }
}

/// Cuts each input into chunks of whole message bodies; returns the bytes read.
fn read_chunks(inputs: Vec<Input>, tx: Sender<Chunk>, pool: Pool) -> Result<u64> {
    let mut total = 0u64;
    for (index, mut input) in inputs.into_iter().enumerate() {
        let mut chunk = Chunk {
            input: index,
            data: pool.take(CHUNK),
            bodies: Vec::new(),
        };
        loop {
            let body = input
                .bodies
                .next()
                .with_context(|| format!("cannot read {}", input.name))?;
            let Some(body) = body else { break };
            chunk.data.extend_from_slice(body.bytes);
            chunk.bodies.push(Meta {
                end: chunk.data.len(),
                problem: body.problem,
                line: body.line,
                element: body.element,
            });
            if chunk.data.len() >= CHUNK || chunk.bodies.len() >= CHUNK_BODIES {
                let full = std::mem::replace(
                    &mut chunk,
                    Chunk {
                        input: index,
                        data: pool.take(CHUNK),
                        bodies: Vec::new(),
                    },
                );
                if tx.send(full).is_err() {
                    return Ok(total); // the writer stopped; its error is reported
                }
            }
        }
        total += input.bodies.read_so_far();
        if !chunk.bodies.is_empty() && tx.send(chunk).is_err() {
            return Ok(total);
        }
    }
    Ok(total)
}

fn work(
    p: &Processor,
    encoder: &dyn Encoder,
    names: &[String],
    rx: Receiver<Chunk>,
    tx: Sender<Done>,
    inputs: &Pool,
    outputs: &Pool,
) {
    for chunk in rx.iter() {
        let done = process_chunk(p, encoder, &names[chunk.input], &chunk, outputs.take(CHUNK));
        inputs.give(chunk.data);
        if tx.send(done).is_err() {
            return;
        }
    }
}

fn process_chunk(
    p: &Processor,
    encoder: &dyn Encoder,
    name: &str,
    chunk: &Chunk,
    json: Vec<u8>,
) -> Done {
    let mut done = Done {
        json,
        records: Vec::new(),
        dead: Vec::new(),
        stats: Stats::default(),
    };
    let ingested_at = chrono::Utc::now().timestamp_micros();
    let mut start = 0;
    for meta in &chunk.bodies {
        let body = &chunk.data[start..meta.end];
        start = meta.end;
        let Done {
            json,
            records,
            dead,
            stats,
        } = &mut done;
        if let Some(problem) = meta.problem {
            stats.count_unread_message(problem.code());
            let d = mfagap_core::DeadLetter {
                raw: body,
                code: problem.code(),
                error: problem.to_string(),
                record: None,
            };
            write_dead_letter(dead, name, meta, &d, Some(problem));
            continue;
        }
        let source = Source {
            kind: Text("file".into()),
            file: Some(Text(name.into())),
            line: Some(meta.line),
            offset: meta.element.map(|(_, byte)| Text(byte.to_string().into())),
            ..Source::default()
        };
        p.process(body, &source, ingested_at, stats, &mut |o| match o {
            Output::SignIn(s) => {
                let start = json.len();
                encoder.write_payload(&s, json);
                json.push(b'\n');
                records.push((s.dedup_key(), s.reason, start, json.len()));
            }
            Output::DeadLetter(d) => {
                write_dead_letter(dead, name, meta, &d, None);
            }
        });
    }
    done
}

fn write_dead_letter(
    out: &mut Vec<u8>,
    file: &str,
    at: &Meta,
    d: &mfagap_core::DeadLetter,
    problem: Option<Problem>,
) {
    let (raw, raw_base64) = match std::str::from_utf8(d.raw) {
        Ok(text) => (Some(text), None),
        Err(_) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(d.raw)),
        ),
    };
    let mut entry = serde_json::json!({
        "file": file,
        "line": at.line,
        "record": d.record,
        "code": d.code,
        "error": d.error,
        "raw": raw,
        "rawBase64": raw_base64,
    });
    if let Some((element, byte)) = at.element {
        entry["element"] = element.into();
        entry["byte"] = byte.into();
    }
    if let Some(Problem::TooLarge { size, .. }) = problem {
        entry["size"] = size.into();
    }
    serde_json::to_writer(&mut *out, &entry).expect("JSON to a Vec cannot fail");
    out.push(b'\n');
}
