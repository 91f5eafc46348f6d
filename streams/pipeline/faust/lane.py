"""The batch lane: each partition's fetched records reach an agent as *one* Faust event.

Faust delivers every record through its conductor, a queue per topic and the stream iterator,
and acknowledges each one: about 45 µs of CPU per record and per hop (NOTES-perf.md), more
than the work Hito does on it. For the input topics (raw and clean) the consumer
(``hito.pipeline.faust.consumer``) hands a partition's fetched records to a lane instead: a
:class:`LaneBatch` goes into an in-memory Faust channel, and an agent on that channel (a thin
adapter, ``hito.pipeline.worker``) handles the whole batch. Changelog partitions keep Faust's
own path, so tables, recovery, the assignor, consumer groups and Faust's commit timer stay
Faust's.

Invariants (tests/unit/pipeline/faust/test_lane.py):

- a batch is *acknowledged* as a per-partition watermark: when the agent has handled it and
  it reaches the watermark (starts at or before it: records before it were handled already)
  and ends past it, the partition's next offset to commit moves to the batch's end; the
  commit never passes a record no agent handled;
- watermarks exist only from the seek that ends a rebalance to the next one's start, and only
  for the partitions assigned then: nothing is committed on an older reading;
- a batch fetched in an earlier generation (before a seek or a rebalance), or of a partition
  this worker no longer owns, is dropped unhandled: its records come again from the
  committed offset;
- an agent handles a partition's batches in offset order, without a hole: a batch that does
  not continue what was taken of its partition is dropped, and the partition read again from
  there. The aggregator's exactness rests on it (docs/aggregation.md, "Exactness without
  per-device state": a raw partition's clean events reach a window in raw-offset order);
- a batch that fails (its handler raises, or its writes do not complete) is *retried in place* (so
  is a ``CancelledError`` that is not the agent's own stop: ``hito.pipeline.cancellation``): the
  agent lives on, the partition's later batches are dropped, its fetching pauses for a back-off
  (``RETRY_FIRST_S`` doubling to ``RETRY_MAX_S`` while it keeps failing) and then it is read again
  from the failed batch's first record; other partitions go on meanwhile. Before this, the agent
  crashed, Faust restarted it, and it went on with the *next* batches: the failed one came again
  only at the next rebalance or restart, behind later clean events, and the aggregator took its
  events for replays (a silent undercount);
- a rebalance and a stop wait for the batch in hand (:meth:`Lanes.wait_idle`) before Faust
  commits, and the queued batches are dropped (Faust clears its flow-controlled queues);
- Faust also clears them whenever it resumes flow, which it does a loop turn or more after
  the seek that ends a rebalance (``Recovery._wait``): batches queued in between are gone
  unhandled, so their partitions are read again from the watermark (:meth:`Lanes.lost`);
- the lane is bounded, and fair to quiet partitions: once a lane holds ``LANE_BATCHES``
  batches, a partition that already has another batch waiting is paused (Faust's
  ``Consumer.on_buffer_full``: not fetched) until its batches are handled, while a partition
  with nothing waiting still gets its batch in. A flood on one partition therefore holds a
  quiet device's events back by a few batches' work at most, not by the flood (Faust's own
  pressure callbacks paused whichever partition's record crossed the mark, often the quiet
  one: test_flood.py measured 2.4 s behind a 30,000-event flood).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from faust.types import TP
from faust.types.tuples import Message

from hito.pipeline.cancellation import stopping
from hito.pipeline.faust.batches import LaneBatch, Record, Watermarks

log = logging.getLogger(__name__)

# A few batches per lane (each up to a fetch: 512 KiB, some 750 events): enough to keep the
# agent busy while the next fetch arrives, few enough that a flood waits its turn.
LANE_BATCHES = 3
# The channel itself never blocks the fetch loop: quiet partitions' batches may go past the
# mark (one each at most, since a partition with a batch waiting is paused).
CHANNEL_SIZE = 64
# A failed batch's partition is read again after this back-off, doubling while it keeps
# failing: a transient fault (memory, a client's unexpected error) clears at once, a handler
# bug on one record retries once a minute (hito_lane_partitions_failing pages) instead of
# spinning a core.
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 60.0


class Lane:
    """One agent's input: a bounded in-memory channel of LaneBatch events."""

    def __init__(self, name: str, channel: Any, topics: frozenset[str]) -> None:
        self.name = name
        self.channel = channel  # faust Channel; its clone's queue feeds the agent
        self.topics = topics

    def queues(self) -> list[Any]:
        """The queues of the agents iterating the channel (Faust clones a channel for each
        iterator; ``Channel.put`` puts on each clone's queue: so do we, with Faust's own
        pressure callbacks, which ``put`` does not take)."""
        root = self.channel._root or self.channel
        return [subscriber.queue for subscriber in root._subscribers]


class Lanes:
    """The lanes of one consumer, and the bookkeeping they share with it."""

    def __init__(self, lanes: Sequence[Lane], clock: Callable[[], float] = time.monotonic) -> None:
        self._by_topic = {topic: lane for lane in lanes for topic in lane.topics}
        # Whether this worker owns a partition now (the worker points it at the consumer's
        # assignment; agent tests own everything).
        self.assigned: Callable[[TP], bool] = lambda tp: True
        # Batches waiting in the lanes per partition, and the partitions paused for it; the
        # consumer points ``resume_partition`` at Faust's ``on_buffer_drop``.
        self._waiting: dict[TP, int] = {}
        self._paused: set[TP] = set()
        self.resume_partition: Callable[[TP], None] = lambda tp: None
        self.pause_partition: Callable[[TP], None] = lambda tp: None  # Faust's on_buffer_full
        self.on_failure: Callable[[Lane], None] = lambda lane: None  # hito_lane_batch_failures
        # Partitions to read again (a failed batch, a hole): tp -> (from offset, when).
        self._rereads: dict[TP, tuple[int, float]] = {}
        self._failures: dict[TP, int] = {}  # consecutive failed batches per partition
        self._epochs: dict[TP, int] = {}  # per partition: re-reads so far (LaneBatch.epoch)
        self._clock = clock
        self.reraise = False  # agent tests: a failed batch crashes the agent, as it used to
        self.lanes = list(lanes)
        self.generation = 0
        self.ready = False  # between a rebalance's start and the seek that ends it: False
        self.watermarks = Watermarks()
        self._taken = Watermarks()  # per partition: the offset the next batch taken must reach
        self._in_hand = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def lane_for(self, topic: str) -> Lane | None:
        return self._by_topic.get(topic)

    @property
    def topics(self) -> frozenset[str]:
        return frozenset(self._by_topic)

    def queued(self, tp: TP, lane: Lane) -> bool:
        """A batch of ``tp`` went into ``lane``; True when ``tp`` must now be paused: the lane
        is at its mark and ``tp`` has another batch waiting."""
        self._waiting[tp] = waiting = self._waiting.get(tp, 0) + 1
        in_lane = sum(n for t, n in self._waiting.items() if t.topic in lane.topics)
        if waiting > 1 and in_lane >= LANE_BATCHES:
            self._paused.add(tp)
            return True
        return False

    def _dequeued(self, tp: TP) -> None:
        waiting = self._waiting.get(tp, 0) - 1
        if waiting > 0:
            self._waiting[tp] = waiting
            return
        self._waiting.pop(tp, None)
        if tp in self._paused and tp not in self._rereads:
            self._paused.discard(tp)
            self.resume_partition(tp)

    def pause(self) -> None:
        """A rebalance or a seek began: everything queued is stale, nothing more goes in and
        nothing is committed until :meth:`resume` (Faust clears the queues; paused partitions
        are resumed)."""
        self.generation += 1
        self.ready = False
        self.watermarks.reset({})
        self._taken.reset({})
        self._rereads.clear()  # the seek that ends the rebalance reads from the commit
        self.lost()

    def lost(self) -> list[TP]:
        """Faust cleared the lanes' queues: the partitions that had batches waiting there
        (now gone unhandled; paused ones are resumed)."""
        lost = list(self._waiting)
        self._waiting.clear()
        for tp in list(self._paused):
            if tp in self._rereads:
                continue  # waiting out its back-off
            self._paused.discard(tp)
            self.resume_partition(tp)
        return lost

    def resume(self, positions: dict[TP, int]) -> None:
        """The seek is done: the lane partitions assigned read (and commit) from
        ``positions``; no other has a watermark."""
        self.generation += 1
        self.watermarks.reset(positions)
        self._taken.reset(positions)
        # A partition that went elsewhere is no longer this worker's to report as failing (its
        # gauge would page for good); one kept keeps its count (and its back-off's length).
        self._failures = {tp: n for tp, n in self._failures.items() if tp in positions}
        self.ready = True

    def take(self, batch: LaneBatch) -> bool:
        """An agent takes ``batch`` from its lane: False when it must be dropped unhandled
        (stale or revoked); True when it is now *in hand* until :meth:`done`."""
        tp = batch.tp
        self._dequeued(tp)
        if not self.ready or batch.generation != self.generation or not self.assigned(tp):
            log.debug("dropping a stale batch of %s at %d", tp, batch.first)
            return False
        if tp in self._rereads or batch.epoch != self._epochs.get(tp, 0):
            return False  # fetched before its partition's re-read, which reads it again
        taken = self._taken.get(tp)
        if taken is not None and batch.first > taken:
            # Records before this batch were never taken: handled now, they would reach the
            # clean topic behind it. Read the partition again from there.
            log.warning("batch of %s at %d skips from %d: read again", tp, batch.first, taken)
            self._read_again(tp, taken, 0.0)
            return False
        self._taken.handled(batch)
        self._in_hand += 1
        self._idle.clear()
        return True

    def done(self, batch: LaneBatch, handled: bool, *, cancelled: bool = False) -> None:
        """The agent finished the batch it took (``handled``: completely; ``cancelled``: it
        was cancelled, which is no failure: read again at once, not counted)."""
        current = batch.generation == self.generation
        if handled and current:
            if self.watermarks.handled(batch):
                self._failures.pop(batch.tp, None)  # it went through: no longer failing
            else:
                mark = self.watermarks.get(batch.tp)
                if mark is None or batch.first > mark:  # (else: read again, handled before)
                    log.warning(
                        "batch %s %d..%d handled, but it does not continue at %s: not committed",
                        batch.tp,
                        batch.first,
                        batch.end - 1,
                        mark,
                    )
        elif not handled and current and self.ready:
            if cancelled:
                self._read_again(batch.tp, batch.first, 0.0)
            else:
                self._retry(batch)
        self._in_hand -= 1
        if self._in_hand == 0:
            self._idle.set()

    def _retry(self, batch: LaneBatch) -> None:
        """Read ``batch``'s partition again from its first record after a back-off (nothing
        after it is taken meanwhile; its fetching pauses)."""
        tp = batch.tp
        lane = self.lane_for(tp.topic)
        if lane is not None:
            self.on_failure(lane)
        failures = self._failures[tp] = self._failures.get(tp, 0) + 1
        delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (failures - 1))
        offset = self._read_again(tp, batch.first, delay)
        log.error(
            "batch %s %d..%d failed (%d in a row): read again from %d in %.0f s",
            tp,
            batch.first,
            batch.end - 1,
            failures,
            offset,
            delay,
        )

    def _read_again(self, tp: TP, offset: int, delay: float) -> int:
        """Nothing of ``tp`` is taken until the consumer has sought it back to ``offset`` (or
        to an earlier re-read's), ``delay`` seconds from now; its fetching pauses meanwhile."""
        offset = min(offset, self._rereads.get(tp, (offset, 0.0))[0])
        self._taken.rewind(tp, offset)
        self._rereads[tp] = (offset, self._clock() + delay)
        if delay > 0 and tp not in self._paused:
            self._paused.add(tp)
            self.pause_partition(tp)
        return offset

    def rereads_due(self) -> dict[TP, int]:
        """The partitions to read again now, from these offsets (the consumer seeks them before
        its next fetch); their fetching resumes."""
        now = self._clock()
        due = {tp: offset for tp, (offset, at) in self._rereads.items() if at <= now}
        for tp in due:
            del self._rereads[tp]
            self._epochs[tp] = self.epoch(tp) + 1  # what was fetched before is stale now
            if tp in self._paused:
                self._paused.discard(tp)
                self.resume_partition(tp)
        return due

    def epoch(self, tp: TP) -> int:
        """How many times ``tp`` was read again (the consumer stamps each batch with it)."""
        return self._epochs.get(tp, 0)

    def pending_rereads(self) -> dict[TP, tuple[int, float]]:
        return dict(self._rereads)

    def failing(self, lane: Lane) -> int:
        """Partitions of ``lane`` whose last batch failed (hito_lane_partitions_failing).
        Called by a scrape, in its own thread, while the event loop adds and removes failures:
        the keys are copied first (one C-level copy), never iterated live."""
        failures = tuple(self._failures)
        return sum(1 for tp in failures if tp.topic in lane.topics)

    def gone(self, tp: TP, begin: int, end: int) -> None:
        """The consumer gave up on records ``begin``..``end - 1`` of ``tp`` (deleted unread by
        retention, still missing after MAX_REWINDS seeks back, or a batch the fetch refused
        unread, whose record at ``end`` stands for them; it logs an error): the watermark and
        the taking order pass them."""
        self.watermarks.gone(tp, begin, end)
        self._taken.gone(tp, begin, end)

    async def wait_idle(self) -> None:
        """Until no batch is in an agent's hands."""
        await self._idle.wait()


def lane_event(app: Any, batch: LaneBatch) -> Any:
    """A Faust event carrying ``batch`` (for the lane's channel). It carries the consumer's
    generation: Faust's stream skips events of another generation (and while flow is
    suspended), which drops a batch fetched before a rebalance: it is fetched again."""
    message = Message(
        topic=f"hito-lane:{batch.tp.topic}",
        partition=batch.tp.partition,
        offset=batch.end - 1,
        timestamp=0.0,
        timestamp_type=0,
        headers=None,
        key=None,
        value=None,
        checksum=None,
        tp=batch.tp,
        generation_id=app.consumer_generation_id,
    )
    return app.create_event(None, batch, None, message)


HandleBatch = Callable[[Sequence[Record]], Awaitable[list[str]]]
Settled = Callable[[], "asyncio.Future[None] | None"]


def lane_agent(
    lanes: Lanes, handle: HandleBatch, settled: Settled | None = None
) -> Callable[[Any], AsyncIterator[list[str]]]:
    """The body of a lane's agent: take each batch, handle it, mark it done (its watermark);
    yields each batch's outcomes (agent tests read them; Faust needs no per-record value).

    ``settled()``, asked right after a batch is handled, may give a future that completes once
    the batch's writes are in Kafka: the agent goes on with the next batch meanwhile (its CPU
    work overlaps the round trip), and the batch stays *in hand* — its watermark does not move,
    a rebalance waits for it — until the future completes. The handler keeps these futures in
    batch order (it awaits the one before when it makes the next), so watermarks move in order.
    """

    async def agent(stream: Any) -> AsyncIterator[list[str]]:
        async for batch in stream:
            if not lanes.take(batch):
                continue
            handled = cancelled = False
            tail: asyncio.Future[None] | None = None
            try:
                outcomes = await handle(batch.records)
                handled = True
                tail = settled() if settled is not None else None
            except Exception:
                # Not a crash: the partition is read again from this batch (Lanes._retry).
                log.exception("a batch of %s failed at %d", batch.tp, batch.first)
                if lanes.reraise:
                    raise
                continue
            except asyncio.CancelledError:
                if stopping():
                    cancelled = True
                    raise
                # Something the handler awaited was cancelled by someone else (a client
                # closing): a failure, backed off and counted like any other; not a stop.
                log.error("a batch of %s was cancelled at %d, not by a stop", batch.tp, batch.first)
                if lanes.reraise:
                    raise
                continue
            finally:
                if tail is None:
                    lanes.done(batch, handled, cancelled=cancelled)
                else:
                    tail.add_done_callback(_mark_done(lanes, batch))
            yield outcomes

    return agent


def _mark_done(lanes: Lanes, batch: LaneBatch) -> Callable[[asyncio.Future[None]], None]:
    def done(future: asyncio.Future[None]) -> None:
        lanes.done(batch, _succeeded(future), cancelled=future.cancelled())

    return done


def _succeeded(future: asyncio.Future[None]) -> bool:
    if future.cancelled():
        return False
    if (exc := future.exception()) is not None:
        log.error("a batch's writes failed (%r): its offsets are not committed", exc)
        return False
    return True


def install_lanes(app: Any, lanes: Lanes) -> None:
    """Give the app's consumer class the lanes (Faust makes the consumer when it starts)."""
    app.transport.Consumer.lanes = lanes
    # Pausing and resuming a partition's fetching are Faust's on_buffer_full / on_buffer_drop,
    # on the consumer Faust has made.
    lanes.resume_partition = lambda tp: app.consumer.on_buffer_drop(tp)
    lanes.pause_partition = lambda tp: app.consumer.on_buffer_full(tp)
