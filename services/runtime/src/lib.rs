//! What every mfagap service needs, once: the platform the ingest service, the archiver and
//! the `mfagap` command stand on. Nothing here knows what a sign-in is.
//!
//! - [`config`]: the `--config` TOML file, applied as `MFAGAP_…` environment defaults, so one
//!   table of names (each flag's `env`) covers flags, variables and the file.
//! - [`secret`]: values that print as `[redacted]`, and the redaction of `-X` properties and
//!   of errors that quote them.
//! - [`service`]: logging, stop signals and the runtime around a service's `run`, and the exit
//!   status it ends with ([`service::main_with`]).
//! - [`server`]: `/metrics`, `/health/live` and `/health/ready`; [`metrics`] installs the
//!   Prometheus recorder once per process, and each service names its own series.
//! - [`kafka`]: the one place where Kafka clients are configured and created (defaults,
//!   operator properties, forced settings, redacted logging, scrubbed errors, statistics),
//!   consumer lag from statistics, and the retrying producer with per-service metric names.
//! - [`check`]: the preflight checks' outcome, one line per external part.
//! - [`Backoff`]: the one retry schedule; [`Error`]: errors whose [`ErrorKind`] steers a
//!   loop (retry, stop, give up a partition), so no caller matches on error text.
//!
//! ARCHITECTURE.md draws where this crate sits: services depend on it and on `mfagap-core`;
//! it depends on neither of them.

#![warn(missing_docs)]

mod backoff;
pub mod check;
pub mod config;
mod error;
pub mod kafka;
pub mod metrics;
pub mod secret;
pub mod server;
pub mod service;

pub use backoff::Backoff;
pub use error::{Error, ErrorKind};
pub use secret::{Property, Secret};
pub use server::Readiness;
pub use service::LogFormat;
