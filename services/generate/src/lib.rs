//! Synthetic sign-in streams that look like what Azure Monitor really sends, with the truth.
//!
//! Demos, tests and benchmarks need input that nobody can export from a real tenant: millions of
//! records, every quirk Azure is known for, and for every record the answer the rule must give.
//! The generator writes message bodies by hand (not through serde) so that it can produce the
//! quirks — numbers as strings, escaped `\/` and `\u00e9`, `null` where a string is expected,
//! US timestamps, broken messages — and so that it runs faster than the filter reads.
//!
//! Every record carries an [`Expected`] written from the scenario it was built from, not from the
//! classifier, so comparing the two tests the rule rather than restating it. The same seed always
//! gives the same bytes.

#![warn(missing_docs)]

use mfagap_core::Category;
use mfagap_core::timestamp::Micros;
use mfagap_core::{Evidence, Reason};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::{self, Write};

/// What the stream looks like; the shares are probabilities per message or per record.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// The seed: the same seed and settings always give the same bytes.
    pub seed: u64,
    /// Records per message (Azure batches up to a few dozen).
    pub min_records: usize,
    /// The most records in one message.
    pub max_records: usize,
    /// Share of user sign-ins that succeed without MFA.
    pub non_mfa_share: f64,
    /// Share of user sign-ins that fail or are interrupted.
    pub failed_share: f64,
    /// Share of records from workload identities (service principals, managed identities).
    pub workload_share: f64,
    /// Share of records of another category sharing the hub (AuditLogs).
    pub other_category_share: f64,
    /// Share of messages that are malformed as a whole.
    pub malformed_share: f64,
    /// Share of records that are malformed inside a good message.
    pub bad_record_share: f64,
    /// Share of records that repeat an earlier record byte for byte.
    pub duplicate_share: f64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            seed: 1,
            min_records: 1,
            max_records: 60,
            non_mfa_share: 0.3,
            failed_share: 0.15,
            workload_share: 0.1,
            other_category_share: 0.02,
            malformed_share: 0.005,
            bad_record_share: 0.002,
            duplicate_share: 0.01,
        }
    }
}

/// How a whole message is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MalformedKind {
    /// Cut short in the middle.
    NotJson,
    /// Valid JSON, but a string, number or `null`.
    NotEnvelope,
    /// `{"records": {…}}`.
    RecordsNotList,
    /// Bytes that are not UTF-8 inside a string.
    NotUtf8,
}

impl MalformedKind {
    /// The dead-letter code the pipeline must give it.
    pub fn code(self) -> &'static str {
        match self {
            MalformedKind::NotJson | MalformedKind::NotUtf8 => "not_json",
            MalformedKind::NotEnvelope => "not_envelope",
            MalformedKind::RecordsNotList => "records_not_list",
        }
    }
}

/// What the rule must say about one record, on the default settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedOutcome {
    /// Succeeded without MFA evidence.
    Emit {
        /// The reason the output record must give.
        reason: Reason,
        /// The `mfaResult` the output record must carry.
        mfa_result: Option<String>,
    },
    /// Succeeded with MFA evidence; the kind the rule must find first.
    Mfa(Evidence),
    /// Failed or interrupted.
    Failed,
    /// A workload identity: skipped by default; with the flag, emitted as `single_factor` when
    /// it succeeded.
    Workload {
        /// Whether the sign-in succeeded, so whether it is emitted with the flag.
        succeeded: bool,
    },
    /// Another category (AuditLogs).
    OtherCategory,
    /// A malformed record: a dead letter with this code.
    DeadLetter(&'static str),
}

/// The truth about one record of a generated message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The record's `category`, as written.
    pub category: String,
    /// The record's `properties.id`.
    pub id: String,
    /// What the rule must say about it.
    pub outcome: ExpectedOutcome,
    /// The same (category, id) was sent before: an emitted repeat must be suppressed.
    pub repeat: bool,
    /// The sign-in's time in UTC microseconds, as the output must carry it.
    pub created_micros: Option<Micros>,
    /// The `userPrincipalName` the output must carry.
    pub user_principal_name: Option<String>,
    /// Display names of the applied conditional-access policies, in order.
    pub policies: Vec<String>,
    /// Which scenario built the record, for test messages.
    pub scenario: &'static str,
}

/// One message body and the truth about it.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The message body, as Event Hubs would deliver it.
    pub body: Vec<u8>,
    /// Set when the message as a whole is broken (then `expected` is empty).
    pub malformed: Option<MalformedKind>,
    /// The truth about each record, in the body's order.
    pub expected: Vec<Expected>,
}

/// A deterministic source of realistic messages.
pub struct Generator {
    config: GeneratorConfig,
    rng: ChaCha8Rng,
    users: Vec<User>,
    tenant: String,
    /// Recently written records, for duplicates.
    recent: Vec<(Vec<u8>, Expected)>,
    recent_next: usize,
    clock: i64,
    messages: u64,
}

const RECENT: usize = 1024;

struct User {
    id: String,
    upn: String,
    display: String,
    /// Some users are service accounts that always sign in with a password.
    service_account: bool,
}

impl Generator {
    /// A generator for these settings: the seed picks the tenant, the users and every record.
    pub fn new(config: GeneratorConfig) -> Generator {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let tenant = uuid(&mut rng);
        let users = (0..2000).map(|i| user(&mut rng, i)).collect();
        Generator {
            config,
            rng,
            users,
            tenant,
            recent: Vec::with_capacity(RECENT),
            recent_next: 0,
            // 2025-12-12T00:00:00Z in nanoseconds, so the stream crosses hour partitions.
            clock: 1_765_497_600_000_000_000,
            messages: 0,
        }
    }

    /// Writes `messages` message bodies as JSON Lines.
    pub fn write_jsonl(&mut self, messages: u64, out: &mut impl Write) -> io::Result<()> {
        for _ in 0..messages {
            let m = self.next_message();
            out.write_all(&m.body)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// The next message body.
    pub fn next_message(&mut self) -> Generated {
        self.messages += 1;
        // About 200 messages a second of wall time: a busy tenant.
        self.clock += self.rng.random_range(1_000_000..9_000_000);
        if self.rng.random_bool(self.config.malformed_share) {
            return self.malformed();
        }
        let form = self.rng.random_range(0..100);
        let n = if form < 5 {
            1
        } else {
            self.rng
                .random_range(self.config.min_records..=self.config.max_records.max(1))
        };
        let mut body = Vec::with_capacity(n * 4096 + 16);
        let mut expected = Vec::with_capacity(n);
        match form {
            0..5 => {
                let e = self.record(&mut body, false);
                expected.push(e);
            }
            5..15 => {
                body.push(b'[');
                self.records(&mut body, &mut expected, n);
                body.push(b']');
            }
            _ => {
                body.extend_from_slice(b"{ \"records\": [");
                self.records(&mut body, &mut expected, n);
                body.extend_from_slice(b"]}");
            }
        }
        Generated {
            body,
            malformed: None,
            expected,
        }
    }

    fn records(&mut self, body: &mut Vec<u8>, expected: &mut Vec<Expected>, n: usize) {
        for i in 0..n {
            if i > 0 {
                body.push(b',');
            }
            let e = self.record(body, true);
            expected.push(e);
        }
    }

    /// One record, appended to `body`.
    fn record(&mut self, body: &mut Vec<u8>, in_list: bool) -> Expected {
        let c = &self.config;
        let (dup, bad, workload, other) = (
            c.duplicate_share,
            c.bad_record_share,
            c.workload_share,
            c.other_category_share,
        );
        if !self.recent.is_empty() && self.rng.random_bool(dup) {
            let i = self.rng.random_range(0..self.recent.len());
            let (bytes, e) = &self.recent[i];
            body.extend_from_slice(bytes);
            let mut e = e.clone();
            e.repeat = true;
            return e;
        }
        if self.rng.random_bool(bad) {
            return self.bad_record(body, in_list);
        }
        let start = body.len();
        let e = if self.rng.random_bool(other) {
            self.audit_record(body)
        } else if self.rng.random_bool(workload) {
            self.workload_record(body)
        } else {
            self.user_record(body)
        };
        if self.recent.len() < RECENT {
            self.recent.push((body[start..].to_vec(), e.clone()));
        } else {
            // The slot's buffer is reused: a record's bytes are kilobytes, and allocating
            // them anew for every record was a good part of the generator's time.
            let (bytes, truth) = &mut self.recent[self.recent_next];
            bytes.clear();
            bytes.extend_from_slice(&body[start..]);
            truth.clone_from(&e);
            self.recent_next = (self.recent_next + 1) % RECENT;
        }
        e
    }

    fn user_record(&mut self, out: &mut Vec<u8>) -> Expected {
        let rng = &mut self.rng;
        let category = match rng.random_range(0..100) {
            0..50 => Category::SignInLogs,
            50..92 => Category::NonInteractiveUserSignInLogs,
            _ => Category::AdfsSignInLogs,
        };
        let u = rng.random_range(0..self.users.len());
        let user = &self.users[u];
        let roll: f64 = rng.random();
        let non_mfa = self.config.non_mfa_share * if user.service_account { 3.0 } else { 1.0 };
        let s = if roll < self.config.failed_share {
            failed_scenario(rng)
        } else if roll < self.config.failed_share + non_mfa {
            non_mfa_scenario(rng, category, user.service_account)
        } else {
            mfa_scenario(rng, category)
        };
        let when = Instant::around(rng, self.clock);
        let id = uuid(rng);
        let policies = policies(rng);
        let applied: Vec<String> = policies
            .iter()
            .filter(|p| p.result == "success" || p.result == "failure")
            .map(|p| p.name.to_string())
            .collect();
        let w = RecordWriter {
            category: category.as_str(),
            tenant: &self.tenant,
            id: &id,
            user: Some(user),
            when: &when,
            s: &s,
            policies: &policies,
        };
        w.write(rng, out);
        Expected {
            category: category.as_str().to_owned(),
            id,
            outcome: s.outcome.clone(),
            repeat: false,
            created_micros: Some(when.truth),
            user_principal_name: Some(user.upn.clone()),
            policies: applied,
            scenario: s.name,
        }
    }

    fn workload_record(&mut self, out: &mut Vec<u8>) -> Expected {
        let rng = &mut self.rng;
        let category = [
            Category::ServicePrincipalSignInLogs,
            Category::ManagedIdentitySignInLogs,
            Category::MicrosoftServicePrincipalSignInLogs,
        ][rng.random_range(0..3)];
        let succeeded = rng.random_bool(0.9);
        let s = Scenario {
            name: "workload",
            error_code: if succeeded { 0 } else { 7000215 },
            failure_reason: if succeeded {
                "Other."
            } else {
                "Invalid client secret provided."
            },
            additional_details: None,
            auth_requirement: "singleFactorAuthentication",
            client_app: None,
            steps: vec![],
            mfa_detail: None,
            ca_status: None,
            outcome: ExpectedOutcome::Workload { succeeded },
        };
        let when = Instant::around(rng, self.clock);
        let id = uuid(rng);
        let w = RecordWriter {
            category: category.as_str(),
            tenant: &self.tenant,
            id: &id,
            user: None,
            when: &when,
            s: &s,
            policies: &[],
        };
        w.write(rng, out);
        Expected {
            category: category.as_str().to_owned(),
            id,
            outcome: s.outcome,
            repeat: false,
            created_micros: Some(when.truth),
            user_principal_name: None,
            policies: vec![],
            scenario: "workload",
        }
    }

    fn audit_record(&mut self, out: &mut Vec<u8>) -> Expected {
        let rng = &mut self.rng;
        let id = format!("Directory_{}", uuid(rng));
        let when = Instant::around(rng, self.clock);
        out.extend_from_slice(b"{\"time\":\"");
        when.write_iso(out, 7, 0);
        write!(
            out,
            "\",\"resourceId\":\"/tenants/{t}/providers/Microsoft.aadiam\",\"operationName\":\"Update user\",\
             \"operationVersion\":\"1.0\",\"category\":\"AuditLogs\",\"tenantId\":\"{t}\",\"resultSignature\":\"None\",\
             \"durationMs\":0,\"callerIpAddress\":\"<null>\",\"correlationId\":\"{c}\",\"Level\":4,\
             \"properties\":{{\"id\":\"{id}\",\"category\":\"UserManagement\",\"result\":\"success\",\
             \"activityDisplayName\":\"Update user\",\"loggedByService\":\"Core Directory\",\
             \"initiatedBy\":{{\"app\":{{\"displayName\":\"Microsoft Substrate Management\"}}}},\
             \"targetResources\":[{{\"id\":\"{u}\",\"type\":\"User\",\"modifiedProperties\":[]}}]}}}}",
            t = self.tenant,
            c = uuid(rng),
            u = uuid(rng),
        )
        .expect("writing to a Vec cannot fail");
        Expected {
            category: "AuditLogs".into(),
            id,
            outcome: ExpectedOutcome::OtherCategory,
            repeat: false,
            created_micros: None,
            user_principal_name: None,
            policies: vec![],
            scenario: "audit",
        }
    }

    /// A record the pipeline must dead-letter, with the code it must give.
    fn bad_record(&mut self, out: &mut Vec<u8>, in_list: bool) -> Expected {
        let rng = &mut self.rng;
        let id = uuid(rng);
        let kinds = if in_list { 6 } else { 5 };
        let (code, category) = match rng.random_range(0..kinds) {
            0 => {
                write!(out, "{{\"category\":\"SignInLogs\",\"tenantId\":\"{}\",\"resultType\":\"0\",\"time\":\"2025-12-12T10:00:00Z\"}}", self.tenant)
                    .expect("Vec");
                ("no_properties", "SignInLogs")
            }
            1 => {
                write!(out, "{{\"category\":\"SignInLogs\",\"time\":\"2025-12-12T10:00:00Z\",\"properties\":{{\"id\":\"\",\"status\":{{\"errorCode\":0}},\"userPrincipalName\":\"nobody@contoso.com\"}}}}")
                    .expect("Vec");
                ("no_id", "SignInLogs")
            }
            2 => {
                write!(out, "{{\"category\":\"NonInteractiveUserSignInLogs\",\"time\":\"2025-12-12T10:00:00Z\",\"properties\":{{\"id\":\"{id}\",\"status\":{{\"failureReason\":\"Other.\"}}}}}}")
                    .expect("Vec");
                ("no_status", "NonInteractiveUserSignInLogs")
            }
            3 => {
                write!(out, "{{\"category\":\"SignInLogs\",\"resultType\":0,\"time\":\"yesterday\",\"properties\":{{\"id\":\"{id}\",\"createdDateTime\":\"13/45/2025 25:61:00 XM\",\"status\":{{\"errorCode\":0}}}}}}")
                    .expect("Vec");
                ("bad_time", "SignInLogs")
            }
            4 => {
                write!(
                    out,
                    "{{\"time\":\"2025-12-12T10:00:00Z\",\"properties\":{{\"id\":\"{id}\"}}}}"
                )
                .expect("Vec");
                ("no_category", "")
            }
            _ => {
                out.extend_from_slice(b"\"SignInLogs record lost its braces\"");
                ("not_object", "")
            }
        };
        Expected {
            category: category.into(),
            id: if code == "no_id" { String::new() } else { id },
            outcome: ExpectedOutcome::DeadLetter(code),
            repeat: false,
            created_micros: None,
            user_principal_name: None,
            policies: vec![],
            scenario: "bad_record",
        }
    }

    fn malformed(&mut self) -> Generated {
        let kind = match self.rng.random_range(0..4) {
            0 => MalformedKind::NotJson,
            1 => MalformedKind::NotEnvelope,
            2 => MalformedKind::RecordsNotList,
            _ => MalformedKind::NotUtf8,
        };
        let mut body = Vec::with_capacity(4096);
        match kind {
            MalformedKind::NotJson => {
                body.extend_from_slice(b"{\"records\":[");
                self.user_record(&mut body);
                let cut = self.rng.random_range(1..body.len());
                body.truncate(cut);
            }
            MalformedKind::NotEnvelope => {
                let texts: [&[u8]; 4] = [b"\"hello\"", b"42", b"null", b"true"];
                body.extend_from_slice(texts[self.rng.random_range(0..texts.len())]);
            }
            MalformedKind::RecordsNotList => {
                body.extend_from_slice(b"{\"records\":");
                self.user_record(&mut body);
                body.push(b'}');
            }
            MalformedKind::NotUtf8 => {
                body.extend_from_slice(
                    b"{\"records\":[{\"category\":\"SignInLogs\",\"properties\":{\"userDisplayName\":\"\xff\xfe\xc3\"}}]}",
                );
            }
        }
        Generated {
            body,
            malformed: Some(kind),
            expected: vec![],
        }
    }
}

/// What happened in one sign-in: the facts the record states and the answer they imply.
struct Scenario {
    name: &'static str,
    error_code: i64,
    failure_reason: &'static str,
    additional_details: Option<&'static str>,
    auth_requirement: &'static str,
    client_app: Option<&'static str>,
    steps: Vec<StepSpec>,
    /// `Some` only on older records without steps.
    mfa_detail: Option<&'static str>,
    /// `conditionalAccessStatus` when the scenario states it; otherwise it follows the
    /// applied policies.
    ca_status: Option<&'static str>,
    outcome: ExpectedOutcome,
}

struct StepSpec {
    method: &'static str,
    detail: Option<&'static str>,
    requirement: &'static str,
    succeeded: bool,
}

const PASSWORD: StepSpec = StepSpec {
    method: "Password",
    detail: Some("Correct password"),
    requirement: "Primary authentication",
    succeeded: true,
};

const MODERN_CLIENTS: [&str; 3] = ["Browser", "Mobile Apps and Desktop clients", "Browser"];
const LEGACY_CLIENTS: [&str; 8] = [
    "IMAP4",
    "POP3",
    "Authenticated SMTP",
    "Exchange ActiveSync",
    "Exchange Web Services",
    "Other clients",
    "MAPI Over HTTP",
    "imap",
];
const SKIP_DETAILS: [&str; 5] = [
    "MFA skipped due to location",
    "MFA requirement skipped due to remembered device",
    "MFA skipped due to registered device",
    "MFA requirement skipped due to app password",
    "MFA skipped due to Windows broker logon",
];

fn pick<T: Copy>(rng: &mut ChaCha8Rng, xs: &[T]) -> T {
    xs[rng.random_range(0..xs.len())]
}

fn emit(reason: Reason, mfa_result: Option<&str>) -> ExpectedOutcome {
    ExpectedOutcome::Emit {
        reason,
        mfa_result: mfa_result.map(str::to_owned),
    }
}

fn failed_scenario(rng: &mut ChaCha8Rng) -> Scenario {
    let (code, reason, details) = pick(
        rng,
        &[
            (
                50126,
                "Error validating credentials due to invalid username or password.",
                None,
            ),
            (
                50074,
                "Strong Authentication is required.",
                Some("MFA required in Azure AD"),
            ),
            (
                50076,
                "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '{resource}'.",
                Some("MFA required in Azure AD"),
            ),
            (
                53003,
                "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
                None,
            ),
            (
                50140,
                "This error occurred due to 'Keep me signed in' interrupt when the user was signing in.",
                None,
            ),
            (
                50158,
                "External security challenge was not satisfied.",
                None,
            ),
            (
                50125,
                "Sign-in was interrupted due to a password reset or password registration entry.",
                None,
            ),
        ],
    );
    Scenario {
        name: "failed",
        error_code: code,
        failure_reason: reason,
        additional_details: details,
        auth_requirement: pick(
            rng,
            &["singleFactorAuthentication", "multiFactorAuthentication"],
        ),
        client_app: Some(pick(rng, &MODERN_CLIENTS)),
        steps: vec![StepSpec {
            succeeded: code != 50126,
            detail: Some(if code == 50126 {
                "Invalid password"
            } else {
                "Correct password"
            }),
            ..PASSWORD
        }],
        mfa_detail: None,
        ca_status: None,
        outcome: ExpectedOutcome::Failed,
    }
}

fn non_mfa_scenario(rng: &mut ChaCha8Rng, category: Category, service_account: bool) -> Scenario {
    let base = |name, client, steps, requirement, outcome| Scenario {
        name,
        error_code: 0,
        failure_reason: "Other.",
        additional_details: None,
        auth_requirement: requirement,
        client_app: client,
        steps,
        mfa_detail: None,
        ca_status: None,
        outcome,
    };
    let roll = if service_account {
        0
    } else {
        rng.random_range(0..100)
    };
    match roll {
        // A legacy protocol with a password: the classic finding.
        0..25 => base(
            "legacy_password",
            Some(pick(rng, &LEGACY_CLIENTS)),
            vec![PASSWORD],
            "singleFactorAuthentication",
            emit(Reason::LegacyProtocol, None),
        ),
        // A legacy client whose MFA was waived: legacy wins, the skip is the mfaResult.
        25..30 => {
            let skip = pick(rng, &SKIP_DETAILS);
            base(
                "legacy_skipped",
                Some(pick(rng, &LEGACY_CLIENTS)),
                vec![PASSWORD, skip_step(skip)],
                "multiFactorAuthentication",
                emit(Reason::LegacyProtocol, Some(skip)),
            )
        }
        // MFA required but waived: `mfaRequired` is true and still no second factor.
        30..55 => {
            let skip = pick(rng, &SKIP_DETAILS);
            base(
                "mfa_skipped",
                Some(pick(rng, &MODERN_CLIENTS)),
                vec![PASSWORD, skip_step(skip)],
                pick(
                    rng,
                    &["multiFactorAuthentication", "MultiFactorAuthentication"],
                ),
                emit(Reason::MfaSkipped, Some(skip)),
            )
        }
        // Nothing asked for a second factor.
        55..75 => base(
            "single_factor_password",
            Some(pick(rng, &MODERN_CLIENTS)),
            vec![PASSWORD],
            "singleFactorAuthentication",
            emit(Reason::SingleFactor, None),
        ),
        // A refresh token whose first factor was satisfied by the token, and a status that
        // says the same: "First factor requirement satisfied…" is never MFA evidence.
        75..81 => {
            let detail = "First factor requirement satisfied by claim in the token";
            let mut s = base(
                "single_factor_token_status",
                Some("Mobile Apps and Desktop clients"),
                vec![StepSpec {
                    method: "Previously satisfied",
                    detail: Some(detail),
                    requirement: "Primary authentication",
                    succeeded: true,
                }],
                "singleFactorAuthentication",
                emit(Reason::SingleFactor, Some(detail)),
            );
            s.additional_details = Some(detail);
            s
        }
        // A refresh token whose first factor was satisfied by the token: not MFA.
        81..90 => base(
            "single_factor_token",
            Some("Mobile Apps and Desktop clients"),
            vec![StepSpec {
                method: "Previously satisfied",
                detail: Some("First factor requirement satisfied by claim in the token"),
                requirement: "Primary authentication",
                succeeded: true,
            }],
            "singleFactorAuthentication",
            emit(Reason::SingleFactor, None),
        ),
        // An older record: no steps, an empty mfaDetail, additional details that are not MFA.
        _ => {
            let mut s = base(
                "single_factor_older",
                Some(pick(rng, &MODERN_CLIENTS)),
                vec![],
                "singleFactorAuthentication",
                emit(
                    Reason::SingleFactor,
                    Some("First factor requirement satisfied by claim in the token"),
                ),
            );
            s.additional_details = Some("First factor requirement satisfied by claim in the token");
            if category == Category::AdfsSignInLogs {
                s.client_app = Some("Other clients");
                s.outcome = emit(
                    Reason::LegacyProtocol,
                    Some("First factor requirement satisfied by claim in the token"),
                );
            }
            s
        }
    }
}

fn skip_step(detail: &'static str) -> StepSpec {
    StepSpec {
        method: "",
        detail: Some(detail),
        requirement: "Multifactor authentication",
        succeeded: true,
    }
}

fn mfa_scenario(rng: &mut ChaCha8Rng, category: Category) -> Scenario {
    let client = pick(rng, &MODERN_CLIENTS);
    let base = |name, steps, requirement, evidence| Scenario {
        name,
        error_code: 0,
        failure_reason: "Other.",
        additional_details: None,
        auth_requirement: requirement,
        client_app: Some(client),
        steps,
        mfa_detail: None,
        ca_status: None,
        outcome: ExpectedOutcome::Mfa(evidence),
    };
    let interactive = category == Category::SignInLogs;
    match rng.random_range(0..100) {
        // Rule 1: a step says MFA was completed.
        0..35 if interactive => base(
            "mfa_completed",
            vec![
                PASSWORD,
                StepSpec {
                    method: pick(
                        rng,
                        &[
                            "Mobile app notification",
                            "Text message",
                            "OATH verification code",
                        ],
                    ),
                    detail: Some(pick(
                        rng,
                        &["MFA successfully completed", "MFA completed in Azure AD"],
                    )),
                    requirement: "Primary authentication",
                    succeeded: true,
                },
            ],
            "multiFactorAuthentication",
            Evidence::StepCompleted,
        ),
        // Rule 1: satisfied by a claim — non-interactive refreshes and federated MFA.
        0..42 => base(
            "mfa_claim",
            vec![StepSpec {
                method: "Previously satisfied",
                detail: Some(pick(
                    rng,
                    &[
                        "MFA requirement satisfied by claim in the token",
                        "MFA requirement satisfied by claim provided by external provider",
                        "MFA requirement satisfied by strong authentication",
                    ],
                )),
                requirement: "Primary authentication",
                succeeded: true,
            }],
            // Microsoft's warning made real: the requirement field says single factor.
            "singleFactorAuthentication",
            Evidence::StepCompleted,
        ),
        // Rule 6, as Log Analytics exports write it: the claim step logged as not succeeded
        // with an empty requirement, and Azure's word on the sign-in in its status.
        42..46 => {
            let mut s = base(
                "mfa_status_claim_failed_step",
                vec![StepSpec {
                    method: "Previously satisfied",
                    detail: Some("MFA requirement satisfied by claim in the token"),
                    requirement: "MultiConditionalAccess",
                    succeeded: false,
                }],
                "",
                Evidence::StatusDetail,
            );
            s.additional_details = Some("MFA requirement satisfied by claim in the token");
            s.ca_status = Some("success");
            s
        }
        // Rule 6: the only step speaks of the first factor, the status says the token carried
        // an MFA claim.
        46..50 => {
            let mut s = base(
                "mfa_status_claim_first_factor_step",
                vec![StepSpec {
                    method: "Previously satisfied",
                    detail: Some("First factor requirement satisfied by claim in the token"),
                    requirement: "singleFactorAuthentication",
                    succeeded: true,
                }],
                "singleFactorAuthentication",
                Evidence::StatusDetail,
            );
            s.additional_details = Some("MFA requirement satisfied by claim in the token");
            s
        }
        // Rule 2: the step's requirement names multifactor, detail silent.
        50..60 => base(
            "mfa_step_requirement",
            vec![
                PASSWORD,
                StepSpec {
                    method: "Phone call",
                    detail: None,
                    requirement: pick(
                        rng,
                        &[
                            "Multi-factor authentication",
                            "multiFactorAuthentication",
                            "Multifactor authentication",
                        ],
                    ),
                    succeeded: true,
                },
            ],
            "singleFactorAuthentication",
            Evidence::StepRequirement,
        ),
        // Rule 3: a method that is multifactor by itself.
        60..75 => base(
            "mfa_strong_method",
            vec![StepSpec {
                method: pick(
                    rng,
                    &[
                        "FIDO2 security key",
                        "Windows Hello for Business",
                        "Passkey (Microsoft Authenticator)",
                        "Passwordless phone sign-in",
                        "X.509 Certificate (multifactor)",
                    ],
                ),
                detail: Some("Correct PIN"),
                requirement: "Primary authentication",
                succeeded: true,
            }],
            "singleFactorAuthentication",
            Evidence::StrongMethod,
        ),
        // Rule 4: the requirement field alone, no skip.
        75..88 => base(
            "mfa_requirement",
            vec![PASSWORD],
            "multiFactorAuthentication",
            Evidence::Requirement,
        ),
        // Rules 5 and 6: an older record without steps.
        _ => {
            let mut s = base(
                "mfa_older",
                vec![],
                "singleFactorAuthentication",
                Evidence::StatusDetail,
            );
            if rng.random_bool(0.5) {
                s.mfa_detail = Some(pick(
                    rng,
                    &["PhoneAppNotification", "OneWaySMS", "PhoneAppOTP"],
                ));
                s.outcome = ExpectedOutcome::Mfa(Evidence::MfaDetail);
            } else {
                s.additional_details = Some(pick(
                    rng,
                    &[
                        "MFA completed in Azure AD",
                        "MFA requirement satisfied by claim in the token",
                    ],
                ));
            }
            s
        }
    }
}

/// A sign-in time in several written forms, with the microseconds the output must carry.
struct Instant {
    /// Nanoseconds since the epoch, UTC.
    nanos: i64,
    /// The form this record writes `createdDateTime` in.
    form: u8,
    /// The offset, in minutes, for the offset form.
    offset_min: i32,
    truth: Micros,
}

impl Instant {
    fn around(rng: &mut ChaCha8Rng, clock: i64) -> Instant {
        // Sign-ins reach the hub up to a few minutes late.
        let nanos = clock - rng.random_range(0..180_000_000_000i64);
        let form = match rng.random_range(0..100) {
            0..70 => 0,  // 7 digits, Z: what Azure mostly writes
            70..78 => 1, // no fraction
            78..84 => 2, // 3 digits
            84..90 => 3, // 9 digits
            90..96 => 4, // an offset
            _ => 5,      // US form
        };
        let offset_min = pick(rng, &[120, -300, 330, -480, 0, 60]);
        let truth = match form {
            1 | 5 => nanos.div_euclid(1_000_000_000) * 1_000_000,
            2 => nanos.div_euclid(1_000_000) * 1_000,
            _ => nanos.div_euclid(1_000),
        };
        Instant {
            nanos,
            form,
            offset_min,
            truth,
        }
    }

    /// The ISO form with `digits` fractional digits and an offset.
    fn write_iso(&self, out: &mut Vec<u8>, digits: u32, offset_min: i32) {
        let local = self.nanos + offset_min as i64 * 60_000_000_000;
        let secs = local.div_euclid(1_000_000_000);
        let frac = local.rem_euclid(1_000_000_000);
        let (y, mo, d, h, mi, s) = civil(secs);
        write!(out, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}").expect("Vec");
        if digits > 0 {
            let f = frac / 10i64.pow(9 - digits);
            write!(out, ".{f:0w$}", w = digits as usize).expect("Vec");
        }
        if offset_min == 0 {
            out.push(b'Z');
        } else {
            let sign = if offset_min < 0 { '-' } else { '+' };
            let m = offset_min.abs();
            write!(out, "{sign}{:02}:{:02}", m / 60, m % 60).expect("Vec");
        }
    }

    fn write_created(&self, out: &mut Vec<u8>) {
        match self.form {
            0 => self.write_iso(out, 7, 0),
            1 => self.write_iso(out, 0, 0),
            2 => self.write_iso(out, 3, 0),
            3 => self.write_iso(out, 9, 0),
            4 => self.write_iso(out, 6, self.offset_min),
            _ => {
                let (y, mo, d, h, mi, s) = civil(self.nanos.div_euclid(1_000_000_000));
                let (h12, ampm) = match h {
                    0 => (12, "AM"),
                    1..12 => (h, "AM"),
                    12 => (12, "PM"),
                    _ => (h - 12, "PM"),
                };
                write!(out, "{mo}/{d}/{y} {h12}:{mi:02}:{s:02} {ampm}").expect("Vec");
            }
        }
    }
}

/// Seconds since the epoch to (year, month, day, hour, minute, second), UTC.
fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-from-civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

struct PolicySpec {
    name: &'static str,
    result: &'static str,
}

const POLICY_NAMES: [&str; 16] = [
    "Require MFA for admins",
    "Require MFA for all users",
    "Block legacy authentication",
    "Require compliant device, \"Finance\"",
    "Sign-in frequency: 12h",
    "Require MFA — external access",
    "Block countries: RU, KP",
    "Require terms of use",
    "Require app protection policy",
    "Require MFA for Azure management",
    "Session: app enforced restrictions",
    "Require password change for high user risk",
    "Require MFA for risky sign-ins",
    "Require phishing-resistant MFA (Überprüfung)",
    "Block device code flow",
    "Require hybrid joined device",
];

/// The grant controls a policy of this name enforces, as Entra writes them: only the MFA
/// policies ask for `Mfa` (the phishing-resistant one for an authentication strength), so the
/// evidence's "MFA policies that did not apply" has the right ones to pick.
fn grant_controls(name: &str) -> &'static str {
    if name.contains("phishing-resistant") {
        "[\"RequireAuthenticationStrength\"]"
    } else if name.contains("MFA") {
        "[\"Mfa\"]"
    } else if name.starts_with("Block") {
        "[\"Block\"]"
    } else if name.contains("compliant device") {
        "[\"RequireCompliantDevice\"]"
    } else if name.contains("hybrid joined") {
        "[\"RequireDomainJoinedDevice\"]"
    } else if name.contains("app protection") {
        "[\"RequireCompliantApp\"]"
    } else if name.contains("password change") {
        "[\"Mfa\",\"PasswordChange\"]"
    } else if name.contains("terms of use") {
        "[\"Terms of use\"]"
    } else {
        "[]"
    }
}

fn policies(rng: &mut ChaCha8Rng) -> Vec<PolicySpec> {
    let n = match rng.random_range(0..100) {
        0..10 => 0,
        10..95 => rng.random_range(1..=12),
        _ => rng.random_range(30..=60),
    };
    (0..n)
        .map(|_| PolicySpec {
            name: pick(rng, &POLICY_NAMES),
            result: pick(
                rng,
                &[
                    "notApplied",
                    "notApplied",
                    "notApplied",
                    "success",
                    "failure",
                    "notEnabled",
                    "reportOnlySuccess",
                ],
            ),
        })
        .collect()
}

const FIRST: [&str; 16] = [
    "Ada", "José", "Zoë", "Émile", "Ngozi", "Søren", "Łukasz", "Priya", "Mei", "Ömer", "Sean",
    "Aoife", "Jürgen", "Chloé", "太郎", "Олег",
];
const LAST: [&str; 12] = [
    "Lovelace",
    "García",
    "O'Brien",
    "Müller",
    "Okafor",
    "Kierkegaard",
    "Nowak",
    "Shah",
    "Zhang",
    "Yılmaz",
    "Smith, Jr.",
    "山田",
];

fn user(rng: &mut ChaCha8Rng, i: usize) -> User {
    let first = pick(rng, &FIRST);
    let last = pick(rng, &LAST);
    let ascii = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_lowercase()
    };
    let service_account = i.is_multiple_of(50);
    let (upn, display) = if service_account {
        (
            format!("svc-scanner{i}@contoso.com"),
            format!("Scanner service account {i}"),
        )
    } else {
        (
            format!("{}.{}{i}@contoso.com", ascii(first), ascii(last)),
            format!("{first} {last}"),
        )
    };
    User {
        id: uuid(rng),
        upn,
        display,
        service_account,
    }
}

fn uuid(rng: &mut ChaCha8Rng) -> String {
    // The 32 hex digits of one draw, version 4 and variant `a` written over the 13th and
    // 17th; by hand, because formatting them was a tenth of `mfagap run`'s CPU.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let v: u128 = rng.random();
    let digit = |i: usize| HEX[((v >> (124 - 4 * i)) & 0xf) as usize];
    let mut out = [0u8; 36];
    let mut at = 0;
    for i in 0..32 {
        if matches!(i, 8 | 12 | 16 | 20) {
            out[at] = b'-';
            at += 1;
        }
        out[at] = match i {
            12 => b'4',
            16 => b'a',
            _ => digit(i),
        };
        at += 1;
    }
    String::from_utf8(out.to_vec()).expect("hex digits and dashes")
}

/// How a string is written: Azure's serializers differ in what they escape.
#[derive(Clone, Copy)]
struct Style {
    /// `é` as `\u00e9`.
    unicode: bool,
    /// `/` as `\/`.
    slash: bool,
}

fn json_str(out: &mut Vec<u8>, s: &str, style: Style) {
    out.push(b'"');
    // Runs of bytes that need no escape are copied whole; a character that does is written
    // on its own.
    let plain = |b: u8| {
        b >= 0x20
            && b != b'"'
            && b != b'\\'
            && !(style.slash && b == b'/')
            && (!style.unicode || b.is_ascii())
    };
    let bytes = s.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let run = bytes[at..].iter().take_while(|&&b| plain(b)).count();
        out.extend_from_slice(&bytes[at..at + run]);
        at += run;
        let Some(c) = s[at..].chars().next() else {
            break;
        };
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '/' => out.extend_from_slice(b"\\/"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).expect("Vec"),
            c => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    write!(out, "\\u{unit:04x}").expect("Vec");
                }
            }
        }
        at += c.len_utf8();
    }
    out.push(b'"');
}

/// Writes one sign-in record in the diagnostic-log shape.
struct RecordWriter<'a> {
    category: &'a str,
    tenant: &'a str,
    id: &'a str,
    user: Option<&'a User>,
    when: &'a Instant,
    s: &'a Scenario,
    policies: &'a [PolicySpec],
}

impl RecordWriter<'_> {
    fn write(&self, rng: &mut ChaCha8Rng, out: &mut Vec<u8>) {
        let style = Style {
            unicode: rng.random_bool(0.2),
            slash: rng.random_bool(0.3),
        };
        let s = self.s;
        let t = self.tenant;
        let corr = uuid(rng);
        let ip = format!(
            "{}.{}.{}.{}",
            rng.random_range(20..220),
            rng.random_range(0..255),
            rng.random_range(0..255),
            rng.random_range(1..255)
        );
        out.extend_from_slice(b"{\"time\":\"");
        self.when.write_iso(out, 7, 0);
        write!(
            out,
            "\",\"resourceId\":\"/tenants/{t}/providers/Microsoft.aadiam\",\"operationName\":\"Sign-in activity\",\"operationVersion\":\"1.0\",\"category\":\"{}\",\"tenantId\":\"{t}\",",
            self.category
        )
        .expect("Vec");
        // resultType: a string mostly, sometimes a number, empty or missing.
        let result_type = rng.random_range(0..10);
        match result_type {
            0..6 => write!(out, "\"resultType\":\"{}\",", s.error_code),
            6..8 => write!(out, "\"resultType\":{},", s.error_code),
            8 => write!(out, "\"resultType\":\"\","),
            _ => Ok(()),
        }
        .expect("Vec");
        out.extend_from_slice(b"\"resultSignature\":\"None\",\"resultDescription\":");
        json_str(out, s.failure_reason, style);
        let dur = rng.random_range(0..900);
        if rng.random_bool(0.5) {
            write!(out, ",\"durationMs\":\"{dur}\"").expect("Vec");
        } else {
            write!(out, ",\"durationMs\":{dur}").expect("Vec");
        }
        write!(
            out,
            ",\"callerIpAddress\":\"{ip}\",\"correlationId\":\"{corr}\",\"identity\":"
        )
        .expect("Vec");
        json_str(out, self.user.map_or("", |u| u.display.as_str()), style);
        match rng.random_range(0..3) {
            0 => out.extend_from_slice(b",\"Level\":4"),
            1 => out.extend_from_slice(b",\"Level\":\"4\""),
            _ => out.extend_from_slice(b",\"level\":\"Informational\""),
        }
        out.extend_from_slice(b",\"location\":\"US\",\"properties\":{\"id\":\"");
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(b"\",\"createdDateTime\":\"");
        self.when.write_created(out);
        out.extend_from_slice(b"\"");
        if let Some(u) = self.user {
            out.extend_from_slice(b",\"userDisplayName\":");
            json_str(out, &u.display, style);
            out.extend_from_slice(b",\"userPrincipalName\":");
            json_str(out, &u.upn, style);
            write!(out, ",\"userId\":\"{}\"", u.id).expect("Vec");
        } else {
            write!(
                out,
                ",\"servicePrincipalName\":\"Contoso Backup Agent\",\"servicePrincipalId\":\"{}\",\"userDisplayName\":null,\"userPrincipalName\":null",
                uuid(rng)
            )
            .expect("Vec");
        }
        let (app, app_id, resource) = pick(
            rng,
            &[
                (
                    "Office 365 Exchange Online",
                    "00000002-0000-0ff1-ce00-000000000000",
                    "Office 365 Exchange Online",
                ),
                (
                    "Microsoft Teams",
                    "1fec8e78-bce4-4aaf-ab1b-5451cc387264",
                    "Microsoft Teams Services",
                ),
                (
                    "Azure Portal",
                    "c44b4083-3bb0-49c1-b47d-974e53cbdf3c",
                    "Windows Azure Service Management API",
                ),
                (
                    "Microsoft Office",
                    "d3590ed6-52b3-4102-aeff-aad2292ab01c",
                    "Microsoft Graph",
                ),
                (
                    "OneDrive SyncEngine",
                    "ab9b8c07-8f02-4f72-87fa-80105867a763",
                    "Office 365 SharePoint Online",
                ),
            ],
        );
        out.extend_from_slice(b",\"appId\":\"");
        out.extend_from_slice(app_id.as_bytes());
        out.extend_from_slice(b"\",\"appDisplayName\":");
        json_str(out, app, style);
        write!(out, ",\"ipAddress\":\"{ip}\",\"status\":{{").expect("Vec");
        match rng.random_range(0..10) {
            0..7 => write!(out, "\"errorCode\":{},", s.error_code),
            7..9 => write!(out, "\"errorCode\":\"{}\",", s.error_code),
            // errorCode missing: resultType decides, so only when it was written.
            _ if result_type < 8 => Ok(()),
            _ => write!(out, "\"errorCode\":{},", s.error_code),
        }
        .expect("Vec");
        out.extend_from_slice(b"\"failureReason\":");
        json_str(out, s.failure_reason, style);
        if let Some(d) = s.additional_details {
            out.extend_from_slice(b",\"additionalDetails\":");
            json_str(out, d, style);
        }
        out.extend_from_slice(b"},\"clientAppUsed\":");
        match s.client_app {
            Some(c) => json_str(out, c, style),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"userAgent\":");
        json_str(
            out,
            pick(
                rng,
                &[
                    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
                    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17126; Pro)",
                    "Apple-iPhone15C2/2102.55",
                    "BAV2ROPC",
                ],
            ),
            style,
        );
        let (os, browser) = pick(
            rng,
            &[
                ("Windows10", "Edge 120.0.0"),
                ("Ios", "Mobile Safari 17.1"),
                ("MacOs", "Chrome 119.0.0"),
                ("", ""),
            ],
        );
        let compliant = pick(rng, &["true", "false", "\"true\"", "null"]);
        write!(
            out,
            ",\"deviceDetail\":{{\"deviceId\":\"\",\"displayName\":\"\",\"operatingSystem\":\"{os}\",\"browser\":\"{browser}\",\"isCompliant\":{compliant},\"isManaged\":{},\"trustType\":\"\"}}",
            rng.random_bool(0.5)
        )
        .expect("Vec");
        if rng.random_bool(0.9) {
            let (city, state, country) = pick(
                rng,
                &[
                    ("Zürich", "Zürich", "CH"),
                    ("São Paulo", "São Paulo", "BR"),
                    ("Seattle", "Washington", "US"),
                    ("Lagos", "Lagos", "NG"),
                    ("東京", "東京都", "JP"),
                ],
            );
            out.extend_from_slice(b",\"location\":{\"city\":");
            json_str(out, city, style);
            out.extend_from_slice(b",\"state\":");
            json_str(out, state, style);
            write!(
                out,
                ",\"countryOrRegion\":\"{country}\",\"geoCoordinates\":{{\"latitude\":{:.4},\"longitude\":{:.4}}}}}",
                rng.random_range(-60.0..60.0f64),
                rng.random_range(-150.0..150.0f64)
            )
            .expect("Vec");
        }
        match s.mfa_detail {
            Some(m) => write!(
                out,
                ",\"mfaDetail\":{{\"authMethod\":\"{m}\",\"authDetail\":null}}"
            )
            .expect("Vec"),
            None => out.extend_from_slice(b",\"mfaDetail\":{}"),
        }
        write!(
            out,
            ",\"correlationId\":\"{corr}\",\"conditionalAccessStatus\":\"{}\"",
            s.ca_status
                .unwrap_or(if self.policies.iter().any(|p| p.result == "success") {
                    "success"
                } else {
                    "notApplied"
                })
        )
        .expect("Vec");
        out.extend_from_slice(b",\"appliedConditionalAccessPolicies\":[");
        for (i, p) in self.policies.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write!(out, "{{\"id\":\"{}\",\"displayName\":", uuid(rng)).expect("Vec");
            json_str(out, p.name, style);
            write!(
                out,
                ",\"enforcedGrantControls\":{},\"enforcedSessionControls\":[],\"result\":\"{}\",\"conditionsSatisfied\":3,\"conditionsNotSatisfied\":0}}",
                grant_controls(p.name),
                p.result
            )
            .expect("Vec");
        }
        let interactive = self.category == "SignInLogs" || self.category == "ADFSSignInLogs";
        write!(
            out,
            "],\"authenticationContextClassReferences\":[],\"originalRequestId\":\"{}\",\"isInteractive\":{interactive},\"tokenIssuerName\":\"\",\"tokenIssuerType\":\"AzureAD\",\
             \"authenticationProcessingDetails\":[{{\"key\":\"Legacy TLS (TLS 1.0, 1.1, 3DES)\",\"value\":\"False\"}},{{\"key\":\"Is CAE Token\",\"value\":\"False\"}}],\
             \"networkLocationDetails\":[],\"clientCredentialType\":\"none\",\"processingTimeInMilliseconds\":\"{}\",\"riskDetail\":\"none\",\"riskLevelAggregated\":\"none\",\
             \"riskLevelDuringSignIn\":\"{}\",\"riskState\":{},\"riskEventTypes\":[],\"riskEventTypes_v2\":[],\"resourceDisplayName\":",
            uuid(rng),
            rng.random_range(20..400),
            pick(rng, &["none", "low", "medium"]),
            pick(rng, &["\"none\"", "null", "\"atRisk\""]),
        )
        .expect("Vec");
        json_str(out, resource, style);
        write!(out, ",\"resourceId\":\"{}\",\"resourceTenantId\":\"{t}\",\"homeTenantId\":\"{t}\",\"authenticationDetails\":[", uuid(rng)).expect("Vec");
        for (i, step) in s.steps.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"authenticationStepDateTime\":\"");
            self.when.write_iso(out, 0, 0);
            out.extend_from_slice(b"\",\"authenticationMethod\":");
            json_str(out, step.method, style);
            out.extend_from_slice(
                b",\"authenticationMethodDetail\":\"Password Hash Sync\",\"succeeded\":",
            );
            let succ = if step.succeeded { "true" } else { "false" };
            if rng.random_bool(0.1) {
                write!(out, "\"{succ}\"").expect("Vec");
            } else {
                out.extend_from_slice(succ.as_bytes());
            }
            out.extend_from_slice(b",\"authenticationStepResultDetail\":");
            match step.detail {
                Some(d) => json_str(out, d, style),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(b",\"authenticationStepRequirement\":");
            json_str(out, step.requirement, style);
            out.extend_from_slice(b",\"StatusSequence\":0,\"RequestSequence\":0}");
        }
        out.extend_from_slice(
            b"],\"authenticationRequirementPolicies\":[],\"authenticationRequirement\":",
        );
        json_str(out, s.auth_requirement, style);
        let user_type = if self.user.is_some() {
            pick(rng, &["\"Member\"", "\"Member\"", "\"Guest\"", "null"])
        } else {
            "null"
        };
        write!(
            out,
            ",\"userType\":{user_type},\"flaggedForReview\":false,\"isTenantRestricted\":false,\"autonomousSystemNumber\":{},\
             \"crossTenantAccessType\":\"none\",\"privateLinkDetails\":{{}},\"ssoExtensionVersion\":\"\",\"uniqueTokenIdentifier\":\"{}\",\
             \"authenticationStrengths\":[],\"incomingTokenType\":\"none\",\"authenticationProtocol\":\"none\",\"appServicePrincipalId\":null,\
             \"rngcStatus\":0,\"signInTokenProtectionStatus\":\"none\",\"originalTransferMethod\":\"none\",\"isThroughGlobalSecureAccess\":false,\
             \"managedIdentityType\":\"none\"}}}}",
            rng.random_range(1000..65000),
            uuid(rng),
        )
        .expect("Vec");
    }
}

#[cfg(test)]
mod tests;
