"""The aggregator: clean events -> per (site, window) state, exact under replays and crashes.

Exactness (docs/aggregation.md): a window's counts and the raw offsets they include live in
one table value, written once per batch (one changelog record); the batch is acknowledged —
its partition's watermark moves — only once those records are in Kafka, and Faust flushes
the producer before it commits. After a crash every clean event is either in the restored
state (and recognised when delivered again) or delivered again (and counted). The publisher
(``hito.pipeline.agents.publish``) writes the windows to InfluxDB.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import ValidationError

from hito.pipeline.dead_letters import DeadLetters, Origin
from hito.pipeline.delivery import Deliveries
from hito.pipeline.faust.lane import Record
from hito.pipeline.metrics import LabelledChildren, PipelineMetrics
from hito.pipeline.output import Send
from hito.pipeline.raw_origin import raw_origin
from hito.pipeline.sinks.influx import InfluxSink
from hito.pipeline.stages import aggregate, repeat
from hito.pipeline.stages.outcomes import Rejected
from hito.pipeline.stages.repeat import RepeatRules
from hito.pipeline.stages.windows import format_start, window_start
from hito.pipeline.state.pipeline_counts import Cells, PipelineCounts
from hito.pipeline.state.repeat_days import RepeatDays
from hito.pipeline.state.versioned import VersionedWindows
from hito.schemas.clean import CleanEvent
from hito.schemas.reasons import Reason

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowRules:
    window_s: int
    allowed_lateness_s: int

    @property
    def horizon(self) -> timedelta:
        """How long after its start a window is kept once written (twice the lateness)."""
        return timedelta(seconds=self.window_s + 2 * self.allowed_lateness_s)


@dataclass(eq=False, kw_only=True)
class Aggregator:
    """State and collaborators of one worker's aggregate agent (``handle_batch`` is the agent's
    body: one lane batch, the records of one clean partition, one outcome per record)."""

    rules: WindowRules
    windows: VersionedWindows
    counts: PipelineCounts
    repeat_days: RepeatDays  # per-person days of repeat_crossings
    repeat_rules: RepeatRules
    sink: InfluxSink  # read for back-pressure only: the publisher writes
    send: Send
    dead_letters: DeadLetters
    metrics: PipelineMetrics
    clock: Callable[[], datetime]

    def __post_init__(self) -> None:
        self._crossings = LabelledChildren(self.metrics.crossings)  # (site, direction)

    async def handle_batch(self, records: Sequence[Record]) -> list[str]:
        if not self.sink.healthy:
            # Back-pressure: while InfluxDB fails, consumption pauses between retries.
            await self.sink.wait_ready()
        if not records:
            return []
        now = self.clock()
        partition = records[0].partition
        deliveries = Deliveries(self.send)
        outcomes = [await self._count(record, now, deliveries) for record in records]
        cells: Cells = Counter((aggregate.STAGE, outcome) for outcome in outcomes)
        self.counts.add(partition, now, cells)
        if self.windows.eviction_due():
            await self.windows.evict(deliveries, partition, now - self.rules.horizon)
            await self.counts.windows.evict(deliveries, partition, now - self.rules.horizon)
            # Days the publisher has written: their per-person state goes now.
            await self.repeat_days.delete_published(deliveries, partition)
        await self.windows.write_changelog(deliveries)
        await self.repeat_days.write_changelog(deliveries)
        await self.counts.windows.write_changelog(deliveries)
        for refused in await deliveries.wait():
            self.dead_letters.refused(refused)
        return outcomes

    async def _count(self, record: Record, now: datetime, deliveries: Deliveries) -> str:
        data = record.value or b""
        origin = Origin(record.topic, record.partition, record.offset, record.key)
        raw = raw_origin(record)
        try:
            clean = CleanEvent.model_validate_json(data)
        except ValidationError:
            clean = None
        if clean is None or raw is None:
            detail = "not a clean event" if clean is None else "no raw origin header"
            rejected = Rejected(Reason.SCHEMA_VIOLATION, detail, stage=aggregate.STAGE)
            await self.dead_letters.reject(deliveries, rejected, data, origin)
            return Reason.SCHEMA_VIOLATION.value
        start = window_start(clean.event_time, self.rules.window_s)
        closed_for = now - start - timedelta(seconds=self.rules.window_s)
        if closed_for > timedelta(seconds=self.rules.allowed_lateness_s):
            self.metrics.late_events.labels(site=clean.site).inc()
            detail = (
                f"window {format_start(start)} closed more than "
                f"{self.rules.allowed_lateness_s} s ago"
            )
            rejected = Rejected(
                Reason.LATE_BEYOND_WINDOW, detail, clean.device_id, stage=aggregate.STAGE
            )
            await self.dead_letters.reject(deliveries, rejected, data, origin)
            return Reason.LATE_BEYOND_WINDOW.value
        self._sight(clean, record.partition, now)
        name = aggregate.window_name(clean.site, start)
        state = self.windows.get(record.partition, name)
        if state is None:
            state = aggregate.new_state(clean.site, start)
        if not aggregate.add(state, clean, raw):
            return "duplicate"
        self.windows.put(record.partition, name, state)
        if clean.source == "checkpoint":
            self._crossings(clean.site, str(clean.payload["direction"])).inc()
        return "counted"

    def _sight(self, clean: CleanEvent, partition: int, now: datetime) -> None:
        """Add the event's crossing to its person-day of ``repeat_crossings``: exact by itself
        (the person-day holds the crossings it includes), whatever the window's state says."""
        seen = repeat.sighting(clean, self.repeat_rules)
        if seen is None or self.repeat_rules.closed(seen.epoch, now):
            return  # no pseudonym, or a day already published (its state may be gone)
        stored = self.repeat_days.get(partition, seen.name)
        before, policy = stored if stored else (None, "")
        after = repeat.record(before, seen.crossing)
        if after is not None:
            self.repeat_days.put(partition, seen.name, after, max(policy, clean.policy))
