"""A Faust app (our factory) consumes what a kafka-python device-side producer wrote."""

from __future__ import annotations

import asyncio
import uuid

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from streams.app import create_app
from streams.settings import HitoSettings


def _create_topic(settings: HitoSettings, name: str, partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        admin.close()


def test_faust_agent_consumes_kafka_python_messages(stack: HitoSettings) -> None:
    run = uuid.uuid4().hex[:10]
    topic_name = f"hito.test.smoke-{run}"
    _create_topic(stack, topic_name, partitions=2)
    sent = {f"device-{i}".encode(): f'{{"n": {i}, "run": "{run}"}}'.encode() for i in range(5)}

    async def scenario() -> dict[bytes, bytes]:
        app = create_app(stack, app_id=f"hito-smoke-{run}")
        topic = app.topic(topic_name, partitions=2)
        received: dict[bytes, bytes] = {}
        done = asyncio.Event()

        @app.agent(topic)
        async def collect(stream):  # type: ignore[no-untyped-def]
            async for event in stream.events():
                received[event.key] = event.value
                if len(received) == len(sent):
                    done.set()

        await app.start()
        try:
            producer = KafkaProducer(bootstrap_servers=stack.kafka.bootstrap, acks="all")
            for key, value in sent.items():
                producer.send(topic_name, key=key, value=value)
            producer.flush(timeout=10)
            producer.close()
            await asyncio.wait_for(done.wait(), timeout=60)
        finally:
            await app.stop()
        return received

    received = asyncio.run(scenario())
    assert received == sent
