//! Any message body: decoding, classifying and serializing never panic, and every record is
//! accounted for (emitted, skipped, failed, with MFA or dead-lettered), in every input shape
//! (`decode.dict` gives the fuzzer the keys of each: diagnostic records, Graph `signIn`
//! resources and pages, Log Analytics rows and their JSON-in-a-string columns).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfagap_core::lenient::Text;
use mfagap_core::{Output, Processor, Source, Stats};

fuzz_target!(|body: &[u8]| {
    let p = Processor::default();
    let source = Source {
        kind: Text("file".into()),
        ..Source::default()
    };
    let mut stats = Stats::default();
    let mut emitted = Vec::new();
    p.process(body, &source, 0, &mut stats, &mut |o| {
        if let Output::SignIn(s) = o {
            let mut json = Vec::new();
            s.write_json(&mut json);
            emitted.push(s.reason);
        }
    });
    for reason in emitted {
        stats.count_emitted(reason);
    }
    stats.check().expect("every record is accounted for");
});
