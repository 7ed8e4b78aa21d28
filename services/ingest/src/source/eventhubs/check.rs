//! Preflight of the `eventhubs` source: the namespace answers and authorises, the event hub
//! and its partitions exist, the consumer group exists, and the checkpoint container can be
//! listed and written. One line each (`mfagap check`).

use super::connect;
use super::{BlobCheckpointStore, EventHubsSettings};
use azure_messaging_eventhubs::{OpenReceiverOptions, StartLocation, StartPosition};
use futures::StreamExt;
use mfagap_runtime::ErrorKind;
use mfagap_runtime::check::Check;
use std::time::Duration;

/// What to change when the service answered with `e`.
fn fix_for(e: &(dyn std::error::Error + 'static), missing: &str) -> String {
    if connect::is_not_found(e) {
        missing.to_owned()
    } else if connect::kind_of(e) == ErrorKind::Configuration {
        // A key scoped to one event hub is refused (401) for any other name too, so both
        // are named.
        "the namespace refused the credential for this event hub: check the event hub's name (--eventhub, or the connection string's EntityPath) and the key (MFAGAP_EVENTHUBS_CONNECTION_STRING), or give the identity the Azure Event Hubs Data Receiver role on the event hub".to_owned()
    } else {
        "check the namespace name, that AMQP (port 5671) reaches it from here, and --eventhubs-endpoint".to_owned()
    }
}

/// The source's checks, each bounded by `timeout`.
pub async fn check(settings: &EventHubsSettings, timeout: Duration) -> Vec<Check> {
    let t = &settings.target;
    let mut out = Vec::new();
    let hub = format!("{}/{}", t.namespace, t.event_hub);
    let instance = format!("mfagap-check-{}", std::process::id());
    let client = match tokio::time::timeout(timeout, t.open(&instance)).await {
        Err(_) => {
            out.push(Check::failed(
                "event hub",
                format!("{hub}: no answer within {timeout:?}"),
                "check the namespace name, that AMQP (port 5671) reaches it from here, and --eventhubs-endpoint",
            ));
            None
        }
        Ok(Err(e)) => {
            out.push(Check::failed(
                "event hub",
                format!("{e:#}"),
                "check the connection string (MFAGAP_EVENTHUBS_CONNECTION_STRING) or --eventhubs-namespace and the credential",
            ));
            None
        }
        Ok(Ok(c)) => Some(c),
    };
    if let Some(client) = client {
        let properties = match tokio::time::timeout(timeout, client.get_eventhub_properties()).await
        {
            Err(_) => Err(Check::failed(
                "event hub",
                format!("{hub}: no answer within {timeout:?}"),
                "check that AMQP (port 5671) reaches the namespace from here",
            )),
            Ok(Err(e)) => Err(Check::failed(
                "event hub",
                format!("{hub}: {}", connect::causes(&e)),
                fix_for(
                    &e,
                    "the event hub does not exist in this namespace: check --eventhub (or the connection string's EntityPath)",
                ),
            )),
            Ok(Ok(p)) => Ok(p),
        };
        match properties {
            Err(c) => out.push(c),
            Ok(p) => {
                out.push(Check::ok(
                    "event hub",
                    format!("{hub}: partitions {}", p.partition_ids.join(", ")),
                ));
                if let Some(first) = p.partition_ids.first() {
                    out.push(
                        consumer_group(&client, first, &hub, &t.consumer_group, timeout).await,
                    );
                }
            }
        }
        let _ = client.close().await;
    }
    out.push(
        match BlobCheckpointStore::open(
            &settings.checkpoint_store,
            &settings.checkpoint_store_options,
        ) {
            Err(e) => Check::failed(
                "checkpoint store",
                format!("{e:#}"),
                "check --checkpoint-store and --checkpoint-store-option",
            ),
            Ok(store) => match tokio::time::timeout(timeout, store.check()).await {
                Ok(c) => c,
                Err(_) => Check::failed(
                    "checkpoint store",
                    format!(
                        "{}: no answer within {timeout:?}",
                        settings.checkpoint_store
                    ),
                    "check the storage account's name and network access",
                ),
            },
        },
    );
    out
}

/// Opens a receiver of the consumer group on one partition, at its end, and waits briefly:
/// a consumer group that does not exist is refused when the link attaches.
async fn consumer_group(
    client: &azure_messaging_eventhubs::ConsumerClient,
    partition: &str,
    hub: &str,
    group: &str,
    timeout: Duration,
) -> Check {
    let part = "consumer group";
    let missing = format!(
        "create the consumer group {group} in event hub {hub} (a dedicated one), or set --consumer-group"
    );
    let options = OpenReceiverOptions {
        start_position: Some(StartPosition {
            location: StartLocation::Latest,
            inclusive: false,
        }),
        prefetch: Some(1),
        // No receive timeout of the client's own: its expiry comes back as an error item,
        // while silence past ours below means the link holds.
        ..Default::default()
    };
    let opened = tokio::time::timeout(
        timeout,
        client.open_receiver_on_partition(partition.to_owned(), Some(options)),
    )
    .await;
    let receiver = match opened {
        Err(_) => {
            return Check::failed(
                part,
                format!("{group}: no answer within {timeout:?}"),
                "check that AMQP reaches the namespace from here",
            );
        }
        Ok(Err(e)) => {
            return Check::failed(
                part,
                format!("{group}: {}", connect::causes(&e)),
                fix_for(&e, &missing),
            );
        }
        Ok(Ok(r)) => r,
    };
    // A refused attach comes back as the stream's first item; silence means it holds.
    let first = {
        let stream = receiver.stream_events();
        futures::pin_mut!(stream);
        tokio::time::timeout(Duration::from_secs(3), stream.next()).await
    };
    let check = match first {
        Ok(Some(Err(e))) if connect::is_not_found(&e) => {
            Check::failed(part, format!("{group}: {}", connect::causes(&e)), missing)
        }
        Ok(Some(Err(e))) => Check::failed(
            part,
            format!("{group}: {}", connect::causes(&e)),
            fix_for(&e, &missing),
        ),
        _ => Check::ok(
            part,
            format!("{group}: a receiver attached to partition {partition}"),
        ),
    };
    let _ = receiver.close().await;
    check
}
