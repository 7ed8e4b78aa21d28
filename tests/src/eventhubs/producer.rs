//! Producers: events a client sends to the event hub, or to one of its partitions.
//!
//! A sender attaches to `amqps://{namespace}/{hub}` (the service picks the partition: by the
//! `x-opt-partition-key` annotation, else round robin) or to `…/{hub}/Partitions/{p}`. A
//! message is one event (its data sections are the body), or a batch: message format
//! `0x80013700`, one data section per event, each holding a whole encoded AMQP message, as
//! the clients' `send_batch` sends it. Each delivery is accepted once every event in it is
//! appended.

use super::server::{Connection, Hub, amqp_error};
use fe2o3_amqp::Receiver;
use fe2o3_amqp::link::RecvError;
use fe2o3_amqp_types::definitions::{self, AmqpError};
use fe2o3_amqp_types::messaging::message::__private::Deserializable;
use fe2o3_amqp_types::messaging::{Body, Message, annotations::OwnedKey};
use fe2o3_amqp_types::primitives::{Symbol, Value};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The message format of a batch of events.
const BATCH_FORMAT: u32 = 0x8001_3700;
const PARTITION_KEY: &str = "x-opt-partition-key";

/// Where a producer's events go.
pub(crate) struct Target {
    /// A partition, or `None` for the service to choose.
    partition: Option<usize>,
}

/// Checks a producer's attach: the address names this hub (and an existing partition), and
/// the connection put a token covering it.
pub(crate) fn open(
    hub: &Hub,
    connection: &Connection,
    address: &str,
) -> Result<Target, definitions::Error> {
    let not_found = || {
        amqp_error(
            AmqpError::NotFound,
            format!("The messaging entity '{address}' could not be found."),
        )
    };
    let path = address.split_once("://").map_or(address, |(_, rest)| rest);
    let path = match path.split_once('/') {
        Some((host, rest))
            if hub
                .keys
                .namespaces
                .iter()
                .any(|ns| host.eq_ignore_ascii_case(ns)) =>
        {
            rest
        }
        _ => path,
    };
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let (name, partition) = match parts.as_slice() {
        [name] => (*name, None),
        [name, partitions, p] if partitions.eq_ignore_ascii_case("Partitions") => {
            let p = hub
                .store
                .partition(p)
                .map(|_| p.parse::<usize>().expect("checked by partition()"))
                .ok_or_else(not_found)?;
            (*name, Some(p))
        }
        _ => return Err(not_found()),
    };
    if !name.eq_ignore_ascii_case(&hub.event_hub) {
        return Err(not_found());
    }
    if !connection.grants.allows(address) {
        return Err(amqp_error(
            AmqpError::UnauthorizedAccess,
            format!(
                "Unauthorized access. 'Send' claim(s) are required to perform this operation. Resource: '{address}'."
            ),
        ));
    }
    Ok(Target { partition })
}

/// Receives events until the client detaches.
pub(crate) async fn serve(
    hub: Arc<Hub>,
    connection: Arc<Connection>,
    mut link: Receiver,
    target: Target,
) {
    loop {
        let delivery = match link.recv::<Body<Value>>().await {
            Ok(delivery) => delivery,
            // The receiver answers a detach itself before returning it.
            Err(RecvError::LinkStateError(_)) => return,
            Err(_) => continue,
        };
        connection.touch();
        let batch = *delivery.message_format() == Some(BATCH_FORMAT);
        let events = if batch {
            events_of_batch(delivery.message())
        } else {
            Some(vec![(
                partition_key(delivery.message()),
                data(delivery.body()),
            )])
        };
        let Some(events) = events else {
            let error = amqp_error(
                AmqpError::DecodeError,
                "A batch's data section is not an encoded AMQP message.".into(),
            );
            let _ = link.reject(&delivery, error).await;
            continue;
        };
        for (key, body) in events {
            match target.partition {
                Some(p) => {
                    hub.store.partitions[p].append(key.as_deref(), &body);
                }
                None => {
                    hub.store.append(key.as_deref(), &body);
                }
            }
            hub.events_received.fetch_add(1, Ordering::Relaxed);
        }
        let _ = link.accept(&delivery).await;
    }
}

/// The events of a batch: each data section decoded as a message of its own; a section that
/// does not decode fails the whole batch.
fn events_of_batch(message: &Message<Body<Value>>) -> Option<Vec<(Option<String>, Vec<u8>)>> {
    let Body::Data(sections) = &message.body else {
        return None;
    };
    let outer_key = partition_key(message);
    sections
        .iter()
        .map(|section| {
            // fe2o3's own wrapper for decoding a whole message (its sections in order).
            let inner: Deserializable<Message<Body<Value>>> =
                serde_amqp::from_slice(&section.0).ok()?;
            let inner = inner.0;
            let key = partition_key(&inner).or_else(|| outer_key.clone());
            Some((key, data(&inner.body)))
        })
        .collect()
}

/// The event body: the data sections, one after the other.
fn data(body: &Body<Value>) -> Vec<u8> {
    match body {
        Body::Data(sections) => sections.iter().flat_map(|d| d.0.iter().copied()).collect(),
        _ => Vec::new(),
    }
}

fn partition_key(message: &Message<Body<Value>>) -> Option<String> {
    let annotations = message.message_annotations.as_ref()?;
    match annotations
        .0
        .get(&OwnedKey::Symbol(Symbol::from(PARTITION_KEY)))?
    {
        Value::String(key) => Some(key.clone()),
        _ => None,
    }
}
