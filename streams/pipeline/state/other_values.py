"""The person-days kept as text (``PersonDays.other``), indexed by partition and by day.

``PersonDays`` keeps a person who crossed once as an array row; anything else stays as the
value it is: a person with several crossings (the very people ``repeat_crossings`` counts), a
day's deletion marker, a crossing by a device the registry does not list. Deleting a published
day runs with every eviction (every few seconds) and must read only that day's keys: a walk
over every person-day took 1.2 s at a million of them (2026-12-05). So the text values are
indexed by partition (for a rebalance), by (partition, day) and, for markers, by partition.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hito.pipeline.stages.repeat import day_of, is_marker

DayOf = tuple[str, int]  # (site, epoch)


def where(key: str) -> tuple[str, DayOf | None, bool]:
    """(partition text, day, whether it is a day's deletion marker) of a table key
    ``<partition>|<site>|<pseudonym>`` or ``<partition>|<site>|#e<epoch>:``; the day is the one
    ``repeat.day_of`` reads from it (None for a key that names none)."""
    partition, bar, name = key.partition("|")
    if not bar:
        return "", None, False
    if "|" not in name:
        return partition, None, False
    try:
        day = day_of(name)
    except ValueError:
        return partition, None, False
    return partition, day, is_marker(name)


class OtherValues:
    """A dict of key -> value with its keys indexed (every change goes through here)."""

    __slots__ = ("_by_day", "_by_partition", "_markers", "values")

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self._by_partition: dict[str, set[str]] = {}
        self._by_day: dict[tuple[str, DayOf], set[str]] = {}
        self._markers: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __contains__(self, key: object) -> bool:
        return key in self.values

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self.values:
            partition, day, marker = where(key)
            self._by_partition.setdefault(partition, set()).add(key)
            if day is not None:
                self._by_day.setdefault((partition, day), set()).add(key)
            if marker:
                self._markers.setdefault(partition, set()).add(key)
        self.values[key] = value

    def __delitem__(self, key: str) -> None:
        del self.values[key]
        partition, day, marker = where(key)
        _forget(self._by_partition, partition, key)
        if day is not None:
            _forget(self._by_day, (partition, day), key)
        if marker:
            _forget(self._markers, partition, key)

    def discard(self, key: str) -> None:
        if key in self.values:
            del self[key]

    def partitions(self) -> list[str]:
        return list(self._by_partition)

    def keys_of(self, partition: str) -> list[str]:
        return list(self._by_partition.get(partition, ()))

    def keys_of_day(self, partition: str, day: DayOf) -> list[str]:
        return list(self._by_day.get((partition, day), ()))

    def markers_of(self, partition: str) -> list[str]:
        return list(self._markers.get(partition, ()))

    def clear(self) -> None:
        self.values.clear()
        self._by_partition.clear()
        self._by_day.clear()
        self._markers.clear()


def _forget(index: dict[Any, set[str]], at: Any, key: str) -> None:
    keys = index[at]
    keys.discard(key)
    if not keys:
        del index[at]
