//! Whether partition receivers are alive, and how far behind they are.
//!
//! A receiver whose connection was recovered by the SDK can end up attached to nothing: no
//! error, no events. Silence alone proves nothing (a quiet partition is silent too), so the
//! watchdog asks the service, on a management connection of its own, for each owned
//! partition's last sequence number. A partition with events waiting, a pump not held back by
//! the pipeline, and nothing received for the stall timeout is stuck: the supervisor opens
//! everything again. The same answers give the consumer lag.

use super::Shared;
use super::connect::{Target, causes};
use anyhow::Result;
use azure_messaging_eventhubs::ConsumerClient;
use std::time::Duration;
use tokio::time::Instant;

/// Polls partition properties for lag and liveness.
pub struct Watchdog {
    client: ConsumerClient,
    stall: Duration,
}

impl Watchdog {
    pub async fn open(target: &Target, instance: &str, stall: Duration) -> Result<Watchdog> {
        let client = target.open(&format!("{instance}-watchdog")).await?;
        Ok(Watchdog { client, stall })
    }

    /// How often to look.
    pub fn period(&self) -> Duration {
        (self.stall / 2).max(Duration::from_secs(1))
    }

    /// Updates the lag of every owned partition; names a stuck one, or the failure to ask.
    pub async fn check(&self, shared: &Shared) -> Option<String> {
        let owned: Vec<String> = shared.owned_now().into_keys().collect();
        let mut failures = 0;
        for id in owned {
            let asked = tokio::time::timeout(
                Duration::from_secs(10),
                self.client.get_partition_properties(&id),
            )
            .await;
            let last = match asked {
                Ok(Ok(p)) => p.last_enqueued_sequence_number,
                Ok(Err(e)) => {
                    tracing::debug!(partition = %id, error = %causes(&e), "cannot read partition properties");
                    failures += 1;
                    continue;
                }
                Err(_) => {
                    failures += 1;
                    continue;
                }
            };
            let progress = shared
                .progress
                .lock()
                .expect("not poisoned")
                .get(&id)
                .cloned();
            let Some(p) = progress else { continue };
            let Some(forwarded) = p.forwarded else {
                continue;
            };
            let lag = (last - forwarded).max(0);
            shared
                .lag
                .lock()
                .expect("not poisoned")
                .insert(id.clone(), lag);
            let quiet = Instant::now().duration_since(p.at);
            if lag > 0 && !p.sending && quiet >= self.stall {
                return Some(format!(
                    "partition {id} received nothing for {quiet:?} with {lag} events waiting"
                ));
            }
        }
        (failures > 0 && failures == shared.owned_now().len())
            .then(|| "the management connection does not answer".to_owned())
    }

    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.client.close()).await;
    }
}
