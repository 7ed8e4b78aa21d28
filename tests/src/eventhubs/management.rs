//! The `$management` node: the READ operations behind `get_eventhub_properties` and
//! `get_partition_properties`, with the keys and value types the client decodes.

use super::auth::Refused;
use super::server::{Hub, Reply};
use fe2o3_amqp_types::messaging::{AmqpValue, ApplicationProperties, Body, Message, Properties};
use fe2o3_amqp_types::primitives::{Array, OrderedMap, SimpleValue, Timestamp, Value};

const EVENTHUB_TYPE: &str = "com.microsoft:eventhub";
const PARTITION_TYPE: &str = "com.microsoft:partition";

/// Answers one management request. Every key the client reads is present with the type it
/// expects: a missing key fails its call and a wrongly typed one panics it.
pub(crate) fn read(hub: &Hub, request: &Message<Body<Value>>) -> Reply {
    let operation = string_property(request, "operation");
    let entity_type = string_property(request, "type");
    let name = string_property(request, "name");
    if operation != Some("READ") {
        let description = format!(
            "The operation '{}' is not supported.",
            operation.unwrap_or_default()
        );
        return reply(request, 400, &description, Value::Null);
    }
    let Some(token) = string_property(request, "security_token") else {
        return reply(
            request,
            401,
            "Unauthorized: the request has no security_token.",
            Value::Null,
        );
    };
    // The token must cover the hub under the namespace or one of its aliases.
    let mut verdicts = hub.keys.namespaces.iter().map(|ns| {
        hub.keys
            .verify(token, None, &format!("{ns}/{}", hub.event_hub))
    });
    let first = verdicts.next();
    if let Some(Err(Refused(description))) = first
        && !verdicts.any(|v| v.is_ok())
    {
        return reply(request, 401, &description, Value::Null);
    }
    if !name.is_some_and(|n| n.eq_ignore_ascii_case(&hub.event_hub)) {
        let description = format!(
            "The messaging entity '{}/{}' could not be found.",
            hub.namespace,
            name.unwrap_or_default()
        );
        return reply(request, 404, &description, Value::Null);
    }
    match entity_type {
        Some(EVENTHUB_TYPE) => reply(request, 200, "OK", eventhub_properties(hub)),
        Some(PARTITION_TYPE) => {
            let id = string_property(request, "partition").unwrap_or_default();
            match partition_properties(hub, id) {
                Some(properties) => reply(request, 200, "OK", properties),
                None => {
                    let description = format!(
                        "ArgumentOutOfRange: The partition '{id}' does not exist in '{}'.",
                        hub.event_hub
                    );
                    reply(request, 404, &description, Value::Null)
                }
            }
        }
        other => {
            let description = format!(
                "The entity type '{}' is not supported.",
                other.unwrap_or_default()
            );
            reply(request, 400, &description, Value::Null)
        }
    }
}

fn eventhub_properties(hub: &Hub) -> Value {
    let ids: Vec<Value> = (0..hub.store.partitions.len())
        .map(|i| Value::String(i.to_string()))
        .collect();
    map([
        ("name", Value::String(hub.event_hub.clone())),
        (
            "created_at",
            Value::Timestamp(Timestamp::from_milliseconds(hub.created_ms)),
        ),
        (
            "partition_count",
            Value::Int(hub.store.partitions.len() as i32),
        ),
        // An AMQP array, not a list: the client only accepts an array here.
        ("partition_ids", Value::Array(Array::from(ids))),
    ])
}

fn partition_properties(hub: &Hub, id: &str) -> Option<Value> {
    let partition = hub.store.partition(id)?;
    let last = partition.last();
    let begin = partition.begin() as i64;
    let empty = last.as_ref().is_none_or(|e| e.sequence_number < begin);
    let (last_sequence, last_offset, last_time) = match &last {
        Some(event) => (
            event.sequence_number,
            event.offset.to_string(),
            event.enqueued_ms,
        ),
        None => (-1, "-1".to_string(), 0),
    };
    Some(map([
        ("type", Value::String(PARTITION_TYPE.to_string())),
        ("name", Value::String(hub.event_hub.clone())),
        ("partition", Value::String(id.to_string())),
        ("begin_sequence_number", Value::Long(begin)),
        ("last_enqueued_sequence_number", Value::Long(last_sequence)),
        ("last_enqueued_offset", Value::String(last_offset)),
        (
            "last_enqueued_time_utc",
            Value::Timestamp(Timestamp::from_milliseconds(last_time)),
        ),
        ("is_partition_empty", Value::Bool(empty)),
        ("last_enqueued_sequence_number_epoch", Value::Long(0)),
    ]))
}

fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    let map: OrderedMap<Value, Value> = entries
        .into_iter()
        .map(|(k, v)| (Value::String(k.to_string()), v))
        .collect();
    Value::Map(map)
}

/// A string application property of a request.
pub(crate) fn string_property<'a>(request: &'a Message<Body<Value>>, key: &str) -> Option<&'a str> {
    match request.application_properties.as_ref()?.0.get(key)? {
        SimpleValue::String(value) => Some(value.as_str()),
        SimpleValue::Symbol(value) => Some(value.as_str()),
        _ => None,
    }
}

/// A response to `request`: `status-code` (an int), `status-description`, the request's
/// message-id as correlation-id, and `body` as the amqp-value section.
pub(crate) fn reply(
    request: &Message<Body<Value>>,
    status: i32,
    description: &str,
    body: Value,
) -> Reply {
    let request_properties = request.properties.as_ref();
    let properties = Properties {
        correlation_id: request_properties.and_then(|p| p.message_id.clone()),
        to: request_properties.and_then(|p| p.reply_to.clone()),
        ..Default::default()
    };
    let application_properties = ApplicationProperties::builder()
        .insert("status-code", SimpleValue::Int(status))
        .insert(
            "status-description",
            SimpleValue::String(description.to_string()),
        )
        .build();
    Message::builder()
        .properties(properties)
        .application_properties(application_properties)
        .body(AmqpValue(body))
        .build()
}
