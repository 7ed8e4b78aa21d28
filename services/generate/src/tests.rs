use super::*;
use mfagap_core::Source;
use mfagap_core::Stats;
use mfagap_core::{Classifier, ClassifierConfig};
use mfagap_core::{Output, Processor};
use std::collections::{BTreeMap, BTreeSet};

fn generator(seed: u64) -> Generator {
    Generator::new(GeneratorConfig {
        seed,
        // More of the rare cases, so a few thousand messages cover them all.
        malformed_share: 0.02,
        bad_record_share: 0.01,
        duplicate_share: 0.02,
        ..GeneratorConfig::default()
    })
}

/// Runs one message through the real processor; returns what came out, in order.
fn run(p: &Processor, body: &[u8], stats: &mut Stats) -> Vec<(Option<String>, String)> {
    let mut got = Vec::new();
    let source = Source {
        kind: mfagap_core::lenient::Text("file".into()),
        ..Source::default()
    };
    p.process(body, &source, 0, stats, &mut |o| match o {
        Output::SignIn(s) => {
            stats_emit(&s);
            let mut json = Vec::new();
            s.write_json(&mut json);
            got.push((None, String::from_utf8(json).unwrap()));
        }
        Output::DeadLetter(d) => got.push((Some(d.code.to_owned()), String::new())),
    });
    got
}

fn stats_emit(s: &mfagap_core::SignIn) {
    assert!(s.login_succeeded);
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_does_not() {
    let bytes = |seed| {
        let mut out = Vec::new();
        generator(seed).write_jsonl(200, &mut out).unwrap();
        out
    };
    assert_eq!(bytes(7), bytes(7));
    assert_ne!(bytes(7), bytes(8));
}

#[test]
fn every_line_is_one_message_without_a_newline_inside() {
    let mut out = Vec::new();
    generator(3).write_jsonl(500, &mut out).unwrap();
    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 500);
}

#[test]
fn the_classifier_agrees_with_the_truth_of_every_generated_record() {
    let p = Processor::default();
    let mut g = generator(11);
    let mut stats = Stats::default();
    let mut scenarios = BTreeMap::<&str, u64>::new();
    let mut quirks = BTreeSet::new();
    for _ in 0..2000 {
        let m = g.next_message();
        let got = run(&p, &m.body, &mut stats);
        if let Some(kind) = m.malformed {
            assert_eq!(got.len(), 1, "{kind:?}: one dead letter for the message");
            assert_eq!(got[0].0.as_deref(), Some(kind.code()), "{kind:?}");
            *scenarios.entry("malformed").or_default() += 1;
            continue;
        }
        let mut out = got.into_iter();
        for e in &m.expected {
            *scenarios.entry(e.scenario).or_default() += 1;
            match &e.outcome {
                ExpectedOutcome::Emit { reason, mfa_result } => {
                    let (dl, json) = out.next().expect("an output for an emitted record");
                    assert_eq!(dl, None, "{e:?}");
                    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
                    assert_eq!(v["id"], e.id.as_str(), "{e:?}");
                    assert_eq!(v["category"], e.category.as_str());
                    assert_eq!(v["reason"], reason.as_str(), "{e:?}\n{json}");
                    assert_eq!(v["mfaResult"].as_str(), mfa_result.as_deref(), "{e:?}");
                    assert_eq!(
                        v["userPrincipalName"].as_str(),
                        e.user_principal_name.as_deref()
                    );
                    let created =
                        mfagap_core::timestamp::parse(v["createdDateTime"].as_str().unwrap());
                    assert_eq!(created.ok(), e.created_micros, "{e:?}");
                    let policies: Vec<&str> = v["policies"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| p.as_str().unwrap())
                        .collect();
                    assert_eq!(policies, e.policies, "{e:?}");
                    if v["mfaRequired"] == true {
                        quirks.insert("mfaRequired on an emitted record");
                    }
                }
                ExpectedOutcome::DeadLetter(code) => {
                    let (dl, _) = out.next().expect("a dead letter for a bad record");
                    assert_eq!(dl.as_deref(), Some(*code), "{e:?}");
                    quirks.insert(code);
                }
                _ => {}
            }
        }
        assert!(out.next().is_none(), "no output the truth did not expect");
    }
    // Everything not emitted is counted under the right heading.
    let mut expect = Stats::default();
    for m in generator(11).take_expected(2000) {
        for e in m {
            match e.outcome {
                ExpectedOutcome::Mfa(evidence) => expect.count_mfa(evidence),
                ExpectedOutcome::Failed => expect.failed += 1,
                ExpectedOutcome::Workload { .. } => expect.skipped_workload += 1,
                ExpectedOutcome::OtherCategory => expect.skipped_other += 1,
                _ => {}
            }
        }
    }
    assert_eq!(stats.mfa, expect.mfa);
    assert_eq!(
        stats.mfa_by_evidence, expect.mfa_by_evidence,
        "each MFA sign-in is recognised by the evidence its scenario gives"
    );
    assert_eq!(
        stats.mfa_by_evidence.keys().copied().collect::<Vec<_>>(),
        mfagap_core::Evidence::ALL.to_vec(),
        "every kind of evidence is generated"
    );
    assert_eq!(stats.failed, expect.failed);
    assert_eq!(stats.skipped_workload, expect.skipped_workload);
    assert_eq!(stats.skipped_other, expect.skipped_other);
    for s in [
        "legacy_password",
        "legacy_skipped",
        "mfa_skipped",
        "single_factor_password",
        "single_factor_token",
        "single_factor_token_status",
        "single_factor_older",
        "mfa_completed",
        "mfa_claim",
        "mfa_status_claim_failed_step",
        "mfa_status_claim_first_factor_step",
        "mfa_step_requirement",
        "mfa_strong_method",
        "mfa_requirement",
        "mfa_older",
        "failed",
        "workload",
        "audit",
        "bad_record",
        "malformed",
    ] {
        assert!(
            scenarios.get(s).copied().unwrap_or(0) > 5,
            "{s} is covered: {scenarios:?}"
        );
    }
    for code in [
        "no_properties",
        "no_id",
        "no_status",
        "bad_time",
        "no_category",
        "not_object",
    ] {
        assert!(quirks.contains(code), "{code} is generated");
    }
    assert!(quirks.contains("mfaRequired on an emitted record"));
}

#[test]
fn workload_identities_are_emitted_when_asked_for() {
    let p = Processor::new(Classifier::new(ClassifierConfig {
        include_workload: true,
        ..ClassifierConfig::default()
    }));
    let mut g = generator(5);
    let (mut seen, mut stats) = (0, Stats::default());
    for _ in 0..500 {
        let m = g.next_message();
        let got = run(&p, &m.body, &mut stats);
        for (_, json) in got.iter().filter(|(dl, _)| dl.is_none()) {
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            let e = m
                .expected
                .iter()
                .find(|e| e.id == v["id"].as_str().unwrap())
                .unwrap();
            if let ExpectedOutcome::Workload { succeeded } = e.outcome {
                assert!(succeeded, "{e:?}");
                assert_eq!(v["reason"], "single_factor");
                seen += 1;
            }
        }
    }
    assert!(seen > 50, "{seen} workload sign-ins emitted");
    assert_eq!(stats.skipped_workload, 0);
}

#[test]
fn records_are_the_size_azure_sends() {
    let mut g = generator(9);
    let (mut bytes, mut records, mut max) = (0usize, 0usize, 0usize);
    for _ in 0..500 {
        let m = g.next_message();
        if m.malformed.is_none() {
            bytes += m.body.len();
            records += m.expected.len();
            max = max.max(m.body.len() / m.expected.len());
        }
    }
    let mean = bytes / records;
    assert!((2500..6000).contains(&mean), "mean record {mean} bytes");
    assert!(
        max > 8000,
        "some records carry dozens of policies: largest {max}"
    );
}

impl Generator {
    /// The truth of the next `n` messages, for counting.
    fn take_expected(mut self, n: usize) -> Vec<Vec<Expected>> {
        (0..n).map(|_| self.next_message().expected).collect()
    }
}
