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
        topic = self.table.changelog_topic
        raw_key, _ = topic.prepare_key(key, self.table.key_serializer)
        raw_value, _ = topic.prepare_value(value, self.table.value_serializer)
        await deliveries.add(
            topic.get_topic_name(), raw_key, raw_value, CHANGELOG, partition=partition
        )

    async def delete(self, deliveries: Deliveries, partition: int, key: str) -> None:
        """Remove ``key``: from the store, and from the changelog (a tombstone)."""
        self.store.pop(key, None)
        topic = self.table.changelog_topic
        raw_key, _ = topic.prepare_key(key, self.table.key_serializer)
        await deliveries.add(topic.get_topic_name(), raw_key, None, CHANGELOG, partition=partition)
