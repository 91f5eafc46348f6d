"""The latency run's sender: every message once, on the partition kafka-python (a device)
would choose for its key, in order, and none sent before its time."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

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
    try:
        _check_sent(config, topic, messages)
    finally:
        admin = admin_client(stack.kafka)
        try:
            admin.delete_topics([topic])
        finally:
            admin.close()


def _check_sent(config: dict[str, Any], topic: str, messages: list[SimMessage]) -> None:
    started = time.time()
    paced = asyncio.run(send_paced(config, messages, RATE))
    done = time.time()

    # Each message's time is its due time: i / RATE after the sender's start.
    times = paced.times
    assert len(times) == COUNT
    assert started <= times[0] <= done
    assert all(abs(at - (times[0] + i / RATE)) < 1e-6 for i, at in enumerate(times))
    assert paced.span_s >= (COUNT - 1) / RATE - 0.005
    assert 0.0 <= paced.late_max_s < 1.0

    consumer = KafkaConsumer(**config, auto_offset_reset="earliest", consumer_timeout_ms=5_000)
    try:
        consumer.subscribe([topic])
        read = list(consumer)
    finally:
        consumer.close()
    stored = [(r.partition, r.key, r.value) for r in read]
    # Never sent before its due time: the producer stamps a record (CreateTime, whole ms)
    # when it goes into a batch. Nor long after it (a loose bound: a loaded machine).
    at_of = {m.value: at for m, at in zip(messages, times, strict=True)}
    early = [r.value for r in read if r.timestamp < int(at_of[r.value] * 1000)]
    assert early == []
    assert all(r.timestamp / 1000 - at_of[r.value] < 1.0 for r in read)
    every = range(PARTITIONS)
    # kafka-python's (and Java's) choice for a keyed record: murmur2 of the key.
    expected = [((murmur2(m.key) & 0x7FFFFFFF) % PARTITIONS, m.key, m.value) for m in messages]
    assert len(stored) == COUNT
    for partition in every:
        mine = [r for r in expected if r[0] == partition]
        assert mine, "every partition takes some keys"
        assert [r for r in stored if r[0] == partition] == mine
