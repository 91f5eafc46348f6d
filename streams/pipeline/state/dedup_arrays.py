"""Every device's dedup state on one worker, in arrays indexed by registry entry.

Per entry: the high-water (int64; -1: no state, -2: in ``sparse``), the 64 recent bits
(uint64), the run of older ones, gaps opened and filled (uint32 each) and the partition of
the last write (int16): 30 bytes a device, where a ``SeqState.to_json()`` string took 56
bytes after a device's first event and 1 KiB once its 4096-bit mask filled. A device with an
old hole (no ``Compact`` form, ``hito.pipeline.state.dedup_compact``) keeps its ``SeqState``
in ``sparse``; states of ids the registry no longer lists stay in ``others``, and a stored
value that cannot be read in ``unreadable`` (the agent resets it, and says so).

It is also a mapping ``device_id -> SeqState.to_json()``: the Faust table's view (its changelog
records, recovery and tools), whatever the representation.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hito.devices import DeviceRegistry
from hito.pipeline.stages.dedup import SeqState
from hito.pipeline.state.dedup_compact import State, compact, full, normal, to_json

NONE, SPARSE = -1, -2  # high-water markers


class UnreadableState(ValueError):
    """The stored dedup state of a device could not be read."""


class DedupArrays(MutableMapping[str, str]):
    def __init__(self, window: int, registry: DeviceRegistry | None = None) -> None:
        self.window = window
        self.registry = registry or DeviceRegistry([])
        self.sparse: dict[int, SeqState] = {}  # entry -> state without a compact form
        self.others: dict[str, tuple[SeqState, int]] = {}  # unregistered id -> state, partition
        self.unreadable: dict[str, tuple[object, int]] = {}  # id -> stored value, partition
        self._allocate(len(self.registry))

    def _allocate(self, n: int) -> None:
        self.high = np.full(n, NONE, dtype=np.int64)
        self.recent = np.zeros(n, dtype=np.uint64)
        self.run = np.zeros(n, dtype=np.uint32)
        self.opened = np.zeros(n, dtype=np.uint32)
        self.filled = np.zeros(n, dtype=np.uint32)
        self.partition = np.full(n, -1, dtype=np.int16)
        self._views()

    def _views(self) -> None:
        # Scalar reads and writes go through memoryviews: Python ints, at C speed.
        self._high, self._recent, self._run = self.high.data, self.recent.data, self.run.data
        self._opened, self._filled = self.opened.data, self.filled.data
        self._partition = self.partition.data

    # -- by registry entry: the agent's path -------------------------------------------------

    def state(self, i: int) -> State | None:
        """Entry ``i``'s state; raises UnreadableState when its stored value was unreadable."""
        high = self._high[i]
        if high >= 0:
            return high, self._recent[i], self._run[i], self._opened[i], self._filled[i]
        if high == SPARSE:
            return self.sparse[i]
        if self.unreadable and self.registry.device_id(i) in self.unreadable:
            raise UnreadableState(self.registry.device_id(i))
        return None

    def put(self, i: int, state: State, partition: int) -> None:
        if isinstance(state, SeqState):
            state = normal(state, self.window)
        if isinstance(state, SeqState):
            self.sparse[i] = state
            self._high[i] = SPARSE
        else:
            self.sparse.pop(i, None)
            high, self._recent[i], self._run[i], self._opened[i], self._filled[i] = state
            self._high[i] = high
        self._partition[i] = partition
        if self.unreadable:
            self.unreadable.pop(self.registry.device_id(i), None)

    def follow(self, registry: DeviceRegistry) -> None:
        """Index by ``registry`` from now on: states move with their devices' entries (in
        place when devices were only appended); those of devices it no longer lists go to
        ``others``, and come back if a later registry lists them again."""
        old = self.registry
        if registry is old:
            return
        moved = old.moved_to(registry)
        columns = self._columns()
        sparse, self.registry = self.sparse, registry
        self._allocate(len(registry))
        kept = moved >= 0
        for before, after in zip(columns, self._columns(), strict=True):
            after[moved[kept]] = before[kept]
        self.sparse = {int(moved[i]): s for i, s in sparse.items() if moved[i] >= 0}
        for i in np.flatnonzero(~kept & (columns[0] != NONE)).tolist():
            state = sparse[i] if columns[0][i] == SPARSE else full(self._row(columns, i))
            self.others[old.device_id(i)] = (state, int(columns[5][i]))
        for device_id in [d for d in self.others if d in registry]:
            state, partition = self.others.pop(device_id)
            index = registry.index_of(device_id)
            assert index is not None
            self.put(index, state, partition)

    def _columns(self) -> tuple[NDArray[Any], ...]:
        return self.high, self.recent, self.run, self.opened, self.filled, self.partition

    @staticmethod
    def _row(columns: tuple[NDArray[Any], ...], i: int) -> State:
        high, recent, run, opened, filled = (int(c[i]) for c in columns[:5])
        return high, recent, run, opened, filled

    def keep_partitions(self, partitions: set[int]) -> None:
        """Forget the states last written for other partitions (revoked: a partition assigned
        again is read back from its changelog)."""
        gone = ~np.isin(self.partition, np.array(sorted(partitions), dtype=np.int16))
        gone &= self.high != NONE
        for i in np.flatnonzero(gone & (self.high == SPARSE)).tolist():
            del self.sparse[i]
        self.high[gone] = NONE
        self.partition[gone] = -1
        for store in (self.others, self.unreadable):
            for device_id in [d for d, (_, p) in store.items() if p not in partitions]:
                del store[device_id]

    def missing(self) -> NDArray[np.int64] | None:
        """Per entry: gaps opened and not filled (0 without a state), as int64. Called by
        scrapes, from the metrics thread: None if the arrays were replaced meanwhile (a
        registry reload; the next scrape has them)."""
        high, opened, filled = self.high, self.opened, self.filled
        sparse = list(self.sparse.items())  # one step under the GIL: a consistent copy
        if not len(high) == len(opened) == len(filled):
            return None
        out = opened.astype(np.int64) - filled.astype(np.int64)
        out[high < 0] = 0
        for i, s in sparse:
            if i < len(out):
                out[i] = s.gaps_opened - s.gaps_filled
        np.maximum(out, 0, out=out)
        return out

    # -- by device id: the table's mapping ---------------------------------------------------

    def apply(self, device_id: str, value: object, partition: int) -> None:
        """A changelog record: ``value`` as the table stores it (None: deleted)."""
        if value is None:
            self.pop(device_id, None)
            return
        try:
            state = SeqState.from_json(value)  # type: ignore[arg-type]  # checked there
        except (KeyError, TypeError, ValueError):
            self.pop(device_id, None)
            self.unreadable[device_id] = (value, partition)
            return
        index = self.registry.index_of(device_id)
        if index is None:
            self.others[device_id] = (state, partition)
        else:
            self.put(index, compact(state, self.window) or state, partition)

    def __getitem__(self, device_id: str) -> str:
        index = self.registry.index_of(device_id)
        if index is not None and self._high[index] != NONE:
            state = self.state(index)
            assert state is not None
            return to_json(state)
        if device_id in self.others:
            return self.others[device_id][0].to_json()
        if device_id in self.unreadable:
            return self.unreadable[device_id][0]  # type: ignore[return-value]  # as stored
        raise KeyError(device_id)

    def __setitem__(self, device_id: str, value: str) -> None:
        self.apply(device_id, value, -1)

    def __delitem__(self, device_id: str) -> None:
        index = self.registry.index_of(device_id)
        found = device_id in self.others or device_id in self.unreadable
        self.others.pop(device_id, None)
        self.unreadable.pop(device_id, None)
        if index is not None and self._high[index] != NONE:
            found = True
            self.sparse.pop(index, None)
            self._high[index] = NONE
            self._partition[index] = -1
        if not found:
            raise KeyError(device_id)

    def __iter__(self) -> Iterator[str]:
        for i in np.flatnonzero(self.high != NONE).tolist():
            yield self.registry.device_id(i)
        yield from list(self.others)
        yield from list(self.unreadable)

    def __len__(self) -> int:
        return int(np.count_nonzero(self.high != NONE)) + len(self.others) + len(self.unreadable)

    def clear(self) -> None:
        self._allocate(len(self.registry))
        self.sparse.clear()
        self.others.clear()
        self.unreadable.clear()
