//! Dead letters: the original bytes, why they could not be used, and where they came from.
//!
//! A dead letter carries the exact bytes Event Hubs delivered (the whole message, or the one
//! record that was bad) so it can be fixed and replayed; the reason and the source coordinates
//! travel as headers, so the payload stays byte-for-byte what arrived.

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
    OutRecord {
        topic: topic.to_owned(),
        kind: "dead_letter",
        key: None,
        payload: d.raw.to_vec(),
        headers,
    }
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
}
