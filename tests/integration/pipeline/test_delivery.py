"""What the real broker refuses, and what Deliveries makes of it: a record larger than its
topic takes is a permanent failure of that record only (the batch's other records are
delivered); nothing else is given up (issue #18: "a send that the broker refuses for any
per-record reason is a permanent error for that record only")."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kafka.admin import NewTopic

from hito.access.kafka import admin_client
from hito.credentials import client_config
from hito.pipeline.delivery import Deliveries
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

            async def send(t: str, key: bytes | None, value: bytes) -> Any:
                return await producer.send(t, key=key, value=value)

            deliveries = Deliveries(send, first_backoff_s=0.05)
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
        return [r.record.value for r in refused], [m.value for m in got.get(tp, [])]

    refused, stored = asyncio.run(scenario())
    assert sorted(refused) == [b"x" * 10_000, b"y" * 50_000]
    # Refused with the large ones (same record batch), then sent again alone: all delivered,
    # not necessarily in order (nothing downstream depends on the order of a batch).
    assert sorted(stored) == [b"small-1", b"small-2", b"small-3"]
