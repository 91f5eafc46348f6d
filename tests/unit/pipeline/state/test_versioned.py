"""Versioned windows: pending until InfluxDB has the version, forgotten only once written and
old, per partition; one changelog record per changed window (a stand-in table with a dict
store and a JSON changelog topic: the helpers use nothing else of a Faust table)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from hito.pipeline.delivery import Deliveries
from hito.pipeline.stages.windows import format_start
from hito.pipeline.state.versioned import VersionedWindows, partition_of, table_key
from tests.agents.conftest import RecordingSend

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


class Changelog:
    """What TableWriter asks of a table's changelog topic (JSON, as Faust's tables do)."""

    def prepare_key(self, key: Any, serializer: Any) -> tuple[bytes, None]:
        return orjson.dumps(key), None

    def prepare_value(self, value: Any, serializer: Any) -> tuple[bytes, None]:
        return orjson.dumps(value), None

    def get_topic_name(self) -> str:
        return "t-changelog"


class Table:
    """A Faust table's surface that TableWriter uses: its store and its changelog topic."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.changelog_topic = Changelog()
        self.key_serializer = self.value_serializer = "json"


def state(start: datetime, version: int) -> dict[str, Any]:
    return {"start": format_start(start), "version": version}


def test_keys_carry_the_partition() -> None:
    assert table_key(3, "chacalluta|2026-12-03T12:00:00Z") == "3|chacalluta|2026-12-03T12:00:00Z"
    assert partition_of("3|chacalluta|2026-12-03T12:00:00Z") == 3


def test_pending_until_written_and_again_after_a_change() -> None:
    table = Table()
    windows = VersionedWindows(table)
    windows.put(0, "a", state(T0, 1))
    windows.put(1, "b", state(T0, 1))
    assert windows.pending({0}) == {"0|a": 1}
    assert windows.pending({0, 1}) == {"0|a": 1, "1|b": 1}
    windows.mark_written({"0|a": 1})
    assert windows.pending({0, 1}) == {"1|b": 1}
    table.data["0|a"]["version"] = 2  # counted into again
    assert windows.pending({0}) == {"0|a": 2}


def test_evicts_only_old_written_windows_of_the_partition() -> None:
    table = Table()
    windows = VersionedWindows(table)
    old, new = T0 - timedelta(minutes=30), T0
    windows.put(0, "old-written", state(old, 3))
    windows.put(0, "old-unwritten", state(old, 2))
    windows.put(0, "new-written", state(new, 1))
    windows.put(1, "old-written-elsewhere", state(old, 1))
    windows.mark_written({"0|old-written": 3, "0|new-written": 1, "1|old-written-elsewhere": 1})
    windows.mark_written({"0|old-unwritten": 1})  # InfluxDB has an older version only
    send = RecordingSend()
    deliveries = Deliveries(send)
    gone = asyncio.run(windows.evict(deliveries, 0, T0 - timedelta(minutes=10)))
    assert gone == ["0|old-written"]
    assert sorted(table.data) == ["0|new-written", "0|old-unwritten", "1|old-written-elsewhere"]
    assert "0|old-written" not in windows.written
    # The changelog forgets it too: a tombstone on the window's partition.
    assert [(r.key, r.value, r.partition) for r in send.sent] == [(b'"0|old-written"', None, 0)]


def test_each_changed_window_gets_one_changelog_record_with_its_latest_value() -> None:
    table = Table()
    windows = VersionedWindows(table)
    windows.put(0, "a", state(T0, 1))
    windows.put(0, "a", state(T0, 2))
    windows.put(3, "b", state(T0, 1))
    send = RecordingSend()
    asyncio.run(windows.write_changelog(Deliveries(send)))
    assert sorted((r.key, r.partition, r.value) for r in send.sent) == [
        (b'"0|a"', 0, b'{"start":"2026-12-03T12:00:00Z","version":2}'),
        (b'"3|b"', 3, b'{"start":"2026-12-03T12:00:00Z","version":1}'),
    ]
    send.sent.clear()
    asyncio.run(windows.write_changelog(Deliveries(send)))
    assert send.sent == []  # nothing changed since


def test_eviction_is_due_at_most_every_interval() -> None:
    now = [100.0]
    windows = VersionedWindows(Table(), evict_every_s=5.0, monotonic=lambda: now[0])
    assert not windows.eviction_due()
    now[0] = 105.5
    assert windows.eviction_due()
    assert not windows.eviction_due()


def test_a_write_that_did_not_reach_kafka_is_written_again_for_owned_partitions_only() -> None:
    windows = VersionedWindows(Table())
    send = RecordingSend()
    windows.put(0, "a", state(T0, 1))
    windows.put(1, "b", state(T0, 1))

    async def write() -> list[bytes | None]:
        before = len(send.sent)
        await windows.write_changelog(Deliveries(send))
        return [r.key for r in send.sent[before:]]

    written = asyncio.run(windows.write_changelog(Deliveries(send)))
    assert written == {"0|a": 0, "1|b": 1}
    assert asyncio.run(write()) == []  # nothing changed since
    windows.rewrite_later(written)  # those records failed
    windows.put(0, "a", state(T0, 2))  # and a later change of one of them
    windows.keep_unwritten({0})  # partition 1 went to another worker
    assert asyncio.run(write()) == [b'"0|a"']
    assert orjson.loads(send.sent[-1].value or b"")["version"] == 2  # its value now
