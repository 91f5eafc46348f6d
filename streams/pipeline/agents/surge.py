"""Surge detection in the worker: completed minutes of crossings -> score -> metric + InfluxDB.

The scoring is the pure stage ``streams/stages/surge.py``. This module keeps the baselines of
the sites this worker owns: it learns them from the history in InfluxDB (the ``crossings``
measurement, per minute, ``history_days`` back) when it starts and whenever it takes over a
site, then folds in every minute it scores. Nothing here needs to survive a crash: the history
is InfluxDB's, and a restarted worker learns it again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hito.pipeline.metrics import PipelineMetrics
from hito.pipeline.sinks.errors import RetryableSinkError
from hito.pipeline.sinks.lines import line
from hito.pipeline.stages import surge
from hito.pipeline.stages.windows import format_start, parse_start
from hito.settings.sections import SurgeSettings

log = logging.getLogger(__name__)

MinuteTotals = list[tuple[str, str, datetime, int]]
"""(site, direction, minute start, crossings) rows of history."""
HistoryQuery = Callable[[list[str], int, datetime], Awaitable[MinuteTotals]]
"""(sites, days back, until) -> history."""


@dataclass
class SurgeDetector:
    settings: SurgeSettings
    window_s: int
    metrics: PipelineMetrics
    history: HistoryQuery
    # Minutes newer than this many seconds may still be in the window table (re-written,
    # not final): they are scored from the table, not learned from InfluxDB.
    table_horizon_s: float = 900.0
    baselines: dict[tuple[str, str], surge.Baseline] = field(default_factory=dict)
    last_scored: dict[str, str] = field(default_factory=dict)  # site -> window start (text)
    loaded: set[str] = field(default_factory=set)  # sites whose history is loaded
    retry_at: dict[str, float] = field(default_factory=dict)  # site -> when to retry loading

    @property
    def params(self) -> surge.SurgeParams:
        s = self.settings
        return surge.SurgeParams(
            min_volume=s.min_volume,
            min_slot_samples=s.min_slot_samples,
            recent_minutes=s.recent_minutes,
            min_recent=s.min_recent,
        )

    def timezone(self, site: str) -> ZoneInfo:
        return ZoneInfo(self.settings.site_timezones.get(site, self.settings.default_timezone))

    async def load(self, sites: list[str], now: datetime) -> None:
        """Learn the sites' baselines from InfluxDB (replacing what this process knew)."""
        until = now - timedelta(seconds=self.table_horizon_s)
        rows = await self.history(sites, self.settings.history_days, until)
        # Minutes before the cut-off are in that history: never score them again (an old
        # score must not look fresh) nor learn them twice.
        cutoff = _minute(until) - timedelta(seconds=self.window_s)
        for site in sites:
            for key in [k for k in self.baselines if k[0] == site]:
                del self.baselines[key]
            self.last_scored[site] = format_start(cutoff)
        params = self.params
        for site, direction, minute, count in sorted(rows, key=lambda r: r[2]):
            baseline = self.baselines.setdefault((site, direction), surge.Baseline())
            slot = surge.hour_of_week(minute, self.timezone(site))
            # Past surges are clipped as they are learned, exactly as live minutes are.
            result = surge.score(baseline, count, slot, params)
            surge.learn(baseline, result.learnable(params.learn_cap_z), slot, params)
        self.loaded.update(sites)
        log.info("surge baselines learned for %s from %d minutes of history", sites, len(rows))

    async def score_completed(self, windows: Iterable[dict[str, Any]], now: datetime) -> list[str]:
        """Score (then learn) every completed minute with crossings not scored yet; returns
        the ``surge`` points to write. ``windows`` are the owned window states."""
        horizon = now - timedelta(seconds=self.window_s + self.settings.grace_s)
        due = sorted(
            (w for w in windows if w["crossings"] and _start(w) <= horizon),
            key=lambda w: str(w["start"]),
        )
        for site in sorted({str(w["site"]) for w in due} - self.loaded):
            if self.retry_at.get(site, 0.0) > now.timestamp():
                continue
            try:
                await self.load([site], now)
            except (RetryableSinkError, ValueError, KeyError, TypeError) as exc:
                # One site's history failing must not stop the others' scoring, nor be
                # queried again every second.
                log.warning("surge history of %s not loaded (%s); retry in 60 s", site, exc)
                self.retry_at[site] = now.timestamp() + 60.0
        due = [w for w in due if str(w["site"]) in self.loaded]
        lines: list[str] = []
        params = self.params
        for w in due:
            site, start = str(w["site"]), str(w["start"])
            if start <= self.last_scored.get(site, ""):
                continue
            self.last_scored[site] = start
            slot = surge.hour_of_week(_start(w), self.timezone(site))
            for direction, observed in sorted(_by_direction(w["crossings"], site, self).items()):
                baseline = self.baselines.setdefault((site, direction), surge.Baseline())
                result = surge.score(baseline, observed, slot, params)
                surge.learn(baseline, result.learnable(params.learn_cap_z), slot, params)
                labels = {"site": site, "direction": direction}
                self.metrics.surge_score.labels(**labels).set(result.score)
                self.metrics.surge_observed.labels(**labels).set(result.observed)
                self.metrics.surge_baseline.labels(**labels).set(result.baseline)
                # The minute's end: how fresh the *data* is, whenever it was scored.
                ended = _start(w) + timedelta(seconds=self.window_s)
                self.metrics.surge_updated.labels(**labels).set(ended.timestamp())
                tags = {**labels, "policy": w["policy"] or "unknown"}
                fields = {
                    "observed": result.observed,
                    "baseline": float(result.baseline),
                    "score": float(result.score),
                    "basis": result.basis,
                }
                lines.append(line("surge", tags, fields, _start(w)))
        return lines

    def forget(self, sites: Iterable[str]) -> None:
        """Sites this worker no longer owns: the next owner scores them; load again if back.
        Their gauges go too, so Prometheus never reads this worker's old score for them."""
        for site in list(sites):
            self.loaded.discard(site)
            for s, direction in [k for k in self.baselines if k[0] == site]:
                for gauge in (
                    self.metrics.surge_score,
                    self.metrics.surge_observed,
                    self.metrics.surge_baseline,
                    self.metrics.surge_updated,
                ):
                    with contextlib.suppress(KeyError):  # never set here
                        gauge.remove(s, direction)


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def _start(window: dict[str, Any]) -> datetime:
    return parse_start(str(window["start"]))


def _by_direction(cells: dict[str, int], site: str, detector: SurgeDetector) -> dict[str, int]:
    """Crossings per direction in one window; a direction the site had before counts 0."""
    out = {d: 0 for (s, d) in detector.baselines if s == site}
    for key, n in cells.items():
        direction = key.split("|", 1)[0]
        out[direction] = out.get(direction, 0) + n
    return out
