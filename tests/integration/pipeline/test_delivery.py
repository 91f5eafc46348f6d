"""What the real broker refuses, and what the pipeline's sends make of it: a record larger
than its topic takes is a permanent failure of that record only (the batch's other records
are delivered); nothing else is given up (issue #18: "a send that the broker refuses for any
per-record reason is a permanent error for that record only"). The records go through
BatchSend, as the worker's do: one aiokafka record batch per partition."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kafka.admin import NewTopic

from hito.access.kafka import admin_client
from hito.credentials import client_config
from hito.pipeline.delivery import Deliveries
from hito.pipeline.faust.produce import BatchSend
from hito.settings import HitoSettings


def _aiokafka(settings: HitoSettings) -> dict[str, Any]:
    config = client_config(settings.kafka, "admin")
    return {
        "bootstrap_servers": config["bootstrap_servers"],
        "security_protocol": config["security_protocol"],
        "sasl_mechanism": config["sasl_mechanism"],
        "sasl_plain_username": config["sasl_plain_username"],
        "sasl_plain_password": config["sasl_plain_password"],
    }


def test_a_record_the_broker_refuses_is_refused_alone(stack: HitoSettings) -> None:
    topic = f"hito.test-delivery-{uuid.uuid4().hex[:8]}"
    admin = admin_client(stack.kafka)
    try:
        # A topic that takes records of at most 2 KB: the producer allows far more, so the
        # refusal comes from the broker itself.
        admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"max.message.bytes": "2048"})])
    finally:
        admin.close()

    async def scenario() -> tuple[list[bytes], list[bytes]]:
        producer = AIOKafkaProducer(**_aiokafka(stack), acks="all", linger_ms=0)
        await producer.start()
        try:
            deliveries = Deliveries(BatchSend(lambda: producer), first_backoff_s=0.05)
            values = [b"small-1", b"x" * 10_000, b"small-2", b"y" * 50_000, b"small-3"]
            for value in values:
                await deliveries.add(topic, None, value, tag=value[:7])
            refused = await asyncio.wait_for(deliveries.wait(), 60)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(**_aiokafka(stack), enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            got = await consumer.getmany(tp, timeout_ms=5_000)
        finally:
            await consumer.stop()
        return [r.record.value or b"" for r in refused], [m.value for m in got.get(tp, [])]

    refused, stored = asyncio.run(scenario())
    assert sorted(refused) == [b"x" * 10_000, b"y" * 50_000]
    # Refused with the large ones (one record batch: the broker refuses it whole), then sent
    # again alone: all delivered, not in order (dead letters only: clean records never come
    # near a topic's limit, hito.pipeline.delivery).
    assert sorted(stored) == [b"small-1", b"small-2", b"small-3"]


def test_a_batch_goes_out_without_waiting_for_the_linger(stack: HitoSettings) -> None:
    """BatchSend closes each record batch before handing it over: aiokafka sends a closed
    batch at once, an open one only after ``linger_ms``. The worker's producer lingers 5 ms
    (for Faust's own sends), and ingest waits for Kafka twice per lane batch: open batches
    made every lane batch wait ~10 ms for nothing, the lane's queue grew behind it, and at
    500 events/s records were 70-180 ms old before ingest took them (10-40 ms with closed
    batches; bench/README.md). A 2-second linger makes the difference plain."""
    topic = f"hito.test-delivery-{uuid.uuid4().hex[:8]}"
    admin = admin_client(stack.kafka)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        admin.close()

    async def scenario() -> tuple[float, list[float]]:
        producer = AIOKafkaProducer(**_aiokafka(stack), acks="all", linger_ms=2_000)
        await producer.start()
        try:
            deliveries = Deliveries(BatchSend(lambda: producer), first_backoff_s=0.05)
            # Warm up: metadata for the new topic, the connection to its leader.
            await deliveries.add(topic, None, b"warm-up", tag="warm-up")
            assert await asyncio.wait_for(deliveries.wait(), 30) == []
            waits = []
            for round_ in range(3):
                started = asyncio.get_running_loop().time()
                for i in range(5):
                    await deliveries.add(topic, None, f"{round_}-{i}".encode(), tag=str(i))
                assert await asyncio.wait_for(deliveries.wait(), 30) == []
                waits.append(asyncio.get_running_loop().time() - started)
        finally:
            await producer.stop()
        return max(waits), waits

    slowest, waits = asyncio.run(scenario())
    # Loopback, acks=all on the test broker: milliseconds; an open batch: >= 2 s each.
    assert slowest < 1.0, waits
