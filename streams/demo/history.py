"""Synthetic crossing history for a fresh stack, so the surge detector has a seasonal baseline.

A new install has no history: its surge scores would start on the cold-start basis (the last
minutes only). The demo writes four weeks of *synthetic* per-minute crossings around the
current time of the week, at exactly the volume the simulated fleet sends (same device
weights and daily rhythm), and four weeks of closed days of ``repeat_crossings`` (a demo run
is too short to close a day of its own), all tagged ``policy=synthetic-history`` so they are
never mistaken for real data.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from hito.device.simulate.patterns import traffic_multiplier
from hito.devices import DeviceRegistry
from hito.pipeline.sinks.lines import line, repeat_points

HISTORY_POLICY = "synthetic-history"


def expected_crossings_per_minute(
    registry: DeviceRegistry,
    rate: float,
    at: datetime,
    valid_fraction: float = 1.0,
    *,
    daily_rhythm: bool = True,
) -> dict[tuple[str, str], float]:
    """Mean crossings per (site, direction) in one minute of the simulated fleet at ``rate``
    messages per second: checkpoint devices weigh the daily rhythm (unless the fleet runs
    without it: ``FleetPlan.daily_rhythm``), the others 1 (as ``Fleet._pick_device``),
    directions are even."""
    devices = [d for d in registry.devices.values() if not d.revoked]
    rhythm = traffic_multiplier(at) if daily_rhythm else 1.0
    total = sum(rhythm if d.kind == "checkpoint" else 1.0 for d in devices)
    per_minute = rate * 60 * valid_fraction
    out: dict[tuple[str, str], float] = {}
    for d in devices:
        if d.kind == "checkpoint":
            for direction in ("entry", "exit"):
                key = (d.site, direction)
                out[key] = out.get(key, 0.0) + per_minute * rhythm / total / 2
    return out


def history_lines(
    registry: DeviceRegistry,
    rate: float,
    now: datetime,
    *,
    weeks: int = 4,
    minutes_around: int = 90,
    valid_fraction: float = 1.0,
    seed: int = 1,
    daily_rhythm: bool = True,
) -> list[str]:
    """`crossings` points for each minute within ``minutes_around`` of this time of the week,
    in each of the previous ``weeks`` weeks, with Poisson-like noise; ``daily_rhythm`` as the
    fleet it is the history of (a flat fleet scored against a rhythmic history surges at
    night: 7-14 standard deviations at 23:00 in Arica)."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data
    minute0 = now.replace(second=0, microsecond=0)
    lines = []
    for week in range(1, weeks + 1):
        for offset in range(-minutes_around, minutes_around + 1):
            at = minute0 - timedelta(weeks=week) + timedelta(minutes=offset)
            for (site, direction), mean in expected_crossings_per_minute(
                registry, rate, at, valid_fraction, daily_rhythm=daily_rhythm
            ).items():
                count = max(0, round(rng.gauss(mean, mean**0.5)))
                tags = {
                    "site": site,
                    "direction": direction,
                    "mode": "all",
                    "outcome": "all",
                    "policy": HISTORY_POLICY,
                }
                lines.append(line("crossings", tags, {"count": count}, at))
    return lines


def repeat_history_lines(
    registry: DeviceRegistry, now: datetime, *, days: int = 28, k: int = 5, seed: int = 2
) -> list[str]:
    """``repeat_crossings`` for each of the ``days`` closed UTC days before ``now``, per
    checkpoint site and direction (cells under ``k`` left out, as the pipeline does)."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data
    sites = sorted({d.site for d in registry.devices.values() if d.kind == "checkpoint"})
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    lines = []
    for back in range(days, 0, -1):
        day = today - timedelta(days=back)
        for site in sites:
            cells = {d: max(0, round(rng.gauss(40, 12))) for d in ("entry", "exit")}
            lines += repeat_points(site, day, cells, HISTORY_POLICY, k)
    return lines
