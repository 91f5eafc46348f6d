"""The window archive: every closed window's full counts in InfluxDB, for revisions.

A checkpoint terminal back from a two-hour outage, or a drone log uploaded after landing,
brings events whose windows closed long ago. The worker keeps only the last minutes of
windows in its table (``VersionedWindows``); every older window lives, whole, in the bucket
``<bucket>-archive`` (one point per site and window start, the state as JSON: counts, small
cells included, and the raw-offset marks). A late event's window is read back from there, the
event is counted into it as into a live window, and the window is published and archived
again (docs/aggregation.md, "Backfill").

Invariants:

- A window leaves the table only once InfluxDB holds its last version in both buckets
  (:meth:`WindowArchive.evictable`): every event counted into a window within the backfill
  horizon is in the table, or in the archive, or both.
- The archive is written only after the public points of the same version (``due``): a
  crash between the two leaves the archive one version behind, and the events of that
  version are still either in the table's changelog or not yet committed (counted again,
  onto the archive's older state, from the same raw offsets: the same result).
- A window read back carries its raw-offset marks, so an event counted before it was
  archived is recognised as counted (a replay, a redelivery after a crash), exactly as in
  a live window.
- Memory: what the worker holds for revisions is the windows being revised right now, at most
  ``REVISING_MAX`` (the aggregator waits for the publisher beyond that), whatever the horizon.

The archive is keyed by site and window start only (not by partition): the clean topics are
co-partitioned, so a site's windows are always in one partition of the table, and a change of
partition count leaves the archive valid.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from hito.pipeline.state.versioned import VersionedWindows, partition_of, table_key

State = dict[str, Any]

# Windows held for revisions at once, per worker: about as many as the live windows of 50
# sites (12 minutes each). A busy minute's state is 4.4 KB as JSON and about 18 KB as Python
# objects (bench/state_rss.py: 2,600 windows, 46.7 MB), so 600 are about 11 MB; a backlog of
# more minutes goes through 600 at a time, each lot written and archived before the next.
REVISING_MAX = 600

ArchiveQuery = Callable[[list[str], datetime, datetime], Awaitable[dict[str, str]]]
"""(sites, first window start, last window start) -> {window name: archived state (JSON)}."""


@dataclass(eq=False)
class WindowArchive:
    query: ArchiveQuery
    # table key -> the version the archive holds (known to this process; after a restart
    # every closed window in the table is archived again: idempotent).
    archived: dict[str, int] = field(default_factory=dict)
    # table key -> the archived JSON a revision started from, until its first publication:
    # what InfluxDB shows for the window, so that only series suppression now hides are
    # deleted (the minute's surge point and the rest stay).
    loaded: dict[str, str] = field(default_factory=dict)
    # table keys of windows older than the live ones, held for a revision until evicted.
    revising: set[str] = field(default_factory=set)

    async def load(
        self, windows: VersionedWindows, partition: int, wanted: dict[str, tuple[str, datetime]]
    ) -> None:
        """Put into the table the archived state of each wanted window (name -> (site,
        start)) that the archive has; the others are new windows. Raises the sink's
        RetryableSinkError or PermanentSinkError."""
        if not wanted:
            return
        starts = [start for _, start in wanted.values()]
        found = await self.query(
            sorted({site for site, _ in wanted.values()}), min(starts), max(starts)
        )
        for name in wanted:
            key = table_key(partition, name)
            self.revising.add(key)
            text = found.get(name)
            if text is None:
                continue
            state: State = orjson.loads(text)
            windows.restore(partition, name, state)
            self.archived[key] = state["version"]
            self.loaded[key] = text

    def due(self, windows: VersionedWindows, owned: set[int], closed_before: str) -> dict[str, int]:
        """Windows of ``owned`` partitions closed to live events (start before
        ``closed_before``) whose version InfluxDB's public bucket has and the archive not."""
        return {
            key: state["version"]
            for key, state in windows.owned(owned)
            if state["start"] < closed_before
            and self.archived.get(key) != state["version"]
            and windows.written.get(key) == state["version"]
        }

    def mark_archived(self, versions: dict[str, int]) -> None:
        self.archived.update(versions)

    def evictable(self, key: str, state: State) -> bool:
        version: int = state["version"]
        return self.archived.get(key) == version

    def previously_published(self, key: str) -> State | None:
        """The state InfluxDB showed for a window loaded from the archive (once)."""
        text = self.loaded.pop(key, None)
        return None if text is None else orjson.loads(text)

    def forget(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.archived.pop(key, None)
            self.loaded.pop(key, None)
            self.revising.discard(key)

    def retain(self, owned: set[int]) -> None:
        """Forget windows of partitions this worker no longer owns (their new owner loads
        them again if it needs them)."""
        gone = [key for key in self.revising | set(self.archived) if partition_of(key) not in owned]
        self.forget(gone)
