"""Stage ``aggregate``: clean events -> per (site, window) aggregates, exact under replays.

The state of one window of one site is a JSON-ready dict holding the counts *and*, per raw
partition, the highest raw offset whose event it counted (``hw``). Every clean event carries
where it came from — its raw topic, partition and offset (``RawOrigin``, a Kafka header set
by ingest) — and the events of one raw partition reach a window in raw-offset order, so an
event at or below the window's mark for its raw partition was counted before: a replay (docs/
aggregation.md, "Exactness without per-device state", has the argument). Counts and marks
change in the same table write, so one changelog record carries them together. A window's
state is bounded by the number of raw partitions, whatever the number of devices.
"""

from __future__ import annotations

import bisect
from datetime import datetime
from typing import Any

from hito.pipeline.stages.windows import format_start
from hito.schemas.clean import CleanEvent, CleanValue
from hito.schemas.envelope import SENSOR_VALUE_LIMIT
from hito.schemas.privacy.policy import newest_version

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
        "hw": {},
        "crossings": {},
        "nationality": {},
        "wait": {},
        "sensor": {},
        "drone": {},
    }


RawOrigin = tuple[str, int]
"""(``"<raw topic>|<partition>"``, raw offset): where a clean event's raw event was read."""


def counted_before(state: State, origin: RawOrigin) -> bool:
    source, offset = origin
    mark: int | None = state["hw"].get(source)
    return mark is not None and offset <= mark


# The payload fields each source's count reads: names (cell keys: text without "|") and
# numbers (summed: finite and bounded, so a minute's sums stay finite whatever comes).
_TEXT: dict[str, tuple[str, ...]] = {
    "checkpoint": ("direction", "mode", "outcome", "nationality"),
    "sensor": ("sensor_type", "geohash"),
    "drone": ("geohash",),
}
_NUMBERS: dict[str, tuple[str, ...]] = {
    "checkpoint": ("processing_seconds",),
    "sensor": ("detections",),
    "drone": ("detections", "alt_m", "battery_pct"),
}
_OPTIONAL_NUMBERS: dict[str, tuple[str, ...]] = {"sensor": ("value",)}
NUMBER_LIMIT = SENSOR_VALUE_LIMIT  # the largest magnitude any counted field may have
# The years a window's event time may have. Ingest's clock checks keep every event it makes
# within minutes of now; a clean event from anything else may carry any date pydantic reads
# (years 1 to 9999), and near those ends a window's start cannot be computed (OverflowError),
# while a time past 2262 is beyond InfluxDB's nanosecond timestamps, which refuses the whole
# write that holds it. By the year as written (its offset moves the instant by a day at most,
# far from both limits): 0.05 µs, where comparing aware datetimes took 0.55.
YEARS = range(2000, 2200)


def unfit(event: CleanEvent) -> str | None:
    """Why ``event``'s payload cannot be counted (a field missing, or not what the count
    needs), or None. Ingest's schemas guarantee all of it; this keeps a clean event that
    does not (written by anything else, or by an older version) from failing :func:`add`
    part-way, or from making a sum infinite, which would fail every later batch of its
    partition: it goes to the DLQ instead. Names only the field, never its value."""
    if event.event_time.year not in YEARS:
        return "event_time is outside the years 2000-2199"
    p = event.payload
    for name in _TEXT[event.source]:
        text = p.get(name)
        if not isinstance(text, str) or not text or "|" in text:
            return f"payload field {name} is not a name"
    for name in _NUMBERS[event.source]:
        if not _bounded(p.get(name)):
            return f"payload field {name} is not a bounded number"
    for name in _OPTIONAL_NUMBERS.get(event.source, ()):
        if p.get(name) is not None and not _bounded(p.get(name)):
            return f"payload field {name} is not a bounded number"
    return None


def _bounded(value: CleanValue) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and -NUMBER_LIMIT <= value <= NUMBER_LIMIT  # (NaN compares false)
    )


def add(state: State, event: CleanEvent, origin: RawOrigin, revised_at: int | None = None) -> bool:
    """Count the event into the window's state (in place). False when it was counted before.

    ``revised_at`` (Unix seconds) marks a revision: the window had closed beyond the allowed
    lateness, so the event is a backfill; the state keeps how many such events each source
    added (``revisions``) and when the last came (``revised_at``), for the ``revisions``
    measurement and ``hito status``."""
    if counted_before(state, origin):
        return False
    state["hw"][origin[0]] = origin[1]
    state["version"] += 1
    state["policy"] = newest_version(state["policy"], event.policy)
    if revised_at is not None:
        _inc(state.setdefault("revisions", {}), event.source)
        state["revised_at"] = revised_at
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
