"""Versioned windows: pending until InfluxDB has the version, forgotten only once written and
old, per partition (a plain dict stands in for the Faust table: the helper uses its mapping
interface only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hito.pipeline.stages.windows import format_start
from hito.pipeline.state.versioned import VersionedWindows, partition_of, table_key

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


class Event:
    """Anything weak-referenceable stands for the event a write is made on behalf of."""


def state(start: datetime, version: int) -> dict[str, Any]:
    return {"start": format_start(start), "version": version}


def test_keys_carry_the_partition() -> None:
    assert table_key(3, "chacalluta|2026-12-03T12:00:00Z") == "3|chacalluta|2026-12-03T12:00:00Z"
    assert partition_of("3|chacalluta|2026-12-03T12:00:00Z") == 3


def test_pending_until_written_and_again_after_a_change() -> None:
    table: dict[str, Any] = {}
    windows = VersionedWindows(table)
    windows.put(0, "a", state(T0, 1), Event())
    windows.put(1, "b", state(T0, 1), Event())
    assert windows.pending({0}) == {"0|a": 1}
    assert windows.pending({0, 1}) == {"0|a": 1, "1|b": 1}
    windows.mark_written({"0|a": 1})
    assert windows.pending({0, 1}) == {"1|b": 1}
    table["0|a"]["version"] = 2  # counted into again
    assert windows.pending({0}) == {"0|a": 2}


def test_evicts_only_old_written_windows_of_the_partition() -> None:
    table: dict[str, Any] = {}
    windows = VersionedWindows(table)
    old, new = T0 - timedelta(minutes=30), T0
    windows.put(0, "old-written", state(old, 3), Event())
    windows.put(0, "old-unwritten", state(old, 2), Event())
    windows.put(0, "new-written", state(new, 1), Event())
    windows.put(1, "old-written-elsewhere", state(old, 1), Event())
    windows.mark_written({"0|old-written": 3, "0|new-written": 1, "1|old-written-elsewhere": 1})
    windows.mark_written({"0|old-unwritten": 1})  # InfluxDB has an older version only
    gone = windows.evict(0, T0 - timedelta(minutes=10), Event())
    assert gone == ["0|old-written"]
    assert sorted(table) == ["0|new-written", "0|old-unwritten", "1|old-written-elsewhere"]
    assert "0|old-written" not in windows.written


def test_eviction_is_due_at_most_every_interval() -> None:
    now = [100.0]
    windows = VersionedWindows({}, evict_every_s=5.0, monotonic=lambda: now[0])
    assert not windows.eviction_due()
    now[0] = 105.5
    assert windows.eviction_due()
    assert not windows.eviction_due()
