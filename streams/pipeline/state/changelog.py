"""A Faust table written the batch way: the store at once, the changelog with the batch.

A table's ``__setitem__`` sends one changelog record per write through ``Topic.send`` and
needs Faust's *current event* to know the partition (25 µs per device per batch, NOTES-perf).
Here the store is written directly and the changelog record — serialised by the table's own
changelog topic, so that Faust's recovery reads it back unchanged — goes out with the batch's
other records (``hito.pipeline.delivery.Deliveries``), to the partition the caller names (the
input partition whose events made the change: changelogs are co-partitioned with their
source). Faust keeps the changelog topic, recovery, standby and the assignor.

The caller waits for the batch's deliveries before the batch counts as handled, so a commit
never covers a change whose changelog record is not in Kafka.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from hito.pipeline.delivery import Deliveries

CHANGELOG = "changelog"  # the tag of changelog records in a batch's Deliveries


class TableWriter:
    def __init__(self, table: Any) -> None:
        self.table = table

    @property
    def store(self) -> Any:
        """The table's storage (a mapping); reads and silent writes go here."""
        return self.table.data

    def get(self, key: str) -> Any:
        return self.store.get(key)

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(list(self.store.items()))

    async def put(self, deliveries: Deliveries, partition: int, key: str, value: Any) -> None:
        self.store[key] = value
        await self.changelog(deliveries, partition, key, value)

    async def changelog(self, deliveries: Deliveries, partition: int, key: str, value: Any) -> None:
        """The changelog record of ``key``'s value (already in the store)."""
        await deliveries.add(
            self._topic, self._key(key), self._value(value), CHANGELOG, partition=partition
        )

    async def delete(self, deliveries: Deliveries, partition: int, key: str) -> None:
        """Remove ``key``: from the store, and from the changelog (a tombstone)."""
        self.store.pop(key, None)
        await deliveries.add(self._topic, self._key(key), None, CHANGELOG, partition=partition)

    @property
    def _topic(self) -> str:
        name: str = self.table.changelog_topic.get_topic_name()
        return name

    def _key(self, key: str) -> bytes:
        # Faust's json codec goes through its codec registry per call (~20 µs, a third of an
        # aggregated event in a profile); for the tables' JSON, orjson writes bytes Faust's
        # recovery reads back unchanged (tests/integration/pipeline/test_changelog.py).
        if self.table.key_serializer == "json":
            return orjson.dumps(key)
        raw, _ = self.table.changelog_topic.prepare_key(key, self.table.key_serializer)
        return bytes(raw)

    def _value(self, value: Any) -> bytes:
        if self.table.value_serializer == "json":
            return orjson.dumps(value)
        raw, _ = self.table.changelog_topic.prepare_value(value, self.table.value_serializer)
        return bytes(raw)


class DirtyKeys:
    """Keys of a table changed since its last changelog write, each with the partition whose
    events changed it: the stores write one record per changed key at the end of a batch."""

    def __init__(self, writer: TableWriter) -> None:
        self._writer = writer
        self._keys: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def mark(self, key: str, partition: int) -> None:
        self._keys[key] = partition

    def discard(self, key: str) -> None:
        """``key`` is gone (its tombstone goes out instead)."""
        self._keys.pop(key, None)

    async def write(self, deliveries: Deliveries) -> dict[str, int]:
        """One changelog record per key changed since the last call (its value now); returns
        what it wrote (key -> partition), for :meth:`rewrite_later`."""
        dirty, self._keys = self._keys, {}
        for key, partition in dirty.items():
            value = self._writer.get(key)
            if value is not None:
                await self._writer.changelog(deliveries, partition, key, value)
        return dirty

    def keep(self, partitions: set[int]) -> None:
        """Forget the changes of other partitions (they went to another worker, which reads
        their batches again: a value written from here could land after its own)."""
        self._keys = {key: p for key, p in self._keys.items() if p in partitions}

    def rewrite_later(self, written: dict[str, int]) -> None:
        """Records :meth:`write` sent did not reach Kafka: the next call sends those keys'
        values again (a batch read again finds its events counted, changes nothing, and
        would write nothing of its own)."""
        for key, partition in written.items():
            self._keys.setdefault(key, partition)


class ChangedInBatches:
    """A store whose changes reach its table's changelog once per batch: one record per key
    changed since the last write (the stores set ``_dirty``)."""

    _dirty: DirtyKeys

    async def write_changelog(self, deliveries: Deliveries) -> dict[str, int]:
        """One changelog record per key changed since the last call (its value now); what it
        wrote, for :meth:`rewrite_later`."""
        return await self._dirty.write(deliveries)

    def rewrite_later(self, written: dict[str, int]) -> None:
        """What :meth:`write_changelog` wrote did not reach Kafka: the next call writes it
        again."""
        self._dirty.rewrite_later(written)

    def keep_unwritten(self, partitions: set[int]) -> None:
        """After a rebalance: unwritten changes of these partitions only (DirtyKeys.keep)."""
        self._dirty.keep(partitions)
