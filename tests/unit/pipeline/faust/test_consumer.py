"""GaplessConsumer's fetch loop (hito.pipeline.faust.consumer): what it delivers, what waits, and
what it gives back to the broker; its bookkeeping is tested in test_offsets.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from hito.pipeline.faust.batches import RefusedBatch
from hito.pipeline.faust.consumer import GaplessConsumer, _ConsumerThread, gapless_consumer_class
from hito.pipeline.faust.fetched_records import TOO_LARGE
from tests.unit.pipeline.faust.test_offsets import RAW, Recording

CHANGELOG = TP("hito-agg-windows-changelog", 2)


def test_only_the_configured_topics_are_checked() -> None:
    cls = gapless_consumer_class(["a", "b"])
    assert cls.gapless_topics == frozenset({"a", "b"})
    assert issubclass(cls, GaplessConsumer)


class Delivering(Recording):
    """``_deliver`` itself: the agents' queues are a list; a hook runs inside a delivery."""

    def __init__(self) -> None:
        super().__init__()
        self._read_offset: dict[TP, int | None] = {}
        self._commit_every = None
        self._n_acked = 0
        self.app = type("App", (), {"topics": type("T", (), {"acks_enabled_for": bool})()})()
        self.queued: list[tuple[TP, int]] = []
        self.during: dict[int, Callable[[], None]] = {}  # offset -> run while delivering it

    async def callback(self, message: Any) -> None:
        self.queued.append((message.tp, message.offset))
        hook = self.during.get(message.offset)
        if hook is not None:
            hook()


def records(tp: TP, offsets: range) -> list[tuple[TP, Any]]:
    return [(tp, SimpleNamespace(tp=tp, offset=o, topic=tp.topic)) for o in offsets]


def test_a_batch_fetched_before_the_seek_to_committed_is_checked_against_the_new_position() -> None:
    """The CI failure of 2026-12-02: Faust resumes fetching (to read changelogs) before it seeks
    the input partitions to their committed offsets. A batch fetched from aiokafka's own start
    position was half delivered when the seek reset the position; the rest of it then looked
    like a hole to Faust, which acknowledged 46 records as a gap, and the commit passed them."""
    c = Delivering()

    def perform_seek() -> None:  # what GaplessConsumer.perform_seek leaves behind
        c._read_offset[RAW] = 1443
        c._next_offset[RAW] = 1443

    c.during[1489] = perform_seek
    asyncio.run(c._deliver(records(RAW, range(1443, 1872))))
    assert c.queued == [(RAW, o) for o in range(1443, 1490)]
    assert c.seeks == [(RAW, 1443)]  # the rest comes again from the committed offset
    assert c.gaps == []
    # The re-fetch delivers from the committed offset on, the old copies included.
    asyncio.run(c._deliver(records(RAW, range(1443, 1460))))
    assert c.queued[-17:] == [(RAW, o) for o in range(1443, 1460)]
    assert c._next_offset[RAW] == 1460


def test_changelogs_keep_fausts_gap_handling() -> None:
    c = Delivering()
    c._read_offset[CHANGELOG] = 10
    batch = records(CHANGELOG, range(11, 13)) + records(CHANGELOG, range(20, 22))
    asyncio.run(c._deliver(batch))
    assert [o for _, o in c.queued] == [11, 12, 20, 21]
    assert c.gaps == [(CHANGELOG, 13, 20)]  # compacted away: acknowledged, as Faust does
    assert c.seeks == []


class Paused(Recording):
    """Just what the fetch loop's wait for a paused stream touches."""

    def __init__(self) -> None:
        super().__init__()
        self.app = type("App", (), {"client_only": False})()
        self.flow_active = True
        self.not_waiting_next_records = asyncio.Event()
        self._buffer_drained = asyncio.Event()
        self._buffered_partitions = {RAW}  # its queue is full: Faust paused it
        self.active: set[TP] = set()
        self.fetched_for: list[set[TP]] = []

    def _get_active_partitions(self) -> set[TP]:
        return self.active

    async def _getmany(self, active_partitions: set[TP], timeout: float) -> dict[TP, list[int]]:  # noqa: ASYNC109
        self.fetched_for.append(set(active_partitions))
        return {RAW: [385]}


def test_a_paused_fetch_loop_resumes_as_soon_as_a_queue_drains() -> None:
    async def run() -> None:
        c = Paused()
        wait = asyncio.ensure_future(c._wait_next_records(timeout=1.0))
        await asyncio.sleep(0.05)
        assert not wait.done() and c.fetched_for == []  # nothing to fetch for yet
        c.on_buffer_drop(RAW)  # the agent took enough: Faust resumes the partition
        # Faust would sleep out its second here; this loop fetches at once.
        records, active = await asyncio.wait_for(wait, timeout=0.5)
        assert (records, active, c.fetched_for) == ({RAW: [385]}, {RAW}, [{RAW}])

    asyncio.run(run())


def test_a_fetch_loop_still_paused_after_a_second_fetches_nothing() -> None:
    async def run() -> None:
        c = Paused()
        assert await c._wait_next_records(timeout=1.0) == ({}, set())
        assert c.fetched_for == []

    asyncio.run(run())


def test_assignment_before_the_consumer_thread_made_its_consumer_is_empty() -> None:
    """Faust's table manager asks for the assignment as the app starts; with a busy core the
    consumer thread had not made its consumer yet and Faust raised ConsumerNotStarted, so the
    worker exited before it was ready (handover soak, 2026-12-04)."""
    thread = _ConsumerThread.__new__(_ConsumerThread)  # the state, not a running thread
    thread._consumer = None
    assert thread.assignment() == set()
    tp = TP("hito.raw.checkpoint", 3)
    thread._consumer = SimpleNamespace(assignment=lambda: {tp})
    assert thread.assignment() == {tp}


class FetchedWhileStopped(Recording):
    """A consumer whose aiokafka positions are given, and whose seeks are recorded."""

    def __init__(self, positions: dict[TP, int | None]) -> None:
        super().__init__()
        self.flow_active = False
        self.broker_seeks: list[tuple[TP, int]] = []

        def state_value(tp: TP) -> Any:
            p = positions[tp]
            return SimpleNamespace(has_valid_position=p is not None, position=p)

        assignment = SimpleNamespace(state_value=state_value)
        aiokafka = SimpleNamespace(
            _subscription=SimpleNamespace(subscription=SimpleNamespace(assignment=assignment)),
            seek=lambda tp, offset: self.broker_seeks.append((tp, offset)),
        )
        self._thread = SimpleNamespace(_consumer=aiokafka)


def test_changelog_records_fetched_while_flow_is_stopped_are_sought_back() -> None:
    """Faust drops them and seeks only what has a committed offset: a recovery that sought its
    changelog before resuming flow would wait for them for good (test_recovery_race.py)."""
    other = TP("hito-dedup-seq-changelog", 0)
    moved = TP("hito-pipeline-counts-changelog", 1)
    lost = TP("hito-repeat-days-changelog", 0)
    c = FetchedWhileStopped({CHANGELOG: 13, other: 40, moved: 3, lost: None, RAW: 9})
    records = {
        CHANGELOG: [SimpleNamespace(offset=o) for o in (10, 11, 12)],
        other: [SimpleNamespace(offset=o) for o in (30, 35)],  # a compacted changelog's hole
        moved: [SimpleNamespace(offset=o) for o in (5, 6)],  # sought to 3 since: left there
        lost: [SimpleNamespace(offset=0)],  # no position (being reset): left alone
        RAW: [SimpleNamespace(offset=8)],  # input: Faust's seek and the check at delivery
    }
    c._keep_changelog_positions(records)
    assert c.broker_seeks == [(CHANGELOG, 10), (other, 30)]


class _Lanes:
    """What the check at delivery asks of the lanes, and what it tells them."""

    ready, generation = True, 0

    def __init__(self) -> None:
        self.told: list[tuple[TP, int, int]] = []

    def lane_for(self, topic: str) -> object:
        return object()

    def gone(self, tp: TP, begin: int, end: int) -> None:
        self.told.append((tp, begin, end))


class WithLanes(Recording):
    def __init__(self) -> None:
        super().__init__()
        self._read_offset: dict[TP, int | None] = {}


def test_a_refused_batch_in_a_run_passes_its_offsets_as_a_gap_without_a_seek() -> None:
    """A batch the fetch reader refused (fetched_records) is one record at its last offset: its
    run is not consecutive, so it is admitted record by record, and the offsets the refused
    record stands for pass as a gap (the commit and the lane's watermark), with no seek back."""
    lanes = _Lanes()
    consumer = WithLanes()
    type(consumer).lanes = lanes
    consumer._next_offset[RAW] = 10
    refused = RefusedBatch(RAW.topic, RAW.partition, 14, 0, 0, None, None, None, -1, -1, (),
                           first_offset=10, why=TOO_LARGE)  # fmt: skip
    run = [refused, SimpleNamespace(offset=15), SimpleNamespace(offset=16)]
    to_lanes: dict[TP, list[Any]] = {}
    try:
        asyncio.run(consumer._admit_run(lanes, RAW, run, to_lanes, 0))
    finally:
        type(consumer).lanes = None
    assert [r.offset for r in to_lanes[RAW]] == [14, 15, 16]
    assert consumer.seeks == []
    assert consumer.gaps == [(RAW, 10, 13)]
    assert lanes.told == [(RAW, 10, 14)]
    assert consumer._next_offset[RAW] == 17
