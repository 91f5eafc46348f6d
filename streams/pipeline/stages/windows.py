"""Event-time windows: the one place that turns a time into its window and back, and says
whether an event is live, a revision of an older window, or too old to count.

Windows are tumbling, aligned to the Unix epoch, in UTC; a window is named by its start as
``YYYY-MM-DDTHH:MM:SSZ`` (the text sorts like the time, which eviction relies on).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from functools import lru_cache

_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


# The aggregator asks both for every clean event, and a batch's events share a few minutes:
# memoised, 1.0 and 2.1 µs become about 0.2 each (strftime is the dearer), about 3 µs of a
# worker's 80 per event. The memo's key is the datetime *and its UTC offset*: two datetimes of
# one zone that differ only in ``fold`` (the repeated hour when clocks go back) are equal and
# hash alike, yet are an hour apart; with the offset, equal keys are one instant. Naive
# datetimes (local time, whatever the zone is then) are not memoised. 4,096 entries: a few
# hundred KB at most.
_MEMO = 4096


def _window_start(at: datetime, _offset: timedelta | None, window_s: int) -> datetime:
    ts = int(at.astimezone(UTC).timestamp())
    return datetime.fromtimestamp(ts - ts % window_s, tz=UTC)


def _format_start(start: datetime, _offset: timedelta | None) -> str:
    return start.astimezone(UTC).strftime(_FORMAT)


_window_start_memo = lru_cache(maxsize=_MEMO)(_window_start)
_format_start_memo = lru_cache(maxsize=_MEMO)(_format_start)


def window_start(at: datetime, window_s: int) -> datetime:
    """The start of the window holding ``at`` (an aware datetime)."""
    if at.tzinfo is None:
        return _window_start(at, None, window_s)
    return _window_start_memo(at, at.utcoffset(), window_s)


def window_start_of(timestamp_s: float, window_s: int) -> datetime:
    """The same for a Unix time."""
    ts = int(timestamp_s)
    return datetime.fromtimestamp(ts - ts % window_s, tz=UTC)


def format_start(start: datetime) -> str:
    if start.tzinfo is None:
        return _format_start(start, None)
    return _format_start_memo(start, start.utcoffset())


def parse_start(text: str) -> datetime:
    return datetime.strptime(text, _FORMAT).replace(tzinfo=UTC)


class Timeliness(Enum):
    """How an event stands to its window, by the worker's clock."""

    LIVE = "live"  # its window is open, or closed at most the allowed lateness ago
    BACKFILL = "backfill"  # closed longer ago, within the backfill horizon: a revision
    BEYOND = "beyond"  # older than the horizon: late_beyond_window


@dataclass(frozen=True)
class WindowRules:
    window_s: int
    allowed_lateness_s: int
    backfill_horizon_s: int

    @property
    def horizon(self) -> timedelta:
        """How long after its start a live window stays in the worker's table once written
        (twice the lateness); older windows live in the archive (docs/aggregation.md)."""
        return timedelta(seconds=self.window_s + 2 * self.allowed_lateness_s)

    @property
    def revisable_for(self) -> timedelta:
        """How long after its start a window may still be revised: the horizon counts from
        the window's end, like the lateness (what the archive must keep, and how long)."""
        return timedelta(seconds=self.window_s + self.backfill_horizon_s)

    def timeliness(self, start: datetime, now: datetime) -> Timeliness:
        """Where an event of the window starting at ``start`` belongs. A window is revisable
        while its end is at most ``backfill_horizon_s`` ago (``revisable_for``)."""
        closed_for = (now - start).total_seconds() - self.window_s
        if closed_for <= self.allowed_lateness_s:
            return Timeliness.LIVE
        if closed_for <= self.backfill_horizon_s:
            return Timeliness.BACKFILL
        return Timeliness.BEYOND
