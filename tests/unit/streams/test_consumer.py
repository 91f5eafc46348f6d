"""GaplessConsumer's offset bookkeeping: a hole in an input topic is re-read, never skipped."""

from __future__ import annotations

import asyncio

from faust.types import TP

from streams.consumer import GaplessConsumer, gapless_consumer_class

RAW = TP("hito.raw.checkpoint", 2)


class Recording(gapless_consumer_class(["hito.raw.checkpoint"])):  # type: ignore[misc]
    """Only the bookkeeping: no Faust service behind it; seeks are recorded."""

    def __init__(self, log_start: int = 0) -> None:  # not Faust's constructor: no broker
        self._next_offset: dict[TP, int] = {}
        self._rewound_at: dict[TP, tuple[int, int]] = {}
        self.seeks: list[tuple[TP, int]] = []
        self.log_start = log_start

    async def earliest_offsets(self, *partitions: TP) -> dict[TP, int]:
        return {tp: self.log_start for tp in partitions}

    async def seek(self, partition: TP, offset: int) -> None:
        self.seeks.append((partition, offset))
        self._next_offset[partition] = offset


def feed(consumer: GaplessConsumer, offsets: list[int]) -> list[bool]:
    async def run() -> list[bool]:
        return [await consumer._in_order(RAW, o) for o in offsets]

    return asyncio.run(run())


def test_contiguous_records_pass_and_advance() -> None:
    c = Recording()
    c._next_offset[RAW] = 385
    assert feed(c, [385, 386, 387]) == [True, True, True]
    assert c._next_offset[RAW] == 388
    assert c.seeks == []


def test_a_hole_seeks_back_to_the_first_missing_record() -> None:
    c = Recording()
    c._next_offset[RAW] = 385
    # 385-388 delivered, 389-390 fetched but dropped by Faust, 391 arrives.
    assert feed(c, [385, 386, 387, 388, 391]) == [True, True, True, True, False]
    assert c.seeks == [(RAW, 389)]
    # After the seek the missing records come again, in order, and pass.
    assert feed(c, [389, 390, 391]) == [True, True, True]
    assert c._next_offset[RAW] == 392


def test_a_hole_deleted_by_retention_is_let_through_after_one_seek() -> None:
    c = Recording(log_start=50)
    c._next_offset[RAW] = 10
    assert feed(c, [50]) == [False]  # retention deleted 10..49: the seek lands on 50 again
    assert feed(c, [50, 51]) == [True, True]
    assert c.seeks == [(RAW, 10)]


def test_a_hole_still_in_the_log_is_sought_again_but_never_forever() -> None:
    from streams.consumer import MAX_REWINDS

    c = Recording(log_start=0)
    c._next_offset[RAW] = 10
    # The records are in the log: each time the hole shows, seek back again...
    assert feed(c, [50] * MAX_REWINDS) == [False] * MAX_REWINDS
    assert c.seeks == [(RAW, 10)] * MAX_REWINDS
    # ... until the limit: then go on (logged) rather than stall the partition.
    assert feed(c, [50]) == [True]
    assert c._next_offset[RAW] == 51


def test_unknown_position_and_rereads_pass_unchanged() -> None:
    c = Recording()
    assert feed(c, [700]) == [True]  # no committed offset yet: wherever the reset put us
    assert feed(c, [650]) == [True]  # below the position: Faust's to drop, not a hole
    assert c._next_offset[RAW] == 701
    assert c.seeks == []


def test_only_the_configured_topics_are_checked() -> None:
    cls = gapless_consumer_class(["a", "b"])
    assert cls.gapless_topics == frozenset({"a", "b"})
    assert issubclass(cls, GaplessConsumer)


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
