"""Versioned windows in a Faust table: what both the data windows and the pipeline counts keep.

A value is a JSON-ready dict with at least ``start`` (its window, as ``hito.pipeline.stages
.windows`` formats it) and ``version`` (bumped by every change). The table key is
``<partition>|<name>``: a window belongs to the input partition whose events fill it (a table
write goes to the changelog partition of the event it is made for, and a worker owns whole
partitions), so the partition lives in the key, and the window's own state knows nothing of
Kafka.

Beside the table this keeps, for this process only, which version of each window InfluxDB
has: a window is *pending* while its version is newer; after a restart nothing is known, so
every window still in the table is written again (writes are idempotent). A window is
forgotten once it is older than a horizon and InfluxDB has its last version.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from hito.pipeline.faust.batches import on_behalf_of
from hito.pipeline.stages.windows import format_start

State = dict[str, Any]


def table_key(partition: int, name: str) -> str:
    return f"{partition}|{name}"


def partition_of(key: str) -> int:
    return int(key.split("|", 1)[0])


class VersionedWindows:
    def __init__(
        self,
        table: Any,
        *,
        evict_every_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table = table
        self.written: dict[str, int] = {}  # key -> version InfluxDB has (this process)
        self._evict_every_s = evict_every_s
        self._monotonic = monotonic
        self._last_evict = monotonic()

    def get(self, partition: int, name: str) -> State | None:
        state: State | None = self.table.get(table_key(partition, name))
        return state

    def put(self, partition: int, name: str, state: State, event: Any) -> None:
        """Write ``state`` (one changelog record) on behalf of ``event``, which must be an
        event of ``partition``."""
        with on_behalf_of(event):
            self.table[table_key(partition, name)] = state

    def owned(self, partitions: set[int]) -> Iterator[tuple[str, State]]:
        for key, state in list(self.table.items()):
            if partition_of(key) in partitions:
                yield key, state

    def pending(self, partitions: set[int]) -> dict[str, int]:
        """Windows of ``partitions`` whose version InfluxDB does not have yet."""
        return {
            key: state["version"]
            for key, state in self.owned(partitions)
            if self.written.get(key) != state["version"]
        }

    def mark_written(self, versions: dict[str, int]) -> None:
        self.written.update(versions)

    def eviction_due(self) -> bool:
        """True at most once every ``evict_every_s`` (eviction scans the whole table)."""
        now = self._monotonic()
        if now - self._last_evict < self._evict_every_s:
            return False
        self._last_evict = now
        return True

    def evict(self, partition: int, before: datetime, event: Any) -> list[str]:
        """Forget ``partition``'s windows that start before ``before`` and are in InfluxDB
        (deletes go to the changelog on behalf of ``event``, an event of that partition).
        Returns the keys forgotten."""
        cutoff = format_start(before)
        gone = [
            key
            for key, state in self.owned({partition})
            if state["start"] < cutoff and self.written.get(key) == state["version"]
        ]
        with on_behalf_of(event):
            for key in gone:
                del self.table[key]
                self.written.pop(key, None)
        return gone
