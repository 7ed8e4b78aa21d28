//! Settings of the `eventhubs` source.

use super::checkpointer::Policy;
use super::connect::{CredentialKind, Target};
use crate::source::{SourceArgs, StartAt};
use anyhow::{Result, bail};
use mfagap_runtime::Property;
use std::time::Duration;

/// How partitions are shared among replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Balancing {
    /// Claim one partition per round until the load is even: little contention, but a lone
    /// replica needs one round per partition to own them all.
    Balanced,
    /// Claim every partition available at once (stealing down to an even share): the fastest
    /// start and take-over.
    Greedy,
}

/// The Event Hubs source's own flags (the consumer group, the connection string and the start
/// position are the shared source flags).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Event Hubs source")]
pub struct EventHubsArgs {
    /// Event Hubs source: the namespace (`NAME` or `NAME.servicebus.windows.net`) when
    /// authenticating with Entra ID instead of a connection string.
    #[arg(long, value_name = "NAMESPACE", env = "MFAGAP_EVENTHUBS_NAMESPACE")]
    pub eventhubs_namespace: Option<String>,
    /// Event Hubs source: the event hub (the connection string's EntityPath when absent).
    #[arg(long, value_name = "NAME", env = "MFAGAP_EVENTHUB")]
    pub eventhub: Option<String>,
    /// Event Hubs source: the Entra ID credential used without a connection string.
    #[arg(
        long,
        value_enum,
        env = "MFAGAP_EVENTHUBS_CREDENTIAL",
        default_value = "auto"
    )]
    pub eventhubs_credential: CredentialKind,
    /// Event Hubs source: an AMQP endpoint to dial instead of the namespace (a proxy, the
    /// emulator); emulator connection strings set it themselves.
    #[arg(long, value_name = "URL", env = "MFAGAP_EVENTHUBS_ENDPOINT")]
    pub eventhubs_endpoint: Option<String>,
    /// Event Hubs source: the Blob container of checkpoints and ownership
    /// (`az://CONTAINER[/PREFIX]` or `https://ACCOUNT.blob.core.windows.net/CONTAINER`).
    #[arg(long, value_name = "URL", env = "MFAGAP_CHECKPOINT_STORE")]
    pub checkpoint_store: Option<String>,
    /// Event Hubs source: a storage setting of the checkpoint store (repeatable; `key=value`,
    /// e.g. `azure_storage_account_name=…`; without a key or SAS, Entra ID is used).
    #[arg(
        long = "checkpoint-store-option",
        value_name = "KEY=VALUE",
        env = "MFAGAP_CHECKPOINT_STORE_OPTIONS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub checkpoint_store_options: Vec<Property>,
    /// Event Hubs source: write a partition's checkpoint at least this often while it moves.
    #[arg(long, value_name = "DURATION", env = "MFAGAP_CHECKPOINT_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub checkpoint_interval: Duration,
    /// Event Hubs source: or sooner, once this many events are acknowledged past the last one.
    #[arg(
        long,
        value_name = "EVENTS",
        env = "MFAGAP_CHECKPOINT_EVERY",
        default_value_t = 50_000
    )]
    pub checkpoint_every: u64,
    /// Event Hubs source: how replicas share partitions.
    #[arg(
        long,
        value_enum,
        env = "MFAGAP_LOAD_BALANCING",
        default_value = "greedy"
    )]
    pub load_balancing: Balancing,
    /// Event Hubs source: how often ownership is renewed and the load balanced.
    #[arg(long, value_name = "DURATION", env = "MFAGAP_LOAD_BALANCING_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub load_balancing_interval: Duration,
    /// Event Hubs source: after this long without renewal a replica's partitions are taken
    /// over (it died); must exceed the load-balancing interval.
    #[arg(long, value_name = "DURATION", env = "MFAGAP_OWNERSHIP_EXPIRATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub ownership_expiration: Duration,
    /// Event Hubs source: events each partition receiver fetches ahead (memory: up to this
    /// many events of up to 1 MB per owned partition).
    #[arg(
        long,
        value_name = "EVENTS",
        env = "MFAGAP_PREFETCH",
        default_value_t = 50
    )]
    pub prefetch: u32,
    /// Event Hubs source: a partition receiver that gets nothing for this long while events
    /// wait is opened again (the watchdog also reports the consumer lag).
    #[arg(long, value_name = "DURATION", env = "MFAGAP_STALL_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub stall_timeout: Duration,
}

/// Settings of the `eventhubs` source, checked.
#[derive(Debug, Clone)]
pub struct EventHubsSettings {
    /// The namespace, event hub and consumer group, and how to authenticate.
    pub target: Target,
    /// The Blob container of checkpoints and ownership (`az://…` or `https://…`).
    pub checkpoint_store: String,
    /// Storage settings of that container (account, key, SAS); secret values stay redacted.
    pub checkpoint_store_options: Vec<Property>,
    /// Where a partition without a checkpoint starts.
    pub start: StartAt,
    /// How often checkpoints are written.
    pub checkpoint: Policy,
    /// How replicas share partitions.
    pub balancing: Balancing,
    /// How often ownership is renewed and the load balanced.
    pub balancing_interval: Duration,
    /// An owner that has not renewed for this long has died: its partitions are free.
    pub ownership_expiration: Duration,
    /// Events each partition's receiver fetches ahead.
    pub prefetch: u32,
    /// A receiver with events waiting that gets none for this long is opened again.
    pub stall_timeout: Duration,
}

impl EventHubsArgs {
    /// The settings, checked; errors name the flag to fix.
    pub fn settings(&self, shared: &SourceArgs) -> Result<EventHubsSettings> {
        let target = Target::resolve(
            shared.eventhubs_connection_string.as_ref(),
            self.eventhubs_namespace.as_deref(),
            self.eventhub.as_deref(),
            &shared.consumer_group,
            self.eventhubs_endpoint.as_deref(),
            self.eventhubs_credential,
        )?;
        let Some(checkpoint_store) = self.checkpoint_store.clone() else {
            bail!(
                "the eventhubs source needs --checkpoint-store (a Blob container for checkpoints and partition ownership)"
            );
        };
        if self.ownership_expiration <= self.load_balancing_interval {
            bail!(
                "--ownership-expiration ({:?}) must exceed --load-balancing-interval ({:?})",
                self.ownership_expiration,
                self.load_balancing_interval
            );
        }
        Ok(EventHubsSettings {
            target,
            checkpoint_store,
            checkpoint_store_options: self.checkpoint_store_options.clone(),
            start: shared.start_position,
            checkpoint: Policy {
                interval: self.checkpoint_interval,
                every: self.checkpoint_every.max(1),
            },
            balancing: self.load_balancing,
            balancing_interval: self.load_balancing_interval,
            ownership_expiration: self.ownership_expiration,
            prefetch: self.prefetch.max(1),
            stall_timeout: self.stall_timeout.max(Duration::from_secs(1)),
        })
    }
}
