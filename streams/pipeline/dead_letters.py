"""The one dead-letter path: a rejection becomes two records, sent with the batch, counted.

Used by ingest (validation), the aggregator (clean events it cannot count) and the publisher
(points InfluxDB refuses for good). Operators get the reason without the bytes on
``hito.dlq``; the bytes go to ``hito.dlq.originals`` in the raw zone (hito.schemas.dlq). Both
are keyed by the device when it is a registered one (SPEC.md: "device_id if known"), so one
device's rejections stay in order, and both fit the topics' size limit whatever was rejected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from hito.pipeline.delivery import Deliveries, Refused
from hito.pipeline.faust.batches import RefusedBatch
from hito.pipeline.metrics import PipelineMetrics
from hito.pipeline.stages.outcomes import Rejected
from hito.schemas.dlq import (
    UNREAD_STAGE,
    DlqOriginal,
    DlqRecord,
    kept_original,
    new_rejection_id,
    sha256_hex,
)
from hito.schemas.reasons import Reason
from hito.schemas.topics import TopicNames

log = logging.getLogger(__name__)

DEAD_LETTER = "dead letter"  # the tag of a dead letter's records in a batch's Deliveries


@dataclass(frozen=True)
class Origin:
    """Where the rejected bytes came from (a Kafka record, or ``influxdb`` for points)."""

    topic: str
    partition: int | None = None
    offset: int | None = None
    key: bytes | None = None


def refused_batch(record: RefusedBatch) -> Rejected:
    """The dead letter of a batch the fetch reader refused unread (too large unpacked, or not
    unpackable): ``oversized``, naming its offsets; nothing of it was read to echo. Ingest
    meets one on a raw topic (a device's batch); the aggregator on a clean topic, written by
    workers only, only if a worker's credentials are misused."""
    detail = f"records {record.first_offset}..{record.offset}: {record.why}"
    return Rejected(Reason.OVERSIZED, detail, stage=UNREAD_STAGE)


def make_records(
    rejected: Rejected, original: bytes, origin: Origin, *, now: datetime, retryable: bool = False
) -> tuple[DlqRecord, DlqOriginal]:
    kept, cut = kept_original(original)
    where = {
        "source_topic": origin.topic,
        "source_partition": origin.partition,
        "source_offset": origin.offset,
        "received_at": now,
        "original_bytes": len(original),
        "rejection_id": new_rejection_id(),
    }
    record = DlqRecord(
        reason=rejected.reason,
        stage=rejected.stage,
        detail=rejected.detail,
        retryable=retryable,
        device_id=rejected.device_id,
        site=rejected.site,
        **where,
    )
    keeps = DlqOriginal(
        reason=rejected.reason,
        stage=rejected.stage,
        device_id=rejected.device_id,
        original_sha256=sha256_hex(original),
        cut=cut,
        original_b64=kept,
        original_key_b64=kept_original(origin.key)[0] if origin.key is not None else None,
        **where,
    )
    return record, keeps


class DeadLetters:
    def __init__(
        self, topics: TopicNames, metrics: PipelineMetrics, clock: Callable[[], datetime]
    ) -> None:
        self.topics = topics
        self._metrics = metrics
        self._clock = clock

    async def reject(
        self,
        deliveries: Deliveries,
        rejected: Rejected,
        original: bytes,
        origin: Origin,
        *,
        retryable: bool = False,
    ) -> None:
        """Send the two records with the batch (``deliveries``), and count the rejection."""
        record, keeps = make_records(
            rejected, original, origin, now=self._clock(), retryable=retryable
        )
        key = rejected.device_id.encode() if rejected.device_id else None
        await deliveries.add(self.topics.dlq, key, record.model_dump_json().encode(), DEAD_LETTER)
        await deliveries.add(
            self.topics.dlq_originals, key, keeps.model_dump_json().encode(), DEAD_LETTER
        )
        self._metrics.dlq.labels(reason=rejected.reason.value, stage=rejected.stage).inc()

    def refused(self, refused: Refused) -> None:
        """A dead letter the broker refused: nothing is left to send it to, so it is counted
        (hito_dlq_refused_total) and logged, and the batch goes on."""
        self._metrics.dlq_refused.labels(topic=refused.record.topic).inc()
        log.error(
            "Kafka refused a dead letter for %s (%d bytes): %r",
            refused.record.topic,
            len(refused.record.value or b""),
            refused.error,
        )
