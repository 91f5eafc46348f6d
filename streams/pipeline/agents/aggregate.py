"""The aggregator: clean events -> per (site, window) state, exact under replays and crashes.

Exactness (docs/aggregation.md): a window's counts and the ``(device_id, seq)`` pairs they
include live in one table value, changed by one write per batch; Faust flushes the producer
(changelogs included) before it commits offsets, so after a crash every clean event is either
in the restored state (and recognised when delivered again) or delivered again (and counted).
The publisher (``hito.pipeline.agents.publish``) writes the windows to InfluxDB.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from hito.pipeline.dead_letters import DeadLetters, Origin
from hito.pipeline.delivery import Deliveries
from hito.pipeline.faust.batches import last_event_per_partition
from hito.pipeline.metrics import LabelledChildren, PipelineMetrics
from hito.pipeline.output import Send
from hito.pipeline.sinks.influx import InfluxSink
from hito.pipeline.stages import aggregate, repeat
from hito.pipeline.stages.outcomes import Rejected
from hito.pipeline.stages.repeat import Crossings, RepeatRules
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
    body: a batch of clean events of any partitions, one outcome per event)."""

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

    async def handle_batch(self, events: Sequence[Any]) -> list[str]:
        """Count a batch into its windows; each window changed is written once, on behalf of
        an event of its partition (a site's events all come from one clean partition)."""
        if not self.sink.healthy:
            # Back-pressure: while InfluxDB fails, consumption pauses between retries.
            await self.sink.wait_ready()
        now = self.clock()
        changed: dict[tuple[int, str], tuple[Any, aggregate.State]] = {}
        people: dict[tuple[int, str], tuple[Any, Crossings, str]] = {}
        cells: defaultdict[int, Cells] = defaultdict(Counter)
        outcomes = []
        deliveries = Deliveries(self.send)
        for event in events:
            outcome = await self._count(event, now, changed, deliveries, people)
            cells[event.message.partition][(aggregate.STAGE, outcome)] += 1
            outcomes.append(outcome)
        for refused in await deliveries.wait():  # dead letters only
            self.dead_letters.refused(refused)
        for (partition, name), (event, state) in changed.items():
            # Counts and the events they include: one changelog record.
            self.windows.put(partition, name, state, event)
        for (partition, name), (event, crossings, policy) in people.items():
            # A person's crossings of the day and the events they are: one changelog record.
            self.repeat_days.put(partition, name, crossings, policy, event)
        evict = self.windows.eviction_due()
        for partition, event in last_event_per_partition(events).items():
            self.counts.add(partition, now, cells[partition], event)
            if evict:
                self.windows.evict(partition, now - self.rules.horizon, event)
                self.counts.windows.evict(partition, now - self.rules.horizon, event)
                # Days the publisher has written: their per-person state goes now.
                self.repeat_days.delete_published(partition, event)
        return outcomes

    async def _count(
        self,
        event: Any,
        now: datetime,
        changed: dict[tuple[int, str], tuple[Any, Any]],
        deliveries: Deliveries,
        people: dict[tuple[int, str], tuple[Any, Crossings, str]],
    ) -> str:
        data: bytes = event.value if isinstance(event.value, bytes) else b""
        message = event.message
        origin = Origin(message.topic, message.partition, message.offset, message.key)
        try:
            clean = CleanEvent.model_validate_json(data)
        except ValidationError:
            rejected = Rejected(Reason.SCHEMA_VIOLATION, "not a clean event", stage=aggregate.STAGE)
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
        partition = message.partition
        self._sight(clean, event, now, people)
        name = aggregate.window_name(clean.site, start)
        state = self.windows.get(partition, name)
        if state is None:
            state = aggregate.new_state(clean.site, start)
            # Into the table's store now (its changelog record follows at the end of the
            # batch), so the rest of the batch and the flush timer see one state object.
            self.windows.put(partition, name, state, event)
        if not aggregate.add(state, clean):
            return "duplicate"
        # The state object counted into is the one written, whatever the store holds by then.
        changed[(partition, name)] = (event, state)
        if clean.source == "checkpoint":
            self._crossings(clean.site, str(clean.payload["direction"])).inc()
        return "counted"

    def _sight(
        self,
        clean: CleanEvent,
        event: Any,
        now: datetime,
        people: dict[tuple[int, str], tuple[Any, Crossings, str]],
    ) -> None:
        """Add the event's crossing to its person-day of ``repeat_crossings``: exact by itself
        (the person-day holds the crossings it includes), whatever the window's state says."""
        seen = repeat.sighting(clean, self.repeat_rules)
        if seen is None or self.repeat_rules.closed(seen.epoch, now):
            return  # no pseudonym, or a day already published (its state may be gone)
        partition = event.message.partition
        key = (partition, seen.name)
        if key in people:
            before: Crossings | None = people[key][1]
            policy = people[key][2]
        else:
            stored = self.repeat_days.get(partition, seen.name)
            before, policy = stored if stored else (None, "")
        after = repeat.record(before, seen.crossing)
        if after is not None:
            people[key] = (event, after, max(policy, clean.policy))
