"""The window archive's bookkeeping: what is loaded, what is due, what may be forgotten."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from hito.pipeline.stages import aggregate
from hito.pipeline.state.archive import WindowArchive
from hito.pipeline.state.versioned import VersionedWindows, table_key
from tests.unit.pipeline.state.test_versioned import Table

START = datetime(2026, 12, 3, 13, 0, tzinfo=UTC)


def archived(minute: int, crossings: int) -> tuple[str, str]:
    start = START + timedelta(minutes=minute)
    state = aggregate.new_state("chacalluta", start)
    state["crossings"] = {"entry|car|admitted": crossings}
    state["hw"] = {"hito.raw.checkpoint|0": 41}
    state["version"] = 7
    return aggregate.window_name("chacalluta", start), orjson.dumps(state).decode()


def test_load_puts_archived_windows_in_the_table_and_holds_the_rest_as_new() -> None:
    stored = dict([archived(0, 12), archived(1, 3)])
    asked: list[tuple[list[str], datetime, datetime]] = []

    async def query(sites: list[str], first: datetime, last: datetime) -> dict[str, str]:
        asked.append((sites, first, last))
        return stored

    windows = VersionedWindows(Table())
    archive = WindowArchive(query)
    wanted = {
        aggregate.window_name("chacalluta", START + timedelta(minutes=m)): (
            "chacalluta",
            START + timedelta(minutes=m),
        )
        for m in (0, 1, 2)
    }
    asyncio.run(archive.load(windows, 3, wanted))
    assert asked == [(["chacalluta"], START, START + timedelta(minutes=2))]
    first = windows.get(3, aggregate.window_name("chacalluta", START))
    assert first is not None and first["crossings"] == {"entry|car|admitted": 12}
    assert windows.get(3, list(wanted)[2]) is None  # never archived: a new window
    assert archive.revising == {table_key(3, name) for name in wanted}
    assert archive.archived == {table_key(3, name): 7 for name in list(wanted)[:2]}
    # Loading writes no changelog record: the archive has these versions already.
    assert len(windows._dirty) == 0
    key = table_key(3, next(iter(wanted)))
    previous = archive.previously_published(key)
    assert previous is not None and previous["crossings"] == {"entry|car|admitted": 12}
    assert archive.previously_published(key) is None  # once


def test_a_window_is_due_once_public_and_evictable_once_archived() -> None:
    windows = VersionedWindows(Table())
    archive = WindowArchive(_nothing)
    state = aggregate.new_state("chacalluta", START)
    state["version"] = 4
    name = aggregate.window_name("chacalluta", START)
    windows.put(0, name, state)
    key = table_key(0, name)
    closed = "2026-12-03T13:10:00Z"
    assert archive.due(windows, {0}, closed) == {}  # not yet in the public bucket
    windows.mark_written({key: 4})
    assert archive.due(windows, {0}, "2026-12-03T13:00:00Z") == {}  # not closed yet
    assert archive.due(windows, {1}, closed) == {}  # not owned
    assert archive.due(windows, {0}, closed) == {key: 4}
    assert not archive.evictable(key, state)
    archive.mark_archived({key: 4})
    assert archive.evictable(key, state)
    assert archive.due(windows, {0}, closed) == {}
    state["version"] = 5  # revised again: archived again before it may go
    assert not archive.evictable(key, state)


def test_retain_forgets_windows_of_partitions_given_away() -> None:
    archive = WindowArchive(_nothing)
    archive.revising = {"0|a|x", "1|b|y"}
    archive.archived = {"0|a|x": 1, "1|b|y": 2}
    archive.loaded = {"1|b|y": "{}"}
    archive.retain({0})
    assert (archive.revising, archive.archived, archive.loaded) == ({"0|a|x"}, {"0|a|x": 1}, {})


async def _nothing(*_: Any) -> dict[str, str]:
    return {}
