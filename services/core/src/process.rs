//! One message body in, emitted sign-ins and dead letters out.
//!
//! The single entry point the services call: decode, classify, build. Sources and sinks only
//! move bytes; they never look inside a record, so a change to the rule cannot be missed by one
//! of them. Duplicate suppression is not done here because it needs one shared window per
//! stream, which the caller owns (see `dedup`).

use crate::classify::{Classifier, Decision, Skip};
use crate::decode::{self, Slot};
use crate::record::{SignIn, Source};
use crate::shape::UNKNOWN_SHAPE;
use crate::stats::{NO_CATEGORY, Stats};
use crate::timestamp::Micros;

/// A piece of input that could not be processed, with the bytes to replay it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter<'a> {
    /// The whole message body, or the one record's bytes.
    pub raw: &'a [u8],
    /// Stable code: `not_json`, `not_envelope`, `records_not_list`, `value_not_list`,
    /// `not_object`, `unknown_shape`, …
    pub code: &'static str,
    /// The reason, in words.
    pub error: String,
    /// The record's index in its message; `None` when the whole message is bad.
    pub record: Option<usize>,
}

impl<'a> DeadLetter<'a> {
    /// The whole message stands as the dead letter's bytes.
    fn message(raw: &'a [u8], code: &'static str, error: &dyn std::fmt::Display) -> Self {
        DeadLetter {
            raw,
            code,
            error: error.to_string(),
            record: None,
        }
    }
}

/// What `Processor::process` hands to the caller, in input order.
// Nearly every output is a sign-in: boxing it would cost an allocation per record.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Output<'a> {
    /// A sign-in that succeeded without MFA, before duplicate suppression.
    SignIn(SignIn<'a>),
    /// A message or record that could not be processed, with its bytes.
    DeadLetter(DeadLetter<'a>),
}

/// Decodes and classifies message bodies; shareable across threads.
#[derive(Debug, Clone, Default)]
pub struct Processor {
    classifier: Classifier,
}

impl Processor {
    /// A processor that applies this classifier's rule.
    pub fn new(classifier: Classifier) -> Self {
        Processor { classifier }
    }

    /// The classifier it applies, for its settings.
    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// Processes one message body. Emitted records are counted by the caller after duplicate
    /// suppression (`Stats::count_emitted` or `Stats::duplicates`); everything else is counted
    /// here.
    pub fn process<'a>(
        &self,
        body: &'a [u8],
        source: &Source<'a>,
        ingested_at: Micros,
        stats: &mut Stats,
        out: &mut impl FnMut(Output<'a>),
    ) {
        stats.messages += 1;
        let slots = match decode::decode(body) {
            Ok(slots) => slots,
            Err(e) => {
                stats.count_dead_letter(e.code(), true);
                stats.count_message_shape(UNKNOWN_SHAPE);
                out(Output::DeadLetter(DeadLetter::message(body, e.code(), &e)));
                return;
            }
        };
        let mut message_shape: Option<&'static str> = None;
        let mut seen = |shape: &'static str| {
            message_shape = match message_shape {
                None => Some(shape),
                Some(s) if s == shape => Some(s),
                Some(_) => Some(MIXED_SHAPES),
            }
        };
        for slot in slots.into_slots() {
            match slot {
                Slot::Record(r, shape) => {
                    let category = r.category.as_ref().map_or(NO_CATEGORY, |c| c.as_str());
                    stats.count_category(category);
                    stats.count_shape(shape.as_str());
                    seen(shape.as_str());
                    match self.classifier.classify(&r) {
                        Ok(Decision::Emit {
                            category,
                            reason,
                            mfa_result,
                        }) => match SignIn::build(
                            &r,
                            category,
                            reason,
                            mfa_result,
                            source,
                            ingested_at,
                        ) {
                            Ok(s) => out(Output::SignIn(s)),
                            // `decode` checked the shape, so this is not expected; if it
                            // happens, the message stands in for the record's own bytes.
                            Err(e) => {
                                stats.count_dead_letter(e.code(), false);
                                out(Output::DeadLetter(DeadLetter::message(body, e.code(), &e)));
                            }
                        },
                        Ok(Decision::Mfa(_, evidence)) => stats.count_mfa(evidence),
                        Ok(Decision::Failed(_)) => stats.failed += 1,
                        Ok(Decision::Skipped(Skip::OtherCategory)) => stats.skipped_other += 1,
                        Ok(Decision::Skipped(Skip::Workload)) => stats.skipped_workload += 1,
                        Err(e) => {
                            stats.count_dead_letter(e.code(), false);
                            out(Output::DeadLetter(DeadLetter::message(body, e.code(), &e)));
                        }
                    }
                }
                Slot::Bad {
                    index,
                    raw,
                    error,
                    shape,
                } => {
                    let category = category_of(&error);
                    stats.count_category(category);
                    let shape = shape.map_or(UNKNOWN_SHAPE, |s| s.as_str());
                    stats.count_shape(shape);
                    seen(shape);
                    stats.count_dead_letter(error.code(), false);
                    out(Output::DeadLetter(DeadLetter {
                        raw,
                        code: error.code(),
                        error: error.to_string(),
                        record: Some(index),
                    }));
                }
            }
        }
        stats.count_message_shape(message_shape.unwrap_or(EMPTY_MESSAGE));
    }
}

/// A message whose records are of different shapes.
const MIXED_SHAPES: &str = "mixed";
/// A message that held no record (an empty array or `records`).
const EMPTY_MESSAGE: &str = "empty";

fn category_of(e: &decode::RecordError) -> &str {
    use decode::RecordError as E;
    match e {
        E::NotObject | E::NoCategory | E::UnknownShape(_) | E::Uncategorised { .. } => NO_CATEGORY,
        E::Invalid { category, .. } => category,
        E::NoProperties(c) | E::NoId(c) | E::NoStatus(c) | E::NoTime(c) => c.as_str(),
        E::BadTime { category, .. } => category.as_str(),
    }
}
