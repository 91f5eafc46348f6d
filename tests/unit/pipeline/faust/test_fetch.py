"""GaplessConsumer._fetch: Faust's getmany, with the lanes' partitions kept as fetched runs.

What it must keep of Faust's: only active (or buffered) partitions, a flow stop or a new
generation during the fetch drops the rest of it, a fetch returning after flow stopped is
dropped and the positions sought back; changelog records become Faust's messages, in Faust's
order."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.transport.utils import DefaultSchedulingStrategy
from faust.types import TP

from tests.unit.pipeline.faust.test_offsets import Recording

RAW0 = TP("hito.raw.checkpoint", 0)
RAW1 = TP("hito.raw.checkpoint", 1)
IDLE = TP("hito.raw.checkpoint", 2)  # assigned, but neither active nor buffered
CL = TP("hito-agg-windows-changelog", 0)


def _records(tp: TP, offsets: range) -> list[Any]:
    return [SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=o) for o in offsets]


class _Lanes:
    def lane_for(self, topic: str) -> object | None:
        return self if topic == RAW0.topic else None


class Fetching(Recording):
    """Just what ``_fetch`` touches; ``during`` runs as each partition's high-water mark is
    tracked (as the consumer thread may change flow or generation meanwhile)."""

    lanes = _Lanes()

    def __init__(self, fetched: dict[TP, list[Any]], active: set[TP]) -> None:
        super().__init__()
        self.fetched, self.active_now = fetched, active
        self.flow_active = True
        self._buffered_partitions = {RAW1}
        self.scheduler = DefaultSchedulingStrategy()  # type: ignore[abstract]  # as Faust does
        self.tracked: list[TP] = []
        self.during: dict[TP, Any] = {}
        self.sought = 0
        self.app = SimpleNamespace(
            consumer_generation_id=7,
            monitor=SimpleNamespace(track_tp_end_offset=self._track),
        )
        self.log = SimpleNamespace(dev=lambda *a: None, warning=lambda *a: None)

    def _track(self, tp: TP, highwater: int) -> None:
        self.tracked.append(tp)
        if (hook := self.during.get(tp)) is not None:
            hook()

    @property
    def should_stop(self) -> bool:
        return False

    def highwater(self, tp: TP) -> int:
        return 1000

    async def _wait_next_records(self, timeout: float) -> Any:  # noqa: ASYNC109
        return self.fetched, self.active_now

    async def perform_seek(self) -> None:
        self.sought += 1

    def _to_message(self, tp: TP, record: Any) -> Any:
        return ("message", record.offset)


def fetch(consumer: Fetching) -> tuple[list[tuple[TP, Any]], dict[TP, Any]]:
    fetched: tuple[list[tuple[TP, Any]], dict[TP, Any]] = asyncio.run(consumer._fetch(0.1))
    return fetched


def test_lane_partitions_come_as_runs_and_the_rest_as_fausts_messages() -> None:
    raw0, raw1, idle = (
        _records(RAW0, range(5, 9)),
        _records(RAW1, range(0, 2)),
        _records(IDLE, range(3)),
    )
    c = Fetching({RAW0: raw0, CL: _records(CL, range(40, 42)), RAW1: raw1, IDLE: idle}, {RAW0, CL})
    batch, runs = fetch(c)
    assert runs[RAW0] is raw0  # as aiokafka fetched them: no copy, no message per record
    assert runs[RAW1] is raw1  # not active but buffered: Faust takes it too
    assert IDLE not in runs and IDLE not in c.tracked  # neither: left, as Faust leaves it
    assert batch == [(CL, ("message", 40)), (CL, ("message", 41))]
    assert set(c.tracked) == {RAW0, RAW1, CL} and c.sought == 0


def test_a_flow_stop_during_the_fetch_drops_the_rest_of_it() -> None:
    fetched = {
        RAW0: _records(RAW0, range(3)),
        CL: _records(CL, range(2)),
        RAW1: _records(RAW1, range(2)),
    }
    c = Fetching(fetched, {RAW0, CL, RAW1})
    c.during[RAW0] = lambda: setattr(c, "flow_active", False)
    batch, runs = fetch(c)
    assert (list(runs), batch) == ([RAW0], [])  # fetched again: the check at delivery, the seek


def test_a_new_generation_during_the_fetch_drops_the_rest_of_it() -> None:
    fetched = {CL: _records(CL, range(2)), RAW0: _records(RAW0, range(3))}
    c = Fetching(fetched, {RAW0, CL})
    c.during[CL] = lambda: setattr(c.app, "consumer_generation_id", 8)
    batch, runs = fetch(c)
    assert (runs, batch) == ({}, [(CL, ("message", 0)), (CL, ("message", 1))])


def test_a_fetch_returning_after_flow_stopped_is_dropped_and_sought_back() -> None:
    c = Fetching({RAW0: _records(RAW0, range(3))}, {RAW0})
    c.flow_active = False
    assert fetch(c) == ([], {})
    assert c.sought == 1  # Faust's getmany: back to the committed offsets
