"""What an outbox (hito.device.outbox) takes and answers: its limits, its status, the records
it hands the sender, and the errors it raises instead of dropping anything quietly."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from hito.device.records import Record
from hito.device.segments import Position


class OutboxFull(RuntimeError):
    """The outbox refused new events: they would pass ``max_bytes``."""


class EventTooOld(ValueError):
    """The event is already older than the outbox's ``max_age_s``: it may not wait in it."""


# A device clock before this instant is not set: one without a real-time-clock battery boots
# at 1970 (or at a stale fake-hwclock time) until NTP steps it. Every queue time stamped meanwhile
# would be decades old once the clock is stepped, and the next expiry would delete them all
# (valid flight-log fixes with correct GPS times included): such an append is refused instead.
CLOCK_FLOOR_S = 1_735_689_600  # 2025-01-01T00:00:00Z, before any release of Hito


class ClockNotSet(RuntimeError):
    """The device's clock reads before :data:`CLOCK_FLOOR_S`: it has not been set. Nothing is
    stored; set the clock (NTP, GPS) and send again."""


class OutboxInterrupted(RuntimeError):
    """An append failed and its bytes could not be cut back: the outbox takes nothing more
    until it is reopened."""


class OutboxCorrupt(OSError):
    """Bytes the outbox had fsync'd no longer read back (a disk error, not a power cut)."""


@cache
def policy_max_age_s() -> float:
    """The privacy policy's retention for device outboxes (``device_outbox``), in seconds."""
    from hito.schemas.privacy.policy import load_policy

    return load_policy().retention_hours["device_outbox"] * 3600.0


@dataclass(frozen=True)
class OutboxLimits:
    max_bytes: int = 256 * 1024 * 1024
    # Each event waits at most this long, then expires. Above 3.5 days an event could reach
    # the pipeline older than its 7-day bound (it may be that old when queued, then wait).
    max_age_s: float = field(default_factory=policy_max_age_s)
    segment_bytes: int = 4 * 1024 * 1024
    # A segment whose events were all acknowledged is deleted once its first event is this old
    # (sooner would mean a new file, and a folder fsync, for nearly every event).
    release_acked_after_s: float = 60.0


@dataclass(frozen=True)
class Pending:
    """A waiting record, where it starts and where the next one starts."""

    record: Record
    start: Position
    end: Position


@dataclass(frozen=True)
class Expired:
    """Events removed by expiry (this time, or in total in :class:`OutboxStatus`)."""

    events: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    at_ms: int | None = None  # when (the last time)


@dataclass(frozen=True)
class OutboxStatus:
    pending_events: int
    pending_bytes: int
    first_appended_ms: int | None  # when the head of the queue was queued
    next_seq: int
    expired: Expired  # everything expiry removed from this outbox, ever
    problems: tuple[str, ...]  # what recovery found (torn tails, corrupt segments)
