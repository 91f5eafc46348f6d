"""The offset bookkeeping of Hito's Faust consumer: no record of an input topic goes missing
around a rebalance, and the commit never passes one no agent handled.

faust-streaming 0.15.3 can drop fetched records while partitions move: its ``getmany`` stops
iterating a fetched batch when flow control is switched off or the consumer generation changes,
and the records left in that batch are gone (the aiokafka position is already past them). If
no seek follows, the next record of that partition arrives with a hole before it, and Faust
then *marks the hole as acknowledged* (``Consumer._add_gap``, meant for compacted topics and
transaction markers), so the committed offset moves past records no agent ever saw. That is the
loss issue #5's scale-out and crash tests showed (docs/aggregation.md, "Partition handover").

Our input topics (raw and clean) are plain append-only logs written without transactions, so
their offsets have no holes. This consumer tracks, per partition, the next offset it expects to
*deliver* to the agents (reset by every seek, and by the seek to committed offsets that ends a
rebalance). The check is made at delivery, not at fetch: a batch fetched before that seek can
still be in delivery when it happens (Faust resumes fetching to read changelogs before it seeks
the input partitions), and its records must then be measured against the new position, not
the old one. A record past the expected offset means a hole: the consumer seeks back and drops
the rest of that partition's batch, so the missing records are fetched again. If the hole
appears again, it asks the broker where the log starts: records deleted by retention (the group
was away too long) are let go with an error; otherwise it seeks back again, up to MAX_REWINDS
times, then goes on with an error rather than stall the partition forever. Offsets let go are
acknowledged as a gap (``_pass_gap``: Faust's ``_add_gap`` and the lane's ``gone``), and so are
those of a batch the fetch refused unread (hito.pipeline.faust.fetched_records): one record at
its last offset stands for them all, and no seek is made for them.

Faust's commit also has an off-by-one for these topics (``Consumer._new_offset`` commits past
the committed offset's own record when it alone is unacknowledged, and checks nothing when the
committed offset is 0): the commit here never passes a record no agent handled.

The fetch loop that feeds the agents and the lanes (hito.pipeline.faust.consumer) builds on
this class; everything here is about positions: the next offset to deliver, seeks, the
rebalance's hand-over, acknowledgements and the commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping, Set
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar
from weakref import WeakSet

from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP
from faust.types.tuples import Message, ack_lock
from mode.utils.futures import notify

from hito.pipeline.faust.lane import Lanes

log = logging.getLogger(__name__)


# After this many seeks back to the same offset without it arriving, go on (logged as an
# error): a partition must not stall forever.
MAX_REWINDS = 10


@dataclass(frozen=True)
class FaultHooks:
    """Fault hooks for tests, all off by default (set from HITO_TEST_* variables by
    hito.pipeline.worker). They widen or force a real failure; none fakes a component."""

    #: For this long from the first changelog record a recovery fetches, changelog records are
    #: marked read and not delivered, as if lost after the fetch (test_recovery_stall.py).
    lose_changelog_s: float = 0.0
    #: How long one fetch waits for records (Faust's fetch loop: 1 s).
    fetch_wait_s: float = 1.0
    #: A seek made while the tables recover returns this much later, as when the event loop
    #: is slow to come back to the recovery after it (test_recovery_race.py).
    recovery_seek_pause_s: float = 0.0


class Admit(Enum):
    """What to do with a fetched record of an input topic."""

    DELIVER = "deliver"  # the next record expected (or a hole that is let go)
    DROP = "drop"  # delivered before: a record read again after a seek back
    REWOUND = "rewound"  # past a hole: the consumer sought back; drop the partition's batch


class OffsetKeeper(AIOKafkaConsumer):
    """aiokafka-backed Faust consumer's positions and commit; see the module docstring."""

    gapless_topics: ClassVar[frozenset[str]] = frozenset()
    #: The batch lanes (hito.pipeline.faust.lane): input topics whose fetched records go to an
    #: agent a partition's batch at a time; installed by the worker before the app starts.
    lanes: ClassVar[Lanes | None] = None
    #: Called with the topic name on every seek back (a metric); set by the class factory.
    on_rewind: ClassVar[Callable[[str], None] | None] = None
    #: Called with the topic name for every record Faust acked unprocessed (a metric).
    on_skip: ClassVar[Callable[[str], None] | None] = None
    hooks: ClassVar[FaultHooks] = FaultHooks()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handled: WeakSet[Message] = WeakSet()
        self._next_offset: dict[TP, int] = {}  # input partition -> next offset to deliver
        self._log_start: dict[TP, int] = {}  # where a partition without a commit starts
        self._rewound_at: dict[TP, tuple[int, int]] = {}  # tp -> (offset sought, times)
        # Lane partitions whose aiokafka position must go back to the next offset to deliver
        # before the fetch loop fetches again (the fetch loop's _reposition_lanes).
        self._reposition: set[TP] = set()

    def mark_handled(self, message: Message) -> None:
        """An agent finished this record (streams/acks.py): its ack may advance the commit."""
        self._handled.add(message)

    def ack(self, message: Message) -> bool:
        """Faust's ack, except for input records no agent handled.

        During a rebalance or a stop, Faust's stream acks every record it takes from a queue
        while flow is suspended, unprocessed ("otherwise the lag would increase"). If an earlier
        record is still in an agent's batch, its ack later makes the acked offsets contiguous
        and the commit passes a record no agent saw. Such a record is marked acked here (so
        ``wait_empty`` does not wait for it) but its offset is not recorded: the commit stops
        before it and the seek that ends the rebalance fetches it again.
        """
        if message.topic in self.gapless_topics and message not in self._handled:
            with ack_lock:
                if message.acked:
                    return False
                message.acked = True
                self._unacked_messages.discard(message)
            notify(self._waiting_for_ack)
            notify_skip = type(self).on_skip
            if notify_skip is not None:
                notify_skip(message.topic)
            return False
        self._handled.discard(message)
        return bool(super().ack(message))

    async def seek_wait(self, partitions: Mapping[TP, int]) -> None:
        await super().seek_wait(partitions)
        pause = self.hooks.recovery_seek_pause_s
        if pause and self.app.in_recovery:
            await asyncio.sleep(pause)  # the fault hook: the recovery comes back late

    async def perform_seek(self) -> None:
        lanes = type(self).lanes
        if lanes is not None:
            # Until the seek is done, nothing fetched may reach an agent: a batch fetched from
            # aiokafka's own position while the tables recovered, handled now, would count
            # records whose committed offset the seek is about to restore.
            lanes.pause()
        # Where the log starts, asked before the seek: a partition without a committed offset
        # starts there (auto.offset.reset is "earliest"), and the check above needs to know it.
        self._log_start = await self._log_starts(
            {tp for tp in self.assignment() if tp.topic in self.gapless_topics}
        )
        await super().perform_seek()
        self._rewound_at.clear()
        # After the seek every assigned partition reads from its committed offset (Faust keeps
        # it as the partition's read offset). No await between Faust's update and this one: a
        # batch still in delivery sees either the old position or the new one, never a mix.
        # Only what is assigned now: Faust's read offsets may still hold a partition that went
        # elsewhere (read after its revocation), and a lane's watermark of it would commit.
        assigned = self.assignment()
        self._next_offset = {
            tp: offset
            for tp, offset in self._read_offset.items()
            if offset is not None and tp.topic in self.gapless_topics and tp in assigned
        }
        for tp, start in self._log_start.items():
            if tp in assigned:
                self._next_offset.setdefault(tp, start)
        if lanes is not None:
            positions = {tp: o for tp, o in self._next_offset.items() if lanes.lane_for(tp.topic)}
            self._reposition = set(positions)
            lanes.resume(positions)

    def resume_flow(self) -> None:
        """Faust's. Faust has just cleared the lanes' queues (it always resumes its flow
        control, which does, right before this): a batch that waited there is gone unhandled,
        so its partition is read again from its watermark (the fetch loop seeks it back)."""
        super().resume_flow()
        lanes = type(self).lanes
        if lanes is None:
            return
        for tp in lanes.lost():
            mark = lanes.watermarks.get(tp)
            if mark is not None:
                self._next_offset[tp] = mark
                self._reposition.add(tp)

    async def _log_starts(self, tps: set[TP]) -> dict[TP, int]:
        if not tps:
            return {}
        try:
            return {tp: o for tp, o in (await self.earliest_offsets(*tps)).items() if o is not None}
        except Exception as exc:  # a broker hiccup: the first record's offset is taken instead
            log.warning("where the log starts is unknown for %s (%r)", sorted(tps), exc)
            return {}

    async def seek(self, partition: TP, offset: int) -> None:
        await super().seek(partition, offset)
        if partition.topic in self.gapless_topics:
            self._next_offset[partition] = offset

    async def on_partitions_revoked(self, revoked: Set[TP]) -> None:
        for tp in revoked:
            self._next_offset.pop(tp, None)
            self._rewound_at.pop(tp, None)
            self._reposition.discard(tp)
        lanes = type(self).lanes
        if lanes is not None:
            lanes.pause()  # until the seek that ends the rebalance
            for tp in revoked:
                lanes.watermarks.forget(tp)
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Set[TP], generation_id: int = 0) -> None:
        lanes = type(self).lanes
        if lanes is not None:
            lanes.pause()  # until the seek that ends the rebalance
        await super().on_partitions_assigned(assigned, generation_id)

    async def wait_empty(self) -> None:
        """Faust's, after the batch an agent has in hand (a rebalance must wait for it: its
        table writes belong to partitions that may be leaving). At a stop Faust does not
        wait, and neither does this: an unfinished batch is simply not committed."""
        lanes = type(self).lanes
        if lanes is not None and not self.should_stop:
            await lanes.wait_idle()
        await super().wait_empty()

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Iterator[TP]:
        """Faust's, plus the lane partitions (acknowledged by watermark, not per record)."""
        yield from super()._filter_tps_with_pending_acks(topics)
        lanes = type(self).lanes
        if lanes is not None:
            for tp in lanes.watermarks:
                if tp not in self._acked and (topics is None or tp in topics or tp.topic in topics):
                    yield tp

    async def _admit(self, tp: TP, offset: int, covers_from: int | None = None) -> Admit:
        """The check at delivery of a record of an input topic (see the module docstring).
        ``covers_from``: the record stands for offsets from there to its own (a refused batch,
        hito.pipeline.faust.fetched_records): the ones before it never come on their own."""
        expected = self._next_offset.get(tp)
        if expected is None or offset == expected:
            self._rewound_at.pop(tp, None)
            return Admit.DELIVER
        if offset < expected:
            return Admit.DROP  # delivered before: a record read again after a seek back
        if covers_from is not None and covers_from <= expected:
            log.error(
                "records %d..%d of %s are one refused batch (its record at %d); continuing",
                expected,
                offset - 1,
                tp,
                offset,
            )
            await self._pass_gap(tp, expected, offset)
            return Admit.DELIVER
        sought, times = self._rewound_at.get(tp, (-1, 0))
        times = times if sought == expected else 0
        if times and (times >= MAX_REWINDS or await self._deleted(tp, expected)):
            log.error(
                "records %d..%d of %s %s; continuing at %d",
                expected,
                offset - 1,
                tp,
                "are gone from the log (retention)"
                if times < MAX_REWINDS
                else f"still missing after {times} seeks back",
                offset,
            )
            await self._pass_gap(tp, expected, offset)
            return Admit.DELIVER
        log.warning(
            "records %d..%d of %s were not delivered since the last seek; seeking back to %d",
            expected,
            offset - 1,
            tp,
            expected,
        )
        self._rewound_at[tp] = (expected, times + 1)
        notify = type(self).on_rewind
        if notify is not None:
            notify(tp.topic)
        try:
            await self.seek(tp, expected)
        except Exception as exc:  # e.g. IllegalStateError: the partition is being revoked
            log.warning("seek back on %s failed (%r); the batch is dropped", tp, exc)
        return Admit.REWOUND

    async def _pass_gap(self, tp: TP, begin: int, end: int) -> None:
        """Offsets ``begin``..``end - 1`` will never come: acknowledged as a gap on purpose, so
        the commit (and the lane's watermark) may pass them; ``end`` is delivered next."""
        self._rewound_at.pop(tp, None)
        await self._add_gap(tp, begin, end - 1)
        lanes = type(self).lanes
        if lanes is not None and lanes.lane_for(tp.topic) is not None:
            lanes.gone(tp, begin, end)
        self._next_offset[tp] = end

    def _delivered(self, tp: TP, offset: int) -> None:
        """Move the expected offset on, unless a seek moved it while the record was delivered
        (the record was fetched before that seek; what follows it comes again from there)."""
        if self._next_offset.get(tp, offset) == offset:
            self._next_offset[tp] = offset + 1

    def _new_offset(self, tp: TP) -> int | None:
        """Faust's, except that the commit never passes an unacknowledged first record; for a
        lane's partition, its watermark (everything before it handled, in order)."""
        lanes = type(self).lanes
        if lanes is not None and lanes.lane_for(tp.topic) is not None:
            handled = lanes.watermarks.get(tp)
            committed = self._committed_offset[tp]
            if handled is None or (committed is not None and handled <= committed):
                return None
            return handled
        if tp.topic in self.gapless_topics:
            acked = self._acked[tp]
            base = self._committed_offset[tp]  # the next offset to commit (Kafka's meaning)
            if base is None:  # Faust keeps 0 as None too
                base = self._log_start.get(tp)
            if acked and base is not None:
                heads = [min(acked), *(gap.begin for gap in self._gap[tp])]
                if min(heads) > base:
                    return None  # the record at ``base`` is not acknowledged yet
        new: int | None = super()._new_offset(tp)
        return new

    async def _deleted(self, tp: TP, offset: int) -> bool:
        """True when the log no longer starts at or before ``offset`` (retention removed it);
        False when the broker does not say (then the consumer seeks back again)."""
        start = (await self._log_starts({tp})).get(tp)
        return start is not None and start > offset
