"""Stage ``validate``: raw bytes -> a typed, signed, registered, clock-sane event, or a reason.

Pure: the clock (``now``), the registry and the limits are arguments (two memos, the skew
bounds of the last ``now`` and the devices of the registry in use, never change a verdict).
Never raises for any input bytes; every rejection carries a reason code and a detail that
names fields and error kinds only, never the event's values (they may be personal data).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from hito.devices import Device, DeviceRegistry
from hito.pipeline.stages.outcomes import Accepted, Limits, Rejected
from hito.schemas.envelope import Event
from hito.schemas.errors import describe, field_names
from hito.schemas.reasons import Reason
from hito.schemas.registry import REGISTRY, Source, lookup
from hito.schemas.signing import signature_valid_consuming

STAGE = "validate"
__all__ = ["STAGE", "Accepted", "Limits", "Rejected", "validate"]
_MAX_DETAIL_ERRORS = 5


def validate(
    raw: bytes,
    *,
    registry: DeviceRegistry,
    limits: Limits,
    now: datetime,
    expected_source: Source | None = None,
) -> Accepted | Rejected:
    result = _validate(raw, registry, limits, now, expected_source)
    if isinstance(result, Rejected) and result.device_id is not None:
        device = registry.get(result.device_id)
        if device is not None:  # a registered device: operators see its site
            return replace(result, site=device.site)
    return result


def _validate(
    raw: bytes,
    registry: DeviceRegistry,
    limits: Limits,
    now: datetime,
    expected_source: Source | None,
) -> Accepted | Rejected:
    if len(raw) > limits.max_event_bytes:
        return Rejected(Reason.OVERSIZED, f"{len(raw)} bytes > limit {limits.max_event_bytes}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # Also invalid UTF-8, NaN/Infinity literals and nesting deeper than orjson allows.
        return Rejected(Reason.MALFORMED_JSON, "not a single valid UTF-8 JSON document")
    if _has_duplicate_keys(raw, obj):
        # Ambiguous JSON: parsers disagree on which value wins (orjson and pydantic keep the
        # last), so a device, a proxy and Hito could each read a different event.
        return Rejected(Reason.MALFORMED_JSON, "an object repeats a key")
    if not isinstance(obj, dict):
        return Rejected(Reason.SCHEMA_VIOLATION, f"top level is {type(obj).__name__}, not object")
    device = _registered(obj, registry)
    device_id = None if device is None else device.device_id
    schema_name = obj.get("schema")
    if not isinstance(schema_name, str):
        return Rejected(Reason.SCHEMA_VIOLATION, "schema: missing or not a string", device_id)
    entry = lookup(schema_name)
    if entry is None:
        return Rejected(Reason.UNKNOWN_SCHEMA, "schema: not a registered schema", device_id)
    try:
        # model_validate_json's own work, without its Python wrapper (0.4 µs an event). pydantic
        # parses the bytes again: it alone decides validity (a second validator, e.g. msgspec
        # from orjson's dict, measured 1.8 against pydantic's 3.2-3.7 µs, but differs from it on
        # datetimes and UUIDs and the stages need the pydantic model anyway: no net gain).
        event: Event = entry.model.__pydantic_validator__.validate_json(raw, strict=True)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors(include_input=False)):
            # orjson took the bytes, pydantic's parser did not: nesting deeper than its limit
            # (about 200 levels; orjson's is 1024). Malformed, as any JSON Hito cannot read.
            return Rejected(
                Reason.MALFORMED_JSON, "JSON the schema validator cannot parse", device_id
            )
        return Rejected(Reason.SCHEMA_VIOLATION, _describe(exc), device_id)
    if expected_source is not None and entry.source != expected_source:
        return Rejected(
            Reason.SCHEMA_VIOLATION,
            f"schema {entry.name} does not belong on the {expected_source} topic",
            device_id,
        )
    if device is None:  # the event's device_id is obj's: the same document, validated
        return Rejected(Reason.UNKNOWN_DEVICE, "device_id: not registered")
    if device.revoked:
        return Rejected(Reason.UNKNOWN_DEVICE, "device_id: key revoked", device_id)
    if device.site != event.site or device.kind != entry.source:
        return Rejected(
            Reason.UNKNOWN_DEVICE, "device not registered for this site or source", device_id
        )
    # obj is not needed past this point: the check may consume it (no copy).
    if not signature_valid_consuming(obj, device.key):
        return Rejected(Reason.BAD_SIGNATURE, "sig: does not match the device key", device_id)
    earliest, latest = _clock_bounds(now, limits)
    at = event.event_time
    # A bound past the calendar (None: a limit of millennia) is decided on the skew itself.
    if (
        at > latest
        if latest is not None
        else at - now > timedelta(seconds=limits.max_future_skew_s)
    ):
        return Rejected(
            Reason.CLOCK_SKEW,
            f"event_time more than {limits.max_future_skew_s:.0f} s in the future "
            f"({_roughly(at - now)})",
            device_id,
        )
    if (
        at < earliest
        if earliest is not None
        else now - at > timedelta(seconds=limits.max_event_age_s)
    ):
        # Older than any window the pipeline can still revise (the backfill horizon): late,
        # whatever the reason (a device offline too long, or its clock).
        return Rejected(
            Reason.LATE_BEYOND_WINDOW,
            f"event_time beyond the backfill horizon of {limits.max_event_age_s:.0f} s "
            f"({_roughly(now - at)} in the past)",
            device_id,
        )
    return Accepted(event, entry.source, device)


def _roughly(skew: timedelta) -> str:
    """How far off an event_time is, in words an operator can act on (a clock minutes or
    days off), never to the second: the exact skew and the record's ``received_at`` would
    give the event's time to the second, finer than the clean zone's minute, and the number
    is the device's to choose (SPEC: no input-controlled text in a DLQ record)."""
    if skew < timedelta(hours=1):
        return "under an hour"
    if skew < timedelta(days=1):
        return "under a day"
    if skew < timedelta(days=30):
        return "under a month"
    return "a month or more"


class _RepeatedKey(Exception):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _RepeatedKey
    return obj


def _has_duplicate_keys(raw: bytes, parsed: Any) -> bool:
    """orjson cannot report repeated keys; the standard library's C scanner can, through
    object_pairs_hook (called once per object), at ~10 µs an event. First the fast path: when
    orjson writes the parsed value back to exactly the bytes received, no key was repeated
    (a repeated key is parsed once, so writing back would not reproduce it): compact JSON as
    most encoders and every Hito SDK write it takes 0.8 µs. Anything else (whitespace, key
    order, escapes, number forms) takes the full check. Runs only on bytes orjson accepted."""
    try:
        if orjson.dumps(parsed) == raw:
            return False
    except (orjson.JSONEncodeError, TypeError):
        pass  # e.g. an integer beyond 64 bits: the full check decides
    try:
        json.loads(raw, object_pairs_hook=_unique_pairs)
    except _RepeatedKey:
        return True
    except (ValueError, RecursionError):
        return False  # orjson's verdict stands
    return False


def _registered(obj: dict[str, Any], registry: DeviceRegistry) -> Device | None:
    """The registered device of the envelope's ``device_id``, or None (also the DLQ record's
    key: only a registered device's id; the registry only holds ids that match
    DEVICE_ID_PATTERN, checked when it is loaded)."""
    value = obj.get("device_id")
    return _devices.get(registry, value) if isinstance(value, str) else None


class _KnownDevices:
    """Devices looked up in a registry, kept for the next event of the same device.

    A registry is immutable (a reload makes a new one), so its entry for an id is always the
    same Device: kept, it is not looked up (CRC-32, bisection) and built again for every event
    (1.1 -> 0.1 µs in a loop; ingest 35 -> 30 µs an event without Kafka, load 2.3, measured
    as hito.bench.handlers now does: fewer objects for the collector, less code between
    events). At most ``MAX_KNOWN`` are kept (then it starts over), so a million devices cost
    no more memory than a few thousand; ids that are not registered are never kept (random
    ids cannot fill it). The registry and its devices are replaced together, as one
    reference."""

    MAX_KNOWN = 4096

    def __init__(self) -> None:
        self._state: tuple[DeviceRegistry | None, dict[str, Device]] = (None, {})

    def get(self, registry: DeviceRegistry, device_id: str) -> Device | None:
        state = self._state
        if state[0] is not registry:
            state = self._state = (registry, {})
        known = state[1]
        device = known.get(device_id)
        if device is None:
            index = registry.index_of(device_id)
            if index is None:
                return None
            device = registry.device(index, device_id)
            if len(known) >= self.MAX_KNOWN:
                known.clear()
            known[device_id] = device
        return device


_devices = _KnownDevices()


# The last bounds made: (now, limits, (earliest, latest)), replaced whole (one reference).
_Bounds = tuple[datetime | None, datetime | None]
_last_bounds: list[tuple[datetime, Limits, _Bounds]] = []


def _clock_bounds(now: datetime, limits: Limits) -> _Bounds:
    """``(now - max age, now + max future skew)``: an event_time before is late beyond the
    backfill horizon, one after is ``clock_skew``.
    ``t - now > d`` exactly when ``t > now + d`` (datetime arithmetic is exact), so comparing
    with the bounds decides as comparing the skew did; a batch asks with one ``now`` and one
    ``limits``, so the bounds are made once per batch, not per event (1.2 -> 0.1 µs). A bound
    beyond the calendar (years 1 to 9999) is None: the caller compares the skew itself."""
    if _last_bounds:
        last_now, last_limits, bounds = _last_bounds[0]
        if last_now is now and last_limits is limits:
            return bounds
    bounds = (
        _shifted(now, limits.max_event_age_s, earlier=True),
        _shifted(now, limits.max_future_skew_s, earlier=False),
    )
    _last_bounds[:] = [(now, limits, bounds)]
    return bounds


def _shifted(now: datetime, seconds: float, *, earlier: bool) -> datetime | None:
    """``now -`` (``earlier``) or ``+ timedelta(seconds=seconds)``; None past the calendar."""
    delta = timedelta(seconds=seconds)  # overflowing here raised before too: unchanged
    try:
        return now - delta if earlier else now + delta
    except OverflowError:
        return None


# Every field name of every registered schema (envelope and payloads, by alias): the names a
# DLQ detail may echo (hito.schemas.errors).
SCHEMA_NAMES = frozenset().union(*(field_names(entry.model) for entry in REGISTRY.values()))


def _describe(exc: ValidationError) -> str:
    return describe(exc, SCHEMA_NAMES, limit=_MAX_DETAIL_ERRORS)
