"""No free text into the clean zone: an identifier typed into any string field of any schema
(envelope or payload) is rejected by validation, or never appears in the clean event's bytes.

The fields are read from the models' JSON Schemas, so a string field added later is covered
without changing this test."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hito.device import sdk
from hito.devices import DeviceRegistry
from hito.pipeline.keystore import Chain, KeyStore, Segment
from hito.pipeline.pseudonyms import epoch_of
from hito.pipeline.stages.anonymise import anonymise, encode
from hito.pipeline.stages.outcomes import Accepted, Limits
from hito.pipeline.stages.validate import validate
from hito.schemas.privacy.policy import Policy, load_policy
from hito.schemas.registry import REGISTRY, SchemaEntry

NOW = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
KEYS = KeyStore(
    Path("/nonexistent"),
    {"repeat_crossings": Chain(86400, (Segment(epoch_of(NOW, 86400), b"\x07" * 32),))},
).lookup
PAYLOADS: dict[str, dict[str, Any]] = {
    "checkpoint.crossing/1": {
        "direction": "entry",
        "mode": "car",
        "lane": "L3",
        "document_type": "passport",
        "document_number": "P4455667",
        "nationality": "PER",
        "birth_year": 1987,
        "vehicle_plate": "ABCD-12",
        "outcome": "admitted",
        "processing_seconds": 41.5,
    },
    "sensor.reading/1": {
        "sensor_type": "environment",
        "lat": -18.35,
        "lon": -70.37,
        "detections": 0,
        "value": 21.5,
        "unit": "degC",
        "battery_pct": 80.0,
    },
    "drone.telemetry/1": {
        "flight_id": "F20261203-01",
        "lat": -18.35,
        "lon": -70.37,
        "alt_m": 120.0,
        "speed_mps": 9.5,
        "heading_deg": 180.0,
        "battery_pct": 70.0,
        "detections": 1,
        "operator_id": "op-123",
    },
}

_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
document_numbers = st.text(alphabet=_UPPER + "0123456789", min_size=8, max_size=10).filter(
    lambda s: any(c.isdigit() for c in s) and any(c.isalpha() for c in s)
)
plates = st.builds(
    lambda letters, digits: f"{letters}-{digits}",
    st.text(alphabet="BCDFGHJKLPRSTVWXYZ", min_size=4, max_size=4),
    st.integers(10, 99),
)
names = st.builds(
    lambda first, last: f"{first} {last}",
    st.sampled_from(["María José", "Juan", "Rosa", "Luis Alberto", "Ana"]),
    st.sampled_from(["Quispe Mamani", "González", "Condori", "Flores Huanca"]),
)
identifiers = st.one_of(document_numbers, plates, names, document_numbers.map(str.lower))


def _is_text(prop: dict[str, Any]) -> bool:
    return prop.get("type") == "string" or any(
        b.get("type") == "string" for b in prop.get("anyOf", [])
    )


def string_fields() -> list[tuple[str, str, str]]:
    """(schema, "envelope" | "payload", field) for every string field of every schema."""
    out = []
    for name, entry in REGISTRY.items():
        doc = entry.model.model_json_schema(by_alias=True)
        out += [(name, "envelope", f) for f, p in doc["properties"].items() if _is_text(p)]
        payload = entry.model.model_fields["payload"].annotation
        assert isinstance(payload, type) and hasattr(payload, "model_json_schema")
        props = payload.model_json_schema()["properties"]
        out += [(name, "payload", f) for f, p in props.items() if _is_text(p)]
    return out


FIELDS = string_fields()


def test_the_fields_are_found_in_every_schema() -> None:
    envelope = {"event_id", "schema", "device_id", "site", "event_time", "sig"}
    assert {(s, f) for s, w, f in FIELDS if w == "envelope"} == {
        (s, f) for s in REGISTRY for f in envelope
    }
    assert {f"{s.split('.')[0]}.{f}" for s, w, f in FIELDS if w == "payload"} == {
        *(f"checkpoint.{f}" for f in ("direction", "mode", "lane", "document_type")),
        *(f"checkpoint.{f}" for f in ("document_number", "nationality", "vehicle_plate")),
        "checkpoint.outcome",
        "sensor.sensor_type",
        "sensor.unit",
        "drone.flight_id",
        "drone.operator_id",
    }


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


def _device(registry: DeviceRegistry, entry: SchemaEntry) -> Any:
    return next(d for d in registry.devices.values() if d.kind == entry.source and not d.revoked)


@pytest.mark.parametrize(("schema", "where", "field"), FIELDS, ids=lambda v: str(v))
@settings(max_examples=40, deadline=None)
@given(identifier=identifiers)
def test_an_identifier_in_any_string_field_is_rejected_or_never_downstream(
    schema: str, where: str, field: str, identifier: str, registry: DeviceRegistry, policy: Policy
) -> None:
    entry = REGISTRY[schema]
    device = _device(registry, entry)
    env = sdk.envelope(
        schema=schema,
        device_id=device.device_id,
        site=device.site,
        seq=1,
        event_time=NOW,
        payload=PAYLOADS[schema],
    )
    (env if where == "envelope" else env["payload"])[field] = identifier
    if field != "sig":
        sdk.with_signature(env, device.key)
    else:
        env["sig"] = identifier
    result = validate(orjson.dumps(env), registry=registry, limits=Limits(), now=NOW)
    if not isinstance(result, Accepted):
        return
    clean = encode(anonymise(result.event, policy, KEYS).clean)
    assert identifier.encode() not in clean, (field, identifier)
    assert identifier.lower().encode() not in clean.lower(), (field, identifier)


def test_the_search_can_fail_a_value_kept_is_found(
    registry: DeviceRegistry, policy: Policy
) -> None:
    entry = REGISTRY["checkpoint.crossing/1"]
    device = _device(registry, entry)
    env = sdk.build_event(
        schema=entry.name,
        device_id=device.device_id,
        site=device.site,
        seq=1,
        event_time=NOW,
        payload=PAYLOADS[entry.name],
        key=device.key,
    )
    result = validate(orjson.dumps(env), registry=registry, limits=Limits(), now=NOW)
    assert isinstance(result, Accepted)
    clean = encode(anonymise(result.event, policy, KEYS).clean)
    assert b'"PER"' in clean and b"P4455667" not in clean and b"L3" not in clean
