//! The generator as an ingest source: `mfagap run` needs sign-ins when nothing is configured.
//!
//! It hands the ingest pipeline the very message bodies `mfagap generate` writes for the same
//! seed and count, one message per position, optionally paced to a rate, so that a run can be
//! checked against `mfagap generate | mfagap filter`. A synthetic stream has nothing to resume
//! from, so commits only move a counter.
//!
//! Writing 20,000 realistic bodies is a few seconds of CPU, so a thread of its own writes them
//! a little ahead (`AHEAD` bodies, in order) while the pipeline classifies the earlier ones.

use anyhow::Result;
use mfagap_core::Source as Origin;
use mfagap_core::lenient::Text;
use mfagap_generate::{Generator, GeneratorConfig};
use mfagap_ingest::source::{Message, Source};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Bodies written ahead of the pipeline, at most: a few megabytes.
const AHEAD: usize = 32;

/// `messages` generated message bodies, at most `rate` a second (0: as fast as read).
pub(crate) struct GeneratorSource {
    bodies: mpsc::Receiver<Vec<u8>>,
    messages: u64,
    produced: u64,
    rate: u64,
    started: Option<Instant>,
}

impl GeneratorSource {
    pub(crate) fn new(config: GeneratorConfig, messages: u64, rate: u64) -> GeneratorSource {
        let (tx, bodies) = mpsc::channel(AHEAD);
        std::thread::Builder::new()
            .name("generator".into())
            .spawn(move || {
                let mut generator = Generator::new(config);
                for _ in 0..messages {
                    // The source was dropped: nobody reads what would come next.
                    if tx.blocking_send(generator.next_message().body).is_err() {
                        return;
                    }
                }
            })
            .expect("a thread for the generator");
        GeneratorSource {
            bodies,
            messages,
            produced: 0,
            rate,
            started: None,
        }
    }
}

/// The partition name of the synthetic stream, in commits and metrics.
const PARTITION: &str = "generator";

#[async_trait::async_trait]
impl Source for GeneratorSource {
    async fn next(&mut self) -> Result<Option<Message>> {
        if self.produced >= self.messages {
            return Ok(None);
        }
        if self.rate > 0 {
            // Cancel-safe: nothing changes before the wait, so a dropped call loses nothing.
            let started = *self.started.get_or_insert_with(Instant::now);
            let due = started + Duration::from_secs_f64(self.produced as f64 / self.rate as f64);
            tokio::time::sleep_until(due).await;
        }
        // Cancel-safe: a body is taken off the channel only when this call completes.
        let Some(body) = self.bodies.recv().await else {
            anyhow::bail!(
                "the generator stopped after {} of {} messages",
                self.produced,
                self.messages
            );
        };
        self.produced += 1;
        let n = self.produced as i64;
        Ok(Some(Message {
            body,
            partition: PARTITION.to_owned(),
            position: n,
            origin: Origin {
                kind: Text("generator".into()),
                sequence_number: Some(n),
                ..Origin::default()
            },
            resume: None,
        }))
    }

    fn commit(&mut self, points: &[(String, i64)]) -> Result<()> {
        for (partition, position) in points {
            tracing::debug!(%partition, delivered_before = position, "generator position");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_stream_is_what_generate_writes_for_the_seed() {
        let config = GeneratorConfig {
            seed: 5,
            ..GeneratorConfig::default()
        };
        let mut expected = Vec::new();
        Generator::new(config.clone())
            .write_jsonl(20, &mut expected)
            .unwrap();
        let mut source = GeneratorSource::new(config, 20, 0);
        let mut got = Vec::new();
        while let Some(m) = source.next().await.unwrap() {
            got.extend_from_slice(&m.body);
            got.push(b'\n');
            assert_eq!(m.origin.sequence_number, Some(m.position));
        }
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn a_rate_paces_the_messages() {
        let mut source = GeneratorSource::new(GeneratorConfig::default(), 11, 50);
        let started = Instant::now();
        while source.next().await.unwrap().is_some() {}
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(200), "{took:?}");
    }
}
