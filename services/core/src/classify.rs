//! The rule: which sign-ins succeeded without an MFA challenge, and why.
//!
//! This is the only place in mfagap that decides. It follows the rule as ARCHITECTURE.md (*The
//! rule*) and README.md state it, clause by clause — scope, succeeded, MFA evidence, emit,
//! reason — and weighs the evidence in the record rather than trusting
//! `authenticationRequirement` alone, as Microsoft itself advises.
//!
//! Where the rule leaves room, the choices are:
//! - an "older record" (evidence rule 5) is one with no `authenticationDetails` steps at all;
//! - a sign-in whose success cannot be told (no `status.errorCode`, no `resultType`) is not
//!   guessed at: the caller turns it into a dead letter;
//! - `mfaResult` on an emitted record is the skip detail when a step says MFA was skipped,
//!   otherwise `status.additionalDetails` (Azure's own words, as the seed report showed them).

use crate::category::Category;
use crate::decode::RecordError;
use crate::input::{Properties, RawRecord, Step, text};
use crate::lenient::Text;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Client apps that speak a legacy protocol, as `clientAppUsed` names them.
pub const DEFAULT_LEGACY_CLIENTS: &[&str] = &[
    "IMAP4",
    "POP3",
    "Authenticated SMTP",
    "Exchange ActiveSync",
    "Exchange Web Services",
    "MAPI Over HTTP",
    "Offline Address Book",
    "Other clients",
    "Outlook Anywhere (RPC over HTTP)",
    "Outlook Service",
    "Autodiscover",
    "Exchange Online PowerShell",
    "Reporting Web Services",
    "Universal Outlook",
    "IMAP",
    "POP",
    "SMTP",
];

/// Why an emitted sign-in had no MFA: what a security team acts on first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A protocol that cannot do MFA at all: block it.
    LegacyProtocol,
    /// MFA was required but waived (location, remembered device, …): review the exemption.
    MfaSkipped,
    /// Nothing asked for a second factor: a policy gap.
    SingleFactor,
}

impl Reason {
    /// Every reason, in the order summaries and metrics list them.
    pub const ALL: [Reason; 3] = [
        Reason::LegacyProtocol,
        Reason::MfaSkipped,
        Reason::SingleFactor,
    ];

    /// The name in the record's `reason`, the Kafka header and the `reason` label of metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::LegacyProtocol => "legacy_protocol",
            Reason::MfaSkipped => "mfa_skipped",
            Reason::SingleFactor => "single_factor",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The MFA evidence that was found first, in the order of the rule (ARCHITECTURE.md, *The
/// rule*). Each kind has a stable name, used in statistics and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    /// Rule 1: a succeeded step says MFA was completed or satisfied.
    StepCompleted,
    /// Rule 2: a succeeded step's requirement was multifactor authentication.
    StepRequirement,
    /// Rule 3: a succeeded step used a method that is multifactor by itself.
    StrongMethod,
    /// Rule 4: `authenticationRequirement` is multiFactorAuthentication.
    Requirement,
    /// Rule 5 (older records, without steps): `mfaDetail.authMethod` is set.
    MfaDetail,
    /// Rule 6 (every record): `status.additionalDetails` says MFA was completed or satisfied:
    /// Azure's own word on the whole sign-in, which real exports give while logging the
    /// claim step as failed or as a first-factor step.
    StatusDetail,
}

impl Evidence {
    /// Every kind of evidence, in the order of the rule.
    pub const ALL: [Evidence; 6] = [
        Evidence::StepCompleted,
        Evidence::StepRequirement,
        Evidence::StrongMethod,
        Evidence::Requirement,
        Evidence::MfaDetail,
        Evidence::StatusDetail,
    ];

    /// The name in statistics and in the `evidence` label of metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Evidence::StepCompleted => "step_completed",
            Evidence::StepRequirement => "step_requirement",
            Evidence::StrongMethod => "strong_method",
            Evidence::Requirement => "requirement",
            Evidence::MfaDetail => "mfa_detail",
            Evidence::StatusDetail => "status_detail",
        }
    }
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a record is not classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// A category that is not a sign-in log (AuditLogs, …).
    OtherCategory,
    /// A workload-identity sign-in while those are not asked for.
    Workload,
}

/// What the rule says about one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision<'a> {
    /// Succeeded without MFA evidence: goes to the output.
    Emit {
        /// The record's sign-in category.
        category: Category,
        /// Why no MFA: what the output record's `reason` says.
        reason: Reason,
        /// The skip detail of a step, else `status.additionalDetails`: the record's `mfaResult`.
        mfa_result: Option<Text<'a>>,
    },
    /// Succeeded with MFA evidence.
    Mfa(Category, Evidence),
    /// Did not succeed (errors and interrupts alike).
    Failed(Category),
    /// Out of scope: counted, neither emitted nor dead-lettered.
    Skipped(Skip),
}

/// The rule's settings: the two things the rule leaves to the operator.
#[derive(Debug, Clone)]
pub struct ClassifierConfig {
    /// Classify workload identities too (they have no MFA, so every success is emitted).
    pub include_workload: bool,
    /// `clientAppUsed` values that count as legacy protocols (matched without case).
    pub legacy_clients: Vec<String>,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig {
            include_workload: false,
            legacy_clients: DEFAULT_LEGACY_CLIENTS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

impl ClassifierConfig {
    /// The settings as operators give them: the workload flag and, optionally, a list of
    /// legacy clients that replaces the default one (blank entries ignored).
    pub fn from_options(include_workload: bool, legacy_clients: Option<&[String]>) -> Self {
        let mut config = ClassifierConfig {
            include_workload,
            ..ClassifierConfig::default()
        };
        if let Some(list) = legacy_clients {
            config.legacy_clients = list
                .iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
        }
        config
    }
}

/// Applies the rule; cheap to share between threads.
#[derive(Debug, Clone, Default)]
pub struct Classifier {
    config: ClassifierConfig,
}

impl Classifier {
    /// A classifier applying the rule with these settings.
    pub fn new(config: ClassifierConfig) -> Self {
        Classifier { config }
    }

    /// The settings it applies, for summaries and logs.
    pub fn config(&self) -> &ClassifierConfig {
        &self.config
    }

    /// Decides one record that `decode` accepted.
    pub(crate) fn classify<'a>(&self, r: &RawRecord<'a>) -> Result<Decision<'a>, RecordError> {
        // Scope.
        let Some(category) = r
            .category
            .as_ref()
            .and_then(|c| Category::parse(c.as_str()))
        else {
            return Ok(Decision::Skipped(Skip::OtherCategory));
        };
        if category.is_workload() && !self.config.include_workload {
            return Ok(Decision::Skipped(Skip::Workload));
        }
        let Some(p) = r.properties.as_ref() else {
            return Err(RecordError::NoProperties(category));
        };

        // Succeeded.
        let error_code = p
            .status
            .as_ref()
            .and_then(|s| s.error_code)
            .and_then(|c| c.value());
        let code = match error_code {
            Some(code) => code,
            None => match r.result_type.and_then(|c| c.value()) {
                Some(code) => code,
                None => return Err(RecordError::NoStatus(category)),
            },
        };
        if code != 0 {
            return Ok(Decision::Failed(category));
        }

        // MFA evidence.
        let steps = p.authentication_details.as_deref().unwrap_or(&[]);
        if let Some(evidence) = mfa_evidence(p, steps) {
            return Ok(Decision::Mfa(category, evidence));
        }

        // Emit, with the first reason that matches.
        let skip = steps
            .iter()
            .find(|s| says_mfa_skipped(s.detail()))
            .and_then(|s| s.authentication_step_result_detail.clone());
        let reason = if self.is_legacy(text(&p.client_app_used)) {
            Reason::LegacyProtocol
        } else if skip.is_some() {
            Reason::MfaSkipped
        } else {
            Reason::SingleFactor
        };
        let mfa_result = skip.or_else(|| {
            p.status
                .as_ref()
                .and_then(|s| s.additional_details.clone())
                .filter(|d| !d.as_str().trim().is_empty())
        });
        Ok(Decision::Emit {
            category,
            reason,
            mfa_result,
        })
    }

    fn is_legacy(&self, client: &str) -> bool {
        let client = client.trim();
        !client.is_empty()
            && self
                .config
                .legacy_clients
                .iter()
                .any(|l| l.eq_ignore_ascii_case(client))
    }
}

/// The evidence rules in their order; the first that holds is the answer.
fn mfa_evidence(p: &Properties, steps: &[Step]) -> Option<Evidence> {
    let succeeded = || steps.iter().filter(|s| s.succeeded());
    if succeeded().any(|s| says_mfa_done(s.detail())) {
        return Some(Evidence::StepCompleted);
    }
    if succeeded().any(|s| {
        names_multifactor(text(&s.authentication_step_requirement)) && !says_mfa_skipped(s.detail())
    }) {
        return Some(Evidence::StepRequirement);
    }
    if succeeded().any(|s| is_strong_method(text(&s.authentication_method))) {
        return Some(Evidence::StrongMethod);
    }
    if text(&p.authentication_requirement)
        .trim()
        .eq_ignore_ascii_case("multiFactorAuthentication")
    {
        let skipped = steps.iter().any(|s| says_mfa_skipped(s.detail()));
        let completed = steps.iter().any(|s| says_mfa_done(s.detail()));
        if !skipped || completed {
            return Some(Evidence::Requirement);
        }
    }
    if steps.is_empty() {
        let method = p.mfa_detail.as_ref().map_or("", |m| text(&m.auth_method));
        if !method.trim().is_empty() {
            return Some(Evidence::MfaDetail);
        }
    }
    // With or without steps: the status speaks for the whole sign-in. "First factor
    // requirement satisfied by claim…" does not mention MFA, so it is never evidence.
    let details = p
        .status
        .as_ref()
        .map_or("", |s| text(&s.additional_details));
    if says_mfa_done(details) {
        return Some(Evidence::StatusDetail);
    }
    None
}

/// The words of a text, split on anything that is not a letter or digit.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// Whether a text speaks of MFA: "MFA", "multifactor", "multi-factor", "multiFactor…".
fn mentions_mfa(text: &str) -> bool {
    names_multifactor(text) || words(text).any(|w| w.eq_ignore_ascii_case("mfa"))
}

/// "MFA successfully completed", "MFA requirement satisfied by claim in the token", … but not
/// "First factor requirement satisfied…", "MFA required…", "MFA requirement skipped…" or a
/// denial.
pub fn says_mfa_done(detail: &str) -> bool {
    if detail.is_empty() || !mentions_mfa(detail) {
        return false;
    }
    const NEGATIONS: [&str; 6] = ["not", "skipped", "denied", "failed", "declined", "blocked"];
    let mut done = false;
    for w in words(detail) {
        if w.eq_ignore_ascii_case("completed") || w.eq_ignore_ascii_case("satisfied") {
            done = true;
        } else if NEGATIONS.iter().any(|n| w.eq_ignore_ascii_case(n)) {
            return false;
        }
    }
    done
}

/// "MFA skipped due to location", "MFA requirement skipped due to remembered device", …
pub fn says_mfa_skipped(detail: &str) -> bool {
    !detail.is_empty() && words(detail).any(|w| w.eq_ignore_ascii_case("skipped"))
}

/// "Multifactor authentication", "Multi-factor authentication", "multiFactorAuthentication".
fn names_multifactor(text: &str) -> bool {
    squashed(text).contains("multifactor")
}

/// FIDO2 keys, Windows Hello for Business, passkeys, passwordless phone sign-in and
/// multifactor certificates prove two factors in one step.
fn is_strong_method(method: &str) -> bool {
    let m = squashed(method);
    ["fido2", "windowshello", "passkey", "passwordless"]
        .iter()
        .any(|k| m.contains(k))
        || (m.contains("certificate") && m.contains("multifactor"))
}

/// Lower case, ASCII letters and digits only: "Multi-factor Auth" → "multifactorauth".
/// Kept on the stack: the texts it reads are short labels, and anything past 64 letters is
/// not part of a method or requirement name.
fn squashed(text: &str) -> Squashed {
    let mut s = Squashed {
        buf: [0; 64],
        len: 0,
    };
    for b in text.bytes().filter(u8::is_ascii_alphanumeric) {
        if s.len == s.buf.len() {
            break;
        }
        s.buf[s.len] = b.to_ascii_lowercase();
        s.len += 1;
    }
    s
}

struct Squashed {
    buf: [u8; 64],
    len: usize,
}

impl Squashed {
    fn contains(&self, needle: &str) -> bool {
        let hay = &self.buf[..self.len];
        hay.windows(needle.len()).any(|w| w == needle.as_bytes())
    }
}

#[cfg(test)]
mod tests;
