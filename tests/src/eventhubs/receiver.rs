//! Partition receivers: checking an attach (address, authorization, epoch, start position) and
//! streaming the partition's events to the client.
//!
//! Epochs (owner levels) follow the service: a receiver with epoch E disconnects every receiver
//! on the same consumer group and partition with no epoch or an epoch ≤ E (`amqp:link:stolen`);
//! an attach with an epoch lower than a current holder's, or without an epoch while an epoch
//! receiver holds the partition, is refused.

use super::server::{Connection, Hub, amqp_error, answer_detach, lock, refuse_sender};
use super::store::{Event, StartAt, now_ms};
use fe2o3_amqp::{Sendable, Sender};
use fe2o3_amqp_types::definitions::{self, AmqpError, ErrorCondition, LinkError};
use fe2o3_amqp_types::messaging::{Data, Message, MessageAnnotations, annotations::OwnedKey};
use fe2o3_amqp_types::performatives::Attach;
use fe2o3_amqp_types::primitives::{Binary, OrderedMap, Symbol, Timestamp, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

const EPOCH_PROPERTY: &str = "com.microsoft:epoch";
const SELECTOR_FILTER: &str = "apache.org:selector-filter:string";

/// A receiver attached to a partition, as tests observe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverInfo {
    pub consumer_group: String,
    pub partition: String,
    /// The owner level the receiver attached with, if any.
    pub epoch: Option<i64>,
    /// Which client connection (numbered from 1 in accept order) holds the link.
    pub connection: u64,
    /// The link name the client chose.
    pub link_name: String,
    /// The start the client asked for: its selector expression, or `earliest` without one.
    pub start: String,
    /// The sequence number of the first event the link delivers (the partition's length when
    /// it starts at the end).
    pub first_sequence: i64,
}

/// Why the double ends a link on its own: what a test injects, as the service sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFault {
    /// `amqp:link:detach-forced`: the service moved the partition (an upgrade, a failover).
    DetachForced,
    /// `com.microsoft:server-busy`: the namespace is throttling.
    ServerBusy,
}

impl LinkFault {
    fn error(self) -> (ErrorCondition, String) {
        match self {
            LinkFault::DetachForced => (
                LinkError::DetachForced.into(),
                "The link was detached by the service: the partition moved (double fault).".into(),
            ),
            LinkFault::ServerBusy => (
                ErrorCondition::Custom(Symbol::from("com.microsoft:server-busy")),
                "The request was terminated because the entity is being throttled. Please wait 4 seconds and try again (double fault).".into(),
            ),
        }
    }
}

/// Tells a streaming link to end: it lost its partition to a higher epoch, or a fault was
/// injected; the condition and description are what the link is closed with.
#[derive(Default)]
struct Steal {
    reason: Mutex<Option<(ErrorCondition, String)>>,
    notify: Notify,
}

impl Steal {
    fn fire(&self, condition: ErrorCondition, reason: String) {
        *lock(&self.reason) = Some((condition, reason));
        self.notify.notify_one();
    }

    fn reason(&self) -> Option<(ErrorCondition, String)> {
        lock(&self.reason).clone()
    }
}

struct Holder {
    id: u64,
    info: ReceiverInfo,
    steal: Arc<Steal>,
}

/// Which receivers hold which partitions.
#[derive(Default)]
pub(crate) struct Ownership {
    holders: Mutex<Vec<Holder>>,
    next_id: AtomicU64,
}

/// A link's place in [`Ownership`]; released when the link's task ends.
pub(crate) struct Claim {
    id: u64,
    steal: Arc<Steal>,
    ownership: Arc<Ownership>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        lock(&self.ownership.holders).retain(|h| h.id != self.id);
    }
}

impl Ownership {
    /// Registers a receiver, stealing from lower epochs, or refuses it with the service's text.
    fn claim(self: &Arc<Self>, info: ReceiverInfo) -> Result<Claim, String> {
        let mut holders = lock(&self.holders);
        let same = |h: &Holder| {
            h.info.partition == info.partition
                && h.info
                    .consumer_group
                    .eq_ignore_ascii_case(&info.consumer_group)
        };
        let highest = holders
            .iter()
            .filter(|h| same(h))
            .filter_map(|h| h.info.epoch)
            .max();
        match (info.epoch, highest) {
            (Some(epoch), Some(highest)) if highest > epoch => {
                return Err(format!(
                    "Receiver '{}' with epoch '{epoch}' cannot be created because a receiver with a higher epoch '{highest}' already exists on partition '{}' of consumer group '{}'.",
                    info.link_name, info.partition, info.consumer_group
                ));
            }
            (None, Some(highest)) => {
                return Err(format!(
                    "At least one receiver for the endpoint is created with epoch of '{highest}', and so non-epoch receiver is not allowed. Either reconnect with a higher epoch, or make sure all epoch receivers are closed or disconnected."
                ));
            }
            (Some(epoch), _) => {
                holders.retain(|h| {
                    if !same(h) {
                        return true;
                    }
                    h.steal.fire(LinkError::Stolen.into(), format!(
                        "New receiver '{}' with higher epoch of '{epoch}' is created hence current receiver '{}' with epoch '{}' is getting disconnected. If you are recreating the receiver, make sure a higher epoch is used.",
                        info.link_name,
                        h.info.link_name,
                        h.info.epoch.map_or("none".to_string(), |e| e.to_string())
                    ));
                    false
                });
            }
            (None, None) => {}
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let steal = Arc::new(Steal::default());
        holders.push(Holder {
            id,
            info,
            steal: steal.clone(),
        });
        Ok(Claim {
            id,
            steal,
            ownership: self.clone(),
        })
    }

    pub(crate) fn receivers(&self) -> Vec<ReceiverInfo> {
        lock(&self.holders).iter().map(|h| h.info.clone()).collect()
    }

    /// Ends the links on `partition` (every partition when `None`) with `fault`; returns how
    /// many. Their holders are released when the links' tasks end.
    pub(crate) fn fault(&self, partition: Option<&str>, fault: LinkFault) -> usize {
        let holders = lock(&self.holders);
        let mut n = 0;
        for h in holders
            .iter()
            .filter(|h| partition.is_none_or(|p| h.info.partition == p))
        {
            let (condition, description) = fault.error();
            h.steal.fire(condition, description);
            n += 1;
        }
        n
    }
}

/// An accepted partition link, ready to stream.
pub(crate) struct PartitionStream {
    partition: usize,
    /// The index of the next event to deliver.
    next: usize,
    claim: Claim,
    /// The connection's authorizations, which the link needs to stay open.
    connection: Arc<Connection>,
    address: String,
}

/// Checks a receiver's attach: the address names this hub and an existing partition, the
/// connection put a token covering it, the start filter parses, the epoch allows it. The error
/// is what the link is closed with.
pub(crate) fn open(
    hub: &Hub,
    connection: &Arc<Connection>,
    address: &str,
    attach: &Attach,
) -> Result<PartitionStream, definitions::Error> {
    let not_found = || {
        amqp_error(
            AmqpError::NotFound,
            format!("The messaging entity '{address}' could not be found."),
        )
    };
    let (consumer_group, partition_id) =
        parse_address(&hub.keys.namespaces, address).ok_or_else(not_found)?;
    let (hub_name, consumer_group) = consumer_group;
    if !hub_name.eq_ignore_ascii_case(&hub.event_hub) {
        return Err(not_found());
    }
    // `$Default` and the groups the test declared, as a namespace has them.
    if !consumer_group.eq_ignore_ascii_case("$Default")
        && !hub
            .consumer_groups
            .iter()
            .any(|g| g.eq_ignore_ascii_case(&consumer_group))
    {
        return Err(amqp_error(
            AmqpError::NotFound,
            format!(
                "The messaging entity 'sb://{}/{}/consumergroups/{}' could not be found.",
                hub.namespace,
                hub.event_hub,
                consumer_group.to_ascii_lowercase()
            ),
        ));
    }
    let partition = partition_id
        .parse::<usize>()
        .ok()
        .filter(|p| hub.store.partition(&partition_id).is_some() && *p < hub.store.partitions.len())
        .ok_or_else(|| {
            amqp_error(
                AmqpError::NotFound,
                format!(
                    "ArgumentOutOfRange: The partition '{partition_id}' does not exist in '{}'.",
                    hub.event_hub
                ),
            )
        })?;
    if !connection.grants.allows(address) {
        return Err(amqp_error(
            AmqpError::UnauthorizedAccess,
            format!(
                "Unauthorized access. 'Listen' claim(s) are required to perform this operation. Resource: '{address}'."
            ),
        ));
    }
    let expression = selector(attach);
    let start = match &expression {
        Some(expression) => StartAt::parse(expression)
            .map_err(|description| amqp_error(AmqpError::NotImplemented, description))?,
        None => StartAt::Earliest,
    };
    let next = hub.store.partitions[partition]
        .first_index(&start)
        .map_err(|description| {
            amqp_error(
                ErrorCondition::Custom(Symbol::from("com.microsoft:argument-error")),
                description,
            )
        })?;
    let info = ReceiverInfo {
        consumer_group,
        partition: partition_id,
        epoch: epoch(attach),
        connection: connection.id,
        link_name: attach.name.clone(),
        start: expression.unwrap_or_else(|| "earliest".to_owned()),
        first_sequence: next as i64,
    };
    lock(&hub.attaches).push(info.clone());
    let claim = hub
        .ownership
        .claim(info)
        .map_err(|description| amqp_error(LinkError::Stolen, description))?;
    Ok(PartitionStream {
        partition,
        next,
        claim,
        connection: connection.clone(),
        address: address.to_owned(),
    })
}

/// `amqps://{namespace}/{hub}/ConsumerGroups/{cg}/Partitions/{p}` (the namespace part may be
/// absent) → ((hub, cg), p).
fn parse_address(namespaces: &[String], address: &str) -> Option<((String, String), String)> {
    let path = address.split_once("://").map_or(address, |(_, rest)| rest);
    let path = match path.split_once('/') {
        Some((host, rest)) if namespaces.iter().any(|ns| host.eq_ignore_ascii_case(ns)) => rest,
        _ => path,
    };
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        [hub, groups, cg, partitions, p]
            if groups.eq_ignore_ascii_case("ConsumerGroups")
                && partitions.eq_ignore_ascii_case("Partitions") =>
        {
            Some(((hub.to_string(), cg.to_string()), p.to_string()))
        }
        _ => None,
    }
}

fn epoch(attach: &Attach) -> Option<i64> {
    match attach
        .properties
        .as_ref()?
        .get(&Symbol::from(EPOCH_PROPERTY))?
    {
        Value::Long(v) => Some(*v),
        Value::Int(v) => Some(i64::from(*v)),
        _ => None,
    }
}

/// The selector expression in the source filter, under its name (the value is described by
/// code `0x468C00000004`).
fn selector(attach: &Attach) -> Option<String> {
    let filter = attach.source.as_ref()?.filter.as_ref()?;
    match filter.get(&Symbol::from(SELECTOR_FILTER))? {
        Value::Described(described) => match &described.value {
            Value::String(s) => Some(s.clone()),
            _ => None,
        },
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

impl PartitionStream {
    /// Streams events from the start position, waits for appends at the end, and stops when
    /// the client detaches, the connection drops, a higher epoch steals the partition, a fault
    /// is injected, or the authorization the link stands on expires without renewal.
    pub(crate) async fn serve(self, hub: Arc<Hub>, mut link: Sender) {
        let muted = hub.take_muted(self.partition);
        let partition = &hub.store.partitions[self.partition];
        let mut length = partition.subscribe();
        let mut next = self.next;
        loop {
            if let Some((condition, reason)) = self.claim.steal.reason() {
                refuse_sender(link, amqp_error(condition, reason)).await;
                return;
            }
            let Some(expiry) = self.authorized_until() else {
                hub.expired_links.fetch_add(1, Ordering::Relaxed);
                let error = amqp_error(
                    AmqpError::UnauthorizedAccess,
                    format!(
                        "ExpiredToken: The token for '{}' expired and was not renewed; the link is closed.",
                        self.address
                    ),
                );
                refuse_sender(link, error).await;
                return;
            };
            let lapse = tokio::time::sleep(expiry);
            // Retention may have passed the events this link had not sent yet.
            next = next.max(partition.begin());
            if let Some(event) = partition.get(next).filter(|_| !muted) {
                let sendable = Sendable::builder()
                    .message(message(&event))
                    .settled(true)
                    .build();
                tokio::select! {
                    // Batchable: fe2o3 then writes every field of the transfer, which some
                    // clients read by position.
                    sent = link.send_batchable(sendable) => {
                        // A failed send has already answered the client's detach.
                        if sent.is_err() {
                            return;
                        }
                        next += 1;
                        partition.delivered.fetch_add(1, Ordering::Relaxed);
                        self.connection.touch();
                    }
                    _ = self.claim.steal.notify.notified() => {}
                    _ = lapse => {}
                }
                continue;
            }
            tokio::select! {
                changed = length.changed(), if !muted => {
                    if changed.is_err() {
                        return;
                    }
                }
                detached = link.on_detach() => {
                    answer_detach(link, detached).await;
                    return;
                }
                _ = self.claim.steal.notify.notified() => {}
                _ = lapse => {}
            }
        }
    }

    /// How long the link's authorization lasts from now; `None` once it has lapsed.
    fn authorized_until(&self) -> Option<std::time::Duration> {
        let expiry = self.connection.grants.expiry_ms(&self.address)?;
        let left = expiry.checked_sub(u64::try_from(now_ms()).unwrap_or(0))?;
        (left > 0).then(|| std::time::Duration::from_millis(left))
    }
}

/// An event as the service delivers it: the body as one data section, the system properties
/// as message annotations with the types the client reads (a wrong type reads as absent).
fn message(event: &Event) -> Message<Data> {
    let mut annotations: OrderedMap<OwnedKey, Value> = OrderedMap::new();
    let mut annotate = |key: &str, value: Value| {
        annotations.insert(OwnedKey::Symbol(Symbol::from(key)), value);
    };
    annotate("x-opt-sequence-number", Value::Long(event.sequence_number));
    annotate("x-opt-offset", Value::String(event.offset.to_string()));
    annotate(
        "x-opt-enqueued-time",
        Value::Timestamp(Timestamp::from_milliseconds(event.enqueued_ms)),
    );
    if let Some(key) = &event.partition_key {
        annotate("x-opt-partition-key", Value::String(key.clone()));
    }
    Message::builder()
        .message_annotations(MessageAnnotations(annotations))
        .data(Binary::from(event.body.to_vec()))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(epoch: Option<i64>, name: &str) -> ReceiverInfo {
        ReceiverInfo {
            consumer_group: "$Default".into(),
            partition: "0".into(),
            epoch,
            connection: 1,
            link_name: name.into(),
            start: "earliest".into(),
            first_sequence: 0,
        }
    }

    #[test]
    fn a_higher_or_equal_epoch_steals_and_a_lower_one_is_refused() {
        let ownership = Arc::new(Ownership::default());
        let plain = ownership.claim(info(None, "plain")).unwrap();
        let first = ownership.claim(info(Some(1), "first")).unwrap();
        assert!(
            plain.steal.reason().is_some(),
            "a non-epoch receiver is disconnected"
        );
        assert!(ownership.claim(info(None, "late")).is_err());
        assert!(ownership.claim(info(Some(0), "lower")).is_err());
        let second = ownership.claim(info(Some(1), "second")).unwrap();
        assert!(first.steal.reason().unwrap().1.contains("'1'"));
        assert_eq!(ownership.receivers().len(), 1);
        drop(second);
        assert!(ownership.receivers().is_empty());
    }

    #[test]
    fn addresses_with_and_without_the_namespace_parse() {
        let ns = &["ns.servicebus.windows.net".to_string()];
        let full = "amqps://ns.servicebus.windows.net/hub/ConsumerGroups/$Default/Partitions/3";
        assert_eq!(
            parse_address(ns, full),
            Some((("hub".into(), "$Default".into()), "3".into()))
        );
        assert_eq!(
            parse_address(ns, "hub/ConsumerGroups/cg/Partitions/0"),
            Some((("hub".into(), "cg".into()), "0".into()))
        );
        assert_eq!(
            parse_address(ns, "amqps://ns.servicebus.windows.net/hub"),
            None
        );
    }
}
