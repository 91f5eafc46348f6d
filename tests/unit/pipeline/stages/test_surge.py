"""Surge scoring: the same count is normal on a Sunday evening and a surge at 4 a.m. Tuesday."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from hito.pipeline.agents.surge import SurgeDetector
from hito.pipeline.metrics import PipelineMetrics
from hito.pipeline.stages import surge
from hito.settings.sections import SurgeSettings

SANTIAGO = ZoneInfo("America/Santiago")
PARAMS = surge.SurgeParams()


def normal_rate(slot: int) -> float:
    """Crossings per minute at Chacalluta by hour of the week (local time)."""
    day, hour = divmod(slot, 24)
    if day == 6 and 17 <= hour <= 21:  # Sunday evening: people return home
        return 80.0
    if 0 <= hour < 6:
        return 3.0
    return 25.0


def four_weeks_of_history(seed: int = 1) -> surge.Baseline:
    rng = random.Random(seed)
    baseline = surge.Baseline()
    for _week in range(4):
        for slot in range(surge.HOURS_PER_WEEK):
            for _minute in range(60):
                mean = normal_rate(slot)
                count = max(0, round(rng.gauss(mean, mean**0.5)))
                surge.learn(baseline, count, slot, PARAMS)
    return baseline


HISTORY = four_weeks_of_history()
SUNDAY_19H = surge.hour_of_week(datetime(2026, 11, 29, 19, 0, tzinfo=SANTIAGO), SANTIAGO)
TUESDAY_04H = surge.hour_of_week(datetime(2026, 12, 1, 4, 0, tzinfo=SANTIAGO), SANTIAGO)


def test_hour_of_week_is_the_sites_local_time() -> None:
    assert SUNDAY_19H == 6 * 24 + 19
    assert TUESDAY_04H == 1 * 24 + 4
    # 22:00 UTC on Sunday 29 November is 19:00 in Santiago (summer time, UTC-3).
    assert surge.hour_of_week(datetime(2026, 11, 29, 22, 0, tzinfo=UTC), SANTIAGO) == SUNDAY_19H


def test_sunday_evening_rush_is_normal_but_the_same_count_at_4am_tuesday_is_a_surge() -> None:
    sunday = surge.score(HISTORY, 85, SUNDAY_19H, PARAMS)
    tuesday = surge.score(HISTORY, 85, TUESDAY_04H, PARAMS)
    assert sunday.basis == tuesday.basis == "seasonal"
    assert 75 < sunday.baseline < 85 and sunday.score < 2
    assert 2 < tuesday.baseline < 4 and tuesday.score > 20


def test_a_quiet_night_never_pages_below_the_volume_gate() -> None:
    # Four times the usual 3 a minute, but only 12 people: score 0.
    result = surge.score(HISTORY, 12, TUESDAY_04H, PARAMS)
    assert result.score == 0.0 and result.observed == 12


def test_cold_start_has_no_score_then_uses_the_last_minutes() -> None:
    fresh = surge.Baseline()
    assert surge.score(fresh, 200, SUNDAY_19H, PARAMS) == surge.SurgeResult(200, 0.0, 0.0, "none")
    for count in (30, 28, 33):
        surge.learn(fresh, count, SUNDAY_19H, PARAMS)
    normal = surge.score(fresh, 31, SUNDAY_19H, PARAMS)
    rush = surge.score(fresh, 150, SUNDAY_19H, PARAMS)
    assert normal.basis == rush.basis == "recent"
    assert normal.baseline == 30.0 and normal.score < 1
    assert rush.score > 4


@given(
    history=st.lists(st.integers(0, 500), min_size=0, max_size=40),
    observed=st.integers(0, 1000),
    extra=st.integers(1, 500),
)
def test_score_is_gated_and_grows_with_the_count(
    history: list[int], observed: int, extra: int
) -> None:
    baseline = surge.Baseline()
    for count in history:
        surge.learn(baseline, count, 10, PARAMS)
    low = surge.score(baseline, observed, 10, PARAMS)
    high = surge.score(baseline, observed + extra, 10, PARAMS)
    if observed < PARAMS.min_volume:
        assert low.score == 0.0
    assert high.score >= low.score


def test_detector_learns_history_then_scores_completed_minutes_only() -> None:
    now = datetime(2026, 12, 1, 7, 2, 10, tzinfo=UTC)  # Tuesday 04:02 in Santiago
    calls: list[tuple[list[str], int, datetime]] = []

    async def history(
        sites: list[str], days: int, until: datetime
    ) -> list[tuple[str, str, datetime, int]]:
        calls.append((sites, days, until))
        rows = []
        for week in range(1, 5):  # the same hour on four previous Tuesdays: 3 a minute
            hour = now.replace(minute=0, second=0) - timedelta(weeks=week)
            rows += [("chacalluta", "entry", hour + timedelta(minutes=m), 3) for m in range(60)]
        return rows

    metrics = PipelineMetrics()
    detector = SurgeDetector(SurgeSettings(), 60, metrics, history)

    def window(minute: int, entries: int) -> dict[str, object]:
        start = datetime(2026, 12, 1, 7, minute, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        cells = {"entry|car|admitted": entries} if entries else {}
        return {"site": "chacalluta", "start": start, "crossings": cells, "policy": "p1"}

    windows = [window(0, 4), window(1, 90), window(2, 95)]  # minute 2 is still open
    lines = asyncio.run(detector.score_completed(windows, now))
    # History ends where the window table (still being re-written) begins.
    assert calls == [(["chacalluta"], 28, now - timedelta(seconds=900))]
    assert len(lines) == 2 and all(ln.startswith("surge,direction=entry,") for ln in lines)
    assert "observed=90i" in lines[1] and 'basis="seasonal"' in lines[1]
    score = metrics.surge_score.labels(site="chacalluta", direction="entry")._value.get()
    assert score > 20
    # Scored minutes are not scored again; the next completed one is.
    assert asyncio.run(detector.score_completed(windows, now)) == []
    later = asyncio.run(detector.score_completed(windows, now + timedelta(minutes=1)))
    assert len(later) == 1 and "observed=95i" in later[0]


def test_a_long_surge_keeps_scoring_high_while_it_lasts() -> None:
    """Minutes of a surge are learned clipped, so the baseline does not swallow the surge."""
    baseline = four_weeks_of_history(seed=3)
    scores = []
    for _minute in range(30):  # half an hour at five times the Sunday-evening rush
        result = surge.score(baseline, 400, SUNDAY_19H, PARAMS)
        scores.append(result.score)
        surge.learn(baseline, result.learnable(PARAMS.learn_cap_z), SUNDAY_19H, PARAMS)
    assert min(scores) > 4, scores
    # And after it, an ordinary minute is ordinary again.
    assert surge.score(baseline, 82, SUNDAY_19H, PARAMS).score < 2


def test_learnable_clips_only_surges() -> None:
    normal = surge.SurgeResult(30, 28.0, 0.3, "seasonal", 6.0)
    rush = surge.SurgeResult(300, 28.0, 45.0, "seasonal", 6.0)
    cold = surge.SurgeResult(300, 0.0, 0.0, "none", 0.0)
    assert normal.learnable(3.0) == 30.0
    assert rush.learnable(3.0) == 28.0 + 3.0 * 6.0
    assert cold.learnable(3.0) == 300.0


def test_a_site_that_moved_away_leaves_no_stale_gauges() -> None:
    async def history(
        sites: list[str], days: int, until: datetime
    ) -> list[tuple[str, str, datetime, int]]:
        return []

    metrics = PipelineMetrics()
    detector = SurgeDetector(SurgeSettings(), 60, metrics, history)
    start = "2026-12-01T07:00:00Z"
    window = {
        "site": "chacalluta",
        "start": start,
        "crossings": {"entry|car|admitted": 30},
        "policy": "p1",
    }
    asyncio.run(detector.score_completed([window], datetime(2026, 12, 1, 7, 2, tzinfo=UTC)))
    names = {s.name for m in metrics.registry.collect() for s in m.samples}
    assert "hito_surge_score" in names
    detector.forget(["chacalluta"])
    samples = [s for m in metrics.registry.collect() for s in m.samples]
    assert not [s for s in samples if s.name.startswith("hito_surge_")]
    assert "chacalluta" not in detector.loaded


def test_one_sites_history_failing_does_not_stop_the_others() -> None:
    from hito.pipeline.sinks.errors import RetryableSinkError

    calls: list[str] = []

    async def history(
        sites: list[str], days: int, until: datetime
    ) -> list[tuple[str, str, datetime, int]]:
        calls.extend(sites)
        if sites == ["santa-rosa"]:
            raise RetryableSinkError("timeout")
        return []

    detector = SurgeDetector(SurgeSettings(), 60, PipelineMetrics(), history)
    start = "2026-12-01T07:00:00Z"
    windows = [
        {"site": site, "start": start, "crossings": {"entry|car|admitted": 30}, "policy": "p"}
        for site in ("chacalluta", "santa-rosa")
    ]
    now = datetime(2026, 12, 1, 7, 2, tzinfo=UTC)
    lines = asyncio.run(detector.score_completed(windows, now))
    assert len(lines) == 1 and "site=chacalluta" in lines[0]
    # Not asked again for a minute; then asked again.
    asyncio.run(detector.score_completed(windows, now + timedelta(seconds=30)))
    asyncio.run(detector.score_completed(windows, now + timedelta(seconds=61)))
    assert calls == ["chacalluta", "santa-rosa", "santa-rosa"]
