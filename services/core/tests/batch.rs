//! Output records into Arrow record batches: each record becomes the same row.

use arrow_array::RecordBatch;
use mfagap_core::batch::BatchBuilder;
use mfagap_core::lenient::Text;
use mfagap_core::schema::sign_in_schema;
use mfagap_core::{Output, Processor, SignIn, Source, timestamp};
use mfagap_generate::{Generator, GeneratorConfig};
use serde_json::Value;

fn records() -> Vec<SignIn<'static>> {
    let mut generator = Generator::new(GeneratorConfig {
        seed: 7,
        ..GeneratorConfig::default()
    });
    let processor = Processor::default();
    let mut stats = mfagap_core::Stats::default();
    let mut out = Vec::new();
    while out.len() < 500 {
        let body = generator.next_message().body;
        processor.process(&body, &Source::default(), 0, &mut stats, &mut |o| {
            if let Output::SignIn(s) = o {
                out.push(s.into_owned());
            }
        });
    }
    out
}

/// Instants compare as instants: Arrow's JSON writer and the record print them differently.
fn normalize(v: &mut Value) {
    match v {
        Value::String(s) if s.len() >= 20 && s.as_bytes()[4] == b'-' => {
            if let Ok(m) = timestamp::parse(s) {
                *s = timestamp::format(m);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalize),
        Value::Object(o) => o.values_mut().for_each(normalize),
        _ => {}
    }
}

fn batch_as_json(batch: &RecordBatch) -> Vec<Value> {
    let mut writer = arrow_json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow_json::writer::JsonArray>(Vec::new());
    writer.write(batch).unwrap();
    writer.finish().unwrap();
    let mut rows: Vec<Value> = serde_json::from_slice(&writer.into_inner()).unwrap();
    rows.iter_mut().for_each(normalize);
    rows
}

#[test]
fn every_record_becomes_the_same_row() {
    let records = records();
    let mut b = BatchBuilder::new();
    for r in &records {
        b.append(r);
    }
    assert_eq!(b.len(), records.len());
    let batch = b.finish().unwrap();
    assert_eq!(batch.schema(), sign_in_schema());
    assert_eq!(batch.num_rows(), records.len());
    let rows = batch_as_json(&batch);
    for (row, record) in rows.iter().zip(&records) {
        let mut expected = serde_json::to_value(record).unwrap();
        normalize(&mut expected);
        assert_eq!(row, &expected);
    }
    assert!(b.is_empty());
}

#[test]
fn absent_structs_and_empty_lists_stay_distinct_from_empty_values() {
    let mut r = records().remove(0);
    r.location = None;
    r.device_detail = None;
    r.policies = Vec::new();
    r.user_agent = None;
    r.user_display_name = Some(Text("Zoë \"Ω\", d'Arc".into()));
    let mut b = BatchBuilder::new();
    b.append(&r);
    let row = batch_as_json(&b.finish().unwrap()).remove(0);
    assert_eq!(row["location"], Value::Null);
    assert_eq!(row["deviceDetail"], Value::Null);
    assert_eq!(row["policies"], serde_json::json!([]));
    assert_eq!(row["userAgent"], Value::Null);
    assert_eq!(row["userDisplayName"], "Zoë \"Ω\", d'Arc");
}

#[test]
fn a_builder_can_be_reused_after_finish() {
    let records = records();
    let mut b = BatchBuilder::new();
    b.append(&records[0]);
    b.append(&records[1]);
    assert_eq!(b.finish().unwrap().num_rows(), 2);
    b.append(&records[2]);
    let batch = b.finish().unwrap();
    assert_eq!(batch.num_rows(), 1);
    let mut expected = serde_json::to_value(&records[2]).unwrap();
    normalize(&mut expected);
    assert_eq!(batch_as_json(&batch)[0], expected);
}
