//! Encodings of an emitted sign-in: what goes on the wire, apart from how it travels.
//!
//! An [`Encoder`] turns one emitted sign-in into a Kafka key, a payload and headers; the
//! ingest pipeline sends that to its output topic and `mfagap filter` writes the payload as a
//! line. The transports never build a record themselves, so a new format is one encoder here
//! and one [`Format`] variant. The native record ([`Native`]) is what the archiver reads.

mod native;

pub use native::Native;

use crate::record::SignIn;

/// One encoded sign-in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoded {
    /// The Kafka key: one user's sign-ins land in one partition, in order.
    pub key: Option<Vec<u8>>,
    /// The Kafka value: the record in the encoder's format.
    pub payload: Vec<u8>,
    /// Kafka headers (`category`, `tenantId`, `reason`, `schemaVersion`), so consumers can
    /// route without parsing the payload.
    pub headers: Vec<(&'static str, String)>,
}

/// A wire format of emitted sign-ins.
pub trait Encoder: Send + Sync + std::fmt::Debug {
    /// The format's name, as `--format` takes it.
    fn name(&self) -> &'static str;

    /// Appends the payload of `s` to `out` (one JSON document, no newline).
    fn write_payload(&self, s: &SignIn<'_>, out: &mut Vec<u8>);

    /// The headers that travel with the payload.
    fn headers(&self, s: &SignIn<'_>) -> Vec<(&'static str, String)>;

    /// The whole Kafka record: key, payload and headers.
    fn encode(&self, s: &SignIn<'_>) -> Encoded {
        let mut payload = Vec::with_capacity(2048);
        self.write_payload(s, &mut payload);
        Encoded {
            key: Some(s.key().as_bytes().to_vec()),
            payload,
            headers: self.headers(s),
        }
    }
}

/// The formats mfagap writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// mfagap's own record (`schemas/output-signin.schema.json`): what the archiver reads.
    #[default]
    Native,
}

impl Format {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [Format; 1] = [Format::Native];

    /// The encoder of this format.
    pub fn encoder(self) -> Box<dyn Encoder> {
        match self {
            Format::Native => Box::new(Native),
        }
    }

    /// The name `--format` takes and the summaries print.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Native => "native",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                let names: Vec<&str> = Format::ALL.iter().map(|f| f.as_str()).collect();
                format!("not a format: {s:?} ({})", names.join(", "))
            })
    }
}
