//! The AMQP listener: accepts connections, sessions and links, and routes each link to what
//! serves it — `$cbs`, `$management`, or a partition.
//!
//! Every connection, session and link runs in its own task, so a client may keep many sessions
//! open at once (one per authorization round-trip, one for management, one per partition), and
//! every detach and end the client sends is answered.

use super::auth::{self, Grants, Keys};
use super::management;
use super::receiver::{self, Ownership};
use super::store::Store;
use fe2o3_amqp::acceptor::{
    ConnectionAcceptor, LinkAcceptor, LinkEndpoint, ListenerSessionHandle, SaslAnonymousMechanism,
    SessionAcceptor,
};
use fe2o3_amqp::link::{DetachError, RecvError};
use fe2o3_amqp::{Receiver, Sendable, Sender};
use fe2o3_amqp_types::definitions::{self, AmqpError, ErrorCondition, Role};
use fe2o3_amqp_types::messaging::{AmqpValue, Body, Message, TargetArchetype};
use fe2o3_amqp_types::primitives::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
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
    let acceptor = ConnectionAcceptor::builder()
        .container_id(format!("eventhubs-double-{id}"))
        .sasl_acceptor(SaslAnonymousMechanism::new())
        .build();
    if let Ok(mut handle) = acceptor.accept(stream).await {
        let connection = Arc::new(Connection {
            id,
            grants: Grants::default(),
        });
        let sessions = SessionAcceptor::new();
        while let Some(incoming) = handle.next_incoming_session().await {
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
        let _ = tokio::time::timeout(DETACH_TIMEOUT, handle.close()).await;
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
    Unknown(String),
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
                None => Route::Unknown(address),
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
    let links = LinkAcceptor::new();
    while let Some(attach) = session.next_incoming_attach().await {
        let route = route(&attach);
        match route {
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
            Route::Unknown(address) => {
                let error = definitions::Error::new(
                    AmqpError::NotFound,
                    format!("The messaging entity '{address}' could not be found."),
                    None,
                );
                match links.accept_incoming_attach(attach, &mut session).await {
                    Ok(LinkEndpoint::Sender(link)) => {
                        tokio::spawn(refuse_sender(link, error));
                    }
                    Ok(LinkEndpoint::Receiver(link)) => {
                        tokio::spawn(async move {
                            let _ =
                                tokio::time::timeout(DETACH_TIMEOUT, link.close_with_error(error))
                                    .await;
                        });
                    }
                    Err(_) => {}
                }
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
    loop {
        let delivery = match link.recv::<Body<Value>>().await {
            Ok(delivery) => delivery,
            // The receiver answers a detach itself before returning it.
            Err(RecvError::LinkStateError(_)) => return,
            Err(_) => continue,
        };
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
                if link.send(sendable).await.is_err() {
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

/// An AMQP error with a condition and a description.
pub(crate) fn amqp_error(
    condition: impl Into<ErrorCondition>,
    description: String,
) -> definitions::Error {
    definitions::Error::new(condition, description, None)
}

/// Locks a mutex, ignoring poisoning: the data stays usable for a test double.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
