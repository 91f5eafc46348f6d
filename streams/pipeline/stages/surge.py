"""Stage ``surge``: is this minute's crossing count at a site far above what is normal *then*?

Pure. A baseline per (site, direction) holds, for each of the 168 hours of the week (in the
site's local time), the mean and variance of the per-minute crossing count, learned from
history (InfluxDB's ``crossings`` at start-up, then every completed minute). A Sunday-evening
rush at Chacalluta is normal because Sunday evenings were busy before; the same count at 4 a.m.
on a Tuesday is not.

score = max(0, (observed - expected) / sqrt(variance + expected + 1))

- Seasonal basis: the hour-of-week slot has at least ``min_slot_samples`` minutes of history.
- Cold start: otherwise the median of the last ``recent_minutes`` minutes at that site and
  direction (needs ``min_recent`` of them); with less history than that, no score (0).
- Volume gate: a minute with fewer than ``min_volume`` crossings scores 0, so a quiet night
  where 3 people instead of 1 cross never pages anyone.
The ``+ expected`` term is the Poisson floor: counts of people vary by about their square root
even in a perfectly steady hour, so a small slot with a tiny learned variance cannot page.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

STAGE = "surge"
HOURS_PER_WEEK = 168
Basis = Literal["seasonal", "recent", "none"]


@dataclass(frozen=True)
class SurgeParams:
    min_volume: int = 20
    min_slot_samples: int = 30
    recent_minutes: int = 15
    min_recent: int = 3
    # Older history fades: a slot behaves like a mean over its last ~max_slot_weight minutes.
    max_slot_weight: int = 240
    # Minutes scoring above this are learned clipped to it (see SurgeResult.learnable).
    learn_cap_z: float = 3.0


@dataclass
class Slot:
    n: int = 0
    mean: float = 0.0
    variance: float = 0.0


@dataclass
class Baseline:
    """History of one (site, direction)."""

    slots: list[Slot] = field(default_factory=lambda: [Slot() for _ in range(HOURS_PER_WEEK)])
    recent: deque[int] = field(default_factory=lambda: deque(maxlen=60))


@dataclass(frozen=True)
class SurgeResult:
    observed: int
    baseline: float
    score: float
    basis: Basis
    spread: float = 0.0  # the score's denominator: sqrt(variance + expected + 1)

    def learnable(self, cap_z: float) -> float:
        """What the history should learn from this minute: a surge is clipped to
        ``baseline + cap_z * spread``, so one long surge neither inflates the variance nor
        lifts the mean enough to stop paging while it lasts."""
        if self.basis == "none":
            return float(self.observed)
        return min(float(self.observed), self.baseline + cap_z * self.spread)


def hour_of_week(at: datetime, tz: ZoneInfo) -> int:
    """0 = Monday 00:00-00:59 local time ... 167 = Sunday 23:00-23:59."""
    local = at.astimezone(tz)
    return local.weekday() * 24 + local.hour


def learn(baseline: Baseline, observed: float, slot: int, params: SurgeParams) -> None:
    """Fold one completed minute into the slot (in place), and into the recent history."""
    s = baseline.slots[slot]
    # Welford's running mean and variance; once n is capped the same update is an
    # exponentially weighted one, so the baseline follows a slowly changing normal.
    s.n = min(s.n + 1, params.max_slot_weight)
    delta = observed - s.mean
    s.mean += delta / s.n
    s.variance += (delta * (observed - s.mean) - s.variance) / s.n
    baseline.recent.append(round(observed))


def score(baseline: Baseline, observed: int, slot: int, params: SurgeParams) -> SurgeResult:
    """Score a completed minute against the history *before* it (call before ``learn``)."""
    s = baseline.slots[slot]
    recent = list(baseline.recent)[-params.recent_minutes :]
    basis: Basis
    if s.n >= params.min_slot_samples:
        expected, variance, basis = s.mean, s.variance, "seasonal"
    elif len(recent) >= params.min_recent:
        expected = float(statistics.median(recent))
        mad = statistics.median(abs(x - expected) for x in recent)
        variance, basis = (1.4826 * mad) ** 2, "recent"
    else:
        return SurgeResult(observed, 0.0, 0.0, "none")
    spread = math.sqrt(variance + expected + 1.0)
    if observed < params.min_volume:
        return SurgeResult(observed, expected, 0.0, basis, spread)
    z = (observed - expected) / spread
    # Only "above normal" matters here; a quieter minute than usual scores 0, not below.
    return SurgeResult(observed, expected, round(max(z, 0.0), 3), basis, spread)
