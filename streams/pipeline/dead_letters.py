"""The one dead-letter path: build a DLQ record from a rejection, send it, count it.

Used by ingest (validation), the aggregator (clean events it cannot count) and the publisher
(points InfluxDB refuses for good). A record is keyed by the device when it is a registered
one (SPEC.md: "device_id if known"), so one device's rejections stay in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hito.pipeline.metrics import PipelineMetrics
from hito.pipeline.output import Send
from hito.pipeline.stages.outcomes import Rejected
from hito.schemas.dlq import DlqRecord


@dataclass(frozen=True)
class Origin:
    """Where the rejected bytes came from (a Kafka record, or ``influxdb`` for points)."""

    topic: str
    partition: int | None = None
    offset: int | None = None
    key: bytes | None = None


def make_record(
    rejected: Rejected, original: bytes, origin: Origin, *, now: datetime, retryable: bool = False
) -> DlqRecord:
    return DlqRecord(
        reason=rejected.reason,
        stage=rejected.stage,
        detail=rejected.detail,
        retryable=retryable,
        device_id=rejected.device_id,
        source_topic=origin.topic,
        source_partition=origin.partition,
        source_offset=origin.offset,
        received_at=now,
        original_b64=DlqRecord.encode_original(original),
        original_key_b64=None if origin.key is None else DlqRecord.encode_original(origin.key),
    )


def encode_record(record: DlqRecord) -> bytes:
    return record.model_dump_json().encode()


class DeadLetters:
    def __init__(
        self, topic: str, send: Send, metrics: PipelineMetrics, clock: Callable[[], datetime]
    ) -> None:
        self.topic = topic
        self._send = send
        self._metrics = metrics
        self._clock = clock

    async def reject(
        self, rejected: Rejected, original: bytes, origin: Origin, *, retryable: bool = False
    ) -> Any:
        """Send one record; returns the delivery future (the caller waits with its batch)."""
        record = make_record(rejected, original, origin, now=self._clock(), retryable=retryable)
        key = rejected.device_id.encode() if rejected.device_id else None
        delivered = await self._send(self.topic, key, encode_record(record))
        self._metrics.dlq.labels(reason=rejected.reason.value, stage=rejected.stage).inc()
        return delivered
