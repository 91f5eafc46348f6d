"""Read a topic as it is now, every partition from its beginning to its end offset as of the
call: what the operator tools show (the DLQ, a device's dedup state). No consumer group, no
commits: reading changes nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from hito.credentials import Role, client_config
from hito.settings import HitoSettings


def read_to_end(
    settings: HitoSettings,
    topic: str,
    role: Role,
    *,
    timeout_s: float = 60.0,
    missing_ok: bool = True,
) -> Iterator[Any]:
    """Every record now on ``topic`` (kafka-python's ConsumerRecord), in offset order within
    each partition (the partitions' records interleave). Raises TimeoutError rather than
    return a partial view when the broker is too slow. A topic that does not exist (or that
    ``role`` may not see) has no records, or raises LookupError unless ``missing_ok``."""
    consumer = KafkaConsumer(**client_config(settings.kafka, role), enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            if missing_ok:
                return
            raise LookupError(f"Kafka has no topic {topic}")
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic} not read to its end within {timeout_s:.0f} s")
            for tp, messages in consumer.poll(timeout_ms=500).items():
                yield from (msg for msg in messages if msg.offset < end[tp])
    finally:
        consumer.close()
