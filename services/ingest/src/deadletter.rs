//! Dead letters: the original bytes, why they could not be used, and where they came from.
//!
//! A dead letter carries the exact bytes Event Hubs delivered (the whole message, or the one
//! record that was bad) so it can be fixed and replayed; the reason and the source coordinates
//! travel as headers, so the payload stays byte-for-byte what arrived.

//!
//! A message body that could not be taken whole (over `--max-message-bytes`: `too_large`; a
//! file's document cut short or broken) is not decoded: its dead letter carries the body's
//! first bytes (at most 64 KiB, so that the dead-letter topic takes it) and, for `too_large`,
//! the whole size in the `messageBytes` header.

use mfagap_core::framing::{self, Problem};
use mfagap_core::{DeadLetter, Source};
use mfagap_runtime::kafka::OutRecord;

/// Builds the Kafka record of one dead letter.
pub(crate) fn record(d: &DeadLetter, source: &Source, topic: &str) -> OutRecord {
    let mut headers: Vec<(&'static str, String)> = vec![
        ("error", d.error.clone()),
        ("errorCode", d.code.to_owned()),
        ("sourceKind", source.kind.as_str().to_owned()),
    ];
    if let Some(i) = d.record {
        headers.push(("recordIndex", i.to_string()));
    }
    coordinates(&mut headers, source);
    OutRecord {
        topic: topic.to_owned(),
        kind: "dead_letter",
        key: None,
        payload: d.raw.to_vec(),
        headers,
    }
}

/// Builds the Kafka record of a message body that could not be taken whole.
pub(crate) fn framing(body: &[u8], problem: Problem, source: &Source, topic: &str) -> OutRecord {
    let mut headers: Vec<(&'static str, String)> = vec![
        ("error", problem.to_string()),
        ("errorCode", problem.code().to_owned()),
        ("sourceKind", source.kind.as_str().to_owned()),
    ];
    let mut kept = body.len();
    if let Problem::TooLarge { size, max } = problem {
        headers.push(("messageBytes", size.to_string()));
        kept = kept.min(framing::PREFIX_BYTES.min(max as usize));
    }
    coordinates(&mut headers, source);
    OutRecord {
        topic: topic.to_owned(),
        kind: "dead_letter",
        key: None,
        payload: body[..kept].to_vec(),
        headers,
    }
}

/// The headers that say where a dead letter came from.
fn coordinates(headers: &mut Vec<(&'static str, String)>, source: &Source) {
    let text = |t: &Option<mfagap_core::lenient::Text>| t.as_ref().map(|t| t.as_str().to_owned());
    let coordinates = [
        ("sourceTopic", text(&source.event_hub)),
        ("sourcePartition", text(&source.partition)),
        ("sourceOffset", text(&source.offset)),
        (
            "sourceSequenceNumber",
            source.sequence_number.map(|n| n.to_string()),
        ),
        (
            "sourceEnqueuedTime",
            source.enqueued_time.map(mfagap_core::timestamp::format),
        ),
        ("sourceFile", text(&source.file)),
        ("sourceLine", source.line.map(|n| n.to_string())),
    ];
    headers.extend(
        coordinates
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v))),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfagap_core::lenient::Text;

    #[test]
    fn a_dead_letter_keeps_the_bytes_and_names_its_origin() {
        let d = DeadLetter {
            raw: b"{\"records\":{}}",
            code: "records_not_list",
            error: "\"records\" is not a list: a JSON object".into(),
            record: None,
        };
        let source = Source {
            kind: Text("kafka".into()),
            event_hub: Some(Text("insights-logs-signinlogs".into())),
            partition: Some(Text("2".into())),
            offset: Some(Text("77".into())),
            ..Source::default()
        };
        let r = record(&d, &source, "entra.signins.deadletter");
        assert_eq!(r.payload, b"{\"records\":{}}");
        let h: std::collections::BTreeMap<_, _> = r.headers.into_iter().collect();
        assert_eq!(h["errorCode"], "records_not_list");
        assert_eq!(h["sourceTopic"], "insights-logs-signinlogs");
        assert_eq!(h["sourcePartition"], "2");
        assert_eq!(h["sourceOffset"], "77");
        assert!(!h.contains_key("sourceLine"));
    }

    #[test]
    fn a_body_too_large_keeps_its_first_bytes_and_gives_its_size() {
        let body = vec![b'x'; 100_000];
        let problem = framing::too_large(&body, 1000).unwrap();
        let source = Source {
            kind: Text("file".into()),
            file: Some(Text("big.json".into())),
            line: Some(3),
            offset: Some(Text("42".into())),
            ..Source::default()
        };
        let r = framing(&body, problem, &source, "dl");
        assert_eq!(
            r.payload.len(),
            1000,
            "no more than the largest size, nor 64 KiB"
        );
        let h: std::collections::BTreeMap<_, _> = r.headers.into_iter().collect();
        assert_eq!(h["errorCode"], "too_large");
        assert_eq!(h["messageBytes"], "100000");
        assert!(h["error"].contains("100000 bytes"), "{}", h["error"]);
        assert_eq!(
            (h["sourceFile"].as_str(), h["sourceLine"].as_str()),
            ("big.json", "3")
        );
        assert_eq!(h["sourceOffset"], "42");
        let big = vec![b'y'; 1 << 20];
        let r = framing(
            &big,
            framing::too_large(&big, 1000 << 10).unwrap_or(Problem::TooLarge {
                size: 1 << 20,
                max: 1000 << 10,
            }),
            &source,
            "dl",
        );
        assert_eq!(r.payload.len(), framing::PREFIX_BYTES);
        let r = framing(b"{\"a\":", Problem::Truncated, &source, "dl");
        assert_eq!(r.payload, b"{\"a\":");
        assert!(!r.headers.iter().any(|(k, _)| *k == "messageBytes"));
    }
}
