//! Encodings of an emitted sign-in: what goes on the wire, apart from how it travels.
//!
//! An [`Encoder`] turns one emitted sign-in into a Kafka key, a payload and headers; the
//! ingest pipeline sends that to its output topic and `mfagap filter` writes the payload as a
//! line. The transports never build a record themselves, so a new format is one encoder here
//! and one [`Format`] variant. The native record ([`Native`]) is what the archiver reads.

mod ecs;
mod native;
mod ocsf;

pub use ecs::Ecs;
pub use native::Native;
pub use ocsf::{Ocsf, OcsfVersion};

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
    /// OCSF Authentication (class 3002), activity Logon (`schemas/ocsf-mapping.md`).
    Ocsf,
    /// Elastic Common Schema, as Elastic's Entra ID sign-in integration writes it
    /// (`schemas/ecs-mapping.md`).
    Ecs,
}

/// What an encoder is built with, beside its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncoderOptions {
    /// The OCSF schema version of `ocsf` outputs.
    pub ocsf_version: OcsfVersion,
}

impl Format {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [Format; 3] = [Format::Native, Format::Ocsf, Format::Ecs];

    /// The encoder of this format.
    pub fn encoder(self, options: EncoderOptions) -> Box<dyn Encoder> {
        match self {
            Format::Native => Box::new(Native),
            Format::Ocsf => Box::new(Ocsf::new(options.ocsf_version)),
            Format::Ecs => Box::new(Ecs),
        }
    }

    /// The name `--format` takes and the summaries print.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Native => "native",
            Format::Ocsf => "ocsf",
            Format::Ecs => "ecs",
        }
    }

    /// The output topic's default name: the native topic, with the format as a suffix for
    /// the others, so a SIEM's topic never mixes shapes.
    pub fn default_topic(self) -> &'static str {
        match self {
            Format::Native => "entra.signins.nonmfa",
            Format::Ocsf => "entra.signins.nonmfa.ocsf",
            Format::Ecs => "entra.signins.nonmfa.ecs",
        }
    }
}

/// The headers every format sends: routing without parsing the payload.
pub(crate) fn common_headers(s: &SignIn<'_>, format: Format) -> Vec<(&'static str, String)> {
    vec![
        ("category", s.category.as_str().to_owned()),
        (
            "tenantId",
            s.tenant_id
                .as_ref()
                .map_or(String::new(), |t| t.as_str().to_owned()),
        ),
        ("reason", s.reason.as_str().to_owned()),
        ("format", format.as_str().to_owned()),
    ]
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
