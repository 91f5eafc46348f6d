"""Simulated drone flight logs (``hito.flight-log/1``, hito.device.flightlog): a patrol flight
from a sector's ground station, as the aircraft records it and hands it over after landing.

The flight climbs out, flies an oval patrol along the border line and comes back; battery
drains with time; detections are rare. Seeded: the same arguments give the same file.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

# Ground stations (sector bases), as in the simulated fleet.
BASES = {"sector-concordia": (-18.3525, -70.3790), "sector-escritos": (-18.3710, -70.3620)}
_M_PER_DEG_LAT = 111_320.0


def flight_fixes(
    *,
    site: str,
    flight_id: str,
    takeoff: datetime,
    duration_s: float = 2400.0,
    interval_s: float = 5.0,
    seed: int = 7,
) -> list[dict[str, Any]]:
    """One fix every ``interval_s`` from ``takeoff`` for ``duration_s`` (a 40-minute flight by
    default), each a flight-log line: ``fix_time`` plus a ``drone.telemetry/1`` payload."""
    if takeoff.tzinfo is None:
        raise ValueError("takeoff must be timezone-aware")
    rng = random.Random(seed)  # noqa: S311 - reproducible synthetic data
    lat0, lon0 = BASES.get(site, (-18.36, -70.37))
    operator = f"op-{rng.randint(100, 999)}"
    n = int(duration_s // interval_s) + 1
    fixes = []
    prev = (lat0, lon0)
    for i in range(n):
        t = i * interval_s
        phase = t / duration_s  # 0 at take-off, 1 at landing
        lat, lon = _patrol_position(lat0, lon0, phase)
        climb = min(1.0, t / 60.0, (duration_s - t) / 60.0)  # a minute up, a minute down
        moving = 0.0 < phase < 1.0
        fixes.append(
            {
                "fix_time": (takeoff + timedelta(seconds=t)).isoformat(),
                "flight_id": flight_id,
                "lat": round(lat, 6),
                "lon": round(lon, 6),
                "alt_m": round(max(0.0, climb) * (110.0 + rng.uniform(-8, 8)), 1),
                "speed_mps": round(rng.uniform(9.0, 14.0), 1) if moving else 0.0,
                "heading_deg": round(_bearing(prev, (lat, lon)), 1) % 360.0,  # < 360
                "battery_pct": round(max(5.0, 100.0 - 55.0 * phase - rng.uniform(0, 0.5)), 1),
                "detections": rng.choices([0, 1, 2], [92, 6, 2])[0],
                "operator_id": operator,
            }
        )
        prev = (lat, lon)
    return fixes


def _patrol_position(lat0: float, lon0: float, phase: float) -> tuple[float, float]:
    """An oval of about 6 km by 1.5 km along the border (north-east of the base), flown once:
    out from the base and back to it."""
    angle = 2 * math.pi * phase
    along, across = 3000.0 * (1 - math.cos(angle)), 750.0 * math.sin(angle)
    # The line runs roughly north-east here: rotate the oval by 40 degrees.
    rot = math.radians(40)
    north = along * math.sin(rot) + across * math.cos(rot)
    east = along * math.cos(rot) - across * math.sin(rot)
    lat = lat0 + north / _M_PER_DEG_LAT
    lon = lon0 + east / (_M_PER_DEG_LAT * math.cos(math.radians(lat0)))
    return lat, lon


def _bearing(a: tuple[float, float], b: tuple[float, float]) -> float:
    if a == b:
        return 0.0
    lat1, lat2 = math.radians(a[0]), math.radians(b[0])
    dlon = math.radians(b[1] - a[1])
    x = math.sin(dlon) * math.cos(lat2)
    y = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(dlon)
    return math.degrees(math.atan2(x, y)) % 360.0


def write_flight_log(path: Path, fixes: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in fixes))
