"""Event-time windows: the one place that turns a time into its window and back.

Windows are tumbling, aligned to the Unix epoch, in UTC; a window is named by its start as
``YYYY-MM-DDTHH:MM:SSZ`` (the text sorts like the time, which eviction relies on).
"""

from __future__ import annotations

from datetime import UTC, datetime

_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def window_start(at: datetime, window_s: int) -> datetime:
    """The start of the window holding ``at`` (an aware datetime)."""
    ts = int(at.astimezone(UTC).timestamp())
    return datetime.fromtimestamp(ts - ts % window_s, tz=UTC)


def window_start_of(timestamp_s: float, window_s: int) -> datetime:
    """The same for a Unix time."""
    ts = int(timestamp_s)
    return datetime.fromtimestamp(ts - ts % window_s, tz=UTC)


def format_start(start: datetime) -> str:
    return start.astimezone(UTC).strftime(_FORMAT)


def parse_start(text: str) -> datetime:
    return datetime.strptime(text, _FORMAT).replace(tzinfo=UTC)
