//! OCSF Authentication (class 3002), activity Logon: see `schemas/ocsf-mapping.md`.
//!
//! One emitted sign-in becomes one event of the chosen schema version. Both versions reject
//! attributes their class does not define, so each gets only what its schema allows: what 1.1.0
//! lacks (authentication factors, the Basic Authentication protocol id, the client app on the
//! actor) goes to `auth_protocol` text or `unmapped`. JSON `null` is never written: an unknown
//! value leaves its key out. `metadata.profiles` names exactly the profiles whose attributes the
//! event uses: `cloud` always, `host` when it has a `device`.
//!
//! The event is a tree of structs that borrow from the record, serialized straight into the
//! output buffer: no intermediate JSON value and no copy of any text.

use super::Encoder;
use crate::category::Category;
use crate::classify::Reason;
use crate::lenient::Text;
use crate::record::{AuthenticationStep, PolicyResult, SignIn, Source};
use crate::timestamp::{self, Micros};
use serde::{Serialize, Serializer};
use std::net::IpAddr;

/// The OCSF schema versions mfagap writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OcsfVersion {
    /// 1.1.0: what Amazon Security Lake validates custom sources against.
    V1_1_0,
    /// 1.8.0: the newest release.
    #[default]
    V1_8_0,
}

impl OcsfVersion {
    /// Every version, oldest first.
    pub const ALL: [OcsfVersion; 2] = [OcsfVersion::V1_1_0, OcsfVersion::V1_8_0];

    /// The version as `--ocsf-version` takes it and `metadata.version` carries it.
    pub fn as_str(self) -> &'static str {
        match self {
            OcsfVersion::V1_1_0 => "1.1.0",
            OcsfVersion::V1_8_0 => "1.8.0",
        }
    }
}

impl std::fmt::Display for OcsfVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for OcsfVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<OcsfVersion, String> {
        OcsfVersion::ALL
            .into_iter()
            .find(|v| v.as_str() == s.trim())
            .ok_or_else(|| format!("not an OCSF version mfagap writes: {s:?} (1.1.0, 1.8.0)"))
    }
}

/// The OCSF encoder of one schema version.
#[derive(Debug, Clone, Copy)]
pub struct Ocsf {
    version: OcsfVersion,
}

impl Ocsf {
    /// The encoder of `version`.
    pub fn new(version: OcsfVersion) -> Ocsf {
        Ocsf { version }
    }
}

impl Encoder for Ocsf {
    fn name(&self) -> &'static str {
        "ocsf"
    }

    fn write_payload(&self, s: &SignIn<'_>, out: &mut Vec<u8>) {
        serde_json::to_writer(out, &self.event(s))
            .expect("an OCSF event (strings, integers and booleans only) always serializes");
    }

    fn headers(&self, s: &SignIn<'_>) -> Vec<(&'static str, String)> {
        let mut h = super::common_headers(s, super::Format::Ocsf);
        h.push(("ocsfVersion", self.version.as_str().to_owned()));
        h
    }
}

/// Authentication.
const CLASS_UID: u32 = 3002;
/// Logon.
const ACTIVITY_ID: u32 = 1;
/// Identity & Access Management.
const CATEGORY_UID: u32 = 3;
/// The longest string 1.1.0 accepts (`string_t`'s `max_len`), in characters. 1.8.0 has no limit.
const MAX_STRING_1_1_0: usize = 65_535;
/// The identity provider behind every sign-in log, and the service of last resort.
const ENTRA_ID: &str = "Microsoft Entra ID";
/// The profiles of an event without and with a `device`.
const PROFILES: &[&str] = &["cloud"];
const PROFILES_HOST: &[&str] = &["cloud", "host"];

impl Ocsf {
    /// The event of one sign-in: every decision of `schemas/ocsf-mapping.md`, in its order.
    fn event<'s>(&self, s: &'s SignIn<'_>) -> Event<'s> {
        let v = self.version;
        let new = v == OcsfVersion::V1_8_0;
        let app_name = self.text(&s.app_display_name);
        let app_uid = self.text(&s.app_id);

        let device = s.device_detail.as_ref().and_then(|d| {
            let uid = self.text(&d.device_id);
            let name = self.text(&d.display_name);
            // The host profile's device must be identified: an anonymous deviceDetail (the
            // common case, an unregistered device) stays in `unmapped`.
            (uid.is_some() || name.is_some()).then(|| Device {
                type_id: 0,
                kind: "Unknown",
                uid,
                name,
                is_compliant: d.is_compliant,
                is_managed: d.is_managed,
                is_trusted: d.trust_type.as_ref().and_then(|t| trust(t.as_str())),
                os: self.text(&d.operating_system).and_then(|name| {
                    os_type(name).map(|(type_id, kind)| Os {
                        name,
                        type_id,
                        kind,
                    })
                }),
            })
        });
        let device_rest = s.device_detail.as_ref().map(|d| DeviceRest {
            operating_system: raw(&d.operating_system)
                .filter(|_| device.as_ref().is_none_or(|dev| dev.os.is_none())),
            browser: raw(&d.browser),
            is_compliant: d.is_compliant.filter(|_| device.is_none()),
            is_managed: d.is_managed.filter(|_| device.is_none()),
            trust_type: raw(&d.trust_type),
        });

        let ip = self.text(&s.ip_address).filter(|ip| is_ip(ip));
        let location = s.location.as_ref().and_then(|l| {
            let out = Place {
                city: self.text(&l.city),
                country: self.text(&l.country_or_region),
                region: self.text(&l.state),
            };
            (out.city.is_some() || out.country.is_some() || out.region.is_some()).then_some(out)
        });
        let (auth_protocol_id, auth_protocol) = if s.reason == Reason::LegacyProtocol {
            match v {
                OcsfVersion::V1_1_0 => (99, BASIC_AUTH),
                OcsfVersion::V1_8_0 => (11, BASIC_AUTH),
            }
        } else {
            protocol(raw(&s.authentication_protocol))
        };
        let tenant = self.text(&s.tenant_id);
        let id = self.cap(s.id.as_str());

        Event {
            activity_id: ACTIVITY_ID,
            activity_name: "Logon",
            category_uid: CATEGORY_UID,
            category_name: "Identity & Access Management",
            class_uid: CLASS_UID,
            class_name: "Authentication",
            type_uid: CLASS_UID * 100 + ACTIVITY_ID,
            type_name: "Authentication: Logon",
            severity_id: 1,
            severity: "Informational",
            status_id: 1,
            status: "Success",
            status_code: "0",
            status_detail: self.text(&s.mfa_result),
            time: millis(s.created_date_time),
            message: message(s.reason),
            metadata: Metadata {
                version: v.as_str(),
                profiles: if device.is_some() {
                    PROFILES_HOST
                } else {
                    PROFILES
                },
                product: Product {
                    name: "mfagap",
                    vendor_name: "mfagap",
                    version: env!("CARGO_PKG_VERSION"),
                },
                uid: (!new).then_some(id),
                original_event_uid: new.then_some(id),
                correlation_uid: self.text(&s.correlation_id),
                tenant_uid: tenant,
                log_name: self.cap(s.category.as_str()),
                log_provider: ENTRA_ID,
                processed_time: millis(s.ingested_at),
            },
            user: self.user(s, app_name, app_uid),
            actor: (new && (app_name.is_some() || app_uid.is_some())).then(|| Actor {
                app_name,
                app_uid,
                idp: raw(&s.token_issuer_type).map(|t| Idp { name: idp_name(t) }),
            }),
            src_endpoint: ip.map(|ip| Endpoint { ip, location }),
            service: match (
                self.text(&s.resource_display_name),
                self.text(&s.resource_id),
            ) {
                (None, None) if app_name.is_some() || app_uid.is_some() => Service {
                    name: app_name,
                    uid: app_uid,
                },
                (None, None) => Service {
                    name: Some(ENTRA_ID),
                    uid: None,
                },
                (name, uid) => Service { name, uid },
            },
            device,
            http_request: self
                .text(&s.user_agent)
                .map(|user_agent| HttpRequest { user_agent }),
            session: Session {
                uid: self.text(&s.session_id),
                is_mfa: false,
            },
            is_mfa: false,
            auth_protocol_id,
            auth_protocol,
            logon_type_id: s.is_interactive.map(|_| 99),
            logon_type: s
                .is_interactive
                .map(|i| if i { "Interactive" } else { "Non-interactive" }),
            auth_factors: Some(Factors(&s.authentication_methods)).filter(|f| new && !f.is_empty()),
            cloud: Cloud {
                provider: "Azure",
                account: tenant.map(|uid| Account {
                    uid,
                    type_id: 6,
                    kind: "Azure AD Account",
                }),
            },
            unmapped: Unmapped {
                reason: s.reason.as_str(),
                mfa_required: s.mfa_required,
                authentication_requirement: raw(&s.authentication_requirement),
                mfa_result: raw(&s.mfa_result),
                mfa_auth_method: raw(&s.mfa_auth_method),
                mfa_auth_detail: raw(&s.mfa_auth_detail),
                conditional_access_status: raw(&s.conditional_access_status),
                policies: &s.policies,
                mfa_policies_not_applied: Policies(&s.mfa_policies_not_applied),
                mfa_requirement_providers: &s.mfa_requirement_providers,
                authentication_steps: Steps(&s.authentication_steps),
                authentication_methods: if new { &[] } else { &s.authentication_methods },
                token_issuer_type: raw(&s.token_issuer_type),
                authentication_protocol: raw(&s.authentication_protocol),
                original_transfer_method: raw(&s.original_transfer_method),
                incoming_token_type: raw(&s.incoming_token_type),
                client_app_used: raw(&s.client_app_used),
                app_id: raw(&s.app_id).filter(|_| !new),
                app_display_name: raw(&s.app_display_name).filter(|_| !new),
                risk_level_during_sign_in: raw(&s.risk_level_during_sign_in),
                risk_state: raw(&s.risk_state),
                failure_reason: raw(&s.failure_reason),
                ip_address: raw(&s.ip_address).filter(|_| ip.is_none()),
                location: s
                    .location
                    .as_ref()
                    .filter(|_| ip.is_none() && location.is_some())
                    .map(|l| RawLocation {
                        city: raw(&l.city),
                        state: raw(&l.state),
                        country_or_region: raw(&l.country_or_region),
                    }),
                device_detail: device_rest.filter(|d| !d.is_empty()),
                source: SourceOut::of(&s.source),
            },
        }
    }

    /// `user`: the person signing in, identified by at least one of uid and name (the
    /// schema's constraint), whatever the record left out.
    fn user<'s>(
        &self,
        s: &'s SignIn<'_>,
        app_name: Option<&'s str>,
        app_uid: Option<&'s str>,
    ) -> User<'s> {
        let upn = self.text(&s.user_principal_name);
        let mut user = User {
            uid: self.text(&s.user_id),
            name: upn,
            full_name: self.text(&s.user_display_name),
            domain: upn.and_then(|u| u.rsplit_once('@')).map(|(_, d)| d),
            email_addr: upn.filter(|u| is_email(u, self.version) && !contains_ci(u, "#EXT#")),
            type_id: None,
            kind: None,
        };
        user.domain = user.domain.filter(|d| !d.is_empty());
        if let Some(t) = self.text(&s.user_type) {
            (user.type_id, user.kind) = if t.trim().eq_ignore_ascii_case("Member") {
                (Some(1), Some("User"))
            } else {
                // Guest, or a value of the future: OCSF's Other, with the source's word.
                (Some(99), Some(t))
            };
        }
        if user.uid.is_some() || user.name.is_some() {
            return user;
        }
        let workload = Category::parse(s.category.as_str()).is_some_and(Category::is_workload);
        if user.full_name.is_some() {
            user.name = user.full_name;
        } else if workload && (app_name.is_some() || app_uid.is_some()) {
            // A workload identity signs in as its application.
            user.uid = app_uid;
            user.name = app_name;
            user.type_id = Some(match self.version {
                OcsfVersion::V1_1_0 => 99,
                OcsfVersion::V1_8_0 => 4,
            });
            user.kind = Some("Service");
        } else {
            user.name = Some("unknown");
        }
        user
    }

    /// A text of the record as a mapped attribute: cut to what 1.1.0 accepts.
    fn text<'s>(&self, t: &'s Option<Text<'_>>) -> Option<&'s str> {
        t.as_ref().map(|t| self.cap(t.as_str()))
    }

    /// 1.1.0 caps every string at 65,535 characters; Entra's own fields are far shorter, so
    /// only a malformed record is ever cut (at a character boundary).
    fn cap<'s>(&self, s: &'s str) -> &'s str {
        if self.version != OcsfVersion::V1_1_0 || s.len() <= MAX_STRING_1_1_0 {
            return s;
        }
        match s.char_indices().nth(MAX_STRING_1_1_0) {
            Some((end, _)) => &s[..end],
            None => s,
        }
    }
}

/// A text of the record as `unmapped` carries it: whole (`unmapped` has no limits).
fn raw<'s>(t: &'s Option<Text<'_>>) -> Option<&'s str> {
    t.as_ref().map(Text::as_str)
}

/// Microseconds since the epoch as OCSF's `timestamp_t`: milliseconds.
fn millis(micros: Micros) -> i64 {
    micros.div_euclid(1000)
}

const BASIC_AUTH: &str = "Basic Authentication";

/// `auth_protocol_id` and `auth_protocol` of `authenticationProtocol` (legacy clients are
/// decided before, by the reason).
fn protocol(p: Option<&str>) -> (u8, &'static str) {
    let p = p.unwrap_or("").trim();
    let is = |name: &str| p.eq_ignore_ascii_case(name);
    if is("oAuth2") || is("ropc") || is("deviceCode") {
        (6, "OAUTH 2.0")
    } else if is("saml20") {
        (5, "SAML")
    } else if is("wsFederation") {
        (99, "WS-Federation")
    } else {
        (0, "Unknown")
    }
}

/// `message`: what mfagap found, in a sentence per reason.
fn message(reason: Reason) -> &'static str {
    match reason {
        Reason::LegacyProtocol => "Sign-in succeeded over a legacy protocol, which cannot do MFA",
        Reason::MfaSkipped => "Sign-in succeeded with MFA required but skipped",
        Reason::SingleFactor => "Sign-in succeeded with a single factor: nothing asked for MFA",
    }
}

/// `actor.idp.name` of `tokenIssuerType`.
fn idp_name(t: &str) -> &str {
    if t.trim().eq_ignore_ascii_case("AzureAD") {
        ENTRA_ID
    } else if t.trim().eq_ignore_ascii_case("ADFederationServices") {
        "AD FS"
    } else {
        t
    }
}

/// `device.is_trusted` of `trustType`: joined (Entra or hybrid) devices are the
/// organisation's; registered ones are personal devices allowed in.
fn trust(t: &str) -> Option<bool> {
    let t = t.trim();
    if contains_ci(t, "joined")
        || t.eq_ignore_ascii_case("AzureAd")
        || t.eq_ignore_ascii_case("ServerAd")
    {
        Some(true)
    } else if contains_ci(t, "registered") || t.eq_ignore_ascii_case("Workplace") {
        Some(false)
    } else {
        None
    }
}

/// `os.type_id` and its caption for `deviceDetail.operatingSystem`; `None` when the name does
/// not say (then `os`, whose type is required, is left out).
fn os_type(name: &str) -> Option<(u16, &'static str)> {
    const KNOWN: [(&str, u16, &str); 14] = [
        ("windowsphone", 101, "Windows Mobile"),
        ("windows phone", 101, "Windows Mobile"),
        ("windowsmobile", 101, "Windows Mobile"),
        ("windows mobile", 101, "Windows Mobile"),
        ("windows", 100, "Windows"),
        ("ipados", 302, "iPadOS"),
        ("ios", 301, "iOS"),
        ("macos", 300, "macOS"),
        ("mac os", 300, "macOS"),
        ("osx", 300, "macOS"),
        ("os x", 300, "macOS"),
        ("android", 201, "Android"),
        ("linux", 200, "Linux"),
        ("ubuntu", 200, "Linux"),
    ];
    let name = name.trim();
    KNOWN
        .iter()
        .find(|(prefix, _, _)| starts_word(name, prefix))
        .map(|&(_, id, caption)| (id, caption))
}

/// `s` starts with `prefix` (ASCII letters in any case) and the prefix is not the start of a
/// longer word: `Windows10` and `Windows 10` start with `windows`, `Iosphere` not with `ios`.
fn starts_word(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
        && !s[prefix.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// What the `ip_t` type accepts (its pattern and its 40 characters), decided by the standard
/// parser: an address in any other form stays in `unmapped`.
fn is_ip(s: &str) -> bool {
    s.len() <= 40 && s.parse::<IpAddr>().is_ok()
}

/// The version's `email_t` pattern, `^LOCAL+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+$`, where LOCAL is
/// `[a-zA-Z0-9_.+-]` in 1.1.0 and ``[a-zA-Z0-9!#$%&'*+-/=?^_`{|}~.]`` in 1.8.0 (whose `+-/`
/// is a range: `+ , - . /`).
fn is_email(s: &str, version: OcsfVersion) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = |c: u8| match version {
        OcsfVersion::V1_1_0 => c.is_ascii_alphanumeric() || b"_.+-".contains(&c),
        OcsfVersion::V1_8_0 => c.is_ascii_alphanumeric() || b"!#$%&'*+,-./=?^_`{|}~".contains(&c),
    };
    let label = |c: u8| c.is_ascii_alphanumeric() || c == b'-';
    let Some((first, rest)) = domain.split_once('.') else {
        return false;
    };
    !local.is_empty()
        && local.bytes().all(local_ok)
        && !first.is_empty()
        && first.bytes().all(label)
        && !rest.is_empty()
        && rest.bytes().all(|c| label(c) || c == b'.')
}

/// `auth_factor.factor_type_id` and `factor_type` of an `authenticationMethod`; a method with
/// no OCSF type is Other, with its own name.
fn factor(method: &str) -> (u8, &str) {
    let m = method.trim();
    let has = |k: &str| contains_ci(m, k);
    if has("passwordless") {
        (99, m)
    } else if starts_word(m, "password") {
        (11, "Password")
    } else if has("text message") || starts_word(m, "sms") {
        (1, "SMS")
    } else if has("voice call") || has("phone call") {
        (3, "Phone Call")
    } else if has("notification") {
        (5, "Push Notification")
    } else if has("email") {
        (8, "Email")
    } else if has("hardware") {
        (6, "Hardware Token")
    } else if has("verification code") || has("oath") || has("one-time") {
        (7, "OTP")
    } else if has("fido2") || has("security key") || has("passkey") {
        (10, "WebAuthn")
    } else if has("windows hello") {
        (4, "Biometric")
    } else {
        (99, m)
    }
}

fn none<T>(v: &Option<T>) -> bool {
    v.is_none()
}

/// One Authentication event.
#[derive(Serialize)]
struct Event<'s> {
    activity_id: u32,
    activity_name: &'static str,
    category_uid: u32,
    category_name: &'static str,
    class_uid: u32,
    class_name: &'static str,
    type_uid: u32,
    type_name: &'static str,
    severity_id: u8,
    severity: &'static str,
    status_id: u8,
    status: &'static str,
    status_code: &'static str,
    #[serde(skip_serializing_if = "none")]
    status_detail: Option<&'s str>,
    time: i64,
    message: &'static str,
    metadata: Metadata<'s>,
    user: User<'s>,
    #[serde(skip_serializing_if = "none")]
    actor: Option<Actor<'s>>,
    #[serde(skip_serializing_if = "none")]
    src_endpoint: Option<Endpoint<'s>>,
    service: Service<'s>,
    #[serde(skip_serializing_if = "none")]
    device: Option<Device<'s>>,
    #[serde(skip_serializing_if = "none")]
    http_request: Option<HttpRequest<'s>>,
    session: Session<'s>,
    is_mfa: bool,
    auth_protocol_id: u8,
    auth_protocol: &'static str,
    #[serde(skip_serializing_if = "none")]
    logon_type_id: Option<u8>,
    #[serde(skip_serializing_if = "none")]
    logon_type: Option<&'static str>,
    #[serde(skip_serializing_if = "none")]
    auth_factors: Option<Factors<'s>>,
    cloud: Cloud<'s>,
    unmapped: Unmapped<'s>,
}

#[derive(Serialize)]
struct Metadata<'s> {
    version: &'static str,
    profiles: &'static [&'static str],
    product: Product,
    /// 1.1.0: the logging system's id of the event, the sign-in's id.
    #[serde(skip_serializing_if = "none")]
    uid: Option<&'s str>,
    /// 1.8.0: the source's id of the event (its `uid` is the OCSF event's own).
    #[serde(skip_serializing_if = "none")]
    original_event_uid: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    correlation_uid: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    tenant_uid: Option<&'s str>,
    log_name: &'s str,
    log_provider: &'static str,
    processed_time: i64,
}

#[derive(Serialize)]
struct Product {
    name: &'static str,
    vendor_name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct User<'s> {
    #[serde(skip_serializing_if = "none")]
    uid: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    name: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    full_name: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    domain: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    email_addr: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    type_id: Option<u8>,
    #[serde(rename = "type", skip_serializing_if = "none")]
    kind: Option<&'s str>,
}

/// 1.8.0 only: 1.1.0's actor has no application attributes.
#[derive(Serialize)]
struct Actor<'s> {
    #[serde(skip_serializing_if = "none")]
    app_name: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    app_uid: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    idp: Option<Idp<'s>>,
}

#[derive(Serialize)]
struct Idp<'s> {
    name: &'s str,
}

#[derive(Serialize)]
struct Endpoint<'s> {
    ip: &'s str,
    #[serde(skip_serializing_if = "none")]
    location: Option<Place<'s>>,
}

#[derive(Serialize, Clone, Copy)]
struct Place<'s> {
    #[serde(skip_serializing_if = "none")]
    city: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    country: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    region: Option<&'s str>,
}

#[derive(Serialize)]
struct Service<'s> {
    #[serde(skip_serializing_if = "none")]
    name: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    uid: Option<&'s str>,
}

#[derive(Serialize)]
struct Device<'s> {
    type_id: u8,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "none")]
    uid: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    name: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    is_compliant: Option<bool>,
    #[serde(skip_serializing_if = "none")]
    is_managed: Option<bool>,
    #[serde(skip_serializing_if = "none")]
    is_trusted: Option<bool>,
    #[serde(skip_serializing_if = "none")]
    os: Option<Os<'s>>,
}

#[derive(Serialize)]
struct Os<'s> {
    name: &'s str,
    type_id: u16,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct HttpRequest<'s> {
    user_agent: &'s str,
}

#[derive(Serialize)]
struct Session<'s> {
    #[serde(skip_serializing_if = "none")]
    uid: Option<&'s str>,
    is_mfa: bool,
}

#[derive(Serialize)]
struct Cloud<'s> {
    provider: &'static str,
    #[serde(skip_serializing_if = "none")]
    account: Option<Account<'s>>,
}

#[derive(Serialize)]
struct Account<'s> {
    uid: &'s str,
    type_id: u8,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// `auth_factors` (1.8.0): one per distinct method of the succeeded steps, but "Previously
/// satisfied", which names no factor (an earlier sign-in's claim was reused).
struct Factors<'s>(&'s [Text<'s>]);

impl Factors<'_> {
    fn methods(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .map(Text::as_str)
            .filter(|m| !m.trim().eq_ignore_ascii_case("Previously satisfied"))
    }

    fn is_empty(&self) -> bool {
        self.methods().next().is_none()
    }
}

impl Serialize for Factors<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Factor<'s> {
            factor_type_id: u8,
            factor_type: &'s str,
        }
        ser.collect_seq(self.methods().map(|m| {
            let (factor_type_id, factor_type) = factor(m);
            Factor {
                factor_type_id,
                factor_type,
            }
        }))
    }
}

/// Everything the class has no attribute for: mfagap's verdict and the evidence behind it,
/// under the record's own (camelCase) names.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Unmapped<'s> {
    reason: &'static str,
    mfa_required: bool,
    #[serde(skip_serializing_if = "none")]
    authentication_requirement: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    mfa_result: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    mfa_auth_method: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    mfa_auth_detail: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    conditional_access_status: Option<&'s str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    policies: &'s [Text<'s>],
    #[serde(skip_serializing_if = "Policies::is_empty")]
    mfa_policies_not_applied: Policies<'s>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    mfa_requirement_providers: &'s [Text<'s>],
    #[serde(skip_serializing_if = "Steps::is_empty")]
    authentication_steps: Steps<'s>,
    /// 1.1.0, which has no `auth_factors`.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    authentication_methods: &'s [Text<'s>],
    #[serde(skip_serializing_if = "none")]
    token_issuer_type: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    authentication_protocol: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    original_transfer_method: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    incoming_token_type: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    client_app_used: Option<&'s str>,
    /// 1.1.0, which has no `actor.app_*`.
    #[serde(skip_serializing_if = "none")]
    app_id: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    app_display_name: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    risk_level_during_sign_in: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    risk_state: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    failure_reason: Option<&'s str>,
    /// An address `ip_t` does not accept.
    #[serde(skip_serializing_if = "none")]
    ip_address: Option<&'s str>,
    /// A location without an address to hang it on (`src_endpoint` needs one).
    #[serde(skip_serializing_if = "none")]
    location: Option<RawLocation<'s>>,
    #[serde(skip_serializing_if = "none")]
    device_detail: Option<DeviceRest<'s>>,
    source: SourceOut<'s>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RawLocation<'s> {
    #[serde(skip_serializing_if = "none")]
    city: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    state: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    country_or_region: Option<&'s str>,
}

/// The parts of `deviceDetail` that `device` does not carry.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeviceRest<'s> {
    #[serde(skip_serializing_if = "none")]
    operating_system: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    browser: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    is_compliant: Option<bool>,
    #[serde(skip_serializing_if = "none")]
    is_managed: Option<bool>,
    #[serde(skip_serializing_if = "none")]
    trust_type: Option<&'s str>,
}

impl DeviceRest<'_> {
    fn is_empty(&self) -> bool {
        self.operating_system.is_none()
            && self.browser.is_none()
            && self.is_compliant.is_none()
            && self.is_managed.is_none()
            && self.trust_type.is_none()
    }
}

/// `mfaPoliciesNotApplied`, without the nulls of the native record.
struct Policies<'s>(&'s [PolicyResult<'s>]);

impl Policies<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Policies<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out<'s> {
            #[serde(skip_serializing_if = "none")]
            display_name: Option<&'s str>,
            #[serde(skip_serializing_if = "none")]
            result: Option<&'s str>,
        }
        ser.collect_seq(self.0.iter().map(|p| Out {
            display_name: raw(&p.display_name),
            result: raw(&p.result),
        }))
    }
}

/// `authenticationSteps`, without the nulls of the native record.
struct Steps<'s>(&'s [AuthenticationStep<'s>]);

impl Steps<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Steps<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out<'s> {
            #[serde(skip_serializing_if = "none")]
            authentication_method: Option<&'s str>,
            #[serde(skip_serializing_if = "none")]
            authentication_step_requirement: Option<&'s str>,
            #[serde(skip_serializing_if = "none")]
            succeeded: Option<bool>,
            #[serde(skip_serializing_if = "none")]
            authentication_step_result_detail: Option<&'s str>,
        }
        ser.collect_seq(self.0.iter().map(|s| Out {
            authentication_method: raw(&s.authentication_method),
            authentication_step_requirement: raw(&s.authentication_step_requirement),
            succeeded: s.succeeded,
            authentication_step_result_detail: raw(&s.authentication_step_result_detail),
        }))
    }
}

/// `source`: where mfagap read the sign-in, without the nulls of the native record.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SourceOut<'s> {
    #[serde(skip_serializing_if = "str::is_empty")]
    kind: &'s str,
    #[serde(skip_serializing_if = "none")]
    event_hub: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    partition: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    offset: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    sequence_number: Option<i64>,
    #[serde(
        skip_serializing_if = "none",
        serialize_with = "timestamp::serialize_opt"
    )]
    enqueued_time: Option<Micros>,
    #[serde(skip_serializing_if = "none")]
    file: Option<&'s str>,
    #[serde(skip_serializing_if = "none")]
    line: Option<u64>,
}

impl<'s> SourceOut<'s> {
    fn of(s: &'s Source<'_>) -> SourceOut<'s> {
        SourceOut {
            kind: s.kind.as_str(),
            event_hub: raw(&s.event_hub),
            partition: raw(&s.partition),
            offset: raw(&s.offset),
            sequence_number: s.sequence_number,
            enqueued_time: s.enqueued_time,
            file: raw(&s.file),
            line: s.line,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Classifier, ClassifierConfig, Output, Processor};
    use serde_json::{Value, json};

    /// The OCSF events, 1.1.0 then 1.8.0, of the one sign-in `body` emits.
    fn encode_with(processor: &Processor, body: &str) -> [Value; 2] {
        let source = Source {
            kind: Text("eventhubs".into()),
            event_hub: Some(Text("signins".into())),
            partition: Some(Text("3".into())),
            offset: Some(Text("4242".into())),
            sequence_number: Some(17),
            enqueued_time: Some(1_765_551_391_000_001),
            ..Source::default()
        };
        let mut got = Vec::new();
        processor.process(
            body.as_bytes(),
            &source,
            1_765_551_400_000_000,
            &mut crate::Stats::default(),
            &mut |o| match o {
                Output::SignIn(s) => got.push(OcsfVersion::ALL.map(|v| {
                    let mut out = Vec::new();
                    Ocsf::new(v).write_payload(&s, &mut out);
                    serde_json::from_slice::<Value>(&out).expect("the payload is JSON")
                })),
                Output::DeadLetter(d) => panic!("dead letter: {d:?}"),
            },
        );
        assert_eq!(got.len(), 1, "one sign-in emitted");
        let events = got.remove(0);
        for (v, e) in OcsfVersion::ALL.iter().zip(&events) {
            invariants(*v, e);
        }
        events
    }

    fn encode(body: &str) -> [Value; 2] {
        encode_with(&Processor::default(), body)
    }

    fn nulls(v: &Value, path: &str, out: &mut Vec<String>) {
        match v {
            Value::Null => out.push(path.to_owned()),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, x)| nulls(x, &format!("{path}/{i}"), out)),
            Value::Object(o) => o
                .iter()
                .for_each(|(k, x)| nulls(x, &format!("{path}/{k}"), out)),
            _ => {}
        }
    }

    /// What every event of either version holds, whatever the record.
    fn invariants(version: OcsfVersion, e: &Value) {
        let mut null_paths = Vec::new();
        nulls(e, "", &mut null_paths);
        assert!(null_paths.is_empty(), "nulls at {null_paths:?} in {e}");
        let classification = json!({
            "activity_id": 1, "activity_name": "Logon",
            "category_uid": 3, "category_name": "Identity & Access Management",
            "class_uid": 3002, "class_name": "Authentication",
            "type_uid": 300201, "type_name": "Authentication: Logon",
            "severity_id": 1, "severity": "Informational",
            "status_id": 1, "status": "Success", "status_code": "0",
            "is_mfa": false,
        });
        for (k, want) in classification.as_object().unwrap() {
            assert_eq!(&e[k], want, "{k} in {e}");
        }
        assert_eq!(e["session"]["is_mfa"], false);
        assert!(e["time"].is_i64(), "time is an integer: {e}");
        let m = &e["metadata"];
        assert_eq!(m["version"], version.as_str());
        assert_eq!(
            m["product"],
            json!({"name": "mfagap", "vendor_name": "mfagap", "version": env!("CARGO_PKG_VERSION")})
        );
        let profiles = if e.get("device").is_some() {
            json!(["cloud", "host"])
        } else {
            json!(["cloud"])
        };
        assert_eq!(m["profiles"], profiles, "exactly the profiles used");
        assert_eq!(e["cloud"]["provider"], "Azure");
        let service = &e["service"];
        assert!(
            service["name"].is_string() || service["uid"].is_string(),
            "service is identified: {e}"
        );
        let user = &e["user"];
        assert!(
            user["name"].is_string() || user["uid"].is_string(),
            "user is identified: {e}"
        );
        assert!(e["unmapped"]["reason"].is_string());
        assert_ne!(
            e["logon_type_id"], 0,
            "0 is System in 1.1.0 and Unknown in 1.8.0"
        );
        match version {
            OcsfVersion::V1_1_0 => {
                for absent in ["auth_factors", "actor"] {
                    assert!(e.get(absent).is_none(), "{absent} is not 1.1.0's: {e}");
                }
                assert!(m.get("original_event_uid").is_none());
                assert!(m["uid"].is_string());
                assert_ne!(
                    e["auth_protocol_id"], 11,
                    "1.1.0 has no Basic Authentication id"
                );
                assert_ne!(e["user"]["type_id"], 4, "1.1.0 has no Service user type");
            }
            OcsfVersion::V1_8_0 => {
                assert!(
                    m.get("uid").is_none(),
                    "1.8.0's uid is the OCSF event's own"
                );
                assert!(m["original_event_uid"].is_string());
            }
        }
    }

    const LEGACY: &str = r#"{"records":[{"time":"2025-12-12T14:56:31.1234567Z","category":"SignInLogs","tenantId":"t1","resultType":"0",
      "properties":{"id":"legacy-1","createdDateTime":"2025-12-12T14:56:31.1234567Z","userPrincipalName":"alice@contoso.com",
        "userDisplayName":"Alice Example","userId":"u1","userType":"Member","appId":"app-1","appDisplayName":"Office 365 Exchange Online",
        "resourceId":"res-1","resourceDisplayName":"Office 365 Exchange Online","ipAddress":"203.0.113.7","clientAppUsed":"IMAP4",
        "userAgent":"BAV2ROPC","status":{"errorCode":0},"authenticationRequirement":"singleFactorAuthentication",
        "authenticationProtocol":"ropc","sessionId":"sess-1","isInteractive":false,"correlationId":"c1",
        "authenticationDetails":[{"authenticationMethod":"Password","succeeded":true,"authenticationStepRequirement":"Primary authentication"}],
        "location":{"city":"Seattle","state":"Washington","countryOrRegion":"US"}}}]}"#;

    #[test]
    fn a_legacy_client_is_basic_authentication_in_each_version_s_own_way() {
        let [old, new] = encode(LEGACY);
        assert_eq!(old["auth_protocol_id"], 99, "1.1.0 has no id for it");
        assert_eq!(old["auth_protocol"], "Basic Authentication");
        assert_eq!(new["auth_protocol_id"], 11);
        assert_eq!(new["auth_protocol"], "Basic Authentication");
        for e in [&old, &new] {
            assert_eq!(e["time"], 1_765_551_391_123_i64, "epoch milliseconds");
            assert_eq!(e["metadata"]["processed_time"], 1_765_551_400_000_i64);
            assert_eq!(e["unmapped"]["clientAppUsed"], "IMAP4");
            assert_eq!(e["unmapped"]["authenticationProtocol"], "ropc");
            assert_eq!(e["unmapped"]["reason"], "legacy_protocol");
            assert_eq!(e["unmapped"]["mfaRequired"], false);
            assert_eq!(
                e["unmapped"]["source"],
                json!({"kind": "eventhubs", "eventHub": "signins", "partition": "3", "offset": "4242",
                       "sequenceNumber": 17, "enqueuedTime": "2025-12-12T14:56:31.000001Z"})
            );
            assert_eq!(
                e["user"],
                json!({"uid": "u1", "name": "alice@contoso.com", "full_name": "Alice Example",
                       "domain": "contoso.com", "email_addr": "alice@contoso.com", "type_id": 1, "type": "User"})
            );
            assert_eq!(
                e["src_endpoint"],
                json!({"ip": "203.0.113.7", "location": {"city": "Seattle", "country": "US", "region": "Washington"}})
            );
            assert_eq!(
                e["service"],
                json!({"name": "Office 365 Exchange Online", "uid": "res-1"})
            );
            assert_eq!(e["session"], json!({"uid": "sess-1", "is_mfa": false}));
            assert_eq!(e["http_request"], json!({"user_agent": "BAV2ROPC"}));
            assert_eq!(e["logon_type_id"], 99);
            assert_eq!(e["logon_type"], "Non-interactive");
            assert_eq!(
                e["cloud"],
                json!({"provider": "Azure", "account": {"uid": "t1", "type_id": 6, "type": "Azure AD Account"}})
            );
            assert_eq!(e["metadata"]["correlation_uid"], "c1");
            assert_eq!(e["metadata"]["tenant_uid"], "t1");
            assert_eq!(e["metadata"]["log_name"], "SignInLogs");
            assert_eq!(
                e["unmapped"]["authenticationSteps"],
                json!([{"authenticationMethod": "Password", "authenticationStepRequirement": "Primary authentication", "succeeded": true}])
            );
        }
        assert_eq!(old["metadata"]["uid"], "legacy-1");
        assert_eq!(new["metadata"]["original_event_uid"], "legacy-1");
        assert_eq!(
            new["auth_factors"],
            json!([{"factor_type_id": 11, "factor_type": "Password"}])
        );
        assert_eq!(
            old["unmapped"]["authenticationMethods"],
            json!(["Password"])
        );
        assert!(new["unmapped"].get("authenticationMethods").is_none());
        assert_eq!(
            new["actor"],
            json!({"app_name": "Office 365 Exchange Online", "app_uid": "app-1"})
        );
        assert_eq!(old["unmapped"]["appId"], "app-1");
        assert_eq!(
            old["unmapped"]["appDisplayName"],
            "Office 365 Exchange Online"
        );
        assert!(new["unmapped"].get("appId").is_none());
    }

    const SKIPPED: &str = r#"{"time":"2025-12-12T14:56:31.1234567Z","category":"SignInLogs","tenantId":"t1","resultType":"0",
      "properties":{"id":"s1","createdDateTime":"12/12/2025 3:03:58 PM","userPrincipalName":"zoë@contoso.com",
        "userDisplayName":"Zo\u00eb \"Z\" Smith, Jr.","userId":"","status":{"errorCode":"0","additionalDetails":"MFA skipped due to location"},
        "clientAppUsed":"Browser","authenticationRequirement":"multiFactorAuthentication","mfaDetail":{},
        "authenticationRequirementPolicies":[{"requirementProvider":"multiConditionalAccess"}],
        "appliedConditionalAccessPolicies":[{"displayName":"Require MFA","result":"success"},
          {"displayName":"MFA off site","result":"notApplied","enforcedGrantControls":["Mfa"]}],
        "authenticationDetails":[{"authenticationMethod":"Password","succeeded":true,"authenticationStepResultDetail":"Correct password"},
          {"authenticationMethod":"","succeeded":true,"authenticationStepResultDetail":"MFA skipped due to location"}],
        "riskLevelDuringSignIn":"medium","riskState":"atRisk","authenticationProtocol":"none"}}"#;

    #[test]
    fn mfa_required_and_skipped_is_no_mfa_whatever_the_requirement_says() {
        let [old, new] = encode(SKIPPED);
        for e in [&old, &new] {
            assert_eq!(
                e["is_mfa"], false,
                "the evidence decides, not the requirement"
            );
            assert_eq!(
                e["unmapped"]["mfaRequired"], true,
                "as the record states it"
            );
            assert_eq!(e["unmapped"]["reason"], "mfa_skipped");
            assert_eq!(e["unmapped"]["mfaResult"], "MFA skipped due to location");
            assert_eq!(e["status_detail"], "MFA skipped due to location");
            assert_eq!(e["unmapped"]["policies"], json!(["Require MFA"]));
            assert_eq!(
                e["unmapped"]["mfaPoliciesNotApplied"],
                json!([{"displayName": "MFA off site", "result": "notApplied"}])
            );
            assert_eq!(
                e["unmapped"]["mfaRequirementProviders"],
                json!(["multiConditionalAccess"])
            );
            assert_eq!(e["unmapped"]["riskLevelDuringSignIn"], "medium");
            assert_eq!(e["unmapped"]["riskState"], "atRisk");
            assert_eq!(
                e["unmapped"]["authenticationSteps"][1],
                json!({"succeeded": true, "authenticationStepResultDetail": "MFA skipped due to location"}),
                "an empty method is left out, not null"
            );
            assert!(e["unmapped"].get("mfaAuthMethod").is_none());
            assert_eq!(e["auth_protocol_id"], 0);
            assert_eq!(e["auth_protocol"], "Unknown");
            assert_eq!(e["logon_type"], "Interactive", "from the category");
            // No userId: the UPN identifies the user; a non-ASCII one is no email_t.
            assert_eq!(e["user"]["name"], "zoë@contoso.com");
            assert_eq!(e["user"]["full_name"], "Zoë \"Z\" Smith, Jr.");
            assert!(e["user"].get("uid").is_none());
            assert!(e["user"].get("email_addr").is_none());
            assert!(e.get("src_endpoint").is_none());
            assert!(e.get("device").is_none());
            assert_eq!(
                e["service"],
                json!({"name": "Microsoft Entra ID"}),
                "neither resource nor app: the identity provider"
            );
        }
        assert_eq!(e_time("12/12/2025 3:03:58 PM"), old["time"]);
        assert_eq!(
            new["auth_factors"],
            json!([{"factor_type_id": 11, "factor_type": "Password"}])
        );
    }

    fn e_time(created: &str) -> Value {
        json!(crate::timestamp::parse(created).unwrap() / 1000)
    }

    #[test]
    fn an_adfs_sign_in_names_its_federation_server_and_protocol() {
        let body = r#"{"category":"ADFSSignInLogs","tenantId":"t1","properties":{"id":"adfs-1",
          "createdDateTime":"2025-12-12T10:00:00Z","userPrincipalName":"carol@contoso.com","userId":"u3",
          "status":{"errorCode":0},"tokenIssuerType":"ADFederationServices","authenticationProtocol":"wsFederation",
          "authenticationRequirement":"singleFactorAuthentication","appDisplayName":"urn:federation:MicrosoftOnline",
          "ipAddress":"2001:db8::1","authenticationDetails":[{"authenticationMethod":"Integrated Windows Authentication","succeeded":true}]}}"#;
        let [old, new] = encode(body);
        for e in [&old, &new] {
            assert_eq!(e["metadata"]["log_name"], "ADFSSignInLogs");
            assert_eq!(e["auth_protocol_id"], 99);
            assert_eq!(e["auth_protocol"], "WS-Federation");
            assert_eq!(e["unmapped"]["tokenIssuerType"], "ADFederationServices");
            assert_eq!(e["unmapped"]["authenticationProtocol"], "wsFederation");
            assert_eq!(e["logon_type"], "Interactive");
            assert_eq!(e["src_endpoint"], json!({"ip": "2001:db8::1"}));
            assert_eq!(
                e["service"],
                json!({"name": "urn:federation:MicrosoftOnline"}),
                "no resource: the app"
            );
            assert!(e["unmapped"].get("ipAddress").is_none());
        }
        assert_eq!(
            new["actor"],
            json!({"app_name": "urn:federation:MicrosoftOnline", "idp": {"name": "AD FS"}})
        );
        assert_eq!(
            new["auth_factors"],
            json!([{"factor_type_id": 99, "factor_type": "Integrated Windows Authentication"}])
        );
    }

    #[test]
    fn an_empty_requirement_a_guest_and_unicode_names() {
        let body = r#"{"category":"NonInteractiveUserSignInLogs","tenantId":"t1","properties":{"id":"g1",
          "createdDateTime":"2025-12-12T10:00:00Z","userPrincipalName":"bob_fabrikam.com#EXT#@contoso.onmicrosoft.com",
          "userDisplayName":"Bob 東京 Müller","userId":"u4","userType":"Guest","status":{"errorCode":0},
          "authenticationRequirement":"","resourceDisplayName":"Microsoft Graph","ipAddress":"198.51.100.4",
          "location":{"city":"東京","state":"東京都","countryOrRegion":"JP"},"authenticationDetails":[{"authenticationMethod":"Previously satisfied","succeeded":true}]}}"#;
        let [old, new] = encode(body);
        for e in [&old, &new] {
            assert_eq!(e["unmapped"]["reason"], "single_factor");
            assert_eq!(e["unmapped"]["mfaRequired"], false);
            assert_eq!(
                e["user"],
                json!({"uid": "u4", "name": "bob_fabrikam.com#EXT#@contoso.onmicrosoft.com",
                       "full_name": "Bob 東京 Müller", "domain": "contoso.onmicrosoft.com",
                       "type_id": 99, "type": "Guest"}),
                "a guest UPN is no mailbox: no email_addr, in either version"
            );
            assert_eq!(e["logon_type"], "Non-interactive");
            assert_eq!(
                e["src_endpoint"]["location"],
                json!({"city": "東京", "country": "JP", "region": "東京都"})
            );
            assert_eq!(e["service"], json!({"name": "Microsoft Graph"}));
            assert!(e.get("status_detail").is_none());
        }
        assert!(
            new.get("auth_factors").is_none(),
            "Previously satisfied names no factor"
        );
        assert!(new.get("actor").is_none(), "no app, no actor");
        assert_eq!(
            old["unmapped"]["authenticationMethods"],
            json!(["Previously satisfied"])
        );
    }

    #[test]
    fn nothing_known_but_the_id_still_makes_a_valid_event() {
        let body = r#"{"category":"SignInLogs","properties":{"id":"bare","createdDateTime":"2025-12-12T10:00:00Z","status":{"errorCode":0}}}"#;
        let [old, new] = encode(body);
        for e in [&old, &new] {
            assert_eq!(e["user"], json!({"name": "unknown"}));
            assert_eq!(e["service"], json!({"name": "Microsoft Entra ID"}));
            assert_eq!(e["cloud"], json!({"provider": "Azure"}));
            assert_eq!(e["session"], json!({"is_mfa": false}));
            for absent in [
                "src_endpoint",
                "device",
                "http_request",
                "auth_factors",
                "actor",
                "status_detail",
            ] {
                assert!(e.get(absent).is_none(), "{absent} in {e}");
            }
            assert_eq!(e["logon_type"], "Interactive");
            assert!(e["metadata"].get("tenant_uid").is_none());
            assert!(e["unmapped"].get("deviceDetail").is_none());
        }
    }

    #[test]
    fn a_workload_identity_signs_in_as_its_application() {
        let body = r#"{"category":"ServicePrincipalSignInLogs","tenantId":"t1","properties":{"id":"sp1",
          "createdDateTime":"2025-12-12T10:00:00Z","status":{"errorCode":0},"appId":"app-9","appDisplayName":"Backup Agent",
          "resourceDisplayName":"Microsoft Graph","resourceId":"res-9","ipAddress":"192.0.2.1"}}"#;
        let workload = Processor::new(Classifier::new(ClassifierConfig::from_options(true, None)));
        let [old, new] = encode_with(&workload, body);
        assert_eq!(
            old["user"],
            json!({"uid": "app-9", "name": "Backup Agent", "type_id": 99, "type": "Service"})
        );
        assert_eq!(
            new["user"],
            json!({"uid": "app-9", "name": "Backup Agent", "type_id": 4, "type": "Service"})
        );
        assert_eq!(
            new["service"],
            json!({"name": "Microsoft Graph", "uid": "res-9"})
        );
    }

    fn with_device(detail: &str) -> [Value; 2] {
        encode(&format!(
            r#"{{"category":"SignInLogs","tenantId":"t1","properties":{{"id":"d1","createdDateTime":"2025-12-12T10:00:00Z",
              "userId":"u1","status":{{"errorCode":0}},"ipAddress":"203.0.113.9","deviceDetail":{detail}}}}}"#
        ))
    }

    #[test]
    fn an_identified_device_is_the_host_profile_s_device() {
        let [old, new] = with_device(
            r#"{"deviceId":"dev-1","displayName":"ALICE-PC","operatingSystem":"Windows10","browser":"Edge 120.0.0",
               "isCompliant":true,"isManaged":"true","trustType":"Hybrid Azure AD joined"}"#,
        );
        for e in [&old, &new] {
            assert_eq!(e["metadata"]["profiles"], json!(["cloud", "host"]));
            assert_eq!(
                e["device"],
                json!({"type_id": 0, "type": "Unknown", "uid": "dev-1", "name": "ALICE-PC",
                       "is_compliant": true, "is_managed": true, "is_trusted": true,
                       "os": {"name": "Windows10", "type_id": 100, "type": "Windows"}})
            );
            assert_eq!(
                e["unmapped"]["deviceDetail"],
                json!({"browser": "Edge 120.0.0", "trustType": "Hybrid Azure AD joined"})
            );
        }
        // An operating system OCSF has no type for: no os (its type is required).
        let [old, _] = with_device(
            r#"{"deviceId":"dev-2","operatingSystem":"Plan9","trustType":"Azure AD registered"}"#,
        );
        assert!(old["device"].get("os").is_none());
        assert_eq!(old["device"]["is_trusted"], false);
        assert_eq!(old["unmapped"]["deviceDetail"]["operatingSystem"], "Plan9");
    }

    #[test]
    fn an_anonymous_device_and_a_bad_address_stay_in_unmapped() {
        let [old, new] = encode(
            r#"{"category":"SignInLogs","properties":{"id":"d2","createdDateTime":"2025-12-12T10:00:00Z","userId":"u1",
              "status":{"errorCode":0},"ipAddress":"203.0.113.999","location":{"city":"Lagos","countryOrRegion":"NG"},
              "deviceDetail":{"deviceId":"","displayName":"","operatingSystem":"Ios","isCompliant":false,"isManaged":null,"trustType":""}}}"#,
        );
        for e in [&old, &new] {
            assert!(e.get("device").is_none(), "a device needs an id or a name");
            assert_eq!(e["metadata"]["profiles"], json!(["cloud"]));
            assert_eq!(
                e["unmapped"]["deviceDetail"],
                json!({"operatingSystem": "Ios", "isCompliant": false})
            );
            assert!(
                e.get("src_endpoint").is_none(),
                "an endpoint needs an address"
            );
            assert_eq!(e["unmapped"]["ipAddress"], "203.0.113.999");
            assert_eq!(
                e["unmapped"]["location"],
                json!({"city": "Lagos", "countryOrRegion": "NG"})
            );
        }
    }

    #[test]
    fn strings_longer_than_1_1_0_allows_are_cut_there_only() {
        let agent = "é".repeat(70_000);
        let body = format!(
            r#"{{"category":"SignInLogs","properties":{{"id":"long","createdDateTime":"2025-12-12T10:00:00Z","userId":"u1",
              "status":{{"errorCode":0}},"userAgent":"{agent}"}}}}"#
        );
        let [old, new] = encode(&body);
        let len = |e: &Value| {
            e["http_request"]["user_agent"]
                .as_str()
                .unwrap()
                .chars()
                .count()
        };
        assert_eq!(len(&old), MAX_STRING_1_1_0);
        assert_eq!(len(&new), 70_000);
    }

    #[test]
    fn authentication_protocols() {
        for (p, want) in [
            (Some("oAuth2"), (6, "OAUTH 2.0")),
            (Some("ropc"), (6, "OAUTH 2.0")),
            (Some("deviceCode"), (6, "OAUTH 2.0")),
            (Some("saml20"), (5, "SAML")),
            (Some("wsFederation"), (99, "WS-Federation")),
            (Some("none"), (0, "Unknown")),
            (Some("unknownFutureValue"), (0, "Unknown")),
            (None, (0, "Unknown")),
        ] {
            assert_eq!(protocol(p), want, "{p:?}");
        }
        // A legacy client wins over the protocol it used.
        let body = LEGACY.replace(r#""ropc""#, r#""saml20""#);
        let [old, new] = encode(&body);
        assert_eq!(
            (&old["auth_protocol_id"], &new["auth_protocol_id"]),
            (&json!(99), &json!(11))
        );
    }

    #[test]
    fn email_addresses_follow_each_version_s_pattern() {
        use OcsfVersion::{V1_1_0 as OLD, V1_8_0 as NEW};
        // What the two email_t patterns say, as Python's `re` reads them.
        for (s, old, new) in [
            ("alice@contoso.com", true, true),
            ("a.b+c_d-e@x-y.co.uk", true, true),
            ("o'neil@contoso.com", false, true),
            ("a,b@contoso.com", false, true),
            ("bob_fabrikam.com#EXT#@contoso.onmicrosoft.com", false, true),
            ("zoë@contoso.com", false, false),
            ("a@b", false, false),
            ("a@.b", false, false),
            ("@b.c", false, false),
            ("a@b.", false, false),
            ("a@b..", true, true),
            ("a@b-.c", true, true),
            ("a@b@c.d", false, false),
            ("a b@c.d", false, false),
            ("", false, false),
        ] {
            assert_eq!(is_email(s, OLD), old, "1.1.0 {s}");
            assert_eq!(is_email(s, NEW), new, "1.8.0 {s}");
        }
    }

    #[test]
    fn operating_systems_trust_types_and_factors() {
        for (os, want) in [
            ("Windows10", Some(100)),
            ("Windows 11", Some(100)),
            ("WindowsPhone", Some(101)),
            ("Ios", Some(301)),
            ("iPadOS", Some(302)),
            ("MacOs", Some(300)),
            ("Mac OS X", Some(300)),
            ("Android", Some(201)),
            ("Linux", Some(200)),
            ("Iosphere", None),
            ("ChromeOS", None),
            ("", None),
        ] {
            assert_eq!(os_type(os).map(|(id, _)| id), want, "{os}");
        }
        for (t, want) in [
            ("Azure AD joined", Some(true)),
            ("Microsoft Entra hybrid joined", Some(true)),
            ("ServerAd", Some(true)),
            ("Azure AD registered", Some(false)),
            ("Workplace", Some(false)),
            ("something else", None),
        ] {
            assert_eq!(trust(t), want, "{t}");
        }
        for (m, want) in [
            ("Password", 11),
            ("Text message", 1),
            ("Phone call (authentication phone)", 3),
            ("Mobile app notification", 5),
            ("OATH verification code", 7),
            ("OATH hardware token", 6),
            ("Email OTP", 8),
            ("FIDO2 security key", 10),
            ("Passkey (Microsoft Authenticator)", 10),
            ("Windows Hello for Business", 4),
            ("Passwordless phone sign-in", 99),
            ("Temporary Access Pass", 99),
        ] {
            assert_eq!(factor(m).0, want, "{m}");
        }
        assert_eq!(factor("Temporary Access Pass").1, "Temporary Access Pass");
    }

    #[test]
    fn addresses_are_what_ip_t_accepts() {
        for (ip, ok) in [
            ("203.0.113.7", true),
            ("2001:db8::1", true),
            ("::", true),
            ("::ffff:192.0.2.1", true),
            ("1:2::3:4:1.2.3.4", true),
            ("1:2:3:4:5:6:7:1.2.3.4", false),
            ("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", false),
            ("203.0.113.999", false),
            ("01.2.3.4", false),
            (" 203.0.113.7", false),
            ("fe80::1%eth0", false),
            ("", false),
        ] {
            assert_eq!(is_ip(ip), ok, "{ip}");
        }
    }

    #[test]
    fn headers_name_the_format_and_the_version() {
        let body = r#"{"category":"SignInLogs","tenantId":"t1","properties":{"id":"h1","createdDateTime":"2025-12-12T10:00:00Z","userId":"u1","status":{"errorCode":0}}}"#;
        let mut headers = Vec::new();
        Processor::default().process(
            body.as_bytes(),
            &Source::default(),
            0,
            &mut crate::Stats::default(),
            &mut |o| {
                if let Output::SignIn(s) = o {
                    headers = Ocsf::new(OcsfVersion::V1_1_0).encode(&s).headers;
                }
            },
        );
        assert!(headers.contains(&("format", "ocsf".to_owned())));
        assert!(headers.contains(&("ocsfVersion", "1.1.0".to_owned())));
        assert!(headers.contains(&("tenantId", "t1".to_owned())));
    }
}
