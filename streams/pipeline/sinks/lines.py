"""Window state -> InfluxDB points (SPEC.md, "InfluxDB"), with small-count suppression.

Pure. Every point's time is the window start and every point carries the policy version, so
writing a window again overwrites it. Aggregates over people (crossings, nationality, wait
times) go through :func:`suppress`; merged cells are tagged ``other``. ``repeat_crossings`` is
written per closed day (:func:`repeat_points`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from influxdb_client import Point, WritePrecision

from hito.pipeline.stages.aggregate import WAIT_EDGES, State, percentile
from hito.pipeline.stages.repeat import MEASUREMENT as REPEAT
from hito.pipeline.stages.repeat import publishable
from hito.pipeline.stages.suppress import suppress
from hito.pipeline.stages.windows import parse_start

OTHER = "other"
REVISIONS = "revisions"  # per revised window and source: events backfilled, when last
# The window archive's one measurement (hito.pipeline.state.archive): the full state as JSON.
ARCHIVE_MEASUREMENT = "window_state"


def line(measurement: str, tags: dict[str, str], fields: dict[str, Any], when: datetime) -> str:
    """One point in line protocol (influxdb-client does the escaping), second precision."""
    p = Point(measurement)  # type: ignore[no-untyped-call]
    for key, value in tags.items():
        p = p.tag(key, value)  # type: ignore[no-untyped-call]
    for key, value in fields.items():
        p = p.field(key, value)  # type: ignore[no-untyped-call]
    p = p.time(when, WritePrecision.S)  # type: ignore[no-untyped-call]
    return str(p.to_line_protocol())


def points_for(state: State, k: int) -> list[str]:
    """Line-protocol points for one window of one site."""
    site, policy = state["site"], state["policy"] or "unknown"
    when = parse_start(state["start"])
    out: list[str] = []

    def point(measurement: str, tags: dict[str, str], fields: dict[str, Any]) -> None:
        out.append(line(measurement, {"site": site, **tags, "policy": policy}, fields, when))

    for direction, cells in _by_direction(state["crossings"]).items():
        published, other = suppress(cells, k)
        for rest, n in sorted(published.items()):
            mode, outcome = rest.split("|")
            point(
                "crossings",
                {"direction": direction, "mode": mode, "outcome": outcome},
                {"count": n},
            )
        if other:
            point(
                "crossings",
                {"direction": direction, "mode": OTHER, "outcome": OTHER},
                {"count": other},
            )
    for direction, cells in _by_direction(state["nationality"]).items():
        published, other = suppress(cells, k)
        # Nationalities outside the policy's groups arrive as "other" already: one point.
        other += published.pop(OTHER, 0)
        for nationality, n in sorted(published.items()):
            point(
                "crossings_by_nationality",
                {"direction": direction, "nationality": nationality},
                {"count": n},
            )
        if other:
            point(
                "crossings_by_nationality",
                {"direction": direction, "nationality": OTHER},
                {"count": other},
            )
    for direction, cells in _by_direction(state["wait"]).items():
        published, _ = suppress({mode: c["n"] for mode, c in cells.items()}, k)
        hidden = [c for mode, c in cells.items() if mode not in published]
        groups = [(mode, [cells[mode]]) for mode in sorted(published)]
        if hidden:
            groups.append((OTHER, hidden))
        for mode, members in groups:
            if sum(c["n"] for c in members) < k:
                # The whole direction has fewer than k people (suppression then publishes
                # it as one group): its times would be theirs, one person's exact processing
                # time when alone. Their count is in `crossings`; no times.
                continue
            point("wait_time", {"direction": direction, "mode": mode}, _wait_fields(members))
    for key, c in sorted(state["sensor"].items()):
        sensor_type, geohash = key.split("|")
        fields: dict[str, Any] = {"detections": c["detections"], "readings": c["readings"]}
        if c["values"]:
            fields["value"] = float(c["value_sum"] / c["values"])
        point("sensor", {"sensor_type": sensor_type, "geohash": geohash}, fields)
    for geohash, c in sorted(state["drone"].items()):
        point(
            "drone",
            {"geohash": geohash},
            {
                "detections": c["detections"],
                "fixes": c["fixes"],
                "alt_m_avg": float(c["alt_sum"] / c["fixes"]),
                "battery_pct_min": float(c["battery_min"]),
            },
        )
    for source, n in sorted(state.get("revisions", {}).items()):
        # Not over people per cell: the events a late upload added to the minute, which two
        # successive publications of the window show anyway (docs/privacy.md).
        point(REVISIONS, {"source": source}, {"events": n, "revised_at": state["revised_at"]})
    return out


def archive_line(state: State) -> str:
    """The window's point in the archive: keyed by site and start, so archiving a later
    version overwrites the earlier one."""
    text = orjson.dumps(state).decode()
    return line(
        ARCHIVE_MEASUREMENT, {"site": state["site"]}, {"state": text}, parse_start(state["start"])
    )


def repeat_points(
    site: str, day: datetime, cells: dict[str, int], policy: str, k: int
) -> list[str]:
    """The ``repeat_crossings`` points of one closed day of one site: one per direction with at
    least ``k`` people (hito.pipeline.stages.repeat: a smaller cell is not published)."""
    return [
        line(REPEAT, {"site": site, "direction": d, "policy": policy}, {"count": n}, day)
        for d, n in sorted(publishable(cells, k).items())
    ]


def _by_direction(cells: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, value in cells.items():
        direction, rest = key.split("|", 1)
        out.setdefault(direction, {})[rest] = value
    return out


def _wait_fields(cells: list[dict[str, Any]]) -> dict[str, float]:
    buckets = [sum(c["b"][i] for c in cells) for i in range(len(WAIT_EDGES))]
    longest = max(float(c["max"]) for c in cells)
    # Always floats: InfluxDB refuses a field whose type changes (20i after 16.1).
    return {
        "p50_s": float(min(percentile(buckets, 0.50), longest)),
        "p95_s": float(min(percentile(buckets, 0.95), longest)),
        "max_s": float(longest),
    }


# Every measurement a window's points go to (points_for): what a window new to a process
# clears at its start before its first write.
WINDOW_MEASUREMENTS = (
    "crossings",
    "crossings_by_nationality",
    "wait_time",
    "sensor",
    "drone",
    REVISIONS,
)


def window_predicates(state: State) -> list[str]:
    """Delete predicates for every point an earlier process may have published for this
    window (at its start): each window measurement of its site, whatever the state holds now
    (a publication may have run ahead of the changelog the state was restored from), and never
    the other measurements at that second — the minute's surge score, the day's
    repeat_crossings point at a day's first minute. A single ``site="..."`` predicate deleted
    those too, for good (neither is written again)."""
    site = state["site"]
    return [f'_measurement="{m}" AND site="{site}"' for m in WINDOW_MEASUREMENTS]


def series_predicate(series_key: str) -> str:
    """`crossings,direction=entry,mode=car` -> an InfluxDB delete predicate for that series."""
    measurement, *tags = series_key.split(",")
    parts = [f'_measurement="{measurement}"']
    # `policy` is a keyword of InfluxDB's delete predicates (HTTP 400); a window has one
    # policy, so the other tags name the series at that second already.
    parts += [f'{k}="{v}"' for k, v in (t.split("=", 1) for t in tags) if k != "policy"]
    return " AND ".join(parts)
