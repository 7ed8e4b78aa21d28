//! The library every mfagap service shares: decode, classify, the output record, encodings.
//!
//! mfagap keeps the Entra ID sign-ins that succeeded without an MFA challenge. Everything that
//! decides *which* sign-ins those are lives here, once: the services only move bytes in and
//! records out, so a rule fixed here is fixed everywhere.
//!
//! The map, in the order one message body travels (ARCHITECTURE.md draws it whole):
//! - [`Processor::process`] (`process`) is the one entry point: it decodes a body (`decode`,
//!   over the lenient input types of `input` and [`lenient`]; `shape` tells a diagnostic record
//!   from a Graph `signIn` or a Log Analytics row and turns the latter two into the first),
//!   classifies each record
//!   ([`classify`]: the rule, and nothing else decides), and builds each emitted
//!   [`SignIn`] ([`record`], instants by [`timestamp`]) or a [`DeadLetter`];
//! - [`encode`]: the wire formats of an emitted sign-in (the native record, …);
//! - [`schema`] and [`batch`]: the same record as an Arrow schema and record batches, for
//!   Parquet;
//! - [`dedup`]: the bounded window that suppresses repeated sign-ins; [`Stats`]: where every
//!   record went;
//! - [`framing`]: files to message bodies (JSON Lines, or one JSON document read as a stream;
//!   gzip, zstd), for the file source and `filter`.

#![warn(missing_docs)]

pub mod batch;
mod category;
pub mod classify;
mod decode;
pub mod dedup;
pub mod encode;
pub mod framing;
mod input;
pub mod lenient;
mod process;
pub mod record;
pub mod schema;
mod shape;
mod stats;
pub mod timestamp;

pub use category::Category;
pub use classify::{Classifier, ClassifierConfig, Decision, Evidence, Reason};
pub use decode::RecordError;
pub use process::{DeadLetter, Output, Processor};
pub use record::{SignIn, Source};
pub use shape::{Shape, UNKNOWN_SHAPE};
pub use stats::{NO_CATEGORY, Stats};
