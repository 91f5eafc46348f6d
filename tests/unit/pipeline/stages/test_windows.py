"""Windows and timeliness: where an event of a given age belongs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hito.pipeline.stages.windows import (
    Timeliness,
    WindowRules,
    format_start,
    parse_start,
    window_start,
)

RULES = WindowRules(window_s=60, allowed_lateness_s=300, backfill_horizon_s=7 * 86400)
NOW = datetime(2026, 12, 3, 15, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("age_of_start", "expected"),
    [
        (timedelta(0), Timeliness.LIVE),  # the open window
        (timedelta(seconds=360), Timeliness.LIVE),  # closed exactly the lateness ago
        (timedelta(seconds=361), Timeliness.BACKFILL),
        (timedelta(hours=2), Timeliness.BACKFILL),
        (timedelta(days=7, seconds=60), Timeliness.BACKFILL),  # closed exactly 7 days ago
        (timedelta(days=7, seconds=61), Timeliness.BEYOND),
    ],
)
def test_timeliness_counts_from_the_windows_end(
    age_of_start: timedelta, expected: Timeliness
) -> None:
    assert RULES.timeliness(NOW - age_of_start, NOW) is expected


def test_a_window_is_revisable_for_exactly_what_timeliness_says() -> None:
    """The archive check (runtime) and the archive skip (publish) read ``revisable_for``."""
    assert RULES.revisable_for == timedelta(days=7, seconds=60)
    last = NOW - RULES.revisable_for
    assert RULES.timeliness(last, NOW) is Timeliness.BACKFILL
    assert RULES.timeliness(last - timedelta(microseconds=1), NOW) is Timeliness.BEYOND


def test_the_live_table_keeps_twice_the_lateness() -> None:
    assert RULES.horizon == timedelta(seconds=660)


def test_a_window_is_named_by_its_start_and_back() -> None:
    start = window_start(datetime(2026, 12, 3, 15, 0, 59, 999, tzinfo=UTC), 60)
    assert format_start(start) == "2026-12-03T15:00:00Z"
    assert parse_start("2026-12-03T15:00:00Z") == start


SANTIAGO = ZoneInfo("America/Santiago")  # Arica's clocks: DST, a repeated hour each April


def _unmemoised_start(at: datetime, window_s: int) -> datetime:
    ts = int(at.astimezone(UTC).timestamp())
    return datetime.fromtimestamp(ts - ts % window_s, tz=UTC)


def _unmemoised_format(start: datetime) -> str:
    return start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@given(
    at=st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=-5)), SANTIAGO, ZoneInfo("America/New_York")]
        ),
    ),
    window_s=st.sampled_from([1, 60, 300, 3600]),
)
def test_the_memos_answer_as_the_functions_do(at: datetime, window_s: int) -> None:
    """window_start and format_start are memoised: whatever zone, offset or fold a datetime
    carries, and whichever equal datetime was asked first, the answer is the unmemoised one."""
    for asked in (at, at.replace(fold=1 - at.fold), at.astimezone(UTC)):
        assert window_start(asked, window_s) == _unmemoised_start(asked, window_s)
        assert format_start(asked) == _unmemoised_format(asked)


def test_the_repeated_hour_is_two_windows_in_either_order() -> None:
    """2026-04-04 23:30 in Santiago happens twice (fold 0 at UTC-3, fold 1 at UTC-4): the
    two are equal datetimes with one hash, and a memo keyed by the datetime alone gave the
    second the first's window, an hour off."""
    first = datetime(2026, 4, 4, 23, 30, tzinfo=SANTIAGO)
    second = first.replace(fold=1)
    assert first == second and hash(first) == hash(second)
    for pair in ((first, second), (second, first)):
        starts = [window_start(at, 60) for at in pair]
        names = [format_start(at) for at in pair]
        assert starts == [_unmemoised_start(at, 60) for at in pair]
        assert starts[1] - starts[0] == timedelta(hours=1 if pair[0] is first else -1)
        assert names == [_unmemoised_format(at) for at in pair]
