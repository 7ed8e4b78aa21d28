//! Preflight checks: each external part a service needs, tried before the service runs, with
//! one line per check — what was found, or what failed and how to fix it.
//!
//! Each service owns the checks of its parts (`mfagap_ingest::check`,
//! `mfagap_archiver::check`); `mfagap check` runs them and prints the lines. A check never
//! prints a secret: its texts come from names and from errors scrubbed of secret values.

use std::fmt;

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The part checked, e.g. `event hub`, `checkpoint store`, `kafka output topic`.
    pub part: String,
    /// What was found, or what failed with the fix.
    pub outcome: Outcome,
}

/// Passed with what was found, or failed with why and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It works; the text says what was found (partitions, a topic's size, …).
    Ok(String),
    /// It does not; `problem` says what answered, `fix` what to change.
    Failed {
        /// What went wrong, as the part answered.
        problem: String,
        /// The setting or permission to change.
        fix: String,
    },
}

impl Check {
    /// A check that passed.
    pub fn ok(part: impl Into<String>, found: impl Into<String>) -> Check {
        Check {
            part: part.into(),
            outcome: Outcome::Ok(found.into()),
        }
    }

    /// A check that failed.
    pub fn failed(
        part: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            part: part.into(),
            outcome: Outcome::Failed {
                problem: problem.into(),
                fix: fix.into(),
            },
        }
    }

    /// Whether it passed.
    pub fn passed(&self) -> bool {
        matches!(self.outcome, Outcome::Ok(_))
    }
}

/// A name for a probe object that no other check (another process, an earlier run) uses:
/// `stem`, the process id and the time in nanoseconds.
pub fn probe_name(stem: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{stem}-{}-{nanos}", std::process::id())
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::Ok(found) => write!(f, "ok      {}: {found}", self.part),
            Outcome::Failed { problem, fix } => {
                write!(f, "FAILED  {}: {problem}\n        fix: {fix}", self.part)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_says_ok_or_failed_with_the_fix_under_it() {
        let ok = Check::ok("event hub", "4 partitions");
        assert!(ok.passed());
        assert_eq!(ok.to_string(), "ok      event hub: 4 partitions");
        let bad = Check::failed("kafka output", "no answer in 10s", "check --bootstrap");
        assert!(!bad.passed());
        assert_eq!(
            bad.to_string(),
            "FAILED  kafka output: no answer in 10s\n        fix: check --bootstrap"
        );
    }
}
