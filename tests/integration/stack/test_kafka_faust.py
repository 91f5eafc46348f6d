"""A Faust app (our factory, as the pipeline user) consumes what a kafka-python device-side
producer (as the device user) wrote to a raw topic."""

from __future__ import annotations

import asyncio
import uuid

from kafka import KafkaProducer

from hito.access.topics import ensure_topics
from hito.credentials import client_config
from hito.pipeline.faust.app import create_app
from hito.settings import HitoSettings


def test_faust_agent_consumes_kafka_python_messages(stack: HitoSettings) -> None:
    run = uuid.uuid4().hex[:10]
    # A raw topic of its own, created with its ACLs like every project topic.
    raw = {"checkpoint": f"hito.test-smoke-{run}.raw.checkpoint"}
    pipeline = stack.pipeline.model_copy(
        update={
            "raw_topics": raw,
            "dlq_topic": f"hito.test-smoke-{run}.dlq",
            "dlq_originals_topic": f"hito.test-smoke-{run}.dlq.originals",
            "clean_topic_prefix": f"hito.test-smoke-{run}.clean.",
            "topic_partitions": 2,
        }
    )
    settings = stack.model_copy(update={"pipeline": pipeline})
    ensure_topics(settings)
    topic_name = raw["checkpoint"]
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
            producer = KafkaProducer(**client_config(stack.kafka, "device"), acks="all")
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
