"""Read a topic as it is now, every partition from its beginning to its end offset as of the
call: what the operator tools show (the DLQ, a device's dedup state). No consumer group, no
commits: reading changes nothing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaTimeoutError, RequestTimedOutError

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
    ``role`` may not see) has no records, or raises LookupError unless ``missing_ok``.

    ``timeout_s`` bounds the whole call, every request of it included (but a new connection's
    set-up, below): a broker that hangs (a frozen process, a dropped network) answers no request
    and fails none, and kafka-python's own limits are 30 s per step, after which ``position``
    gives None (a TypeError here before)."""
    deadline = time.monotonic() + timeout_s

    def left_ms() -> int:
        ms = int((deadline - time.monotonic()) * 1000)
        if ms <= 0:
            raise TimeoutError(f"{topic} not read to its end within {timeout_s:.0f} s")
        return ms

    # A request waits at most half the budget, up to kafka-python's default (it wants it above
    # the fetch wait). A connection's set-up is kafka-python's own 10 s (the consumer takes no
    # setting for it): a broker that freezes just after the bootstrap holds a lookup that long.
    per_request_ms = min(_REQUEST_MS, max(_FETCH_WAIT_MS + 100, int(timeout_s * 500)))
    try:
        consumer = KafkaConsumer(
            **client_config(settings.kafka, role),
            enable_auto_commit=False,
            bootstrap_timeout_ms=left_ms(),
            request_timeout_ms=per_request_ms,
            fetch_max_wait_ms=_FETCH_WAIT_MS,
        )
    except KafkaTimeoutError as exc:
        raise TimeoutError(f"Kafka not reached within {timeout_s:.0f} s") from exc
    try:
        yield from _read(consumer, topic, missing_ok, left_ms)
    except (KafkaTimeoutError, RequestTimedOutError) as exc:
        raise TimeoutError(f"{topic}: Kafka did not answer within {timeout_s:.0f} s") from exc
    finally:
        consumer.close()


def _read(
    consumer: KafkaConsumer, topic: str, missing_ok: bool, left_ms: Callable[[], int]
) -> Iterator[Any]:
    partitions = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    if not tps:
        if missing_ok:
            return
        raise LookupError(f"Kafka has no topic {topic}")
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    end = consumer.end_offsets(tps, timeout_ms=left_ms())
    while not all(_reached(consumer.position(tp, timeout_ms=left_ms()), end[tp]) for tp in tps):
        for tp, messages in consumer.poll(timeout_ms=min(500, left_ms())).items():
            yield from (msg for msg in messages if msg.offset < end[tp])


_FETCH_WAIT_MS = 500  # kafka-python's default fetch wait
_REQUEST_MS = 30_000  # and its default request timeout, which a long budget does not raise


def _reached(position: int | None, end: int) -> bool:
    """None: the position is not known yet (its lookup did not finish in time)."""
    return position is not None and position >= end
