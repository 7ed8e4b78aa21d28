//! Counts of what happened to every message and record.
//!
//! "Never a silent drop" is only checkable if every record lands in exactly one bucket: the
//! buckets below add up to `records`, and `check` says so (tests and summaries rely on it).

use crate::classify::{Evidence, Reason};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// What one run (or one batch, merged later) did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Message bodies processed, good or bad.
    pub messages: u64,
    /// Records found in those bodies; the buckets below add up to it.
    pub records: u64,
    /// Records per `category` as written; `(none)` when a record had no readable category.
    pub by_category: BTreeMap<String, u64>,
    /// Records per input shape (`diagnostic`, `graph`, `log_analytics`; `unknown` for a record
    /// that is no object of a known shape); adds up to `records`. Counted per record, not per
    /// message, because one array or envelope may carry records of several shapes.
    pub by_shape: BTreeMap<String, u64>,
    /// Messages per input shape: the shape of all its records, `mixed` when they differ,
    /// `empty` when it held none, `unknown` when it was no JSON document of records at all
    /// (a whole-message dead letter); adds up to `messages`.
    pub messages_by_shape: BTreeMap<String, u64>,
    /// Emitted records per reason (after duplicate suppression).
    pub emitted: BTreeMap<Reason, u64>,
    /// Succeeded with MFA evidence.
    pub mfa: u64,
    /// The same, per kind of evidence found first; adds up to `mfa`.
    pub mfa_by_evidence: BTreeMap<Evidence, u64>,
    /// Did not succeed (errors, interrupts).
    pub failed: u64,
    /// Categories outside the sign-in logs.
    pub skipped_other: u64,
    /// Workload-identity sign-ins while those are not classified.
    pub skipped_workload: u64,
    /// Emitted records suppressed as repeats of one already emitted.
    pub duplicates: u64,
    /// Whole messages that could not be decoded.
    pub dead_letter_messages: u64,
    /// Single records that could not be decoded or built.
    pub dead_letter_records: u64,
    /// Dead letters per error code.
    pub dead_letters_by_code: BTreeMap<String, u64>,
}

/// Where a record with no readable category is counted.
pub const NO_CATEGORY: &str = "(none)";

impl Stats {
    /// One more record, of this category as written.
    pub fn count_category(&mut self, category: &str) {
        self.records += 1;
        match self.by_category.get_mut(category) {
            Some(n) => *n += 1,
            None => {
                self.by_category.insert(category.to_owned(), 1);
            }
        }
    }

    /// A message that was never decoded (too large, cut short): a whole-message dead letter
    /// of unknown shape.
    pub fn count_unread_message(&mut self, code: &str) {
        self.messages += 1;
        self.count_dead_letter(code, true);
        self.count_message_shape(crate::shape::UNKNOWN_SHAPE);
    }

    /// The shape of one whole message (see `messages_by_shape`).
    pub fn count_message_shape(&mut self, shape: &str) {
        match self.messages_by_shape.get_mut(shape) {
            Some(n) => *n += 1,
            None => {
                self.messages_by_shape.insert(shape.to_owned(), 1);
            }
        }
    }

    /// The shape of a record already counted by `count_category`.
    pub fn count_shape(&mut self, shape: &str) {
        match self.by_shape.get_mut(shape) {
            Some(n) => *n += 1,
            None => {
                self.by_shape.insert(shape.to_owned(), 1);
            }
        }
    }

    /// One more dead letter: a whole message or a single record, under its error code.
    pub fn count_dead_letter(&mut self, code: &str, whole_message: bool) {
        if whole_message {
            self.dead_letter_messages += 1;
        } else {
            self.dead_letter_records += 1;
        }
        *self
            .dead_letters_by_code
            .entry(code.to_owned())
            .or_default() += 1;
    }

    /// One more sign-in with MFA, under the evidence found first.
    pub fn count_mfa(&mut self, evidence: Evidence) {
        self.mfa += 1;
        *self.mfa_by_evidence.entry(evidence).or_default() += 1;
    }

    /// One more emitted sign-in (not a duplicate), under its reason.
    pub fn count_emitted(&mut self, reason: Reason) {
        *self.emitted.entry(reason).or_default() += 1;
    }

    /// Emitted records over every reason.
    pub fn emitted_total(&self) -> u64 {
        self.emitted.values().sum()
    }

    /// Dead letters of both kinds: whole messages and single records.
    pub fn dead_letters(&self) -> u64 {
        self.dead_letter_messages + self.dead_letter_records
    }

    /// Adds another batch's counts to these.
    pub fn merge(&mut self, o: &Stats) {
        self.messages += o.messages;
        self.records += o.records;
        for (k, v) in &o.by_category {
            *self.by_category.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.by_shape {
            *self.by_shape.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.messages_by_shape {
            *self.messages_by_shape.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.emitted {
            *self.emitted.entry(*k).or_default() += v;
        }
        self.mfa += o.mfa;
        for (k, v) in &o.mfa_by_evidence {
            *self.mfa_by_evidence.entry(*k).or_default() += v;
        }
        self.failed += o.failed;
        self.skipped_other += o.skipped_other;
        self.skipped_workload += o.skipped_workload;
        self.duplicates += o.duplicates;
        self.dead_letter_messages += o.dead_letter_messages;
        self.dead_letter_records += o.dead_letter_records;
        for (k, v) in &o.dead_letters_by_code {
            *self.dead_letters_by_code.entry(k.clone()).or_default() += v;
        }
    }

    /// Every record is in exactly one bucket; an error names the gap.
    pub fn check(&self) -> Result<(), String> {
        let buckets = self.emitted_total()
            + self.duplicates
            + self.mfa
            + self.failed
            + self.skipped_other
            + self.skipped_workload
            + self.dead_letter_records;
        let by_category: u64 = self.by_category.values().sum();
        let by_shape: u64 = self.by_shape.values().sum();
        let messages_by_shape: u64 = self.messages_by_shape.values().sum();
        if messages_by_shape != self.messages {
            return Err(format!(
                "{} messages, but their shapes add up to {messages_by_shape}",
                self.messages
            ));
        }
        if buckets != self.records || by_category != self.records || by_shape != self.records {
            return Err(format!(
                "records {} but outcomes add up to {buckets}, categories to {by_category} and \
                 shapes to {by_shape}",
                self.records
            ));
        }
        Ok(())
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "messages       {}", self.messages)?;
        writeln!(f, "records        {}", self.records)?;
        for (c, n) in &self.by_category {
            writeln!(f, "  {c:<36} {n}")?;
        }
        for (s, n) in &self.by_shape {
            writeln!(f, "  {:<36} {n}", format!("shape {s}"))?;
        }
        for (s, n) in &self.messages_by_shape {
            writeln!(f, "  {:<36} {n}", format!("messages of shape {s}"))?;
        }
        writeln!(f, "emitted        {}", self.emitted_total())?;
        for r in Reason::ALL {
            writeln!(
                f,
                "  {:<36} {}",
                r.as_str(),
                self.emitted.get(&r).unwrap_or(&0)
            )?;
        }
        writeln!(f, "with MFA       {}", self.mfa)?;
        for (e, n) in &self.mfa_by_evidence {
            writeln!(f, "  {:<36} {n}", e.as_str())?;
        }
        writeln!(f, "failed         {}", self.failed)?;
        writeln!(
            f,
            "skipped        {} (other categories {}, workload identities {})",
            self.skipped_other + self.skipped_workload,
            self.skipped_other,
            self.skipped_workload
        )?;
        writeln!(f, "duplicates     {}", self.duplicates)?;
        write!(
            f,
            "dead letters   {} (messages {}, records {})",
            self.dead_letters(),
            self.dead_letter_messages,
            self.dead_letter_records
        )?;
        for (c, n) in &self.dead_letters_by_code {
            write!(f, "\n  {c:<36} {n}")?;
        }
        Ok(())
    }
}
