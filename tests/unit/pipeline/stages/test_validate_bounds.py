"""The event_time checks (clock_skew ahead, late_beyond_window behind) compare with bounds made
once per ``now``: the same verdicts, to the microsecond, as comparing the skew did."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from hito.devices import DeviceRegistry
from hito.pipeline.stages.outcomes import Limits
from hito.pipeline.stages.validate import Accepted, Rejected, _clock_bounds, validate
from hito.schemas.reasons import Reason
from tests.unit.pipeline.stages.test_validate import NOW, _event

LIMITS = Limits(max_future_skew_s=300.0, max_event_age_s=7 * 86400.0)
US = timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("offset", "verdict"),
    [
        (timedelta(seconds=300), "accepted"),
        (timedelta(seconds=300) + US, "event_time more than 300 s in the future (under an hour)"),
        (timedelta(days=7), "accepted"),  # as old as allowed (event_time = now - 7 days)
        (
            timedelta(days=7) + US,
            "event_time beyond the backfill horizon of 604800 s (under a month in the past)",
        ),
    ],
)
@pytest.mark.parametrize("zone", [UTC, timezone(timedelta(hours=-5))])
def test_skew_bounds_are_exact(
    registry: DeviceRegistry, offset: timedelta, verdict: str, zone: timezone
) -> None:
    future = "future" in verdict or offset == timedelta(seconds=300)
    at = (NOW + offset if future else NOW - offset).astimezone(zone)
    raw = orjson.dumps(_event(registry, event_time=at.isoformat()))
    result = validate(raw, registry=registry, limits=LIMITS, now=NOW)
    if verdict == "accepted":
        assert isinstance(result, Accepted), result
    else:
        assert isinstance(result, Rejected)
        reason = Reason.CLOCK_SKEW if future else Reason.LATE_BEYOND_WINDOW
        assert (result.reason, result.detail) == (reason, verdict)


def test_bounds_follow_a_new_now_and_new_limits(registry: DeviceRegistry) -> None:
    raw = orjson.dumps(_event(registry, event_time=(NOW + timedelta(seconds=400)).isoformat()))
    assert isinstance(validate(raw, registry=registry, limits=LIMITS, now=NOW), Rejected)
    later = NOW + timedelta(seconds=200)
    assert isinstance(validate(raw, registry=registry, limits=LIMITS, now=later), Accepted)
    wide = Limits(max_future_skew_s=500.0)
    assert isinstance(validate(raw, registry=registry, limits=wide, now=NOW), Accepted)
    assert isinstance(validate(raw, registry=registry, limits=LIMITS, now=NOW), Rejected)
    assert datetime.now(UTC) > NOW  # NOW is a fixed past instant: nothing here reads the clock


@pytest.mark.parametrize("when", [NOW - timedelta(days=9000), NOW + timedelta(days=9000), NOW])
def test_limits_beyond_the_calendar_compare_the_skew(
    registry: DeviceRegistry, when: datetime
) -> None:
    # 3e11 s is 9,500 years: now +/- that is no datetime, yet as a skew limit it is valid.
    huge = Limits(max_future_skew_s=3e11, max_event_age_s=3e11)
    assert _clock_bounds(NOW, huge) == (None, None)
    raw = orjson.dumps(_event(registry, event_time=when.isoformat()))
    assert isinstance(validate(raw, registry=registry, limits=huge, now=NOW), Accepted)
    # One bound in the calendar, the other not: each is decided on its own.
    past_only = Limits(max_future_skew_s=3e11, max_event_age_s=86400.0)
    result = validate(raw, registry=registry, limits=past_only, now=NOW)
    if when < NOW:
        assert isinstance(result, Rejected)
        assert result.detail == (
            "event_time beyond the backfill horizon of 86400 s (a month or more in the past)"
        )
    else:
        assert isinstance(result, Accepted)


@pytest.mark.parametrize(
    ("skew", "words"),
    [
        (timedelta(seconds=301), "under an hour"),
        (timedelta(hours=5, seconds=17), "under a day"),
        (timedelta(days=3, seconds=5), "under a month"),
        (timedelta(days=400), "a month or more"),
    ],
)
def test_a_skew_is_told_roughly_never_to_the_second(
    registry: DeviceRegistry, skew: timedelta, words: str
) -> None:
    """The DLQ detail says how far off the clock is in words, never the skew in seconds: with
    the record's received_at that would give the event's time to the second (finer than the
    clean zone's minute), and the number is the device's to choose."""
    raw = orjson.dumps(_event(registry, event_time=(NOW + skew).isoformat()))
    result = validate(raw, registry=registry, limits=LIMITS, now=NOW)
    assert isinstance(result, Rejected)
    assert result.detail == f"event_time more than 300 s in the future ({words})"
    assert str(int(skew.total_seconds())) not in result.detail
