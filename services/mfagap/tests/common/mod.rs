//! What the end-to-end tests of the `mfagap` command share: the binary, the reference output of
//! `mfagap filter`, and reading what the services wrote to Kafka.

#![allow(dead_code)]

use mfagap_testkit::{Broker, Input, comparable};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

pub(crate) fn mfagap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mfagap"))
}

/// What `mfagap filter` prints for the same input: records (comparable form) and dead letters,
/// sorted.
pub(crate) fn filter_reference(input: &Input, dir: &Path) -> (Vec<Value>, Vec<Vec<u8>>) {
    let file = dir.join("input.jsonl");
    input.write(&file).unwrap();
    let (mut records, mut dead) = filter_in_order(&file, dir);
    records.sort_by_key(|v| v["id"].as_str().unwrap().to_owned());
    dead.sort();
    (records, dead)
}

/// What `mfagap filter` on one thread prints for a file, in the order it prints it: records
/// (comparable form) and dead letters' bytes.
pub(crate) fn filter_in_order(file: &Path, dir: &Path) -> (Vec<Value>, Vec<Vec<u8>>) {
    let dl = dir.join("dead.jsonl");
    let out = mfagap()
        .args(["filter", "--threads", "1", "--dead-letter"])
        .arg(&dl)
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let records: Vec<Value> = out
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(comparable)
        .collect();
    let dead: Vec<Vec<u8>> = std::fs::read(&dl)
        .unwrap()
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: Value = serde_json::from_slice(l).unwrap();
            match v["raw"].as_str() {
                Some(raw) => raw.as_bytes().to_vec(),
                None => base64_decode(v["rawBase64"].as_str().unwrap()),
            }
        })
        .collect();
    (records, dead)
}

pub(crate) fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// The output topic's records, checked for headers and key, in comparable form.
pub(crate) fn output_records(b: &Broker, topic: &str) -> Vec<Value> {
    let mut out: Vec<Value> = b
        .read_all(topic)
        .unwrap()
        .into_iter()
        .map(|r| {
            let v: Value = serde_json::from_slice(&r.payload).unwrap();
            assert_eq!(r.headers["category"], v["category"].as_str().unwrap());
            assert_eq!(r.headers["reason"], v["reason"].as_str().unwrap());
            assert_eq!(r.headers["schemaVersion"], "2");
            assert_eq!(r.headers["format"], "native");
            assert_eq!(r.headers["tenantId"], v["tenantId"].as_str().unwrap_or(""));
            let key = v["userId"]
                .as_str()
                .or(v["userPrincipalName"].as_str())
                .or(v["id"].as_str());
            assert_eq!(r.key.as_deref(), key, "key = userId, then UPN, then id");
            comparable(&r.payload)
        })
        .collect();
    out.sort_by_key(|v| v["id"].as_str().unwrap().to_owned());
    out
}

pub(crate) fn ids(records: &[Value]) -> BTreeSet<(String, String)> {
    records
        .iter()
        .map(|v| {
            (
                v["category"].as_str().unwrap().to_owned(),
                v["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The dead-letter topic's payloads, sorted: what `filter_reference` returns beside the
/// records.
pub(crate) fn dead_letter_payloads(b: &Broker, topic: &str) -> Vec<Vec<u8>> {
    let mut dead: Vec<Vec<u8>> = b
        .read_all(topic)
        .unwrap()
        .into_iter()
        .map(|r| r.payload)
        .collect();
    dead.sort();
    dead
}
