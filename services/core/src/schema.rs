//! The Arrow schema of the output record: what the archiver writes to Parquet.
//!
//! It lives beside `record` so the two cannot drift: a test below serializes a record and
//! checks that the JSON keys and the Arrow fields are the same, level by level. Types are the
//! ones Spark, Trino, Athena and DuckDB read natively: UTC microsecond timestamps, booleans,
//! lists of strings and structs.

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use std::sync::{Arc, OnceLock};

/// Timestamp type of every instant: microseconds, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn list_of_text(name: &str) -> Field {
    Field::new_list(name, Field::new_list_field(DataType::Utf8, false), false)
}

/// Fields of `location`.
pub fn location_fields() -> Fields {
    Fields::from(vec![text("city"), text("state"), text("countryOrRegion")])
}

/// Fields of `deviceDetail`.
pub fn device_detail_fields() -> Fields {
    Fields::from(vec![
        text("operatingSystem"),
        text("browser"),
        Field::new("isCompliant", DataType::Boolean, true),
        Field::new("isManaged", DataType::Boolean, true),
        text("deviceId"),
        text("displayName"),
        text("trustType"),
    ])
}

/// Fields of an `mfaPoliciesNotApplied` item.
pub fn policy_result_fields() -> Fields {
    Fields::from(vec![text("displayName"), text("result")])
}

/// Fields of an `authenticationSteps` item.
pub fn step_fields() -> Fields {
    Fields::from(vec![
        text("authenticationMethod"),
        text("authenticationStepRequirement"),
        Field::new("succeeded", DataType::Boolean, true),
        text("authenticationStepResultDetail"),
    ])
}

/// A list of structs of `fields` (items never null).
pub fn list_of_struct(name: &str, fields: Fields) -> Field {
    Field::new_list(
        name,
        Field::new_list_field(DataType::Struct(fields), false),
        false,
    )
}

/// Fields of `source`.
pub fn source_fields() -> Fields {
    Fields::from(vec![
        Field::new("kind", DataType::Utf8, false),
        text("eventHub"),
        text("partition"),
        text("offset"),
        Field::new("sequenceNumber", DataType::Int64, true),
        Field::new("enqueuedTime", timestamp_type(), true),
        text("file"),
        Field::new("line", DataType::UInt64, true),
    ])
}

/// The schema of one output row, in the order of the JSON record.
pub fn sign_in_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Utf8, false),
                Field::new("category", DataType::Utf8, false),
                text("tenantId"),
                text("userId"),
                text("userPrincipalName"),
                text("userDisplayName"),
                text("userType"),
                Field::new("createdDateTime", timestamp_type(), false),
                text("appId"),
                text("appDisplayName"),
                text("resourceId"),
                text("resourceDisplayName"),
                text("ipAddress"),
                text("clientAppUsed"),
                Field::new("isInteractive", DataType::Boolean, true),
                Field::new("loginSucceeded", DataType::Boolean, false),
                text("failureReason"),
                Field::new("mfaRequired", DataType::Boolean, false),
                text("mfaAuthMethod"),
                text("mfaAuthDetail"),
                text("mfaResult"),
                Field::new("reason", DataType::Utf8, false),
                list_of_text("policies"),
                text("conditionalAccessStatus"),
                list_of_text("authenticationMethods"),
                Field::new("location", DataType::Struct(location_fields()), true),
                Field::new(
                    "deviceDetail",
                    DataType::Struct(device_detail_fields()),
                    true,
                ),
                text("riskLevelDuringSignIn"),
                text("riskState"),
                text("correlationId"),
                text("userAgent"),
                text("authenticationRequirement"),
                text("sessionId"),
                text("tokenIssuerType"),
                text("authenticationProtocol"),
                text("originalTransferMethod"),
                text("incomingTokenType"),
                list_of_text("mfaRequirementProviders"),
                list_of_struct("mfaPoliciesNotApplied", policy_result_fields()),
                list_of_struct("authenticationSteps", step_fields()),
                Field::new("source", DataType::Struct(source_fields()), false),
                Field::new("ingestedAt", timestamp_type(), false),
            ]))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Reason;
    use crate::lenient::Text;
    use crate::record::{AuthenticationStep, DeviceDetail, Location, PolicyResult, SignIn, Source};

    fn full_record() -> SignIn<'static> {
        let t = |s: &'static str| Some(Text(s.into()));
        SignIn {
            id: Text("id".into()),
            category: Text("SignInLogs".into()),
            tenant_id: t("t"),
            user_id: t("u"),
            user_principal_name: t("upn"),
            user_display_name: t("n"),
            user_type: t("Member"),
            created_date_time: 0,
            app_id: t("a"),
            app_display_name: t("a"),
            resource_id: t("r"),
            resource_display_name: t("r"),
            ip_address: t("ip"),
            client_app_used: t("IMAP4"),
            is_interactive: Some(true),
            login_succeeded: true,
            failure_reason: t("Other."),
            mfa_required: false,
            mfa_auth_method: t("m"),
            mfa_auth_detail: t("d"),
            mfa_result: t("r"),
            reason: Reason::LegacyProtocol,
            policies: vec![Text("p".into())],
            conditional_access_status: t("success"),
            authentication_methods: vec![Text("Password".into())],
            location: Some(Location {
                city: t("c"),
                state: t("s"),
                country_or_region: t("FR"),
            }),
            device_detail: Some(DeviceDetail {
                operating_system: t("Windows"),
                browser: t("Edge"),
                is_compliant: Some(false),
                is_managed: Some(true),
                device_id: t("d"),
                display_name: t("PC"),
                trust_type: t("Azure AD joined"),
            }),
            risk_level_during_sign_in: t("none"),
            risk_state: t("none"),
            correlation_id: t("c"),
            user_agent: t("ua"),
            authentication_requirement: t("singleFactorAuthentication"),
            session_id: t("s"),
            token_issuer_type: t("AzureAD"),
            authentication_protocol: t("deviceCode"),
            original_transfer_method: t("deviceCodeFlow"),
            incoming_token_type: t("none"),
            mfa_requirement_providers: vec![Text("user".into())],
            mfa_policies_not_applied: vec![PolicyResult {
                display_name: t("Require MFA"),
                result: t("reportOnlySuccess"),
            }],
            authentication_steps: vec![AuthenticationStep {
                authentication_method: t("Password"),
                authentication_step_requirement: t("Primary authentication"),
                succeeded: Some(true),
                authentication_step_result_detail: t("Correct password"),
            }],
            source: Source {
                kind: Text("eventhubs".into()),
                event_hub: t("hub"),
                partition: t("0"),
                offset: t("1"),
                sequence_number: Some(1),
                enqueued_time: Some(0),
                file: None,
                line: None,
            },
            ingested_at: 0,
        }
    }

    fn keys(v: &serde_json::Value) -> Vec<String> {
        v.as_object().unwrap().keys().cloned().collect()
    }

    fn names(fields: &Fields) -> Vec<String> {
        fields.iter().map(|f| f.name().clone()).collect()
    }

    #[test]
    fn arrow_fields_match_json_keys_in_order() {
        let json = serde_json::to_value(full_record()).unwrap();
        let schema = sign_in_schema();
        assert_eq!(keys(&json), names(schema.fields()));
        for (nested, fields) in [
            ("location", location_fields()),
            ("deviceDetail", device_detail_fields()),
            ("source", source_fields()),
        ] {
            assert_eq!(keys(&json[nested]), names(&fields), "{nested}");
        }
        for (list, fields) in [
            ("mfaPoliciesNotApplied", policy_result_fields()),
            ("authenticationSteps", step_fields()),
        ] {
            assert_eq!(keys(&json[list][0]), names(&fields), "{list}");
        }
    }

    #[test]
    fn non_nullable_fields_are_never_null_in_json() {
        let json = serde_json::to_value(full_record()).unwrap();
        for f in sign_in_schema().fields() {
            if !f.is_nullable() {
                assert!(!json[f.name()].is_null(), "{}", f.name());
            }
        }
    }

    #[test]
    fn instants_are_utc_microseconds() {
        let schema = sign_in_schema();
        for name in ["createdDateTime", "ingestedAt"] {
            assert_eq!(
                schema.field_with_name(name).unwrap().data_type(),
                &timestamp_type()
            );
        }
    }
}
