"""Deleting a published day of repeat_crossings: a marker, the records' tombstones, then the
marker's, in that order; a day found marked (a crash part-way) is never published again from
what is left, only deleted."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import orjson

from hito.devices import Device, DeviceRegistry
from hito.pipeline.delivery import Deliveries
from hito.pipeline.stages.repeat import is_marker
from hito.pipeline.state.person_days import PersonDays
from hito.pipeline.state.repeat_days import RepeatDays, pack, table_key
from tests.agents.conftest import RecordingSend
from tests.unit.pipeline.state.test_versioned import Table

E = 20790
# Device "dev-1" is listed: a person who crossed once through it is an array row of the store.
REGISTRY = DeviceRegistry([Device("dev-1", "chacalluta", "checkpoint", b"k" * 16)])


class NoWalk(PersonDays):
    """The worker's store, refusing (while ``refuse``) the walk over every person-day that
    deleting a day must not make (1.2 s at a million of them, every few seconds)."""

    refuse = False

    def items_now(self) -> Iterator[tuple[str, str]]:
        if self.refuse:
            raise AssertionError("walked every person-day")
        return super().items_now()


class LoggedTable(Table):
    """A stand-in table whose changelog records are kept, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.data = self.people = NoWalk(lambda: REGISTRY)  # type: ignore[assignment]
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
            self.people.refuse = True
            try:
                n = await days.delete_published(deliveries, partition)
            finally:
                self.people.refuse = False
            assert await deliveries.wait() == []
            return n

        return asyncio.run(run())


def _person(n: int, epoch: int) -> str:
    return f"chacalluta|e{epoch}:{n:032x}"


def _filled() -> tuple[RepeatDays, LoggedTable]:
    table = LoggedTable()
    for n in range(3):
        table.data[table_key(0, _person(n, E))] = pack(["entry|dev-1|1"], "p")
    for n in range(2):
        table.data[table_key(0, _person(n, E + 1))] = pack(["exit|dev-1|2"], "p")
    return RepeatDays(table), table


def test_rows_and_other_values_of_the_day_and_partition_go_and_nothing_else() -> None:
    table = LoggedTable()
    data = table.data
    assert isinstance(data, PersonDays)
    kept = {
        table_key(0, _person(9, E + 1)): pack(["entry|dev-1|1"], "p"),  # another day
        table_key(1, _person(9, E)): pack(["entry|dev-1|1"], "p"),  # another partition
        table_key(1, _person(8, E)): pack(["entry|dev-1|1", "exit|dev-1|2"], "p"),
        # "1" begins "10": another partition all the same
        table_key(10, _person(7, E)): pack(["entry|dev-1|1", "exit|dev-1|2"], "p"),
    }
    going = {
        table_key(0, _person(1, E)): pack(["entry|dev-1|1"], "p"),  # a row
        # several crossings
        table_key(0, _person(2, E)): pack(["entry|dev-1|1", "exit|dev-1|3"], "p"),
        table_key(0, _person(3, E)): pack(["entry|unlisted|1"], "p"),  # an unlisted device
    }
    for key, value in {**kept, **going}.items():
        data[key] = value
    assert table_key(0, _person(1, E)) not in data.other  # (a row)
    assert table_key(0, _person(2, E)) in data.other
    days = RepeatDays(table)
    days.published |= {(0, "chacalluta", E), (10, "chacalluta", E + 5)}
    assert table.delete_published(days, 0) == 3
    assert dict(data.items()) == kept
    deleted = {key for op, key in table.log if op == "del"} - {table_key(0, f"chacalluta|#e{E}:")}
    assert deleted == set(going)
    assert days.published == {(10, "chacalluta", E + 5)}


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


def test_rows_a_reload_turns_to_text_mid_deletion_go_in_the_same_batch() -> None:
    """A reload that drops a device while a day is deleted moves its rows to text values
    the deletion had not listed: they go in the same batch, before the marker's tombstone
    (a later batch could not make up for a failure of this one)."""
    table = LoggedTable()
    people = table.people
    registry = [REGISTRY]
    people._registry_now = lambda: registry[0]
    for n in range(3):
        people[table_key(0, _person(n, E))] = pack(["entry|dev-1|1"], "p")
    days = RepeatDays(table)
    days.published.add((0, "chacalluta", E))
    marker = table_key(0, f"chacalluta|#e{E}:")
    real_row_keys = people.row_keys

    def row_keys_then_reload(day: tuple[int, str, int]) -> list[str]:
        keys = real_row_keys(day)[:1]  # listed: one; then the reload turns the rest to text
        registry[0] = DeviceRegistry([])
        return keys

    people.row_keys = row_keys_then_reload  # type: ignore[method-assign]
    assert table.delete_published(days, 0) == 3
    assert dict(people.items()) == {} and days.published == set()
    assert table.log == [
        ("set", marker),
        *[("del", key) for _, key in table.log[1:4]],
        ("del", marker),
    ]
    assert {key for _, key in table.log[1:4]} == {table_key(0, _person(n, E)) for n in range(3)}
