"""Versioned windows in a Faust table: what both the data windows and the pipeline counts keep.

A value is a JSON-ready dict with at least ``start`` (its window, as ``hito.pipeline.stages
.windows`` formats it) and ``version`` (bumped by every change). The table key is
``<partition>|<name>``: a window belongs to the input partition whose events fill it (its
changelog records go to that partition, and a worker owns whole partitions), so the partition
lives in the key, and the window's own state knows nothing of Kafka.

Changes are made in the store at once and marked dirty; :meth:`write_changelog` sends one
changelog record per dirty window with the batch (``hito.pipeline.state.changelog``).

Beside the table this keeps, for this process only, which version of each window InfluxDB
has: a window is *pending* while its version is newer; after a restart nothing is known, so
every window still in the table is written again (writes are idempotent). A window is
forgotten once it is older than a horizon and InfluxDB has its last version.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from hito.pipeline.delivery import Deliveries
from hito.pipeline.stages.windows import format_start
from hito.pipeline.state.changelog import ChangedInBatches, DirtyKeys, TableWriter

State = dict[str, Any]


def table_key(partition: int, name: str) -> str:
    return f"{partition}|{name}"


def partition_of(key: str) -> int:
    return int(key.split("|", 1)[0])


class VersionedWindows(ChangedInBatches):
    def __init__(
        self,
        table: Any,
        *,
        evict_every_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.writer = TableWriter(table)
        self.written: dict[str, int] = {}  # key -> version InfluxDB has (this process)
        self._dirty = DirtyKeys(self.writer)  # changed since the last changelog write
        self._evict_every_s = evict_every_s
        self._monotonic = monotonic
        self._last_evict = monotonic()

    def get(self, partition: int, name: str) -> State | None:
        state: State | None = self.writer.get(table_key(partition, name))
        return state

    def state(self, key: str) -> State:
        value: State = self.writer.store[key]
        return value

    def restore(self, partition: int, name: str, state: State) -> None:
        """Hold ``state`` in the store without a changelog record: it is durable elsewhere
        already (a window read back from the archive, hito.pipeline.state.archive)."""
        self.writer.store[table_key(partition, name)] = state

    def put(self, partition: int, name: str, state: State) -> None:
        """``state`` is the window's value now (its changelog record follows with the batch)."""
        key = table_key(partition, name)
        self.writer.store[key] = state
        self._dirty.mark(key, partition)

    def owned(self, partitions: set[int]) -> Iterator[tuple[str, State]]:
        for key, state in self.writer.items():
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

    async def evict(
        self,
        deliveries: Deliveries,
        partition: int,
        before: datetime,
        *,
        ready: Callable[[str, State], bool] = lambda key, state: True,
        among: Iterable[str] | None = None,
    ) -> list[str]:
        """Forget ``partition``'s windows that start before ``before``, are in InfluxDB and
        are ``ready`` to go (a tombstone each, with the batch); only keys ``among`` when
        given (no scan of the table). Returns the keys forgotten."""
        cutoff = format_start(before)
        if among is None:
            candidates: Iterable[tuple[str, State]] = self.owned({partition})
        else:
            candidates = (
                (key, state)
                for key in among
                if partition_of(key) == partition and (state := self.writer.get(key)) is not None
            )
        gone = [
            key
            for key, state in candidates
            if state["start"] < cutoff
            and self.written.get(key) == state["version"]
            and ready(key, state)
        ]
        for key in gone:
            await self.writer.delete(deliveries, partition, key)
            self.written.pop(key, None)
            self._dirty.discard(key)
        return gone
