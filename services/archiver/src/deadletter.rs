//! Values on the topic that are not output records: why, and what goes to the dead-letter topic.
//!
//! The archiver never stops a partition for a bad value and never drops one silently: the
//! original bytes and key go to its dead-letter topic with the reason and the Kafka coordinates
//! they came from, and the offset counts as read, so the partition moves on.

use mfagap_core::SignIn;
use mfagap_core::record::{READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION};
use mfagap_runtime::kafka::OutRecord;

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// `empty`, `not_json`, `not_a_record`, `schema_version` or `format`.
    pub reason: &'static str,
    pub detail: String,
}

/// Reads a Kafka value as an output record, or says why it is not one: [`check`], then
/// [`parse_record`] (the archiver's loop decodes straight into columns instead, and parses
/// this way only what those refuse).
#[cfg(test)]
pub(crate) fn parse<'a>(
    payload: Option<&'a [u8]>,
    schema_version: Option<&[u8]>,
    format: Option<&[u8]>,
) -> Result<SignIn<'a>, Refusal> {
    parse_record(check(payload, schema_version, format)?)
}

/// The text of a Kafka value that may be an output record, or why it cannot be one.
///
/// `schema_version` and `format` are the value's headers: a native record of any version this
/// build reads is taken (a version 1 record reads with the evidence fields absent); an OCSF or
/// ECS event on the archiver's topic (an ingest output pointed at the wrong topic) is refused
/// by name rather than as a broken record.
pub(crate) fn check<'a>(
    payload: Option<&'a [u8]>,
    schema_version: Option<&[u8]>,
    format: Option<&[u8]>,
) -> Result<&'a str, Refusal> {
    if let Some(f) = format
        && f != b"native"
    {
        return Err(Refusal {
            reason: "format",
            detail: format!(
                "format {:?}: the archiver reads mfagap's native record only",
                String::from_utf8_lossy(f)
            ),
        });
    }
    if let Some(v) = schema_version
        && !READABLE_SCHEMA_VERSIONS.iter().any(|r| r.as_bytes() == v)
    {
        return Err(Refusal {
            reason: "schema_version",
            detail: format!(
                "schemaVersion {:?}, this archiver reads {} (writes {SCHEMA_VERSION})",
                String::from_utf8_lossy(v),
                READABLE_SCHEMA_VERSIONS.join(", ")
            ),
        });
    }
    let Some(bytes) = payload.filter(|p| !p.is_empty()) else {
        return Err(Refusal {
            reason: "empty",
            detail: "the value is empty".into(),
        });
    };
    // One vectorised UTF-8 check of the whole value, instead of one per string in the parser.
    simdutf8::basic::from_utf8(bytes).map_err(|_| Refusal {
        reason: "not_json",
        detail: "the value is not UTF-8".into(),
    })
}

/// Reads a value's text as the core's output record (the reference of what is one), or says
/// why it is not one.
pub(crate) fn parse_record(text: &str) -> Result<SignIn<'_>, Refusal> {
    serde_json::from_str(text).map_err(|e| Refusal {
        reason: match e.classify() {
            serde_json::error::Category::Data => "not_a_record",
            _ => "not_json",
        },
        detail: e.to_string(),
    })
}

/// The dead letter of a refused value.
pub(crate) fn record(
    topic: &str,
    refusal: &Refusal,
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    from: (&str, i32, i64),
) -> OutRecord {
    OutRecord {
        topic: topic.to_owned(),
        kind: "dead_letter",
        key: key.map(<[u8]>::to_vec),
        payload: payload.unwrap_or_default().to_vec(),
        headers: vec![
            ("reason", refusal.reason.to_owned()),
            ("error", refusal.detail.clone()),
            ("sourceTopic", from.0.to_owned()),
            ("sourcePartition", from.1.to_string()),
            ("sourceOffset", from.2.to_string()),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Vec<u8> {
        let mut g = mfagap_generate::Generator::new(Default::default());
        let p = mfagap_core::Processor::default();
        let mut stats = mfagap_core::Stats::default();
        loop {
            let body = g.next_message().body;
            let mut out = None;
            p.process(&body, &Default::default(), 0, &mut stats, &mut |o| {
                if let mfagap_core::Output::SignIn(s) = o {
                    out.get_or_insert_with(|| serde_json::to_vec(&s).unwrap());
                }
            });
            if let Some(v) = out {
                return v;
            }
        }
    }

    #[test]
    fn a_record_the_ingest_service_wrote_is_accepted() {
        let v = valid();
        let r = parse(Some(&v), Some(b"2"), Some(b"native")).unwrap();
        assert!(r.login_succeeded);
        assert!(
            parse(Some(&v), None, None).is_ok(),
            "the headers are optional"
        );
        assert!(
            parse(Some(&v), Some(b"1"), None).is_ok(),
            "version 1 is still read"
        );
    }

    #[test]
    fn each_kind_of_bad_value_has_its_reason() {
        let reason = |p: Option<&[u8]>| parse(p, None, None).unwrap_err().reason;
        assert_eq!(reason(None), "empty");
        assert_eq!(reason(Some(b"")), "empty");
        assert_eq!(reason(Some(b"{\"id\":")), "not_json");
        assert_eq!(reason(Some(&[0xff, 0xfe])), "not_json");
        assert_eq!(reason(Some(b"{\"id\":\"x\"}")), "not_a_record");
        assert_eq!(reason(Some(b"[1,2]")), "not_a_record");
        let mut v: serde_json::Value = serde_json::from_slice(&valid()).unwrap();
        v["createdDateTime"] = "yesterday".into();
        assert_eq!(
            reason(Some(&serde_json::to_vec(&v).unwrap())),
            "not_a_record"
        );
        v["createdDateTime"] = "2025-11-14T01:48:53Z".into();
        v["reason"] = "because".into();
        assert_eq!(
            reason(Some(&serde_json::to_vec(&v).unwrap())),
            "not_a_record"
        );
        let err = parse(Some(&valid()), Some(b"3"), None).unwrap_err();
        assert_eq!(err.reason, "schema_version");
        let err = parse(Some(&valid()), Some(b"2"), Some(b"ocsf")).unwrap_err();
        assert_eq!(
            err.reason, "format",
            "an OCSF event on the archiver's topic"
        );
    }

    #[test]
    fn a_dead_letter_keeps_the_bytes_and_says_where_they_came_from() {
        let refusal = parse(Some(b"nope"), None, None).unwrap_err();
        let d = record("dl", &refusal, Some(b"k"), Some(b"nope"), ("t", 3, 42));
        assert_eq!(d.payload, b"nope");
        assert_eq!(d.key.as_deref(), Some(&b"k"[..]));
        assert!(d.headers.contains(&("sourceOffset", "42".into())));
        assert!(d.headers.contains(&("reason", "not_json".into())));
    }
}
