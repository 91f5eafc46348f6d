"""The consumer's offset bookkeeping (hito.pipeline.faust.offsets): a hole in an input topic is
re-read, never skipped, and the commit never passes a record no agent handled."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from faust.types import TP
from intervaltree import IntervalTree  # type: ignore[import-untyped]

from hito.pipeline.faust.consumer import GaplessConsumer, gapless_consumer_class
from hito.pipeline.faust.offsets import MAX_REWINDS, Admit

RAW = TP("hito.raw.checkpoint", 2)


# The consumer the worker installs (its bookkeeping is inherited from OffsetKeeper).
class Recording(gapless_consumer_class(["hito.raw.checkpoint"])):  # type: ignore[misc]
    """Only the bookkeeping: no Faust service behind it; seeks and gaps are recorded."""

    def __init__(self, log_start: int = 0) -> None:  # not Faust's constructor: no broker
        self._next_offset: dict[TP, int] = {}
        self._log_start: dict[TP, int] = {}
        self._rewound_at: dict[TP, tuple[int, int]] = {}
        self.seeks: list[tuple[TP, int]] = []
        self.gaps: list[tuple[TP, int, int]] = []
        self.log_start = log_start

    async def earliest_offsets(self, *partitions: TP) -> dict[TP, int]:
        return {tp: self.log_start for tp in partitions}

    async def seek(self, partition: TP, offset: int) -> None:
        self.seeks.append((partition, offset))
        self._next_offset[partition] = offset

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        self.gaps.append((tp, offset_from, offset_to))


def feed(consumer: GaplessConsumer, offsets: list[int]) -> list[Admit]:
    """Each record checked, and delivered when admitted (as ``_deliver`` does)."""

    async def run() -> list[Admit]:
        out = []
        for o in offsets:
            admit = await consumer._admit(RAW, o)
            if admit is Admit.DELIVER:
                consumer._delivered(RAW, o)
            out.append(admit)
        return out

    return asyncio.run(run())


D, DROP, REWOUND = Admit.DELIVER, Admit.DROP, Admit.REWOUND


def test_contiguous_records_pass_and_advance() -> None:
    c = Recording()
    c._next_offset[RAW] = 385
    assert feed(c, [385, 386, 387]) == [D, D, D]
    assert c._next_offset[RAW] == 388
    assert c.seeks == [] and c.gaps == []


def test_a_hole_seeks_back_to_the_first_missing_record() -> None:
    c = Recording()
    c._next_offset[RAW] = 385
    # 385-388 delivered, 389-390 fetched but dropped by Faust, 391 arrives.
    assert feed(c, [385, 386, 387, 388, 391]) == [D, D, D, D, REWOUND]
    assert c.seeks == [(RAW, 389)]
    # After the seek the missing records come again, in order, and pass.
    assert feed(c, [389, 390, 391]) == [D, D, D]
    assert c._next_offset[RAW] == 392
    assert c.gaps == []  # nothing acknowledged that no agent saw


def test_a_hole_deleted_by_retention_is_let_through_after_one_seek() -> None:
    c = Recording(log_start=50)
    c._next_offset[RAW] = 10
    assert feed(c, [50]) == [REWOUND]  # retention deleted 10..49: the seek lands on 50 again
    assert feed(c, [50, 51]) == [D, D]
    assert c.seeks == [(RAW, 10)]
    assert c.gaps == [(RAW, 10, 49)]  # the commit may pass exactly what is gone


def test_a_hole_still_in_the_log_is_sought_again_but_never_forever() -> None:
    c = Recording(log_start=0)
    c._next_offset[RAW] = 10
    # The records are in the log: each time the hole shows, seek back again...
    assert feed(c, [50] * MAX_REWINDS) == [REWOUND] * MAX_REWINDS
    assert c.seeks == [(RAW, 10)] * MAX_REWINDS
    # ... until the limit: then go on (logged) rather than stall the partition.
    assert feed(c, [50]) == [D]
    assert c._next_offset[RAW] == 51


def test_a_refused_batch_passes_the_offsets_it_stands_for_and_nothing_else() -> None:
    """A batch the fetch reader refused unread (fetched_records) is one record at its last
    offset, standing for its first to its last: those offsets pass as a gap, with no seek.
    A record that does not stand for the missing ones (or a refused batch that starts past
    them) is a hole as ever."""
    c = Recording()
    c._next_offset[RAW] = 10

    async def run() -> list[Admit]:
        out = [await c._admit(RAW, 20, covers_from=12)]  # 10, 11 missing: not its own
        c._next_offset[RAW] = 10
        out.append(await c._admit(RAW, 20, covers_from=10))
        c._delivered(RAW, 20)
        return out

    assert asyncio.run(run()) == [REWOUND, D]
    assert c.seeks == [(RAW, 10)]
    assert c.gaps == [(RAW, 10, 19)]
    assert c._next_offset[RAW] == 21


def test_unknown_position_and_rereads() -> None:
    c = Recording()
    assert feed(c, [700]) == [D]  # no committed offset and no log start known: take it
    assert feed(c, [650]) == [DROP]  # delivered before: read again after a seek back
    assert c._next_offset[RAW] == 701
    assert c.seeks == []


class Committing(Recording):
    def __init__(self, committed: int | None, acked: list[int], log_start: int = 0) -> None:
        super().__init__()
        self._acked = defaultdict(list, {RAW: list(acked)})
        self._acked_index = defaultdict(set, {RAW: set(acked)})
        self._gap: defaultdict[TP, Any] = defaultdict(IntervalTree)
        self._committed_offset = defaultdict(lambda: None, {RAW: committed})
        self._log_start = {RAW: log_start}


def test_the_commit_never_passes_an_unacknowledged_first_record() -> None:
    # Faust's own check lets exactly one unacknowledged record through (100 here).
    assert Committing(committed=100, acked=[101, 102])._new_offset(RAW) is None
    assert Committing(committed=100, acked=[100, 101, 103])._new_offset(RAW) == 102
    # Faust keeps a committed offset of 0 as None and then checks nothing at all.
    assert Committing(committed=None, acked=[5, 6], log_start=0)._new_offset(RAW) is None
    assert Committing(committed=None, acked=[0, 1], log_start=0)._new_offset(RAW) == 2


def test_the_commit_passes_a_hole_let_go_as_a_gap() -> None:
    c = Committing(committed=10, acked=[50, 51])
    c._gap[RAW].addi(10, 50)  # retention deleted 10..49 (see _admit)
    assert c._new_offset(RAW) == 52
