"""The aggregator: clean events -> per (site, window) state, exact under replays and crashes.

Exactness (docs/aggregation.md): a window's counts and the raw offsets they include live in
one table value, written once per batch (one changelog record); the batch is acknowledged —
its partition's watermark moves — only once those records are in Kafka, and Faust flushes
the producer before it commits. After a crash every clean event is either in the restored
state (and recognised when delivered again) or delivered again (and counted). The publisher
(``hito.pipeline.agents.publish``) writes the windows to InfluxDB.

Late events (docs/aggregation.md, "Backfill"): an event whose window closed beyond the
allowed lateness but within the backfill horizon revises that window. A window no longer in
the table is read back from the window archive first (``hito.pipeline.state.archive``), one
query per batch; the event is then counted exactly like a live one and marked as a revision.
Only events beyond the horizon go to the DLQ (``late_beyond_window``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from pydantic import ValidationError

from hito.pipeline.cancellation import Cancelled, stopping
from hito.pipeline.dead_letters import DeadLetters, Origin, refused_batch
from hito.pipeline.delivery import Deliveries
from hito.pipeline.faust.batches import Record, RefusedBatch
from hito.pipeline.metrics import LabelledChildren, PipelineMetrics
from hito.pipeline.output import Send
from hito.pipeline.raw_origin import raw_origin
from hito.pipeline.sinks.errors import PermanentSinkError, RetryableSinkError
from hito.pipeline.sinks.influx import InfluxSink
from hito.pipeline.stages import aggregate, repeat
from hito.pipeline.stages.aggregate import RawOrigin
from hito.pipeline.stages.outcomes import Rejected
from hito.pipeline.stages.repeat import RepeatRules
from hito.pipeline.stages.windows import Timeliness, WindowRules, format_start, window_start
from hito.pipeline.state.archive import REVISING_MAX, WindowArchive
from hito.pipeline.state.pipeline_counts import Cells, PipelineCounts
from hito.pipeline.state.repeat_days import RepeatDays
from hito.pipeline.state.versioned import VersionedWindows, partition_of, table_key
from hito.schemas.clean import CleanEvent
from hito.schemas.privacy.policy import newest_version
from hito.schemas.reasons import Reason

log = logging.getLogger(__name__)

_clean_validator = CleanEvent.__pydantic_validator__
BACKFILLED = "backfilled"  # the pipeline measurement's outcome of a revision


@dataclass(frozen=True)
class Incoming:
    """One clean record, decoded: ``clean`` and ``raw`` are None when it is not a clean event
    with its raw origin (a schema violation)."""

    record: Record
    clean: CleanEvent | None
    raw: RawOrigin | None
    start: datetime | None = None
    timeliness: Timeliness = Timeliness.LIVE
    unfit: str | None = None  # why a clean event cannot be counted (then no start)


# What a batch's changelog writes sent, per store: (the store's rewrite_later, key -> partition).
Written = list[tuple[Callable[[dict[str, int]], None], dict[str, int]]]


@dataclass(eq=False, kw_only=True)
class Aggregator:
    """State and collaborators of one worker's aggregate agent (``handle_batch`` is the agent's
    body: one lane batch, the records of one clean partition, one outcome per record)."""

    rules: WindowRules
    windows: VersionedWindows
    archive: WindowArchive  # windows older than the live ones: read back for revisions
    counts: PipelineCounts
    repeat_days: RepeatDays  # per-person days of repeat_crossings
    repeat_rules: RepeatRules
    sink: InfluxSink  # read for back-pressure only: the publisher writes
    send: Send
    dead_letters: DeadLetters
    metrics: PipelineMetrics
    clock: Callable[[], datetime]
    # A fault hook for tests (HITO_TEST_KILL_MID_BACKFILL=<n>): killed at the n-th batch with
    # revisions, once they are counted and published, before their changelog records.
    kill_mid_backfill: int | None = None
    _backfill_batches: int = field(default=0, init=False)
    _tail: asyncio.Future[None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._crossings = LabelledChildren(self.metrics.crossings)  # (site, direction)
        self._backfilled = LabelledChildren(self.metrics.backfill_events)  # (site, source)

    async def handle_batch(self, records: Sequence[Record]) -> list[str]:
        if not self.sink.healthy:
            # Back-pressure: while InfluxDB fails, consumption pauses between retries.
            await self.sink.wait_ready()
        if not records:
            return []
        now = self.clock()
        partition = records[0].partition
        deliveries = Deliveries(self.send)
        incoming = [self._decode(record, now) for record in records]
        unreadable = await self._load_revised(deliveries, partition, incoming, now)
        outcomes = [await self._count(item, now, deliveries, unreadable) for item in incoming]
        cells: Cells = Counter((aggregate.STAGE, outcome) for outcome in outcomes)
        if cells[(aggregate.STAGE, BACKFILLED)]:
            await self._fault_hook()
        self.counts.add(partition, now, cells)
        if self.windows.eviction_due():
            await self._evict(deliveries, partition, now)
            await self.counts.windows.evict(deliveries, partition, now - self.rules.horizon)
            # Days the publisher has written: their per-person state goes now.
            await self.repeat_days.delete_published(deliveries, partition)
        # The batch's records wait in the producer's open batches behind the previous
        # batch's; the wait for them overlaps the next batch's work (lane_agent's settled).
        # One batch in flight at most: the one before is in Kafka before this one writes.
        # Its failure went to its own batch (read again: Lanes), not to this one, and marked
        # what it wrote to be written again: below, with this batch's changes.
        previous, self._tail = self._tail, None
        if previous is not None:
            await asyncio.wait({previous})
        written: Written = [
            (self.windows.rewrite_later, await self.windows.write_changelog(deliveries)),
            (self.repeat_days.rewrite_later, await self.repeat_days.write_changelog(deliveries)),
            (
                self.counts.windows.rewrite_later,
                await self.counts.windows.write_changelog(deliveries),
            ),
        ]
        self._tail = asyncio.ensure_future(self._settle(deliveries))
        self._tail.add_done_callback(partial(_rewrite_if_failed, written))
        return outcomes

    def settled(self) -> asyncio.Future[None] | None:
        """The last handled batch's writes (lane_agent): its watermark moves once done."""
        return self._tail

    async def _settle(self, deliveries: Deliveries) -> None:
        try:
            refusals = await deliveries.wait()
        except asyncio.CancelledError:
            if stopping():
                raise  # a stop: the batch is read again at once (Lanes.done)
            # Cancelled by something else: a failure of this batch (retried, backed off).
            raise Cancelled("a batch's writes were cancelled") from None
        for refused in refusals:
            self.dead_letters.refused(refused)

    async def _fault_hook(self) -> None:
        if self.kill_mid_backfill is None:
            return
        self._backfill_batches += 1
        if self._backfill_batches >= self.kill_mid_backfill:
            # The publisher's next ticks write these revisions to InfluxDB, public and
            # archived, while the changelog does not have them: the worst moment to die.
            await asyncio.sleep(3.0)
            log.error("test fault hook: killed mid-backfill, before the changelog records")
            os.kill(os.getpid(), signal.SIGKILL)

    def _decode(self, record: Record, now: datetime) -> Incoming:
        raw = raw_origin(record)
        try:
            # model_validate_json's own work, without its Python wrapper (as validate does).
            clean: CleanEvent = _clean_validator.validate_json(record.value or b"")
        except ValidationError:
            return Incoming(record, None, raw)
        unfit = aggregate.unfit(clean)
        if unfit is not None:  # checked first: such a time may have no window start
            return Incoming(record, clean, raw, unfit=unfit)
        start = window_start(clean.event_time, self.rules.window_s)
        return Incoming(record, clean, raw, start, self.rules.timeliness(start, now))

    async def _load_revised(
        self, deliveries: Deliveries, partition: int, incoming: list[Incoming], now: datetime
    ) -> str | None:
        """Read back from the archive every window a revision of this batch needs that the
        table does not hold. Waits while InfluxDB is unreachable (never counts onto a window
        it could not read); returns why the archive refused, if it did for good."""
        wanted = {
            aggregate.window_name(item.clean.site, item.start): (item.clean.site, item.start)
            for item in incoming
            if item.timeliness is Timeliness.BACKFILL and item.clean and item.start
        }
        wanted = {
            name: where
            for name, where in wanted.items()
            if self.windows.get(partition, name) is None
        }
        if not wanted:
            return None
        await self._make_room(deliveries, now)
        while True:
            try:
                await self.archive.load(self.windows, partition, wanted)
                return None
            except RetryableSinkError as exc:
                log.warning("window archive unreadable (%s); revisions wait", exc)
                await self.sink.wait_ready()
            except PermanentSinkError as exc:
                log.error("window archive refused a read: %s", exc)
                return f"window archive refused the read: HTTP {exc.status}"

    async def _make_room(self, deliveries: Deliveries, now: datetime) -> None:
        """Hold at most REVISING_MAX windows for revisions: forget those InfluxDB has whole
        (of any owned partition: the tombstone goes to the window's own), and wait for the
        publisher while too many remain."""
        while len(self.archive.revising) >= REVISING_MAX:
            held = set(self.archive.revising)
            gone: list[str] = []
            for partition in sorted({partition_of(key) for key in held}):
                gone += await self._evict(deliveries, partition, now, among=held)
            if len(self.archive.revising) < REVISING_MAX:
                return
            if not gone:
                await asyncio.sleep(0.2)  # the publisher writes every flush interval

    async def _evict(
        self, deliveries: Deliveries, partition: int, now: datetime, among: set[str] | None = None
    ) -> list[str]:
        gone = await self.windows.evict(
            deliveries,
            partition,
            now - self.rules.horizon,
            ready=self.archive.evictable,
            among=among,
        )
        self.archive.forget(gone)
        return gone

    async def _count(
        self, item: Incoming, now: datetime, deliveries: Deliveries, unreadable: str | None
    ) -> str:
        record, clean, raw = item.record, item.clean, item.raw
        data = record.value or b""
        origin = Origin(record.topic, record.partition, record.offset, record.key)
        if clean is None or raw is None or item.start is None:
            if type(record) is RefusedBatch:  # refused unread by the fetch: its offsets
                await self.dead_letters.reject(deliveries, refused_batch(record), data, origin)
                return Reason.OVERSIZED.value
            detail = "not a clean event" if clean is None else item.unfit or "no raw origin header"
            device = None if clean is None else clean.device_id
            rejected = Rejected(Reason.SCHEMA_VIOLATION, detail, device, stage=aggregate.STAGE)
            await self.dead_letters.reject(deliveries, rejected, data, origin)
            return Reason.SCHEMA_VIOLATION.value
        start = item.start
        if item.timeliness is Timeliness.BEYOND:
            self.metrics.late_events.labels(site=clean.site).inc()
            detail = (
                f"window {format_start(start)} closed more than "
                f"{self.rules.backfill_horizon_s} s ago (the backfill horizon)"
            )
            rejected = Rejected(
                Reason.LATE_BEYOND_WINDOW, detail, clean.device_id, stage=aggregate.STAGE
            )
            await self.dead_letters.reject(deliveries, rejected, data, origin)
            return Reason.LATE_BEYOND_WINDOW.value
        name = aggregate.window_name(clean.site, start)
        state = self.windows.get(record.partition, name)
        revision = item.timeliness is Timeliness.BACKFILL
        if state is None and revision and unreadable is not None:
            # Counting onto an empty window would overwrite the archived minute with less.
            rejected = Rejected(
                Reason.SINK_REJECTED, unreadable, clean.device_id, stage=aggregate.STAGE
            )
            await self.dead_letters.reject(deliveries, rejected, data, origin)
            return Reason.SINK_REJECTED.value
        unfit = self._sight(clean, record.partition, now)
        if unfit is not None:
            rejected = Rejected(
                Reason.SCHEMA_VIOLATION, unfit, clean.device_id, stage=aggregate.STAGE
            )
            await self.dead_letters.reject(deliveries, rejected, data, origin)
            return Reason.SCHEMA_VIOLATION.value
        if state is None:
            state = aggregate.new_state(clean.site, start)
            if revision:
                self.archive.revising.add(table_key(record.partition, name))
        revised_at = int(now.timestamp()) if revision else None
        if not aggregate.add(state, clean, raw, revised_at):
            return "duplicate"
        self.windows.put(record.partition, name, state)
        if clean.source == "checkpoint":
            self._crossings(clean.site, str(clean.payload["direction"])).inc()
        if revision:
            self._backfilled(clean.site, clean.source).inc()
            return BACKFILLED
        return "counted"

    def _sight(self, clean: CleanEvent, partition: int, now: datetime) -> str | None:
        """Add the event's crossing to its person-day of ``repeat_crossings``: exact by itself
        (the person-day holds the crossings it includes), whatever the window's state says.
        Returns why it cannot (a pseudonym of an epoch not begun: RepeatRules.begun), having
        changed nothing."""
        seen = repeat.sighting(clean, self.repeat_rules)
        if seen is None:
            return None  # no pseudonym
        if not self.repeat_rules.begun(seen.epoch, now):
            return f"pseudonyms.{self.repeat_rules.purpose}.{repeat.FIELD}: an epoch not begun"
        if self.repeat_rules.closed(seen.epoch, now):
            return None  # a day already published (its state may be gone)
        stored = self.repeat_days.get(partition, seen.name)
        before, policy = stored if stored else (None, "")
        after = repeat.record(before, seen.crossing)
        if after is not None:
            self.repeat_days.put(partition, seen.name, after, newest_version(policy, clean.policy))
        return None


def _rewrite_if_failed(written: Written, settled: asyncio.Future[None]) -> None:
    """A batch's writes did not all reach Kafka (failed or cancelled, even before they
    started), though the state holds its counts: its re-read (Lanes) finds them counted and
    changes nothing, so the next changelog write carries these keys again."""
    if settled.cancelled() or settled.exception() is not None:
        for rewrite_later, keys in written:
            rewrite_later(keys)
