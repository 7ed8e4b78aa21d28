//! The output record: one successful sign-in without MFA, as Kafka, Parquet and `filter` carry it.
//!
//! Field names are Azure's own (camelCase), so an analyst who knows the sign-in log reads it
//! without a mapping; the seed report's columns are all here under their seed names. Every field
//! is always present (`null` when Azure did not send it), so the JSON, the JSON Schema and the
//! Arrow schema have one shape. Text borrows from the input message: building a record copies
//! nothing but escaped strings.

use crate::category::Category;
use crate::classify::Reason;
use crate::decode::RecordError;
use crate::input::{self, Properties, RawRecord};
use crate::lenient::{Flag, Text};
use crate::timestamp::{self, Micros};
use serde::{Deserialize, Serialize};

/// Version of the output record's shape, sent as the Kafka header `schemaVersion`.
pub const SCHEMA_VERSION: &str = "2";

/// Every record version this build reads: version 2 added the evidence fields (from
/// `sessionId` to `authenticationSteps`, and three of `deviceDetail`), which read as absent
/// from a version 1 record.
pub const READABLE_SCHEMA_VERSIONS: [&str; 2] = ["1", "2"];

/// One emitted sign-in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignIn<'a> {
    /// `properties.id`: the sign-in's unique id, half of the duplicate key.
    #[serde(borrow)]
    pub id: Text<'a>,
    /// `category`, as Azure spells it (`SignInLogs`, `ADFSSignInLogs`, …).
    #[serde(borrow)]
    pub category: Text<'a>,
    /// Top-level `tenantId`, else `properties.resourceTenantId`.
    #[serde(borrow)]
    pub tenant_id: Option<Text<'a>>,
    /// `properties.userId`: the user's object id, and the Kafka key when present.
    #[serde(borrow)]
    pub user_id: Option<Text<'a>>,
    /// `properties.userPrincipalName`: the sign-in name, what an analyst searches by.
    #[serde(borrow)]
    pub user_principal_name: Option<Text<'a>>,
    /// `properties.userDisplayName`.
    #[serde(borrow)]
    pub user_display_name: Option<Text<'a>>,
    /// `properties.userType`: `Member` or `Guest`.
    #[serde(borrow)]
    pub user_type: Option<Text<'a>>,
    /// `properties.createdDateTime`, else the top-level `time`: when the user signed in. It
    /// chooses the row's `date=`/`hour=` directory.
    #[serde(
        serialize_with = "timestamp::serialize",
        deserialize_with = "timestamp::deserialize"
    )]
    pub created_date_time: Micros,
    /// `properties.appId`: the application signed in to.
    #[serde(borrow)]
    pub app_id: Option<Text<'a>>,
    /// `properties.appDisplayName`.
    #[serde(borrow)]
    pub app_display_name: Option<Text<'a>>,
    /// `properties.resourceId`: the resource the token is for.
    #[serde(borrow)]
    pub resource_id: Option<Text<'a>>,
    /// `properties.resourceDisplayName`.
    #[serde(borrow)]
    pub resource_display_name: Option<Text<'a>>,
    /// `properties.ipAddress`, else the top-level `callerIpAddress`.
    #[serde(borrow)]
    pub ip_address: Option<Text<'a>>,
    /// `properties.clientAppUsed`: what decides `legacy_protocol`.
    #[serde(borrow)]
    pub client_app_used: Option<Text<'a>>,
    /// `properties.isInteractive`; when absent, true for `SignInLogs` and `ADFSSignInLogs`, false
    /// for `NonInteractiveUserSignInLogs`.
    pub is_interactive: Option<bool>,
    /// Always true on an emitted record; kept because the seed report has the column.
    pub login_succeeded: bool,
    /// `properties.status.failureReason`: a seed-report column, rarely set on a success.
    #[serde(borrow)]
    pub failure_reason: Option<Text<'a>>,
    /// What the record states (`authenticationRequirement`): can be true on `mfa_skipped`.
    pub mfa_required: bool,
    /// `properties.mfaDetail.authMethod`: the second factor Azure names, if any.
    #[serde(borrow)]
    pub mfa_auth_method: Option<Text<'a>>,
    /// `properties.mfaDetail.authDetail`: the factor's detail, such as a masked phone number.
    #[serde(borrow)]
    pub mfa_auth_detail: Option<Text<'a>>,
    /// The `authenticationStepResultDetail` of the step that says MFA was skipped, else
    /// `properties.status.additionalDetails`.
    #[serde(borrow)]
    pub mfa_result: Option<Text<'a>>,
    /// Why no MFA; decided by the rule, not an Azure field.
    pub reason: Reason,
    /// Display names of the conditional-access policies that were applied (result success or
    /// failure), in the record's order.
    #[serde(borrow)]
    pub policies: Vec<Text<'a>>,
    /// `properties.conditionalAccessStatus`: `success`, `failure` or `notApplied`.
    #[serde(borrow)]
    pub conditional_access_status: Option<Text<'a>>,
    /// Distinct methods of the succeeded authentication steps, in order.
    #[serde(borrow)]
    pub authentication_methods: Vec<Text<'a>>,
    /// `properties.location`: where the sign-in came from, by IP address.
    #[serde(borrow)]
    pub location: Option<Location<'a>>,
    /// `properties.deviceDetail`: the device as Entra ID saw it.
    #[serde(borrow)]
    pub device_detail: Option<DeviceDetail<'a>>,
    /// `properties.riskLevelDuringSignIn`: Identity Protection's risk, when licensed.
    #[serde(borrow)]
    pub risk_level_during_sign_in: Option<Text<'a>>,
    /// `properties.riskState`: Identity Protection's verdict (`atRisk`, `remediated`, …).
    #[serde(borrow)]
    pub risk_state: Option<Text<'a>>,
    /// `properties.correlationId`, else the top-level `correlationId`: shared by the requests of
    /// one sign-in flow.
    #[serde(borrow)]
    pub correlation_id: Option<Text<'a>>,
    /// `properties.userAgent`.
    #[serde(borrow)]
    pub user_agent: Option<Text<'a>>,
    /// `properties.authenticationRequirement` as Azure wrote it (`singleFactorAuthentication`,
    /// `multiFactorAuthentication`); null when absent or empty, where `mfaRequired` says false.
    #[serde(borrow, default)]
    pub authentication_requirement: Option<Text<'a>>,
    /// `properties.sessionId`: the sign-in session, shared by the sign-ins its tokens renew.
    #[serde(borrow, default)]
    pub session_id: Option<Text<'a>>,
    /// `properties.tokenIssuerType`: `AzureAD`, or `ADFederationServices` when a federation
    /// server issued the token (its MFA is not Entra's to see).
    #[serde(borrow, default)]
    pub token_issuer_type: Option<Text<'a>>,
    /// `properties.authenticationProtocol`: `oAuth2`, `ropc`, `deviceCode`, `saml20`,
    /// `wsFederation`, `none`.
    #[serde(borrow, default)]
    pub authentication_protocol: Option<Text<'a>>,
    /// `properties.originalTransferMethod`: `deviceCodeFlow` or `authenticationTransfer` when
    /// the sign-in was handed over from another device (a phishing path), else `none`.
    #[serde(borrow, default)]
    pub original_transfer_method: Option<Text<'a>>,
    /// `properties.incomingTokenType`: what the client presented (`primaryRefreshToken`,
    /// `refreshToken`, `saml11`, …, `none`).
    #[serde(borrow, default)]
    pub incoming_token_type: Option<Text<'a>>,
    /// `requirementProvider` of each `authenticationRequirementPolicies` entry: who asked for
    /// the requirement (`user`, `request`, `multiConditionalAccess`, `riskBasedPolicy`, …).
    #[serde(borrow, default)]
    pub mfa_requirement_providers: Vec<Text<'a>>,
    /// Conditional-access policies whose grant controls ask for MFA (`Mfa` or an
    /// authentication strength) and that did not apply: `notApplied` (conditions not met or
    /// the user excluded), `reportOnly…`, `notEnabled`. The policies an analyst expected to
    /// protect this sign-in.
    #[serde(borrow, default)]
    pub mfa_policies_not_applied: Vec<PolicyResult<'a>>,
    /// Every step of `authenticationDetails`, in order, succeeded or not: what was seen.
    #[serde(borrow, default)]
    pub authentication_steps: Vec<AuthenticationStep<'a>>,
    /// Where mfagap read the record, not an Azure field.
    #[serde(borrow)]
    pub source: Source<'a>,
    /// When mfagap processed the record, not an Azure field: its distance from
    /// `createdDateTime` is the log's delay.
    #[serde(
        serialize_with = "timestamp::serialize",
        deserialize_with = "timestamp::deserialize"
    )]
    pub ingested_at: Micros,
}

/// `properties.location`: where the sign-in came from, as Entra ID placed its IP address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location<'a> {
    /// `location.city`.
    #[serde(borrow)]
    pub city: Option<Text<'a>>,
    /// `location.state`.
    #[serde(borrow)]
    pub state: Option<Text<'a>>,
    /// `location.countryOrRegion`: a two-letter code such as `FR`.
    #[serde(borrow)]
    pub country_or_region: Option<Text<'a>>,
}

/// `properties.deviceDetail`: the device as Entra ID saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceDetail<'a> {
    /// `deviceDetail.operatingSystem`.
    #[serde(borrow)]
    pub operating_system: Option<Text<'a>>,
    /// `deviceDetail.browser`.
    #[serde(borrow)]
    pub browser: Option<Text<'a>>,
    /// `deviceDetail.isCompliant`: the device is marked compliant by its MDM.
    pub is_compliant: Option<bool>,
    /// `deviceDetail.isManaged`: the device is enrolled in an MDM.
    pub is_managed: Option<bool>,
    /// `deviceDetail.deviceId`: the device's object id, when Entra knows the device.
    #[serde(borrow, default)]
    pub device_id: Option<Text<'a>>,
    /// `deviceDetail.displayName`.
    #[serde(borrow, default)]
    pub display_name: Option<Text<'a>>,
    /// `deviceDetail.trustType`: `Azure AD joined`, `Hybrid Azure AD joined`, `Azure AD
    /// registered`.
    #[serde(borrow, default)]
    pub trust_type: Option<Text<'a>>,
}

/// A conditional-access policy and its result for one sign-in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyResult<'a> {
    /// `displayName`.
    #[serde(borrow)]
    pub display_name: Option<Text<'a>>,
    /// `result`: `notApplied`, `reportOnlySuccess`, `notEnabled`, ….
    #[serde(borrow)]
    pub result: Option<Text<'a>>,
}

/// One entry of `authenticationDetails`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationStep<'a> {
    /// `authenticationMethod`: `Password`, `Previously satisfied`, `Text message`, ….
    #[serde(borrow)]
    pub authentication_method: Option<Text<'a>>,
    /// `authenticationStepRequirement`: `Primary authentication`, `Multi-factor
    /// authentication`, ….
    #[serde(borrow)]
    pub authentication_step_requirement: Option<Text<'a>>,
    /// `succeeded`, read leniently; null when the record did not say.
    pub succeeded: Option<bool>,
    /// `authenticationStepResultDetail`.
    #[serde(borrow)]
    pub authentication_step_result_detail: Option<Text<'a>>,
}

/// Where a record came from, so any row can be traced back to the event that carried it.
///
/// `kind` says which coordinates apply: `eventhubs` (event hub, partition, offset, sequence
/// number, enqueued time), `kafka` (topic in `eventHub`, partition, offset, timestamp in
/// `enqueuedTime`) or `file` (path and line).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source<'a> {
    /// `eventhubs`, `kafka`, `file`, `capture` (an Event Hubs Capture file), `graph`
    /// (Microsoft Graph: `eventHub` the API version, `partition` the event type,
    /// `sequenceNumber` the page's number, `file` its URL) or `generator`: which fields below
    /// are set.
    #[serde(borrow)]
    pub kind: Text<'a>,
    /// The event hub's name; the topic for `kafka`.
    #[serde(borrow)]
    pub event_hub: Option<Text<'a>>,
    /// The partition id of the event hub or topic.
    #[serde(borrow)]
    pub partition: Option<Text<'a>>,
    /// The event's offset in its partition (Event Hubs' text, or the Kafka offset).
    #[serde(borrow)]
    pub offset: Option<Text<'a>>,
    /// The event's sequence number (Event Hubs), or the generator's message number.
    pub sequence_number: Option<i64>,
    /// When Event Hubs enqueued the event, or the Kafka message's timestamp.
    #[serde(
        serialize_with = "timestamp::serialize_opt",
        deserialize_with = "timestamp::deserialize_opt"
    )]
    pub enqueued_time: Option<Micros>,
    /// The input file's path (`-` for standard input), or the Capture file's path or URL.
    #[serde(borrow)]
    pub file: Option<Text<'a>>,
    /// The line of the message body in `file`, from 1 (in a Capture file, the event's number).
    pub line: Option<u64>,
}

impl<'a> SignIn<'a> {
    /// Builds the output record of a sign-in the classifier chose to emit.
    pub fn build(
        r: &RawRecord<'a>,
        category: Category,
        reason: Reason,
        mfa_result: Option<Text<'a>>,
        source: &Source<'a>,
        ingested_at: Micros,
    ) -> Result<SignIn<'a>, RecordError> {
        let p = r
            .properties
            .as_ref()
            .ok_or(RecordError::NoProperties(category))?;
        let id = p.id.clone().ok_or(RecordError::NoId(category))?;
        let created = p
            .created_date_time
            .as_ref()
            .or(r.time.as_ref())
            .ok_or(RecordError::NoTime(category))?;
        let created_date_time = timestamp::parse(created.as_str())
            .map_err(|error| RecordError::BadTime { category, error })?;
        let status = p.status.as_ref();
        let mfa = p.mfa_detail.as_ref();
        Ok(SignIn {
            id,
            category: Text(category.as_str().into()),
            tenant_id: non_empty(r.tenant_id.clone().or_else(|| p.resource_tenant_id.clone())),
            user_id: non_empty(p.user_id.clone()),
            user_principal_name: non_empty(p.user_principal_name.clone()),
            user_display_name: non_empty(p.user_display_name.clone()),
            user_type: non_empty(p.user_type.clone()),
            created_date_time,
            app_id: non_empty(p.app_id.clone()),
            app_display_name: non_empty(p.app_display_name.clone()),
            resource_id: non_empty(p.resource_id.clone()),
            resource_display_name: non_empty(p.resource_display_name.clone()),
            ip_address: non_empty(p.ip_address.clone().or_else(|| r.caller_ip_address.clone())),
            client_app_used: non_empty(p.client_app_used.clone()),
            is_interactive: interactive(p, category),
            login_succeeded: true,
            failure_reason: non_empty(status.and_then(|s| s.failure_reason.clone())),
            mfa_required: input::text(&p.authentication_requirement)
                .trim()
                .eq_ignore_ascii_case("multiFactorAuthentication"),
            mfa_auth_method: non_empty(mfa.and_then(|m| m.auth_method.clone())),
            mfa_auth_detail: non_empty(mfa.and_then(|m| m.auth_detail.clone())),
            mfa_result,
            reason,
            policies: applied_policies(p),
            conditional_access_status: non_empty(p.conditional_access_status.clone()),
            authentication_methods: methods(p),
            location: p.location.as_ref().map(|l| Location {
                city: non_empty(l.city.clone()),
                state: non_empty(l.state.clone()),
                country_or_region: non_empty(l.country_or_region.clone()),
            }),
            device_detail: p.device_detail.as_ref().map(|d| DeviceDetail {
                operating_system: non_empty(d.operating_system.clone()),
                browser: non_empty(d.browser.clone()),
                is_compliant: flag(d.is_compliant),
                is_managed: flag(d.is_managed),
                device_id: non_empty(d.device_id.clone()),
                display_name: non_empty(d.display_name.clone()),
                trust_type: non_empty(d.trust_type.clone()),
            }),
            risk_level_during_sign_in: non_empty(p.risk_level_during_sign_in.clone()),
            risk_state: non_empty(p.risk_state.clone()),
            correlation_id: non_empty(
                p.correlation_id
                    .clone()
                    .or_else(|| r.correlation_id.clone()),
            ),
            user_agent: non_empty(p.user_agent.clone()),
            authentication_requirement: non_empty(p.authentication_requirement.clone()),
            session_id: non_empty(p.session_id.clone()),
            token_issuer_type: non_empty(p.token_issuer_type.clone()),
            authentication_protocol: non_empty(p.authentication_protocol.clone()),
            original_transfer_method: non_empty(p.original_transfer_method.clone()),
            incoming_token_type: non_empty(p.incoming_token_type.clone()),
            mfa_requirement_providers: requirement_providers(p),
            mfa_policies_not_applied: mfa_policies_not_applied(p),
            authentication_steps: steps(p),
            source: source.clone(),
            ingested_at,
        })
    }

    /// The Kafka key: one user's sign-ins land in one partition, in order.
    pub fn key(&self) -> &str {
        self.user_id
            .as_ref()
            .or(self.user_principal_name.as_ref())
            .unwrap_or(&self.id)
            .as_str()
    }

    /// The identity duplicates are recognised by: (category, id).
    pub fn dedup_key(&self) -> crate::dedup::Key {
        crate::dedup::Key::of(self.category.as_str(), self.id.as_str())
    }

    /// Appends the record as one line of JSON (without the newline).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(out, self).expect("a SignIn always serializes to JSON");
    }

    /// Detaches the record from the message buffer it borrows from.
    pub fn into_owned(self) -> SignIn<'static> {
        let o = |t: Option<Text<'_>>| t.map(Text::into_owned);
        SignIn {
            id: self.id.into_owned(),
            category: self.category.into_owned(),
            tenant_id: o(self.tenant_id),
            user_id: o(self.user_id),
            user_principal_name: o(self.user_principal_name),
            user_display_name: o(self.user_display_name),
            user_type: o(self.user_type),
            created_date_time: self.created_date_time,
            app_id: o(self.app_id),
            app_display_name: o(self.app_display_name),
            resource_id: o(self.resource_id),
            resource_display_name: o(self.resource_display_name),
            ip_address: o(self.ip_address),
            client_app_used: o(self.client_app_used),
            is_interactive: self.is_interactive,
            login_succeeded: self.login_succeeded,
            failure_reason: o(self.failure_reason),
            mfa_required: self.mfa_required,
            mfa_auth_method: o(self.mfa_auth_method),
            mfa_auth_detail: o(self.mfa_auth_detail),
            mfa_result: o(self.mfa_result),
            reason: self.reason,
            policies: self.policies.into_iter().map(Text::into_owned).collect(),
            conditional_access_status: o(self.conditional_access_status),
            authentication_methods: self
                .authentication_methods
                .into_iter()
                .map(Text::into_owned)
                .collect(),
            location: self.location.map(|l| Location {
                city: o(l.city),
                state: o(l.state),
                country_or_region: o(l.country_or_region),
            }),
            device_detail: self.device_detail.map(|d| DeviceDetail {
                operating_system: o(d.operating_system),
                browser: o(d.browser),
                is_compliant: d.is_compliant,
                is_managed: d.is_managed,
                device_id: o(d.device_id),
                display_name: o(d.display_name),
                trust_type: o(d.trust_type),
            }),
            risk_level_during_sign_in: o(self.risk_level_during_sign_in),
            risk_state: o(self.risk_state),
            correlation_id: o(self.correlation_id),
            user_agent: o(self.user_agent),
            authentication_requirement: o(self.authentication_requirement),
            session_id: o(self.session_id),
            token_issuer_type: o(self.token_issuer_type),
            authentication_protocol: o(self.authentication_protocol),
            original_transfer_method: o(self.original_transfer_method),
            incoming_token_type: o(self.incoming_token_type),
            mfa_requirement_providers: self
                .mfa_requirement_providers
                .into_iter()
                .map(Text::into_owned)
                .collect(),
            mfa_policies_not_applied: self
                .mfa_policies_not_applied
                .into_iter()
                .map(|p| PolicyResult {
                    display_name: o(p.display_name),
                    result: o(p.result),
                })
                .collect(),
            authentication_steps: self
                .authentication_steps
                .into_iter()
                .map(|s| AuthenticationStep {
                    authentication_method: o(s.authentication_method),
                    authentication_step_requirement: o(s.authentication_step_requirement),
                    succeeded: s.succeeded,
                    authentication_step_result_detail: o(s.authentication_step_result_detail),
                })
                .collect(),
            source: Source {
                kind: self.source.kind.into_owned(),
                event_hub: o(self.source.event_hub),
                partition: o(self.source.partition),
                offset: o(self.source.offset),
                sequence_number: self.source.sequence_number,
                enqueued_time: self.source.enqueued_time,
                file: o(self.source.file),
                line: self.source.line,
            },
            ingested_at: self.ingested_at,
        }
    }
}

/// Azure writes `""` as often as it omits a field; downstream both mean "unknown".
fn non_empty(t: Option<Text<'_>>) -> Option<Text<'_>> {
    t.filter(|t| !t.as_str().trim().is_empty())
}

fn flag(f: Option<Flag>) -> Option<bool> {
    f.and_then(|f| f.0)
}

/// `isInteractive` as stated; when absent, the category says it.
fn interactive(p: &Properties, category: Category) -> Option<bool> {
    flag(p.is_interactive).or(match category {
        Category::SignInLogs | Category::AdfsSignInLogs => Some(true),
        Category::NonInteractiveUserSignInLogs => Some(false),
        _ => None,
    })
}

fn applied_policies<'a>(p: &Properties<'a>) -> Vec<Text<'a>> {
    let Some(policies) = p.applied_conditional_access_policies.as_ref() else {
        return Vec::new();
    };
    policies
        .iter()
        .filter(|pol| {
            let result = input::text(&pol.result).trim();
            result.is_empty()
                || result.eq_ignore_ascii_case("success")
                || result.eq_ignore_ascii_case("failure")
        })
        .filter_map(|pol| non_empty(pol.display_name.clone()))
        .collect()
}

fn mfa_policies_not_applied<'a>(p: &Properties<'a>) -> Vec<PolicyResult<'a>> {
    let Some(policies) = p.applied_conditional_access_policies.as_ref() else {
        return Vec::new();
    };
    policies
        .iter()
        .filter(|pol| {
            let result = input::text(&pol.result).trim();
            !(result.is_empty()
                || result.eq_ignore_ascii_case("success")
                || result.eq_ignore_ascii_case("failure"))
        })
        .filter(|pol| pol.enforced_grant_controls.is_some_and(|g| g.asks_for_mfa))
        .map(|pol| PolicyResult {
            display_name: non_empty(pol.display_name.clone()),
            result: non_empty(pol.result.clone()),
        })
        .collect()
}

fn requirement_providers<'a>(p: &Properties<'a>) -> Vec<Text<'a>> {
    let mut out: Vec<Text<'a>> = Vec::new();
    for r in p.authentication_requirement_policies.iter().flatten() {
        if let Some(t) = non_empty(r.requirement_provider.clone())
            && !out.iter().any(|o| o.as_str() == t.as_str())
        {
            out.push(t);
        }
    }
    out
}

fn steps<'a>(p: &Properties<'a>) -> Vec<AuthenticationStep<'a>> {
    p.authentication_details
        .iter()
        .flatten()
        .map(|s| AuthenticationStep {
            authentication_method: non_empty(s.authentication_method.clone()),
            authentication_step_requirement: non_empty(s.authentication_step_requirement.clone()),
            succeeded: flag(s.succeeded),
            authentication_step_result_detail: non_empty(
                s.authentication_step_result_detail.clone(),
            ),
        })
        .collect()
}

fn methods<'a>(p: &Properties<'a>) -> Vec<Text<'a>> {
    let mut out: Vec<Text<'a>> = Vec::new();
    for step in p.authentication_details.iter().flatten() {
        if !step.succeeded() {
            continue;
        }
        if let Some(m) = non_empty(step.authentication_method.clone())
            && !out.iter().any(|o| o.as_str() == m.as_str())
        {
            out.push(m);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{Output, Processor};

    const RECORD: &str = r#"{"time":"2025-12-12T14:56:31.1234567Z","category":"SignInLogs","tenantId":"t1","resultType":"0",
      "properties":{"id":"s1","createdDateTime":"12/12/2025 3:03:58 PM","userPrincipalName":"zoë@contoso.com",
        "userDisplayName":"Zo\u00eb \"Z\" Smith, Jr.","userId":"","status":{"errorCode":"0","additionalDetails":"MFA skipped due to location"},
        "clientAppUsed":"Browser","authenticationRequirement":"multiFactorAuthentication","mfaDetail":{},
        "appliedConditionalAccessPolicies":[{"displayName":"Require MFA","result":"success","enforcedGrantControls":["Mfa"]},{"displayName":"Block legacy","result":"notApplied","enforcedGrantControls":["Block"]},{"displayName":"Compliant device","result":"failure"},
          {"displayName":"MFA for admins","result":"notApplied","enforcedGrantControls":[null,"Mfa"]},{"displayName":"MFA trial","result":"reportOnlySuccess","enforcedGrantControls":["RequireAuthenticationStrength"]}],
        "sessionId":"sess-1","tokenIssuerType":"AzureAD","authenticationProtocol":"deviceCode","originalTransferMethod":"deviceCodeFlow","incomingTokenType":"",
        "authenticationRequirementPolicies":[{"requirementProvider":"multiConditionalAccess","detail":"Conditional Access"},{"requirementProvider":"user"},{"requirementProvider":"user"}],
        "authenticationDetails":[{"authenticationMethod":"Password","succeeded":true,"authenticationStepResultDetail":"Correct password"},
          {"authenticationMethod":"Password","succeeded":"true"},{"authenticationMethod":"Text message","succeeded":false},
          {"authenticationMethod":"","succeeded":true,"authenticationStepResultDetail":"MFA skipped due to location"}],
        "deviceDetail":{"operatingSystem":"Windows10","isCompliant":"false","deviceId":"dev-1","trustType":""},"riskState":null}}"#;

    fn emitted(body: &str) -> serde_json::Value {
        let mut out = None;
        let source = Source {
            kind: Text("eventhubs".into()),
            event_hub: Some(Text("signins".into())),
            partition: Some(Text("3".into())),
            offset: Some(Text("4242".into())),
            sequence_number: Some(17),
            enqueued_time: Some(1_765_551_391_000_001),
            ..Source::default()
        };
        let mut stats = crate::Stats::default();
        Processor::default().process(
            body.as_bytes(),
            &source,
            1_765_551_400_000_000,
            &mut stats,
            &mut |o| {
                if let Output::SignIn(s) = o {
                    let mut json = Vec::new();
                    s.write_json(&mut json);
                    // The record reads back as itself.
                    let back: SignIn = serde_json::from_slice(&json).unwrap();
                    assert_eq!(back, s.clone().into_owned());
                    out = Some(serde_json::from_slice(&json).unwrap());
                }
            },
        );
        out.expect("the record is emitted")
    }

    #[test]
    fn timestamps_are_utc_with_six_digits_and_z() {
        let v = emitted(RECORD);
        assert_eq!(v["createdDateTime"], "2025-12-12T15:03:58.000000Z");
        assert_eq!(v["ingestedAt"], "2025-12-12T14:56:40.000000Z");
        assert_eq!(v["source"]["enqueuedTime"], "2025-12-12T14:56:31.000001Z");
    }

    #[test]
    fn every_field_is_present_with_null_for_unknown() {
        let v = emitted(RECORD);
        let o = v.as_object().unwrap();
        let keys: Vec<&str> = o.keys().map(String::as_str).collect();
        let schema = crate::schema::sign_in_schema();
        let arrow: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(keys, arrow, "JSON and Arrow agree on names and order");
        assert_eq!(v["userId"], serde_json::Value::Null, "\"\" becomes null");
        assert_eq!(v["riskState"], serde_json::Value::Null);
        assert_eq!(v["location"], serde_json::Value::Null);
        assert_eq!(v["deviceDetail"]["browser"], serde_json::Value::Null);
        assert_eq!(v["deviceDetail"]["isCompliant"], false);
    }

    #[test]
    fn seed_columns_carry_what_the_record_states() {
        let v = emitted(RECORD);
        assert_eq!(v["userDisplayName"], "Zoë \"Z\" Smith, Jr.");
        assert_eq!(v["loginSucceeded"], true);
        assert_eq!(v["mfaRequired"], true, "as stated, even on mfa_skipped");
        assert_eq!(v["reason"], "mfa_skipped");
        assert_eq!(v["mfaResult"], "MFA skipped due to location");
        assert_eq!(
            v["mfaAuthMethod"],
            serde_json::Value::Null,
            "{{}} mfaDetail"
        );
        assert_eq!(
            v["policies"],
            serde_json::json!(["Require MFA", "Compliant device"])
        );
        assert_eq!(v["authenticationMethods"], serde_json::json!(["Password"]));
        assert_eq!(v["isInteractive"], true, "from the category when absent");
        assert_eq!(v["tenantId"], "t1");
        assert_eq!(v["source"]["sequenceNumber"], 17);
        assert_eq!(v["source"]["offset"], "4242");
    }

    #[test]
    fn evidence_says_which_mfa_policies_did_not_apply_and_who_asked_for_what() {
        let v = emitted(RECORD);
        assert_eq!(
            v["mfaPoliciesNotApplied"],
            serde_json::json!([
                {"displayName": "MFA for admins", "result": "notApplied"},
                {"displayName": "MFA trial", "result": "reportOnlySuccess"}
            ]),
            "MFA grant controls only, and only where the policy did not apply"
        );
        assert_eq!(
            v["mfaRequirementProviders"],
            serde_json::json!(["multiConditionalAccess", "user"]),
            "distinct, in order"
        );
        assert_eq!(v["sessionId"], "sess-1");
        assert_eq!(v["authenticationRequirement"], "multiFactorAuthentication");
        assert_eq!(v["authenticationProtocol"], "deviceCode");
        assert_eq!(v["originalTransferMethod"], "deviceCodeFlow");
        assert_eq!(
            v["incomingTokenType"],
            serde_json::Value::Null,
            "\"\" is null"
        );
        assert_eq!(v["deviceDetail"]["deviceId"], "dev-1");
        assert_eq!(v["deviceDetail"]["trustType"], serde_json::Value::Null);
        let steps = v["authenticationSteps"].as_array().unwrap();
        assert_eq!(steps.len(), 4, "every step, failed ones too");
        assert_eq!(steps[2]["authenticationMethod"], "Text message");
        assert_eq!(steps[2]["succeeded"], false);
        assert_eq!(steps[1]["succeeded"], true, "\"true\" read leniently");
        assert_eq!(
            steps[3]["authenticationStepResultDetail"],
            "MFA skipped due to location"
        );
    }

    #[test]
    fn a_version_1_record_reads_with_the_evidence_absent() {
        let v = emitted(RECORD);
        let mut old = v.as_object().unwrap().clone();
        for k in [
            "authenticationRequirement",
            "sessionId",
            "tokenIssuerType",
            "authenticationProtocol",
            "originalTransferMethod",
            "incomingTokenType",
            "mfaRequirementProviders",
            "mfaPoliciesNotApplied",
            "authenticationSteps",
        ] {
            assert!(old.remove(k).is_some(), "{k}");
        }
        let device = old["deviceDetail"].as_object_mut().unwrap();
        for k in ["deviceId", "displayName", "trustType"] {
            assert!(device.remove(k).is_some(), "{k}");
        }
        let json = serde_json::to_vec(&old).unwrap();
        let back: SignIn = serde_json::from_slice(&json).unwrap();
        assert_eq!(back.id.as_str(), "s1");
        assert!(back.authentication_steps.is_empty());
        assert_eq!(back.session_id, None);
        assert_eq!(back.device_detail.unwrap().device_id, None);
    }

    #[test]
    fn the_kafka_key_is_the_user_then_the_name_then_the_id() {
        let key = |user_id: &str, upn: &str| {
            let body = RECORD
                .replace(r#""userId":"""#, &format!(r#""userId":"{user_id}""#))
                .replace("zoë@contoso.com", upn);
            let mut key = String::new();
            Processor::default().process(
                body.as_bytes(),
                &Source::default(),
                0,
                &mut crate::Stats::default(),
                &mut |o| {
                    if let Output::SignIn(s) = o {
                        key = s.key().to_owned();
                    }
                },
            );
            key
        };
        assert_eq!(key("u-1", "a@b"), "u-1");
        assert_eq!(key("", "a@b"), "a@b");
        assert_eq!(key("", ""), "s1");
    }
}
