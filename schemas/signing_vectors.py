"""Published signature test vectors: ``schemas/signing-vectors.json``, for device makers.

Each case is an object as a device would send it (``sig`` included), the key, the exact RFC 8785
bytes that are signed and the signature, all made by ``hito.schemas.signing``. ``hito schema
export`` rewrites the file; a unit test fails when the committed file differs from what the code
produces. Cases marked ``"event": true`` are checked against their schema here, so the file
never shows a device an event the validator would refuse. The key is a public test vector key.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import orjson

from hito.schemas.registry import lookup
from hito.schemas.signing import canonical_bytes, sign

# Package data of hito.schemas: the committed vectors travel in the wheel.
VECTORS_PATH = Path(str(files("hito.schemas").joinpath("signing-vectors.json")))
# Public, for test vectors only: never provision it on a device. Its bytes spell out what it is.
TEST_VECTOR_KEY = b"hito-test-vector-key-NOT-SECRET!"

_EVENT_ID = "0b6f4c9e-6a43-4a53-9d34-7b8f0d3c2a{:02d}"


def _case(name: str, note: str, envelope: dict[str, Any], *, event: bool) -> dict[str, Any]:
    signed = {**envelope, "sig": sign(envelope, TEST_VECTOR_KEY)}
    if event:
        entry = lookup(str(envelope["schema"]))
        if entry is None:
            raise ValueError(f"{name}: unknown schema")
        entry.model.model_validate_json(orjson.dumps(signed), strict=True)
    canonical = canonical_bytes(signed)
    return {
        "name": name,
        "note": note,
        "event": event,
        "key_hex": TEST_VECTOR_KEY.hex(),
        "envelope": signed,
        "canonical": canonical.decode("utf-8"),
        "canonical_hex": canonical.hex(),
        "sig": signed["sig"],
    }


def cases() -> list[dict[str, Any]]:
    return [
        _case(
            "checkpoint_crossing_event",
            "A checkpoint.crossing/1 event; processing_seconds 41.0 is signed as 41.",
            {
                "event_id": _EVENT_ID.format(1),
                "schema": "checkpoint.crossing/1",
                "device_id": "cl-chacalluta-ckpt-01",
                "site": "chacalluta",
                "seq": 41,
                "event_time": "2026-11-28T18:29:57+00:00",
                "payload": {
                    "direction": "entry",
                    "mode": "car",
                    "lane": "L3",
                    "document_type": "passport",
                    "document_number": "L898902C36",  # ICAO 9303's specimen, not a person's
                    "nationality": "PER",
                    "birth_year": 1987,
                    "vehicle_plate": "BCDF-12",
                    "outcome": "admitted",
                    "processing_seconds": 41.0,
                },
            },
            event=True,
        ),
        _case(
            "sensor_reading_event",
            "A sensor.reading/1 event at the largest seq (2^53 - 1); value 1e-7 is signed as "
            "1e-7, battery_pct 100.0 as 100.",
            {
                "event_id": _EVENT_ID.format(2),
                "schema": "sensor.reading/1",
                "device_id": "cl-concordia-ir-07",
                "site": "sector-concordia",
                "seq": 2**53 - 1,
                "event_time": "2026-11-28T15:29:57.250-03:00",
                "payload": {
                    "sensor_type": "infrared",
                    "lat": -18.3525,
                    "lon": -70.379,
                    "detections": 2,
                    "value": 1e-7,
                    "unit": "W/m2",
                    "battery_pct": 100.0,
                },
            },
            event=True,
        ),
        _case(
            "drone_telemetry_event",
            "A drone.telemetry/1 event; heading_deg 0.0 is signed as 0, alt_m 120.0 as 120.",
            {
                "event_id": _EVENT_ID.format(3),
                "schema": "drone.telemetry/1",
                "device_id": "cl-arica-drone-02",
                "site": "sector-escritos",
                "seq": 7,
                "event_time": "2026-11-28T18:29:57.5+00:00",
                "payload": {
                    "flight_id": "F-2026-1128-03",
                    "lat": -18.371,
                    "lon": -70.362,
                    "alt_m": 120.0,
                    "speed_mps": 12.5,
                    "heading_deg": 0.0,
                    "battery_pct": 63.7,
                    "detections": 0,
                    "operator_id": "op-0042",
                },
            },
            event=True,
        ),
        _case(
            "numbers",
            "ECMAScript number forms (RFC 8785 section 3.2.2.3): integral doubles have no "
            "fraction, plain notation from 1e-6 up to 1e21, exponents without '+0' padding, "
            "-0 is 0, integers exact up to 2^53 - 1.",
            {
                "one": 1.0,
                "tenth": 0.1,
                "ten_millionth": 1e-7,
                "millionth": 0.000001,
                "e16": 1e16,
                "e21": 1e21,
                "e23": 1e23,
                "integral": 123456789.0,
                "third": 333333333.3333333,
                "smallest_subnormal": 5e-324,
                "largest": 1.7976931348623157e308,
                "negative_zero": -0.0,
                "negative": -2.5e-8,
                "max_safe_integer": 2**53 - 1,
                "min_safe_integer": -(2**53 - 1),
            },
            event=False,
        ),
        _case(
            "strings",
            "Only the quotation mark, the reverse solidus and U+0000..U+001F are escaped (as "
            "\\b \\t \\n \\f \\r, else lowercase \\u00xx); everything else is literal UTF-8, "
            "U+007F (after U+001F in controls) and U+2028/U+2029 (line_separators) included.",
            {
                "place": "Chacalluta\u2013Santa Rosa, Perú ñandú €",
                "emoji": "\U0001f600",
                "controls": "\x00\x01\b\t\n\x0b\f\r\x1f\x7f",
                "quote_backslash_slash": '"\\/',
                "line_separators": "\u2028\u2029",
            },
            event=False,
        ),
        _case(
            "key_order",
            "Members sorted by UTF-16 code units (RFC 8785 section 3.2.3's example): the emoji "
            "(surrogates D83D DE00) sorts before U+FB33, unlike an order by code point.",
            {
                "\u20ac": "Euro Sign",
                "\r": "Carriage Return",
                "\ufb33": "Hebrew Letter Dalet With Dagesh",
                "1": "One",
                "\U0001f600": "Emoji: Grinning Face",
                "\u0080": "Control",
                "\u00f6": "Latin Small Letter O With Diaeresis",
            },
            event=False,
        ),
        _case(
            "nesting",
            "Nested objects are sorted at every level; arrays keep their order; literals as is.",
            {
                "z": {"b": [3, 2.0, {"y": None, "x": True}], "a": False},
                "a": [],
                "m": {},
            },
            event=False,
        ),
    ]


def render() -> str:
    doc = {
        "description": (
            "Hito event signature test vectors. sig = lowercase hex HMAC-SHA256 under the "
            "device key of the RFC 8785 (JCS) canonical form of the envelope without its sig "
            "member. For each case: parse `envelope` as JSON, drop `sig`, canonicalise: the "
            "bytes must equal `canonical_hex` (`canonical` is the same bytes as UTF-8 text), "
            "and the HMAC under bytes.fromhex(key_hex) must equal `sig`. Cases with event=true "
            "are valid events of their schema; the others exercise canonicalisation only."
        ),
        "key_note": (
            "key_hex is a PUBLIC TEST VECTOR KEY (the ASCII bytes of "
            f"{TEST_VECTOR_KEY.decode()!r}): never provision it on a device."
        ),
        "generated_by": "hito schema export (hito.schemas.signing_vectors)",
        "cases": cases(),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def write(path: Path = VECTORS_PATH) -> Path:
    path.write_text(render(), encoding="utf-8")
    return path
