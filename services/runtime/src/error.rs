//! Errors that steer the loops: what a caller does next depends on the kind, never on the text.
//!
//! `anyhow` carries context at the edges (the message an operator reads); where a loop must
//! decide — retry with backoff, stop and exit, give up a partition to the replica that took it
//! — the error is an [`Error`] with its [`ErrorKind`], found in an `anyhow` chain with
//! [`Error::kind_of`].

use std::fmt;

/// What a caller does with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Settings, credentials or names that no retry can fix: stop with a message that says
    /// which setting is wrong.
    Configuration,
    /// A passing fault (a broker, a store or the network unavailable): try again with backoff.
    Retryable,
    /// The client cannot go on (librdkafka's fatal error): stop without committing what was
    /// not acknowledged, so that a restart resumes from the last committed positions.
    Fatal,
    /// Another replica took over (a newer producer epoch, a commit record written first):
    /// drop what was in progress and commit none of it.
    Fenced,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Configuration => "configuration",
            ErrorKind::Retryable => "retryable",
            ErrorKind::Fatal => "fatal",
            ErrorKind::Fenced => "fenced",
        })
    }
}

/// An error of a known kind, with the message an operator reads.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// An error of `kind`; the message must hold no secret (callers scrub foreign texts).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// A setting no retry can fix; the message says which.
    pub fn configuration(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Configuration, message)
    }

    /// A passing fault: the caller tries again with backoff.
    pub fn retryable(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Retryable, message)
    }

    /// The client cannot go on: the service stops without committing.
    pub fn fatal(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Fatal, message)
    }

    /// Another replica took over: the work in progress is dropped.
    pub fn fenced(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Fenced, message)
    }

    /// What the caller does with it.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The kind of the first typed error in a chain of contexts, if any.
    pub fn kind_of(e: &anyhow::Error) -> Option<ErrorKind> {
        e.chain()
            .find_map(|c| c.downcast_ref::<Error>())
            .map(Error::kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn the_kind_is_found_under_any_context() {
        let e: anyhow::Result<()> = Err(Error::configuration("no such hub").into());
        let e = e.context("cannot open Event Hubs").unwrap_err();
        assert_eq!(Error::kind_of(&e), Some(ErrorKind::Configuration));
        assert_eq!(format!("{e:#}"), "cannot open Event Hubs: no such hub");
        let plain = anyhow::anyhow!("401 not found credential");
        assert_eq!(Error::kind_of(&plain), None, "text is never read");
    }
}
