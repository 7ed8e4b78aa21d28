//! How fast the `graph` source reads sign-ins from Microsoft Graph: the Graph test double
//! serving the generated corpus as beta `signIn` pages, read by the source itself (token from
//! the double's managed identity endpoint, pages through `@odata.nextLink`, positions kept)
//! with no pipeline behind it, so the figure is what Graph paging allows.
//!
//! `cargo bench -p mfagap-ingest --bench graph` serves `MFAGAP_BENCH_MESSAGES` generated
//! message bodies' sign-ins (default 3,000: about 60,000 `signIn`s) and reads the whole window,
//! every event type, in pages of 1,000 with the default concurrency, once with no page
//! latency and once with 100 ms per page (`MFAGAP_BENCH_LATENCY_MS` replaces 100), and
//! prints sign-ins/s, pages/s and MB/s — and what that makes of 30 days of a tenant of
//! 1 million sign-ins a day.

use mfagap_ingest::source::Source;
use mfagap_ingest::source::graph::{self, EventType, GraphSettings, GraphVersion};
use mfagap_testkit::shapes::{GraphVersion as Shape, graph_sign_in};
use mfagap_testkit::{GraphConfig, GraphDouble, generated};
use serde_json::Value;
use serde_json::value::RawValue;
use std::time::{Duration, Instant, SystemTime};

fn main() {
    let messages: u64 = std::env::var("MFAGAP_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000);
    let latency: u64 = std::env::var("MFAGAP_BENCH_LATENCY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let double = GraphDouble::start(GraphConfig::default()).unwrap();
    // The managed identity credential reads its endpoint from the environment.
    for (k, v) in double.identity_env() {
        // SAFETY: set before the runtime (or any other thread of this process) starts.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var(k, v);
        }
    }
    let input = generated(messages, 17, 60, false);
    let mut sign_ins = Vec::new();
    for body in &input.bodies {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            continue;
        };
        for r in v["records"].as_array().into_iter().flatten() {
            sign_ins.extend(graph_sign_in(r, Shape::Beta));
        }
    }
    let served = double.add(sign_ins);
    let times: Vec<SystemTime> = served
        .iter()
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v["createdDateTime"].as_str().unwrap())
                .unwrap()
                .to_utc()
                .into()
        })
        .collect();
    let since = *times.iter().min().unwrap();
    let until = *times.iter().max().unwrap() + Duration::from_secs(1);
    println!(
        "graph source: {} sign-ins served over {:.1} days of createdDateTime",
        served.len(),
        until.duration_since(since).unwrap().as_secs_f64() / 86_400.0
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    for ms in [0, latency] {
        double.configure(GraphConfig {
            latency: Duration::from_millis(ms),
            ..GraphConfig::default()
        });
        let settings = GraphSettings {
            url: double.url().to_owned(),
            version: GraphVersion::Beta,
            event_types: vec![
                EventType::InteractiveUser,
                EventType::NonInteractiveUser,
                EventType::ServicePrincipal,
                EventType::ManagedIdentity,
            ],
            credential: mfagap_ingest::source::eventhubs::CredentialKind::ManagedIdentity,
            since,
            until: Some(until),
            follow: false,
            poll_interval: Duration::from_secs(60),
            overlap: Duration::from_secs(900),
            page_size: 1000,
            concurrency: 2,
        };
        let (records, pages, bytes, secs) = rt.block_on(async {
            let mut source = graph::build(&settings).unwrap();
            let (mut records, mut pages, mut bytes) = (0usize, 0usize, 0usize);
            let started = Instant::now();
            while let Some(m) = source.next().await.unwrap() {
                #[derive(serde::Deserialize)]
                struct Page<'a> {
                    #[serde(borrow)]
                    value: Vec<&'a RawValue>,
                }
                let page: Page = serde_json::from_slice(&m.body).unwrap();
                records += page.value.len();
                pages += 1;
                bytes += m.body.len();
            }
            source.close().await.unwrap();
            (records, pages, bytes, started.elapsed().as_secs_f64())
        });
        assert_eq!(records, served.len(), "every sign-in read once");
        let rate = records as f64 / secs;
        println!(
            "page latency {ms:>3} ms: {records} sign-ins in {pages} pages, {secs:.2} s: {rate:.0} sign-ins/s, {:.1} pages/s, {:.0} MB/s; 30 days of 1,000,000 sign-ins a day: {:.1} h",
            pages as f64 / secs,
            bytes as f64 / secs / 1e6,
            30e6 / rate / 3600.0
        );
    }
}
