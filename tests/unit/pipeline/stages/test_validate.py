from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from hito.devices import DeviceRegistry
from hito.pipeline.stages.outcomes import Limits
from hito.pipeline.stages.validate import Accepted, Rejected, validate
from hito.runtime import limits_of
from hito.schemas.envelope import CheckpointCrossingEvent
from hito.schemas.reasons import Reason
from hito.schemas.signing import sign
from hito.settings import HitoSettings

NOW = datetime(2026, 11, 28, 18, 30, tzinfo=UTC)
DEVICE = "cl-chacalluta-ckpt-01"
DOC = "L898902C36"  # the ICAO 9303 specimen number, not a real person's


def _event(registry: DeviceRegistry, **changes: Any) -> dict[str, Any]:
    env: dict[str, Any] = {
        "event_id": "0b6f4c9e-6a43-4a53-9d34-7b8f0d3c2a11",
        "schema": "checkpoint.crossing/1",
        "device_id": DEVICE,
        "site": "chacalluta",
        "seq": 41,
        "event_time": (NOW - timedelta(seconds=3)).isoformat(),
        "payload": {
            "direction": "entry",
            "mode": "car",
            "lane": "L3",
            "document_type": "passport",
            "document_number": DOC,
            "nationality": "PER",
            "birth_year": 1987,
            "vehicle_plate": "BCDF-12",
            "outcome": "admitted",
            "processing_seconds": 41.5,
        },
    }
    env.update(changes)
    device = registry.get(env["device_id"])
    env["sig"] = sign(env, device.key if device else bytes(32))
    return env


def _run(raw: bytes, registry: DeviceRegistry, settings: HitoSettings) -> Accepted | Rejected:
    return validate(
        raw,
        registry=registry,
        limits=limits_of(settings.pipeline),
        now=NOW,
        expected_source="checkpoint",
    )


def test_valid_event_is_accepted_typed(registry: DeviceRegistry, settings: HitoSettings) -> None:
    result = _run(orjson.dumps(_event(registry)), registry, settings)
    assert isinstance(result, Accepted)
    assert result.source == "checkpoint"
    assert result.event.seq == 41
    assert isinstance(result.event, CheckpointCrossingEvent)
    assert result.event.payload.document_number == DOC
    assert result.event.event_time.tzinfo is not None


def _reject(raw: bytes, registry: DeviceRegistry, settings: HitoSettings) -> Rejected:
    result = _run(raw, registry, settings)
    assert isinstance(result, Rejected), result
    assert result.stage == "validate"
    assert DOC not in result.detail and "BCDF-12" not in result.detail
    return result


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda e, r: orjson.dumps(e)[:-7], Reason.MALFORMED_JSON),
        (lambda e, r: b"\xff\xfe" + orjson.dumps(e), Reason.MALFORMED_JSON),
        (lambda e, r: b'{"seq": NaN}', Reason.MALFORMED_JSON),
        (lambda e, r: b"[1, 2]", Reason.SCHEMA_VIOLATION),
        (
            lambda e, r: orjson.dumps({k: v for k, v in e.items() if k != "schema"}),
            Reason.SCHEMA_VIOLATION,
        ),
        (
            lambda e, r: orjson.dumps(_event(r, schema="checkpoint.crossing/2")),
            Reason.UNKNOWN_SCHEMA,
        ),
        (lambda e, r: orjson.dumps(_event(r, schema="sensor.reading/1")), Reason.SCHEMA_VIOLATION),
        (lambda e, r: orjson.dumps(_event(r, seq="41")), Reason.SCHEMA_VIOLATION),
        (
            lambda e, r: orjson.dumps(_event(r, event_time="2026-11-28T18:29:00")),
            Reason.SCHEMA_VIOLATION,
        ),
        (lambda e, r: orjson.dumps({**e, "extra": 1}), Reason.SCHEMA_VIOLATION),
        (lambda e, r: orjson.dumps({**e, "sig": "0" * 64}), Reason.BAD_SIGNATURE),
        (lambda e, r: orjson.dumps({**e, "seq": 42}), Reason.BAD_SIGNATURE),
        (
            lambda e, r: orjson.dumps(_event(r, device_id="zz-not-registered")),
            Reason.UNKNOWN_DEVICE,
        ),
        (lambda e, r: orjson.dumps(_event(r, site="santa-rosa")), Reason.UNKNOWN_DEVICE),
        (
            lambda e, r: orjson.dumps(
                _event(r, event_time=(NOW + timedelta(minutes=6)).isoformat())
            ),
            Reason.CLOCK_SKEW,
        ),
        (
            # Older than the backfill horizon (7 days): no window can take it any more.
            lambda e, r: orjson.dumps(_event(r, event_time=(NOW - timedelta(days=8)).isoformat())),
            Reason.LATE_BEYOND_WINDOW,
        ),
        (lambda e, r: orjson.dumps(e) + b" " * 70_000, Reason.OVERSIZED),
        # Nested deeper than pydantic's parser goes (about 200), within orjson's 1024: it was
        # a schema_violation "<root>: json_invalid".
        (
            lambda e, r: orjson.dumps({**e, "x": 0}).replace(b'"x":0', b'"x":' + _nested(300)),
            Reason.MALFORMED_JSON,
        ),
    ],
)
def test_each_bad_event_gets_its_reason(
    registry: DeviceRegistry, settings: HitoSettings, mutate: Any, reason: Reason
) -> None:
    assert _reject(mutate(_event(registry), registry), registry, settings).reason is reason


def test_future_skew_within_five_minutes_is_accepted(
    registry: DeviceRegistry, settings: HitoSettings
) -> None:
    ev = _event(registry, event_time=(NOW + timedelta(minutes=4)).isoformat())
    assert isinstance(_run(orjson.dumps(ev), registry, settings), Accepted)


def test_detail_never_echoes_values(registry: DeviceRegistry, settings: HitoSettings) -> None:
    ev = _event(registry)
    ev["payload"] = {**ev["payload"], "document_number": "lowercase-pii-123", "mystery": 1}
    ev["payload"]["L898902C36"] = "x"  # a value used as a key
    result = _reject(orjson.dumps(ev), registry, settings)
    assert "lowercase-pii-123" not in result.detail
    assert "payload.document_number: string_pattern_mismatch" in result.detail
    # Only names of the published schemas are echoed: an unknown field's name is the
    # device's text (issue #18: a field named after a document number reached operators).
    assert result.detail.count("payload.<unknown>: extra_forbidden") == 2
    assert "mystery" not in result.detail and "L898902C36" not in result.detail


def test_dlq_device_id_only_for_registered_devices(
    registry: DeviceRegistry, settings: HitoSettings
) -> None:
    bad_sig = {**_event(registry), "sig": "0" * 64}
    assert _reject(orjson.dumps(bad_sig), registry, settings).device_id == DEVICE
    stranger = _event(registry, device_id="zz-not-registered")
    assert _reject(orjson.dumps(stranger), registry, settings).device_id is None


@hyp_settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=2048))
def test_any_bytes_yield_a_result_never_an_exception(
    raw: bytes, registry: DeviceRegistry, settings: HitoSettings
) -> None:
    result = _run(raw, registry, settings)
    assert isinstance(result, Accepted | Rejected)
    if isinstance(result, Rejected):
        assert result.reason in Reason


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@hyp_settings(max_examples=300, deadline=None)
@given(
    mutation=st.dictionaries(
        st.sampled_from(
            [
                "event_id",
                "schema",
                "device_id",
                "site",
                "seq",
                "event_time",
                "payload",
                "sig",
                "other",
            ]
        ),
        _json,
        max_size=3,
    )
)
def test_json_mutations_of_a_valid_event_never_raise(
    mutation: dict[str, Any], registry: DeviceRegistry, settings: HitoSettings
) -> None:
    original = _event(registry)
    ev = {**original, **mutation}
    result = _run(orjson.dumps(ev), registry, settings)
    # Any real change to a signed event is rejected (schema or signature); none raises.
    assert isinstance(result, Accepted) == (orjson.dumps(ev) == orjson.dumps(original))


@pytest.mark.parametrize("level", ["envelope", "payload"])
def test_a_repeated_key_is_malformed_even_when_signed(
    registry: DeviceRegistry, settings: HitoSettings, level: str
) -> None:
    """`{"seq": 1, "seq": 99}` means different events to different parsers: refused, even
    though the last-wins reading is correctly signed."""
    raw = orjson.dumps(_event(registry))
    assert isinstance(_run(raw, registry, settings), Accepted)
    if level == "envelope":
        doubled = raw.replace(b'"seq":41', b'"seq":7,"seq":41', 1)
    else:
        doubled = raw.replace(b'"direction":"entry"', b'"direction":"exit","direction":"entry"', 1)
    assert doubled != raw
    rejected = _reject(doubled, registry, settings)
    assert rejected.reason is Reason.MALFORMED_JSON
    assert rejected.detail == "an object repeats a key"


@given(key=st.sampled_from(["event_id", "schema", "site", "event_time", "sig", "payload"]))
@hyp_settings(max_examples=20)
def test_any_repeated_envelope_key_is_refused(key: str) -> None:
    from hito.runtime import load_runtime

    runtime = load_runtime(HitoSettings())
    raw = orjson.dumps(_event(runtime.registry))
    # Repeat the key with its own value at the front: same meaning, still ambiguous JSON.
    value = orjson.dumps(orjson.loads(raw)[key])
    doubled = b"{" + orjson.dumps(key) + b":" + value + b"," + raw[1:]
    rejected = _reject(doubled, runtime.registry, runtime.settings)
    assert rejected.reason is Reason.MALFORMED_JSON


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"0" + b"]" * depth


@pytest.mark.parametrize(
    ("value", "verdict"),
    [(1e9, "accepted"), (-1e9, "accepted"), (1.7976931348623157e308, "refused"), (-2e9, "refused")],
)
def test_a_sensor_value_is_bounded(registry: DeviceRegistry, value: float, verdict: str) -> None:
    """DBL_MAX, a common "no reading" sentinel, was accepted: two in one minute and cell
    summed to inf in the aggregator, which its JSON changelog stored as null, and the next
    reading there failed every batch of its partition after a restart."""
    device = next(d for d in registry.devices.values() if d.kind == "sensor" and not d.revoked)
    env: dict[str, Any] = {
        "event_id": "0b6f4c9e-6a43-4a53-9d34-7b8f0d3c2a12",
        "schema": "sensor.reading/1",
        "device_id": device.device_id,
        "site": device.site,
        "seq": 7,
        "event_time": (NOW - timedelta(seconds=3)).isoformat(),
        "payload": {"sensor_type": "environment", "lat": -18.35, "lon": -70.33,
                    "detections": 0, "value": value, "unit": "lux", "battery_pct": 80.0},
    }  # fmt: skip
    env["sig"] = sign(env, device.key)
    limits = Limits(max_future_skew_s=300.0, max_event_age_s=7 * 86400.0)
    result = validate(
        orjson.dumps(env), registry=registry, limits=limits, now=NOW, expected_source="sensor"
    )
    if verdict == "accepted":
        assert isinstance(result, Accepted), result
    else:
        assert isinstance(result, Rejected)
        assert result.reason is Reason.SCHEMA_VIOLATION
        assert result.detail.startswith("payload.value: ")
