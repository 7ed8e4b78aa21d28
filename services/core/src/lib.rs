//! The library every mfagap service shares.
//!
//! mfagap keeps the Entra ID sign-ins that succeeded without an MFA challenge. Everything that
//! decides *which* sign-ins those are lives here, once: the services only move bytes in and
//! records out, so a rule fixed here is fixed everywhere.

pub mod batch;
pub mod category;
pub mod classify;
pub mod decode;
pub mod dedup;
pub mod generate;
pub mod input;
pub mod lenient;
pub mod process;
pub mod record;
pub mod schema;
pub mod stats;
pub mod timestamp;

pub use category::Category;
pub use classify::{Classifier, ClassifierConfig, Decision, Evidence, Reason};
pub use process::{DeadLetter, Output, Processor};
pub use record::{SignIn, Source};
pub use stats::Stats;
