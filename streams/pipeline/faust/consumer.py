"""A Faust consumer that never lets records of an input topic go missing around a rebalance.

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
the rest of that partition's batch, so the missing records are fetched again; Faust's
``_add_gap`` is never used for these topics. If the hole appears again, it asks the broker
where the log starts: records deleted by retention (the group was away too long) are let go
with an error; otherwise it seeks back again, up to MAX_REWINDS times, then goes on with an
error rather than stall the partition forever.

Faust's commit also has an off-by-one for these topics (``Consumer._new_offset`` commits past
the committed offset's own record when it alone is unacknowledged, and checks nothing when the
committed offset is 0): the commit here never passes a record no agent handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from enum import Enum
from time import monotonic
from typing import Any, ClassVar
from weakref import WeakSet

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP
from faust.types.tuples import Message, ack_lock
from mode import Service
from mode.utils.futures import notify

from hito.pipeline.faust.batches import LaneBatch, Record
from hito.pipeline.faust.lane import Lanes, lane_event
from hito.pipeline.faust.recovery_watch import watch_recovery

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


# Fetch requests wait for this much data, or this long (Faust: 1 byte, up to 1.5 s): at a
# moderate rate one fetch then brings a batch instead of a handful of records, which halved the
# p99 latency at 600 events/s and cut a fifth of the worker's CPU per event (bench/README.md).
FETCH_MIN_BYTES = 64 * 1024
FETCH_MAX_WAIT_MS = 30


class _ConsumerThread(AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Faust passes neither setting through; aiokafka 0.14 reads both when it starts.
        consumer._fetch_min_bytes = FETCH_MIN_BYTES
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    def assignment(self) -> set[TP]:
        """Nothing is assigned before the consumer exists. Faust's table manager asks as the
        app starts, and its consumer thread makes the consumer in a thread of its own: with a
        busy core it was not there yet, Faust raised ``ConsumerNotStarted`` and the worker
        exited before it was ready (1 of 30 handover-soak runs, 2026-12-04; faust-streaming
        issue #446). Before the thread has made it, no group was joined: the answer is empty."""
        if self._consumer is None:
            return set()
        return super().assignment()


class GaplessConsumer(AIOKafkaConsumer):
    """aiokafka-backed Faust consumer; see the module docstring."""

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
        # before the fetch loop fetches again (see _reposition_lanes).
        self._reposition: set[TP] = set()
        self._buffer_drained = asyncio.Event()
        self._lose_until: float | None = None  # the fault hook's end

    @Service.task
    async def _watch_recovery(self) -> None:
        """A changelog partition whose recovery stalls is read again (recovery_watch)."""
        await watch_recovery(self)

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

    def on_buffer_drop(self, tp: TP) -> None:
        super().on_buffer_drop(tp)
        self._buffer_drained.set()

    async def _wait_next_records(self, timeout: float) -> Any:  # noqa: ASYNC109 (Faust's)
        """Faust's, without its 1 s sleep when every partition is paused.

        Faust stops fetching a partition once the queue it feeds holds 80 % of
        ``stream_buffer_maxsize`` and resumes it at 40 %; with every partition paused it
        sleeps a whole second before it looks again. At ~2,000 events/s a 1,024-event queue
        empties in half that, so the agents idled half the time (bench's Faust floor on 30,000
        events: 3,261 events/s at 1,024 without this, 5,100 at 4,096, 4,785 at 1,024 with
        it). Here the loop waits for the first queue to drain instead (at most the same
        second), so a small buffer, which bounds how long a flood holds other partitions'
        events (docs/security.md), no longer costs throughput. When no partition was paused
        for a full buffer (none assigned, say), or for a client-only app, Faust's path is
        unchanged.
        """
        if (
            self.flow_active
            and not self.app.client_only
            and self._buffered_partitions
            and not self._get_active_partitions()
        ):
            self._buffer_drained.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._buffer_drained.wait(), timeout=1.0)
            if not self._get_active_partitions():
                return {}, set()  # still all paused: what Faust returns after its sleep
        records, active = await super()._wait_next_records(timeout)
        if records and not self.flow_active:
            self._keep_changelog_positions(records)
        return records, active

    def _keep_changelog_positions(self, records: Mapping[Any, Sequence[Any]]) -> None:
        """Changelog records fetched while flow is stopped go back to the broker.

        Faust's ``getmany`` drops a fetch that returns while flow is stopped and seeks every
        partition to its committed offset to read it again; changelog partitions have no
        committed offset, so that seek leaves them where the dropped records ended. A table
        recovery seeks its changelog partitions *before* it resumes flow: a fetch in flight
        across that seek returns records from the recovery's position, they are dropped, and
        the recovery then waits for records that will never come again (the stall of
        docs/aggregation.md, "A table recovery that never ends": position at the end,
        nothing delivered since the seek). Each such partition is sought back to its first
        dropped record here, before Faust drops them, unless it was sought elsewhere since
        (a position before the end of what was fetched). Called with nothing in between: no
        other task runs between the fetch's return and Faust's drop.
        """
        consumer = self._thread._consumer
        if consumer is None:
            return
        for tp, fetched in records.items():
            if tp.topic in self.gapless_topics or not fetched:
                continue  # input partitions: Faust's seek and the check at delivery
            first, end = fetched[0].offset, fetched[-1].offset + 1
            try:
                position = consumer._subscription.subscription.assignment.state_value(tp)
                now = position.position if position.has_valid_position else None
                if now is None or now < end:
                    continue  # sought since the fetch: that seek decides
                consumer.seek(tp, first)
            except Exception as exc:  # e.g. revoked meanwhile: the next recovery seeks it
                log.warning("could not keep %s at %d (%r)", tp, first, exc)
                continue
            log.info(
                "%d records of %s (from %d) came back while flow was stopped: read again",
                len(fetched),
                tp,
                first,
            )
            notify = type(self).on_rewind
            if notify is not None:
                notify(tp.topic)

    async def seek_wait(self, partitions: Mapping[TP, int]) -> None:
        await super().seek_wait(partitions)
        pause = self.hooks.recovery_seek_pause_s
        if pause and self.app.in_recovery:
            await asyncio.sleep(pause)  # the fault hook: the recovery comes back late

    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

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

    async def _reposition_lanes(self) -> None:
        """Seek the lane partitions marked for it to the next offset to deliver; the fetch
        loop calls this before it fetches, once the lanes are open.

        aiokafka's position can be past records no lane got: fetched while the lanes waited
        for a seek, or before it (skipped at delivery), or dropped by Faust's getmany when flow
        stopped; and the seek to committed offsets moves only partitions with a committed
        offset above 0. The check at delivery notices such a hole when a later record arrives,
        but at the end of a log none does. So every seek marks its lane partitions, and so do
        skipped records and batches Faust cleared from the lanes; the lanes also ask for a
        partition to be read again once a failed batch's back-off is over (``Lanes._retry``)."""
        lanes = type(self).lanes
        if lanes is None or not lanes.ready:
            return
        for tp, start in lanes.rereads_due().items():  # a failed batch's partition, a hole
            self._next_offset[tp] = start
            self._reposition.add(tp)
        if not self._reposition:
            return
        marked, self._reposition = self._reposition, set()
        for tp in marked:
            offset = self._next_offset.get(tp)
            if offset is None:
                continue
            try:
                await self._seek(tp, offset)
            except Exception as exc:  # e.g. IllegalStateError: revoked meanwhile
                log.warning("seek back on %s failed (%r)", tp, exc)

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

    async def _admit(self, tp: TP, offset: int) -> Admit:
        """The check at delivery of a record of an input topic (see the module docstring)."""
        expected = self._next_offset.get(tp)
        if expected is None or offset == expected:
            self._rewound_at.pop(tp, None)
            return Admit.DELIVER
        if offset < expected:
            return Admit.DROP  # delivered before: a record read again after a seek back
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
            self._rewound_at.pop(tp, None)
            # Acknowledged as a gap on purpose: they will never come, the commit may pass them.
            await self._add_gap(tp, expected, offset - 1)
            lanes = type(self).lanes
            if lanes is not None and lanes.lane_for(tp.topic) is not None:
                lanes.gone(tp, expected, offset)  # the lane's watermark passes them too
            self._next_offset[tp] = offset
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

    async def _drain_messages(self, fetcher: Any) -> None:
        """Faust's fetch loop with one ``wait_first`` per fetched batch instead of per record.

        Faust (0.15.3) waits for each record's delivery to the agents' queues with
        ``wait_first(callback(message), suspend_flow.wait())``, which makes four tasks and an
        ``asyncio.wait`` per record: about a third of a worker's CPU in a profile. Here a
        fetched batch is read in full first (never inside the race: a fetch cancelled in
        flight would lose its records, changelogs' included), then one task delivers it,
        raced against the same events (flow suspended for a rebalance, consumer stopped or
        crashed). When flow is suspended the delivery is cancelled and the rest of the batch
        is neither delivered nor marked read; on our input topics the check at delivery
        (``_admit``) sees the hole and fetches it again, and changelogs are re-read by Faust's
        recovery, which seeks them itself.
        """
        fetcher_should_stop = fetcher._stopped.is_set
        try:
            while not (self._stopped.is_set() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                await self._reposition_lanes()
                batch, runs = await self._fetch(self.hooks.fetch_wait_s)
                # Faust sleeps here too: getmany may return at once, over and over.
                await self.sleep(0)
                if (batch or runs) and not self.should_stop:
                    await self.wait_first(self._deliver(batch, runs), self.suspend_flow.wait())
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _fetch(
        self,
        timeout: float,  # noqa: ASYNC109 (Faust's fetch wait)
    ) -> tuple[list[tuple[TP, Message]], dict[TP, Sequence[Record]]]:
        """Faust's ``getmany`` (0.15.3), except that a lane partition's fetched records stay
        as aiokafka returned them, one run per partition, for ``_deliver`` to take at once.

        Faust turns each fetched record into a ``ConsumerMessage`` and yields it from an async
        generator, checking flow, generation and the partition and tracking its high-water
        mark per record: 8-10 % of a worker's CPU in the bench's profile (``_to_message``,
        ``getmany``, the comprehension around it), for records a lane only reads the offset,
        key, value and headers of. The checks are made per partition here: nothing in
        between awaits, so only the consumer thread can change flow or generation meanwhile,
        and a change then drops the rest of the fetch as Faust's does (the check at delivery
        and the lanes' repositioning fetch it again). Changelog records (and every record
        without lanes) take Faust's path unchanged."""
        lanes = type(self).lanes
        if lanes is None:
            return [record async for record in self.getmany(timeout=timeout)], {}
        records, active = await self._wait_next_records(timeout)
        generation = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return [], {}
        if not self.flow_active:
            self.log.dev("getmany called while flow not active. Seek back to committed offsets.")
            try:
                await self.perform_seek()
            except Exception as exc:  # as Faust: logged, and the fetch loop goes on
                self.log.warning(f"exception performing seek when flow not active {exc}")
            return [], {}
        runs: dict[TP, Sequence[Record]] = {}
        others: dict[TP, list[Any]] = {}
        buffered = self._buffered_partitions
        track_end = self.app.monitor.track_tp_end_offset
        for tp, fetched in records.items():
            if not self.flow_active or self.app.consumer_generation_id != generation:
                break  # as Faust: the rest of the fetch is dropped
            if not (active is None or tp in active or tp in buffered):
                continue
            track_end(tp, self.highwater(tp))
            if lanes.lane_for(tp.topic) is not None:
                runs[tp] = fetched
            else:
                others[tp] = fetched
        to_message = self._to_message
        batch: list[tuple[TP, Message]] = [
            (tp, to_message(tp, record)) for tp, record in self.scheduler.iterate(others)
        ]
        return batch, runs

    async def _deliver(
        self,
        batch: list[tuple[TP, Message]],
        runs: Mapping[TP, Sequence[Record]] | None = None,
    ) -> None:
        """The body of Faust's per-record loop in ``_drain_messages``, minus the per-record
        ``wait_first``; records of input topics are checked here (``_admit``), at delivery.
        ``runs``: the lane partitions' records as fetched (``_fetch``), after ``batch``."""
        callback = self.callback
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        gapless = self.gapless_topics
        lanes = type(self).lanes
        to_lanes: dict[TP, list[Record]] = {}
        generation = lanes.generation if lanes is not None else 0
        rewound: set[TP] = set()
        for i, (tp, message) in enumerate(batch):
            if i % 100 == 99 and lanes is None:  # as Faust: let other tasks run meanwhile
                await asyncio.sleep(0)
            offset = message.offset
            if tp.topic in gapless:  # input records here only without lanes (else: runs)
                if tp in rewound:
                    continue
                admit = await self._admit(tp, offset)
                if admit is Admit.REWOUND:
                    rewound.add(tp)
                if admit is not Admit.DELIVER:
                    continue
            else:  # changelogs: Faust's own handling (compacted topics do have holes)
                r_offset = read_offset.get(tp)
                if r_offset is not None and offset < r_offset:
                    continue  # read before: Faust drops it too
                gap = offset - (r_offset or 0)
                if gap > 1 and r_offset and acks_enabled_for(message.topic):
                    await self._add_gap(tp, r_offset + 1, offset)
                if self.hooks.lose_changelog_s and self._losing():
                    read_offset[tp] = offset  # the fault hook: lost after the fetch
                    continue
            if self._commit_every is not None and self._n_acked >= self._commit_every:
                self._n_acked = 0
                await self.commit()
            await callback(message)
            read_offset[tp] = offset
            if tp.topic in gapless:
                self._delivered(tp, offset)
        if lanes is not None:
            for tp, run in (runs or {}).items():
                if run:
                    await self._admit_run(lanes, tp, run, to_lanes, generation)
        if to_lanes and lanes is not None and lanes.generation == generation:
            await self._to_lanes(lanes, to_lanes, generation)

    async def _admit_run(
        self,
        lanes: Lanes,
        tp: TP,
        run: Sequence[Record],
        to_lanes: dict[TP, list[Record]],
        generation: int,
    ) -> None:
        """A lane partition's fetched records, at once when they are exactly what the check at
        delivery would admit one by one: consecutive offsets from the next one expected (every
        fetch but the first after a seek, since the input topics have no holes); else record by
        record, as ``_deliver`` checks Faust's. No await on the way: the run is admitted whole
        against one state of the lanes and positions."""
        first, last = run[0].offset, run[-1].offset
        expected = self._next_offset.get(tp)
        if (
            lanes.ready
            and lanes.generation == generation
            and (expected is None or expected == first)
            and last - first == len(run) - 1
        ):
            self._rewound_at.pop(tp, None)
            to_lanes.setdefault(tp, []).extend(run)
            self._read_offset[tp] = last
            self._next_offset[tp] = last + 1
            return
        for record in run:
            if not lanes.ready or lanes.generation != generation:
                # Fetched before a seek (or while it ran): fetched again from the seek's
                # position. Admitted now, they would move the expected offset past records
                # whose batch is dropped as stale at the end of this delivery.
                self._reposition.add(tp)
                return
            admit = await self._admit(tp, record.offset)
            if admit is Admit.REWOUND:
                return  # the rest of the run comes again from the seek back
            if admit is Admit.DELIVER and lanes.ready:  # else: it comes again from the seek
                to_lanes.setdefault(tp, []).append(record)
                self._read_offset[tp] = record.offset
                self._delivered(tp, record.offset)

    def _losing(self) -> bool:
        if not self.app.in_recovery:
            return False
        if self._lose_until is None:
            self._lose_until = monotonic() + self.hooks.lose_changelog_s
        return monotonic() < self._lose_until

    async def _to_lanes(
        self, lanes: Lanes, records: dict[TP, list[Record]], generation: int
    ) -> None:
        """One LaneBatch per partition into its lane (hito.pipeline.faust.lane, "bounded")."""
        for fetched_tp, messages in records.items():
            tp = TP(fetched_tp.topic, fetched_tp.partition)  # Faust's type, not aiokafka's
            lane = lanes.lane_for(tp.topic)
            assert lane is not None
            event = lane_event(self.app, LaneBatch(tp, messages, generation, lanes.epoch(tp)))
            for queue in lane.queues():
                if queue.full():  # never with the lane's pausing; as Faust would, wait
                    await queue.put(event)
                else:
                    queue.put_nowait(event)
            if lanes.queued(tp, lane):
                self.on_buffer_full(tp)  # fetch no more of it until its batches are handled

    async def _deleted(self, tp: TP, offset: int) -> bool:
        """True when the log no longer starts at or before ``offset`` (retention removed it);
        False when the broker does not say (then the consumer seeks back again)."""
        start = (await self._log_starts({tp})).get(tp)
        return start is not None and start > offset


def gapless_consumer_class(
    topics: Iterable[str],
    on_rewind: Callable[[str], None] | None = None,
    on_skip: Callable[[str], None] | None = None,
    hooks: FaultHooks | None = None,
) -> type[GaplessConsumer]:
    """A GaplessConsumer subclass checking ``topics`` (Faust instantiates the class itself)."""

    class HitoConsumer(GaplessConsumer):
        gapless_topics = frozenset(topics)

    # Read through the class (type(self).on_rewind), so a plain function is never bound.
    HitoConsumer.on_rewind = on_rewind
    HitoConsumer.on_skip = on_skip
    HitoConsumer.hooks = hooks or FaultHooks()
    return HitoConsumer
