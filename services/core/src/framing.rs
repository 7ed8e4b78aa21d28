//! Files to message bodies: JSON Lines, or one JSON document read as a stream; plain, gzip or
//! zstd.
//!
//! The file source of ingest and `mfagap filter` read files through [`Framer`], so a file
//! gives the same message bodies, the same positions and the same dead letters to both.
//!
//! # Layouts
//! - **JSON Lines**: each non-blank line is one message body (a `\r` before the `\n` is not part
//!   of it).
//! - **One document**: each top-level value of the file is read as a stream. A top-level array
//!   gives each of its elements as one message body; a top-level object whose member `records`
//!   (a diagnostic-settings envelope) or `value` (a Microsoft Graph page) is an array gives each
//!   element of that array, and its other members (`@odata.context`, `@odata.nextLink`, …) are
//!   skipped; any other top-level value (a single record, pretty-printed) is one message body.
//!   Several documents one after the other (pages appended to one file) are read in turn.
//!
//! The rule that tells them apart, on the first value of the file (after a UTF-8 byte order
//! mark and whitespace): the file is JSON Lines when that value starts with neither `[` nor
//! `{`, or when it closes on the line it starts on and something other than whitespace
//! follows it. Otherwise — the value spans lines (pretty-printed), is longer than the largest
//! message body (no line that long could be a message), or is the only value in the file —
//! the file is one document. A line of JSON Lines cannot span lines, so a pretty-printed
//! document is never taken for JSON Lines; and a file of a single one-line value gives the
//! same sign-ins read either way, so reading it as a document (element by element, in bounded
//! memory) loses nothing.
//!
//! # Design note: a hand scanner
//! A document is split by a small scanner that knows strings, escapes and bracket depth and
//! nothing else: it does not check that an element is valid JSON (the decoder does, and a bad
//! element is a dead letter with its own bytes). Each byte is looked at once, so time is linear
//! in the file, and only the element being read is held in memory (at most the largest message
//! body; see [`Problem::TooLarge`]). serde_json's streaming reader decodes every value it
//! skips, byte by byte through `io::Read`, and `struson` validates as it goes: both are several
//! times slower than the scanner (the `filter` benchmark measures it), and the decoder has to
//! parse each element afterwards anyway.
//!
//! # Positions
//! Every body comes with the uncompressed byte offsets of its first byte and of the byte after
//! it, the line it starts on and its number in the file (the line number for JSON Lines, the
//! element's number for a document). [`Resume`] is where reading goes on after a body: the byte
//! after it and, for a document, which array the scanner is in, so that a reader opened there
//! ([`Framer::resume`]) gives exactly the bodies that follow. Offsets of a compressed file
//! count decompressed bytes: resuming decompresses it again from its start and skips that
//! many (see [`open`]).
//!
//! # Problems
//! A body longer than the largest message body ([`DEFAULT_MAX_MESSAGE_BYTES`] unless set) is
//! not held: the scanner keeps its first [`PREFIX_BYTES`] bytes, counts the rest, and gives
//! [`Problem::TooLarge`] with the whole size. A document that ends inside a value or an array
//! gives [`Problem::Truncated`] with what was read of it; a document whose structure breaks
//! (a byte where `,` or `]` belongs) gives [`Problem::BadDocument`] with the rest of the file,
//! and reading of that file stops there. Each is one dead letter; none is a panic.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Seek};
use std::path::Path;

/// The default largest message body: 20 MiB, what an Event Hubs Dedicated event may carry
/// (Standard and Premium: 1 MiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 20 << 20;

/// How much of a body too large to hold a dead letter keeps: its first 64 KiB.
pub const PREFIX_BYTES: usize = 64 << 10;

/// The dead-letter code of a message body over the largest size.
pub const TOO_LARGE: &str = "too_large";

/// Bytes read from the file at a time.
const BLOCK: usize = 1 << 20;

/// How a file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One message body per line.
    Lines,
    /// One JSON document (or several in a row), split into elements; the scanner is here.
    Document(Nesting),
}

/// Where the document scanner is between two bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    /// Between top-level values.
    TopLevel,
    /// Inside a top-level array.
    Array,
    /// Inside the `records` or `value` array of a top-level object.
    MemberArray,
}

impl Nesting {
    /// The brackets open at this point: `""`, `"["` or `"{["` (how positions write it).
    pub fn as_str(self) -> &'static str {
        match self {
            Nesting::TopLevel => "",
            Nesting::Array => "[",
            Nesting::MemberArray => "{[",
        }
    }

    /// The nesting [`Nesting::as_str`] wrote.
    pub fn parse(s: &str) -> Option<Nesting> {
        match s {
            "" => Some(Nesting::TopLevel),
            "[" => Some(Nesting::Array),
            "{[" => Some(Nesting::MemberArray),
            _ => None,
        }
    }
}

/// Where reading resumes: right after a body that was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// The (uncompressed) byte after the body.
    pub byte: u64,
    /// Lines that end before `byte`, so that line numbers go on where they stopped.
    pub line: u64,
    /// Bodies before `byte`: the body's own number.
    pub index: u64,
    /// How the file is read, and where the scanner is.
    pub layout: Layout,
}

/// Why a body could not be taken whole; it is a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Longer than the largest message body; the frame holds its first [`PREFIX_BYTES`].
    TooLarge {
        /// The whole body's size in bytes.
        size: u64,
        /// The largest size allowed.
        max: u64,
    },
    /// The document ends inside this value, or before its array closes.
    Truncated,
    /// The document's structure breaks here: the frame holds the rest of the file.
    BadDocument {
        /// What was found instead.
        found: u8,
        /// What belonged there.
        expected: &'static str,
    },
}

impl Problem {
    /// A stable code for headers, metrics and dead-letter files.
    pub fn code(&self) -> &'static str {
        match self {
            Problem::TooLarge { .. } => TOO_LARGE,
            Problem::Truncated => "truncated",
            Problem::BadDocument { .. } => "bad_document",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::TooLarge { size, max } => write!(
                f,
                "the message body is {size} bytes, over the largest of {max} (--max-message-bytes); \
                 the dead letter keeps its first {} bytes",
                (*size).min(PREFIX_BYTES as u64)
            ),
            Problem::Truncated => {
                write!(
                    f,
                    "the document ends inside this value or before its array closes"
                )
            }
            Problem::BadDocument { found, expected } => write!(
                f,
                "the document breaks here: {:?} where {expected} belongs; the rest of the file is \
                 not read",
                char::from(*found)
            ),
        }
    }
}

/// The problem of a body that arrived whole but is over the largest size, if it is: the check
/// every source's bodies go through.
pub fn too_large(body: &[u8], max: usize) -> Option<Problem> {
    (body.len() > max).then_some(Problem::TooLarge {
        size: body.len() as u64,
        max: max as u64,
    })
}

/// One message body and where it was in the file.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The body (without a line's `\r\n`); with a problem, what is kept of it.
    pub body: &'a [u8],
    /// Set when the body could not be taken whole.
    pub problem: Option<Problem>,
    /// Uncompressed offset of its first byte.
    pub start: u64,
    /// Uncompressed offset of the byte after it.
    pub end: u64,
    /// The line it starts on, from 1.
    pub line: u64,
    /// Its number in the file, from 1: the line number for JSON Lines.
    pub index: u64,
    /// Where reading resumes after it.
    pub resume: Resume,
}

/// The compression of a file, told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// As is.
    None,
    /// gzip (`1f 8b`); members one after the other are read as one stream, as `gzip -d` does.
    Gzip,
    /// zstd (`28 b5 2f fd`); frames one after the other likewise.
    Zstd,
}

impl Compression {
    /// The compression these first bytes announce.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// A file's decompressed bytes, positioned at `resume` (the start when `None`), and its
/// compression. A plain file seeks there; a compressed one is decompressed from its start and
/// the bytes before `resume` are read and dropped.
pub fn open(
    path: &Path,
    resume: Option<&Resume>,
) -> io::Result<(Box<dyn Read + Send>, Compression)> {
    let file = std::fs::File::open(path)?;
    if file.metadata()?.is_dir() {
        return Err(io::Error::other("it is a directory"));
    }
    let mut file = BufReader::with_capacity(BLOCK, file);
    let skip = resume.map_or(0, |r| r.byte);
    // One read of a regular file gives its first bytes, all a magic number needs.
    if Compression::detect(file.fill_buf()?) == Compression::None {
        if skip > 0 {
            file.seek(io::SeekFrom::Start(skip))?;
        }
        return Ok((Box::new(file), Compression::None));
    }
    let (mut reader, compression) = decompress(file)?;
    let skipped = io::copy(&mut (&mut reader).take(skip), &mut io::sink())?;
    if skipped < skip {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("it decompresses to {skipped} bytes, fewer than the resume point {skip}"),
        ));
    }
    Ok((reader, compression))
}

/// A stream's decompressed bytes (standard input, a file), the compression told by its first
/// bytes.
pub fn decompress<R: BufRead + Send + 'static>(
    mut reader: R,
) -> io::Result<(Box<dyn Read + Send>, Compression)> {
    // The magic number, taken a read at a time (a pipe may give fewer bytes in one), then
    // put back in front.
    let mut head = Vec::with_capacity(4);
    while head.len() < 4 {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len().min(4 - head.len());
        head.extend_from_slice(&buf[..n]);
        reader.consume(n);
    }
    let compression = Compression::detect(&head);
    let reader = io::Cursor::new(head).chain(reader);
    Ok(match compression {
        Compression::None => (Box::new(reader), compression),
        Compression::Gzip => (
            Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
            compression,
        ),
        Compression::Zstd => (
            Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
            compression,
        ),
    })
}

/// Cuts a stream into message bodies; see the module's documentation.
pub struct Framer<R> {
    reader: R,
    max: usize,
    /// Bytes read and not dropped; `buf[0]` is at offset `base` of the stream.
    buf: Vec<u8>,
    base: u64,
    /// Where the scanner is, in `buf`.
    pos: usize,
    eof: bool,
    /// Lines that end before the offset `counted`.
    lines: u64,
    counted: u64,
    /// The last body's number.
    index: u64,
    layout: Option<Layout>,
    /// The body being read.
    body: Option<BodyStart>,
    /// The first bytes of a body over the largest size, once it is no longer held.
    prefix: Vec<u8>,
    /// The value being scanned (resumable across reads).
    value: ValueScan,
    /// The top-level object the scanner is in, if any.
    object: Object,
    /// An element or member was read: `,` or the closing bracket comes next.
    after_value: bool,
    /// A problem ended the file: nothing more is read.
    stopped: bool,
}

#[derive(Debug, Clone, Copy)]
struct BodyStart {
    start: u64,
    line: u64,
    /// Still whole in the buffer; false once over the largest size (see `prefix`).
    held: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct ValueScan {
    depth: u32,
    in_string: bool,
    scalar: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Object {
    /// Not in a top-level object.
    None,
    /// In one with no `records` or `value` array so far: held as one body.
    Held,
    /// In one that holds a `records` or `value` array: its elements are the bodies.
    Container,
}

/// What the scanner found next.
enum Step {
    /// The body begun ends at this offset.
    Body { end: u64, problem: Option<Problem> },
    /// Nothing more in the file.
    End,
}

const PLAIN: u8 = 0;
const QUOTE: u8 = 1;
const OPEN: u8 = 2;
const CLOSE: u8 = 3;
/// Ends a scalar without being part of it: whitespace, `,`, `:`.
const DELIM: u8 = 4;

/// What each byte is to the value scanner, outside strings.
static CLASS: [u8; 256] = {
    let mut t = [PLAIN; 256];
    t[b'"' as usize] = QUOTE;
    t[b'[' as usize] = OPEN;
    t[b'{' as usize] = OPEN;
    t[b']' as usize] = CLOSE;
    t[b'}' as usize] = CLOSE;
    t[b' ' as usize] = DELIM;
    t[b'\t' as usize] = DELIM;
    t[b'\n' as usize] = DELIM;
    t[b'\r' as usize] = DELIM;
    t[b',' as usize] = DELIM;
    t[b':' as usize] = DELIM;
    t
};

const BOM: &[u8] = &[0xef, 0xbb, 0xbf];

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl<R: Read> Framer<R> {
    /// Reads a stream from its start: the layout is told from its first value.
    pub fn new(reader: R, max_message_bytes: usize) -> Framer<R> {
        Framer::with(reader, max_message_bytes, None, 0, 0, 0)
    }

    /// Reads on from `resume`: `reader` is positioned at `resume.byte` (see [`open`]).
    pub fn resume(reader: R, max_message_bytes: usize, resume: &Resume) -> Framer<R> {
        Framer::with(
            reader,
            max_message_bytes,
            Some(resume.layout),
            resume.byte,
            resume.line,
            resume.index,
        )
    }

    fn with(
        reader: R,
        max: usize,
        layout: Option<Layout>,
        base: u64,
        lines: u64,
        index: u64,
    ) -> Framer<R> {
        // Right after an element, `,` or `]` comes next; the object around a member array is
        // a container.
        let (after_value, object) = match layout {
            Some(Layout::Document(Nesting::Array)) => (true, Object::None),
            Some(Layout::Document(Nesting::MemberArray)) => (true, Object::Container),
            _ => (false, Object::None),
        };
        Framer {
            reader,
            max: max.max(1),
            buf: Vec::with_capacity(BLOCK),
            base,
            pos: 0,
            eof: false,
            lines,
            counted: base,
            index,
            layout,
            body: None,
            prefix: Vec::new(),
            value: ValueScan::default(),
            object,
            after_value,
            stopped: false,
        }
    }

    /// The layout, once the first value told it (or the resume point did).
    pub fn layout(&self) -> Option<Layout> {
        self.layout
    }

    /// The (uncompressed) offset up to which the stream has been read.
    pub fn bytes_read(&self) -> u64 {
        self.offset(self.buf.len())
    }

    /// The next message body; `None` at the end of the file. An error is the reader's (or a
    /// corrupt compressed stream's); the bodies before it stand.
    #[allow(clippy::should_implement_trait)] // it lends from the framer: not an Iterator
    pub fn next(&mut self) -> io::Result<Option<Frame<'_>>> {
        if self.stopped {
            return Ok(None);
        }
        let layout = match self.layout {
            Some(l) => l,
            None => {
                let l = self.detect()?;
                self.layout = Some(l);
                l
            }
        };
        let step = match layout {
            Layout::Lines => self.next_line()?,
            Layout::Document(_) => self.next_element()?,
        };
        Ok(match step {
            Step::Body { end, problem } => Some(self.take_body(end, problem)),
            Step::End => None,
        })
    }

    // ---- the buffer ----

    fn offset(&self, i: usize) -> u64 {
        self.base + i as u64
    }

    /// How much of a body too large to hold is kept.
    fn kept(&self) -> usize {
        PREFIX_BYTES.min(self.max)
    }

    /// Counts the lines that end before `to`, an offset still in the buffer.
    fn count_lines(&mut self, to: u64) {
        if to > self.counted {
            let from = (self.counted - self.base) as usize;
            let to = (to - self.base) as usize;
            self.lines += memchr::memchr_iter(b'\n', &self.buf[from..to]).count() as u64;
            self.counted = self.offset(to);
        }
    }

    /// Reads more; false at the end of the stream. First drops what is no longer needed: all
    /// before the body being held, or before the scanner. `pos` keeps pointing at the same
    /// byte.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let mut keep_from = self.offset(self.pos);
        let kept = self.kept();
        let end = self.offset(self.buf.len());
        if let Some(b) = self.body.as_mut()
            && b.held
        {
            // One byte over: a line's `\r` is not part of its body.
            if end - b.start > self.max as u64 + 1 {
                // Over the largest size: keep its first bytes and let the rest go.
                let from = (b.start - self.base) as usize;
                self.prefix.clear();
                self.prefix.extend_from_slice(&self.buf[from..from + kept]);
                b.held = false;
            } else {
                keep_from = keep_from.min(b.start);
            }
        }
        self.count_lines(keep_from);
        let drop = (keep_from - self.base) as usize;
        if drop > 0 {
            self.buf.drain(..drop);
            self.base = keep_from;
            self.pos -= drop;
        }
        let len = self.buf.len();
        self.buf.resize(len + BLOCK, 0);
        let n = loop {
            match self.reader.read(&mut self.buf[len..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(len);
                    return Err(e);
                }
            }
        };
        self.buf.truncate(len + n);
        self.eof = n == 0;
        Ok(n > 0)
    }

    /// The byte at the scanner, reading more if needed; `None` at the end of the stream.
    fn peek(&mut self) -> io::Result<Option<u8>> {
        while self.pos >= self.buf.len() {
            if !self.fill()? {
                return Ok(None);
            }
        }
        Ok(Some(self.buf[self.pos]))
    }

    /// Skips whitespace; the byte after it, not consumed.
    fn peek_past_space(&mut self) -> io::Result<Option<u8>> {
        loop {
            match self.peek()? {
                Some(b) if is_space(b) => self.pos += 1,
                other => return Ok(other),
            }
        }
    }

    /// At least `n` bytes from the scanner in the buffer, unless the stream ends first.
    fn lookahead(&mut self, n: usize) -> io::Result<&[u8]> {
        while self.buf.len() - self.pos < n && self.fill()? {}
        Ok(&self.buf[self.pos..])
    }

    fn begin_body(&mut self) {
        let start = self.offset(self.pos);
        self.count_lines(start);
        self.body = Some(BodyStart {
            start,
            line: self.lines + 1,
            held: true,
        });
    }

    fn take_body(&mut self, end: u64, problem: Option<Problem>) -> Frame<'_> {
        let b = self.body.take().expect("a body was begun");
        let layout = self
            .layout
            .expect("the layout is known once a body is read");
        self.count_lines(end);
        // A line's body is without its `\n` and a `\r` before it; `end` is after them.
        let mut text_end = end;
        if layout == Layout::Lines {
            for strip in [b'\n', b'\r'] {
                if text_end > b.start && self.byte(text_end - 1) == Some(strip) {
                    text_end -= 1;
                }
            }
            self.index = b.line;
        } else {
            self.index += 1;
        }
        let size = text_end - b.start;
        let problem = match problem {
            None if !b.held || size > self.max as u64 => Some(Problem::TooLarge {
                size,
                max: self.max as u64,
            }),
            p => p,
        };
        let kept = self.kept();
        let body: &[u8] = if b.held {
            let from = (b.start - self.base) as usize;
            let whole = &self.buf[from..(text_end - self.base) as usize];
            match problem {
                Some(_) => &whole[..whole.len().min(kept)],
                None => whole,
            }
        } else {
            &self.prefix
        };
        Frame {
            body,
            problem,
            start: b.start,
            end,
            line: b.line,
            index: self.index,
            resume: Resume {
                byte: end,
                line: self.lines,
                index: self.index,
                // After a problem that ends the file, at its end: nothing more to read.
                layout: if self.stopped {
                    Layout::Document(Nesting::TopLevel)
                } else {
                    layout
                },
            },
        }
    }

    fn byte(&self, offset: u64) -> Option<u8> {
        offset
            .checked_sub(self.base)
            .and_then(|i| self.buf.get(i as usize))
            .copied()
    }

    // ---- the layout ----

    /// Tells the layout from the first value (see the module's documentation), reading ahead
    /// without consuming anything.
    fn detect(&mut self) -> io::Result<Layout> {
        let bom = self.lookahead(3)?.starts_with(BOM);
        if bom {
            self.pos += 3;
        }
        let Some(first) = self.peek_past_space()? else {
            return Ok(Layout::Lines); // an empty file: no bodies either way
        };
        // Blank lines before the first value are lines all the same.
        let at = self.offset(self.pos);
        self.count_lines(at);
        if first != b'[' && first != b'{' {
            return Ok(Layout::Lines);
        }
        // Everything from here is held while looking: the first body starts here.
        self.begin_body();
        let mut start = self.pos;
        let mut i = start;
        let (mut depth, mut in_string) = (0u32, false);
        let layout = 'look: loop {
            while i < self.buf.len() {
                if in_string {
                    match memchr::memchr2(b'"', b'\\', &self.buf[i..]) {
                        Some(k) if self.buf[i + k] == b'\\' => {
                            if i + k + 1 >= self.buf.len() {
                                i += k;
                                break;
                            }
                            i += k + 2;
                        }
                        Some(k) => {
                            i += k + 1;
                            in_string = false;
                        }
                        None => i = self.buf.len(),
                    }
                    continue;
                }
                match self.buf[i] {
                    // The first value closed on its line, and another follows.
                    b if depth == 0 && i > start && !is_space(b) => break 'look Layout::Lines,
                    b'"' => in_string = true,
                    b'[' | b'{' => depth += 1,
                    b']' | b'}' => depth = depth.saturating_sub(1),
                    b'\n' if depth > 0 => break 'look Layout::Document(Nesting::TopLevel),
                    _ => {}
                }
                i += 1;
            }
            if self.buf.len() - start > self.max {
                break Layout::Document(Nesting::TopLevel);
            }
            // `fill` keeps what is held (no more than the largest size), only moved.
            let before = self.base;
            let more = self.fill()?;
            let moved = (self.base - before) as usize;
            (start, i) = (start - moved, i - moved);
            if !more {
                // One value, then only whitespace: one document. A value cut short is read
                // as one too, and reported truncated.
                break Layout::Document(Nesting::TopLevel);
            }
        };
        self.body = None;
        self.pos = start;
        Ok(layout)
    }

    // ---- JSON Lines ----

    fn next_line(&mut self) -> io::Result<Step> {
        loop {
            if self.peek()?.is_none() {
                return Ok(Step::End);
            }
            self.begin_body();
            let mut from = self.pos;
            let end = loop {
                if let Some(k) = memchr::memchr(b'\n', &self.buf[from..]) {
                    break from + k + 1;
                }
                // The scanner stands at the end: a line over the largest size drops what it
                // does not keep.
                self.pos = self.buf.len();
                if !self.fill()? {
                    break self.buf.len();
                }
                from = self.pos;
            };
            self.pos = end;
            let blank = self.body.is_some_and(|b| {
                b.held
                    && self.buf[(b.start - self.base) as usize..end]
                        .iter()
                        .all(u8::is_ascii_whitespace)
            });
            if blank {
                self.body = None;
                continue;
            }
            // Every line before this one is counted (`begin_body`) and the scan above found
            // its only `\n`, at its end: count it without reading the line a second time.
            if let Some(b) = self.body
                && b.held
                && self.counted == b.start
                && self.buf[end - 1] == b'\n'
            {
                self.lines += 1;
                self.counted = self.offset(end);
            }
            return Ok(Step::Body {
                end: self.offset(end),
                problem: None,
            });
        }
    }

    // ---- one document ----

    fn nesting(&self) -> Nesting {
        match self.layout {
            Some(Layout::Document(n)) => n,
            _ => Nesting::TopLevel,
        }
    }

    fn set_nesting(&mut self, n: Nesting) {
        self.layout = Some(Layout::Document(n));
    }

    fn next_element(&mut self) -> io::Result<Step> {
        loop {
            let Some(b) = self.peek_past_space()? else {
                return Ok(match (self.nesting(), self.object) {
                    (Nesting::TopLevel, Object::None) => Step::End,
                    _ => self.truncated(),
                });
            };
            match self.nesting() {
                Nesting::TopLevel if self.object != Object::None => {
                    if let Some(step) = self.object_member(b)? {
                        return Ok(step);
                    }
                }
                Nesting::TopLevel => match b {
                    b'[' => {
                        self.pos += 1;
                        self.after_value = false;
                        self.set_nesting(Nesting::Array);
                    }
                    b'{' => {
                        // Held as one body until a `records` or `value` array shows it is a
                        // container.
                        self.begin_body();
                        self.pos += 1;
                        self.object = Object::Held;
                        self.after_value = false;
                    }
                    _ => {
                        // Any other top-level value is one body, to the end of its line.
                        self.begin_body();
                        let end = self.rest_of_line()?;
                        return Ok(Step::Body { end, problem: None });
                    }
                },
                Nesting::Array | Nesting::MemberArray => {
                    if b == b']' {
                        self.pos += 1;
                        // Back at the top level, or among the object's members after one.
                        self.after_value = self.nesting() == Nesting::MemberArray;
                        self.set_nesting(Nesting::TopLevel);
                        continue;
                    }
                    if self.after_value {
                        if b != b',' {
                            return self.bad_document(b, "',' or ']'");
                        }
                        self.pos += 1;
                        self.after_value = false;
                        continue;
                    }
                    if b == b',' {
                        return self.bad_document(b, "a value");
                    }
                    self.begin_body();
                    return Ok(match self.scan_value()? {
                        Some(end) => {
                            self.after_value = true;
                            Step::Body { end, problem: None }
                        }
                        None => self.truncated(),
                    });
                }
            }
        }
    }

    /// One step among a top-level object's members; a body when the object ends as one.
    fn object_member(&mut self, b: u8) -> io::Result<Option<Step>> {
        match b {
            b'}' => {
                self.pos += 1;
                let held = self.object == Object::Held;
                self.object = Object::None;
                self.after_value = false;
                // No `records` or `value` array: the object is one body.
                Ok(held.then(|| Step::Body {
                    end: self.offset(self.pos),
                    problem: None,
                }))
            }
            b',' if self.after_value => {
                self.pos += 1;
                self.after_value = false;
                Ok(None)
            }
            b'"' if !self.after_value => {
                let head = self.lookahead(b"\"records\"".len())?;
                let split = head.starts_with(b"\"records\"") || head.starts_with(b"\"value\"");
                if self.scan_value()?.is_none() {
                    return Ok(Some(self.truncated()));
                }
                match self.peek_past_space()? {
                    Some(b':') => self.pos += 1,
                    Some(other) => return self.bad_document(other, "':'").map(Some),
                    None => return Ok(Some(self.truncated())),
                }
                match self.peek_past_space()? {
                    Some(b'[') if split => {
                        self.pos += 1;
                        // A container after all: what was held of it goes.
                        if self.object == Object::Held {
                            self.body = None;
                        }
                        self.object = Object::Container;
                        self.after_value = false;
                        self.set_nesting(Nesting::MemberArray);
                        Ok(None)
                    }
                    Some(_) => {
                        if self.scan_value()?.is_none() {
                            return Ok(Some(self.truncated()));
                        }
                        self.after_value = true;
                        Ok(None)
                    }
                    None => Ok(Some(self.truncated())),
                }
            }
            other => {
                let expected = if self.after_value {
                    "',' or '}'"
                } else {
                    "a member name"
                };
                self.bad_document(other, expected).map(Some)
            }
        }
    }

    /// Scans the value at the scanner (not whitespace); the offset after it, or `None` if the
    /// file ends inside it. The state survives reads, so each byte is looked at once.
    fn scan_value(&mut self) -> io::Result<Option<u64>> {
        let first = self.buf[self.pos];
        self.value = ValueScan {
            depth: 0,
            in_string: false,
            scalar: !matches!(first, b'"' | b'[' | b'{'),
        };
        if self.value.scalar {
            self.pos += 1; // a scalar is at least its first byte, whatever it is
        }
        loop {
            if let Some(i) = self.scan_buffered() {
                self.pos = i;
                return Ok(Some(self.offset(i)));
            }
            if !self.fill()? {
                self.pos = self.buf.len();
                // A number or a literal at the very end of the file is complete.
                return Ok(self.value.scalar.then(|| self.offset(self.pos)));
            }
        }
    }

    /// Scans what is buffered from the scanner: the index after the value if it ends there;
    /// otherwise leaves the scanner where to go on.
    fn scan_buffered(&mut self) -> Option<usize> {
        let buf = &self.buf[..];
        let mut i = self.pos;
        let v = &mut self.value;
        if v.scalar {
            while i < buf.len() {
                if CLASS[buf[i] as usize] != PLAIN {
                    return Some(i);
                }
                i += 1;
            }
            self.pos = i;
            return None;
        }
        while i < buf.len() {
            if v.in_string {
                match memchr::memchr2(b'"', b'\\', &buf[i..]) {
                    Some(k) => {
                        i += k;
                        if buf[i] == b'\\' {
                            if i + 1 >= buf.len() {
                                break; // the escaped byte is not read yet
                            }
                            i += 2;
                        } else {
                            i += 1;
                            v.in_string = false;
                            if v.depth == 0 {
                                return Some(i);
                            }
                        }
                    }
                    None => i = buf.len(),
                }
                continue;
            }
            match CLASS[buf[i] as usize] {
                QUOTE => v.in_string = true,
                OPEN => v.depth += 1,
                CLOSE => {
                    v.depth = v.depth.saturating_sub(1);
                    if v.depth == 0 {
                        return Some(i + 1);
                    }
                }
                _ => {}
            }
            i += 1;
        }
        self.pos = i;
        None
    }

    /// The offset of the end of the line the scanner is on (before its newline), or of the
    /// file; the scanner goes past the newline.
    fn rest_of_line(&mut self) -> io::Result<u64> {
        loop {
            if let Some(k) = memchr::memchr(b'\n', &self.buf[self.pos..]) {
                let end = self.offset(self.pos + k);
                self.pos += k + 1;
                return Ok(end);
            }
            self.pos = self.buf.len();
            if !self.fill()? {
                return Ok(self.offset(self.pos));
            }
        }
    }

    /// The file ends inside a value, or with an array or object open: what was read of the
    /// body (nothing, between elements) is one dead letter, and reading stops.
    fn truncated(&mut self) -> Step {
        self.stopped = true;
        if self.body.is_none() {
            self.begin_body();
        }
        Step::Body {
            end: self.offset(self.buf.len()),
            problem: Some(Problem::Truncated),
        }
    }

    /// The structure broke at the scanner: the rest of the file (from the held object, if
    /// one is) is one dead letter, and reading stops.
    fn bad_document(&mut self, found: u8, expected: &'static str) -> io::Result<Step> {
        self.stopped = true;
        if self.body.is_none() {
            self.begin_body();
        }
        self.pos = self.buf.len();
        while self.fill()? {
            self.pos = self.buf.len();
        }
        Ok(Step::Body {
            end: self.offset(self.buf.len()),
            problem: Some(Problem::BadDocument { found, expected }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::{Cursor, Write};

    /// Gives at most `n` bytes per read: every buffer boundary gets crossed.
    struct Trickle<R>(R, usize);

    impl<R: Read> Read for Trickle<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.1);
            self.0.read(&mut buf[..n])
        }
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Got {
        body: String,
        code: Option<&'static str>,
        start: u64,
        end: u64,
        line: u64,
        index: u64,
        resume: Resume,
    }

    fn frames<R: Read>(mut f: Framer<R>) -> Vec<Got> {
        let mut out = Vec::new();
        while let Some(fr) = f.next().unwrap() {
            out.push(Got {
                body: String::from_utf8_lossy(fr.body).into_owned(),
                code: fr.problem.map(|p| p.code()),
                start: fr.start,
                end: fr.end,
                line: fr.line,
                index: fr.index,
                resume: fr.resume,
            });
            assert!(out.len() < 100_000, "no end");
        }
        out
    }

    /// The frames of `input`, checked to be the same whatever the reads' sizes.
    fn split(input: &[u8], max: usize) -> Vec<Got> {
        let whole = frames(Framer::new(input, max));
        for n in [1, 2, 3, 7, 64] {
            assert_eq!(
                frames(Framer::new(Trickle(input, n), max)),
                whole,
                "reads of {n} bytes"
            );
        }
        whole
    }

    fn bodies(input: &str) -> Vec<String> {
        split(input.as_bytes(), DEFAULT_MAX_MESSAGE_BYTES)
            .into_iter()
            .map(|g| {
                assert_eq!(g.code, None, "{g:?}");
                g.body
            })
            .collect()
    }

    #[test]
    fn json_lines_are_one_body_per_line_numbered_by_line() {
        let got = split(
            b"{\"records\":[]}\r\n\n  \n[1]\nlast-without-newline",
            DEFAULT_MAX_MESSAGE_BYTES,
        );
        let seen: Vec<_> = got
            .iter()
            .map(|g| (g.body.as_str(), g.line, g.index))
            .collect();
        assert_eq!(
            seen,
            [
                ("{\"records\":[]}", 1, 1),
                ("[1]", 4, 4),
                ("last-without-newline", 5, 5)
            ]
        );
        assert_eq!(
            got[0].resume,
            Resume {
                byte: 16,
                line: 1,
                index: 1,
                layout: Layout::Lines
            },
            "the byte after the line, its \\r\\n included"
        );
    }

    #[test]
    fn lines_of_arrays_stay_json_lines() {
        assert_eq!(bodies("[1]\n[2, 3]\n"), ["[1]", "[2, 3]"]);
        assert_eq!(
            bodies("{\"records\":[1]}\n{\"records\":[2]}"),
            ["{\"records\":[1]}", "{\"records\":[2]}"]
        );
    }

    #[test]
    fn a_one_line_array_gives_each_element() {
        assert_eq!(
            bodies("[{\"a\":1},{\"b\":[1,2]} , \"x]\",3,true,null]\n"),
            ["{\"a\":1}", "{\"b\":[1,2]}", "\"x]\"", "3", "true", "null"]
        );
    }

    #[test]
    fn a_pretty_printed_array_gives_each_element_with_its_line() {
        let doc = "\u{feff}[\n  {\n    \"a\": 1\n  },\n  {\n    \"b\": [\n      2\n    ]\n  }\n]\n";
        let got = split(doc.as_bytes(), DEFAULT_MAX_MESSAGE_BYTES);
        let seen: Vec<_> = got
            .iter()
            .map(|g| (g.body.as_str(), g.line, g.index))
            .collect();
        assert_eq!(
            seen,
            [
                ("{\n    \"a\": 1\n  }", 2, 1),
                ("{\n    \"b\": [\n      2\n    ]\n  }", 5, 2)
            ]
        );
        assert_eq!(
            &doc.as_bytes()[got[0].start as usize..got[0].end as usize],
            got[0].body.as_bytes()
        );
        assert_eq!(got[1].resume.layout, Layout::Document(Nesting::Array));
    }

    #[test]
    fn an_envelope_gives_its_records() {
        assert_eq!(
            bodies("{\"records\": [ {\"r\":1}, {\"r\":2} ]}"),
            ["{\"r\":1}", "{\"r\":2}"]
        );
        assert_eq!(
            bodies("{\n  \"records\": [\n    {\"r\": [1]}\n  ]\n}\n"),
            ["{\"r\": [1]}"]
        );
    }

    #[test]
    fn a_graph_page_gives_its_values_and_skips_its_links() {
        let page = r#"{
  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#auditLogs/signIns",
  "@odata.nextLink": "https://graph.microsoft.com/v1.0/auditLogs/signIns?$skiptoken=[x]{",
  "value": [
    {"id": "1", "status": {"errorCode": 0}},
    {"id": "2", "location": {"city": "Oslo"}}
  ],
  "@odata.count": 2
}"#;
        assert_eq!(
            bodies(page),
            [
                r#"{"id": "1", "status": {"errorCode": 0}}"#,
                r#"{"id": "2", "location": {"city": "Oslo"}}"#
            ]
        );
        // Pages appended one after the other are read in turn.
        assert_eq!(bodies(&format!("{page}\n{page}\n")).len(), 4);
    }

    #[test]
    fn a_pretty_printed_single_record_is_one_body() {
        let record = "{\n  \"category\": \"SignInLogs\",\n  \"properties\": {\"value\": [1]}\n}";
        assert_eq!(bodies(&format!("{record}\n")), [record]);
        // A `value` that is no array does not make a container either.
        let other = "{\n  \"value\": 3\n}";
        assert_eq!(bodies(other), [other]);
    }

    #[test]
    fn strings_with_brackets_and_escaped_quotes_do_not_split() {
        let doc = r#"[{"s":"]}\"[{,"},{"t":"\\"},"\\\"]",["]"]]"#;
        assert_eq!(
            bodies(doc),
            [
                r#"{"s":"]}\"[{,"}"#,
                r#"{"t":"\\"}"#,
                r#""\\\"]""#,
                r#"["]"]"#
            ]
        );
    }

    #[test]
    fn nested_arrays_are_elements_whole() {
        assert_eq!(bodies("[[1,[2,[3]]],[],{}]"), ["[1,[2,[3]]]", "[]", "{}"]);
    }

    #[test]
    fn empty_documents_and_files_give_nothing() {
        for doc in [
            "",
            "  \n",
            "[]",
            "[\n]\n",
            "{\"value\": []}",
            "{\n\"records\":[]\n}",
        ] {
            assert!(bodies(doc).is_empty(), "{doc:?}");
        }
    }

    #[test]
    fn a_truncated_document_is_one_dead_letter_and_no_panic() {
        let got = split(b"[\n{\"a\":1},\n{\"b\":\"cut", DEFAULT_MAX_MESSAGE_BYTES);
        let seen: Vec<_> = got.iter().map(|g| (g.body.as_str(), g.code)).collect();
        assert_eq!(
            seen,
            [("{\"a\":1}", None), ("{\"b\":\"cut", Some("truncated"))]
        );
        // Between elements, and inside a held object.
        let got = split(b"[{\"a\":1},\n", 100);
        assert_eq!(got.last().unwrap().code, Some("truncated"));
        assert_eq!(got.last().unwrap().body, "");
        let got = split(b"{\n\"id\": 1,\n\"x\": [", 100);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].code, got[0].body.as_str()),
            (Some("truncated"), "{\n\"id\": 1,\n\"x\": [")
        );
    }

    #[test]
    fn a_broken_document_stops_with_the_rest_as_one_dead_letter() {
        let got = split(b"[\n{\"a\":1} {\"b\":2}\n]\n", 100);
        let seen: Vec<_> = got.iter().map(|g| (g.body.as_str(), g.code)).collect();
        assert_eq!(
            seen,
            [
                ("{\"a\":1}", None),
                ("{\"b\":2}\n]\n", Some("bad_document"))
            ]
        );
        let p = Problem::BadDocument {
            found: b'{',
            expected: "',' or ']'",
        };
        assert!(
            p.to_string().contains("'{' where ',' or ']' belongs"),
            "{p}"
        );
    }

    #[test]
    fn a_body_over_the_largest_size_is_too_large_with_its_size_and_a_prefix() {
        let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(3 << 20));
        for doc in [
            format!("[{{\"a\":1}},{big},{{\"b\":2}}]"),
            format!("{{\"records\":[\n{{\"a\":1}},\n{big},\n{{\"b\":2}}\n]}}"),
            format!("{{\"a\":1}}\n{big}\n{{\"b\":2}}\n"),
        ] {
            let got = frames(Framer::new(doc.as_bytes(), 1 << 20));
            assert_eq!(got.len(), 3, "{}", &doc[..20]);
            assert_eq!(got[0].body, "{\"a\":1}");
            assert_eq!(got[1].code, Some(TOO_LARGE));
            assert_eq!(
                got[1].end - got[1].start,
                big.len() as u64 + u64::from(doc.ends_with('\n'))
            );
            assert_eq!(got[1].body.len(), PREFIX_BYTES);
            assert!(big.starts_with(&got[1].body));
            assert_eq!(got[2].body, "{\"b\":2}");
        }
        // The size is the body's; small limits keep at most the limit.
        let mut f = Framer::new(&b"[\"0123456789\",1]"[..], 5);
        let fr = f.next().unwrap().unwrap();
        assert_eq!(fr.problem, Some(Problem::TooLarge { size: 12, max: 5 }));
        assert_eq!(fr.body, b"\"0123");
        assert_eq!(f.next().unwrap().unwrap().body, b"1");
        assert!(too_large(b"123456", 5).is_some() && too_large(b"12345", 5).is_none());
    }

    #[test]
    fn a_huge_one_line_array_is_split_in_bounded_memory() {
        // Over the largest size as one line: the layout is told before it ends.
        let doc = format!("[{}]", vec!["{\"a\":[1,2,3]}"; 200_000].join(","));
        let mut f = Framer::new(Trickle(doc.as_bytes(), 4096), 64 << 10);
        let mut n = 0;
        while let Some(fr) = f.next().unwrap() {
            assert_eq!(fr.body, b"{\"a\":[1,2,3]}");
            n += 1;
        }
        assert_eq!(n, 200_000);
        assert!(f.buf.capacity() < 4 * BLOCK, "held {}", f.buf.capacity());
    }

    fn resumes_everywhere(input: &[u8], max: usize) {
        let all = split(input, max);
        for (k, g) in all.iter().enumerate() {
            let rest = frames(Framer::resume(
                Trickle(&input[g.resume.byte as usize..], 5),
                max,
                &g.resume,
            ));
            assert_eq!(rest, all[k + 1..], "resuming after body {}", k + 1);
        }
    }

    #[test]
    fn resuming_after_any_body_gives_exactly_the_bodies_after_it() {
        resumes_everywhere(
            b"{\"records\":[{\"r\":1}]}\n\n{\"records\":[{\"r\":2}]}\r\nx\n",
            100,
        );
        resumes_everywhere(
            b"[\n {\"a\":1},\n [2],\n \"3\"\n]\n[4]\n{\"x\":5}\n6\n",
            100,
        );
        resumes_everywhere(
            b"{\"@odata.context\":\"c\",\"value\":[{\"id\":1},\n{\"id\":2}],\"records\":[{\"id\":3}],\"n\":1}\n{\"value\":[{\"id\":4}]}",
            100,
        );
        resumes_everywhere(b"[{\"a\":\"0123456789\"},{\"b\":1}", 8);
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn gzip_and_zstd_files_are_read_by_their_magic_and_resume() {
        let doc = "[\n  {\"id\": \"1\"},\n  {\"id\": \"2\"},\n  {\"id\": \"3\"}\n]\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&doc.as_bytes()[..20]).unwrap();
        let mut gz2 =
            flate2::write::GzEncoder::new(gz.finish().unwrap(), flate2::Compression::fast());
        gz2.write_all(&doc.as_bytes()[20..]).unwrap(); // two members, as `cat a.gz b.gz`
        let gz = gz2.finish().unwrap();
        let zst = zstd::encode_all(doc.as_bytes(), 3).unwrap();
        let dir = tempfile_dir();
        let want = split(doc.as_bytes(), 1000);
        assert_eq!(want.len(), 3);
        for (name, bytes, compression) in [
            ("plain.json", doc.as_bytes().to_vec(), Compression::None),
            ("no-extension", gz.clone(), Compression::Gzip),
            ("a.json.zst", zst, Compression::Zstd),
        ] {
            let path = write(&dir, name, &bytes);
            let (r, c) = open(&path, None).unwrap();
            assert_eq!(c, compression);
            assert_eq!(frames(Framer::new(r, 1000)), want, "{name}");
            let (r, _) = open(&path, Some(&want[0].resume)).unwrap();
            assert_eq!(
                frames(Framer::resume(r, 1000, &want[0].resume)),
                want[1..],
                "{name}"
            );
        }
        let (r, c) = decompress(Cursor::new(gz)).unwrap();
        assert_eq!((c, frames(Framer::new(r, 1000))), (Compression::Gzip, want));
        let corrupt = write(&dir, "bad.gz", &[0x1f, 0x8b, 8, 0, 1, 2, 3]);
        let (r, _) = open(&corrupt, None).unwrap();
        assert!(
            Framer::new(r, 1000).next().is_err(),
            "a corrupt stream is an error"
        );
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "mfagap-framing-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// JSON values whose strings are full of brackets, quotes and escapes.
    fn value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value as V;
        let leaf = prop_oneof![
            Just(V::Null),
            any::<bool>().prop_map(V::Bool),
            any::<i64>().prop_map(V::from),
            "[\\[\\]{}\",:\\\\a-z \n\t\u{e9}]{0,12}".prop_map(V::String),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(V::Array),
                prop::collection::btree_map("[a-z\"\\]\\[]{0,6}", inner, 0..5)
                    .prop_map(|m| V::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn splitting_an_array_document_gives_exactly_its_elements(
            elements in prop::collection::vec(value(), 0..12),
            pretty in any::<bool>(),
            wrap in 0..3u8,
            read in 1..40usize,
        ) {
            let array = serde_json::Value::Array(elements.clone());
            let doc = match wrap {
                0 => array,
                1 => serde_json::json!({"records": array}),
                _ => serde_json::json!({"@odata.context": "x", "value": array, "@odata.nextLink": "]"}),
            };
            let text = if pretty {
                serde_json::to_vec_pretty(&doc).unwrap()
            } else {
                serde_json::to_vec(&doc).unwrap()
            };
            let got = frames(Framer::new(Trickle(&text[..], read), 1 << 20));
            let parsed: Vec<serde_json::Value> = got
                .iter()
                .map(|g| {
                    assert_eq!(g.code, None);
                    serde_json::from_str(&g.body).unwrap()
                })
                .collect();
            prop_assert_eq!(&parsed, &elements);
            for g in &got {
                prop_assert_eq!(&text[g.start as usize..g.end as usize], g.body.as_bytes());
            }
            if let Some(mid) = got.get(got.len() / 2) {
                let rest = frames(Framer::resume(&text[mid.resume.byte as usize..], 1 << 20, &mid.resume));
                prop_assert_eq!(&rest[..], &got[got.len() / 2 + 1..]);
            }
        }

        #[test]
        fn any_bytes_frame_without_panic_and_account_for_every_byte(
            bytes in prop::collection::vec(prop::sample::select(b"[]{}\",:\\ \n1a".to_vec()), 0..200),
            max in 1..50usize,
        ) {
            let got = frames(Framer::new(Trickle(&bytes[..], 3), max));
            let mut last = 0;
            for g in &got {
                prop_assert!(g.start >= last && g.end >= g.start && g.end <= bytes.len() as u64);
                prop_assert!(g.body.len() <= max.max(g.body.len().min(max)));
                last = g.end;
            }
        }
    }
}
