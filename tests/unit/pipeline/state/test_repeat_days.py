"""Deleting a published day of repeat_crossings: a marker, the records' tombstones, then the
marker's, in that order; a day found marked (a crash part-way) is never published again from
what is left, only deleted."""

from __future__ import annotations

from typing import Any

from hito.pipeline.state.repeat_days import RepeatDays, is_marker, pack, table_key

E = 20790


class Event:
    class message:  # the shape of a Faust event
        partition = 0


class LoggedTable(dict[str, Any]):
    """A table that logs its changelog records in order."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, str]] = []

    def __setitem__(self, key: str, value: Any) -> None:
        self.log.append(("set", key))
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.log.append(("del", key))
        super().__delitem__(key)


def _person(n: int, epoch: int) -> str:
    return f"chacalluta|e{epoch}:{n:032x}"


def _filled() -> tuple[RepeatDays, LoggedTable]:
    table = LoggedTable()
    for n in range(3):
        dict.__setitem__(table, table_key(0, _person(n, E)), pack(["entry|d|1"], "p"))
    for n in range(2):
        dict.__setitem__(table, table_key(0, _person(n, E + 1)), pack(["exit|d|2"], "p"))
    return RepeatDays(table), table


def test_a_published_day_is_deleted_behind_a_marker_in_order() -> None:
    days, table = _filled()
    days.published.add((0, "chacalluta", E))
    assert days.delete_published(0, Event()) == 3
    assert sorted(table) == sorted(table_key(0, _person(n, E + 1)) for n in range(2))
    marker = table_key(0, f"chacalluta|#e{E}:")
    assert table.log[0] == ("set", marker) and table.log[-1] == ("del", marker)
    assert [op for op, _ in table.log[1:-1]] == ["del"] * 3
    assert days.published == set()
    assert days.delete_published(0, Event()) == 0 and len(table.log) == 5


def test_a_day_marked_by_a_crash_is_never_published_again_only_deleted() -> None:
    days, table = _filled()
    # A crash after the marker and one tombstone: two of the day's three records are left.
    dict.__setitem__(table, table_key(0, f"chacalluta|#e{E}:"), "deleting")
    dict.__delitem__(table, table_key(0, _person(0, E)))
    people, marked = days.days({0})
    assert marked == {(0, "chacalluta", E)}
    assert len(people[(0, "chacalluta", E)]) == 2  # too few: the publisher skips marked days
    assert days.delete_published(0, Event()) == 2
    assert not [key for key in table if f"e{E}:" in key]
    assert not [key for key in table if is_marker(key.split("|", 1)[1])]
    assert len(table) == 2  # the next day is untouched
