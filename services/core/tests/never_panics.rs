//! Whatever Event Hubs delivers, processing a message never panics: it yields records, skips, or
//! dead letters, and every record is accounted for, in every input shape (diagnostic records,
//! Graph `signIn` resources, Log Analytics rows, mixed in one message or not).

use mfagap_core::lenient::Text;
use mfagap_core::{Classifier, ClassifierConfig, Output, Processor, Source, Stats};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn process_all(body: &[u8]) -> Stats {
    let mut stats = Stats::default();
    for include_workload in [false, true] {
        let p = Processor::new(Classifier::new(ClassifierConfig {
            include_workload,
            ..ClassifierConfig::default()
        }));
        let source = Source {
            kind: Text("file".into()),
            ..Source::default()
        };
        let mut emitted = 0;
        let mut s = Stats::default();
        p.process(body, &source, 0, &mut s, &mut |o| {
            if let Output::SignIn(r) = o {
                let mut out = Vec::new();
                r.write_json(&mut out);
                emitted += 1;
                s_emit(&r);
            }
        });
        // Emitted records are counted by the caller; count them as first sightings here.
        for _ in 0..emitted {
            s.count_emitted(mfagap_core::Reason::SingleFactor);
        }
        s.check().unwrap();
        stats = s;
    }
    stats
}

fn s_emit(r: &mfagap_core::SignIn) {
    assert!(!r.id.as_str().trim().is_empty());
}

/// Any JSON value, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("0"),
            Just("50126"),
            Just(""),
            Just("true"),
            Just("MFA skipped due to location"),
            Just("multiFactorAuthentication"),
            Just("12/12/2025 3:03:58 PM"),
            Just("2025-12-12T14:56:31.1234567+05:30"),
            Just("IMAP4"),
            Just("SignInLogs"),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Keys the decoder looks for, so random values land where they matter.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("records"),
        Just("category"),
        Just("properties"),
        Just("id"),
        Just("status"),
        Just("errorCode"),
        Just("resultType"),
        Just("time"),
        Just("createdDateTime"),
        Just("authenticationDetails"),
        Just("succeeded"),
        Just("authenticationStepResultDetail"),
        Just("authenticationStepRequirement"),
        Just("authenticationMethod"),
        Just("authenticationRequirement"),
        Just("mfaDetail"),
        Just("authMethod"),
        Just("appliedConditionalAccessPolicies"),
        Just("displayName"),
        Just("result"),
        Just("clientAppUsed"),
        Just("deviceDetail"),
        Just("location"),
        Just("isInteractive"),
        Just("additionalDetails"),
        Just("value"),
        Just("signInEventTypes"),
        Just("Type"),
        Just("Category"),
        Just("TimeGenerated"),
        Just("ResultType"),
        Just("Status"),
        Just("AuthenticationDetails"),
        Just("x"),
    ]
    .prop_map(str::to_owned)
}

/// A sign-in record with random values in the fields that matter.
fn sign_in_like() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just("SignInLogs"),
            Just("NonInteractiveUserSignInLogs"),
            Just("ServicePrincipalSignInLogs"),
            Just("AuditLogs")
        ],
        any_json(),
        any_json(),
        any_json(),
        any_json(),
        prop::collection::vec(any_json(), 0..4),
    )
        .prop_map(|(category, id, code, time, req, steps)| {
            json!({
                "category": category,
                "resultType": code.clone(),
                "time": time.clone(),
                "properties": {
                    "id": id,
                    "createdDateTime": time,
                    "status": {"errorCode": code, "additionalDetails": req.clone()},
                    "authenticationRequirement": req,
                    "authenticationDetails": steps,
                    "mfaDetail": {},
                }
            })
        })
}

/// A nested column of a Log Analytics row: the value itself, the value as a string of JSON,
/// or any string at all (most of which hold no JSON).
fn column(v: Value) -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(v.clone()),
        Just(Value::String(v.to_string())),
        ".{0,8}".prop_map(Value::from),
    ]
}

/// A Graph `signIn` with random values in the fields that matter.
fn graph_like() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just(json!(["interactiveUser"])),
            Just(json!(["nonInteractiveUser"])),
            Just(json!(["servicePrincipal"])),
            Just(json!(["unknownFutureValue"])),
            Just(json!([])),
            any_json(),
        ],
        any_json(),
        any_json(),
        any_json(),
        any_json(),
        prop::collection::vec(any_json(), 0..4),
    )
        .prop_map(|(types, id, code, time, interactive, steps)| {
            json!({
                "id": id,
                "createdDateTime": time,
                "signInEventTypes": types,
                "isInteractive": interactive,
                "status": {"errorCode": code},
                "authenticationDetails": steps,
                "mfaDetail": {},
            })
        })
}

/// A Log Analytics row with random values in the columns that matter, nested columns as JSON
/// or as strings.
fn row_like() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just("SigninLogs"),
            Just("AADNonInteractiveUserSignInLogs"),
            Just("ADFSSignInLogs"),
            Just("AADManagedIdentitySignInLogs"),
            Just("AuditLogs"),
        ],
        any_json(),
        any_json(),
        any_json(),
        any_json().prop_flat_map(|code| column(json!({"errorCode": code}))),
        prop::collection::vec(any_json(), 0..4).prop_flat_map(|s| column(Value::Array(s))),
        any_json().prop_flat_map(column),
    )
        .prop_map(|(table, id, code, time, status, steps, policies)| {
            json!({
                "Type": table,
                "TimeGenerated": time,
                "Id": id,
                "ResultType": code,
                "Status": status,
                "AuthenticationDetails": steps,
                "ConditionalAccessPolicies": policies,
                "AuthenticationRequirement": "singleFactorAuthentication",
            })
        })
}

/// A successful single-factor sign-in in each shape (emitted as it is), and the name each
/// shape gives its object fields: `status`, `deviceDetail`, `location`, `mfaDetail`.
fn good_sign_in(shape: u8) -> (Value, [&'static str; 4]) {
    match shape {
        0 => (
            json!({
                "category": "SignInLogs",
                "time": "2025-12-12T14:56:31Z",
                "properties": {"id": "d", "status": {"errorCode": 0}},
            }),
            ["status", "deviceDetail", "location", "mfaDetail"],
        ),
        1 => (
            json!({
                "id": "g",
                "createdDateTime": "2025-12-12T14:56:31Z",
                "isInteractive": true,
                "status": {"errorCode": 0},
            }),
            ["status", "deviceDetail", "location", "mfaDetail"],
        ),
        _ => (
            json!({
                "Type": "SigninLogs",
                "Id": "l",
                "TimeGenerated": "2025-12-12T14:56:31Z",
                "Status": {"errorCode": 0},
            }),
            ["Status", "DeviceDetail", "LocationDetails", "MfaDetail"],
        ),
    }
}

/// Emitted sign-ins and dead letters (code, error) of one body, checking the accounts.
fn outcome(body: &[u8]) -> (usize, Vec<(String, String)>) {
    let p = Processor::new(Classifier::new(ClassifierConfig::default()));
    let source = Source {
        kind: Text("file".into()),
        ..Source::default()
    };
    let (mut emitted, mut dead) = (0, Vec::new());
    let mut stats = Stats::default();
    p.process(body, &source, 0, &mut stats, &mut |o| match o {
        Output::SignIn(_) => emitted += 1,
        Output::DeadLetter(d) => dead.push((d.code.to_owned(), d.error)),
    });
    for _ in 0..emitted {
        stats.count_emitted(mfagap_core::Reason::SingleFactor);
    }
    stats.check().unwrap();
    (emitted, dead)
}

#[test]
fn the_good_sign_in_of_each_shape_is_emitted() {
    for shape in 0..3 {
        let (record, _) = good_sign_in(shape);
        assert_eq!(
            outcome(record.to_string().as_bytes()),
            (1, vec![]),
            "{record}"
        );
    }
}

#[test]
fn grant_controls_are_read_as_a_list_of_texts_and_nothing_else() {
    let body = |controls: &str| {
        format!(
            r#"{{"category":"SignInLogs","time":"2025-12-12T14:56:31Z","properties":{{"id":"d","status":{{"errorCode":0}},"appliedConditionalAccessPolicies":[{{"displayName":"p","result":"notApplied","enforcedGrantControls":{controls}}}]}}}}"#
        )
    };
    for good in ["[]", "null", r#"[null,"Mfa"]"#, r#"["Block",7,true]"#] {
        assert_eq!(outcome(body(good).as_bytes()), (1, vec![]), "{good}");
    }
    for bad in [r#""Mfa""#, r#"{"0":"Mfa"}"#, r#"[["Mfa"]]"#, r#"[{"a":1}]"#] {
        let (emitted, dead) = outcome(body(bad).as_bytes());
        assert_eq!(emitted, 0, "{bad}");
        assert_eq!(dead.len(), 1, "{bad}");
        assert_eq!(dead[0].0, "invalid_record", "{bad}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// A list where the input schema says object is refused in every shape, whatever the list
    /// holds (by position `[0]` would read as `errorCode: 0`, a success), in every body form,
    /// and for a row's column also as a string holding the list.
    #[test]
    fn a_list_where_an_object_belongs_is_a_dead_letter_in_every_shape(
        shape in 0..3u8,
        field in 0..4usize,
        items in prop::collection::vec(prop_oneof![Just(json!(0)), Just(json!("0")), any_json()], 0..4),
        form in 0..3u8,
        as_string in any::<bool>(),
    ) {
        let (mut record, names) = good_sign_in(shape);
        let list = if shape == 2 && as_string {
            Value::String(Value::Array(items).to_string())
        } else {
            Value::Array(items)
        };
        match record.get_mut("properties") {
            Some(props) => props[names[field]] = list,
            None => record[names[field]] = list,
        }
        let body = match form {
            0 => json!({ "records": [record] }),
            1 => json!([record]),
            _ => record,
        };
        let (emitted, dead) = outcome(body.to_string().as_bytes());
        prop_assert_eq!(emitted, 0, "{}", body);
        prop_assert_eq!(dead.len(), 1, "{}", body);
        prop_assert_eq!(dead[0].0.as_str(), "invalid_record", "{:?}", dead);
        prop_assert!(dead[0].1.contains("as an object"), "{:?}", dead);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let stats = process_all(&body);
        prop_assert_eq!(stats.messages, 1);
    }

    #[test]
    fn arbitrary_json_never_panics(v in any_json()) {
        process_all(v.to_string().as_bytes());
    }

    #[test]
    fn arbitrary_sign_in_shapes_never_panic(records in prop::collection::vec(sign_in_like(), 1..5), form in 0..3u8) {
        let body = match form {
            0 => json!({ "records": records }),
            1 => Value::Array(records),
            _ => records.into_iter().next().unwrap(),
        };
        let stats = process_all(body.to_string().as_bytes());
        prop_assert!(stats.records >= 1);
    }

    #[test]
    fn records_of_every_shape_are_all_accounted_for(
        records in prop::collection::vec(prop_oneof![sign_in_like(), graph_like(), row_like()], 1..6),
        form in 0..4u8,
    ) {
        let n = records.len() as u64;
        let (body, want) = match form {
            0 => (json!({ "records": records }), n),
            1 => (Value::Array(records), n),
            2 => (json!({ "@odata.context": "x", "value": records }), n),
            _ => (records.into_iter().next().unwrap(), 1),
        };
        let stats = process_all(body.to_string().as_bytes());
        prop_assert_eq!(stats.records, want);
        prop_assert_eq!(stats.by_shape.values().sum::<u64>(), want);
        prop_assert_eq!(stats.dead_letter_messages, 0);
    }

    #[test]
    fn truncated_messages_never_panic(cut in 0usize..4000, seed in 0u64..50) {
        let mut g = mfagap_generate::Generator::new(mfagap_generate::GeneratorConfig {
            seed,
            max_records: 3,
            ..Default::default()
        });
        let body = g.next_message().body;
        process_all(&body[..cut.min(body.len())]);
    }
}
