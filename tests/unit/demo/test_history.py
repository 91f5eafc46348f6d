"""The demo's synthetic history matches the volume the simulated fleet really sends."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from hito.demo.history import (
    HISTORY_POLICY,
    expected_crossings_per_minute,
    history_lines,
    repeat_history_lines,
)
from hito.device.simulate.fleet import VALID, Fleet, FleetPlan
from hito.devices import DeviceRegistry

NOW = datetime(2026, 11, 29, 22, 0, tzinfo=UTC)  # Sunday 19:00 in Arica: a busy hour


def test_expected_volume_matches_a_simulated_minute(registry: DeviceRegistry) -> None:
    rate = 100.0
    plan = FleetPlan(count=int(rate * 60))
    got: Counter[tuple[str, str]] = Counter()
    for m in Fleet(registry, plan, NOW).messages():
        if m.expected == VALID and m.topic == plan.raw_topics["checkpoint"]:
            direction = "entry" if b'"direction":"entry"' in m.value else "exit"
            got[(m.site, direction)] += 1
    expected = expected_crossings_per_minute(registry, rate, NOW)
    assert (
        set(got)
        == set(expected)
        == {
            ("chacalluta", "entry"),
            ("chacalluta", "exit"),
            ("santa-rosa", "entry"),
            ("santa-rosa", "exit"),
        }
    )
    for key, mean in expected.items():
        assert abs(got[key] - mean) < 4 * mean**0.5 + 5, (key, got[key], mean)


NIGHT = datetime(2026, 12, 4, 2, 16, tzinfo=UTC)  # 23:16 in Arica: the rhythm's quiet hours


def test_a_fleet_without_the_rhythm_has_a_history_without_it(registry: DeviceRegistry) -> None:
    # CI at this hour scored the flat fleet of test_backfill.py 7-14 standard deviations
    # against a rhythmic history: a surge page for both sites.
    rate = 100.0
    plan = FleetPlan(count=int(rate * 60), daily_rhythm=False)
    got: Counter[tuple[str, str]] = Counter()
    for m in Fleet(registry, plan, NIGHT).messages():
        if m.expected == VALID and m.topic == plan.raw_topics["checkpoint"]:
            direction = "entry" if b'"direction":"entry"' in m.value else "exit"
            got[(m.site, direction)] += 1
    flat = expected_crossings_per_minute(registry, rate, NIGHT, daily_rhythm=False)
    rhythmic = expected_crossings_per_minute(registry, rate, NIGHT)
    for key, mean in flat.items():
        assert abs(got[key] - mean) < 4 * mean**0.5 + 5, (key, got[key], mean)
        assert got[key] > 2 * rhythmic[key], (key, got[key], rhythmic[key])


def test_history_covers_four_previous_weeks_around_now_and_is_marked(
    registry: DeviceRegistry,
) -> None:
    lines = history_lines(registry, 40.0, NOW, weeks=4, minutes_around=10)
    assert len(lines) == 4 * 21 * 4  # weeks x minutes x (site, direction)
    assert all(ln.startswith("crossings,") and f"policy={HISTORY_POLICY}" in ln for ln in lines)
    newest = max(int(ln.rsplit(" ", 1)[1]) for ln in lines)
    assert newest == int(NOW.timestamp()) - 7 * 86400 + 600


def test_repeat_history_is_closed_days_of_both_checkpoints_never_under_k(
    registry: DeviceRegistry,
) -> None:
    lines = repeat_history_lines(registry, NOW, days=28, k=5)
    days = {int(ln.rsplit(" ", 1)[1]) for ln in lines}
    today = int(NOW.replace(hour=0).timestamp())
    assert max(days) == today - 86400 and min(days) == today - 28 * 86400
    assert {ln.split(" ")[0].split("site=")[1] for ln in lines} == {"chacalluta", "santa-rosa"}
    assert all(f"policy={HISTORY_POLICY}" in ln for ln in lines)
    assert all(int(ln.split("count=")[1].split("i")[0]) >= 5 for ln in lines)
