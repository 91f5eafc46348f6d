"""The ``pipeline`` measurement: events per stage and outcome, per minute, in InfluxDB.

Counts live in a Faust table keyed by ``<partition>|<minute>`` (the minute the record was
*processed*: a minute is only ever counted while it is current, so evicting old minutes can
never restart one from zero — keyed by the record's own timestamp, a backlog older than the
eviction horizon did exactly that and overwrote a full count with a small one) and are written
like the data windows: whole, keyed by window start, re-written as they grow. The point carries
a ``partition`` tag besides SPEC.md's ``stage`` and ``outcome``: each partition's counts are
owned by one worker at a time, so two workers never overwrite each other's point; dashboards
sum over partitions.

Unlike the data measurements these are at-least-once: a record processed again after a crash
(its offset not yet committed) is counted again. They describe the work done, which includes
that re-processing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hito.pipeline.sinks.lines import line

MEASUREMENT = "pipeline"


def window_key(partition: int, timestamp_s: float, window_s: int) -> tuple[str, str]:
    """(table key, window start as text) for a processing time."""
    ts = int(timestamp_s)
    start = datetime.fromtimestamp(ts - ts % window_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{partition}|{start}", start


def count(
    table: Any, partition: int, processed_at: datetime, window_s: int, stage: str, outcome: str
) -> None:
    """Add one event to the current minute (see :func:`count_many`)."""
    count_many(table, partition, processed_at, window_s, Counter({(stage, outcome): 1}))


def count_many(
    table: Any,
    partition: int,
    processed_at: datetime,
    window_s: int,
    cells: Mapping[tuple[str, str], int],
) -> None:
    """Add a batch's events, by (stage, outcome), to the current minute: one table write, so it
    must run on behalf of an event whose partition is ``partition`` (streams/acks.py)."""
    key, start = window_key(partition, processed_at.timestamp(), window_s)
    state = table.get(key) or {"partition": partition, "start": start, "version": 0, "counts": {}}
    counts = state["counts"]
    for (stage, outcome), n in cells.items():
        cell = f"{stage}|{outcome}"
        counts[cell] = counts.get(cell, 0) + n
    state["version"] += 1
    table[key] = state


def points(state: dict[str, Any]) -> list[str]:
    when = datetime.strptime(state["start"], "%Y-%m-%dT%H:%M:%S%z")
    out = []
    for cell, n in sorted(state["counts"].items()):
        stage, outcome = cell.split("|", 1)
        tags = {"stage": stage, "outcome": outcome, "partition": str(state["partition"])}
        out.append(line(MEASUREMENT, tags, {"count": n}, when))
    return out


def pending(table: Any, owned: set[int], written: dict[str, int]) -> dict[str, int]:
    """Windows of owned partitions whose version InfluxDB does not have yet."""
    return {
        key: state["version"]
        for key, state in list(table.items())
        if state["partition"] in owned and written.get(key) != state["version"]
    }


def evict(table: Any, written: dict[str, int], partition: int, before: datetime) -> None:
    """Forget this partition's windows older than ``before`` once InfluxDB has them."""
    cutoff = before.strftime("%Y-%m-%dT%H:%M:%SZ")
    for key, state in list(table.items()):
        if (
            state["partition"] == partition
            and state["start"] < cutoff
            and written.get(key) == state["version"]
        ):
            del table[key]
            written.pop(key, None)
