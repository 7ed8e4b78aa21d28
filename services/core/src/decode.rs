//! Message bodies to records: the envelope `{"records":[…]}`, a Graph page `{"value":[…]}`, a
//! bare array, or one record; each record a diagnostic record, a Graph `signIn` or a Log
//! Analytics row (`shape`).
//!
//! Two paths give the same answer. The fast path decodes the whole body in one pass into typed,
//! borrowed diagnostic records; it is taken for nearly every message of a diagnostic setting.
//! When it fails, when a record in it is malformed, or when the records are of another shape
//! (they have no `category`, so they never pass it), the slow path splits the body into raw
//! records first, tells each one's shape by its keys and decodes it on its own, so one bad
//! record becomes one dead letter carrying its own bytes, and the other fifty-nine records of
//! the message still flow.

use crate::category::Category;
use crate::input::RawRecord;
use crate::lenient::Text;
use crate::shape::{self, Detected, RowOutcome, Shape};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Why a whole message body is a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MessageError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error(
        "not an envelope: the body is a JSON {0}, not {{\"records\":[…]}}, an array or a record"
    )]
    NotEnvelope(&'static str),
    #[error("\"records\" is not a list: {0}")]
    RecordsNotList(String),
    #[error("\"value\" of a Graph page is not a list: {0}")]
    ValueNotList(String),
}

impl MessageError {
    /// A stable code for headers, metrics and dead-letter files.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            MessageError::NotJson(_) => "not_json",
            MessageError::NotEnvelope(_) => "not_envelope",
            MessageError::RecordsNotList(_) => "records_not_list",
            MessageError::ValueNotList(_) => "value_not_list",
        }
    }
}

/// Why one record is a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The record is a JSON string, number or list, not an object.
    #[error("record is not an object")]
    NotObject,
    /// No `category`: the rule cannot tell a sign-in from anything else.
    #[error("record has no category")]
    NoCategory,
    /// A sign-in category whose fields have shapes the input schema does not accept.
    #[error("invalid {category} record: {error}")]
    Invalid {
        /// The category as the record spells it.
        category: String,
        /// What the decoder found wrong.
        error: String,
    },
    /// A sign-in without `properties`: nothing to classify.
    #[error("{0} record without properties")]
    NoProperties(Category),
    /// A sign-in without `properties.id`: it could not be told from its repeats.
    #[error("{0} record without properties.id")]
    NoId(Category),
    /// Neither `properties.status.errorCode` nor `resultType`: success cannot be told, and the
    /// rule does not guess.
    #[error("{0} record with neither properties.status.errorCode nor resultType")]
    NoStatus(Category),
    /// Neither `properties.createdDateTime` nor `time`: the row would have no hour to go in.
    #[error("{0} record with neither properties.createdDateTime nor time")]
    NoTime(Category),
    /// A sign-in time in none of the forms Azure writes.
    #[error("{category} record: {error}")]
    BadTime {
        /// The record's sign-in category.
        category: Category,
        /// What is wrong with the time.
        error: crate::timestamp::TimestampError,
    },
    /// An object with none of the keys of a known shape: what it had instead.
    #[error(
        "record of no known shape (not a diagnostic record, a Graph signIn or a Log Analytics row): {0}"
    )]
    UnknownShape(String),
    /// A Graph `signIn` or a Log Analytics row whose category cannot be told.
    #[error("{shape} record without a category: {detail}")]
    Uncategorised {
        /// The shape the record was recognised as.
        shape: Shape,
        /// What it had instead.
        detail: String,
    },
}

impl RecordError {
    /// A stable code for headers, metrics and dead-letter files.
    pub fn code(&self) -> &'static str {
        match self {
            RecordError::NotObject => "not_object",
            RecordError::NoCategory => "no_category",
            RecordError::Invalid { .. } => "invalid_record",
            RecordError::NoProperties(_) => "no_properties",
            RecordError::NoId(_) => "no_id",
            RecordError::NoStatus(_) => "no_status",
            RecordError::NoTime(_) => "no_time",
            RecordError::BadTime { .. } => "bad_time",
            RecordError::UnknownShape(_) => "unknown_shape",
            RecordError::Uncategorised { .. } => "no_category",
        }
    }
}

/// One record of a message, decoded or not.
// Nearly every slot is a record: boxing it would cost an allocation per record to save
// space in the rare bad one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Slot<'a> {
    Record(RawRecord<'a>, Shape),
    Bad {
        index: usize,
        /// The record's own bytes, for the dead letter.
        raw: &'a [u8],
        error: RecordError,
        /// `None` when the record is not an object of any known shape.
        shape: Option<Shape>,
    },
}

/// The records of one message body: every one decoded in one pass (the fast path), or each
/// on its own (the slow path). Kept as the list each path built, so that a message's records
/// are not moved into a second list.
#[derive(Debug)]
pub(crate) enum Decoded<'a> {
    Fast(Vec<RawRecord<'a>>),
    Slow(Vec<Slot<'a>>),
}

impl<'a> Decoded<'a> {
    /// The records in order, whichever path read them.
    pub(crate) fn into_slots(self) -> impl Iterator<Item = Slot<'a>> {
        let (fast, slow) = match self {
            Decoded::Fast(records) => (Some(records), None),
            Decoded::Slow(slots) => (None, Some(slots)),
        };
        let fast = fast
            .into_iter()
            .flatten()
            .map(|r| Slot::Record(r, Shape::Diagnostic));
        fast.chain(slow.into_iter().flatten())
    }
}

/// Decodes one Event Hubs message body into its records.
pub(crate) fn decode(body: &[u8]) -> Result<Decoded<'_>, MessageError> {
    // UTF-8 is checked once for the whole body (a vectorised pass) so that the parser does
    // not check every string again on its own; the standard library says where it broke.
    let body = match simdutf8::basic::from_utf8(body) {
        Ok(text) => text,
        Err(_) => {
            let at = std::str::from_utf8(body).map_or_else(|e| e.valid_up_to(), str::len);
            return Err(MessageError::NotJson(format!("invalid UTF-8 at byte {at}")));
        }
    };
    if let Some(records) = fast(body) {
        return Ok(Decoded::Fast(records));
    }
    slow(body).map(Decoded::Slow)
}

/// The one-pass path: `None` means "take the slow path", never "bad input".
fn fast(body: &str) -> Option<Vec<RawRecord<'_>>> {
    let records = match first_byte(body.as_bytes())? {
        b'[' => serde_json::from_str::<Vec<RawRecord>>(body).ok()?,
        b'{' => {
            let mut top = serde_json::from_str::<RawRecord>(body).ok()?;
            match top.records.take() {
                Some(records) => records,
                None => vec![top],
            }
        }
        _ => return None,
    };
    records.iter().all(|r| check(r).is_ok()).then_some(records)
}

/// The shape a sign-in record must have before the rule can look at it: properties, an id, a
/// status that says whether it succeeded, and a readable time. Checked here rather than later so
/// that a bad record always takes the slow path and its dead letter carries its own bytes.
fn check(r: &RawRecord) -> Result<(), RecordError> {
    let Some(category) = r.category.as_ref() else {
        return Err(RecordError::NoCategory);
    };
    let Some(category) = Category::parse(category.as_str()) else {
        return Ok(()); // other categories are skipped, whatever their shape
    };
    let Some(props) = r.properties.as_ref() else {
        return Err(RecordError::NoProperties(category));
    };
    if props
        .id
        .as_ref()
        .is_none_or(|id| id.as_str().trim().is_empty())
    {
        return Err(RecordError::NoId(category));
    }
    let error_code = props.status.as_ref().and_then(|s| s.error_code?.value());
    if error_code.is_none() && r.result_type.and_then(|c| c.value()).is_none() {
        return Err(RecordError::NoStatus(category));
    }
    let time = props.created_date_time.as_ref().or(r.time.as_ref());
    let Some(time) = time else {
        return Err(RecordError::NoTime(category));
    };
    crate::timestamp::parse(time.as_str())
        .map(|_| ())
        .map_err(|error| RecordError::BadTime { category, error })
}

/// Only the category, for records whose typed decode failed.
#[derive(Deserialize)]
struct CategoryOnly<'a> {
    #[serde(borrow, default)]
    category: Option<Text<'a>>,
}

/// The keys that make an object a list of records: a diagnostic (or data export) envelope, or
/// a Graph page. A record never has them, so an object with neither is one record.
#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow, default)]
    records: Option<&'a RawValue>,
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
}

fn slow(body: &str) -> Result<Vec<Slot<'_>>, MessageError> {
    let whole: &RawValue =
        serde_json::from_str(body).map_err(|e| MessageError::NotJson(e.to_string()))?;
    let raws: Vec<&RawValue> = match first_byte(body.as_bytes()) {
        Some(b'[') => {
            serde_json::from_str(whole.get()).map_err(|e| MessageError::NotJson(e.to_string()))?
        }
        Some(b'{') => {
            let env: RawEnvelope = serde_json::from_str(whole.get())
                .map_err(|e| MessageError::NotJson(e.to_string()))?;
            match (env.records, env.value) {
                (Some(list), _) => serde_json::from_str(list.get()).map_err(|_| {
                    MessageError::RecordsNotList(format!("a JSON {}", kind_of(list.get())))
                })?,
                (None, Some(list)) => serde_json::from_str(list.get()).map_err(|_| {
                    MessageError::ValueNotList(format!("a JSON {}", kind_of(list.get())))
                })?,
                (None, None) => vec![whole],
            }
        }
        _ => return Err(MessageError::NotEnvelope(kind_of(whole.get()))),
    };
    Ok(raws
        .into_iter()
        .enumerate()
        .map(|(index, raw)| record(index, raw))
        .collect())
}

fn record(index: usize, raw: &RawValue) -> Slot<'_> {
    let text = raw.get();
    let bad = |error, shape| Slot::Bad {
        index,
        raw: text.as_bytes(),
        error,
        shape,
    };
    if first_byte(text.as_bytes()) != Some(b'{') {
        return bad(RecordError::NotObject, None);
    }
    let shape = match shape::detect(text) {
        Detected::Shape(shape) => shape,
        Detected::Unknown(seen) => return bad(RecordError::UnknownShape(seen), None),
    };
    let decoded = match shape {
        Shape::Diagnostic => return diagnostic(index, text),
        Shape::Graph => shape::graph(text),
        Shape::LogAnalytics => match shape::log_analytics(text) {
            Ok(RowOutcome::Record(r)) => Ok(r),
            Ok(RowOutcome::Other(category)) => {
                return Slot::Record(
                    RawRecord {
                        category: Some(category),
                        ..RawRecord::default()
                    },
                    shape,
                );
            }
            Err(e) => Err(e),
        },
    };
    match decoded.and_then(|r| check(&r).map(|()| r)) {
        Ok(r) => Slot::Record(r, shape),
        Err(e) => bad(e, Some(shape)),
    }
}

/// One record of the diagnostic shape, on its own.
fn diagnostic(index: usize, text: &str) -> Slot<'_> {
    let bad = |error| Slot::Bad {
        index,
        raw: text.as_bytes(),
        error,
        shape: Some(Shape::Diagnostic),
    };
    match serde_json::from_str::<RawRecord>(text) {
        Ok(mut r) => {
            r.records = None;
            match check(&r) {
                Ok(()) => Slot::Record(r, Shape::Diagnostic),
                Err(e) => bad(e),
            }
        }
        Err(error) => {
            let category = serde_json::from_str::<CategoryOnly>(text)
                .ok()
                .and_then(|c| c.category);
            match category {
                // A category outside the sign-ins is skipped whatever its shape.
                Some(c) if Category::parse(c.as_str()).is_none() => Slot::Record(
                    RawRecord {
                        category: Some(c),
                        ..RawRecord::default()
                    },
                    Shape::Diagnostic,
                ),
                Some(c) => bad(RecordError::Invalid {
                    category: c.as_str().to_owned(),
                    error: error.to_string(),
                }),
                None => bad(RecordError::NoCategory),
            }
        }
    }
}

fn first_byte(b: &[u8]) -> Option<u8> {
    b.iter().copied().find(|c| !c.is_ascii_whitespace())
}

fn kind_of(json: &str) -> &'static str {
    match first_byte(json.as_bytes()) {
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ => "number",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slots of a body, whichever path read it.
    fn decode(body: &[u8]) -> Result<Vec<Slot<'_>>, MessageError> {
        super::decode(body).map(|d| d.into_slots().collect())
    }

    const R1: &str = r#"{"category":"SignInLogs","time":"2025-12-12T14:56:31Z","resultType":"0","properties":{"id":"a1","status":{"errorCode":0}}}"#;
    const R2: &str = r#"{"category":"NonInteractiveUserSignInLogs","resultType":0,"properties":{"id":"a2","createdDateTime":"12/12/2025 3:03:58 PM"}}"#;

    fn ids(slots: &[Slot]) -> Vec<String> {
        slots
            .iter()
            .map(|s| match s {
                Slot::Record(r, _) => r
                    .properties
                    .as_ref()
                    .and_then(|p| p.id.as_ref())
                    .map_or("-".into(), |t| t.to_string()),
                Slot::Bad { error, .. } => format!("bad:{}", error.code()),
            })
            .collect()
    }

    #[test]
    fn envelope_array_and_single_record_are_all_accepted() {
        let env = format!(r#"{{"records":[{R1},{R2}]}}"#);
        assert_eq!(ids(&decode(env.as_bytes()).unwrap()), ["a1", "a2"]);
        let arr = format!("[{R1},{R2}]");
        assert_eq!(ids(&decode(arr.as_bytes()).unwrap()), ["a1", "a2"]);
        assert_eq!(ids(&decode(R1.as_bytes()).unwrap()), ["a1"]);
        assert!(decode(br#"{"records":[]}"#).unwrap().is_empty());
    }

    #[test]
    fn message_level_errors_are_named() {
        let e = |b: &[u8]| decode(b).unwrap_err();
        assert_eq!(e(b"not json").code(), "not_json");
        assert_eq!(e(br#"{"records":[{"#).code(), "not_json");
        assert_eq!(e(b"").code(), "not_json");
        assert_eq!(
            e(b"42").to_string(),
            "not an envelope: the body is a JSON number, not {\"records\":[…]}, an array or a record"
        );
        assert_eq!(e(b"\"x\"").code(), "not_envelope");
        assert_eq!(e(b"null").code(), "not_envelope");
        assert_eq!(e(br#"{"records":5}"#).code(), "records_not_list");
        assert_eq!(
            e(br#"{"records":{}}"#).to_string(),
            "\"records\" is not a list: a JSON object"
        );
        assert_eq!(e(b"{\"records\":[\"\xff\"]}").code(), "not_json");
    }

    #[test]
    fn one_bad_record_does_not_spoil_the_message() {
        let body = format!(
            r#"{{"records":[{R1},42,{{"category":"SignInLogs"}},{{"category":"SignInLogs","properties":{{"userId":"u"}}}},{R2}]}}"#
        );
        let slots = decode(body.as_bytes()).unwrap();
        assert_eq!(
            ids(&slots),
            [
                "a1",
                "bad:not_object",
                "bad:no_properties",
                "bad:no_id",
                "a2"
            ]
        );
        let Slot::Bad { raw, index, .. } = &slots[2] else {
            panic!()
        };
        assert_eq!(*index, 2);
        assert_eq!(*raw, br#"{"category":"SignInLogs"}"#);
    }

    #[test]
    fn a_wrongly_typed_field_is_a_dead_letter_naming_the_field() {
        let body =
            r#"[{"category":"SignInLogs","properties":{"id":"x","authenticationDetails":7}}]"#;
        let slots = decode(body.as_bytes()).unwrap();
        let Slot::Bad { error, .. } = &slots[0] else {
            panic!("{slots:?}")
        };
        assert_eq!(error.code(), "invalid_record");
        assert!(error.to_string().contains("SignInLogs"), "{error}");
    }

    /// The bad record of each case, its code, and the field its error names.
    fn refused(body: &str) -> (String, String) {
        let slots = decode(body.as_bytes()).unwrap();
        assert_eq!(slots.len(), 1, "{body}");
        let Slot::Bad { error, raw, .. } = &slots[0] else {
            panic!("accepted: {body}")
        };
        assert_eq!(*raw, body.as_bytes());
        (error.code().to_owned(), error.to_string())
    }

    #[test]
    fn a_status_given_as_a_list_is_a_dead_letter_not_a_success() {
        // Read by position, `[0]` would be `errorCode: 0`, and the sign-in would be emitted.
        let body = r#"{"category":"SignInLogs","time":"2025-12-12T14:56:31Z","properties":{"id":"x","status":[0]}}"#;
        let (code, error) = refused(body);
        assert_eq!(code, "invalid_record");
        assert!(error.starts_with("invalid SignInLogs record"), "{error}");
        assert!(error.contains("`status` as an object"), "{error}");
        let with_result_type = body.replace(r#""time""#, r#""resultType":"0","time""#);
        assert_eq!(refused(&with_result_type).0, "invalid_record");
    }

    #[test]
    fn every_object_field_given_as_a_list_is_a_dead_letter_naming_the_field() {
        for (field, value, named) in [
            ("status", "[0,null,null]", "`status`"),
            ("status", "[]", "`status`"),
            (
                "deviceDetail",
                r#"["Windows",null,true,true]"#,
                "`deviceDetail`",
            ),
            ("location", r#"["Paris"]"#, "`location`"),
            ("mfaDetail", r#"["PhoneAppOTP"]"#, "`mfaDetail`"),
            (
                "appliedConditionalAccessPolicies",
                r#"[["Require MFA","notApplied",["Mfa"]]]"#,
                "each of `appliedConditionalAccessPolicies`",
            ),
            (
                "authenticationDetails",
                r#"[["FIDO2 security key",true]]"#,
                "each of `authenticationDetails`",
            ),
            (
                "authenticationRequirementPolicies",
                r#"[["user"]]"#,
                "each of `authenticationRequirementPolicies`",
            ),
        ] {
            let body = format!(
                r#"{{"category":"SignInLogs","time":"2025-12-12T14:56:31Z","resultType":"0","properties":{{"id":"x","{field}":{value}}}}}"#
            );
            let (code, error) = refused(&body);
            assert_eq!(code, "invalid_record", "{field}");
            assert!(error.contains(&format!("{named} as an object")), "{error}");
        }
    }

    #[test]
    fn properties_given_as_a_list_is_a_dead_letter() {
        let body = r#"{"category":"SignInLogs","time":"2025-12-12T14:56:31Z","resultType":"0","properties":["x",null]}"#;
        let (code, error) = refused(body);
        assert_eq!(code, "invalid_record");
        assert!(error.contains("`properties` as an object"), "{error}");
    }

    #[test]
    fn a_record_given_as_a_list_is_not_an_object_even_in_a_valid_envelope() {
        // By position this list would fill `records`, `time`, `category`, … of a record.
        let body = r#"{"records":[[null,"2025-12-12T14:56:31Z","SignInLogs","t","0",null,null,{"id":"x","status":{"errorCode":0}}]]}"#;
        let slots = decode(body.as_bytes()).unwrap();
        assert_eq!(ids(&slots), ["bad:not_object"]);
    }

    #[test]
    fn a_graph_status_given_as_a_list_is_a_dead_letter() {
        let body = r#"{"id":"g","createdDateTime":"2025-12-12T14:56:31Z","isInteractive":true,"status":[0]}"#;
        let (code, error) = refused(body);
        assert_eq!(code, "invalid_record");
        assert!(error.starts_with("invalid SignInLogs record"), "{error}");
        assert!(error.contains("`status` as an object"), "{error}");
    }

    #[test]
    fn a_row_status_given_as_a_list_or_as_a_string_holding_one_is_a_dead_letter() {
        for status in [r#"[0]"#, r#""[0]""#, r#"[{"errorCode":0}]"#] {
            let body = format!(
                r#"{{"Type":"SigninLogs","Id":"l","TimeGenerated":"2025-12-12T14:56:41Z","Status":{status}}}"#
            );
            let (code, error) = refused(&body);
            assert_eq!(code, "invalid_record", "{status}");
            assert!(error.contains("`status` as an object"), "{error}");
        }
        let body = r#"{"Type":"SigninLogs","Id":"l","TimeGenerated":"2025-12-12T14:56:41Z","ResultType":"0","AuthenticationDetails":"[[\"FIDO2 security key\",true]]"}"#;
        let (code, error) = refused(body);
        assert_eq!(code, "invalid_record");
        assert!(error.contains("each of `authenticationDetails`"), "{error}");
    }

    #[test]
    fn other_categories_pass_whatever_their_shape() {
        let body = r#"[{"category":"AuditLogs","properties":{"id":[1,2],"status":"weird"}},{"category":"AuditLogs"}]"#;
        let slots = decode(body.as_bytes()).unwrap();
        assert_eq!(slots.len(), 2);
        for s in &slots {
            let Slot::Record(r, _) = s else {
                panic!("{s:?}")
            };
            assert_eq!(r.category.as_ref().unwrap().as_str(), "AuditLogs");
        }
    }

    #[test]
    fn status_and_time_are_checked_before_the_rule_sees_the_record() {
        let body = r#"[{"category":"SignInLogs","properties":{"id":"x"},"time":"2025-12-12T14:56:31Z"},
            {"category":"SignInLogs","resultType":"0","properties":{"id":"y"}},
            {"category":"SignInLogs","resultType":"0","time":"yesterday","properties":{"id":"z"}}]"#;
        let slots = decode(body.as_bytes()).unwrap();
        assert_eq!(
            ids(&slots),
            ["bad:no_status", "bad:no_time", "bad:bad_time"]
        );
    }

    #[test]
    fn a_record_without_category_is_a_dead_letter() {
        let slots = decode(br#"[{"properties":{"id":"x"}}]"#).unwrap();
        assert_eq!(ids(&slots), ["bad:no_category"]);
    }

    #[test]
    fn escapes_and_unicode_decode_to_the_same_text() {
        let body = r#"{"category":"SignInLogs","time":"2025-12-12T14:56:31Z","resultType":0,"properties":{"id":"i","userDisplayName":"Zo\u00eb \"Z\" \u674e\u96f7","userAgent":"Mozilla\/5.0"}}"#;
        let slots = decode(body.as_bytes()).unwrap();
        let Slot::Record(r, _) = &slots[0] else {
            panic!()
        };
        let p = r.properties.as_ref().unwrap();
        assert_eq!(
            p.user_display_name.as_ref().unwrap().as_str(),
            "Zoë \"Z\" 李雷"
        );
        assert_eq!(p.user_agent.as_ref().unwrap().as_str(), "Mozilla/5.0");
    }
    /// One successful sign-in, as Graph v1.0 lists it.
    const G1: &str = r#"{"id":"g1","createdDateTime":"2025-12-12T14:56:31Z","isInteractive":true,"status":{"errorCode":0,"failureReason":null,"additionalDetails":null},"userPrincipalName":"a@contoso.com"}"#;
    /// The same as beta, with its category named.
    const G2: &str = r#"{"id":"g2","createdDateTime":"2025-12-12T14:56:32Z","signInEventTypes":["nonInteractiveUser"],"isInteractive":false,"status":{"errorCode":0},"authenticationDetails":[{"authenticationMethod":"Password","succeeded":true}]}"#;
    /// A `SigninLogs` row, its dynamic columns as JSON.
    const L1: &str = r#"{"TenantId":"ws","Type":"SigninLogs","TimeGenerated":"2025-12-12T14:56:40Z","CreatedDateTime":"2025-12-12T14:56:33Z","Id":"l1","ResultType":"0","Status":{"errorCode":0},"AuthenticationDetails":"[{\"authenticationMethod\":\"Password\",\"succeeded\":true}]"}"#;
    /// An `AADNonInteractiveUserSignInLogs` row, its dynamic columns as JSON strings.
    const L2: &str = r#"{"Type":"AADNonInteractiveUserSignInLogs","TimeGenerated":"2025-12-12T14:56:41Z","Id":"l2","ResultType":"0","Status":"{\"errorCode\":0,\"additionalDetails\":\"MFA requirement satisfied by claim in the token\"}","DeviceDetail":"{\"operatingSystem\":\"Windows10\"}","LocationDetails":"","MfaDetail":"{}","ConditionalAccessPolicies":"[]"}"#;

    fn shapes(slots: &[Slot]) -> Vec<&'static str> {
        slots
            .iter()
            .map(|s| match s {
                Slot::Record(_, shape) => shape.as_str(),
                Slot::Bad { shape, .. } => shape.map_or("unknown", |s| s.as_str()),
            })
            .collect()
    }

    fn category(slot: &Slot) -> String {
        let Slot::Record(r, _) = slot else {
            panic!("{slot:?}")
        };
        r.category.as_ref().unwrap().to_string()
    }

    #[test]
    fn graph_sign_ins_alone_in_an_array_or_in_a_page_are_accepted() {
        for body in [
            format!("[{G1},{G2}]"),
            format!(
                r#"{{"@odata.context":"https://graph.microsoft.com/beta/$metadata#auditLogs/signIns","value":[{G1},{G2}],"@odata.nextLink":"https://graph.microsoft.com/beta/auditLogs/signIns?$skiptoken=x"}}"#
            ),
            format!(r#"{{"value":[{G1},{G2}]}}"#),
        ] {
            let slots = decode(body.as_bytes()).unwrap();
            assert_eq!(ids(&slots), ["g1", "g2"], "{body}");
            assert_eq!(shapes(&slots), ["graph", "graph"]);
            assert_eq!(category(&slots[0]), "SignInLogs");
            assert_eq!(category(&slots[1]), "NonInteractiveUserSignInLogs");
        }
        let slots = decode(G1.as_bytes()).unwrap();
        assert_eq!(ids(&slots), ["g1"]);
        assert!(
            decode(br#"{"@odata.context":"x","value":[]}"#)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn log_analytics_rows_alone_in_an_array_or_in_a_data_export_envelope_are_accepted() {
        for body in [
            format!("[{L1},{L2}]"),
            format!(r#"{{"records":[{L1},{L2}]}}"#),
        ] {
            let slots = decode(body.as_bytes()).unwrap();
            assert_eq!(ids(&slots), ["l1", "l2"], "{body}");
            assert_eq!(shapes(&slots), ["log_analytics", "log_analytics"]);
            assert_eq!(category(&slots[0]), "SignInLogs");
            assert_eq!(category(&slots[1]), "NonInteractiveUserSignInLogs");
        }
        let slots = decode(L2.as_bytes()).unwrap();
        let Slot::Record(r, _) = &slots[0] else {
            panic!()
        };
        let p = r.properties.as_ref().unwrap();
        // Every column given as a string of JSON reads as the JSON itself.
        let status = p.status.as_ref().unwrap();
        assert_eq!(status.error_code.unwrap().value(), Some(0));
        assert_eq!(
            status.additional_details.as_ref().unwrap().as_str(),
            "MFA requirement satisfied by claim in the token"
        );
        let os = p.device_detail.as_ref().unwrap().operating_system.as_ref();
        assert_eq!(os.unwrap().as_str(), "Windows10");
        assert!(p.location.is_none(), "an empty string column is absent");
        assert_eq!(
            p.applied_conditional_access_policies
                .as_ref()
                .unwrap()
                .len(),
            0
        );
        assert_eq!(r.time.as_ref().unwrap().as_str(), "2025-12-12T14:56:41Z");
    }

    #[test]
    fn one_message_may_mix_shapes_and_each_record_is_told_apart() {
        let body = format!(r#"{{"records":[{R1},{G1},{L2},{{"foo":1}},7]}}"#);
        let slots = decode(body.as_bytes()).unwrap();
        assert_eq!(
            ids(&slots),
            ["a1", "g1", "l2", "bad:unknown_shape", "bad:not_object"]
        );
        assert_eq!(
            shapes(&slots),
            ["diagnostic", "graph", "log_analytics", "unknown", "unknown"]
        );
    }

    #[test]
    fn an_object_of_no_known_shape_is_a_dead_letter_naming_its_keys() {
        let slots =
            decode(br#"{"userPrincipalName":"a@contoso.com","status":{"errorCode":0}}"#).unwrap();
        let Slot::Bad { error, shape, .. } = &slots[0] else {
            panic!("{slots:?}")
        };
        assert_eq!(error.code(), "unknown_shape");
        assert_eq!(*shape, None);
        let text = error.to_string();
        assert!(
            text.contains(r#"keys "userPrincipalName", "status""#),
            "{text}"
        );
        let slots = decode(b"{}").unwrap();
        assert_eq!(ids(&slots), ["bad:unknown_shape"]);
    }

    #[test]
    fn a_graph_page_whose_value_is_not_a_list_is_a_message_dead_letter() {
        let e = decode(br#"{"@odata.context":"x","value":{"id":"g"}}"#).unwrap_err();
        assert_eq!(e.code(), "value_not_list");
        assert_eq!(
            e.to_string(),
            "\"value\" of a Graph page is not a list: a JSON object"
        );
    }

    #[test]
    fn a_string_column_that_holds_no_json_is_a_dead_letter_not_a_panic() {
        for column in [
            r#""Status":"{\"errorCode\":0""#,
            r#""AuthenticationDetails":"not json""#,
            r#""DeviceDetail":"{} trailing""#,
            r#""ConditionalAccessPolicies":"{\"a\":1}""#,
        ] {
            let body = format!(
                r#"{{"Type":"SigninLogs","Id":"x","ResultType":0,"TimeGenerated":"2025-12-12T14:56:41Z",{column}}}"#
            );
            let slots = decode(body.as_bytes()).unwrap();
            let Slot::Bad {
                error, shape, raw, ..
            } = &slots[0]
            else {
                panic!("{column}: {slots:?}")
            };
            assert_eq!(error.code(), "invalid_record", "{column}");
            assert_eq!(*shape, Some(Shape::LogAnalytics));
            assert!(error.to_string().contains("SignInLogs"), "{error}");
            assert_eq!(*raw, body.as_bytes());
        }
    }

    #[test]
    fn rows_of_other_tables_are_skipped_whatever_their_columns() {
        let body = r#"[{"Type":"AuditLogs","ResultType":"success","Id":"x","TimeGenerated":"2025-12-12T14:56:41Z"},
            {"Type":"AuditLogs","Status":"not json"}]"#;
        let slots = decode(body.as_bytes()).unwrap();
        assert_eq!(slots.len(), 2);
        for s in &slots {
            assert_eq!(category(s), "AuditLogs");
        }
    }

    #[test]
    fn the_checks_of_a_sign_in_apply_to_every_shape() {
        let body = r#"[{"Type":"SigninLogs","TimeGenerated":"2025-12-12T14:56:41Z","ResultType":"0"},
            {"Type":"SigninLogs","Id":"x","TimeGenerated":"2025-12-12T14:56:41Z"},
            {"Type":"SigninLogs","Id":"x","ResultType":"0"},
            {"TimeGenerated":"2025-12-12T14:56:41Z","Id":"x","ResultType":"0"},
            {"id":"","createdDateTime":"2025-12-12T14:56:41Z","isInteractive":true,"status":{"errorCode":0}},
            {"id":"x","createdDateTime":"2025-12-12T14:56:41Z","isInteractive":true},
            {"id":"x","createdDateTime":"last week","isInteractive":true,"status":{"errorCode":0}},
            {"id":"x","createdDateTime":"2025-12-12T14:56:41Z","status":{"errorCode":0}},
            {"id":"x","createdDateTime":"2025-12-12T14:56:41Z","isInteractive":true,"status":{"errorCode":"zero"}}]"#;
        let slots = decode(body.as_bytes()).unwrap();
        assert_eq!(
            ids(&slots),
            [
                "bad:no_id",
                "bad:no_status",
                "bad:no_time",
                "bad:no_category",
                "bad:no_id",
                "bad:no_status",
                "bad:bad_time",
                "bad:no_category",
                "bad:invalid_record",
            ]
        );
        let Slot::Bad { error, .. } = &slots[8] else {
            panic!()
        };
        assert!(
            error.to_string().starts_with("invalid SignInLogs record"),
            "{error}"
        );
    }
}
