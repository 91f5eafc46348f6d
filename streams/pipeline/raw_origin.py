"""Where a clean event's raw event was read: a Kafka header on every clean record.

Ingest sets it (raw topic, partition, offset); the aggregator reads it to recognise replays
(hito.pipeline.stages.aggregate, docs/aggregation.md "Exactness without per-device state").
"""

from __future__ import annotations

from hito.pipeline.faust.batches import Record
from hito.pipeline.stages.aggregate import RawOrigin

RAW_ORIGIN_HEADER = "hito-raw"  # "<raw topic>|<partition>|<offset>", set by ingest


def raw_origin_header(topic: str, partition: int, offset: int) -> tuple[str, bytes]:
    return RAW_ORIGIN_HEADER, f"{topic}|{partition}|{offset}".encode()


def raw_origin(record: Record) -> RawOrigin | None:
    for name, value in record.headers or ():
        if name == RAW_ORIGIN_HEADER:
            try:
                source, _, offset = value.decode().rpartition("|")
                return source, int(offset)
            except (AttributeError, UnicodeDecodeError, ValueError):
                return None  # AttributeError: a header without a value (None)
    return None
