//! A faithful Azure Event Hubs test double: an AMQP 1.0 server that the real
//! `azure_messaging_eventhubs` client talks to, so the ingest service can be tested end to end
//! without Azure.
//!
//! It serves one event hub with N partitions: `$cbs` authorization with SAS tokens (and Entra
//! ID tokens it mints itself), the `$management` READ operations, partition receivers with
//! start positions, prefetch credit and epochs, and producers (single events and batches).
//! Tests append events, inject the service's faults (dropped connections, forced detaches,
//! server busy, idle connections closed, tokens that lapse, retention) and observe receivers
//! through [`EventHubsDouble`].
//!
//! It is as strict as the service where a lenient double would hide a client's mistake:
//! only declared consumer groups exist (`$Default` and [`EventHubsConfig::consumer_groups`]),
//! a token must be declared as what it is and cover the address, one `$cbs` link per
//! connection, offsets only at event boundaries, every performative field written.
//!
//! # What the client does (azure_messaging_eventhubs 0.16.0, azure_core_amqp 1.2.0-beta.1, fe2o3-amqp 0.16.2)
//!
//! Read from the SDK sources (and checked against 0.15.0, which differs only where noted); if
//! the SDK changes, re-check each point.
//!
//! - **Endpoint.** `ConsumerClient::builder().open…(…)` dials `amqps://{namespace}` on 5671
//!   with TLS, whatever port the namespace names; `.with_custom_endpoint("amqp://127.0.0.1:PORT")`
//!   dials that URL instead (plain AMQP) and sends the namespace as the Open `hostname`. Every
//!   audience and link address still uses the namespace: the client's base URL is
//!   `amqps://{namespace}/{hub}/ConsumerGroups/{cg}` (`$Default` unless set).
//! - **SASL.** Always ANONYMOUS; authentication is claims-based (`$cbs`).
//! - **Credentials.** `open_with_connection_string` (new in 0.16; 0.15 only takes a
//!   `TokenCredential`) signs SAS tokens for `amqps://{namespace}/{hub}` with the key's raw
//!   UTF-8 bytes, the resource percent-encoded and lowercased, valid one hour, and declares
//!   them as `servicebus.windows.net:sastoken`. A `TokenCredential` is asked for scope
//!   `https://eventhubs.azure.net/.default` and its token declared `jwt`. The client does not
//!   parse `UseDevelopmentEmulator`.
//! - **`$cbs`.** For every new audience the client begins a *new session*, attaches a sender to
//!   `$cbs` and a receiver from `$cbs` (target `rust_amqp_cbs`, link names
//!   `rust_amqp_cbs-mgmt-sender` / `-receiver`), sends one request, then drops links and
//!   session (closing detaches, then end). It keeps these round trips in sequence on a
//!   connection because the service allows one `$cbs` link per connection and refuses a second
//!   with `amqp:not-allowed`; the double does not enforce that limit. The request: application properties `operation=put-token`, `type`,
//!   `name` = the audience, `expiration` = a timestamp (ms); body = the token as an amqp-value
//!   string; message-id = a ulong counter; `reply-to=rust_amqp_cbs`. The client needs the
//!   delivery accepted, then a reply with application property `status-code` (any integer
//!   type; 202 succeeds) and `status-description`, which ends up in the error's source chain.
//!   It does not check the correlation-id (the double sets it to the request's message-id).
//!   Audiences: `amqps://{ns}/{hub}/ConsumerGroups/{cg}/$management` for management and
//!   `amqps://{ns}/{hub}/ConsumerGroups/{cg}/Partitions/{p}` for each receiver. Tokens are
//!   refreshed 6 minutes before expiry the same way.
//! - **`$management`.** One long-lived session, node address `$management`, client node
//!   `eventhubs_management`. Requests: `operation=READ`, `type=com.microsoft:eventhub` or
//!   `com.microsoft:partition`, `name` = hub, `partition` = id, and `security_token` = the
//!   token string; empty body. The reply (`status-code` 200) carries an amqp-value map with
//!   string keys. Eventhub: `name` (string), `created_at` (timestamp), `partition_count`,
//!   `partition_ids` (an AMQP *array* of strings; a list fails the call). Partition: `type`,
//!   `name`, `partition`, `begin_sequence_number` (long), `last_enqueued_sequence_number`
//!   (long), `last_enqueued_offset` (string), `last_enqueued_time_utc` (timestamp),
//!   `is_partition_empty` (bool), `last_enqueued_sequence_number_epoch` (only its presence is
//!   checked). A missing key fails the call; a wrongly typed value *panics* the client.
//! - **Receivers.** `open_receiver_on_partition` attaches nothing: the link is attached on the
//!   first poll of `stream_events`, one session per partition address. Attach: role receiver,
//!   rcv-settle-mode first, name = a UUID (or the client's instance id), source address =
//!   `amqps://{ns}/{hub}/ConsumerGroups/{cg}/Partitions/{p}`, source filter
//!   `apache.org:selector-filter:string` = described(`0x468C00000004`, expression) with the
//!   expression `amqp.annotation.x-opt-offset > '-1'` (earliest),
//!   `amqp.annotation.x-opt-offset > '@latest'` (latest, the default), or
//!   `amqp.annotation.x-opt-{offset|sequence-number|enqueued-time} >'v'` / `>='v'` (enqueued
//!   time in ms since the epoch); link properties `com.microsoft.com:receiver-name` and, with an
//!   owner level, `com.microsoft:epoch` (long). The EventProcessor always sets owner level 0.
//!   Credit: auto, prefetch 300 by default. Closing a receiver sends a non-closing detach and
//!   waits for the answer; the double answers in kind (a closing answer would make the client
//!   re-attach and close).
//! - **Deliveries.** Message annotations `x-opt-sequence-number` (long), `x-opt-offset`
//!   (string), `x-opt-enqueued-time` (timestamp), optional `x-opt-partition-key` (string); a
//!   wrongly typed annotation reads as absent. Body: one data section. The double sends them
//!   pre-settled.
//! - **Errors.** A link detached with `amqp:link:stolen` ends the receiver's stream with
//!   `ConsumerDisconnected` (not retried). A lost connection is retried by the client
//!   (reconnect, re-authorize, re-attach) with the receiver's *original* filter: a plain
//!   receiver opened at "earliest" starts over after a reconnect. A put-token refused with 401
//!   fails the call, not retried.
//! - **EventProcessor** (with a checkpoint store) calls `get_eventhub_properties` once, then
//!   opens one receiver per claimed partition with owner level 0, prefetch 300, and a start
//!   position from the checkpoint (offset, else sequence number) or its defaults; checkpoints
//!   record the `x-opt-offset` and `x-opt-sequence-number` annotations.
//!
//! # What the double does as the service does
//!
//! Sequence numbers count from 0 per partition; offsets are the byte position in the partition
//! as a decimal string; enqueued time is the append time. Epochs steal and refuse as the
//! service (see `receiver.rs`). SAS tokens are verified (signature, key name, expiry, audience)
//! and a refused token gets 401 with the service's description (`InvalidSignature: The token
//! has an invalid signature.`, `ExpiredToken: …`). A receiver whose connection has not put a
//! token covering its address is closed with `amqp:unauthorized-access`.

mod auth;
mod management;
mod producer;
mod receiver;
mod server;
mod store;

pub use auth::{ENTRA_AUDIENCE, entra_token, sas_token};

pub use receiver::{LinkFault, ReceiverInfo};

use anyhow::{Context, Result, bail};
use server::Hub;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// What the double serves and whom it lets in.
#[derive(Debug, Clone)]
pub struct EventHubsConfig {
    /// The fully qualified namespace the client is opened with; audiences and SAS resources
    /// must be in it.
    pub namespace: String,
    pub event_hub: String,
    pub partition_count: usize,
    /// Consumer groups the event hub has besides `$Default`; a receiver naming another is
    /// refused with `amqp:not-found`, as the service refuses it.
    pub consumer_groups: Vec<String>,
    /// The shared access policy whose key signs SAS tokens.
    pub key_name: String,
    pub key: String,
    /// The key the double signs Entra ID tokens with ([`EventHubsDouble::entra_token`]);
    /// `None` accepts SAS tokens only.
    pub entra_key: Option<String>,
    /// How long one put-token authorizes a connection at most, whatever the token's own
    /// expiry: a short cap makes links outlive their authorization within a test.
    pub max_token_lifetime: Option<std::time::Duration>,
    /// The port to listen on at 127.0.0.1; 0 picks a free one.
    pub port: u16,
}

impl Default for EventHubsConfig {
    fn default() -> Self {
        EventHubsConfig {
            namespace: "mfagap-test.servicebus.windows.net".to_string(),
            event_hub: "signinlogs".to_string(),
            partition_count: 4,
            consumer_groups: Vec::new(),
            key_name: "RootManageSharedAccessKey".to_string(),
            key: "bWZhZ2FwLXRlc3Qta2V5LW5vdC1hLXNlY3JldA==".to_string(),
            entra_key: None,
            max_token_lifetime: None,
            port: 0,
        }
    }
}

/// A running Event Hubs double on 127.0.0.1, with its own tokio runtime so synchronous tests can
/// use it; stopped (every connection closed) when dropped.
pub struct EventHubsDouble {
    hub: Arc<Hub>,
    port: u16,
    runtime: Option<tokio::runtime::Runtime>,
}

impl EventHubsDouble {
    /// Binds 127.0.0.1 (on `config.port`, or a free port) and starts serving.
    pub fn start(config: EventHubsConfig) -> Result<EventHubsDouble> {
        if config.partition_count == 0 {
            bail!("an event hub needs at least one partition");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("eventhubs-double")
            .enable_all()
            .build()
            .context("starting the Event Hubs double's runtime")?;
        // A 16 KiB MSS: on loopback a client may otherwise read back an MSS above 32767, which
        // Python's client sets again and Linux refuses (EINVAL).
        let listener = {
            use socket2::{Domain, Socket, Type};
            let addr: std::net::SocketAddr = ([127, 0, 0, 1], config.port).into();
            let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
            socket.set_reuse_address(true)?;
            socket.set_tcp_mss(16384)?;
            socket
                .bind(&addr.into())
                .with_context(|| format!("binding 127.0.0.1:{}", config.port))?;
            socket.listen(1024)?;
            std::net::TcpListener::from(socket)
        };
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let hub = Arc::new(Hub {
            keys: auth::Keys {
                namespaces: namespace_aliases(&config.namespace, port),
                key_name: config.key_name,
                key: config.key,
                entra_key: config.entra_key,
                max_token_lifetime: config.max_token_lifetime,
            },
            namespace: config.namespace,
            event_hub: config.event_hub,
            consumer_groups: config.consumer_groups,
            store: store::Store::new(config.partition_count),
            created_ms: store::now_ms(),
            ownership: Arc::default(),
            connections: Default::default(),
            connections_accepted: Default::default(),
            authorizations_granted: Default::default(),
            authorizations_refused: Default::default(),
            muted: Default::default(),
            attaches: Default::default(),
            expired_links: Default::default(),
            cbs_links_refused: Default::default(),
            events_received: Default::default(),
            live: Default::default(),
        });
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        runtime.spawn(server::listen(hub.clone(), listener));
        Ok(EventHubsDouble {
            hub,
            port,
            runtime: Some(runtime),
        })
    }

    /// `amqp://127.0.0.1:PORT`: what the client's `with_custom_endpoint` takes.
    pub fn endpoint(&self) -> String {
        format!("amqp://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection string as the Azure portal shows it, for the namespace (and the hub with
    /// `with_entity_path`). It names the real namespace: pair it with [`Self::endpoint`].
    pub fn connection_string(&self, with_entity_path: bool) -> String {
        let mut s = format!(
            "Endpoint=sb://{}/;SharedAccessKeyName={};SharedAccessKey={}",
            self.hub.namespace, self.hub.keys.key_name, self.hub.keys.key
        );
        if with_entity_path {
            s.push_str(&format!(";EntityPath={}", self.hub.event_hub));
        }
        s
    }

    /// A connection string in the Event Hubs emulator's form, pointing at the double itself:
    /// a client honouring `UseDevelopmentEmulator=true` dials `amqp://127.0.0.1:PORT`. The
    /// double answers to `127.0.0.1[:PORT]` and `localhost[:PORT]` as aliases of its namespace,
    /// so audiences and SAS resources naming the endpoint are accepted too.
    pub fn emulator_connection_string(&self) -> String {
        format!(
            "Endpoint=sb://127.0.0.1:{};SharedAccessKeyName={};SharedAccessKey={};UseDevelopmentEmulator=true;EntityPath={}",
            self.port, self.hub.keys.key_name, self.hub.keys.key, self.hub.event_hub
        )
    }

    pub fn namespace(&self) -> &str {
        &self.hub.namespace
    }

    pub fn event_hub(&self) -> &str {
        &self.hub.event_hub
    }

    pub fn partition_count(&self) -> usize {
        self.hub.store.partitions.len()
    }

    pub fn key_name(&self) -> &str {
        &self.hub.keys.key_name
    }

    pub fn key(&self) -> &str {
        &self.hub.keys.key
    }

    /// Appends one event: with a key, to the partition the key hashes to (stable across runs);
    /// without, round robin. Receivers streaming that partition get it at once. Returns the
    /// partition and the event's sequence number.
    pub fn append(&self, partition_key: Option<&str>, body: &[u8]) -> (usize, i64) {
        self.hub.store.append(partition_key, body)
    }

    /// Appends each body round robin; returns how many.
    pub fn append_bodies<I, B>(&self, bodies: I) -> usize
    where
        I: IntoIterator<Item = B>,
        B: AsRef<[u8]>,
    {
        let mut count = 0;
        for body in bodies {
            self.append(None, body.as_ref());
            count += 1;
        }
        count
    }

    /// Appends each non-empty line of a JSON Lines file as one event body, round robin;
    /// returns how many.
    pub fn append_lines(&self, path: impl AsRef<Path>) -> Result<usize> {
        let path = path.as_ref();
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let lines = data
            .split(|b| *b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace));
        Ok(self.append_bodies(lines))
    }

    /// How many events `partition` holds.
    pub fn len(&self, partition: usize) -> usize {
        self.hub
            .store
            .partitions
            .get(partition)
            .map_or(0, |p| p.len())
    }

    /// Whether every partition is empty.
    pub fn is_empty(&self) -> bool {
        self.hub.store.partitions.iter().all(|p| p.len() == 0)
    }

    /// The sequence number of the last event in `partition`, if any.
    pub fn last_sequence_number(&self, partition: usize) -> Option<i64> {
        let p = self.hub.store.partitions.get(partition)?;
        p.last().map(|e| e.sequence_number)
    }

    /// The offset (as the client sees it) of the event with sequence number `seq`.
    pub fn offset_of(&self, partition: usize, seq: i64) -> Option<String> {
        let p = self.hub.store.partitions.get(partition)?;
        let event = p.get(usize::try_from(seq).ok()?)?;
        Some(event.offset.to_string())
    }

    /// Closes every client connection abruptly (TCP shutdown, no AMQP close), as a network
    /// failure would; clients must reconnect.
    pub fn drop_connections(&self) {
        self.hub.drop_connections();
    }

    /// The next `receivers` receivers attached to `partition` stay attached but never deliver
    /// anything, with no error: how a receiver left "recovered" onto nothing looks to a client.
    pub fn mute(&self, partition: usize, receivers: usize) {
        *server::lock(&self.hub.muted).entry(partition).or_default() += receivers;
    }

    /// An Entra ID access token for Event Hubs, valid for `ttl`, that this double accepts
    /// (its `entra_key` must be set); with its expiry in Unix seconds.
    pub fn entra_token(&self, ttl: std::time::Duration) -> (String, u64) {
        let key = self
            .hub
            .keys
            .entra_key
            .as_deref()
            .expect("EventHubsConfig::entra_key is set");
        auth::entra_token(key, ENTRA_AUDIENCE, ttl)
    }

    /// Every partition receiver attached so far, in order, with where each started.
    pub fn attaches(&self) -> Vec<ReceiverInfo> {
        server::lock(&self.hub.attaches).clone()
    }

    /// Ends the receivers on `partition` (on every partition when `None`) with `fault`, as
    /// the service detaches a link on its own; returns how many.
    pub fn fault(&self, partition: Option<usize>, fault: LinkFault) -> usize {
        let id = partition.map(|p| p.to_string());
        self.hub.ownership.fault(id.as_deref(), fault)
    }

    /// Closes, with the service's `amqp:connection:forced`, every client connection that did
    /// nothing for `idle`; returns how many.
    pub fn close_idle_connections(&self, idle: std::time::Duration) -> usize {
        self.hub.close_idle(idle)
    }

    /// Retention passed the events of `partition` before sequence number `sequence_number`:
    /// they are no longer served and the partition's beginning moves.
    pub fn expire_before(&self, partition: usize, sequence_number: i64) {
        if let Some(p) = self.hub.store.partitions.get(partition) {
            p.expire_before(usize::try_from(sequence_number).unwrap_or(0));
        }
    }

    /// The sequence number of the oldest event `partition` retains.
    pub fn begin_sequence_number(&self, partition: usize) -> i64 {
        self.hub
            .store
            .partitions
            .get(partition)
            .map_or(0, |p| p.begin() as i64)
    }

    /// Links closed because their authorization lapsed without renewal.
    pub fn expired_links(&self) -> u64 {
        self.hub.expired_links.load(Ordering::Relaxed)
    }

    /// Second `$cbs` links refused on a connection that had one open.
    pub fn cbs_links_refused(&self) -> u64 {
        self.hub.cbs_links_refused.load(Ordering::Relaxed)
    }

    /// Events producers sent to the double.
    pub fn events_received(&self) -> u64 {
        self.hub.events_received.load(Ordering::Relaxed)
    }

    /// Client connections open now.
    pub fn connection_count(&self) -> usize {
        server::lock(&self.hub.connections).len()
    }

    /// Client connections accepted since start.
    pub fn connections_accepted(&self) -> u64 {
        self.hub.connections_accepted.load(Ordering::Relaxed)
    }

    /// The receivers attached now, with their consumer group, partition, epoch and connection.
    pub fn receivers(&self) -> Vec<ReceiverInfo> {
        self.hub.ownership.receivers()
    }

    /// Events delivered from `partition` over every link so far (re-deliveries count again).
    pub fn delivered(&self, partition: usize) -> u64 {
        self.hub
            .store
            .partitions
            .get(partition)
            .map_or(0, |p| p.delivered.load(Ordering::Relaxed))
    }

    /// Put-token requests accepted.
    pub fn authorizations_granted(&self) -> u64 {
        self.hub.authorizations_granted.load(Ordering::Relaxed)
    }

    /// Put-token requests refused (401 or malformed).
    pub fn authorizations_refused(&self) -> u64 {
        self.hub.authorizations_refused.load(Ordering::Relaxed)
    }
}

/// The names the double answers to: its namespace, and the endpoint as an emulator client
/// names it.
fn namespace_aliases(namespace: &str, port: u16) -> Vec<String> {
    let mut names = vec![namespace.to_ascii_lowercase()];
    for host in ["127.0.0.1", "localhost"] {
        names.push(format!("{host}:{port}"));
        names.push(host.to_string());
    }
    names
}

impl Drop for EventHubsDouble {
    fn drop(&mut self) {
        self.hub.drop_connections();
        if let Some(runtime) = self.runtime.take() {
            // Allowed inside an async context, unlike dropping the runtime.
            runtime.shutdown_background();
        }
    }
}
