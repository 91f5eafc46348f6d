"""Stage ``aggregate``: clean events -> per (site, window) aggregates, exact under replays.

The state of one window of one site is a JSON-ready dict holding the counts *and* the
``(device_id, seq)`` pairs already counted (as ranges, so it stays small). Both change in the
same table write, so one changelog record carries them together: after a crash or rebalance,
re-delivered events are recognised and never counted twice, and events whose count was lost
are counted again. See docs/aggregation.md.
"""

from __future__ import annotations

import bisect
import sys
from datetime import datetime
from typing import Any

from hito.pipeline.stages.windows import format_start
from hito.schemas.clean import CleanEvent, CleanValue

STAGE = "aggregate"
# Upper edges (seconds) of the processing-time histogram; percentiles are reported as the
# upper edge of the bucket they fall in (never under-stated).
WAIT_EDGES: tuple[float, ...] = (
    5,
    10,
    15,
    20,
    30,
    45,
    60,
    90,
    120,
    180,
    240,
    300,
    450,
    600,
    900,
    1200,
    1800,
    3600,
    float("inf"),
)

State = dict[str, Any]


def window_name(site: str, start: datetime) -> str:
    """A site's window, as named in the window table (``<site>|<window start>``)."""
    return f"{site}|{format_start(start)}"


def new_state(site: str, start: datetime) -> State:
    return {
        "site": site,
        "start": format_start(start),
        "version": 0,
        "policy": "",
        "seen": {},
        "crossings": {},
        "nationality": {},
        "wait": {},
        "sensor": {},
        "drone": {},
    }


def seen_ranges(state: State, device_id: str) -> list[list[int]]:
    """The device's counted ``seq`` numbers in this window, as sorted disjoint ``[lo, hi]``.

    A window holds one entry per device that sent in it. Most devices' numbers form a single
    range, stored as the text ``"lo-hi"`` (a third of the memory of nested lists, which were
    most of a window's size at a million devices); a device with gaps keeps a list of ranges,
    so that each event costs a bisection, not a re-parse. Text of several ranges
    (``"lo-hi,lo-hi"``) is read too."""
    stored = state["seen"].get(device_id)
    if not stored:
        return []
    if isinstance(stored, list):
        return [list(r) for r in stored]
    return _parse(stored)


def _parse(text: str) -> list[list[int]]:
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.append([int(lo), int(hi)])
    return out


def already_counted(state: State, device_id: str, seq: int) -> bool:
    stored = state["seen"].get(device_id)
    if not stored:
        return False
    ranges = _parse(stored) if isinstance(stored, str) else stored
    i = bisect.bisect_right(ranges, [seq, float("inf")]) - 1
    return i >= 0 and ranges[i][0] <= seq <= ranges[i][1]


def _mark_counted(state: State, device_id: str, seq: int) -> None:
    seen = state["seen"]
    stored = seen.get(device_id)
    if not stored:
        seen[device_id] = f"{seq}-{seq}"
        return
    if isinstance(stored, str):
        ranges = _parse(stored)
        if len(ranges) == 1:  # the common case: extend the single range
            lo, hi = ranges[0]
            if seq == hi + 1:
                seen[device_id] = f"{lo}-{seq}"
                return
            if seq == lo - 1:
                seen[device_id] = f"{seq}-{hi}"
                return
    else:
        ranges = stored  # changed in place
    i = bisect.bisect_right(ranges, [seq, float("inf")])
    ranges.insert(i, [seq, seq])
    # Merge with neighbours: an in-order stream keeps a single range per device.
    if i + 1 < len(ranges) and ranges[i + 1][0] == seq + 1:
        ranges[i][1] = ranges.pop(i + 1)[1]
    if i > 0 and ranges[i - 1][1] == seq - 1:
        ranges[i - 1][1] = ranges.pop(i)[1]
    seen[device_id] = f"{ranges[0][0]}-{ranges[0][1]}" if len(ranges) == 1 else ranges


def add(state: State, event: CleanEvent) -> bool:
    """Count the event into the window's state (in place). False when it was counted before."""
    # Interned: the window's entry shares the registry's device_id string (streams/devices.py)
    # instead of holding a copy per device per window.
    device_id = sys.intern(event.device_id)
    if already_counted(state, device_id, event.seq):
        return False
    _mark_counted(state, device_id, event.seq)
    state["version"] += 1
    state["policy"] = max(state["policy"], event.policy)
    p = event.payload
    if event.source == "checkpoint":
        d = p["direction"]
        _inc(state["crossings"], f"{d}|{p['mode']}|{p['outcome']}")
        _inc(state["nationality"], f"{d}|{p['nationality']}")
        wait = state["wait"].setdefault(
            f"{d}|{p['mode']}", {"n": 0, "max": 0.0, "b": [0] * len(WAIT_EDGES)}
        )
        seconds = _num(p["processing_seconds"])
        wait["n"] += 1
        wait["max"] = max(wait["max"], seconds)
        wait["b"][bisect.bisect_left(WAIT_EDGES, seconds)] += 1
    elif event.source == "sensor":
        cell = state["sensor"].setdefault(
            f"{p['sensor_type']}|{p['geohash']}",
            {"detections": 0, "readings": 0, "value_sum": 0.0, "values": 0},
        )
        cell["detections"] += int(_num(p["detections"]))
        cell["readings"] += 1
        if p.get("value") is not None:
            cell["value_sum"] += _num(p["value"])
            cell["values"] += 1
    else:
        cell = state["drone"].setdefault(
            str(p["geohash"]),
            {"detections": 0, "fixes": 0, "alt_sum": 0.0, "battery_min": 100.0},
        )
        cell["detections"] += int(_num(p["detections"]))
        cell["fixes"] += 1
        cell["alt_sum"] += _num(p["alt_m"])
        cell["battery_min"] = min(cell["battery_min"], float(p["battery_pct"]))  # type: ignore[arg-type]
    return True


def _num(value: CleanValue) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _inc(cells: dict[str, int], key: str) -> None:
    cells[key] = cells.get(key, 0) + 1


def percentile(buckets: list[int], q: float) -> float:
    """Upper edge of the bucket holding the q-quantile (q in (0, 1])."""
    n = sum(buckets)
    rank = max(1, int(-(-q * n // 1)))  # ceil(q * n)
    seen = 0
    for edge, count in zip(WAIT_EDGES, buckets, strict=True):
        seen += count
        if seen >= rank:
            return edge
    return WAIT_EDGES[-1]
