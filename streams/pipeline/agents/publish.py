"""The publisher: owned windows, pipeline counts and surge scores -> InfluxDB, every tick.

Each flush writes whatever InfluxDB does not have yet, in one batch, under the one failure
policy of ``hito.pipeline.sinks.errors`` (retryable: stay pending, try again next tick;
permanent: dead-letter as ``sink_rejected`` and count done). Writes are idempotent (points are
keyed by window start), so writing a window again after a restart is harmless.

Closed windows are also archived whole, after their public points (hito.pipeline.state
.archive); an archive write is never dead-lettered: a window InfluxDB has not archived stays
in the table, and a refusal is retried (and counted in ``hito_sink_errors_total``, which
pages) until it is fixed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import reduce

from hito.pipeline.agents.surge import SurgeDetector
from hito.pipeline.dead_letters import DeadLetters, Origin
from hito.pipeline.delivery import Deliveries
from hito.pipeline.output import Send
from hito.pipeline.sinks.errors import (
    Outcome,
    PermanentSinkError,
    RetryableSinkError,
    write_or_dead_letter,
)
from hito.pipeline.sinks.influx import InfluxSink
from hito.pipeline.sinks.lines import (
    archive_line,
    points_for,
    repeat_points,
    series_predicate,
    window_predicates,
)
from hito.pipeline.stages import repeat
from hito.pipeline.stages.outcomes import Rejected
from hito.pipeline.stages.repeat import RepeatRules
from hito.pipeline.stages.windows import WindowRules, format_start, parse_start
from hito.pipeline.state import pipeline_counts
from hito.pipeline.state.archive import WindowArchive
from hito.pipeline.state.pipeline_counts import PipelineCounts
from hito.pipeline.state.repeat_days import RepeatDays
from hito.pipeline.state.versioned import VersionedWindows, partition_of
from hito.schemas.privacy.policy import newest_version
from hito.schemas.reasons import Reason

log = logging.getLogger(__name__)
# Surge points not written yet (InfluxDB down): old scores matter less than memory, so the
# oldest go first past this many (logged).
SURGE_BACKLOG_MAX = 10_000
# A rebalance, recovery included, takes seconds to a minute or two: past this, say so.
REBALANCE_LONG = timedelta(minutes=5)


@dataclass
class RecoveryHold:
    """Whether the tables are being read back for a new assignment: from the assignment of a
    rebalance (``assigned()``, on Faust's ``on_partitions_assigned``) to the rebalance's end
    (Faust's ``app.rebalancing`` cleared once recovery is done).

    Not from the rebalance's start: its revoke phase waits for the batch an agent has in
    hand, and an aggregator batch may be waiting for the publisher to archive windows (room
    for revisions); holding the publisher then would hold the rebalance for good. The tables
    are whole until the assignment."""

    rebalancing: Callable[[], bool]
    _assigned: bool = False

    def assigned(self) -> None:
        self._assigned = True

    def __call__(self) -> bool:
        if not self.rebalancing():
            self._assigned = False
        return self._assigned


@dataclass(eq=False, kw_only=True)
class Publisher:
    sink: InfluxSink
    windows: VersionedWindows
    archive: WindowArchive
    rules: WindowRules
    counts: PipelineCounts
    detector: SurgeDetector
    send: Send
    dead_letters: DeadLetters
    small_count_k: int
    clock: Callable[[], datetime]
    repeat_days: RepeatDays
    repeat_rules: RepeatRules
    on_day_published: Callable[[str], None] = lambda site: None
    # True while a rebalance's new assignment is being recovered (RecoveryHold).
    rebalancing: Callable[[], bool] = lambda: False
    # A fault hook for tests (HITO_TEST_PAUSE_AFTER_CLEAR_S): a pause between a flush's
    # deletes and its writes, where a stop must not cut it (worker.py waits for the flush).
    pause_after_clear_s: float | None = None
    # window key -> the series written for it (a cell suppression hides must be deleted)
    published: dict[str, set[str]] = field(default_factory=dict, init=False)
    surge_backlog: list[str] = field(default_factory=list, init=False)
    # The partitions owned at the last scan of repeat_crossings' days (None: never scanned).
    repeat_scanned_for: set[int] | None = field(default=None, init=False)
    # Since when ticks wait for a rebalance to end (and when that was last logged).
    held_since: datetime | None = field(default=None, init=False)
    held_warned: datetime = field(default=datetime.min.replace(tzinfo=UTC), init=False)

    async def flush(self, owned: set[int]) -> None:
        """One tick: windows (public, then the archive), then pipeline counts, surge scores
        and closed days of repeat_crossings of owned partitions.

        Nothing while a new assignment is being recovered (:class:`RecoveryHold`): the tables of a
        partition taken over are being read back from their changelogs (Faust's memory store applies
        them in batches, and keeps keys this worker wrote before the partition left), so a tick
        would publish from a partial or stale state. Before, a takeover by a running worker could
        archive its own older copy of a window over the version another worker had archived, and
        scan a closed day of repeat_crossings from some of its people only, overwriting the
        published counts with smaller ones (the assignor names the partitions at the rebalance's
        start, before their recovery)."""
        if self.rebalancing():
            now = self.clock()
            self.held_since = self.held_since or now
            if now - self.held_since > REBALANCE_LONG and now - self.held_warned > REBALANCE_LONG:
                self.held_warned = now
                log.warning(
                    "nothing published for %s: the rebalance has not ended", now - self.held_since
                )
            return
        self.held_since = None
        self.archive.retain(owned)
        await self.flush_windows(owned)
        await self.flush_archive(owned)
        await self.flush_counts(owned)
        await self.flush_surge(owned)
        await self.flush_repeat(owned)

    async def flush_windows(self, owned: set[int]) -> Outcome | None:
        if not self.sink.ready():
            return None
        pending = self.windows.pending(owned)
        if not pending:
            return None
        states = {key: self.windows.state(key) for key in pending}
        by_window = {key: points_for(state, self.small_count_k) for key, state in states.items()}
        series = {key: _series(lines) for key, lines in by_window.items()}

        async def clear_stale() -> None:
            # Suppression can stop publishing a cell: its old point must go, or sums double
            # it. A window this process has not written yet may have stale points from an
            # earlier process: clear the site's window measurements at that time first (only
            # those: the minute's surge point and a day's repeat_crossings point stay).
            cleared = False
            for key, new in series.items():
                start = parse_start(states[key]["start"])
                if key not in self.published and (before := self.archive.previously_published(key)):
                    # Read back from the archive for a revision: InfluxDB shows exactly its
                    # archived state, so only what suppression hides now must go (the
                    # minute's surge point and the other measurements stay).
                    self.published[key] = _series(points_for(before, self.small_count_k))
                if key not in self.published:
                    await self.sink.delete(start, window_predicates(states[key]))
                    cleared = True
                elif stale := self.published[key] - new:
                    await self.sink.delete(start, [series_predicate(s) for s in sorted(stale)])
                    cleared = True
            if cleared and self.pause_after_clear_s is not None:
                log.warning("test hook: %s s between deletes and writes", self.pause_after_clear_s)
                await asyncio.sleep(self.pause_after_clear_s)

        outcome, _ = await self._write(by_window, f"{len(pending)} windows", first=clear_stale)
        if outcome is not Outcome.DEFERRED:
            self.windows.mark_written(pending)
            self.published.update(series)
            for key in [k for k in self.published if self.windows.writer.get(k) is None]:
                del self.published[key]  # evicted since
        return outcome

    async def flush_archive(self, owned: set[int]) -> Outcome | None:
        """Archive every closed window whose public points are written and whose version the
        archive lacks (one batch). A refusal keeps them pending: a window leaves the table
        only once archived, so nothing is ever counted onto less than was published."""
        if not self.sink.ready():
            return None
        closed = self.clock() - timedelta(
            seconds=self.rules.window_s + self.rules.allowed_lateness_s
        )
        due = self.archive.due(self.windows, owned, format_start(closed))
        # A window beyond the backfill horizon takes no event any more: nothing will revise it,
        # so it needs no archive (and InfluxDB refuses points past the archive's retention,
        # for ever: that one batch held every later window, none could be evicted, and the
        # aggregator stopped once too many waited for a revision). It may leave as archived.
        final = format_start(self.clock() - self.rules.revisable_for)
        beyond = {key: v for key, v in due.items() if self.windows.state(key)["start"] < final}
        if beyond:
            log.warning("%d windows beyond the backfill horizon left unarchived", len(beyond))
            self.archive.mark_archived(beyond)
            due = {key: v for key, v in due.items() if key not in beyond}
        if not due:
            return None
        lines = [archive_line(self.windows.state(key)) for key in due]
        try:
            await self.sink.write(lines, archive=True)
        except RetryableSinkError as exc:
            log.warning("archive of %d windows deferred: %s", len(due), exc)
            return Outcome.DEFERRED
        except PermanentSinkError as exc:
            log.error("InfluxDB refused to archive %d windows (kept, retried): %s", len(due), exc)
            return Outcome.DEFERRED
        self.archive.mark_archived(due)
        return Outcome.WRITTEN

    async def flush_counts(self, owned: set[int]) -> Outcome | None:
        if not self.sink.ready():
            return None
        pending = self.counts.windows.pending(owned)
        if not pending:
            return None
        counts = self.counts.windows
        by_minute = {
            key: pipeline_counts.points(partition_of(key), counts.state(key)) for key in pending
        }

        outcome, _ = await self._write(by_minute, f"{len(pending)} minutes of pipeline counts")
        if outcome is not Outcome.DEFERRED:
            self.counts.windows.mark_written(pending)
        return outcome

    async def flush_surge(self, owned: set[int]) -> Outcome | None:
        """Score the minutes that just completed at owned sites; write their ``surge`` points."""
        if not self.sink.ready():
            return None
        mine = [state for _, state in self.windows.owned(owned)]
        self.detector.forget(self.detector.loaded - {str(state["site"]) for state in mine})
        self.surge_backlog.extend(await self.detector.score_completed(mine, self.clock()))
        if not self.surge_backlog:
            return None
        backlog = list(self.surge_backlog)
        by_minute: dict[str, list[str]] = {}  # a refusal narrows down to a minute's scores
        for point in backlog:
            by_minute.setdefault(f"surge at {point.rsplit(' ', 1)[-1]}", []).append(point)
        outcome, _ = await self._write(by_minute, f"{len(backlog)} surge points")
        if outcome is Outcome.DEFERRED:
            if len(self.surge_backlog) > SURGE_BACKLOG_MAX:
                dropped = len(self.surge_backlog) - SURGE_BACKLOG_MAX
                log.error("InfluxDB unreachable: %d oldest surge points given up", dropped)
                del self.surge_backlog[:dropped]
        else:
            del self.surge_backlog[: len(backlog)]
        return outcome

    async def flush_repeat(self, owned: set[int]) -> Outcome | None:
        """Write every closed day of repeat_crossings not written yet (once: a closed day no
        longer changes); the aggregate agent deletes their per-person state afterwards."""
        now = self.clock()
        rules = self.repeat_rules
        # A scan reads every person-day: only when a day may have closed, or the partitions
        # owned changed (their days are unknown here), never more than once per scan_every_s.
        closing = any(rules.closed(epoch, now) for epoch in self.repeat_days.epochs)
        if owned == self.repeat_scanned_for and not closing:
            return None
        if not self.sink.ready() or not self.repeat_days.scan_due():
            return None
        self.repeat_scanned_for = set(owned)
        days, marked = self.repeat_days.days(owned)
        todo = {day: people for day, people in days.items() if day not in marked}
        todo = {
            day: people for day, people in todo.items() if day not in self.repeat_days.published
        }
        self.repeat_days.epochs = {epoch for _, _, epoch in todo}
        due = {day: people for day, people in todo.items() if rules.closed(day[2], now)}
        if not due:
            return None
        key_of = {day: f"repeat {day[1]} epoch {day[2]}" for day in due}
        by_day = {
            key_of[day]: repeat_points(
                day[1],
                rules.day_start(day[2]),
                repeat.day_cells(crossings for crossings, _ in people),
                reduce(newest_version, (policy for _, policy in people), "") or "unknown",
                rules.k,
            )
            for day, people in sorted(due.items())
        }
        outcome, refused = await self._write(by_day, f"{len(due)} days of repeat_crossings")
        if outcome is not Outcome.DEFERRED:
            self.repeat_days.published |= set(due)
            # Not a reassignment: the aggregate agent may have added a new day's epoch while
            # this write awaited (a closed epoch gets no new records).
            self.repeat_days.epochs -= {day[2] for day in due}
            for day in due:
                if key_of[day] not in refused:  # a refused day is in the DLQ, not published
                    self.on_day_published(day[1])
        return outcome

    async def _write(
        self,
        lines_by_key: dict[str, list[str]],
        what: str,
        first: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[Outcome, set[str]]:
        """Write every key's lines in one batch (after ``first``), under the failure policy:
        the keys a permanent refusal is narrowed down to are dead-lettered, each as
        ``sink_rejected`` with its lines, and the others written. Returns the outcome and the
        keys dead-lettered."""
        dead: set[str] = set()

        async def write(keys: Sequence[str]) -> None:
            await self.sink.write([ln for key in keys for ln in lines_by_key[key]])

        async def dead_letter(refused: list[tuple[str, PermanentSinkError]]) -> None:
            deliveries = Deliveries(self.send)
            for key, exc in refused:
                rejected = Rejected(
                    Reason.SINK_REJECTED, f"HTTP {exc.status} for {key}", None, stage="sink"
                )
                original = "\n".join(lines_by_key[key]).encode()
                await self.dead_letters.reject(deliveries, rejected, original, Origin("influxdb"))
                dead.add(key)
            for refused_send in await deliveries.wait():
                self.dead_letters.refused(refused_send)

        outcome = await write_or_dead_letter(
            list(lines_by_key), write, what=what, dead_letter=dead_letter, before=first
        )
        return outcome, dead


def _series(lines: list[str]) -> set[str]:
    """The series (measurement and tags) of line-protocol points."""
    return {ln.split(" ", 1)[0] for ln in lines}
