"""How the pipeline's agents produce to Kafka: a record, and the ``Send`` that takes it.

A ``Send`` may hold records back until ``flush()`` (the worker's sends gather a batch's
records into one Kafka record batch per partition); what it returns for a record is
something to await for that record's delivery (or None when there is nothing to wait for).
``hito.pipeline.delivery.Deliveries`` drives it: add a batch's records, then wait once.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    key: bytes | None
    value: bytes | None  # None: a tombstone (a compacted topic forgets the key)
    tag: Any = None  # what the caller needs to handle a refusal (e.g. the event it came from)
    partition: int | None = None  # None: the producer's partitioner, by key
    headers: Headers | None = None


class Send(Protocol):
    async def __call__(self, record: Outgoing) -> Awaitable[Any] | None: ...

    async def flush(self) -> None:
        """Send whatever is held back (the futures returned so far then complete)."""
