"""`hito dlq inspect|replay`: the DLQ read by operators, and replay by an admin.

Operators read ``hito.dlq`` (reasons, never bytes) as the ``operator`` role. Replay reads the
rejected bytes from ``hito.dlq.originals``, which only the pipeline and admins may read (raw
zone), so ``hito dlq replay`` runs as the admin. Records are built by
``hito.pipeline.dead_letters``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import orjson
from kafka import KafkaProducer
from pydantic import BaseModel

from hito.credentials import Role, client_config
from hito.ops.read_to_end import read_to_end
from hito.schemas.dlq import UNREAD_STAGE, DlqOriginal, DlqRecord, without_plain_digest
from hito.schemas.reasons import Reason
from hito.settings import HitoSettings

R = TypeVar("R", bound=BaseModel)


def decode_record(data: bytes) -> DlqRecord:
    """An operators' record, of this version or dlq.record/2 (its plain digest dropped)."""
    doc = orjson.loads(data)
    if isinstance(doc, dict):
        doc = without_plain_digest(doc)
    return DlqRecord.model_validate(doc)


def decode_original(data: bytes) -> DlqOriginal:
    return DlqOriginal.model_validate_json(data)


@dataclass(frozen=True)
class Entry(Generic[R]):
    partition: int
    offset: int
    record: R


DlqEntry = Entry[DlqRecord]


def read_topic(
    settings: HitoSettings,
    topic: str,
    decode: Callable[[bytes], R],
    role: Role,
    *,
    timeout_s: float = 60.0,
) -> Iterator[Entry[R]]:
    """Every record now on ``topic``, from the beginning (:func:`read_to_end`), decoded."""
    for msg in read_to_end(settings, topic, role, timeout_s=timeout_s):
        yield Entry(msg.partition, msg.offset, decode(msg.value))


def read_all(settings: HitoSettings, *, timeout_s: float = 60.0) -> Iterator[DlqEntry]:
    """Every operator record of the DLQ, as the operator reads it."""
    topic = settings.pipeline.topics.dlq
    return read_topic(settings, topic, decode_record, "operator", timeout_s=timeout_s)


def read_originals(
    settings: HitoSettings, *, timeout_s: float = 60.0
) -> Iterator[Entry[DlqOriginal]]:
    """Every rejected event's bytes (raw zone): as the admin."""
    topic = settings.pipeline.topics.dlq_originals
    return read_topic(settings, topic, decode_original, "admin", timeout_s=timeout_s)


def redacted_view(entry: DlqEntry) -> dict[str, object]:
    """What `hito dlq inspect` shows of a record (the record holds no bytes to redact)."""
    r = entry.record
    return {
        "partition": entry.partition,
        "offset": entry.offset,
        "reason": r.reason.value,
        "stage": r.stage,
        "detail": r.detail,
        "device_id": r.device_id,
        "site": r.site,
        "source": f"{r.source_topic}[{r.source_partition}]@{r.source_offset}",
        "received_at": r.received_at.isoformat(),
        "bytes": r.original_bytes,
    }


def counts_by_reason(entries: Iterator[DlqEntry]) -> Counter[str]:
    return Counter(e.record.reason.value for e in entries)


@dataclass(frozen=True)
class Replayed:
    sent: int
    cut: int  # chosen, but only a prefix was kept: cannot be replayed
    unread: int = 0  # chosen, but a batch refused unread: no bytes to replay


def replay(settings: HitoSettings, choose: Callable[[DlqOriginal], bool]) -> Replayed:
    """Re-submit the chosen rejections' original bytes to the raw topic they came from.

    They go through the same validation again; a record still bad returns to the DLQ. A record
    whose bytes were cut (larger than hito.schemas.dlq.MAX_ORIGINAL_BYTES) is not replayed, nor
    is a batch the worker's fetch refused unread (stage UNREAD_STAGE: no bytes were kept; its
    events are in the raw topic until its retention).
    """
    raw_topics = set(settings.pipeline.raw_topics.values())
    # Writing to a raw topic is a device's right; an operator replaying is acting as admin.
    producer = KafkaProducer(**client_config(settings.kafka, "admin"), acks="all")
    sent = cut = unread = 0
    try:
        for entry in read_originals(settings):
            r = entry.record
            if r.source_topic not in raw_topics or not choose(r):
                continue
            if r.stage == UNREAD_STAGE:
                unread += 1
                continue
            if r.cut:
                cut += 1
                continue
            producer.send(r.source_topic, key=r.original_key, value=r.original)
            sent += 1
        producer.flush()
    finally:
        producer.close()
    return Replayed(sent, cut, unread)


def reason_filter(reasons: list[str]) -> Callable[[DlqOriginal], bool]:
    wanted = {Reason(r) for r in reasons}
    return lambda r: not wanted or r.reason in wanted
