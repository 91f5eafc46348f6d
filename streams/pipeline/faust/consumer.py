"""Hito's Faust consumer: its fetch loop, which hands input partitions' fetched records to the
batch lanes (hito.pipeline.faust.lane) a partition's run at a time and changelog records to
Faust's own path, and checks each at delivery against the bookkeeping of
hito.pipeline.faust.offsets (the next offset expected; a hole is sought back, never skipped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from time import monotonic
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP
from faust.types.tuples import Message
from mode import Service

from hito.pipeline.faust import fetched_records
from hito.pipeline.faust.batches import LaneBatch, Record, RefusedBatch
from hito.pipeline.faust.lane import Lanes, lane_event
from hito.pipeline.faust.offsets import Admit, FaultHooks, OffsetKeeper
from hito.pipeline.faust.recovery_watch import watch_recovery

log = logging.getLogger(__name__)

# Fetch requests wait for this much data, or this long (Faust: 1 byte, up to 1.5 s): at a
# moderate rate one fetch then brings a batch instead of a handful of records, which halved the
# p99 latency at 600 events/s and cut a fifth of the worker's CPU per event (bench/README.md).
FETCH_MIN_BYTES = 64 * 1024
FETCH_MAX_WAIT_MS = 30


class _ConsumerThread(AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        # What a device puts in a batch never stops an input partition.
        fetched_records.install(cast(GaplessConsumer, self.consumer).gapless_topics)
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
        issue #446). Before the thread has made it, no group was joined: the answer is empty.
        (A second cause of the same exit was a scrape that made a second consumer; worker.py
        now keeps scrapes away from Faust.)"""
        if self._consumer is None:
            return set()
        return super().assignment()


class GaplessConsumer(OffsetKeeper):
    """aiokafka-backed Faust consumer: this module's fetch loop on the bookkeeping of
    OffsetKeeper (hito.pipeline.faust.offsets, whose docstring tells why it exists)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._buffer_drained = asyncio.Event()
        self._lose_until: float | None = None  # the fault hook's end

    @Service.task
    async def _watch_recovery(self) -> None:
        """A changelog partition whose recovery stalls is read again (recovery_watch)."""
        await watch_recovery(self)

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

    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

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
        record, as ``_deliver`` checks Faust's (a refused batch's record, which stands for the
        offsets before it, is one of those). No await on the way: the run is admitted whole
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
            covers = record.first_offset if type(record) is RefusedBatch else None
            admit = await self._admit(tp, record.offset, covers)
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
