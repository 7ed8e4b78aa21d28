//! The sign-in record as Azure Monitor writes it, borrowed from the message bytes.
//!
//! Every input shape ends here: a Graph `signIn` is `Properties` at the top level, and a Log
//! Analytics row is converted field by field (`shape`), so the rule reads one type.
//!
//! Only the fields the rule and the output record need are declared; serde skips the rest
//! without building them, and every string borrows from the input unless it had escapes. Every
//! field is optional here: which absences are errors is decided by `decode` and `classify`,
//! where the reason can be named.
//!
//! Design note: every type here is read from a JSON object and from nothing else. serde's
//! derived `Deserialize` for a struct also takes a JSON array, field by field in declaration
//! order, so `"status":[0]` would read as `errorCode: 0`, a success. The derives are therefore
//! `remote = "Self"` (an inherent `deserialize`), and [`objects_only!`] gives each type the
//! trait impl, which asks the deserializer for a map: a list where the schema says object is a
//! decode error naming the field, so the record is a dead letter (`invalid_record`). Every
//! shape reads these types (a Graph `signIn` is [`Properties`], a row's nested columns are
//! these types inside `Embedded`), so this one place covers them all.

use crate::lenient::{Code, Flag, Text};
use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// Implements `Deserialize` for each borrowed input type through its derived inherent
/// `deserialize` (`#[serde(remote = "Self")]`), from a JSON object only. `$what` names the
/// field in the error: "invalid type: sequence, expected `status` as an object".
macro_rules! objects_only {
    ($($ty:ident => $what:literal),* $(,)?) => {$(
        impl<'de: 'a, 'a> Deserialize<'de> for $ty<'a> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V<'a>(PhantomData<$ty<'a>>);
                impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
                    type Value = $ty<'a>;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str(concat!($what, " as an object"))
                    }
                    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<$ty<'a>, A::Error> {
                        $ty::deserialize(MapAccessDeserializer::new(map))
                    }
                }
                d.deserialize_map(V(PhantomData))
            }
        }
    )*};
}

objects_only! {
    RawRecord => "a record",
    Properties => "`properties`",
    Status => "`status`",
    DeviceDetail => "`deviceDetail`",
    Location => "`location`",
    MfaDetail => "`mfaDetail`",
    Policy => "each of `appliedConditionalAccessPolicies`",
    RequirementPolicy => "each of `authenticationRequirementPolicies`",
    Step => "each of `authenticationDetails`",
}

/// One diagnostic record. `records` is only set when the message body was the envelope
/// itself, so one pass over a `{…}` body decodes either an envelope or a single record.
#[derive(Debug, Default, Deserialize)]
#[serde(remote = "Self", default, rename_all = "camelCase")]
pub struct RawRecord<'a> {
    #[serde(borrow)]
    pub records: Option<Vec<RawRecord<'a>>>,
    #[serde(borrow)]
    pub time: Option<Text<'a>>,
    #[serde(borrow)]
    pub category: Option<Text<'a>>,
    #[serde(borrow)]
    pub tenant_id: Option<Text<'a>>,
    pub result_type: Option<Code>,
    #[serde(borrow)]
    pub caller_ip_address: Option<Text<'a>>,
    #[serde(borrow)]
    pub correlation_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub properties: Option<Properties<'a>>,
}

/// `properties` of a sign-in record.
#[derive(Debug, Default, Deserialize)]
#[serde(remote = "Self", default, rename_all = "camelCase")]
pub struct Properties<'a> {
    #[serde(borrow)]
    pub id: Option<Text<'a>>,
    #[serde(borrow)]
    pub created_date_time: Option<Text<'a>>,
    #[serde(borrow)]
    pub user_display_name: Option<Text<'a>>,
    #[serde(borrow)]
    pub user_principal_name: Option<Text<'a>>,
    #[serde(borrow)]
    pub user_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub user_type: Option<Text<'a>>,
    #[serde(borrow)]
    pub app_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub app_display_name: Option<Text<'a>>,
    #[serde(borrow)]
    pub ip_address: Option<Text<'a>>,
    #[serde(borrow)]
    pub client_app_used: Option<Text<'a>>,
    #[serde(borrow)]
    pub user_agent: Option<Text<'a>>,
    #[serde(borrow)]
    pub correlation_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub conditional_access_status: Option<Text<'a>>,
    pub is_interactive: Option<Flag>,
    #[serde(borrow)]
    pub risk_level_during_sign_in: Option<Text<'a>>,
    #[serde(borrow)]
    pub risk_state: Option<Text<'a>>,
    #[serde(borrow)]
    pub resource_display_name: Option<Text<'a>>,
    #[serde(borrow)]
    pub resource_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub resource_tenant_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub authentication_requirement: Option<Text<'a>>,
    #[serde(borrow)]
    pub status: Option<Status<'a>>,
    #[serde(borrow)]
    pub device_detail: Option<DeviceDetail<'a>>,
    #[serde(borrow)]
    pub location: Option<Location<'a>>,
    #[serde(borrow)]
    pub mfa_detail: Option<MfaDetail<'a>>,
    #[serde(borrow)]
    pub applied_conditional_access_policies: Option<Vec<Policy<'a>>>,
    #[serde(borrow)]
    pub authentication_details: Option<Vec<Step<'a>>>,
    #[serde(borrow)]
    pub authentication_requirement_policies: Option<Vec<RequirementPolicy<'a>>>,
    #[serde(borrow)]
    pub session_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub token_issuer_type: Option<Text<'a>>,
    #[serde(borrow)]
    pub authentication_protocol: Option<Text<'a>>,
    #[serde(borrow)]
    pub original_transfer_method: Option<Text<'a>>,
    #[serde(borrow)]
    pub incoming_token_type: Option<Text<'a>>,
    /// A Graph `signIn` (beta) names its category here (`interactiveUser`, …); a diagnostic
    /// record never has it. Read only to choose a Graph sign-in's category.
    #[serde(borrow)]
    pub sign_in_event_types: Option<Vec<Option<Text<'a>>>>,
}

/// `properties.status`: the error code decides success; the texts explain it.
#[derive(Debug, Default, Deserialize)]
#[serde(remote = "Self", default, rename_all = "camelCase")]
pub struct Status<'a> {
    pub error_code: Option<Code>,
    #[serde(borrow)]
    pub failure_reason: Option<Text<'a>>,
    #[serde(borrow)]
    pub additional_details: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(remote = "Self", default, rename_all = "camelCase")]
pub struct DeviceDetail<'a> {
    #[serde(borrow)]
    pub operating_system: Option<Text<'a>>,
    #[serde(borrow)]
    pub browser: Option<Text<'a>>,
    pub is_compliant: Option<Flag>,
    pub is_managed: Option<Flag>,
    #[serde(borrow)]
    pub device_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub display_name: Option<Text<'a>>,
    #[serde(borrow)]
    pub trust_type: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(remote = "Self", default, rename_all = "camelCase")]
pub struct Location<'a> {
    #[serde(borrow)]
    pub city: Option<Text<'a>>,
    #[serde(borrow)]
    pub state: Option<Text<'a>>,
    #[serde(borrow)]
    pub country_or_region: Option<Text<'a>>,
}

/// `properties.mfaDetail`, filled only by older records (now usually `{}`).
#[derive(Debug, Default, Deserialize)]
#[serde(remote = "Self", default, rename_all = "camelCase")]
pub struct MfaDetail<'a> {
    #[serde(borrow)]
    pub auth_method: Option<Text<'a>>,
    #[serde(borrow)]
    pub auth_detail: Option<Text<'a>>,
}

/// One entry of `appliedConditionalAccessPolicies`.
#[derive(Debug, Default, Deserialize)]
#[serde(remote = "Self", default, rename_all = "camelCase")]
pub struct Policy<'a> {
    #[serde(borrow)]
    pub display_name: Option<Text<'a>>,
    #[serde(borrow)]
    pub result: Option<Text<'a>>,
    /// `Mfa`, `Block`, `RequireCompliantDevice`, …; a `null` item is skipped, not an error.
    pub enforced_grant_controls: Option<GrantControls>,
}

/// `enforcedGrantControls` of a policy, read for the one thing the record says of it: whether
/// a control asks for MFA. A list of texts as before (a `null` item skipped, anything else an
/// error), but no list is built: a record has dozens of policies.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GrantControls {
    /// Some control is `Mfa` or an authentication strength ([`asks_for_mfa`]).
    pub asks_for_mfa: bool,
}

impl<'de> Deserialize<'de> for GrantControls {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = GrantControls;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of grant controls")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<GrantControls, A::Error> {
                let mut asks = false;
                while let Some(control) = seq.next_element::<Option<Text<'de>>>()? {
                    asks |= control.is_some_and(|c| asks_for_mfa(c.as_str()));
                }
                Ok(GrantControls { asks_for_mfa: asks })
            }
        }
        d.deserialize_seq(V)
    }
}

/// Does a grant control ask for MFA? `Mfa` itself, or an authentication strength (every
/// built-in strength but "single factor" is multifactor, and a strength that was not met
/// blocks rather than lets a sign-in succeed).
pub(crate) fn asks_for_mfa(control: &str) -> bool {
    let c = control.trim();
    c.eq_ignore_ascii_case("Mfa")
        || c.eq_ignore_ascii_case("RequireMultifactorAuthentication")
        || c.eq_ignore_ascii_case("RequireAuthenticationStrength")
        || c.eq_ignore_ascii_case("AuthenticationStrength")
}

/// One entry of `authenticationRequirementPolicies`: who asked for the requirement.
#[derive(Debug, Default, Deserialize)]
#[serde(remote = "Self", default, rename_all = "camelCase")]
pub struct RequirementPolicy<'a> {
    /// `user`, `request`, `multiConditionalAccess`, `riskBasedPolicy`, `tenantSessionRiskPolicy`, ….
    #[serde(borrow)]
    pub requirement_provider: Option<Text<'a>>,
}

/// One entry of `authenticationDetails`: the evidence the rule weighs.
#[derive(Debug, Default, Deserialize)]
#[serde(remote = "Self", default, rename_all = "camelCase")]
pub struct Step<'a> {
    #[serde(borrow)]
    pub authentication_method: Option<Text<'a>>,
    pub succeeded: Option<Flag>,
    #[serde(borrow)]
    pub authentication_step_result_detail: Option<Text<'a>>,
    #[serde(borrow)]
    pub authentication_step_requirement: Option<Text<'a>>,
}

impl Step<'_> {
    /// `succeeded: true` in any spelling; absent or `null` is not a success.
    pub fn succeeded(&self) -> bool {
        matches!(self.succeeded, Some(Flag(Some(true))))
    }

    pub fn detail(&self) -> &str {
        self.authentication_step_result_detail
            .as_ref()
            .map_or("", Text::as_str)
    }
}

/// The text of an optional field, `""` when absent: the rule treats both alike.
pub(crate) fn text<'s>(t: &'s Option<Text<'_>>) -> &'s str {
    t.as_ref().map_or("", Text::as_str)
}
