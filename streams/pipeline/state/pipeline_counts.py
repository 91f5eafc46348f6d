"""The ``pipeline`` measurement: events per stage and outcome, per minute, in InfluxDB.

Counts live in a Faust table of versioned windows (``hito.pipeline.state.versioned``) named by
the minute the records were *processed*: a minute is only ever counted while it is current, so
evicting old minutes can never restart one from zero (keyed by the record's own timestamp, a
backlog older than the eviction horizon did exactly that and overwrote a full count with a
small one). Minutes are written like the data windows: whole, keyed by window start, re-written
as they grow. The point carries a ``partition`` tag besides SPEC.md's ``stage`` and
``outcome``: each partition's counts are owned by one worker at a time, so two workers never
overwrite each other's point; dashboards sum over partitions.

Unlike the data measurements these are at-least-once: a record processed again after a crash
(its offset not yet committed) is counted again. They describe the work done, which includes
that re-processing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime

from hito.pipeline.sinks.lines import line
from hito.pipeline.stages.windows import format_start, parse_start, window_start
from hito.pipeline.state.versioned import State, VersionedWindows

MEASUREMENT = "pipeline"
Cells = Counter[tuple[str, str]]  # (stage, outcome) -> events


class PipelineCounts:
    def __init__(self, windows: VersionedWindows, window_s: int) -> None:
        self.windows = windows
        self.window_s = window_s

    def add(
        self,
        partition: int,
        processed_at: datetime,
        cells: Mapping[tuple[str, str], int],
    ) -> None:
        """Add a batch's events of ``partition`` to the current minute (one changelog record
        per minute and batch: VersionedWindows.write_changelog)."""
        if not cells:
            return
        start = format_start(window_start(processed_at, self.window_s))
        state = self.windows.get(partition, start) or {"start": start, "version": 0, "counts": {}}
        counts = state["counts"]
        for (stage, outcome), n in cells.items():
            cell = f"{stage}|{outcome}"
            counts[cell] = counts.get(cell, 0) + n
        state["version"] += 1
        self.windows.put(partition, start, state)


def points(partition: int, state: State) -> list[str]:
    """The ``pipeline`` points of one partition's minute."""
    when = parse_start(state["start"])
    out = []
    for cell, n in sorted(state["counts"].items()):
        stage, outcome = cell.split("|", 1)
        tags = {"stage": stage, "outcome": outcome, "partition": str(partition)}
        out.append(line(MEASUREMENT, tags, {"count": n}, when))
    return out
