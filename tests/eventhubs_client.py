"""A second Event Hubs client against the test double: Python's azure-eventhub (pure-Python AMQP).

Run by services/mfagap/tests/eventhubs.rs with the interpreter of .tools/py. Commands:

  props CONNECTION_STRING
      prints {"hub": {...}, "partitions": {id: {...}}} as JSON
  receive CONNECTION_STRING COUNT
      receives from every partition, from the earliest event, until COUNT events arrived;
      prints one JSON line per event: partition, sequence_number, offset, body (base64)
  send CONNECTION_STRING FILE
      sends each line of FILE as one event, in batches, spread over the partitions by a
      partition key; prints the number sent
"""

import base64
import json
import logging
import sys
import threading

from azure.eventhub import EventData, EventHubConsumerClient, EventHubProducerClient


def props(conn):
    producer = EventHubProducerClient.from_connection_string(conn)
    with producer:
        hub = producer.get_eventhub_properties()
        partitions = {
            p: producer.get_partition_properties(p) for p in hub["partition_ids"]
        }
    out = {
        "hub": {"name": hub["eventhub_name"], "partition_ids": list(hub["partition_ids"])},
        "partitions": {
            p: {
                "begin": v["beginning_sequence_number"],
                "last": v["last_enqueued_sequence_number"],
                "last_offset": v["last_enqueued_offset"],
                "empty": v["is_empty"],
            }
            for p, v in partitions.items()
        },
    }
    print(json.dumps(out))


def receive(conn, count):
    consumer = EventHubConsumerClient.from_connection_string(
        conn, consumer_group="$Default"
    )
    got = []
    done = threading.Event()
    lock = threading.Lock()

    def on_event(context, event):
        if event is None:
            return
        # The client's own checkpoint (in memory): should it restart a partition's receiver,
        # it resumes after what it already handed out.
        context.update_checkpoint(event)
        with lock:
            got.append(
                {
                    "partition": context.partition_id,
                    "sequence_number": event.sequence_number,
                    "offset": event.offset,
                    # Bytes, whatever they hold: a malformed message is not UTF-8.
                    "body": base64.b64encode(b"".join(event.body)).decode("ascii"),
                }
            )
            if len(got) >= count:
                done.set()

    worker = threading.Thread(
        target=lambda: consumer.receive(on_event=on_event, starting_position="-1"),
        daemon=True,
    )
    worker.start()
    finished = done.wait(timeout=120)
    consumer.close()
    worker.join(timeout=30)
    for e in got:
        print(json.dumps(e))
    if not finished:
        print(f"only {len(got)} of {count} events arrived", file=sys.stderr)
        sys.exit(1)


def send(conn, path):
    producer = EventHubProducerClient.from_connection_string(conn)
    sent = 0
    with open(path, "rb") as f:
        lines = [line.rstrip(b"\n") for line in f if line.strip()]
    with producer:
        for key in range(4):
            batch = producer.create_batch(partition_key=f"key-{key}")
            for line in lines[key::4]:
                try:
                    batch.add(EventData(line))
                except ValueError:
                    producer.send_batch(batch)
                    batch = producer.create_batch(partition_key=f"key-{key}")
                    batch.add(EventData(line))
                sent += 1
            if len(batch) > 0:
                producer.send_batch(batch)
    print(sent)


if __name__ == "__main__":
    # The client's warnings (reconnects, receiver restarts) go to stderr, for a failing test.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    command, conn = sys.argv[1], sys.argv[2]
    if command == "props":
        props(conn)
    elif command == "receive":
        receive(conn, int(sys.argv[3]))
    elif command == "send":
        send(conn, sys.argv[3])
    else:
        sys.exit(f"unknown command {command}")
