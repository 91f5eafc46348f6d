"""The per-person days of ``repeat_crossings`` in arrays: ~32 bytes a person, not ~240.

The ``repeat-days`` table maps ``"<partition>|<site>|e<epoch>:<32 hex>"`` to ``"<policy
version>\\n<crossing>..."`` (``hito.pipeline.state.repeat_days``). As strings in a dict, a
person who crossed once costs a key string, a value string and a dict slot: about 240 bytes,
240 MB for a million people in a day. Here, per day (partition, site, epoch), a person who
crossed once is a row of five arrays: the pseudonym as two uint64, the crossing's seq (int64),
its device's registry entry (uint32) and an index (uint32) into the distinct (direction, policy
version) pairs. Rows are kept sorted by pseudonym (looked up by bisection), the latest additions
in a small dict until there are ``MERGE_AT`` of them. Anything else (a person with several
crossings, a deletion marker, a device the registry does not list, a value of another form)
stays as the value it is, in ``other``.

It is a mapping ``str -> str`` that behaves exactly like a dict of the table's keys and values
(property-tested against one): the table's changelog records, recovery and ``RepeatDays`` are
unchanged. Rows name devices by registry entry, so they follow the registry's reloads (a device
the registry drops turns its rows back into text).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hito.devices import DeviceRegistry
from hito.pipeline.state.other_values import OtherValues

_KEY = re.compile(r"(0|[1-9][0-9]*)\|([^|\n]+)\|e(0|[1-9][0-9]*):([0-9a-f]{32})")
_SEQ = re.compile(r"0|[1-9][0-9]{0,18}")  # canonical decimal (int64: checked too)
MAX_SEQ = 2**63 - 1
_LOW = (1 << 64) - 1
GONE = 0xFFFFFFFF  # a deleted row (dropped at a merge)
MERGE_AT = 1024  # the recent dicts of all open days stay a few MB
Day = tuple[int, str, int]  # (partition, site, epoch)
Row = tuple[int, int, int]  # (seq, device entry, context)


class _Rows:
    """One day's people: sorted rows, and the latest additions in ``recent``."""

    __slots__ = ("_ctx", "_dev", "_hi", "_lo", "_seq", "columns", "live", "recent")

    def __init__(self) -> None:
        self.recent: dict[int, Row] = {}  # pseudonym -> row
        self.live = 0  # sorted rows not GONE
        self._set([np.zeros(0, t) for t in (np.uint64, np.uint64, np.int64, np.uint32, np.uint32)])

    def _set(self, columns: list[NDArray[Any]]) -> None:
        self.columns = columns  # hi, lo, seq, dev, ctx
        # memoryviews: scalar access as Python ints, at C speed
        self._hi, self._lo, self._seq, self._dev, self._ctx = (c.data for c in columns)

    def row(self, person: int) -> int | None:
        """The sorted row of ``person`` (deleted or not), or None."""
        hi, lo = person >> 64, person & _LOW
        at = bisect.bisect_left(self._hi, hi)
        while at < len(self._hi) and self._hi[at] == hi:
            if self._lo[at] == lo:
                return at
            at += 1
        return None

    def get(self, person: int) -> Row | None:
        found = self.recent.get(person)
        if found is not None:
            return found
        at = self.row(person)
        if at is None or self._ctx[at] == GONE:
            return None
        return self._seq[at], self._dev[at], self._ctx[at]

    def set(self, person: int, row: Row) -> None:
        at = None if person in self.recent else self.row(person)
        if at is None:
            self.recent[person] = row
            if len(self.recent) >= MERGE_AT:
                self.merge()
            return
        if self._ctx[at] == GONE:
            self.live += 1
        self._seq[at], self._dev[at], self._ctx[at] = row

    def delete(self, person: int) -> bool:
        if self.recent.pop(person, None) is not None:
            return True
        at = self.row(person)
        if at is None or self._ctx[at] == GONE:
            return False
        self._ctx[at] = GONE
        self.live -= 1
        return True

    def merge(self) -> None:
        """The recent additions into the sorted rows (inserted: one copy of the arrays, no
        sort of them); deleted rows go once they are a quarter of the rows."""
        people = sorted(self.recent)
        rows = [self.recent[p] for p in people]
        new = [
            np.array([p >> 64 for p in people], np.uint64),
            np.array([p & _LOW for p in people], np.uint64),
            *(
                np.array([r[i] for r in rows], t)
                for i, t in enumerate((np.int64, np.uint32, np.uint32))
            ),
        ]
        columns = self.columns
        if len(columns[0]) - self.live > len(columns[0]) // 4:
            kept = columns[4] != GONE
            columns = [c[kept] for c in columns]
        hi = columns[0]
        at = np.searchsorted(hi, new[0])
        if len(hi) and np.any(hi[np.minimum(at, len(hi) - 1)] == new[0]):
            # A pseudonym's first 64 bits shared with a row (as likely as 2**-64 per pair):
            # order by all 128.
            merged = [np.concatenate([c, n]) for c, n in zip(columns, new, strict=True)]
            order = np.lexsort((merged[1], merged[0]))
            self._set([c[order] for c in merged])
        else:
            self._set([np.insert(c, at, n) for c, n in zip(columns, new, strict=True)])
        self.live = int(np.count_nonzero(self.columns[4] != GONE))
        self.recent = {}

    def __len__(self) -> int:
        return self.live + len(self.recent)

    def items(self) -> Iterator[tuple[int, Row]]:
        """(person, row) of every row."""
        for at in np.flatnonzero(self.columns[4] != GONE).tolist():
            person = (self._hi[at] << 64) | self._lo[at]
            yield person, (self._seq[at], self._dev[at], self._ctx[at])
        yield from list(self.recent.items())

    def lost(self, to: NDArray[np.int64]) -> list[tuple[int, Row]]:
        """(person, row) of the rows whose device ``to`` maps to -1 (old entry -> new)."""
        out = [(p, r) for p, r in self.recent.items() if to[r[1]] < 0]
        dev, ctx = self.columns[3], self.columns[4]
        for at in np.flatnonzero((to[dev] < 0) & (ctx != GONE)).tolist():
            person = (self._hi[at] << 64) | self._lo[at]
            out.append((person, (self._seq[at], self._dev[at], self._ctx[at])))
        return out

    def renumber(self, to: NDArray[np.int64]) -> None:
        """Devices by their new entries (rows of devices gone must be deleted first)."""
        self.recent = {p: (r[0], int(to[r[1]]), r[2]) for p, r in self.recent.items()}
        dev = self.columns[3]
        dev[:] = np.maximum(to[dev], 0).astype(np.uint32)


class PersonDays(MutableMapping[str, str]):
    def __init__(self, registry: Callable[[], DeviceRegistry] | None = None) -> None:
        """``registry``: the registry now (rows name devices by its entries)."""
        self._registry_now = registry or (lambda: _EMPTY)
        self.registry = self._registry_now()
        self.days: dict[Day, _Rows] = {}
        self.other = OtherValues()  # what has no row form, as stored (other_values.py)
        self.contexts: list[tuple[str, str]] = []  # (direction, policy)
        self._context: dict[tuple[str, str], int] = {}
        # Crossings come from few devices (checkpoint terminals): their entries, remembered.
        self._device: dict[str, int | None] = {}
        self._parsed: tuple[str, tuple[Day, int] | None] = ("", None)  # the last key read

    def follow(self) -> None:
        """Rows by the entries of the registry now (a no-op while it is the same)."""
        registry = self._registry_now()
        if registry is self.registry:
            return
        old, self.registry = self.registry, registry
        self._device = {}
        to = old.moved_to(registry)
        for day, rows in list(self.days.items()):
            for person, row in rows.lost(to):
                self.other[self._key_text(day, person)] = self._text(row, old)
                rows.delete(person)
            rows.renumber(to)
            if not len(rows):
                del self.days[day]

    def _key(self, key: str) -> tuple[Day, int] | None:
        last, parsed = self._parsed
        if key == last:  # RepeatDays reads a person-day, then writes it
            return parsed
        match = _KEY.fullmatch(key)
        if match is not None:
            partition, site, epoch, person = match.groups()
            parsed = (int(partition), site, int(epoch)), int(person, 16)
        else:
            parsed = None
        self._parsed = (key, parsed)
        return parsed

    @staticmethod
    def _key_text(day: Day, person: int) -> str:
        return f"{day[0]}|{day[1]}|e{day[2]}:{person:032x}"

    def _value(self, value: str) -> Row | None:
        """The row of a one-crossing value by a registered device, or None for any other."""
        policy, newline, crossing = value.partition("\n")
        parts = crossing.split("|")
        if not newline or len(parts) != 3 or "\n" in crossing or not _SEQ.fullmatch(parts[2]):
            return None
        seq = int(parts[2])
        device_id = parts[1]
        if device_id in self._device:
            device = self._device[device_id]
        else:
            if len(self._device) >= 65536:
                self._device = {}
            device = self._device[device_id] = self.registry.index_of(device_id)
        if seq > MAX_SEQ or device is None:
            return None
        pair = (parts[0], policy)
        ctx = self._context.get(pair)
        if ctx is None:
            ctx = self._context[pair] = len(self.contexts)
            self.contexts.append(pair)
        return seq, device, ctx

    def _text(self, row: Row, registry: DeviceRegistry | None = None) -> str:
        seq, device, ctx = row
        direction, policy = self.contexts[ctx]
        return f"{policy}\n{direction}|{(registry or self.registry).device_id(device)}|{seq}"

    def __getitem__(self, key: str) -> str:
        self.follow()
        parsed = self._key(key)
        if parsed is not None:
            rows = self.days.get(parsed[0])
            found = rows.get(parsed[1]) if rows is not None else None
            if found is not None:
                return self._text(found)
        value: str = self.other[key]
        return value

    def __setitem__(self, key: str, value: str) -> None:
        self.follow()
        parsed = self._key(key)
        row = self._value(value) if parsed is not None and isinstance(value, str) else None
        if parsed is None or row is None:
            if parsed is not None:
                self._delete_row(*parsed)
            self.other[key] = value
            return
        self.other.discard(key)
        rows = self.days.get(parsed[0])
        if rows is None:
            rows = self.days[parsed[0]] = _Rows()
        rows.set(parsed[1], row)

    def _delete_row(self, day: Day, person: int) -> bool:
        rows = self.days.get(day)
        if rows is None or not rows.delete(person):
            return False
        if not len(rows):
            del self.days[day]
        return True

    def __delitem__(self, key: str) -> None:
        self.follow()
        parsed = self._key(key)
        if parsed is not None and self._delete_row(*parsed):
            return
        del self.other[key]

    def __iter__(self) -> Iterator[str]:
        for key, _ in self.items_now():
            yield key

    def items_now(self) -> Iterator[tuple[str, str]]:
        """Every (key, value), each built once (``items()`` would parse each key again)."""
        self.follow()
        for day, rows in list(self.days.items()):
            prefix = f"{day[0]}|{day[1]}|e{day[2]}:"
            for person, row in rows.items():
                yield f"{prefix}{person:032x}", self._text(row)
        yield from list(self.other.values.items())

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]  # a snapshot
        return list(self.items_now())

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.days.values()) + len(self.other)

    def keep_partitions(self, partitions: set[int]) -> None:
        """Forget other partitions' people (revoked: read back from the changelog when the
        partition is assigned again)."""
        for day in [d for d in self.days if d[0] not in partitions]:
            del self.days[day]
        for partition in self.other.partitions():
            if partition.isdigit() and int(partition) not in partitions:
                for key in self.other.keys_of(partition):
                    del self.other[key]

    def other_keys(self, partition: int, day: tuple[str, int]) -> list[str]:
        """Keys of ``partition``'s ``day`` (site, epoch) whose values have no row form
        (several crossings, the day's deletion marker, an unlisted device): from an index."""
        self.follow()
        return self.other.keys_of_day(str(partition), day)

    def marker_keys(self, partition: int) -> list[str]:
        """Keys of ``partition``'s day deletion markers: from an index."""
        self.follow()
        return self.other.markers_of(str(partition))

    def row_keys(self, day: Day) -> list[str]:
        """Keys of ``day``'s rows (people who crossed once): only that day's are built."""
        self.follow()
        rows = self.days.get(day)
        if rows is None:
            return []
        return [self._key_text(day, person) for person, _ in rows.items()]

    def clear(self) -> None:
        self.days.clear()
        self.other.clear()


_EMPTY = DeviceRegistry([])
