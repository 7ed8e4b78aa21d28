//! Elastic Common Schema, as Elastic's Entra ID sign-in integration writes it: see
//! `schemas/ecs-mapping.md`.
//!
//! One emitted sign-in becomes one document with the field names, value shapes and types of the
//! `azure.signinlogs` data stream of Elastic's Azure integration (package azure 1.41.0, ECS
//! 8.11.0), so Elastic's detection rules on Entra ID sign-ins read it unchanged. What the
//! integration has no field for (mfagap's reason and evidence) goes in `labels.mfagap_*` (flat
//! keywords) and under `mfagap.*`, mfagap's own namespace, not ECS.
//!
//! The document is a tree of `Serialize` structs that borrow the record's text: nothing is
//! copied, and like the integration's last step, no null, `""`, `[]` or `{}` is written.

use super::Encoder;
use crate::classify::Reason;
use crate::lenient::Text;
use crate::record::{AuthenticationStep, DeviceDetail, PolicyResult, SignIn};
use crate::timestamp::{self, Micros};
use chrono::{DateTime, Datelike, Timelike};
use serde::Serialize;
use serde::ser::{SerializeSeq, Serializer};
use std::fmt;
use std::net::IpAddr;

/// The ECS version the integration's pipeline stamps in `ecs.version`.
const ECS_VERSION: &str = "8.11.0";
/// `event.dataset` and `data_stream.dataset` of the integration's sign-in data stream.
const DATASET: &str = "azure.signinlogs";
/// Azure's `operationName` of every sign-in, copied to `event.action`.
const OPERATION: &str = "Sign-in activity";

/// The ECS encoder.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ecs;

impl Encoder for Ecs {
    fn name(&self) -> &'static str {
        "ecs"
    }

    fn write_payload(&self, s: &SignIn<'_>, out: &mut Vec<u8>) {
        let start = out.len();
        if serde_json::to_writer(&mut *out, &Doc::of(s)).is_err() {
            // Unreachable: every key is a string, every value a string, a number or a
            // boolean, and writing to a Vec cannot fail. Still one document, never a panic.
            out.truncate(start);
            out.extend_from_slice(b"{}");
        }
    }

    fn headers(&self, s: &SignIn<'_>) -> Vec<(&'static str, String)> {
        super::common_headers(s, super::Format::Ecs)
    }
}

/// Text that says something: `None`, `""` and blanks are all "not known", and are not written.
fn text<'a>(t: &'a Option<Text<'_>>) -> Option<&'a str> {
    t.as_ref()
        .map(Text::as_str)
        .filter(|s| !s.trim().is_empty())
}

fn known(s: &str) -> Option<&str> {
    Some(s).filter(|s| !s.trim().is_empty())
}

/// The whole document.
#[derive(Serialize)]
struct Doc<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: Millis,
    ecs: EcsVersion,
    data_stream: DataStream,
    event: Event<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    labels: Labels<'a>,
    #[serde(skip_serializing_if = "User::is_empty")]
    user: User<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<SourceAddress<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<Ip<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<UserAgent<'a>>,
    cloud: Cloud<'a>,
    #[serde(skip_serializing_if = "Geo::is_empty")]
    geo: Geo<'a>,
    #[serde(skip_serializing_if = "Related::is_empty")]
    related: Related<'a>,
    azure: Azure<'a>,
    mfagap: Mfagap<'a>,
}

impl<'a> Doc<'a> {
    fn of(s: &'a SignIn<'a>) -> Doc<'a> {
        let id = known(s.id.as_str());
        let tenant = text(&s.tenant_id);
        let correlation = text(&s.correlation_id);
        let user_id = text(&s.user_id);
        let upn = text(&s.user_principal_name);
        let full_name = text(&s.user_display_name);
        let address = text(&s.ip_address);
        // `source.ip` (and `client.ip`, `related.ip`) only when the address is one, as the
        // integration's `convert` to type ip does; `source.address` keeps the text regardless.
        let ip = address.filter(|a| a.parse::<IpAddr>().is_ok());
        let device = s.device_detail.as_ref();
        let device_id = device.and_then(|d| text(&d.device_id));
        let app_id = text(&s.app_id);
        let resource_id = text(&s.resource_id);
        let mfa_result = text(&s.mfa_result);
        Doc {
            timestamp: Millis(s.created_date_time),
            ecs: EcsVersion {
                version: ECS_VERSION,
            },
            data_stream: DataStream {
                r#type: "logs",
                dataset: DATASET,
                namespace: "default",
            },
            event: Event {
                kind: "event",
                category: ["authentication"],
                r#type: ["info"],
                outcome: "success",
                action: OPERATION,
                id,
                dataset: DATASET,
                module: "azure",
                created: Millis(s.ingested_at),
                reason: Sentence {
                    reason: s.reason,
                    client_app: text(&s.client_app_used),
                    mfa_result,
                },
            },
            message: text(&s.failure_reason),
            labels: Labels {
                mfagap_reason: s.reason.as_str(),
                mfagap_mfa_result: mfa_result,
            },
            user: User {
                name: upn,
                // As the integration: the UPN, when its first `@` is not its first character.
                email: upn.filter(|u| u.find('@').is_some_and(|at| at > 0)),
                id: user_id,
                full_name,
            },
            source: address.map(|address| SourceAddress { address, ip }),
            client: ip.map(|ip| Ip { ip }),
            user_agent: text(&s.user_agent).map(|original| UserAgent { original }),
            cloud: Cloud {
                provider: "azure",
                account: tenant.map(|id| Id { id }),
            },
            geo: match s.location.as_ref() {
                Some(l) => Geo {
                    city_name: text(&l.city),
                    region_name: text(&l.state),
                    country_iso_code: text(&l.country_or_region),
                },
                None => Geo::default(),
            },
            related: Related {
                user: Distinct([user_id, upn, full_name]),
                entity: Distinct([app_id, resource_id, user_id, device_id]),
                ip: Distinct([ip]),
            },
            azure: Azure {
                tenant_id: tenant,
                tenant: tenant.map(|id| Id { id }),
                correlation_id: correlation,
                correlation: correlation.map(|id| Id { id }),
                signinlogs: SignInLogs {
                    category: s.category.as_str(),
                    operation_name: OPERATION,
                    result_type: "0",
                    properties: Properties {
                        id,
                        created_at: Rfc3339(s.created_date_time),
                        user_principal_name: upn,
                        user_display_name: full_name,
                        user_id,
                        user_type: text(&s.user_type),
                        app_id,
                        app_display_name: text(&s.app_display_name),
                        resource_id,
                        resource_display_name: text(&s.resource_display_name),
                        client_app_used: text(&s.client_app_used),
                        is_interactive: s.is_interactive,
                        status: Status { error_code: 0 },
                        conditional_access_status: text(&s.conditional_access_status),
                        authentication_requirement: text(&s.authentication_requirement),
                        mfa_detail: MfaDetail {
                            auth_method: text(&s.mfa_auth_method),
                            auth_detail: text(&s.mfa_auth_detail),
                        },
                        device_detail: device.map(Device::of).unwrap_or_default(),
                        risk_level_during_signin: text(&s.risk_level_during_sign_in),
                        risk_state: text(&s.risk_state),
                        correlation_id: correlation,
                        session_id: text(&s.session_id),
                        token_issuer_type: text(&s.token_issuer_type),
                        authentication_protocol: text(&s.authentication_protocol),
                        original_transfer_method: text(&s.original_transfer_method),
                        incoming_token_type: text(&s.incoming_token_type),
                        authentication_details: Steps(&s.authentication_steps),
                        authentication_requirement_policies: Providers(
                            &s.mfa_requirement_providers,
                        ),
                    },
                },
            },
            mfagap: Mfagap {
                reason: s.reason.as_str(),
                mfa_result,
                applied_policies: Texts(&s.policies),
                mfa_policies_not_applied: Policies(&s.mfa_policies_not_applied),
                authentication_methods: Texts(&s.authentication_methods),
                source: MfagapSource {
                    kind: known(s.source.kind.as_str()),
                    event_hub: text(&s.source.event_hub),
                    partition: text(&s.source.partition),
                    offset: text(&s.source.offset),
                    sequence_number: s.source.sequence_number,
                    enqueued_time: s.source.enqueued_time.map(Rfc3339),
                    file: text(&s.source.file),
                    line: s.source.line,
                },
            },
        }
    }
}

/// An instant as Elasticsearch renders a `date`: UTC, milliseconds (truncated), `Z`.
#[derive(Clone, Copy)]
struct Millis(Micros);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match DateTime::from_timestamp_micros(self.0) {
            Some(dt) if (0..=9999).contains(&dt.year()) => write!(
                f,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                dt.year(),
                dt.month(),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second(),
                dt.timestamp_subsec_millis()
            ),
            // Unreachable from a parsed record (years 1 to 9999): the record's own form.
            _ => timestamp::Display(self.0).fmt(f),
        }
    }
}

impl Serialize for Millis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An instant as the record writes it: RFC 3339 UTC with microseconds.
#[derive(Clone, Copy)]
struct Rfc3339(Micros);

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&timestamp::Display(self.0))
    }
}

#[derive(Serialize)]
struct EcsVersion {
    version: &'static str,
}

#[derive(Serialize)]
struct DataStream {
    r#type: &'static str,
    dataset: &'static str,
    namespace: &'static str,
}

#[derive(Serialize)]
struct Event<'a> {
    kind: &'static str,
    category: [&'static str; 1],
    r#type: [&'static str; 1],
    outcome: &'static str,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    dataset: &'static str,
    module: &'static str,
    created: Millis,
    reason: Sentence<'a>,
}

/// `event.reason`: mfagap's reason as a sentence an analyst reads in a timeline.
struct Sentence<'a> {
    reason: Reason,
    client_app: Option<&'a str>,
    mfa_result: Option<&'a str>,
}

impl fmt::Display for Sentence<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            Reason::LegacyProtocol => {
                f.write_str("Sign-in succeeded without MFA over a legacy authentication client")?;
                if let Some(c) = self.client_app {
                    write!(f, " ({c})")?;
                }
                f.write_str(", which cannot do MFA")
            }
            Reason::MfaSkipped => {
                f.write_str("Sign-in succeeded without MFA: MFA was required but skipped")?;
                if let Some(m) = self.mfa_result {
                    write!(f, " ({m})")?;
                }
                Ok(())
            }
            Reason::SingleFactor => f.write_str(
                "Sign-in succeeded with a single factor: nothing asked for a second factor",
            ),
        }
    }
}

impl Serialize for Sentence<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `labels`: ECS's flat map of keywords, for filters that do not reach into `mfagap.*`.
#[derive(Serialize)]
struct Labels<'a> {
    mfagap_reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mfagap_mfa_result: Option<&'a str>,
}

#[derive(Serialize)]
struct User<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    full_name: Option<&'a str>,
}

impl User<'_> {
    fn is_empty(&self) -> bool {
        self.name.is_none() && self.id.is_none() && self.full_name.is_none()
    }
}

#[derive(Serialize)]
struct SourceAddress<'a> {
    address: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<&'a str>,
}

#[derive(Serialize)]
struct Ip<'a> {
    ip: &'a str,
}

#[derive(Serialize)]
struct UserAgent<'a> {
    original: &'a str,
}

#[derive(Serialize)]
struct Id<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct Cloud<'a> {
    provider: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<Id<'a>>,
}

/// The root `geo`: where the integration puts Azure's own location of the sign-in.
#[derive(Serialize, Default)]
struct Geo<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    city_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    region_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    country_iso_code: Option<&'a str>,
}

impl Geo<'_> {
    fn is_empty(&self) -> bool {
        self.city_name.is_none() && self.region_name.is_none() && self.country_iso_code.is_none()
    }
}

#[derive(Serialize)]
struct Related<'a> {
    #[serde(skip_serializing_if = "Distinct::is_empty")]
    user: Distinct<'a, 3>,
    #[serde(skip_serializing_if = "Distinct::is_empty")]
    entity: Distinct<'a, 4>,
    #[serde(skip_serializing_if = "Distinct::is_empty")]
    ip: Distinct<'a, 1>,
}

impl Related<'_> {
    fn is_empty(&self) -> bool {
        self.user.is_empty() && self.entity.is_empty() && self.ip.is_empty()
    }
}

/// A `related.*` array: the known values, in order, each once (the integration's
/// `append … allow_duplicates: false`).
struct Distinct<'a, const N: usize>([Option<&'a str>; N]);

impl<const N: usize> Distinct<'_, N> {
    fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

impl<const N: usize> Serialize for Distinct<'_, N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for (i, v) in self.0.iter().enumerate() {
            if let Some(v) = v
                && !self.0[..i].contains(&Some(v))
            {
                seq.serialize_element(v)?;
            }
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct Azure<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<Id<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation: Option<Id<'a>>,
    signinlogs: SignInLogs<'a>,
}

#[derive(Serialize)]
struct SignInLogs<'a> {
    category: &'a str,
    operation_name: &'static str,
    result_type: &'static str,
    properties: Properties<'a>,
}

/// `azure.signinlogs.properties`, with the integration's key names (its snake_case rule, then
/// `created_at` and `risk_level_during_signin`).
#[derive(Serialize)]
struct Properties<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    created_at: Rfc3339,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_principal_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_display_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_display_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_display_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_app_used: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_interactive: Option<bool>,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    conditional_access_status: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authentication_requirement: Option<&'a str>,
    #[serde(skip_serializing_if = "MfaDetail::is_empty")]
    mfa_detail: MfaDetail<'a>,
    #[serde(skip_serializing_if = "Device::is_empty")]
    device_detail: Device<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    risk_level_during_signin: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    risk_state: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_issuer_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authentication_protocol: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_transfer_method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    incoming_token_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Steps::is_empty")]
    authentication_details: Steps<'a>,
    #[serde(skip_serializing_if = "Providers::is_empty")]
    authentication_requirement_policies: Providers<'a>,
}

/// `status`: only `error_code` stays, a number (failure reason and details go to `message`).
#[derive(Serialize)]
struct Status {
    error_code: i64,
}

#[derive(Serialize)]
struct MfaDetail<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_detail: Option<&'a str>,
}

impl MfaDetail<'_> {
    fn is_empty(&self) -> bool {
        self.auth_method.is_none() && self.auth_detail.is_none()
    }
}

#[derive(Serialize, Default)]
struct Device<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    operating_system: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    browser: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_compliant: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_managed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trust_type: Option<&'a str>,
}

impl<'a> Device<'a> {
    fn of(d: &'a DeviceDetail<'a>) -> Device<'a> {
        Device {
            device_id: text(&d.device_id),
            display_name: text(&d.display_name),
            operating_system: text(&d.operating_system),
            browser: text(&d.browser),
            is_compliant: d.is_compliant,
            is_managed: d.is_managed,
            trust_type: text(&d.trust_type),
        }
    }

    fn is_empty(&self) -> bool {
        self.device_id.is_none()
            && self.display_name.is_none()
            && self.operating_system.is_none()
            && self.browser.is_none()
            && self.is_compliant.is_none()
            && self.is_managed.is_none()
            && self.trust_type.is_none()
    }
}

/// `authentication_details`: the record's steps with the integration's snake_case keys; a step
/// with nothing known is left out, as the integration drops `{}`.
struct Steps<'a>(&'a [AuthenticationStep<'a>]);

#[derive(Serialize)]
struct Step<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    authentication_method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authentication_step_requirement: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    succeeded: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authentication_step_result_detail: Option<&'a str>,
}

impl<'a> Step<'a> {
    fn of(s: &'a AuthenticationStep<'a>) -> Option<Step<'a>> {
        let step = Step {
            authentication_method: text(&s.authentication_method),
            authentication_step_requirement: text(&s.authentication_step_requirement),
            succeeded: s.succeeded,
            authentication_step_result_detail: text(&s.authentication_step_result_detail),
        };
        let empty = step.authentication_method.is_none()
            && step.authentication_step_requirement.is_none()
            && step.succeeded.is_none()
            && step.authentication_step_result_detail.is_none();
        (!empty).then_some(step)
    }
}

impl Steps<'_> {
    fn is_empty(&self) -> bool {
        self.0.iter().all(|s| Step::of(s).is_none())
    }
}

impl Serialize for Steps<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for step in self.0.iter().filter_map(Step::of) {
            seq.serialize_element(&step)?;
        }
        seq.end()
    }
}

/// `authentication_requirement_policies`: the record keeps each policy's `requirementProvider`,
/// so each entry is `{requirement_provider}`.
struct Providers<'a>(&'a [Text<'a>]);

#[derive(Serialize)]
struct Provider<'a> {
    requirement_provider: &'a str,
}

impl Providers<'_> {
    fn is_empty(&self) -> bool {
        self.0.iter().all(|p| known(p.as_str()).is_none())
    }
}

impl Serialize for Providers<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for p in self.0.iter().filter_map(|p| known(p.as_str())) {
            seq.serialize_element(&Provider {
                requirement_provider: p,
            })?;
        }
        seq.end()
    }
}

/// `mfagap`: mfagap's own namespace (not ECS, not the integration's): the reason and the
/// evidence the integration has no field for, and where mfagap read the record.
#[derive(Serialize)]
struct Mfagap<'a> {
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mfa_result: Option<&'a str>,
    #[serde(skip_serializing_if = "Texts::is_empty")]
    applied_policies: Texts<'a>,
    #[serde(skip_serializing_if = "Policies::is_empty")]
    mfa_policies_not_applied: Policies<'a>,
    #[serde(skip_serializing_if = "Texts::is_empty")]
    authentication_methods: Texts<'a>,
    #[serde(skip_serializing_if = "MfagapSource::is_empty")]
    source: MfagapSource<'a>,
}

/// A list of the record's texts, the blank ones left out.
struct Texts<'a>(&'a [Text<'a>]);

impl Texts<'_> {
    fn is_empty(&self) -> bool {
        self.0.iter().all(|t| known(t.as_str()).is_none())
    }
}

impl Serialize for Texts<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for t in self.0.iter().filter_map(|t| known(t.as_str())) {
            seq.serialize_element(t)?;
        }
        seq.end()
    }
}

/// `mfa_policies_not_applied`: `{display_name, result}` of each, the unknown parts left out.
struct Policies<'a>(&'a [PolicyResult<'a>]);

#[derive(Serialize)]
struct Policy<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a str>,
}

impl<'a> Policy<'a> {
    fn of(p: &'a PolicyResult<'a>) -> Option<Policy<'a>> {
        let policy = Policy {
            display_name: text(&p.display_name),
            result: text(&p.result),
        };
        (policy.display_name.is_some() || policy.result.is_some()).then_some(policy)
    }
}

impl Policies<'_> {
    fn is_empty(&self) -> bool {
        self.0.iter().all(|p| Policy::of(p).is_none())
    }
}

impl Serialize for Policies<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for p in self.0.iter().filter_map(Policy::of) {
            seq.serialize_element(&p)?;
        }
        seq.end()
    }
}

/// The record's `source`: the event that carried the sign-in.
#[derive(Serialize)]
struct MfagapSource<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_hub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence_number: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enqueued_time: Option<Rfc3339>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
}

impl MfagapSource<'_> {
    fn is_empty(&self) -> bool {
        self.kind.is_none()
            && self.event_hub.is_none()
            && self.partition.is_none()
            && self.offset.is_none()
            && self.sequence_number.is_none()
            && self.enqueued_time.is_none()
            && self.file.is_none()
            && self.line.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::Format;
    use crate::process::{Output, Processor};
    use crate::record::Source;
    use serde_json::{Value, json};

    /// A single-factor sign-in that sets every field the record carries.
    const FULL: &str = r#"{"time":"2025-12-12T14:56:30Z","category":"NonInteractiveUserSignInLogs","tenantId":"t-1","correlationId":"c-top","resultType":"0","callerIpAddress":"203.0.113.9",
      "properties":{"id":"s-1","createdDateTime":"2025-12-12T15:56:31.1239999+01:00","userPrincipalName":"alice@contoso.com","userDisplayName":"Alice Martin","userId":"u-1","userType":"Member",
        "appId":"app-1","appDisplayName":"Microsoft Office","resourceId":"00000003-0000-0000-c000-000000000000","resourceDisplayName":"Microsoft Graph",
        "ipAddress":"2001:db8::7","status":{"errorCode":0,"failureReason":"Other."},"clientAppUsed":"Mobile Apps and Desktop clients","isInteractive":false,
        "userAgent":"Mozilla/5.0 (Windows NT 10.0)","authenticationRequirement":"singleFactorAuthentication","conditionalAccessStatus":"success","mfaDetail":{},
        "appliedConditionalAccessPolicies":[{"displayName":"Require MFA off-site","result":"notApplied","enforcedGrantControls":["Mfa"]},
          {"displayName":"Compliant device","result":"success","enforcedGrantControls":["CompliantDevice"]},
          {"displayName":"Block legacy","result":"notApplied","enforcedGrantControls":["Block"]}],
        "authenticationDetails":[{"authenticationMethod":"Password","authenticationStepRequirement":"Primary authentication","succeeded":true,"authenticationStepResultDetail":"Correct password"},
          {"authenticationMethod":"","succeeded":null}],
        "authenticationRequirementPolicies":[{"requirementProvider":"user","detail":"Per-user MFA"},{"requirementProvider":""}],
        "location":{"city":"Zürich","state":"Zürich","countryOrRegion":"CH","geoCoordinates":{"latitude":47.37,"longitude":8.54}},
        "deviceDetail":{"deviceId":"d-1","displayName":"LAPTOP-1","operatingSystem":"Windows10","browser":"Edge 120.0.0","isCompliant":true,"isManaged":"false","trustType":"Hybrid Azure AD joined"},
        "riskLevelDuringSignIn":"none","riskState":"none","correlationId":"c-1","sessionId":"sess-1","tokenIssuerType":"AzureAD",
        "authenticationProtocol":"none","originalTransferMethod":"none","incomingTokenType":"primaryRefreshToken"}}"#;

    /// MFA was required and skipped, with a non-ASCII name and city (from the record tests).
    const SKIPPED: &str = r#"{"time":"2025-12-12T14:56:31.1234567Z","category":"SignInLogs","tenantId":"t1","resultType":"0",
      "properties":{"id":"s1","createdDateTime":"12/12/2025 3:03:58 PM","userPrincipalName":"zoë@contoso.com",
        "userDisplayName":"Zo\u00eb \"Z\" Smith, Jr.","userId":"","status":{"errorCode":"0","additionalDetails":"MFA skipped due to location"},
        "clientAppUsed":"Browser","authenticationRequirement":"multiFactorAuthentication","mfaDetail":{},"ipAddress":"198.51.100.4",
        "appliedConditionalAccessPolicies":[{"displayName":"Require MFA","result":"success"},{"displayName":"Block legacy","result":"notApplied"}],
        "authenticationDetails":[{"authenticationMethod":"Password","succeeded":true,"authenticationStepResultDetail":"Correct password"},
          {"authenticationMethod":"","succeeded":true,"authenticationStepResultDetail":"MFA skipped due to location"}],
        "location":{"city":"東京","state":"東京都","countryOrRegion":"JP"},
        "deviceDetail":{"operatingSystem":"Windows10","isCompliant":"false"},"riskState":null}}"#;

    fn source() -> Source<'static> {
        Source {
            kind: Text("eventhubs".into()),
            event_hub: Some(Text("signins".into())),
            partition: Some(Text("3".into())),
            offset: Some(Text("4242".into())),
            sequence_number: Some(17),
            enqueued_time: Some(1_765_551_391_000_001),
            ..Source::default()
        }
    }

    /// The ECS documents of a diagnostic-settings body's emitted sign-ins, each checked to
    /// carry no null, `""`, `[]` or `{}`, and the native record's id.
    fn ecs_all(body: &str, processor: &Processor) -> Vec<Value> {
        let mut out = Vec::new();
        processor.process(
            body.as_bytes(),
            &source(),
            1_765_551_400_123_456,
            &mut crate::Stats::default(),
            &mut |o| {
                if let Output::SignIn(s) = o {
                    let mut payload = Vec::new();
                    Ecs.write_payload(&s, &mut payload);
                    let v: Value = serde_json::from_slice(&payload)
                        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&payload)));
                    assert_no_empty("", &v);
                    assert_eq!(v["event"]["id"], s.id.as_str());
                    assert_eq!(Ecs.encode(&s).payload, payload, "encode writes the payload");
                    out.push(v);
                }
            },
        );
        out
    }

    fn ecs(body: &str) -> Value {
        let mut all = ecs_all(body, &Processor::default());
        assert_eq!(all.len(), 1, "one sign-in is emitted");
        all.remove(0)
    }

    fn assert_no_empty(path: &str, v: &Value) {
        match v {
            Value::Null => panic!("{path} is null"),
            Value::String(s) => assert!(!s.is_empty(), "{path} is \"\""),
            Value::Array(a) => {
                assert!(!a.is_empty(), "{path} is []");
                for (i, x) in a.iter().enumerate() {
                    assert_no_empty(&format!("{path}[{i}]"), x);
                }
            }
            Value::Object(o) => {
                assert!(!o.is_empty(), "{path} is {{}}");
                for (k, x) in o {
                    assert_no_empty(&format!("{path}.{k}"), x);
                }
            }
            Value::Bool(_) | Value::Number(_) => {}
        }
    }

    #[test]
    fn a_full_sign_in_is_the_integrations_document() {
        let v = ecs(FULL);
        let expected: Value = serde_json::from_str(
            r#"{
            "@timestamp": "2025-12-12T14:56:31.123Z",
            "ecs": {"version": "8.11.0"},
            "data_stream": {"type": "logs", "dataset": "azure.signinlogs", "namespace": "default"},
            "event": {
                "kind": "event",
                "category": ["authentication"],
                "type": ["info"],
                "outcome": "success",
                "action": "Sign-in activity",
                "id": "s-1",
                "dataset": "azure.signinlogs",
                "module": "azure",
                "created": "2025-12-12T14:56:40.123Z",
                "reason": "Sign-in succeeded with a single factor: nothing asked for a second factor"
            },
            "message": "Other.",
            "labels": {"mfagap_reason": "single_factor"},
            "user": {
                "name": "alice@contoso.com",
                "email": "alice@contoso.com",
                "id": "u-1",
                "full_name": "Alice Martin"
            },
            "source": {"address": "2001:db8::7", "ip": "2001:db8::7"},
            "client": {"ip": "2001:db8::7"},
            "user_agent": {"original": "Mozilla/5.0 (Windows NT 10.0)"},
            "cloud": {"provider": "azure", "account": {"id": "t-1"}},
            "geo": {"city_name": "Zürich", "region_name": "Zürich", "country_iso_code": "CH"},
            "related": {
                "user": ["u-1", "alice@contoso.com", "Alice Martin"],
                "entity": ["app-1", "00000003-0000-0000-c000-000000000000", "u-1", "d-1"],
                "ip": ["2001:db8::7"]
            },
            "azure": {
                "tenant_id": "t-1",
                "tenant": {"id": "t-1"},
                "correlation_id": "c-1",
                "correlation": {"id": "c-1"},
                "signinlogs": {
                    "category": "NonInteractiveUserSignInLogs",
                    "operation_name": "Sign-in activity",
                    "result_type": "0",
                    "properties": {
                        "id": "s-1",
                        "created_at": "2025-12-12T14:56:31.123999Z",
                        "user_principal_name": "alice@contoso.com",
                        "user_display_name": "Alice Martin",
                        "user_id": "u-1",
                        "user_type": "Member",
                        "app_id": "app-1",
                        "app_display_name": "Microsoft Office",
                        "resource_id": "00000003-0000-0000-c000-000000000000",
                        "resource_display_name": "Microsoft Graph",
                        "client_app_used": "Mobile Apps and Desktop clients",
                        "is_interactive": false,
                        "status": {"error_code": 0},
                        "conditional_access_status": "success",
                        "authentication_requirement": "singleFactorAuthentication",
                        "device_detail": {
                            "device_id": "d-1",
                            "display_name": "LAPTOP-1",
                            "operating_system": "Windows10",
                            "browser": "Edge 120.0.0",
                            "is_compliant": true,
                            "is_managed": false,
                            "trust_type": "Hybrid Azure AD joined"
                        },
                        "risk_level_during_signin": "none",
                        "risk_state": "none",
                        "correlation_id": "c-1",
                        "session_id": "sess-1",
                        "token_issuer_type": "AzureAD",
                        "authentication_protocol": "none",
                        "original_transfer_method": "none",
                        "incoming_token_type": "primaryRefreshToken",
                        "authentication_details": [{
                            "authentication_method": "Password",
                            "authentication_step_requirement": "Primary authentication",
                            "succeeded": true,
                            "authentication_step_result_detail": "Correct password"
                        }],
                        "authentication_requirement_policies": [{"requirement_provider": "user"}]
                    }
                }
            },
            "mfagap": {
                "reason": "single_factor",
                "applied_policies": ["Compliant device"],
                "mfa_policies_not_applied": [{"display_name": "Require MFA off-site", "result": "notApplied"}],
                "authentication_methods": ["Password"],
                "source": {
                    "kind": "eventhubs",
                    "event_hub": "signins",
                    "partition": "3",
                    "offset": "4242",
                    "sequence_number": 17,
                    "enqueued_time": "2025-12-12T14:56:31.000001Z"
                }
            }
        }"#,
        )
        .unwrap();
        assert_eq!(v, expected, "{}", serde_json::to_string_pretty(&v).unwrap());
        // Key order too: the document is written in one pass, in this order.
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "@timestamp",
                "ecs",
                "data_stream",
                "event",
                "message",
                "labels",
                "user",
                "source",
                "client",
                "user_agent",
                "cloud",
                "geo",
                "related",
                "azure",
                "mfagap"
            ]
        );
    }

    #[test]
    fn mfa_skipped_keeps_the_stated_requirement_and_the_skip_as_evidence() {
        let v = ecs(SKIPPED);
        let p = &v["azure"]["signinlogs"]["properties"];
        assert_eq!(p["authentication_requirement"], "multiFactorAuthentication");
        assert_eq!(v["labels"]["mfagap_reason"], "mfa_skipped");
        assert_eq!(
            v["labels"]["mfagap_mfa_result"],
            "MFA skipped due to location"
        );
        assert_eq!(v["mfagap"]["mfa_result"], "MFA skipped due to location");
        assert_eq!(
            v["event"]["reason"],
            "Sign-in succeeded without MFA: MFA was required but skipped (MFA skipped due to location)"
        );
        assert_eq!(
            p["authentication_details"],
            json!([
                {"authentication_method": "Password", "succeeded": true, "authentication_step_result_detail": "Correct password"},
                {"succeeded": true, "authentication_step_result_detail": "MFA skipped due to location"}
            ])
        );
        assert_eq!(v["mfagap"]["applied_policies"], json!(["Require MFA"]));
        assert!(
            v["mfagap"].get("mfa_policies_not_applied").is_none(),
            "no grant control asked for MFA"
        );
        assert!(p.get("mfa_detail").is_none(), "{{}} mfaDetail is dropped");
        assert_eq!(
            p["status"],
            json!({"error_code": 0}),
            "\"0\" is written as a number"
        );
        assert_eq!(v["azure"]["signinlogs"]["result_type"], "0");
        assert_eq!(
            p["is_interactive"], true,
            "from the category, as the record has it"
        );
        assert_eq!(
            v["@timestamp"], "2025-12-12T15:03:58.000Z",
            "createdDateTime in the US form"
        );
    }

    #[test]
    fn unicode_names_and_places_are_carried_whole() {
        let v = ecs(SKIPPED);
        assert_eq!(
            v["user"]["name"], "zoë@contoso.com",
            "the whole UPN, no user.domain"
        );
        assert_eq!(v["user"]["email"], "zoë@contoso.com");
        assert!(v["user"].get("domain").is_none());
        assert!(v["user"].get("id").is_none(), "\"\" userId");
        assert_eq!(v["user"]["full_name"], "Zoë \"Z\" Smith, Jr.");
        assert_eq!(
            v["related"]["user"],
            json!(["zoë@contoso.com", "Zoë \"Z\" Smith, Jr."])
        );
        assert_eq!(
            v["geo"],
            json!({"city_name": "東京", "region_name": "東京都", "country_iso_code": "JP"})
        );
        assert_eq!(
            v["azure"]["signinlogs"]["properties"]["device_detail"],
            json!({"operating_system": "Windows10", "is_compliant": false})
        );
    }

    #[test]
    fn a_legacy_client_says_which_client_in_the_reason() {
        let body = FULL
            .replace("Mobile Apps and Desktop clients", "IMAP4")
            .replace(r#""isInteractive":false"#, r#""isInteractive":true"#);
        let v = ecs(&body);
        assert_eq!(v["labels"]["mfagap_reason"], "legacy_protocol");
        assert_eq!(v["mfagap"]["reason"], "legacy_protocol");
        assert_eq!(
            v["azure"]["signinlogs"]["properties"]["client_app_used"],
            "IMAP4"
        );
        assert_eq!(
            v["azure"]["signinlogs"]["properties"]["is_interactive"],
            true
        );
        assert_eq!(
            v["event"]["reason"],
            "Sign-in succeeded without MFA over a legacy authentication client (IMAP4), which cannot do MFA"
        );
        assert!(v["labels"].get("mfagap_mfa_result").is_none());
    }

    #[test]
    fn an_adfs_sign_in_keeps_its_category_and_issuer() {
        let body = r#"{"time":"2025-12-12T09:00:00Z","category":"ADFSSignInLogs","resultType":0,
          "properties":{"id":"adfs-1","userPrincipalName":"bob@corp.example","status":{"errorCode":0},
            "tokenIssuerType":"ADFederationServices","authenticationProtocol":"wsFederation","ipAddress":"192.0.2.10",
            "authenticationDetails":[{"authenticationMethod":"Forms","succeeded":true}]}}"#;
        let v = ecs(body);
        let s = &v["azure"]["signinlogs"];
        assert_eq!(s["category"], "ADFSSignInLogs");
        assert_eq!(s["properties"]["token_issuer_type"], "ADFederationServices");
        assert_eq!(s["properties"]["authentication_protocol"], "wsFederation");
        assert_eq!(s["properties"]["is_interactive"], true);
        assert_eq!(
            s["properties"]["created_at"], "2025-12-12T09:00:00.000000Z",
            "from time"
        );
        assert_eq!(v["@timestamp"], "2025-12-12T09:00:00.000Z");
        // No tenant and no correlation: the fields are left out, never written empty.
        assert_eq!(v["cloud"], json!({"provider": "azure"}));
        for k in ["tenant_id", "tenant", "correlation_id", "correlation"] {
            assert!(v["azure"].get(k).is_none(), "{k}");
        }
        assert_eq!(
            v["related"],
            json!({"user": ["bob@corp.example"], "ip": ["192.0.2.10"]})
        );
    }

    #[test]
    fn an_empty_authentication_requirement_is_left_out_not_guessed() {
        for req in [r#""""#, "null", r#""  ""#] {
            let body = FULL.replace(r#""singleFactorAuthentication""#, req);
            let v = ecs(&body);
            let p = &v["azure"]["signinlogs"]["properties"];
            assert!(p.get("authentication_requirement").is_none(), "{req}: {p}");
            assert!(p.get("id").is_some(), "the rest is there");
        }
    }

    #[test]
    fn missing_location_and_device_leave_no_trace() {
        let body = FULL
            .replace(
                r#""location":{"city":"Zürich","state":"Zürich","countryOrRegion":"CH","geoCoordinates":{"latitude":47.37,"longitude":8.54}},"#,
                "",
            )
            .replace(
                r#""deviceDetail":{"deviceId":"d-1","displayName":"LAPTOP-1","operatingSystem":"Windows10","browser":"Edge 120.0.0","isCompliant":true,"isManaged":"false","trustType":"Hybrid Azure AD joined"},"#,
                r#""deviceDetail":{"deviceId":"","displayName":null,"operatingSystem":"","isCompliant":null},"#,
            );
        let v = ecs(&body);
        assert!(v.get("geo").is_none());
        assert!(
            v["azure"]["signinlogs"]["properties"]
                .get("device_detail")
                .is_none()
        );
        assert_eq!(
            v["related"]["entity"],
            json!(["app-1", "00000003-0000-0000-c000-000000000000", "u-1"])
        );
    }

    #[test]
    fn an_address_that_is_not_an_ip_stays_only_in_source_address() {
        for bad in [
            "not-an-ip",
            "10.0.0.1:443",
            "2001:db8::7%eth0x",
            " 10.0.0.1",
        ] {
            let body = FULL.replace("2001:db8::7", bad);
            let v = ecs(&body);
            assert_eq!(v["source"], json!({"address": bad}), "{bad}");
            assert!(v.get("client").is_none(), "{bad}");
            assert!(v["related"].get("ip").is_none(), "{bad}");
        }
        let v = ecs(&FULL.replace("2001:db8::7", "192.0.2.1"));
        assert_eq!(v["source"]["ip"], "192.0.2.1");
        assert_eq!(v["client"]["ip"], "192.0.2.1");
        assert_eq!(v["related"]["ip"], json!(["192.0.2.1"]));
    }

    #[test]
    fn user_email_only_when_the_name_has_an_at_sign_after_its_start() {
        for (upn, email) in [
            ("alice", None),
            ("@contoso.com", None),
            ("a@b", Some("a@b")),
            ("x@y@z", Some("x@y@z")),
        ] {
            let v = ecs(&FULL.replace("alice@contoso.com", upn));
            assert_eq!(v["user"]["name"], upn);
            assert_eq!(
                v["user"].get("email").and_then(Value::as_str),
                email,
                "{upn}"
            );
        }
    }

    #[test]
    fn related_values_are_distinct() {
        let body = FULL
            .replace(r#""userId":"u-1""#, r#""userId":"alice@contoso.com""#)
            .replace(r#""appId":"app-1""#, r#""appId":"d-1""#);
        let v = ecs(&body);
        assert_eq!(
            v["related"]["user"],
            json!(["alice@contoso.com", "Alice Martin"])
        );
        assert_eq!(
            v["related"]["entity"],
            json!([
                "d-1",
                "00000003-0000-0000-c000-000000000000",
                "alice@contoso.com"
            ])
        );
    }

    #[test]
    fn timestamps_are_milliseconds_truncated_in_utc() {
        let v = ecs(&FULL.replace("15:56:31.1239999+01:00", "00:30:00.9999999+01:00"));
        assert_eq!(
            v["@timestamp"], "2025-12-11T23:30:00.999Z",
            "truncated, not rounded"
        );
        assert_eq!(
            v["azure"]["signinlogs"]["properties"]["created_at"],
            "2025-12-11T23:30:00.999999Z"
        );
        let m = |micros| Millis(micros).to_string();
        assert_eq!(m(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(m(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            m(i64::MAX),
            timestamp::format(i64::MAX),
            "out of range: no panic"
        );
    }

    #[test]
    fn the_headers_are_the_common_ones_with_format_ecs() {
        let mut headers = Vec::new();
        Processor::default().process(
            FULL.as_bytes(),
            &source(),
            0,
            &mut crate::Stats::default(),
            &mut |o| {
                if let Output::SignIn(s) = o {
                    headers = Format::Ecs.encoder(Default::default()).encode(&s).headers;
                }
            },
        );
        assert_eq!(
            headers,
            vec![
                ("category", "NonInteractiveUserSignInLogs".to_owned()),
                ("tenantId", "t-1".to_owned()),
                ("reason", "single_factor".to_owned()),
                ("format", "ecs".to_owned()),
            ]
        );
        assert_eq!(Ecs.name(), "ecs");
    }

    #[test]
    fn every_generated_sign_in_encodes_without_empties() {
        use mfagap_generate::{Generator, GeneratorConfig};
        let processor = Processor::new(crate::Classifier::new(crate::ClassifierConfig {
            include_workload: true,
            ..Default::default()
        }));
        let mut g = Generator::new(GeneratorConfig {
            seed: 9,
            ..GeneratorConfig::default()
        });
        let (mut n, mut reasons) = (0, std::collections::BTreeSet::new());
        for _ in 0..300 {
            let m = g.next_message();
            let Ok(body) = std::str::from_utf8(&m.body) else {
                continue;
            };
            for v in ecs_all(body, &processor) {
                assert_eq!(v["event"]["outcome"], "success");
                assert_eq!(
                    v["azure"]["signinlogs"]["properties"]["status"]["error_code"],
                    0
                );
                reasons.insert(v["labels"]["mfagap_reason"].as_str().unwrap().to_owned());
                n += 1;
            }
        }
        assert!(n > 500, "{n} sign-ins");
        assert_eq!(reasons.len(), Reason::ALL.len(), "{reasons:?}");
    }
}
