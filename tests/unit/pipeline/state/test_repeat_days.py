"""Deleting a published day of repeat_crossings: a marker, the records' tombstones, then the
marker's, in that order; a day found marked (a crash part-way) is never published again from
what is left, only deleted."""

from __future__ import annotations

import asyncio

import orjson

from hito.pipeline.delivery import Deliveries
from hito.pipeline.state.repeat_days import RepeatDays, is_marker, pack, table_key
from tests.agents.conftest import RecordingSend
from tests.unit.pipeline.state.test_versioned import Table

E = 20790


class LoggedTable(Table):
    """A stand-in table whose changelog records are kept, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.send = RecordingSend()

    @property
    def log(self) -> list[tuple[str, str]]:
        """("set" | "del", key) per changelog record, in order."""
        return [
            ("del" if r.value is None else "set", orjson.loads(r.key or b"null"))
            for r in self.send.sent
        ]

    def delete_published(self, days: RepeatDays, partition: int) -> int:
        async def run() -> int:
            deliveries = Deliveries(self.send)
            n = await days.delete_published(deliveries, partition)
            assert await deliveries.wait() == []
            return n

        return asyncio.run(run())


def _person(n: int, epoch: int) -> str:
    return f"chacalluta|e{epoch}:{n:032x}"


def _filled() -> tuple[RepeatDays, LoggedTable]:
    table = LoggedTable()
    for n in range(3):
        table.data[table_key(0, _person(n, E))] = pack(["entry|d|1"], "p")
    for n in range(2):
        table.data[table_key(0, _person(n, E + 1))] = pack(["exit|d|2"], "p")
    return RepeatDays(table), table


def test_a_published_day_is_deleted_behind_a_marker_in_order() -> None:
    days, table = _filled()
    days.published.add((0, "chacalluta", E))
    assert table.delete_published(days, 0) == 3
    assert sorted(table.data) == sorted(table_key(0, _person(n, E + 1)) for n in range(2))
    marker = table_key(0, f"chacalluta|#e{E}:")
    assert table.log[0] == ("set", marker) and table.log[-1] == ("del", marker)
    assert [op for op, _ in table.log[1:-1]] == ["del"] * 3
    assert days.published == set()
    assert table.delete_published(days, 0) == 0 and len(table.log) == 5


def test_a_day_marked_by_a_crash_is_never_published_again_only_deleted() -> None:
    days, table = _filled()
    # A crash after the marker and one tombstone: two of the day's three records are left.
    table.data[table_key(0, f"chacalluta|#e{E}:")] = "deleting"
    del table.data[table_key(0, _person(0, E))]
    people, marked = days.days({0})
    assert marked == {(0, "chacalluta", E)}
    assert len(people[(0, "chacalluta", E)]) == 2  # too few: the publisher skips marked days
    assert table.delete_published(days, 0) == 2
    assert not [key for key in table.data if f"e{E}:" in key]
    assert not [key for key in table.data if is_marker(key.split("|", 1)[1])]
    assert len(table.data) == 2  # the next day is untouched
