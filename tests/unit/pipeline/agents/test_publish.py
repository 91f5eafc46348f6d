"""The publisher's failure paths with a real InfluxSink against a local HTTP server: a
permanent refusal dead-letters the windows as ``sink_rejected`` and stops retrying them; a
retryable one keeps them pending without a DLQ record."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hito.ops.dlq import decode_original, decode_record
from hito.pipeline.agents.publish import Publisher, RecoveryHold
from hito.pipeline.agents.surge import SurgeDetector
from hito.pipeline.dead_letters import DeadLetters
from hito.pipeline.sinks.errors import Outcome
from hito.pipeline.sinks.lines import points_for, window_predicates
from hito.pipeline.stages import aggregate
from hito.pipeline.stages.repeat import RepeatRules
from hito.pipeline.stages.windows import WindowRules
from hito.pipeline.state.archive import WindowArchive
from hito.pipeline.state.pipeline_counts import PipelineCounts
from hito.pipeline.state.repeat_days import RepeatDays
from hito.pipeline.state.versioned import VersionedWindows
from hito.schemas.reasons import Reason
from hito.schemas.topics import TopicNames
from hito.settings.sections import SurgeSettings
from tests.agents.conftest import RecordingSend
from tests.unit.pipeline.sinks.test_errors import influx_answering, sink_on
from tests.unit.pipeline.state.test_versioned import Table

START = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
EPOCH = 20790  # START's UTC day


async def _no_history(*_: Any) -> list[Any]:
    return []


async def _no_archive(*_: Any) -> dict[str, str]:
    return {}


def publisher_with_one_window(port: int) -> tuple[Publisher, RecordingSend]:
    send = RecordingSend()
    sink = sink_on(port)
    windows = VersionedWindows(Table())
    state = aggregate.new_state("chacalluta", START)
    state["sensor"] = {
        "ground|6mk4bb": {"detections": 3, "readings": 2, "value_sum": 0.0, "values": 0}
    }
    state["version"] = 2
    windows.put(0, aggregate.window_name("chacalluta", START), state)
    publisher = Publisher(
        sink=sink,
        windows=windows,
        archive=WindowArchive(_no_archive),
        rules=WindowRules(60, 300, 7 * 86400),
        counts=PipelineCounts(VersionedWindows(Table()), 60),
        detector=SurgeDetector(SurgeSettings(), 60, sink.metrics, _no_history),
        send=send,
        dead_letters=DeadLetters(TopicNames(), sink.metrics, lambda: START),
        small_count_k=5,
        clock=lambda: START,
        repeat_days=RepeatDays(Table()),
        repeat_rules=RepeatRules("repeat_crossings", 86400, 360, 5),
    )
    return publisher, send


@pytest.mark.parametrize("status", [400, 422])
def test_a_permanent_refusal_goes_to_the_dlq_once(status: int) -> None:
    async def scenario() -> None:
        async with influx_answering(status) as (port, _):
            publisher, sent = publisher_with_one_window(port)
            publisher.sink.delete = _no_delete  # type: ignore[method-assign,assignment]
            assert await publisher.flush_windows({0}) is Outcome.DEAD_LETTERED
            assert await publisher.flush_windows({0}) is None  # not retried
            await publisher.sink.close()
        [operators, originals] = sent.sent
        record = decode_record(operators.value or b"")
        assert (operators.topic, originals.topic) == ("hito.dlq", "hito.dlq.originals")
        assert operators.key is None
        assert (record.reason, record.stage) == (Reason.SINK_REJECTED, "sink")
        assert record.detail == f"HTTP {status} for 0|chacalluta|2026-12-03T12:00:00Z"
        assert decode_original(originals.value or b"").original == (
            b"sensor,geohash=6mk4bb,policy=unknown,sensor_type=ground,site=chacalluta "
            b"detections=3i,readings=2i 1796299200"
        )
        assert publisher.sink.metrics.dlq_by_reason() == {"sink_rejected": 1.0}

    asyncio.run(scenario())


def test_a_retryable_failure_keeps_the_window_pending() -> None:
    async def scenario() -> None:
        async with influx_answering(503) as (port, _):
            publisher, sent = publisher_with_one_window(port)
            publisher.sink.delete = _no_delete  # type: ignore[method-assign,assignment]
            assert await publisher.flush_windows({0}) is Outcome.DEFERRED
            assert sent.sent == []
            assert publisher.windows.pending({0}) == {"0|chacalluta|2026-12-03T12:00:00Z": 2}
            await publisher.sink.close()

    asyncio.run(scenario())


async def _no_delete(*_: Any) -> None:
    return None


def test_closed_days_are_scanned_for_only_when_one_may_have_closed() -> None:
    """A scan reads every person-day: the publisher scans when the partitions it owns change
    or a day it knows of closes, and writes each closed day once."""
    clock = [START]

    async def scenario() -> tuple[list[int], list[Any]]:
        async with influx_answering(204) as (port, _):
            publisher, _ = publisher_with_one_window(port)
            publisher.clock = lambda: clock[0]
            days = publisher.repeat_days
            days.scan_due = lambda: True  # type: ignore[method-assign]
            scans: list[int] = []
            real_days = days.days

            def counted(owned: set[int]) -> Any:
                scans.append(len(scans))
                return real_days(owned)

            days.days = counted  # type: ignore[method-assign,assignment]
            person = f"chacalluta|e{EPOCH}:" + "1" * 32
            for n in range(5):  # five people crossed in twice: a cell of k
                days.put(0, person[:-1] + str(n), [f"entry|d|{2 * n}", f"entry|d|{2 * n + 1}"],
                         "p1")  # fmt: skip
            assert await publisher.flush_repeat({0}) is None  # new partitions: one scan
            assert await publisher.flush_repeat({0}) is None  # nothing closed: no scan
            clock[0] = publisher.repeat_rules.day_start(EPOCH + 1) + timedelta(seconds=360)
            assert await publisher.flush_repeat({0}) is Outcome.WRITTEN
            assert await publisher.flush_repeat({0}) is None  # written: nothing to scan for
            await publisher.sink.close()
            return scans, sorted(days.published)

    scans, published = asyncio.run(scenario())
    assert scans == [0, 1] and published == [(0, "chacalluta", EPOCH)]


def test_nothing_is_published_while_a_rebalance_runs(caplog: pytest.LogCaptureFixture) -> None:
    """From a rebalance's start to the end of its recovery the tables of a partition taken
    over are partial: a tick then wrote windows, archived them and scanned closed days from
    whatever had been read back. Now it waits for the rebalance to end."""
    rebalancing = [True]

    async def scenario() -> tuple[dict[str, int], dict[str, int]]:
        async with influx_answering(204) as (port, _):
            publisher, _ = publisher_with_one_window(port)
            publisher.sink.delete = _no_delete  # type: ignore[method-assign,assignment]
            publisher.rebalancing = lambda: rebalancing[0]
            now = [START]
            publisher.clock = lambda: now[0]
            await publisher.flush({0})
            now[0] += timedelta(minutes=6)  # a rebalance that does not end is said
            await publisher.flush({0})
            assert "nothing published for 0:06:00: the rebalance has not ended" in caplog.text
            during = publisher.windows.pending({0})
            assert publisher.repeat_scanned_for is None  # no scan of days either
            rebalancing[0] = False
            await publisher.flush({0})
            await publisher.sink.close()
            return during, publisher.windows.pending({0})

    during, after = asyncio.run(scenario())
    assert during == {"0|chacalluta|2026-12-03T12:00:00Z": 2}
    assert after == {}


def test_a_window_new_to_this_process_clears_only_window_measurements() -> None:
    """Before its first write, a window clears what an earlier process may have published at
    its start. It cleared every point of the site at that second, the minute's surge score and
    (at a day's first minute) the day's repeat_crossings point too, neither written again."""
    deleted: list[tuple[datetime, list[str]]] = []

    async def record(start: datetime, predicates: list[str]) -> None:
        deleted.append((start, predicates))

    async def scenario() -> None:
        async with influx_answering(204) as (port, _):
            publisher, _ = publisher_with_one_window(port)
            publisher.sink.delete = record  # type: ignore[method-assign]
            assert await publisher.flush_windows({0}) is Outcome.WRITTEN
            await publisher.sink.close()

    asyncio.run(scenario())
    assert deleted == [(START, [f'_measurement="{m}" AND site="chacalluta"' for m in (
        "crossings", "crossings_by_nationality", "wait_time", "sensor", "drone", "revisions"
    )])]  # fmt: skip


def test_the_predicates_cover_every_measurement_a_window_is_published_to() -> None:
    """What points_for writes for a window holding every kind of cell: each of its
    measurements is among those cleared, and neither surge nor repeat_crossings is."""
    state = aggregate.new_state("chacalluta", START)
    state["crossings"] = {"entry|car|admitted": 6}
    state["nationality"] = {"entry|PER": 6}
    state["wait"] = {"entry|car": {"n": 6, "max": 20.0, "b": [6] + [0] * 18}}
    state["sensor"] = {"ground|6mk4bb": {"detections": 1, "readings": 1, "value_sum": 0.0,
                                          "values": 0}}  # fmt: skip
    state["drone"] = {"6mk4bb": {"detections": 1, "fixes": 1, "alt_sum": 90.0,
                                 "battery_min": 80.0}}  # fmt: skip
    state["revisions"], state["revised_at"] = {"checkpoint": 1}, 1_800_000_000
    written = {line.split(",")[0] for line in points_for(state, 5)}
    cleared = {p.split('"')[1] for p in window_predicates(state)}
    assert written == cleared
    assert not cleared & {"surge", "repeat_crossings"}


def test_the_hold_runs_from_the_assignment_to_the_rebalance_end() -> None:
    """Held from the rebalance's start, the publisher could not archive the windows an
    aggregator batch was waiting on for room, and the revoke phase waits for that batch: the
    rebalance never ended. The tables are whole until the new assignment."""
    rebalancing = [False]
    hold = RecoveryHold(lambda: rebalancing[0])
    assert not hold()
    rebalancing[0] = True  # the revoke phase: not held
    assert not hold()
    hold.assigned()  # the new assignment is recovered from here
    assert hold()
    rebalancing[0] = False  # its recovery is done
    assert not hold()
    rebalancing[0] = True  # the next rebalance, before its assignment: not held
    assert not hold()


def test_a_window_beyond_the_backfill_horizon_leaves_without_an_archive() -> None:
    """No event can revise it any more, and InfluxDB refuses archive points past the archive's
    retention for ever: that refusal held every later window's archive (so none could be
    evicted) until the aggregator stopped."""

    async def scenario() -> tuple[Outcome | None, dict[str, int]]:
        async with influx_answering(422) as (port, _):  # any write would be refused
            publisher, _ = publisher_with_one_window(port)
            (key,) = publisher.windows.pending({0})
            publisher.windows.mark_written({key: 2})
            publisher.clock = lambda: START + timedelta(days=7, minutes=7)
            outcome = await publisher.flush_archive({0})
            await publisher.sink.close()
            return outcome, publisher.archive.archived

    outcome, archived = asyncio.run(scenario())
    assert outcome is None and archived == {"0|chacalluta|2026-12-03T12:00:00Z": 2}


def test_a_refused_closed_day_is_dead_lettered_alone_and_not_counted_as_published() -> None:
    """Two sites' closed days in one flush, InfluxDB refusing one of them: the other is
    written and counted as published (repeat_days_published), the refused one is in the DLQ
    only."""

    async def scenario() -> tuple[list[str], list[str], list[bytes]]:
        taken: list[bytes] = []

        def refuse_santarosa(body: bytes) -> int:  # as InfluxDB a field type conflict
            return 422 if b"site=santarosa" in body else 204

        async with influx_answering(refuse_santarosa, taken) as (port, _):
            publisher, sent = publisher_with_one_window(port)
            published: list[str] = []
            publisher.on_day_published = published.append
            publisher.repeat_days.scan_due = lambda: True  # type: ignore[method-assign]
            for site in ("chacalluta", "santarosa"):
                person = f"{site}|e{EPOCH}:" + "1" * 32
                for n in range(5):  # five people crossed in twice: a cell of k
                    publisher.repeat_days.put(
                        0, person[:-1] + str(n), [f"entry|d|{2 * n}", f"entry|d|{2 * n + 1}"], "p1"
                    )
            publisher.clock = lambda: (
                publisher.repeat_rules.day_start(EPOCH + 1) + timedelta(seconds=360)
            )
            assert await publisher.flush_repeat({0}) is Outcome.DEAD_LETTERED
            await publisher.sink.close()
            details = [decode_record(r.value or b"").detail for r in sent.to("hito.dlq")]
            return published, details, taken

    published, details, taken = asyncio.run(scenario())
    assert published == ["chacalluta"]
    assert details == [f"HTTP 422 for repeat santarosa epoch {EPOCH}"]
    assert b"site=chacalluta" in b"".join(taken) and b"santarosa" not in b"".join(taken)
