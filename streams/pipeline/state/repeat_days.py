"""Per-person, per-day state of ``repeat_crossings`` in a Faust table, and its deletion.

The table key is ``<partition>|<site>|<pseudonym>`` (the partition of the clean events that
fill it, as in ``hito.pipeline.state.versioned``; the pseudonym names its epoch, the day), the
value one text: the policy version, then the person's crossings, a line each. One record per
person and day, so a batch writes small records and a day of a busy site is never one huge
value. In memory, the table's store (``hito.pipeline.state.person_days``) keeps a person who
crossed once as an array row, about 32 bytes (bench/state_rss.py).

Which days InfluxDB has is known to this process only (``published``); after a restart every
closed day still in the table is published again (the same values: a closed day no longer
changes) and then deleted. Writes go to the store at once and to the changelog with the
aggregate agent's batch (``hito.pipeline.state.changelog``); the changelog's compaction
settings (policy ``retention_hours.person_state``) bound how long a deleted record stays in
Kafka.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from hito.pipeline.delivery import Deliveries
from hito.pipeline.stages.repeat import Crossings, day_of, is_marker, marker_name
from hito.pipeline.state.changelog import ChangedInBatches, DirtyKeys, TableWriter
from hito.pipeline.state.person_days import PersonDays
from hito.pipeline.state.stores import PersonDaysStore

Day = tuple[int, str, int]  # (partition, site, epoch)
PersonDay = tuple[Crossings, str]  # (crossings, policy version)


def pack(crossings: Crossings, policy: str) -> str:
    return "\n".join([policy, *crossings])


def unpack(value: str) -> PersonDay:
    policy, *crossings = value.split("\n")
    return crossings, policy


def table_key(partition: int, name: str) -> str:
    return f"{partition}|{name}"


class RepeatDays(ChangedInBatches):
    def __init__(
        self,
        table: Any,
        *,
        scan_every_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.writer = TableWriter(table)
        self._dirty = DirtyKeys(self.writer)  # changed since the last changelog write
        self.published: set[Day] = set()  # days InfluxDB has (this process)
        # Epochs of days written since the last scan, or not yet published at it: a scan is
        # needed only when one of them closes (or the partitions owned change).
        self.epochs: set[int] = set()
        self._scan_every_s = scan_every_s
        self._monotonic = monotonic
        self._last_scan = -float("inf")

    @property
    def people(self) -> PersonDays:
        """The table's person-days (a worker's repeat-days table stores them in a
        PersonDaysStore; a stand-in table may hold them itself)."""
        store = self.writer.store
        people = store.data if isinstance(store, PersonDaysStore) else store
        if not isinstance(people, PersonDays):
            raise TypeError(f"repeat-days data must be PersonDays, not {type(people).__name__}")
        return people

    def get(self, partition: int, name: str) -> PersonDay | None:
        """(crossings, policy version) of a person-day, or None."""
        value = self.writer.get(table_key(partition, name))
        return None if value is None else unpack(value)

    def put(self, partition: int, name: str, crossings: Crossings, policy: str) -> None:
        """A person-day's value now (its changelog record follows with the batch)."""
        key = table_key(partition, name)
        self.writer.store[key] = pack(crossings, policy)
        self._dirty.mark(key, partition)
        self.epochs.add(day_of(name)[1])

    def scan_due(self) -> bool:
        """True at most once every ``scan_every_s`` (a scan reads the whole table; the
        publisher also scans only when a day may have closed)."""
        now = self._monotonic()
        if now - self._last_scan < self._scan_every_s:
            return False
        self._last_scan = now
        return True

    def days(self, partitions: set[int]) -> tuple[dict[Day, list[PersonDay]], set[Day]]:
        """Every day of ``partitions`` in the table with its person records, and the days
        whose deletion had begun (marked: never to be published again)."""
        out: dict[Day, list[PersonDay]] = {}
        marked: set[Day] = set()
        for key, value in self.writer.items():
            partition, name = key.split("|", 1)
            if int(partition) in partitions:
                site, epoch = day_of(name)
                day = (int(partition), site, epoch)
                if is_marker(name):
                    marked.add(day)
                else:
                    out.setdefault(day, []).append(unpack(value))
        return out, marked

    async def delete_published(self, deliveries: Deliveries, partition: int) -> int:
        """Delete the person records of ``partition``'s published days (with the batch in
        ``deliveries``); returns how many were deleted.

        A day's deletion is a marker, the records' tombstones, then the marker's, all in this
        batch: one changelog partition keeps their order and the idempotent producer lands an
        in-order prefix of them, so a crash part-way leaves the marker with the records not
        deleted yet. A marked day is never published again (what is left of it would be too
        small a count), only deleted, here, next time. Not split over batches: a failed
        batch's tombstones are not sent again (its keys are gone from the store), so a later
        batch's marker tombstone would leave them live and unmarked (found in review)."""
        # Called every few seconds: only the partition's markers and the keys of the days
        # that go are read, from the store's indexes (a walk over every person-day took 1.2 s
        # at a million of them).
        people = self.people
        prefix = f"{partition}|"
        days = {(site, epoch) for p, site, epoch in self.published if p == partition}
        days |= {day_of(key[len(prefix) :]) for key in people.marker_keys(partition)}
        deleted = 0
        for site, epoch in sorted(days):
            marker = table_key(partition, marker_name(site, epoch))
            await self.writer.put(deliveries, partition, marker, "deleting")
            # Until the day is empty: a registry reload during the sends below turns rows into
            # text values not listed yet (a closed day gains no new record). A key is listed
            # once at most, so this ends whatever the store does.
            listed: set[str] = set()
            while gone := [
                key
                for key in _keys_of_day(people, partition, site, epoch, marker)
                if key not in listed
            ]:
                listed.update(gone)
                for key in gone:
                    await self.writer.delete(deliveries, partition, key)
                    self._dirty.discard(key)
                deleted += len(gone)
            await self.writer.delete(deliveries, partition, marker)
            self.published.discard((partition, site, epoch))
        return deleted


def _keys_of_day(
    people: PersonDays, partition: int, site: str, epoch: int, marker: str
) -> list[str]:
    """The keys of the day's person records (text values, then rows)."""
    keys = [key for key in people.other_keys(partition, (site, epoch)) if key != marker]
    return keys + people.row_keys((partition, site, epoch))
