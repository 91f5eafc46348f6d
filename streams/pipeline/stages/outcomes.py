"""What a stage decides about an event, shared by every stage and agent, and the limits the
validation stage applies (a small value, so no stage imports the settings object)."""

from __future__ import annotations

from dataclasses import dataclass

from hito.devices import Device
from hito.schemas.envelope import Event
from hito.schemas.reasons import Reason
from hito.schemas.registry import Source


@dataclass(frozen=True)
class Accepted:
    event: Event
    source: Source
    device: Device  # the registry's entry: its device_id is the one string all state keys on


@dataclass(frozen=True)
class Rejected:
    """An event the pipeline will not count: the reason code of SPEC.md, the stage that
    decided, a ``detail`` naming schema fields and error kinds only (never input values), and
    the device (and its site) when it is a registered one (the DLQ record's key)."""

    reason: Reason
    detail: str
    device_id: str | None = None
    stage: str = "validate"
    site: str | None = None  # the registered device's site, when the device is known


@dataclass(frozen=True)
class Limits:
    """What a raw event may be: size before parsing, how far ahead its clock may be, and how
    old it may be (the backfill horizon: no window older than that can be revised)."""

    max_event_bytes: int = 64 * 1024
    max_future_skew_s: float = 300.0
    max_event_age_s: float = 7 * 86400.0
