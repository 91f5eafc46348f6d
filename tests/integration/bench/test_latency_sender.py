"""The latency run's sender: every message once, on the partition kafka-python (a device)
would choose for its key, in order, and none sent before its time."""

from __future__ import annotations

import asyncio
import time
import uuid

from kafka import KafkaConsumer
from kafka.admin import NewTopic
from kafka.partitioner.default import murmur2

from hito.access.kafka import admin_client
from hito.bench.latency import send_paced
from hito.credentials import client_config
from hito.device.simulate.fleet import VALID, SimMessage
from hito.settings import HitoSettings

PARTITIONS = 3
COUNT = 600
RATE = 1_000.0  # events/s: 0.6 s of sending, several ticks and batches per partition


def test_send_paced_sends_each_message_once_where_a_device_would(stack: HitoSettings) -> None:
    topic = f"hito.test-sender-{uuid.uuid4().hex[:8]}"
    admin = admin_client(stack.kafka)
    try:
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        admin.close()
    messages = [
        SimMessage(
            topic, f"dev-{i % 37}".encode(), f"event-{i}".encode(), VALID, f"dev-{i % 37}", "s"
        )
        for i in range(COUNT)
    ]
    config = client_config(stack.kafka, "admin")

    started = time.time()
    times = asyncio.run(send_paced(config, messages, RATE))

    # Never before its due time (i / RATE after the start), and in the order of the list.
    assert len(times) == COUNT
    assert all(at >= started + i / RATE - 0.005 for i, at in enumerate(times))
    assert times == sorted(times)
    assert times[-1] - started >= (COUNT - 1) / RATE - 0.005

    consumer = KafkaConsumer(**config, auto_offset_reset="earliest", consumer_timeout_ms=5_000)
    try:
        consumer.subscribe([topic])
        stored = [(r.partition, r.key, r.value) for r in consumer]
    finally:
        consumer.close()
    every = range(PARTITIONS)
    # kafka-python's (and Java's) choice for a keyed record: murmur2 of the key.
    expected = [((murmur2(m.key) & 0x7FFFFFFF) % PARTITIONS, m.key, m.value) for m in messages]
    assert len(stored) == COUNT
    for partition in every:
        mine = [r for r in expected if r[0] == partition]
        assert mine, "every partition takes some keys"
        assert [r for r in stored if r[0] == partition] == mine
