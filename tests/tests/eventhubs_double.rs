//! The Event Hubs double against the real client (azure_messaging_eventhubs, the workspace's
//! version): what the ingest service relies on must be served as the service serves it.

use azure_core::time::Duration as AzureDuration;
use azure_messaging_eventhubs::{
    ConsumerClient, EventProcessor, EventReceiver, InMemoryCheckpointStore, OpenReceiverOptions,
    RetryOptions, StartLocation, StartPosition, models::ReceivedEventData,
};
use futures::StreamExt;
use mfagap_testkit::{EventHubsConfig, EventHubsDouble};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(10);

fn start() -> EventHubsDouble {
    EventHubsDouble::start(EventHubsConfig::default()).expect("the double starts")
}

/// Fails the test instead of hanging it.
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {PATIENCE:?}"))
}

fn quick_retries() -> RetryOptions {
    RetryOptions {
        max_retries: 3,
        initial_delay: AzureDuration::milliseconds(50),
        max_delay: AzureDuration::milliseconds(200),
        max_total_elapsed: AzureDuration::seconds(5),
    }
}

async fn connect(
    double: &EventHubsDouble,
    connection_string: &str,
) -> azure_messaging_eventhubs::Result<ConsumerClient> {
    ConsumerClient::builder()
        .with_custom_endpoint(double.endpoint())
        .with_retry_options(quick_retries())
        .open_with_connection_string(connection_string, None)
        .await
}

async fn open(double: &EventHubsDouble) -> ConsumerClient {
    within(
        "opening the client",
        connect(double, &double.connection_string(true)),
    )
    .await
    .expect("the client opens")
}

fn from(location: StartLocation, owner_level: Option<i64>) -> Option<OpenReceiverOptions> {
    Some(OpenReceiverOptions {
        start_position: Some(StartPosition {
            location,
            inclusive: false,
        }),
        owner_level,
        ..Default::default()
    })
}

async fn receive(receiver: &EventReceiver, n: usize) -> Vec<ReceivedEventData> {
    let stream = receiver.stream_events();
    let events: Vec<_> = within("receiving", stream.take(n).collect::<Vec<_>>()).await;
    events
        .into_iter()
        .map(|e| e.expect("an event, not an error"))
        .collect()
}

fn body(event: &ReceivedEventData) -> String {
    String::from_utf8(event.event_data().body().unwrap_or_default().to_vec()).unwrap()
}

async fn close(client: ConsumerClient) {
    within("closing the client", client.close())
        .await
        .expect("the client closes");
}

#[tokio::test]
async fn management_reports_the_hub_and_its_partitions() {
    let double = start();
    double.append(None, b"{\"a\":1}");
    double.append(None, b"{\"b\":22}");
    let client = open(&double).await;

    let hub = within("hub properties", client.get_eventhub_properties())
        .await
        .unwrap();
    assert_eq!(hub.name, double.event_hub());
    assert_eq!(hub.partition_ids, ["0", "1", "2", "3"]);
    assert!(hub.created_on.is_some());

    let p0 = within("partition properties", client.get_partition_properties("0"))
        .await
        .unwrap();
    assert_eq!(
        (p0.id.as_str(), p0.eventhub.as_str()),
        ("0", double.event_hub())
    );
    assert_eq!(p0.last_enqueued_sequence_number, 0);
    assert_eq!(p0.last_enqueued_offset, "0");
    assert!(!p0.is_empty && p0.last_enqueued_time_utc.is_some());
    let p3 = within("partition properties", client.get_partition_properties("3"))
        .await
        .unwrap();
    assert!(p3.is_empty);
    assert_eq!(p3.last_enqueued_sequence_number, -1);
    let missing = within("partition properties", client.get_partition_properties("9")).await;
    assert!(
        missing.is_err(),
        "a partition that does not exist is an error"
    );
    close(client).await;
}

#[tokio::test]
async fn each_partition_streams_its_events_in_order_from_earliest() {
    let double = start();
    let mut expected = vec![Vec::new(); double.partition_count()];
    for i in 0..40 {
        let key = format!("user-{}", i % 7);
        let body = format!("{{\"n\":{i}}}");
        let (partition, seq) = double.append(Some(&key), body.as_bytes());
        expected[partition].push((seq, key, body));
    }
    let client = open(&double).await;
    for (partition, expected) in expected.iter().enumerate() {
        let receiver = client
            .open_receiver_on_partition(partition.to_string(), from(StartLocation::Earliest, None))
            .await
            .unwrap();
        let events = receive(&receiver, expected.len()).await;
        assert!(!expected.is_empty(), "partition {partition} got events");
        assert_eq!(events.len(), expected.len(), "partition {partition}");
        for (event, (seq, key, body_text)) in events.iter().zip(expected) {
            assert_eq!(event.sequence_number(), Some(*seq));
            assert_eq!(event.partition_key().as_deref(), Some(key.as_str()));
            assert_eq!(body(event), *body_text);
            assert_eq!(event.offset().clone(), double.offset_of(partition, *seq));
            assert!(event.enqueued_time().is_some());
        }
        within("closing a receiver", receiver.close())
            .await
            .unwrap();
    }
    for (partition, expected) in expected.iter().enumerate() {
        assert_eq!(
            double.delivered(partition) as usize,
            expected.len(),
            "partition {partition}: each event delivered once"
        );
    }
    close(client).await;
    assert!(double.receivers().is_empty(), "every receiver detached");
}

#[tokio::test]
async fn receivers_start_after_an_offset_or_a_sequence_number_and_see_new_events() {
    let double = start();
    for i in 0..6 {
        double.append(Some("k"), format!("event-{i}").as_bytes());
    }
    let (partition, _) = double.append(Some("k"), b"event-6");
    let client = open(&double).await;
    let offset = double.offset_of(partition, 2).unwrap();
    let after_offset = client
        .open_receiver_on_partition(
            partition.to_string(),
            from(StartLocation::Offset(offset), None),
        )
        .await
        .unwrap();
    let first = receive(&after_offset, 1).await;
    assert_eq!(first[0].sequence_number(), Some(3));
    within("closing a receiver", after_offset.close())
        .await
        .unwrap();

    let latest = client
        .open_receiver_on_partition(partition.to_string(), from(StartLocation::Latest, None))
        .await
        .unwrap();
    let mut stream = Box::pin(latest.stream_events());
    // The client attaches on the first poll of the stream: append once the link is there, while
    // the receiver waits at the end of the partition.
    let append_when_attached = async {
        while double.receivers().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        double.append(Some("k"), b"late");
    };
    let (event, ()) = within(
        "a late event",
        futures::future::join(stream.next(), append_when_attached),
    )
    .await;
    let event = event.unwrap().unwrap();
    assert_eq!(
        (body(&event).as_str(), event.sequence_number()),
        ("late", Some(7))
    );
    close(client).await;
}

#[tokio::test]
async fn a_wrong_sas_key_is_refused_with_the_cause() {
    let double = start();
    let wrong = double
        .connection_string(true)
        .replace(double.key(), "bm90LXRoZS1rZXk=");
    let refused = match within("opening with a wrong key", connect(&double, &wrong)).await {
        Ok(client) => within("hub properties", client.get_eventhub_properties())
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    let error = refused.expect_err("a wrong key is refused");
    let mut text = format!("{error:?}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(&format!(" / {cause:?}"));
        source = cause.source();
    }
    assert!(
        text.contains("InvalidSignature"),
        "the client surfaces the cause: {text}"
    );
    assert!(double.authorizations_refused() >= 1);
    assert_eq!(double.authorizations_granted(), 0);
}

#[tokio::test]
async fn the_client_reconnects_after_the_connections_drop() {
    let double = start();
    for i in 0..3 {
        double.append(Some("k"), format!("before-{i}").as_bytes());
    }
    let (partition, _) = double.append(Some("k"), b"before-3");
    let client = open(&double).await;
    let receiver = client
        .open_receiver_on_partition(partition.to_string(), from(StartLocation::Earliest, None))
        .await
        .unwrap();
    let events = receive(&receiver, 4).await;
    let last_offset = events[3].offset().clone().unwrap();
    let accepted = double.connections_accepted();

    double.drop_connections();
    double.append(Some("k"), b"after");
    // The client reconnects and re-attaches with its original filter: from the start again.
    let again = receive(&receiver, 5).await;
    assert!(
        double.connections_accepted() > accepted,
        "a new connection was made"
    );
    assert_eq!(body(&again[0]), "before-0");
    assert_eq!(body(&again[4]), "after");
    within("closing a receiver", receiver.close())
        .await
        .unwrap();

    // Resuming from the last offset seen gets only what is new.
    let resumed = client
        .open_receiver_on_partition(
            partition.to_string(),
            from(StartLocation::Offset(last_offset), None),
        )
        .await
        .unwrap();
    let next = receive(&resumed, 1).await;
    assert_eq!(body(&next[0]), "after");
    close(client).await;
}

#[tokio::test]
async fn a_higher_epoch_steals_the_partition_and_a_lower_one_is_refused() {
    let double = start();
    double.append(None, b"one");
    let owner = open(&double).await;
    let thief = open(&double).await;
    let first = owner
        .open_receiver_on_partition("0".into(), from(StartLocation::Earliest, Some(1)))
        .await
        .unwrap();
    receive(&first, 1).await;
    assert_eq!(double.receivers().len(), 1);
    assert_eq!(double.receivers()[0].epoch, Some(1));

    let second = thief
        .open_receiver_on_partition("0".into(), from(StartLocation::Earliest, Some(2)))
        .await
        .unwrap();
    receive(&second, 1).await;
    let stolen = within("the stolen stream", first.stream_events().next())
        .await
        .expect("the stolen stream ends with an error");
    let error = stolen.expect_err("the lower epoch is disconnected");
    assert!(format!("{error:?}").contains("epoch"), "{error:?}");
    let holders = double.receivers();
    assert_eq!(holders.len(), 1);
    assert_eq!(holders[0].epoch, Some(2));

    let lower = owner
        .open_receiver_on_partition("0".into(), from(StartLocation::Earliest, Some(1)))
        .await
        .unwrap();
    let refused = within("the refused stream", lower.stream_events().next()).await;
    assert!(matches!(refused, Some(Err(_))), "a lower epoch is refused");
    assert_eq!(double.receivers()[0].epoch, Some(2));
    close(owner).await;
    close(thief).await;
}

#[tokio::test]
async fn an_event_processor_claims_every_partition_and_reads_them() {
    let double = start();
    let bodies: Vec<String> = (0..20).map(|i| format!("{{\"i\":{i}}}")).collect();
    double.append_bodies(&bodies);
    let client = open(&double).await;
    let processor = within(
        "building the processor",
        EventProcessor::builder()
            .with_start_positions(azure_messaging_eventhubs::models::StartPositions {
                default: StartPosition {
                    location: StartLocation::Earliest,
                    inclusive: false,
                },
                ..Default::default()
            })
            .build(client, Arc::new(InMemoryCheckpointStore::new())),
    )
    .await
    .unwrap();
    let running = processor.clone();
    let runner = tokio::spawn(async move { running.run().await });
    let mut received = Vec::new();
    for _ in 0..double.partition_count() {
        let partition = within("a partition client", processor.next_partition_client())
            .await
            .unwrap();
        let id: usize = partition.get_partition_id().parse().unwrap();
        let stream = partition.stream_events();
        let events: Vec<_> = within(
            "processor events",
            stream.take(double.len(id)).collect::<Vec<_>>(),
        )
        .await;
        for event in events {
            let event = event.unwrap();
            partition.update_checkpoint(&event).await.unwrap();
            received.push(body(&event));
        }
    }
    received.sort();
    let mut expected = bodies.clone();
    expected.sort();
    assert_eq!(received, expected);
    let epochs: Vec<_> = double.receivers().iter().map(|r| r.epoch).collect();
    assert_eq!(
        epochs,
        vec![Some(0); 4],
        "the processor attaches with owner level 0"
    );
    processor.shutdown().await.unwrap();
    runner.abort();
}

#[tokio::test]
async fn the_processor_falls_back_to_a_checkpoints_sequence_number_without_an_offset() {
    use azure_messaging_eventhubs::CheckpointStore;
    let double = start();
    let bodies: Vec<String> = (0..12).map(|i| format!("{{\"i\":{i}}}")).collect();
    for b in &bodies {
        double.append(Some("one-partition"), b.as_bytes());
    }
    let partition = (0..double.partition_count())
        .find(|p| double.len(*p) == 12)
        .expect("one partition holds them all");
    let store = Arc::new(InMemoryCheckpointStore::new());
    // A checkpoint another SDK wrote with a sequence number only.
    store
        .update_checkpoint(azure_messaging_eventhubs::models::Checkpoint {
            fully_qualified_namespace: double.namespace().to_owned(),
            event_hub_name: double.event_hub().to_owned(),
            consumer_group: "$Default".to_owned(),
            partition_id: partition.to_string(),
            offset: None,
            sequence_number: Some(4),
        })
        .await
        .unwrap();
    let client = open(&double).await;
    let processor = within(
        "building the processor",
        EventProcessor::builder().build(client, store),
    )
    .await
    .unwrap();
    let running = processor.clone();
    let runner = tokio::spawn(async move { running.run().await });
    let mut got = None;
    for _ in 0..double.partition_count() {
        let client = within("a partition client", processor.next_partition_client())
            .await
            .unwrap();
        if client.get_partition_id() == partition.to_string() {
            let events: Vec<_> = within(
                "events after the checkpoint",
                client.stream_events().take(7).collect::<Vec<_>>(),
            )
            .await;
            got = Some(
                events
                    .into_iter()
                    .map(|e| e.unwrap().sequence_number().unwrap())
                    .collect::<Vec<i64>>(),
            );
            break;
        }
    }
    assert_eq!(got, Some((5..12).collect::<Vec<i64>>()));
    let attach = double
        .attaches()
        .into_iter()
        .find(|a| a.partition == partition.to_string())
        .expect("the partition was attached");
    assert_eq!(
        (attach.start.as_str(), attach.first_sequence),
        ("amqp.annotation.x-opt-sequence-number >'4'", 5),
        "the start position the processor sent"
    );
    processor.shutdown().await.unwrap();
    runner.abort();
}

#[tokio::test]
async fn only_declared_consumer_groups_exist() {
    let double = EventHubsDouble::start(EventHubsConfig {
        consumer_groups: vec!["declared".into()],
        ..EventHubsConfig::default()
    })
    .unwrap();
    double.append(Some("k"), b"x");
    let partition = (0..4).find(|p| double.len(*p) == 1).unwrap().to_string();
    for (group, exists) in [
        ("$Default", true),
        ("declared", true),
        ("undeclared", false),
    ] {
        let client = within(
            "opening",
            ConsumerClient::builder()
                .with_custom_endpoint(double.endpoint())
                .with_retry_options(quick_retries())
                .with_consumer_group(group.to_owned())
                .open_with_connection_string(&double.connection_string(true), None),
        )
        .await
        .unwrap();
        let receiver = client
            .open_receiver_on_partition(partition.clone(), from(StartLocation::Earliest, None))
            .await
            .unwrap();
        let first = within("the first event", receiver.stream_events().next()).await;
        match first {
            Some(Ok(_)) => assert!(exists, "{group} read an event"),
            Some(Err(e)) => {
                assert!(!exists, "{group}: {e:?}");
                assert!(
                    format!("{e:?}").contains("undeclared"),
                    "the service's error names the group: {e:?}"
                );
            }
            None => panic!("{group}: the stream ended"),
        }
        close(client).await;
    }
}

#[tokio::test]
async fn an_offset_inside_an_event_is_refused_and_retention_moves_the_beginning() {
    let double = start();
    for i in 0..6 {
        double.append(Some("k"), format!("event-{i}").as_bytes());
    }
    let (partition, _) = double.append(Some("k"), b"event-6");
    let client = open(&double).await;
    let inside = (double
        .offset_of(partition, 2)
        .unwrap()
        .parse::<i64>()
        .unwrap()
        + 1)
    .to_string();
    let receiver = client
        .open_receiver_on_partition(
            partition.to_string(),
            from(StartLocation::Offset(inside.clone()), None),
        )
        .await
        .unwrap();
    let refused = within("a refused start", receiver.stream_events().next()).await;
    match refused {
        Some(Err(e)) => assert!(format!("{e:?}").contains(&inside), "{e:?}"),
        other => panic!("an offset inside an event is refused: {other:?}"),
    }

    double.expire_before(partition, 3);
    let p = within(
        "partition properties",
        client.get_partition_properties(&partition.to_string()),
    )
    .await
    .unwrap();
    assert_eq!(p.beginning_sequence_number, 3);
    assert_eq!(p.last_enqueued_sequence_number, 6);
    let earliest = client
        .open_receiver_on_partition(partition.to_string(), from(StartLocation::Earliest, None))
        .await
        .unwrap();
    let events = receive(&earliest, 4).await;
    let seqs: Vec<i64> = events.iter().filter_map(|e| e.sequence_number()).collect();
    assert_eq!(seqs, vec![3, 4, 5, 6], "expired events are not served");
    close(client).await;
}

#[tokio::test]
async fn a_second_cbs_link_on_one_connection_is_refused() {
    use fe2o3_amqp::{Connection, Sender, Session};
    let double = start();
    let url = format!("{}/", double.endpoint());
    let mut connection = within(
        "a raw connection",
        Connection::builder()
            .container_id("raw")
            .sasl_profile(fe2o3_amqp::sasl_profile::SaslProfile::Anonymous)
            .open(url.as_str()),
    )
    .await
    .unwrap();
    let mut session = within("a session", Session::begin(&mut connection))
        .await
        .unwrap();
    let first = within(
        "the first $cbs link",
        Sender::attach(&mut session, "cbs-1", "$cbs"),
    )
    .await
    .expect("one $cbs link is allowed");
    let second = within("a second $cbs link", async {
        let mut s = Sender::attach(&mut session, "cbs-2", "$cbs").await?;
        // A refused link is attached, then closed by the service.
        s.on_detach().await;
        Ok::<_, fe2o3_amqp::link::SenderAttachError>(())
    })
    .await;
    let _ = second;
    assert_eq!(double.cbs_links_refused(), 1, "the second link is refused");
    first.close().await.unwrap();
    let third = within(
        "a $cbs link after the first closed",
        Sender::attach(&mut session, "cbs-3", "$cbs"),
    )
    .await
    .expect("allowed again once the first is closed");
    assert_eq!(double.cbs_links_refused(), 1);
    third.close().await.unwrap();
    session.end().await.unwrap();
    connection.close().await.unwrap();
}

#[tokio::test]
async fn a_link_outliving_its_authorization_is_closed_and_the_client_comes_back() {
    let double = EventHubsDouble::start(EventHubsConfig {
        max_token_lifetime: Some(Duration::from_millis(1_500)),
        ..EventHubsConfig::default()
    })
    .unwrap();
    let (partition, _) = double.append(Some("k"), b"first");
    let client = open(&double).await;
    let receiver = client
        .open_receiver_on_partition(partition.to_string(), from(StartLocation::Earliest, None))
        .await
        .unwrap();
    let mut stream = Box::pin(receiver.stream_events());
    let first = within("the first event", stream.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body(&first), "first");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        double.expired_links() >= 1,
        "the link was closed when its token lapsed"
    );
    double.append(Some("k"), b"second");
    let next = within("what follows the lapse", stream.next())
        .await
        .unwrap();
    // The client either re-authorizes and re-attaches (from its original filter, so the first
    // event comes again) or reports the closed link: both are what the ingest service copes
    // with; what matters here is that the double enforced the lapse.
    match next {
        Ok(e) => assert!(["first", "second"].contains(&body(&e).as_str())),
        Err(e) => assert!(format!("{e:?}").contains("ExpiredToken"), "{e:?}"),
    }
    close(client).await;
}
