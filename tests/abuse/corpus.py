"""Hostile inputs for the raw topics, each with the outcome Hito must give it (issue #7's
abuse suite). Used by the pure validate tests and by the integration test through a real
worker. Every value is synthetic (the document number is ICAO 9303's specimen)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from hito.devices import DeviceRegistry
from hito.schemas.signing import sign

DEVICE = "cl-chacalluta-ckpt-02"
HOMOGLYPH = "cl-chacalluta-ckpt-0\u0032".replace("c", "\u0441", 1)  # Cyrillic es, looks like c


@dataclass(frozen=True)
class Hostile:
    label: str
    key: bytes
    value: bytes
    expected: str  # a DLQ reason, "accepted" or "duplicate"


def _envelope(
    registry: DeviceRegistry, number: int, now: datetime, **changes: Any
) -> dict[str, Any]:
    env: dict[str, Any] = {
        "event_id": f"0b6f4c9e-6a43-4a53-9d34-{number:012d}",
        "schema": "checkpoint.crossing/1",
        "device_id": DEVICE,
        "site": "chacalluta",
        "seq": number,
        "event_time": (now - timedelta(seconds=2)).isoformat(),
        "payload": {
            "direction": "entry",
            "mode": "pedestrian",
            "lane": "L1",
            "document_type": "passport",
            "document_number": "L898902C36",
            "nationality": "PER",
            "birth_year": 1990,
            "outcome": "admitted",
            "processing_seconds": 30.0,
        },
    }
    env.update(changes)
    device = registry.get(DEVICE)
    assert device is not None
    env["sig"] = sign(env, device.key)
    return env


def corpus(registry: DeviceRegistry, now: datetime, first_seq: int = 1_000_000) -> list[Hostile]:
    """In sending order: the replay entries come after the event they replay."""
    key = DEVICE.encode()
    seq = iter(range(first_seq, first_seq + 1000))

    def signed(**changes: Any) -> bytes:
        return orjson.dumps(_envelope(registry, next(seq), now, **changes))

    valid = signed()
    replay_source = orjson.loads(valid)
    tampered = dict(replay_source, seq=replay_source["seq"] + 500)  # old signature kept
    forged = _envelope(registry, next(seq), now)
    forged["sig"] = "f" * len(forged["sig"])
    no_sig = _envelope(registry, next(seq), now)
    del no_sig["sig"]
    homoglyph = _envelope(registry, next(seq), now)
    homoglyph["device_id"] = HOMOGLYPH
    dup_keys = signed().replace(b'"site":"chacalluta"', b'"site":"santa-rosa","site":"chacalluta"')
    deep = b'{"schema":"checkpoint.crossing/1","payload":' + b"[" * 5000 + b"]" * 5000 + b"}"
    big_inside = signed(payload={"lane": "L" * 60_000})
    return [
        Hostile("a valid event (control)", key, valid, "accepted"),
        Hostile("the same bytes replayed later", key, valid, "duplicate"),
        Hostile(
            "replay with a new seq and the old signature",
            key,
            orjson.dumps(tampered),
            "bad_signature",
        ),
        Hostile("forged signature", key, orjson.dumps(forged), "bad_signature"),
        Hostile("no signature", key, orjson.dumps(no_sig), "schema_violation"),
        Hostile("huge payload (1 MB)", key, b'{"x":"' + b"A" * 1_000_000 + b'"}', "oversized"),
        Hostile("a string field of 60 kB", key, big_inside, "schema_violation"),
        Hostile("nesting 5000 deep", key, deep, "malformed_json"),
        Hostile(
            "NaN literal",
            key,
            signed().replace(b'"processing_seconds":30.0', b'"processing_seconds":NaN'),
            "malformed_json",
        ),
        Hostile(
            "Infinity literal",
            key,
            signed().replace(b'"processing_seconds":30.0', b'"processing_seconds":Infinity'),
            "malformed_json",
        ),
        Hostile(
            "invalid UTF-8",
            key,
            signed().replace(b'"lane":"L1"', b'"lane":"L\xff\xfe"'),
            "malformed_json",
        ),
        Hostile(
            "a lone UTF-16 surrogate",
            key,
            signed().replace(b'"lane":"L1"', b'"lane":"\\ud800"'),
            "malformed_json",
        ),
        Hostile(
            "homoglyph device id", HOMOGLYPH.encode(), orjson.dumps(homoglyph), "schema_violation"
        ),
        Hostile("repeated key", key, dup_keys, "malformed_json"),
        Hostile(
            "event time in 1970",
            key,
            signed(event_time="1970-01-01T00:00:00+00:00"),
            "late_beyond_window",
        ),
        Hostile(
            "event time in 2999", key, signed(event_time="2999-01-01T00:00:00+00:00"), "clock_skew"
        ),
        Hostile(
            "event time without offset",
            key,
            signed(event_time="2026-11-28T12:00:00"),
            "schema_violation",
        ),
        Hostile("seq as a string", key, signed(seq="41"), "schema_violation"),
        Hostile("negative seq", key, signed(seq=-1), "schema_violation"),
        Hostile("seq of 2^63 (past the limit)", key, signed(seq=2**63), "schema_violation"),
        Hostile(
            "seq of 2^53 (past JSON's exact integers)", key, signed(seq=2**53), "schema_violation"
        ),
        Hostile(
            "unknown schema version", key, signed(schema="checkpoint.crossing/9"), "unknown_schema"
        ),
        Hostile("an extra field", key, signed(extra="x"), "schema_violation"),
        Hostile(
            "unregistered device",
            b"zz-rogue-01",
            orjson.dumps(dict(_envelope(registry, next(seq), now), device_id="zz-rogue-01")),
            "unknown_device",
        ),
        Hostile(
            "message key is another device", b"cl-chacalluta-ckpt-03", signed(), "schema_violation"
        ),
        Hostile("top level is an array", key, b"[1,2,3]", "schema_violation"),
        Hostile("empty message", key, b"", "malformed_json"),
        Hostile("null", key, b"null", "schema_violation"),
    ]
