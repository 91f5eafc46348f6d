"""The ``dedup-seq`` table's Faust store: its data are ``DedupArrays``.

Faust keeps the table, its changelog topic, the assignor and recovery; only the in-memory form
of the values changes. Changelog records keep exactly their key and value (``device_id ->
SeqState.to_json()``, written by ``TableWriter.changelog``), and recovery feeds them to
:meth:`DedupStore.apply_changelog_batch`, which parses each into the arrays in changelog order
(the last record of a key wins; a tombstone deletes), so a fresh worker holds exactly what the
changelog says. As Faust's memory store does, states of partitions that are not this
worker's once recovery completes are dropped (a partition assigned again is read back from
the beginning of its changelog: this store persists no offset).

The table is created with ``store=STORE_URL`` and ``options={"window": ..., "registry":
RegistryWatcher}`` (``hito.pipeline.worker``); importing this module registers the scheme.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from faust.stores import STORES
from faust.stores.base import Store
from faust.types import TP, EventT

from hito.devices import RegistryWatcher
from hito.pipeline.state.dedup_arrays import DedupArrays

SCHEME = "hito-dedup"
STORE_URL = f"{SCHEME}://arrays"  # a URL without a host is falsy: Faust would ignore it
STORES.aliases.setdefault(SCHEME, f"{__name__}:DedupStore")


class DedupStore(Store[str, str]):
    data: DedupArrays

    def __init__(self, url: Any, app: Any, table: Any, **kwargs: Any) -> None:
        super().__init__(url, app, table, **kwargs)
        options = self.options or {}
        self.registry: RegistryWatcher | None = options.get("registry")
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
        apply = self.data.apply
        for event in batch:
            value = None if event.message.value is None else to_value(event.value)
            apply(to_key(event.key), value, event.message.partition)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        self.data.keep_partitions({tp.partition for tp in active_tps})

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


def seq_states(table: Any) -> DedupArrays:
    """The dedup states of a table made with this store."""
    data = table.data.data
    assert isinstance(data, DedupArrays), "the dedup-seq table needs store=STORE_URL"
    return data
