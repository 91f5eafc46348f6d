"""Faust stores whose data are arrays: the ``dedup-seq`` table (``DedupArrays``) and the
``repeat-days`` table (``PersonDays``).

Faust keeps each table, its changelog topic, the assignor and recovery; only the in-memory form
of the values changes. Changelog records keep exactly their keys and values (``TableWriter``
writes them with the table's own serialisers), and recovery feeds them to
``apply_changelog_batch``, which applies each in changelog order (the last record of a key
wins; a tombstone deletes), so a fresh worker holds exactly what the changelog says. As Faust's
memory store does, what belongs to partitions that are not this worker's once recovery
completes is dropped (a partition assigned again is read back from the beginning of its
changelog: these stores persist no offset).

A table uses one with ``store=DEDUP_URL`` (and ``options={"window": ..., "registry":
RegistryWatcher, "on_restored": callback}``) or ``store=PERSON_DAYS_URL`` (and
``options={"registry": ...}``: rows name devices by registry entry)
(``hito.pipeline.worker``); importing this module registers the schemes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from faust.stores import STORES
from faust.stores.base import Store
from faust.types import TP, EventT

from hito.devices import RegistryWatcher
from hito.pipeline.state.dedup_arrays import DedupArrays
from hito.pipeline.state.person_days import PersonDays

# A URL without a host is falsy, and Faust would take its default store instead.
DEDUP_URL = "hito-dedup://arrays"
PERSON_DAYS_URL = "hito-person-days://arrays"
STORES.aliases.setdefault("hito-dedup", f"{__name__}:DedupStore")
STORES.aliases.setdefault("hito-person-days", f"{__name__}:PersonDaysStore")


class _InMemory(Store[str, str]):
    def persisted_offset(self, tp: TP) -> int | None:
        return None  # in memory only: a partition is always read back from the beginning

    def reset_state(self) -> None:
        return None

    def _clear(self) -> None:
        self.data.clear()

    async def backup_partition(
        self, tp: TP | int, flush: bool = True, purge: bool = False, keep: int = 1
    ) -> None:
        return None

    def restore_backup(self, tp: TP | int, latest: bool = True, backup_id: int = 0) -> None:
        return None


class DedupStore(_InMemory):
    data: DedupArrays

    def __init__(self, url: Any, app: Any, table: Any, **kwargs: Any) -> None:
        super().__init__(url, app, table, **kwargs)
        options = self.options or {}
        self.registry: RegistryWatcher | None = options.get("registry")
        # (device_id, partition, when its state was written, Unix s): told of every state
        # recovered, so that a device silent before a restart or handover is still known as
        # silent (its last state was written when its last event was handled).
        self.on_restored: Callable[[str, int, float], None] | None = options.get("on_restored")
        self.data = DedupArrays(int(options["window"]))
        if self.registry is not None:
            self.data.follow(self.registry.current())

    def apply_changelog_batch(
        self,
        batch: Iterable[EventT[Any]],
        to_key: Callable[[Any], Any],
        to_value: Callable[[Any], Any],
    ) -> None:
        if self.registry is not None:
            self.data.follow(self.registry.current())
        apply, restored = self.data.apply, self.on_restored
        for event in batch:
            value = None if event.message.value is None else to_value(event.value)
            key, partition = to_key(event.key), event.message.partition
            apply(key, value, partition)
            if value is not None and restored is not None:
                restored(key, partition, float(event.message.timestamp or 0.0))

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        self.data.keep_partitions({tp.partition for tp in active_tps})


class PersonDaysStore(_InMemory):
    data: PersonDays

    def __init__(self, url: Any, app: Any, table: Any, **kwargs: Any) -> None:
        super().__init__(url, app, table, **kwargs)
        registry: RegistryWatcher | None = (self.options or {}).get("registry")
        self.data = PersonDays(registry.current if registry is not None else None)

    def apply_changelog_batch(
        self,
        batch: Iterable[EventT[Any]],
        to_key: Callable[[Any], Any],
        to_value: Callable[[Any], Any],
    ) -> None:
        data = self.data
        for event in batch:
            key = to_key(event.key)
            if event.message.value is None:
                data.pop(key, None)
            else:
                data[key] = to_value(event.value)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        # The key starts with its partition (hito.pipeline.state.repeat_days.table_key).
        self.data.keep_partitions({tp.partition for tp in active_tps})


def seq_states(table: Any) -> DedupArrays:
    """The dedup states of a table made with DEDUP_URL."""
    data = table.data.data
    assert isinstance(data, DedupArrays), "the dedup-seq table needs store=DEDUP_URL"
    return data
