//! `mfagap filter`: JSON Lines of message bodies in, emitted sign-ins out, on every core.
//!
//! Three stages joined by bounded channels, so memory is fixed whatever the input size:
//! one reader cuts the input into chunks on line boundaries, workers decode, classify and
//! serialize whole chunks (the expensive part, in parallel), and the writer — the only stage
//! that sees records in sequence — suppresses duplicates and writes. Output order follows
//! chunk completion, not input order, which the command's contract allows.

use anyhow::{Context, Result, bail};
use base64::Engine;
use crossbeam_channel::{Receiver, Sender, bounded};
use mfagap_core::dedup::{self, Key, Window};
use mfagap_core::encode::{Encoder, EncoderOptions, Format, OcsfVersion};
use mfagap_core::lenient::Text;
use mfagap_core::{Classifier, ClassifierConfig, Output, Processor, Reason, Source, Stats};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;
use std::time::Instant;

/// Size of the chunks the reader hands to workers: large enough to amortise channel
/// hand-offs, small enough that a few in flight per worker keep memory low.
const CHUNK: usize = 1 << 20;

#[derive(Debug, clap::Args)]
pub(crate) struct FilterArgs {
    /// JSON Lines files of Event Hubs message bodies; `-` (the default) reads standard input.
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

/// One input: a name for dead letters and `source.file`, and its reader.
struct Input {
    name: String,
    reader: Box<dyn Read + Send>,
}

/// A run of whole lines from one input.
struct Chunk {
    input: usize,
    first_line: u64,
    data: Vec<u8>,
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
    let inputs = open_inputs(&args.inputs)?;
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
        "read {:.1} MB in {secs:.2} s ({:.0} MB/s, {:.0} records/s) on {threads} worker threads",
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
fn open_inputs(paths: &[PathBuf]) -> Result<Vec<Input>> {
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
        .map(|p| {
            if p.as_os_str() == "-" {
                return Ok(Input {
                    name: "-".into(),
                    reader: Box::new(io::stdin()),
                });
            }
            let file = File::open(p).with_context(|| format!("cannot read {}", p.display()))?;
            if file.metadata().is_ok_and(|m| m.is_dir()) {
                bail!("cannot read {}: it is a directory", p.display());
            }
            Ok(Input {
                name: p.display().to_string(),
                reader: Box::new(file),
            })
        })
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

/// Cuts each input into chunks of whole lines; returns the bytes read.
fn read_chunks(inputs: Vec<Input>, tx: Sender<Chunk>, pool: Pool) -> Result<u64> {
    let mut total = 0u64;
    for (index, mut input) in inputs.into_iter().enumerate() {
        let mut line = 1u64;
        let mut carry: Vec<u8> = Vec::new();
        loop {
            let mut buf = pool.take(CHUNK + carry.len());
            buf.extend_from_slice(&carry);
            carry.clear();
            let n = (&mut input.reader)
                .take(CHUNK as u64)
                .read_to_end(&mut buf)
                .with_context(|| format!("cannot read {}", input.name))?;
            total += n as u64;
            let eof = n == 0;
            let cut = if eof {
                buf.len()
            } else {
                match memchr::memrchr(b'\n', &buf) {
                    Some(i) => i + 1,
                    None => {
                        carry = buf; // one line longer than a chunk: keep reading it
                        continue;
                    }
                }
            };
            carry.extend_from_slice(&buf[cut..]);
            buf.truncate(cut);
            if !buf.is_empty() {
                let lines = memchr::memchr_iter(b'\n', &buf).count() as u64;
                let chunk = Chunk {
                    input: index,
                    first_line: line,
                    data: buf,
                };
                line += lines;
                if tx.send(chunk).is_err() {
                    return Ok(total); // the writer stopped; its error is reported
                }
            }
            if eof {
                break;
            }
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
    let mut line_no = chunk.first_line;
    let data = &chunk.data[..];
    let mut start = 0;
    while start < data.len() {
        let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i);
        let line = &data[start..end];
        start = end + 1;
        let this_line = line_no;
        line_no += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let source = Source {
            kind: Text("file".into()),
            file: Some(Text(name.into())),
            line: Some(this_line),
            ..Source::default()
        };
        let Done {
            json,
            records,
            dead,
            stats,
        } = &mut done;
        p.process(line, &source, ingested_at, stats, &mut |o| match o {
            Output::SignIn(s) => {
                let start = json.len();
                encoder.write_payload(&s, json);
                json.push(b'\n');
                records.push((s.dedup_key(), s.reason, start, json.len()));
            }
            Output::DeadLetter(d) => {
                write_dead_letter(dead, name, this_line, &d);
            }
        });
    }
    done
}

fn write_dead_letter(out: &mut Vec<u8>, file: &str, line: u64, d: &mfagap_core::DeadLetter) {
    let (raw, raw_base64) = match std::str::from_utf8(d.raw) {
        Ok(text) => (Some(text), None),
        Err(_) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(d.raw)),
        ),
    };
    let entry = serde_json::json!({
        "file": file,
        "line": line,
        "record": d.record,
        "code": d.code,
        "error": d.error,
        "raw": raw,
        "rawBase64": raw_base64,
    });
    serde_json::to_writer(&mut *out, &entry).expect("JSON to a Vec cannot fail");
    out.push(b'\n');
}
