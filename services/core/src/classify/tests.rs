//! Every clause of the rule, each with a record shaped like the ones Azure sends.

use super::*;
use crate::decode::{Slot, decode};
use serde_json::{Value, json};

/// A successful interactive password sign-in from a browser, as Azure writes it; each test
/// changes what it is about.
fn base() -> Value {
    json!({
        "time": "2025-12-12T14:56:31.1234567Z",
        "resourceId": "/tenants/8d0e2f4a-0000-4000-8000-000000000001/providers/Microsoft.aadiam",
        "operationName": "Sign-in activity",
        "operationVersion": "1.0",
        "category": "SignInLogs",
        "tenantId": "8d0e2f4a-0000-4000-8000-000000000001",
        "resultType": "0",
        "resultSignature": "None",
        "resultDescription": "",
        "durationMs": 0,
        "callerIpAddress": "203.0.113.7",
        "correlationId": "c0ffee00-0000-4000-8000-000000000001",
        "identity": "Zoë Ångström",
        "Level": 4,
        "location": "FR",
        "properties": {
            "id": "5f1c7e0a-0000-4000-8000-000000000001",
            "createdDateTime": "2025-12-12T14:56:31.1234567+00:00",
            "userDisplayName": "Zoë Ångström",
            "userPrincipalName": "zoe@contoso.example",
            "userId": "aa000000-0000-4000-8000-000000000001",
            "appId": "00000002-0000-0ff1-ce00-000000000000",
            "appDisplayName": "Office 365 Exchange Online",
            "ipAddress": "203.0.113.7",
            "status": { "errorCode": 0, "failureReason": "Other." },
            "clientAppUsed": "Browser",
            "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
            "deviceDetail": { "deviceId": "", "operatingSystem": "Windows10", "browser": "Edge 120.0.0", "isCompliant": false, "isManaged": false },
            "location": { "city": "Paris", "state": "Paris", "countryOrRegion": "FR", "geoCoordinates": { "latitude": 48.85, "longitude": 2.35 } },
            "mfaDetail": {},
            "correlationId": "c0ffee00-0000-4000-8000-000000000001",
            "conditionalAccessStatus": "notApplied",
            "appliedConditionalAccessPolicies": [],
            "isInteractive": true,
            "authenticationRequirement": "singleFactorAuthentication",
            "authenticationDetails": [password_step()],
            "riskLevelDuringSignIn": "none",
            "riskState": "none",
            "resourceDisplayName": "Office 365 Exchange Online",
            "resourceId": "00000002-0000-0ff1-ce00-000000000000",
            "userType": "Member"
        }
    })
}

fn password_step() -> Value {
    json!({
        "authenticationStepDateTime": "2025-12-12T14:56:31Z",
        "authenticationMethod": "Password",
        "authenticationMethodDetail": "Password in the cloud",
        "succeeded": true,
        "authenticationStepResultDetail": "Correct password",
        "authenticationStepRequirement": "Primary authentication"
    })
}

fn step(method: &str, succeeded: Value, detail: &str, requirement: &str) -> Value {
    json!({
        "authenticationMethod": method,
        "succeeded": succeeded,
        "authenticationStepResultDetail": detail,
        "authenticationStepRequirement": requirement
    })
}

fn with(mut v: Value, f: impl FnOnce(&mut Value)) -> Value {
    f(&mut v);
    v
}

fn props(v: &mut Value) -> &mut serde_json::Map<String, Value> {
    v["properties"].as_object_mut().unwrap()
}

fn steps(list: Vec<Value>) -> impl FnOnce(&mut Value) {
    move |v| {
        props(v).insert("authenticationDetails".into(), Value::Array(list));
    }
}

fn decide_with(classifier: &Classifier, record: &Value) -> Result<Decision<'static>, RecordError> {
    let body = serde_json::to_vec(record).unwrap().leak();
    let slots: Vec<Slot> = decode(body)
        .expect("the body decodes")
        .into_slots()
        .collect();
    assert_eq!(slots.len(), 1);
    match slots.into_iter().next().unwrap() {
        Slot::Record(r, _) => classifier.classify(&r),
        Slot::Bad { error, .. } => Err(error),
    }
}

fn decide(record: &Value) -> Decision<'static> {
    decide_with(&Classifier::default(), record).unwrap_or_else(|e| panic!("{e}"))
}

fn emitted(record: &Value) -> (Reason, Option<String>) {
    match decide(record) {
        Decision::Emit {
            reason, mfa_result, ..
        } => (reason, mfa_result.map(|t| t.to_string())),
        other => panic!("expected an emitted record, got {other:?}"),
    }
}

fn evidence(record: &Value) -> Evidence {
    match decide(record) {
        Decision::Mfa(_, e) => e,
        other => panic!("expected MFA evidence, got {other:?}"),
    }
}

// --- scope ---------------------------------------------------------------------------------

#[test]
fn user_sign_in_categories_are_classified() {
    for cat in [
        "SignInLogs",
        "NonInteractiveUserSignInLogs",
        "ADFSSignInLogs",
    ] {
        let r = with(base(), |v| v["category"] = json!(cat));
        assert!(matches!(decide(&r), Decision::Emit { .. }), "{cat}");
    }
}

#[test]
fn workload_identities_are_skipped_unless_asked_for() {
    for cat in [
        "ServicePrincipalSignInLogs",
        "ManagedIdentitySignInLogs",
        "MicrosoftServicePrincipalSignInLogs",
    ] {
        let r = with(base(), |v| {
            v["category"] = json!(cat);
            props(v).remove("authenticationDetails");
            props(v).remove("userPrincipalName");
        });
        assert_eq!(decide(&r), Decision::Skipped(Skip::Workload), "{cat}");
        let with_flag = Classifier::new(ClassifierConfig {
            include_workload: true,
            ..ClassifierConfig::default()
        });
        let d = decide_with(&with_flag, &r).unwrap();
        assert!(
            matches!(
                d,
                Decision::Emit {
                    reason: Reason::SingleFactor,
                    ..
                }
            ),
            "{cat}: {d:?}"
        );
    }
}

#[test]
fn other_categories_are_skipped_not_dead_lettered() {
    let audit = json!({"category": "AuditLogs", "resultType": "Success",
        "properties": {"activityDisplayName": "Add user", "targetResources": [{"id": 1}]}});
    assert_eq!(decide(&audit), Decision::Skipped(Skip::OtherCategory));
}

// --- succeeded -----------------------------------------------------------------------------

#[test]
fn error_code_zero_as_number_or_string_is_success() {
    for code in [json!(0), json!("0")] {
        let r = with(base(), |v| {
            v["properties"]["status"]["errorCode"] = code.clone()
        });
        assert!(matches!(decide(&r), Decision::Emit { .. }), "{code}");
    }
}

#[test]
fn error_code_decides_even_when_result_type_disagrees() {
    let r = with(base(), |v| {
        v["properties"]["status"]["errorCode"] = json!(50126);
        v["resultType"] = json!("0");
    });
    assert!(matches!(decide(&r), Decision::Failed(_)));
}

#[test]
fn without_error_code_result_type_decides_as_string_or_number() {
    for rt in [json!("0"), json!(0)] {
        let r = with(base(), |v| {
            v["properties"]["status"]
                .as_object_mut()
                .unwrap()
                .remove("errorCode");
            v["resultType"] = rt.clone();
        });
        assert!(matches!(decide(&r), Decision::Emit { .. }), "{rt}");
    }
    let r = with(base(), |v| {
        props(v).remove("status");
        v["resultType"] = json!("50126");
    });
    assert!(matches!(decide(&r), Decision::Failed(_)));
}

#[test]
fn empty_or_missing_result_type_is_fine_when_error_code_is_there() {
    for rt in [Some(json!("")), None] {
        let r = with(base(), |v| match &rt {
            Some(x) => v["resultType"] = x.clone(),
            None => {
                v.as_object_mut().unwrap().remove("resultType");
            }
        });
        assert!(matches!(decide(&r), Decision::Emit { .. }));
    }
}

#[test]
fn no_error_code_and_no_result_type_is_a_dead_letter_not_a_guess() {
    let r = with(base(), |v| {
        props(v).remove("status");
        v["resultType"] = json!("");
    });
    let e = decide_with(&Classifier::default(), &r).unwrap_err();
    assert_eq!(e.code(), "no_status");
}

#[test]
fn interrupts_are_not_successes() {
    for code in [
        50074, 50076, 50072, 50079, 50158, 50140, 50125, 53003, 50126,
    ] {
        let r = with(base(), |v| {
            v["properties"]["status"]["errorCode"] = json!(code);
            v["resultType"] = json!(code.to_string());
        });
        assert!(matches!(decide(&r), Decision::Failed(_)), "{code}");
        let as_string = with(r, |v| {
            v["properties"]["status"]["errorCode"] = json!(code.to_string())
        });
        assert!(
            matches!(decide(&as_string), Decision::Failed(_)),
            "{code} as string"
        );
    }
}

// --- MFA evidence --------------------------------------------------------------------------

#[test]
fn rule_1_completed_or_satisfied_details_are_mfa() {
    for detail in [
        "MFA successfully completed",
        "MFA completed in Azure AD",
        "MFA requirement satisfied by claim in the token",
        "MFA requirement satisfied by claim provided by external provider",
        "MFA requirement satisfied by strong authentication",
    ] {
        let r = with(
            base(),
            steps(vec![
                password_step(),
                step(
                    "Mobile app notification",
                    json!(true),
                    detail,
                    "Primary authentication",
                ),
            ]),
        );
        assert_eq!(evidence(&r), Evidence::StepCompleted, "{detail}");
    }
}

#[test]
fn rule_1_needs_the_step_to_have_succeeded() {
    let r = with(
        base(),
        steps(vec![
            password_step(),
            step(
                "Mobile app notification",
                json!(false),
                "MFA successfully completed",
                "",
            ),
        ]),
    );
    assert!(matches!(decide(&r), Decision::Emit { .. }));
}

#[test]
fn first_factor_satisfied_by_claim_is_not_mfa() {
    let r = with(base(), |v| {
        v["category"] = json!("NonInteractiveUserSignInLogs");
        props(v).insert("isInteractive".into(), json!(false));
        steps(vec![step(
            "Previously satisfied",
            json!(true),
            "First factor requirement satisfied by claim in the token",
            "Primary authentication",
        )])(v);
    });
    assert_eq!(emitted(&r).0, Reason::SingleFactor);
}

#[test]
fn rule_2_multifactor_requirement_in_any_spelling() {
    for req in [
        "Multifactor authentication",
        "Multi-factor authentication",
        "multiFactorAuthentication",
        "MULTI FACTOR AUTHENTICATION",
    ] {
        let r = with(
            base(),
            steps(vec![
                password_step(),
                step("Text message", json!(true), "Authentication succeeded", req),
            ]),
        );
        assert_eq!(evidence(&r), Evidence::StepRequirement, "{req}");
    }
}

#[test]
fn rule_2_does_not_count_a_multifactor_step_that_says_skipped() {
    let r = with(
        base(),
        steps(vec![
            password_step(),
            step(
                "",
                json!(true),
                "MFA skipped due to location",
                "Multifactor authentication",
            ),
        ]),
    );
    assert_eq!(emitted(&r).0, Reason::MfaSkipped);
}

#[test]
fn rule_3_methods_that_are_multifactor_by_themselves() {
    for method in [
        "FIDO2 security key",
        "Windows Hello for Business",
        "Passkey (device-bound)",
        "Passkey (Microsoft Authenticator)",
        "Passwordless phone sign-in",
        "Certificate (multifactor)",
    ] {
        let r = with(
            base(),
            steps(vec![step(
                method,
                json!(true),
                "Authentication succeeded",
                "Primary authentication",
            )]),
        );
        assert_eq!(evidence(&r), Evidence::StrongMethod, "{method}");
    }
}

#[test]
fn single_factor_certificate_is_not_a_strong_method() {
    let r = with(
        base(),
        steps(vec![step(
            "Certificate (singlefactor)",
            json!(true),
            "Authentication succeeded",
            "Primary authentication",
        )]),
    );
    assert_eq!(emitted(&r).0, Reason::SingleFactor);
}

#[test]
fn rule_4_requirement_is_evidence_in_any_case() {
    for req in [
        "multiFactorAuthentication",
        "MultiFactorAuthentication",
        " MULTIFACTORAUTHENTICATION ",
    ] {
        let r = with(base(), |v| {
            props(v).insert("authenticationRequirement".into(), json!(req));
        });
        assert_eq!(evidence(&r), Evidence::Requirement, "{req}");
    }
}

#[test]
fn rule_4_does_not_hold_when_a_step_says_skipped_and_none_completed() {
    let r = with(base(), |v| {
        props(v).insert(
            "authenticationRequirement".into(),
            json!("multiFactorAuthentication"),
        );
        steps(vec![
            password_step(),
            step(
                "",
                json!(true),
                "MFA requirement skipped due to remembered device",
                "",
            ),
        ])(v);
    });
    let (reason, result) = emitted(&r);
    assert_eq!(reason, Reason::MfaSkipped);
    assert_eq!(
        result.as_deref(),
        Some("MFA requirement skipped due to remembered device")
    );
}

#[test]
fn skipped_and_completed_in_another_step_is_mfa() {
    let r = with(base(), |v| {
        props(v).insert(
            "authenticationRequirement".into(),
            json!("multiFactorAuthentication"),
        );
        steps(vec![
            password_step(),
            step("", json!(true), "MFA skipped due to location", ""),
            step(
                "Mobile app notification",
                json!(true),
                "MFA successfully completed",
                "",
            ),
        ])(v);
    });
    assert_eq!(evidence(&r), Evidence::StepCompleted);
}

#[test]
fn rule_5_applies_to_older_records_without_steps() {
    let older = |f: fn(&mut Value)| {
        with(base(), |v| {
            props(v).remove("authenticationDetails");
            f(v);
        })
    };
    let r = older(|v| {
        props(v).insert(
            "mfaDetail".into(),
            json!({"authMethod": "PhoneAppNotification", "authDetail": "+X XXXXXXXX12"}),
        );
    });
    assert_eq!(evidence(&r), Evidence::MfaDetail);
    let r = older(|v| {
        props(v).insert("authenticationDetails".into(), json!([]));
        props(v).insert("mfaDetail".into(), json!({"authMethod": "OneWaySMS"}));
    });
    assert_eq!(
        evidence(&r),
        Evidence::MfaDetail,
        "an empty list is an older record too"
    );
    let r = older(|v| {
        props(v).insert("mfaDetail".into(), json!({}));
    });
    assert_eq!(
        emitted(&r).0,
        Reason::SingleFactor,
        "empty mfaDetail is no evidence"
    );
    let r = older(|v| {
        props(v).insert(
            "mfaDetail".into(),
            json!({"authMethod": null, "authDetail": null}),
        );
    });
    assert_eq!(
        emitted(&r).0,
        Reason::SingleFactor,
        "null authMethod is no evidence"
    );
}

#[test]
fn rule_5_is_ignored_when_the_record_has_steps() {
    let r = with(base(), |v| {
        props(v).insert(
            "mfaDetail".into(),
            json!({"authMethod": "PhoneAppNotification"}),
        );
    });
    assert_eq!(emitted(&r).0, Reason::SingleFactor);
}

#[test]
fn rule_6_the_status_saying_mfa_was_done_is_evidence_with_or_without_steps() {
    for detail in [
        "MFA requirement satisfied by claim in the token",
        "MFA completed in Azure AD",
        "MFA successfully completed",
        "MFA requirement satisfied by claim provided by external provider",
    ] {
        let with_steps = with(base(), |v| {
            v["properties"]["status"]["additionalDetails"] = json!(detail);
        });
        assert_eq!(evidence(&with_steps), Evidence::StatusDetail, "{detail}");
        let older = with(base(), |v| {
            props(v).remove("authenticationDetails");
            v["properties"]["status"]["additionalDetails"] = json!(detail);
        });
        assert_eq!(evidence(&older), Evidence::StatusDetail, "{detail}");
    }
}

/// A Log Analytics export (2020 and later): the claim step logged as not succeeded with an
/// empty requirement, the sign-in's status saying MFA was satisfied.
#[test]
fn golden_a_claim_step_logged_as_failed_with_mfa_satisfied_in_the_status_is_mfa() {
    let r = with(base(), |v| {
        props(v).insert("authenticationRequirement".into(), json!(""));
        props(v).insert("conditionalAccessStatus".into(), json!("success"));
        v["properties"]["status"] = json!({
            "errorCode": 0,
            "additionalDetails": "MFA requirement satisfied by claim in the token"
        });
        steps(vec![json!({
            "succeeded": false,
            "authenticationStepResultDetail": "MFA requirement satisfied by claim in the token",
            "authenticationStepRequirement": "MultiConditionalAccess"
        })])(v);
    });
    assert_eq!(evidence(&r), Evidence::StatusDetail);
}

/// A step that speaks of the first factor only, while the status says the token carried an
/// MFA claim.
#[test]
fn golden_a_first_factor_step_with_mfa_satisfied_in_the_status_is_mfa() {
    let r = with(base(), |v| {
        props(v).insert(
            "clientAppUsed".into(),
            json!("Mobile Apps and Desktop clients"),
        );
        v["properties"]["status"]["additionalDetails"] =
            json!("MFA requirement satisfied by claim in the token");
        steps(vec![step(
            "Previously satisfied",
            json!(true),
            "First factor requirement satisfied by claim in the token",
            "singleFactorAuthentication",
        )])(v);
    });
    assert_eq!(evidence(&r), Evidence::StatusDetail);
}

/// The trap: the status that speaks of the first factor only is no evidence, wherever it
/// appears, and is what the emitted record's `mfaResult` carries.
#[test]
fn golden_first_factor_satisfied_by_claim_in_the_status_is_never_evidence() {
    let first = "First factor requirement satisfied by claim in the token";
    let with_step = with(base(), |v| {
        v["properties"]["status"]["additionalDetails"] = json!(first);
        steps(vec![step(
            "Previously satisfied",
            json!(true),
            first,
            "singleFactorAuthentication",
        )])(v);
    });
    assert_eq!(
        emitted(&with_step),
        (Reason::SingleFactor, Some(first.into()))
    );
    let without_steps = with(base(), |v| {
        props(v).remove("authenticationDetails");
        v["properties"]["status"]["additionalDetails"] = json!(first);
    });
    assert_eq!(
        emitted(&without_steps),
        (Reason::SingleFactor, Some(first.into()))
    );
    let failed_step = with(base(), |v| {
        props(v).insert("authenticationRequirement".into(), json!(""));
        v["properties"]["status"]["additionalDetails"] = json!(first);
        steps(vec![step(
            "",
            json!(false),
            first,
            "MultiConditionalAccess",
        )])(v);
    });
    assert_eq!(
        emitted(&failed_step),
        (Reason::SingleFactor, Some(first.into()))
    );
}

#[test]
fn a_status_that_mfa_was_skipped_or_only_required_is_no_evidence() {
    for detail in [
        "MFA requirement skipped due to remembered device",
        "MFA required in Azure AD",
        "MFA denied; user declined the authentication",
    ] {
        let r = with(base(), |v| {
            v["properties"]["status"]["additionalDetails"] = json!(detail);
        });
        assert_eq!(emitted(&r).0, Reason::SingleFactor, "{detail}");
    }
}

// --- emit and reason -----------------------------------------------------------------------

#[test]
fn every_skip_reason_is_mfa_skipped_with_the_detail() {
    for detail in [
        "MFA skipped due to location",
        "MFA requirement skipped due to remembered device",
        "MFA skipped due to registered device",
        "MFA skipped due to app password",
        "MFA skipped due to Windows broker logon",
    ] {
        let r = with(base(), |v| {
            props(v).insert(
                "authenticationRequirement".into(),
                json!("multiFactorAuthentication"),
            );
            steps(vec![password_step(), step("", json!(true), detail, "")])(v);
        });
        assert_eq!(
            emitted(&r),
            (Reason::MfaSkipped, Some(detail.to_owned())),
            "{detail}"
        );
    }
}

#[test]
fn legacy_clients_in_any_case_are_legacy_protocol() {
    for client in [
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
        "imap4",
        "EXCHANGE ACTIVESYNC",
    ] {
        let r = with(base(), |v| {
            props(v).insert("clientAppUsed".into(), json!(client));
        });
        assert_eq!(emitted(&r).0, Reason::LegacyProtocol, "{client}");
    }
}

#[test]
fn legacy_wins_over_skipped_and_keeps_the_skip_detail() {
    let r = with(base(), |v| {
        props(v).insert("clientAppUsed".into(), json!("Exchange ActiveSync"));
        steps(vec![
            password_step(),
            step("", json!(true), "MFA skipped due to app password", ""),
        ])(v);
    });
    assert_eq!(
        emitted(&r),
        (
            Reason::LegacyProtocol,
            Some("MFA skipped due to app password".into())
        )
    );
}

#[test]
fn modern_clients_are_not_legacy_and_the_list_is_configurable() {
    for client in [
        "Browser",
        "Mobile Apps and Desktop clients",
        "",
        "IMAP4 proxy",
    ] {
        let r = with(base(), |v| {
            props(v).insert("clientAppUsed".into(), json!(client));
        });
        assert_eq!(emitted(&r).0, Reason::SingleFactor, "{client:?}");
    }
    let custom = Classifier::new(ClassifierConfig {
        legacy_clients: vec!["Browser".into()],
        ..ClassifierConfig::default()
    });
    let d = decide_with(&custom, &base()).unwrap();
    assert!(matches!(
        d,
        Decision::Emit {
            reason: Reason::LegacyProtocol,
            ..
        }
    ));
    let imap = with(base(), |v| {
        props(v).insert("clientAppUsed".into(), json!("IMAP4"));
    });
    let d = decide_with(&custom, &imap).unwrap();
    assert!(matches!(
        d,
        Decision::Emit {
            reason: Reason::SingleFactor,
            ..
        }
    ));
}

#[test]
fn missing_or_empty_requirement_is_single_factor() {
    for req in [None, Some(json!("")), Some(Value::Null)] {
        let r = with(base(), |v| match &req {
            Some(x) => {
                props(v).insert("authenticationRequirement".into(), x.clone());
            }
            None => {
                props(v).remove("authenticationRequirement");
            }
        });
        assert_eq!(emitted(&r).0, Reason::SingleFactor, "{req:?}");
    }
}

#[test]
fn non_interactive_refresh_token_without_evidence_is_single_factor() {
    let r = with(base(), |v| {
        v["category"] = json!("NonInteractiveUserSignInLogs");
        props(v).insert("isInteractive".into(), json!(false));
        props(v).insert(
            "clientAppUsed".into(),
            json!("Mobile Apps and Desktop clients"),
        );
        steps(vec![])(v);
    });
    assert_eq!(emitted(&r).0, Reason::SingleFactor);
}

#[test]
fn mfa_result_falls_back_to_additional_details() {
    let r = with(base(), |v| {
        v["properties"]["status"]["additionalDetails"] =
            json!("First factor requirement satisfied by claim in the token");
    });
    assert_eq!(
        emitted(&r),
        (
            Reason::SingleFactor,
            Some("First factor requirement satisfied by claim in the token".into())
        )
    );
}

#[test]
fn matchers_read_words_not_substrings() {
    assert!(says_mfa_done("MFA completed in Azure AD"));
    assert!(!says_mfa_done("MFA required in Azure AD"));
    assert!(!says_mfa_done(
        "MFA denied; user declined the authentication"
    ));
    assert!(!says_mfa_done(
        "MFA requirement skipped due to remembered device"
    ));
    assert!(!says_mfa_done("MFA not completed"));
    assert!(!says_mfa_done(
        "First factor requirement satisfied by claim in the token"
    ));
    assert!(!says_mfa_done(""));
    assert!(says_mfa_skipped("MFA skipped due to location"));
    assert!(!says_mfa_skipped("MFA successfully completed"));
}
