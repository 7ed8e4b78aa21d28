//! The columns against the reference: every value read as the core's `SignIn` and appended by
//! `mfagap_core::batch::BatchBuilder` (the archiver's path before it decoded into columns),
//! compared with what `writer::append_value` publishes, through Parquet and back.

use super::*;
use crate::deadletter::{self, Refusal};
use crate::layout::{self, Hour, Range};
use crate::writer::{self, FileSettings, HourBuffer};
use mfagap_core::SignIn;
use mfagap_core::batch::BatchBuilder;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Generated records, as the ingest service writes them.
fn generated(n: usize, seed: u64) -> Vec<String> {
    mfagap_testkit::output_records(n, seed, "g")
        .into_iter()
        .map(|v| String::from_utf8(v).unwrap())
        .collect()
}

/// A generated record with every list and struct filled in.
fn full() -> Value {
    generated(2000, 3)
        .iter()
        .map(|s| serde_json::from_str::<Value>(s).unwrap())
        .find(|v| {
            ["policies", "authenticationMethods", "authenticationSteps"]
                .iter()
                .all(|k| !v[k].as_array().unwrap().is_empty())
                && v["location"].is_object()
                && v["deviceDetail"].is_object()
        })
        .expect("the generator fills every list of some record")
}

fn without(v: &Value, key: &str) -> Value {
    let mut v = v.clone();
    v.as_object_mut().unwrap().shift_remove(key);
    v
}

/// The edges: unicode and escapes, nulls, absent optional fields, version 1 records,
/// instants in every form the core reads, fields out of order, and values that are not
/// records or not in the record's own form (numbers for text, structs as arrays, duplicated
/// fields…).
fn edges() -> Vec<String> {
    let base = full();
    let mut out: Vec<Value> = Vec::new();
    let mut v = base.clone();
    v["id"] = "edge-unicode".into();
    v["userDisplayName"] = "Zoë \"Ω\" d'Arc, 東京 🚀\n\t\\ \u{1}".into();
    v["policies"] = json!(["Require MFA, admins", "Block \"legacy\"", ""]);
    out.push(v);
    let mut v = base.clone();
    v["id"] = "edge-nulls".into();
    for k in [
        "tenantId",
        "userId",
        "userAgent",
        "isInteractive",
        "location",
        "deviceDetail",
        "failureReason",
        "sessionId",
    ] {
        v[k] = Value::Null;
    }
    v["policies"] = json!([]);
    v["authenticationMethods"] = json!([]);
    v["location"] = json!({"city": null, "state": "Île-de-France"});
    v["source"] = json!({"kind": "file", "eventHub": null, "partition": null, "offset": null,
        "sequenceNumber": null, "enqueuedTime": null, "file": "/var/log/x.json", "line": 7});
    out.push(v);
    // Version 1: the evidence fields absent, deviceDetail with four fields.
    let mut v = base.clone();
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
        v = without(&v, k);
    }
    v["id"] = "edge-v1".into();
    for k in ["deviceId", "displayName", "trustType"] {
        v["deviceDetail"].as_object_mut().unwrap().shift_remove(k);
    }
    out.push(v);
    let mut v = base.clone();
    v["id"] = "edge-instants".into();
    v["createdDateTime"] = "2025-11-14T01:30:00.1234567+02:00".into();
    v["ingestedAt"] = "2025-11-14T01:30:00Z".into();
    v["source"]["enqueuedTime"] = "11/14/2025 1:48:53 AM".into();
    out.push(v);
    // Fields in reverse order, and fields the record does not have.
    let mut v = serde_json::Map::new();
    for (k, x) in base.as_object().unwrap().iter().rev() {
        v.insert(k.clone(), x.clone());
    }
    v.insert("id".into(), "edge-reversed".into());
    v.insert(
        "extra".into(),
        json!({"createdDateTime": "2001-01-01T00:00:00Z", "x": [1, {}]}),
    );
    out.push(Value::Object(v));
    // Every field, in turn: absent, null, a number, a boolean, text, an object, a list.
    let fields: Vec<String> = base.as_object().unwrap().keys().cloned().collect();
    for (i, k) in fields.iter().enumerate() {
        let mut variants = vec![without(&base, k)];
        for x in [
            Value::Null,
            json!(12),
            json!(-1.5e300),
            json!(true),
            json!("text"),
            json!("2025-12-01T10:00:00Z"),
            json!({}),
            json!([]),
            json!(["a"]),
            json!([1]),
            json!([null]),
            json!([{}]),
        ] {
            let mut v = base.clone();
            v[k.as_str()] = x;
            variants.push(v);
        }
        for (j, mut v) in variants.into_iter().enumerate() {
            if k != "id" {
                v["id"] = format!("edge-{i}-{j}").into();
            }
            out.push(v);
        }
    }
    // The same inside each struct and each list's items.
    for (k, inner) in [
        ("location", base["location"].clone()),
        ("deviceDetail", base["deviceDetail"].clone()),
        ("source", base["source"].clone()),
        (
            "authenticationSteps",
            base["authenticationSteps"][0].clone(),
        ),
        (
            "mfaPoliciesNotApplied",
            json!({"displayName": "p", "result": "notApplied"}),
        ),
    ] {
        let list = base[k].is_array();
        for f in inner.as_object().unwrap().keys() {
            for x in [
                None,
                Some(Value::Null),
                Some(json!(3)),
                Some(json!("t")),
                Some(json!(false)),
            ] {
                let mut item = inner.clone();
                match x {
                    None => {
                        item.as_object_mut().unwrap().shift_remove(f);
                    }
                    Some(x) => item[f.as_str()] = x,
                }
                let mut v = base.clone();
                v["id"] = format!("edge-{k}-{f}").into();
                v[k] = if list { json!([item, inner]) } else { item };
                out.push(v);
            }
        }
        // A struct written as a list of its values: serde's derive takes it.
        let mut v = base.clone();
        v["id"] = format!("edge-{k}-as-list").into();
        let values: Vec<Value> = inner.as_object().unwrap().values().cloned().collect();
        v[k] = if list { json!([values]) } else { json!(values) };
        out.push(v);
    }
    for reason in [
        "legacy_protocol",
        "mfa_skipped",
        "single_factor",
        "because",
        "",
    ] {
        let mut v = base.clone();
        v["id"] = format!("edge-reason-{reason}").into();
        v["reason"] = reason.into();
        out.push(v);
    }
    for n in [
        json!(-1),
        json!(1.0),
        json!(u64::MAX),
        json!(i64::MAX),
        json!("5"),
    ] {
        let mut v = base.clone();
        v["id"] = "edge-numbers".into();
        v["source"]["sequenceNumber"] = n.clone();
        v["source"]["line"] = n;
        out.push(v);
    }
    let mut texts: Vec<String> = out.iter().map(|v| v.to_string()).collect();
    // Text that no serializer writes.
    let one = base.to_string();
    texts.push(one.replacen("{", "{\"id\":\"first\",", 1)); // a duplicated field
    texts.push(one.replacen("{", "{\"extra\":1,\"extra\":2,", 1)); // an unknown one, twice
    texts.push(serde_json::to_string_pretty(&base).unwrap());
    texts.push(one.replace("\"userPrincipalName\"", "\"user\\u0050rincipalName\""));
    texts.push(one.replace("\"createdDateTime\":\"", "\"createdDateTime\" : \""));
    texts.push(format!("{one} "));
    texts.push(format!("{one} x"));
    texts.push(format!("[{one}]"));
    texts.push(one[..one.len() / 2].to_owned());
    texts.push("{}".into());
    texts.push("null".into());
    texts.push("\"text\"".into());
    texts.push(String::new());
    texts
}

/// Refused values, by position.
type Refused = Vec<(usize, Refusal)>;

/// What the archiver read before: `SignIn`, rows by `BatchBuilder`, per hour; and the
/// refusals.
fn reference(values: &[String]) -> (BTreeMap<Hour, RecordBatch>, Refused) {
    let mut hours: BTreeMap<Hour, BatchBuilder> = BTreeMap::new();
    let mut refused = Vec::new();
    for (i, v) in values.iter().enumerate() {
        match deadletter::parse_record(v) {
            Ok(r) => hours
                .entry(layout::hour_of(r.created_date_time))
                .or_default()
                .append(&r),
            Err(e) => refused.push((i, e)),
        }
    }
    let batches = hours
        .into_iter()
        .map(|(h, mut b)| (h, b.finish().unwrap()))
        .collect();
    (batches, refused)
}

/// What the archiver publishes now, read back from the Parquet files; the offsets of each.
fn archived(values: &[String]) -> (BTreeMap<Hour, (RecordBatch, Range)>, Refused) {
    let mut files: BTreeMap<Hour, HourBuffer> = BTreeMap::new();
    let mut refused = Vec::new();
    for (i, v) in values.iter().enumerate() {
        if let Err(e) = writer::append_value(&mut files, v, i as i64, v.len()).unwrap() {
            refused.push((i, e));
        }
    }
    let settings = FileSettings::new(1, 122_880).unwrap();
    let batches = files
        .into_iter()
        .map(|(h, f)| {
            let file = f.encode(&settings).unwrap();
            let mut read = ParquetRecordBatchReaderBuilder::try_new(file.data)
                .unwrap()
                .with_batch_size(1 << 20)
                .build()
                .unwrap();
            let batch = read.next().unwrap().unwrap();
            assert!(read.next().is_none(), "one batch");
            (h, (batch, file.offsets))
        })
        .collect();
    (batches, refused)
}

fn assert_same(values: &[String]) -> usize {
    let (want, want_refused) = reference(values);
    let (got, got_refused) = archived(values);
    for (g, w) in got_refused.iter().zip(&want_refused) {
        assert_eq!(
            g, w,
            "the same values refused, for the same reasons: {}",
            values[w.0]
        );
    }
    assert_eq!(got_refused.len(), want_refused.len());
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the same hours"
    );
    for (h, (batch, offsets)) in &got {
        let expected = &want[h];
        assert_eq!(batch.schema(), sign_in_schema());
        for (i, field) in sign_in_schema().fields().iter().enumerate() {
            assert_eq!(
                batch.column(i).as_ref(),
                expected.column(i).as_ref(),
                "hour {h}, column {}",
                field.name()
            );
        }
        assert_eq!(batch.num_rows(), expected.num_rows());
        // The file's offsets: the first and last value of its hour.
        let mine: Vec<usize> = values
            .iter()
            .enumerate()
            .filter(|(_, v)| {
                deadletter::parse_record(v)
                    .is_ok_and(|r| layout::hour_of(r.created_date_time) == *h)
            })
            .map(|(i, _)| i)
            .collect();
        assert_eq!(offsets.first as usize, mine[0]);
        assert_eq!(offsets.last as usize, *mine.last().unwrap());
    }
    got.values().map(|(b, _)| b.num_rows()).sum()
}

#[test]
fn generated_records_publish_the_rows_the_signin_path_published() {
    let values = generated(20_000, 41);
    let rows = assert_same(&values);
    assert_eq!(rows, values.len(), "every record is a row");
}

#[test]
fn the_edges_publish_the_rows_and_the_refusals_of_the_signin_path() {
    let values = edges();
    let rows = assert_same(&values);
    let (_, refused) = reference(&values);
    assert!(rows > 100, "{rows} rows");
    assert!(refused.len() > 100, "{} refused", refused.len());
    let reasons: std::collections::BTreeSet<&str> = refused.iter().map(|(_, r)| r.reason).collect();
    assert_eq!(
        reasons,
        ["not_a_record", "not_json"].into_iter().collect(),
        "{refused:?}"
    );
}

#[test]
fn records_interleaved_with_bad_values_and_other_hours_keep_their_rows() {
    // Rows are rolled back in the middle of a batch, and hours alternate value by value.
    let mut values = Vec::new();
    let edges = edges();
    for (i, g) in generated(3000, 7).into_iter().enumerate() {
        values.push(g);
        values.push(edges[i % edges.len()].clone());
    }
    assert_same(&values);
}

#[test]
fn records_in_their_own_form_take_the_fast_path() {
    let mut rows = Rows::new();
    for v in generated(5000, 9).iter().chain(&edges()[..5]) {
        let r: SignIn = serde_json::from_str(v).unwrap();
        assert_eq!(rows.push(v), Ok(r.created_date_time), "{v}");
        assert_eq!(created_hint(v), Some(r.created_date_time));
    }
    assert_eq!(rows.len(), 5005);
    let batch = rows.finish().unwrap();
    assert_eq!(batch.num_rows(), 5005);
    assert!(rows.is_empty(), "the columns start again");
}

#[test]
fn a_value_the_columns_do_not_take_leaves_nothing_behind() {
    let good = generated(2, 5);
    let mut rows = Rows::new();
    rows.push(&good[0]).unwrap();
    let broken = good[1].replace("\"ingestedAt\":\"", "\"ingestedAt\":\"x");
    assert_eq!(rows.push(&broken), Err(Failed::Invalid));
    let as_number = good[1].replace("\"category\":\"", "\"category\":1,\"x\":\"");
    assert_eq!(rows.push(&as_number), Err(Failed::Invalid));
    rows.push(&good[1]).unwrap();
    let got = rows.finish().unwrap();
    let mut b = BatchBuilder::new();
    for g in &good {
        b.append(&serde_json::from_str::<SignIn>(g).unwrap());
    }
    assert_eq!(got, b.finish().unwrap());
}

#[test]
fn the_hint_is_only_a_guess() {
    let v = generated(1, 2).remove(0);
    let real = created_hint(&v).unwrap();
    let decoy = v.replacen(
        "{",
        "{\"x\":{\"createdDateTime\":\"1999-01-01T00:00:00Z\"},",
        1,
    );
    assert_ne!(created_hint(&decoy), Some(real));
    let mut files = BTreeMap::new();
    writer::append_value(&mut files, &decoy, 0, decoy.len())
        .unwrap()
        .unwrap();
    assert_eq!(
        files.keys().copied().collect::<Vec<_>>(),
        vec![layout::hour_of(real)],
        "the row is in its own hour, and no empty buffer is left"
    );
}

/// CPU time of this thread, in seconds.
fn thread_cpu() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given, nothing else.
    #[allow(unsafe_code)]
    unsafe {
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t);
    }
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// The decoding alone, before and after, on this thread's CPU time: `cargo test -p
/// mfagap-archiver --lib --release decoding_cost -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn decoding_cost() {
    let values = generated(50_000, 17);
    for round in 0..3 {
        let t = thread_cpu();
        let mut hours: BTreeMap<Hour, BatchBuilder> = BTreeMap::new();
        let mut batches = Vec::new();
        for v in &values {
            let r = deadletter::parse_record(v).unwrap();
            let b = hours
                .entry(layout::hour_of(r.created_date_time))
                .or_default();
            b.append(&r);
            if b.len() >= 8192 {
                batches.push(b.finish().unwrap());
            }
        }
        for b in hours.values_mut() {
            batches.push(b.finish().unwrap());
        }
        let before = thread_cpu() - t;
        let t = thread_cpu();
        let mut files: BTreeMap<Hour, HourBuffer> = BTreeMap::new();
        for (i, v) in values.iter().enumerate() {
            writer::append_value(&mut files, v, i as i64, v.len())
                .unwrap()
                .unwrap();
        }
        let mut rows = 0;
        for f in files.values_mut() {
            rows += f.rows();
        }
        let after = thread_cpu() - t;
        assert_eq!(rows as usize, values.len());
        println!(
            "round {round}: SignIn + BatchBuilder {:.0} rows/s, into columns {:.0} rows/s per CPU-second",
            values.len() as f64 / before,
            values.len() as f64 / after
        );
    }
}
