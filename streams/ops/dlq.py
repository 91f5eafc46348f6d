"""`hito dlq inspect|replay`: the DLQ topic read by operators and admins (records are built by
``hito.pipeline.dead_letters``)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from hito.credentials import client_config
from hito.schemas.dlq import DlqRecord
from hito.schemas.reasons import Reason
from hito.settings import HitoSettings


def decode_record(data: bytes) -> DlqRecord:
    return DlqRecord.model_validate_json(data)


@dataclass(frozen=True)
class DlqEntry:
    partition: int
    offset: int
    record: DlqRecord


def read_all(settings: HitoSettings, *, timeout_s: float = 60.0) -> Iterator[DlqEntry]:
    """Every record now on the DLQ topic, from the beginning (no consumer group, no commits).

    Reads each partition up to its end offset as of the call; raises TimeoutError rather than
    return a partial view when the broker is too slow.
    """
    topic = settings.pipeline.dlq_topic
    # The operator user: it may read the DLQ (and clean topics), never the raw topics.
    consumer = KafkaConsumer(**client_config(settings.kafka, "operator"), enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic} not read to its end within {timeout_s:.0f} s")
            for tp, messages in consumer.poll(timeout_ms=500).items():
                for msg in messages:
                    if msg.offset < end[tp]:
                        yield DlqEntry(msg.partition, msg.offset, decode_record(msg.value))
    finally:
        consumer.close()


def redacted_view(entry: DlqEntry) -> dict[str, object]:
    """What `hito dlq inspect` shows of a record: never the original bytes (they may hold PII)."""
    r = entry.record
    return {
        "partition": entry.partition,
        "offset": entry.offset,
        "reason": r.reason.value,
        "stage": r.stage,
        "detail": r.detail,
        "device_id": r.device_id,
        "source": f"{r.source_topic}[{r.source_partition}]@{r.source_offset}",
        "received_at": r.received_at.isoformat(),
        "bytes": len(r.original),
    }


def counts_by_reason(entries: Iterator[DlqEntry]) -> Counter[str]:
    return Counter(e.record.reason.value for e in entries)


def replay(
    settings: HitoSettings,
    choose: Callable[[DlqEntry], bool],
) -> int:
    """Re-submit the chosen records' original bytes to the raw topic they came from.

    They go through the same validation again; a record still bad returns to the DLQ.
    """
    raw_topics = set(settings.pipeline.raw_topics.values())
    # Writing to a raw topic is a device's right; an operator replaying is acting as admin.
    producer = KafkaProducer(**client_config(settings.kafka, "admin"), acks="all")
    sent = 0
    try:
        for entry in read_all(settings):
            r = entry.record
            if r.source_topic not in raw_topics or not choose(entry):
                continue
            producer.send(r.source_topic, key=r.original_key, value=r.original)
            sent += 1
        producer.flush()
    finally:
        producer.close()
    return sent


def reason_filter(reasons: list[str]) -> Callable[[DlqEntry], bool]:
    wanted = {Reason(r) for r in reasons}
    return lambda e: not wanted or e.record.reason in wanted
