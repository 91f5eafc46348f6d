"""Realistic rhythms: checkpoint traffic by hour of day and day of week.

Chacalluta-Santa Rosa is busiest on weekend and holiday evenings (Tacna shoppers and Arica
visitors) with a morning commuter peak; nights are quiet. These multipliers shape the rate.
"""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

# Arica keeps Chile's national time; Tacna (UTC-5) is an hour or two behind, but the crossing's
# rhythm is set by both sides' shops and offices: Chilean local time is a fair clock for it.
LOCAL = ZoneInfo("America/Santiago")

_HOURLY = (
    0.15,
    0.10,
    0.08,
    0.08,
    0.10,
    0.25,
    0.55,
    0.95,
    1.20,
    1.15,
    1.05,
    1.00,
    0.95,
    0.95,
    1.00,
    1.10,
    1.25,
    1.45,
    1.55,
    1.35,
    1.00,
    0.70,
    0.45,
    0.25,
)
_WEEKDAY = (0.85, 0.80, 0.80, 0.85, 1.05, 1.35, 1.40)  # Monday .. Sunday


def traffic_multiplier(at: datetime) -> float:
    """Relative checkpoint traffic at this instant (1.0 is an ordinary daytime hour)."""
    at = at.astimezone(LOCAL)
    hour = at.hour + at.minute / 60.0
    lo = _HOURLY[int(hour) % 24]
    hi = _HOURLY[(int(hour) + 1) % 24]
    frac = hour - math.floor(hour)
    return (lo + (hi - lo) * frac) * _WEEKDAY[at.weekday()]
