//! Event Hubs over its native AMQP protocol: the SDK's event processor balances partitions
//! among replicas through ownership blobs, and checkpoints mark what Kafka holds.
//!
//! A supervisor task opens the client and the processor and hands every partition the
//! processor grants to a pump task; pumps feed one bounded channel that `next` reads, so a
//! slow Kafka slows every partition's receiver (the SDK's prefetch bounds what waits). When
//! another replica takes a partition, the pump reports it lost: the pipeline forgets it and
//! whoever reads it next starts from its checkpoint. When a receiver fails, the client or the
//! processor fails, or the watchdog finds a receiver stuck, the supervisor opens everything
//! again and each partition resumes where it was.
//!
//! Two gaps of the SDK are closed here. On a reconnect it re-attaches a partition's link with
//! the filter it was first opened with, so it reads again from the checkpoint (or from "now",
//! for `latest`): pumps drop events at or below the last one they passed on, and `latest` is
//! pinned to each partition's last sequence number when the processor starts. And the
//! processor does not give up ownership on shutdown: `close` clears this replica's ownership
//! blobs after the last checkpoints, so the others take over at once.

pub mod check;
pub(crate) mod checkpoint_store;
pub(crate) mod checkpointer;
mod config;
pub(crate) mod connect;
mod watchdog;

pub use checkpoint_store::{BlobCheckpointStore, ExactlyOnceStarts};
pub use checkpointer::Policy;
pub use config::{Balancing, EventHubsArgs, EventHubsSettings};
pub use connect::{CredentialKind, Target};

use super::{Message, Source, StartAt};
use crate::metrics;
use anyhow::{Context, Result};
use azure_messaging_eventhubs::models::{EventHubProperties, Ownership};
use azure_messaging_eventhubs::processor::PartitionClient;
use azure_messaging_eventhubs::{
    CheckpointStore, ConsumerClient, EventProcessor, ProcessorStrategy, StartLocation,
    StartPosition,
};
use checkpointer::{Checkpointer, Scope};
use futures::StreamExt;
use mfagap_core::Source as Origin;
use mfagap_core::lenient::Text;
use mfagap_runtime::ErrorKind;
use mfagap_runtime::{Backoff, Error};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One event on its way to the pipeline.
struct Event {
    partition_id: String,
    generation: u64,
    sequence_number: Option<i64>,
    offset: Option<String>,
    enqueued_micros: Option<i64>,
    body: Vec<u8>,
}

/// What the supervisor and the pumps share with the source.
#[derive(Default)]
struct Shared {
    /// Partitions read now, each with the generation of its pump.
    owned: Mutex<HashMap<String, u64>>,
    /// Partitions lost since the pipeline last asked.
    lost: Mutex<Vec<String>>,
    next_generation: std::sync::atomic::AtomicU64,
    /// Whether any partition was ever granted (else there is nothing to release).
    ever_owned: std::sync::atomic::AtomicBool,
    /// Each partition's progress, kept across reconnects (not across a loss of ownership): a
    /// partition opened again from its checkpoint skips what the pipeline already has.
    progress: Mutex<HashMap<String, Progress>>,
    /// Where each partition without a checkpoint starts, as the processor was last told.
    starts: Mutex<HashMap<String, watchdog::Start>>,
    /// Events waiting per owned partition, as the watchdog last saw them.
    lag: Mutex<HashMap<String, i64>>,
    /// A receiver failed on the connection: open client and processor again.
    reopen: tokio::sync::Notify,
}

/// How far a partition's pump got, and when it last moved.
#[derive(Debug, Clone)]
struct Progress {
    /// The last sequence number passed on to the pipeline.
    forwarded: Option<i64>,
    /// When an event last arrived (or the pump started).
    at: tokio::time::Instant,
    /// Whether the pump waits for the pipeline to take an event (backpressure, not a stall).
    sending: bool,
}

impl Shared {
    fn owned_now(&self) -> HashMap<String, u64> {
        self.owned.lock().expect("not poisoned").clone()
    }

    fn moved(&self, id: &str, forwarded: Option<i64>, sending: bool) {
        if let Some(p) = self.progress.lock().expect("not poisoned").get_mut(id) {
            p.forwarded = forwarded;
            p.at = tokio::time::Instant::now();
            p.sending = sending;
        }
    }
}

/// Opens the checkpoint store and starts reading the event hub the settings name; with
/// exactly-once delivery, partitions resume from the positions topic (see
/// [`ExactlyOnceStarts`]).
pub fn build(
    settings: &EventHubsSettings,
    exactly_once: Option<ExactlyOnce>,
) -> Result<EventHubsSource> {
    EventHubsSource::start(settings.clone(), exactly_once)
}

/// What exactly-once delivery lends the source: the per-partition transactions it fences
/// when it takes a partition, and the positions topic it resumes from.
pub struct ExactlyOnce {
    /// The per-partition transactions the sink commits through.
    pub registry: Arc<crate::sink::TxnRegistry>,
    /// Where committed positions are read from.
    pub positions: crate::positions::PositionsTopic,
}

/// The scope of this event hub's positions: namespace, hub and consumer group.
pub fn positions_scope(settings: &EventHubsSettings) -> String {
    format!(
        "eventhubs:{}/{}/{}",
        settings.target.namespace.to_lowercase(),
        settings.target.event_hub.to_lowercase(),
        settings.target.consumer_group.to_lowercase()
    )
}

/// The `eventhubs` source.
pub struct EventHubsSource {
    events: mpsc::Receiver<Result<Event>>,
    shared: Arc<Shared>,
    checkpointer: Checkpointer,
    store: Arc<BlobCheckpointStore>,
    scope: Scope,
    instance: String,
    stop: CancellationToken,
    supervisor: Option<std::thread::JoinHandle<()>>,
    /// The last sequence number handed out per partition, for events that carry none.
    last: HashMap<String, i64>,
    /// With exactly-once delivery, how taken partitions resume.
    exactly_once: Option<Arc<ExactlyOnceStarts>>,
}

impl EventHubsSource {
    /// Opens the checkpoint store and starts the supervisor; the first connection's failure
    /// (a wrong key, an unknown event hub) comes out of the first `next`.
    pub fn start(
        config: EventHubsSettings,
        exactly_once: Option<ExactlyOnce>,
    ) -> Result<EventHubsSource> {
        let store = Arc::new(BlobCheckpointStore::open(
            &config.checkpoint_store,
            &config.checkpoint_store_options,
        )?);
        let scope = Scope {
            namespace: config.target.namespace.clone(),
            event_hub: config.target.event_hub.clone(),
            consumer_group: config.target.consumer_group.clone(),
        };
        let instance = instance_id();
        tracing::info!(
            namespace = %scope.namespace,
            event_hub = %scope.event_hub,
            consumer_group = %scope.consumer_group,
            endpoint = config.target.endpoint.as_deref().unwrap_or("(the namespace)"),
            checkpoint_store = %store.location,
            %instance,
            "Event Hubs source"
        );
        let checkpointer = Checkpointer::spawn(
            store.clone(),
            scope.clone(),
            config.checkpoint,
            exactly_once.is_none(),
        );
        let (tx, events) = mpsc::channel(64);
        let shared = Arc::new(Shared::default());
        let stop = CancellationToken::new();
        // The SDK's event streams are not `Send`: the client, the processor and the pumps live
        // on a thread of their own, with a runtime of its own (and a store client of its own).
        let starts = exactly_once.map(|eo| {
            Arc::new(ExactlyOnceStarts {
                registry: eo.registry,
                positions: eo.positions,
                scope: positions_scope(&config),
                instance: instance.clone(),
                event_hub: config.target.event_hub.clone(),
                opened: Default::default(),
            })
        });
        let mut processor_store =
            BlobCheckpointStore::open(&config.checkpoint_store, &config.checkpoint_store_options)?;
        if let Some(s) = &starts {
            processor_store = processor_store.with_exactly_once(s.clone());
        }
        let processor_store = Arc::new(processor_store);
        let (who, sh, st) = (instance.clone(), shared.clone(), stop.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the Event Hubs runtime")?;
        let supervisor = std::thread::Builder::new()
            .name("eventhubs".into())
            .spawn(move || {
                let local = tokio::task::LocalSet::new();
                local.block_on(
                    &runtime,
                    supervise(config, processor_store, who, sh, tx, st),
                );
                runtime.shutdown_timeout(Duration::from_secs(2));
            })
            .context("cannot start the Event Hubs thread")?;
        Ok(EventHubsSource {
            events,
            shared,
            checkpointer,
            store,
            scope,
            instance,
            stop,
            supervisor: Some(supervisor),
            last: HashMap::new(),
            exactly_once: starts,
        })
    }

    fn pipeline_name(&self, partition_id: &str) -> String {
        format!("{}/{partition_id}", self.scope.event_hub)
    }

    /// Clears this replica's ownerships so other replicas need not wait for them to expire.
    async fn release_ownership(&self) -> Result<()> {
        let ours: Vec<Ownership> = self
            .store
            .list_ownerships(
                &self.scope.namespace,
                &self.scope.event_hub,
                &self.scope.consumer_group,
            )
            .await
            .context("cannot list ownerships to release them")?
            .into_iter()
            .filter(|o| o.owner_id.as_deref() == Some(self.instance.as_str()))
            .map(|o| Ownership {
                owner_id: None,
                ..o
            })
            .collect();
        if ours.is_empty() {
            return Ok(());
        }
        let released = self
            .store
            .claim_ownership(&ours)
            .await
            .context("cannot release ownership")?;
        tracing::info!(
            partitions = ?released.iter().map(|o| o.partition_id.as_str()).collect::<Vec<_>>(),
            "ownership released"
        );
        Ok(())
    }
}

#[async_trait::async_trait]
impl Source for EventHubsSource {
    async fn next(&mut self) -> Result<Option<Message>> {
        let Some(event) = self.events.recv().await else {
            anyhow::bail!("the Event Hubs source stopped");
        };
        let e = event?;
        let name = self.pipeline_name(&e.partition_id);
        let current = self
            .shared
            .owned
            .lock()
            .expect("not poisoned")
            .get(&e.partition_id)
            == Some(&e.generation);
        let position = match e.sequence_number {
            Some(s) => {
                // Events of a pump that has ended still go to Kafka, but only the current
                // pump's events can carry a checkpoint.
                if current {
                    self.checkpointer.read(&e.partition_id, s, e.offset.clone());
                }
                s
            }
            None => {
                tracing::warn!(partition = %e.partition_id, "an event without a sequence number; it cannot be checkpointed");
                self.last.get(&name).map_or(0, |l| l + 1)
            }
        };
        self.last.insert(name.clone(), position);
        let resume = e
            .sequence_number
            .map(|s| serde_json::json!({"sequenceNumber": s, "offset": e.offset.clone()}));
        Ok(Some(Message {
            body: e.body,
            partition: name,
            position,
            origin: Origin {
                kind: Text("eventhubs".into()),
                event_hub: Some(Text(self.scope.event_hub.clone().into())),
                partition: Some(Text(e.partition_id.into())),
                offset: e.offset.map(|o| Text(o.into())),
                sequence_number: e.sequence_number,
                enqueued_time: e.enqueued_micros,
                ..Origin::default()
            },
            resume,
        }))
    }

    fn commit(&mut self, points: &[(String, i64)]) -> Result<()> {
        let owned = self.shared.owned_now();
        let now = tokio::time::Instant::now();
        let prefix = format!("{}/", self.scope.event_hub);
        for (name, resume) in points {
            let Some(id) = name.strip_prefix(&prefix) else {
                continue;
            };
            if owned.contains_key(id) {
                self.checkpointer.allow(id, *resume, now);
            }
        }
        self.checkpointer.hand_over_due(now);
        Ok(())
    }

    fn revoked(&mut self) -> Vec<String> {
        let lost = std::mem::take(&mut *self.shared.lost.lock().expect("not poisoned"));
        let mut names = Vec::with_capacity(lost.len());
        for id in lost {
            self.checkpointer.lost(&id);
            if let Some(eo) = &self.exactly_once {
                eo.lost(&id);
            }
            let name = self.pipeline_name(&id);
            self.last.remove(&name);
            names.push(name);
        }
        names
    }

    fn lag(&mut self) -> Vec<(String, i64)> {
        let lag = self.shared.lag.lock().expect("not poisoned").clone();
        lag.into_iter()
            .map(|(id, n)| (self.pipeline_name(&id), n))
            .collect()
    }

    async fn close(&mut self) -> Result<()> {
        // Stop reading first, then store the last checkpoints, then let the partitions go.
        self.stop.cancel();
        if let Some(s) = self.supervisor.take() {
            let joined = tokio::task::spawn_blocking(move || s.join());
            if tokio::time::timeout(Duration::from_secs(20), joined)
                .await
                .is_err()
            {
                tracing::warn!("the Event Hubs client did not close in 20 s");
            }
        }
        let flushed = self.checkpointer.flush().await;
        // Without a release the partitions still pass to the others, after the expiration.
        if self
            .shared
            .ever_owned
            .load(std::sync::atomic::Ordering::Relaxed)
            && let Err(e) = self.release_ownership().await
        {
            tracing::warn!(error = %format!("{e:#}"), "ownership not released; other replicas take over when it expires");
        }
        flushed
    }
}

/// A name for this replica, unique per process: the owner id in ownership blobs.
fn instance_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "mfagap".to_owned());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    format!("{host}-{}-{nanos:08x}", std::process::id())
}

/// Opens the client and the processor, serves the partitions granted, and opens them again
/// after a failure. A failure before the first success ends the source: a wrong key or an
/// unknown event hub is a configuration error, not something to retry forever.
async fn supervise(
    config: EventHubsSettings,
    store: Arc<BlobCheckpointStore>,
    instance: String,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Result<Event>>,
    stop: CancellationToken,
) {
    let mut started = false;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    while !stop.is_cancelled() {
        let opened = tokio::select! {
            _ = stop.cancelled() => return,
            o = open(&config, &store, &instance, &shared) => o,
        };
        let processor = match opened {
            Ok(p) => p,
            Err(e) if !started && Error::kind_of(&e) == Some(ErrorKind::Configuration) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %format!("{e:#}"), retry_in = ?wait, "cannot open Event Hubs; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            }
        };
        if started {
            metrics::processor_restarted();
        }
        started = true;
        backoff.reset();
        let watchdog = match watchdog::Watchdog::open(
            &config.target,
            &instance,
            config.stall_timeout,
            store.clone(),
        )
        .await
        {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot open the management connection; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        serve(&processor, &watchdog, &shared, &tx, &stop).await;
        watchdog.close().await;
        // Partition clients hold the processor's consumer map only weakly; once every pump
        // has ended the processor is ours alone and can close its client.
        match Arc::try_unwrap(processor) {
            Ok(p) => {
                if let Err(e) = tokio::time::timeout(Duration::from_secs(10), p.close()).await {
                    tracing::debug!(error = %e, "closing the Event Hubs client timed out");
                }
            }
            Err(_) => tracing::debug!("the event processor is still shared; dropping it"),
        }
    }
}

/// Runs the processor and a pump per granted partition until the processor fails or `stop`.
async fn serve(
    processor: &Arc<EventProcessor>,
    watchdog: &watchdog::Watchdog,
    shared: &Arc<Shared>,
    tx: &mpsc::Sender<Result<Event>>,
    stop: &CancellationToken,
) {
    let mut look = tokio::time::interval(watchdog.period());
    look.tick().await;
    let pumps_stop = stop.child_token();
    let mut pumps: Vec<JoinHandle<()>> = Vec::new();
    let runner = processor.clone();
    let mut run = tokio::task::spawn_local(async move { runner.run().await });
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            r = &mut run => {
                match r {
                    Ok(Ok(())) => tracing::info!("the event processor stopped"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "the event processor failed; opening Event Hubs again"),
                    Err(e) => tracing::warn!(error = %e, "the event processor task ended"),
                }
                break;
            }
            _ = look.tick() => {
                if let Some(why) = watchdog.check(shared).await {
                    tracing::warn!(reason = %why, "a partition receiver is stuck; opening Event Hubs again");
                    break;
                }
            }
            _ = shared.reopen.notified() => {
                tracing::info!("a partition receiver failed; opening Event Hubs again");
                break;
            }
            c = processor.next_partition_client() => match c {
                Ok(client) => {
                    pumps.retain(|p| !p.is_finished());
                    pumps.push(tokio::task::spawn_local(pump(client, shared.clone(), tx.clone(), pumps_stop.clone())));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no partition client; opening Event Hubs again");
                    break;
                }
            },
        }
    }
    run.abort();
    pumps_stop.cancel();
    for p in pumps {
        let _ = tokio::time::timeout(Duration::from_secs(10), p).await;
    }
}

/// Opens the client, resolves where partitions without a checkpoint start, and builds the
/// processor.
async fn open(
    config: &EventHubsSettings,
    store: &Arc<BlobCheckpointStore>,
    instance: &str,
    shared: &Shared,
) -> Result<Arc<EventProcessor>> {
    // A missing container or a refused key is a configuration error: find out first.
    store
        .list_ownerships(
            &config.target.namespace,
            &config.target.event_hub,
            &config.target.consumer_group,
        )
        .await
        .map_err(|e| {
            Error::new(
                connect::kind_of(&e),
                format!(
                    "cannot read the checkpoint store {}: {}",
                    store.location,
                    connect::causes(&e)
                ),
            )
        })?;
    let client = config.target.open(instance).await?;
    let properties = client.get_eventhub_properties().await.map_err(|e| {
        Error::new(
            connect::kind_of(&e),
            format!(
                "cannot read event hub {} in namespace {}: {}",
                config.target.event_hub,
                config.target.namespace,
                connect::causes(&e)
            ),
        )
    })?;
    let start = start_positions(&client, &properties, config.start).await?;
    *shared.starts.lock().expect("not poisoned") = start
        .per_partition
        .iter()
        .map(|(id, p)| (id.clone(), watchdog::Start::of(p)))
        .collect();
    let strategy = match config.balancing {
        Balancing::Balanced => ProcessorStrategy::Balanced,
        Balancing::Greedy => ProcessorStrategy::Greedy,
    };
    let processor = EventProcessor::builder()
        .with_load_balancing_strategy(strategy)
        .with_update_interval(azure_duration(config.balancing_interval))
        .with_partition_expiration_duration(azure_duration(config.ownership_expiration))
        .with_prefetch(config.prefetch)
        .with_start_positions(start)
        .build(
            client,
            store.clone() as Arc<dyn CheckpointStore + Send + Sync>,
        )
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot start the event processor: {}", connect::causes(&e))
        })?;
    tracing::info!(
        partitions = properties.partition_ids.len(),
        "connected to Event Hubs"
    );
    Ok(processor)
}

/// Where each partition starts when it has no checkpoint. `latest` becomes each partition's
/// current last sequence number, so a reconnect does not skip what arrived meanwhile.
async fn start_positions(
    client: &ConsumerClient,
    properties: &EventHubProperties,
    start: StartAt,
) -> Result<azure_messaging_eventhubs::models::StartPositions> {
    let mut positions = azure_messaging_eventhubs::models::StartPositions {
        // With a checkpoint the processor keeps this `inclusive: false` and resumes after it.
        default: StartPosition {
            location: StartLocation::Earliest,
            inclusive: false,
        },
        ..Default::default()
    };
    for id in &properties.partition_ids {
        let position = match start {
            StartAt::Earliest => StartPosition {
                location: StartLocation::Earliest,
                inclusive: false,
            },
            StartAt::Time(t) => StartPosition {
                location: StartLocation::EnqueuedTime(t),
                inclusive: true,
            },
            StartAt::Latest => {
                let p = client.get_partition_properties(id).await.map_err(|e| {
                    anyhow::anyhow!("cannot read partition {id}: {}", connect::causes(&e))
                })?;
                if p.is_empty {
                    StartPosition {
                        location: StartLocation::Earliest,
                        inclusive: false,
                    }
                } else {
                    StartPosition {
                        location: StartLocation::SequenceNumber(p.last_enqueued_sequence_number),
                        inclusive: false,
                    }
                }
            }
        };
        positions.per_partition.insert(id.clone(), position);
    }
    Ok(positions)
}

/// Reads one granted partition into the channel until its stream ends or `stop`.
async fn pump(
    client: Arc<PartitionClient>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Result<Event>>,
    stop: CancellationToken,
) {
    let id = client.get_partition_id().to_owned();
    let generation = shared
        .next_generation
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    {
        let mut owned = shared.owned.lock().expect("not poisoned");
        owned.insert(id.clone(), generation);
        metrics::owned_partitions(owned.len());
        shared
            .ever_owned
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    tracing::info!(partition = %id, "partition granted");
    let mut last: Option<i64> = {
        let mut progress = shared.progress.lock().expect("not poisoned");
        let p = progress.entry(id.clone()).or_insert(Progress {
            forwarded: None,
            at: tokio::time::Instant::now(),
            sending: false,
        });
        p.at = tokio::time::Instant::now();
        p.sending = false;
        p.forwarded
    };
    let mut replayed = 0u64;
    let ended = {
        let mut stream = client.stream_events();
        loop {
            let item = tokio::select! {
                _ = stop.cancelled() => break End::Stopped,
                item = stream.next() => item,
            };
            let event = match item {
                None => break End::Failed("the stream ended".to_owned()),
                Some(Err(e))
                    if matches!(
                        e.kind,
                        azure_messaging_eventhubs::error::ErrorKind::ConsumerDisconnected(_)
                    ) =>
                {
                    break End::Taken(connect::causes(&e));
                }
                // No retry can make an entity exist: an unknown consumer group stops the source.
                Some(Err(e)) if connect::is_not_found(&e) => {
                    break End::Missing(connect::causes(&e));
                }
                Some(Err(e)) => break End::Failed(connect::causes(&e)),
                Some(Ok(event)) => event,
            };
            let sequence_number = event.sequence_number();
            // After a reconnect the SDK reads again from where the partition was opened.
            if let (Some(s), Some(l)) = (sequence_number, last)
                && s <= l
            {
                replayed += 1;
                continue;
            }
            if replayed > 0 {
                tracing::info!(partition = %id, replayed, "skipped events read again after a reconnect");
                replayed = 0;
            }
            last = sequence_number.or(last);
            shared.moved(&id, last, true);
            let e = Event {
                partition_id: id.clone(),
                generation,
                sequence_number,
                offset: event.offset().clone(),
                enqueued_micros: event.enqueued_time().and_then(|t| {
                    t.duration_since(UNIX_EPOCH)
                        .ok()
                        .map(|d| d.as_micros() as i64)
                }),
                body: event.event_data().body().unwrap_or_default().to_vec(),
            };
            if tx.send(Ok(e)).await.is_err() {
                break End::Stopped;
            }
            shared.moved(&id, last, false);
        }
    };
    {
        let mut owned = shared.owned.lock().expect("not poisoned");
        if owned.get(&id) == Some(&generation) {
            owned.remove(&id);
        }
        metrics::owned_partitions(owned.len());
    }
    match &ended {
        End::Taken(why) => {
            // The pipeline forgets it; whoever reads it next starts from its checkpoint.
            metrics::partition_lost();
            tracing::info!(partition = %id, reason = %why, "partition taken by another reader");
            shared.progress.lock().expect("not poisoned").remove(&id);
            shared.lag.lock().expect("not poisoned").remove(&id);
            shared.lost.lock().expect("not poisoned").push(id.clone());
        }
        End::Missing(why) => {
            tracing::error!(partition = %id, reason = %why, "partition receiver refused");
            let error = Error::configuration(format!("cannot read partition {id}: {why}"));
            let _ = tx.send(Err(error.into())).await;
        }
        End::Failed(why) => {
            // Still ours: the SDK does not always recover a dropped connection by itself, so
            // the supervisor opens everything again and the partition resumes where it was.
            tracing::warn!(partition = %id, reason = %why, "partition receiver failed");
            shared.reopen.notify_one();
        }
        End::Stopped => tracing::debug!(partition = %id, "partition closed"),
    }
    // Closing removes the partition from the processor's map, so it can grant it again.
    match Arc::try_unwrap(client) {
        Ok(c) => {
            if let Err(e) = tokio::time::timeout(Duration::from_secs(5), c.close()).await {
                tracing::debug!(partition = %id, error = %e, "closing the partition receiver timed out");
            }
        }
        Err(_) => tracing::debug!(partition = %id, "partition client still shared"),
    }
}

/// Why a pump ended.
enum End {
    /// Another reader took the partition (a higher or equal owner level attached).
    Taken(String),
    /// The service says the entity the receiver names does not exist (an unknown consumer
    /// group): a configuration error, which stops the source.
    Missing(String),
    /// The receiver failed; the partition is still ours.
    Failed(String),
    /// The source is stopping or reopening.
    Stopped,
}

fn azure_duration(d: Duration) -> azure_core::time::Duration {
    azure_core::time::Duration::milliseconds(d.as_millis() as i64)
}
