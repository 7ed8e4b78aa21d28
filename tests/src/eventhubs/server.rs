//! The AMQP listener: accepts connections, sessions and links, and routes each link to what
//! serves it — `$cbs`, `$management`, or a partition.
//!
//! Every connection, session and link runs in its own task, so a client may keep many sessions
//! open at once (one per authorization round-trip, one for management, one per partition), and
//! every detach and end the client sends is answered.
//!
//! Performatives carry every field, as the service writes them: fe2o3 leaves out trailing
//! fields that are empty, and clients that read fields by position (Python's `azure-eventhub`)
//! fail on a short Open, Begin, Attach or Transfer. Filling the last field of each (its
//! properties; `batchable` on transfers) makes fe2o3 write all of them. Deliveries to clients
//! are settled, whatever settle mode the client asks for, as the service sends events.

use super::auth::{self, Grants, Keys};
use super::management;
use super::receiver::{self, Ownership};
use super::store::Store;
use super::store::now_ms;
use fe2o3_amqp::acceptor::{
    ConnectionAcceptor, LinkAcceptor, LinkEndpoint, ListenerSessionHandle, SaslAnonymousMechanism,
    SessionAcceptor, SupportedReceiverSettleModes, SupportedSenderSettleModes,
};
use fe2o3_amqp::link::{DetachError, RecvError};
use fe2o3_amqp::{Receiver, Sendable, Sender};
use fe2o3_amqp_types::definitions::{
    self, AmqpError, ConnectionError, ErrorCondition, Fields, ReceiverSettleMode, Role,
    SenderSettleMode,
};
use fe2o3_amqp_types::messaging::{AmqpValue, Body, Message, TargetArchetype};
use fe2o3_amqp_types::primitives::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};

/// How long the double waits for a client to answer a detach it sends.
const DETACH_TIMEOUT: Duration = Duration::from_secs(5);

/// A reply on `$cbs` or `$management`.
pub(crate) type Reply = Message<AmqpValue<Value>>;

/// Everything the double's tasks share.
pub(crate) struct Hub {
    pub namespace: String,
    pub event_hub: String,
    /// Consumer groups a receiver may name; empty accepts any.
    pub consumer_groups: Vec<String>,
    pub keys: Keys,
    pub store: Store,
    /// When the hub was "created", for the event hub properties.
    pub created_ms: i64,
    pub ownership: Arc<Ownership>,
    /// Open client connections, by id, with a handle to shut their socket down.
    pub connections: Mutex<HashMap<u64, std::net::TcpStream>>,
    pub connections_accepted: AtomicU64,
    pub authorizations_granted: AtomicU64,
    pub authorizations_refused: AtomicU64,
    /// Per partition, how many of the next receivers stay attached but deliver nothing.
    pub muted: Mutex<HashMap<usize, usize>>,
    /// Every partition receiver attach accepted, in order, with where it started.
    pub attaches: Mutex<Vec<super::ReceiverInfo>>,
    /// Links closed because their authorization expired without renewal.
    pub expired_links: AtomicU64,
    /// `$cbs` links refused because the connection had one open already.
    pub cbs_links_refused: AtomicU64,
    /// Events producers sent, accepted.
    pub events_received: AtomicU64,
    /// The live connections, for faults aimed at them.
    pub live: Mutex<HashMap<u64, Arc<Connection>>>,
}

impl Hub {
    /// Whether the receiver attaching now to `partition` is one to leave silent.
    pub(crate) fn take_muted(&self, partition: usize) -> bool {
        match lock(&self.muted).get_mut(&partition) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// Closes every client socket without an AMQP close, as a network failure would.
    pub(crate) fn drop_connections(&self) {
        let connections = std::mem::take(&mut *lock(&self.connections));
        for (_, socket) in connections {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// What one connection knows about its client: its id and the tokens it put.
pub(crate) struct Connection {
    pub id: u64,
    pub grants: Grants,
    /// `$cbs` request links attached now: the service allows one per connection.
    pub cbs_links: AtomicUsize,
    /// When the client last did something (Unix milliseconds): a session, an attach, a
    /// request, a delivery.
    pub last_activity: AtomicI64,
    /// Set to close the connection from the service's side, with this error.
    pub closing: Mutex<Option<definitions::Error>>,
    pub close: Notify,
}

impl Connection {
    pub(crate) fn touch(&self) {
        self.last_activity.store(now_ms(), Ordering::Relaxed);
    }
}

impl Hub {
    /// Closes, from the service's side, every connection idle for at least `idle`, with the
    /// service's words; returns how many.
    pub(crate) fn close_idle(&self, idle: Duration) -> usize {
        let now = now_ms();
        let mut n = 0;
        for c in lock(&self.live).values() {
            if now - c.last_activity.load(Ordering::Relaxed) >= idle.as_millis() as i64 {
                *lock(&c.closing) = Some(full_error(
                    ConnectionError::ConnectionForced.into(),
                    format!(
                        "The connection was inactive for more than the allowed {} milliseconds and is closed by container 'eventhubs-double-{}'.",
                        idle.as_millis(),
                        c.id
                    ),
                ));
                c.close.notify_one();
                n += 1;
            }
        }
        n
    }
}

/// Accepts connections until the runtime shuts down.
pub(crate) async fn listen(hub: Arc<Hub>, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let id = hub.connections_accepted.fetch_add(1, Ordering::Relaxed) + 1;
        let Ok((stream, socket)) = split_handle(stream) else {
            continue;
        };
        lock(&hub.connections).insert(id, socket);
        tokio::spawn(serve_connection(hub.clone(), id, stream));
    }
}

/// A second handle on the socket, so `drop_connections` can shut it down under the AMQP engine.
fn split_handle(stream: TcpStream) -> std::io::Result<(TcpStream, std::net::TcpStream)> {
    let stream = stream.into_std()?;
    let handle = stream.try_clone()?;
    Ok((TcpStream::from_std(stream)?, handle))
}

async fn serve_connection(hub: Arc<Hub>, id: u64, stream: TcpStream) {
    // The client always negotiates SASL ANONYMOUS and authenticates with `$cbs` afterwards.
    // The frame size and channel limit are the service's.
    let acceptor = ConnectionAcceptor::builder()
        .container_id(format!("eventhubs-double-{id}"))
        .max_frame_size(65536u32)
        .channel_max(4999u16)
        .properties(Fields::default())
        .sasl_acceptor(SaslAnonymousMechanism::new())
        .build();
    if let Ok(mut handle) = acceptor.accept(stream).await {
        let connection = Arc::new(Connection {
            id,
            grants: Grants::default(),
            cbs_links: AtomicUsize::new(0),
            last_activity: AtomicI64::new(now_ms()),
            closing: Mutex::new(None),
            close: Notify::new(),
        });
        lock(&hub.live).insert(id, connection.clone());
        let sessions = SessionAcceptor::builder()
            .handle_max(255u32)
            .properties(Fields::default())
            .build();
        loop {
            let incoming = tokio::select! {
                incoming = handle.next_incoming_session() => incoming,
                _ = connection.close.notified() => break,
            };
            let Some(incoming) = incoming else { break };
            connection.touch();
            match sessions
                .accept_incoming_session(incoming, &mut handle)
                .await
            {
                Ok(session) => {
                    tokio::spawn(serve_session(hub.clone(), connection.clone(), session));
                }
                Err(_) => break,
            }
        }
        lock(&hub.live).remove(&id);
        let closing = lock(&connection.closing).take();
        let _ = tokio::time::timeout(DETACH_TIMEOUT, async {
            match closing {
                Some(error) => handle.close_with_error(error).await,
                None => handle.close().await,
            }
        })
        .await;
    }
    if let Some(socket) = lock(&hub.connections).remove(&id) {
        let _ = socket.shutdown(std::net::Shutdown::Both);
    }
}

/// Where an incoming attach goes.
enum Route {
    /// The client's sender to `$cbs` or `$management`: requests arrive on it.
    Requests(Node),
    /// The client's receiver from `$cbs` or `$management`: replies leave on it.
    Replies(Node),
    /// The client's receiver on a partition.
    Partition(String),
    /// The client's sender to the event hub (or to one of its partitions): events arrive.
    Producer(String),
}

/// The two request/response nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Node {
    Cbs,
    Management,
}

impl Node {
    fn from_address(address: &str) -> Option<Node> {
        match address {
            "$cbs" => Some(Node::Cbs),
            "$management" => Some(Node::Management),
            _ => None,
        }
    }
}

fn route(attach: &fe2o3_amqp_types::performatives::Attach) -> Route {
    match attach.role {
        Role::Sender => {
            let address = attach.target.as_deref().and_then(|t| match t {
                TargetArchetype::Target(t) => t.address.clone(),
                #[allow(unreachable_patterns)]
                _ => None,
            });
            let address = address.unwrap_or_default();
            match Node::from_address(&address) {
                Some(node) => Route::Requests(node),
                None => Route::Producer(address),
            }
        }
        Role::Receiver => {
            let address = attach
                .source
                .as_ref()
                .and_then(|s| s.address.clone())
                .unwrap_or_default();
            match Node::from_address(&address) {
                Some(node) => Route::Replies(node),
                None => Route::Partition(address),
            }
        }
    }
}

/// Reply links of one session, by node: a request on `$cbs` is answered on the session's
/// receiver from `$cbs`.
#[derive(Default)]
struct Replies {
    routes: Mutex<HashMap<Node, mpsc::UnboundedSender<Reply>>>,
    attached: Notify,
}

impl Replies {
    fn register(&self, node: Node, tx: mpsc::UnboundedSender<Reply>) {
        lock(&self.routes).insert(node, tx);
        self.attached.notify_waiters();
    }

    /// Sends `reply` on the node's reply link, waiting a little for the client to attach it.
    async fn send(&self, node: Node, reply: Reply) {
        let deadline = tokio::time::Instant::now() + DETACH_TIMEOUT;
        loop {
            let attached = self.attached.notified();
            tokio::pin!(attached);
            attached.as_mut().enable();
            if let Some(tx) = lock(&self.routes).get(&node) {
                let _ = tx.send(reply);
                return;
            }
            if tokio::time::timeout_at(deadline, attached).await.is_err() {
                return;
            }
        }
    }
}

async fn serve_session(
    hub: Arc<Hub>,
    connection: Arc<Connection>,
    mut session: ListenerSessionHandle,
) {
    let replies = Arc::new(Replies::default());
    // Every Attach field written (properties last), deliveries settled whatever the client
    // asks, and producers' deliveries settled at once (receiver settle mode first).
    let links = LinkAcceptor::builder()
        .properties(Fields::default())
        .max_message_size(1_048_576u64)
        .supported_sender_settle_modes(SupportedSenderSettleModes::SettledAndMixed)
        .fallback_sender_settle_mode(SenderSettleMode::Settled)
        .supported_receiver_settle_modes(SupportedReceiverSettleModes::First)
        .fallback_receiver_settle_mode(ReceiverSettleMode::First)
        .build();
    while let Some(attach) = session.next_incoming_attach().await {
        connection.touch();
        let route = route(&attach);
        match route {
            Route::Producer(address) => {
                let opened = super::producer::open(&hub, &connection, &address);
                let Ok(LinkEndpoint::Receiver(link)) =
                    links.accept_incoming_attach(attach, &mut session).await
                else {
                    continue;
                };
                match opened {
                    Ok(target) => {
                        tokio::spawn(super::producer::serve(
                            hub.clone(),
                            connection.clone(),
                            link,
                            target,
                        ));
                    }
                    Err(error) => {
                        tokio::spawn(async move {
                            let _ =
                                tokio::time::timeout(DETACH_TIMEOUT, link.close_with_error(error))
                                    .await;
                        });
                    }
                }
            }
            Route::Requests(Node::Cbs) if connection.cbs_links.load(Ordering::Acquire) > 0 => {
                // One `$cbs` link per connection, as the service allows.
                hub.cbs_links_refused.fetch_add(1, Ordering::Relaxed);
                let error = full_error(
                    AmqpError::NotAllowed.into(),
                    "A link to '$cbs' is already open on this connection; only one is allowed."
                        .into(),
                );
                if let Ok(LinkEndpoint::Receiver(link)) =
                    links.accept_incoming_attach(attach, &mut session).await
                {
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(DETACH_TIMEOUT, link.close_with_error(error))
                            .await;
                    });
                }
            }
            Route::Partition(address) => {
                let opened = receiver::open(&hub, &connection, &address, &attach);
                let Ok(LinkEndpoint::Sender(sender)) =
                    links.accept_incoming_attach(attach, &mut session).await
                else {
                    continue;
                };
                match opened {
                    Ok(stream) => {
                        tokio::spawn(stream.serve(hub.clone(), sender));
                    }
                    Err(error) => {
                        tokio::spawn(refuse_sender(sender, error));
                    }
                }
            }
            Route::Requests(node) => {
                let Ok(LinkEndpoint::Receiver(link)) =
                    links.accept_incoming_attach(attach, &mut session).await
                else {
                    continue;
                };
                if node == Node::Cbs {
                    connection.cbs_links.fetch_add(1, Ordering::AcqRel);
                }
                tokio::spawn(serve_requests(
                    hub.clone(),
                    connection.clone(),
                    link,
                    node,
                    replies.clone(),
                ));
            }
            Route::Replies(node) => {
                let Ok(LinkEndpoint::Sender(link)) =
                    links.accept_incoming_attach(attach, &mut session).await
                else {
                    continue;
                };
                let (tx, rx) = mpsc::unbounded_channel();
                replies.register(node, tx);
                tokio::spawn(serve_replies(link, rx));
            }
        }
    }
}

/// Answers requests arriving on `$cbs` or `$management` until the client detaches.
async fn serve_requests(
    hub: Arc<Hub>,
    connection: Arc<Connection>,
    mut link: Receiver,
    node: Node,
    replies: Arc<Replies>,
) {
    // The `$cbs` link count drops when this link ends, however it ends.
    struct CbsLink(Option<Arc<Connection>>);
    impl Drop for CbsLink {
        fn drop(&mut self) {
            if let Some(c) = &self.0 {
                c.cbs_links.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
    let _cbs = CbsLink((node == Node::Cbs).then(|| connection.clone()));
    loop {
        let delivery = match link.recv::<Body<Value>>().await {
            Ok(delivery) => delivery,
            // The receiver answers a detach itself before returning it.
            Err(RecvError::LinkStateError(_)) => return,
            Err(_) => continue,
        };
        connection.touch();
        let _ = link.accept(&delivery).await;
        let request = delivery.into_message();
        let reply = match node {
            Node::Cbs => auth::put_token(&hub, &connection, &request),
            Node::Management => management::read(&hub, &request),
        };
        replies.send(node, reply).await;
    }
}

/// Sends replies, pre-settled, on a reply link until the client detaches it.
async fn serve_replies(mut link: Sender, mut replies: mpsc::UnboundedReceiver<Reply>) {
    loop {
        tokio::select! {
            reply = replies.recv() => {
                let Some(reply) = reply else { break };
                let sendable = Sendable::builder().message(reply).settled(true).build();
                // Batchable: fe2o3 then writes every field of the transfer.
                if link.send_batchable(sendable).await.is_err() {
                    return;
                }
            }
            detached = link.on_detach() => {
                answer_detach(link, detached).await;
                return;
            }
        }
    }
    let detached = link.on_detach().await;
    answer_detach(link, detached).await;
}

/// Answers a detach the client sent, in kind: a detach with a detach, a close with a close.
pub(crate) async fn answer_detach(link: Sender, detached: DetachError) {
    let answer = async move {
        match detached {
            DetachError::DetachedByRemote | DetachError::RemoteDetachedWithError(_) => {
                let _ = link.detach().await;
            }
            DetachError::ClosedByRemote | DetachError::RemoteClosedWithError(_) => {
                let _ = link.close().await;
            }
            _ => {}
        }
    };
    let _ = tokio::time::timeout(DETACH_TIMEOUT, answer).await;
}

/// Completes the attach and closes the link with `error`, as the service refuses a link.
pub(crate) async fn refuse_sender(link: Sender, error: definitions::Error) {
    let _ = tokio::time::timeout(DETACH_TIMEOUT, link.close_with_error(error)).await;
}

/// An AMQP error with a condition and a description; its (empty) info makes fe2o3 write
/// all three fields, which clients that read by position need.
pub(crate) fn amqp_error(
    condition: impl Into<ErrorCondition>,
    description: String,
) -> definitions::Error {
    full_error(condition.into(), description)
}

pub(crate) fn full_error(condition: ErrorCondition, description: String) -> definitions::Error {
    definitions::Error::new(condition, description, Some(Fields::default()))
}

/// Locks a mutex, ignoring poisoning: the data stays usable for a test double.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
