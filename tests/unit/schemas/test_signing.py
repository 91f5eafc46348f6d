"""The signed bytes are RFC 8785 (JCS): checked against Trail of Bits' ``rfc8785`` package, the
RFC's own examples, and the published test vectors (schemas/signing-vectors.json)."""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import uuid
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import example, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hito.cli import app
from hito.devices import Device, DeviceRegistry
from hito.pipeline.stages.validate import Accepted, validate
from hito.runtime import limits_of
from hito.schemas import signing_vectors
from hito.schemas.envelope import MAX_SEQ
from hito.schemas.registry import lookup
from hito.schemas.signing import (
    MAX_SAFE_INTEGER,
    CanonicalizationError,
    canonical_bytes,
    sign,
    signature_valid,
)
from hito.settings import HitoSettings

KEY = b"k" * 32


def _jcs(envelope: dict[str, Any]) -> bytes:
    return rfc8785.dumps({k: v for k, v in envelope.items() if k != "sig"})


# Floats of every magnitude, with the places where number forms change made likely.
_EDGE_FLOATS = [
    0.0,
    -0.0,
    5e-324,
    2.2250738585072014e-308,
    1e-7,
    9.999999999999999e-7,
    1e-6,
    1e-4,
    9.999999999999999e-5,
    0.1,
    1.0,
    123456789.0,
    2.0**52 + 0.5,
    2.0**53 - 1,
    2.0**53,
    2.0**53 + 2,
    1e16,
    999999999999999900000.0,
    1e21,
    1.7976931348623157e308,
]
_floats = (
    st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True)
    | st.sampled_from(_EDGE_FLOATS).flatmap(lambda f: st.sampled_from([f, -f]))
    | st.integers(-(2**53), 2**53).map(float)
    | st.builds(lambda m, e: m * 10.0**e, st.integers(-99999, 99999), st.integers(-30, 30))
)
# Any Unicode scalar (no lone surrogates: they have no UTF-8 form), controls and the
# characters whose UTF-16 order differs from their code point order made likely.
_chars = st.characters(exclude_categories=["Cs"]) | st.sampled_from(
    ["\x00", "\x1f", "\x7f", '"', "\\", "/", "\u2028", "\ue000", "\uffff", "\U00010000", "😀"]
)
_text = st.text(_chars, max_size=12)
_scalars = (
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER) | _floats | _text
)
_json = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=20,
)
_envelopes = st.fixed_dictionaries(
    {
        "event_id": st.uuids().map(str),
        "schema": st.sampled_from(["checkpoint.crossing/1", "sensor.reading/1"]),
        "device_id": _text,
        "site": _text,
        "seq": st.integers(0, MAX_SEQ),
        "event_time": st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
        "payload": st.dictionaries(_text, _json, max_size=10),
        "sig": st.text("0123456789abcdef", min_size=64, max_size=64),
    }
)


@hyp_settings(max_examples=1500, deadline=None)
@given(envelope=_envelopes)
def test_canonical_bytes_are_rfc8785_for_any_envelope(envelope: dict[str, Any]) -> None:
    assert canonical_bytes(envelope) == _jcs(envelope)


@hyp_settings(max_examples=1500, deadline=None)
@given(value=_json)
@example(value={"\uffff": 1, "\U00010000": 2})
@example(value={"a": {"\ue000": [], "😀": {}}})
def test_canonical_bytes_are_rfc8785_for_any_json_value(value: Any) -> None:
    assert canonical_bytes({"v": value, "sig": "x"}) == rfc8785.dumps({"v": value})


@hyp_settings(max_examples=3000, deadline=None)
@given(number=_floats)
def test_every_finite_double_is_written_as_ecmascript_does(number: float) -> None:
    assert canonical_bytes({"n": number}) == b'{"n":' + rfc8785.dumps(number) + b"}"


# RFC 8785 appendix B: IEEE 754 bit patterns and their JCS form (checked with node's String()).
_APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "expected"), _APPENDIX_B)
def test_rfc8785_appendix_b_numbers(bits: str, expected: str) -> None:
    (number,) = struct.unpack(">d", bytes.fromhex(bits))
    assert canonical_bytes({"n": number}) == b'{"n":' + expected.encode() + b"}"


def test_rfc8785_section_3_2_example() -> None:
    parsed = orjson.loads(
        b'{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        b' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        b' "literals": [null, true, false]}'
    )
    assert canonical_bytes(parsed) == (
        b'{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        b'"string":"\xe2\x82\xac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )


def test_keys_sort_by_utf16_code_units_not_code_points() -> None:
    # U+10000 is D800 DC00 in UTF-16, before U+E000 and U+FFFF; by code point it is after.
    assert canonical_bytes({"\uffff": 1, "\U00010000": 2, "\ue000": 3, "a": 4}) == (
        '{"a":4,"\U00010000":2,"\ue000":3,"\uffff":1}'.encode()
    )


def test_integral_floats_lose_their_fraction() -> None:
    assert canonical_bytes({"a": 1.0, "b": -0.0, "c": 1e16, "d": 2.0**60}) == (
        b'{"a":1,"b":0,"c":10000000000000000,"d":1152921504606847000}'
    )


def test_an_integer_beyond_2_53_is_signed_as_the_double_a_parser_reads() -> None:
    # JSON numbers are doubles to RFC 8785: a JavaScript device that parses 2^60 + 1 and
    # canonicalises it writes 1152921504606847000, and orjson parses that back as an int.
    for big in (2**60 + 1, -(2**60 + 1), 1152921504606847000, MAX_SAFE_INTEGER + 1):
        assert canonical_bytes({"n": big}) == b'{"n":' + rfc8785.dumps(float(big)) + b"}"
    with pytest.raises(CanonicalizationError):
        canonical_bytes({"n": 10**400})


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), -float("inf"), "\ud800", uuid.UUID(int=1), b"bytes", {1: "a"}],
)
def test_values_without_a_json_form_are_refused(value: Any) -> None:
    envelope = {"payload": {"v": [value]}, "sig": "0" * 64}
    with pytest.raises(CanonicalizationError):
        canonical_bytes(envelope)
    assert signature_valid(envelope, KEY) is False


def test_subclasses_of_json_types_sign_as_their_plain_value() -> None:
    class Mode(StrEnum):
        CAR = "car"

    class Level(IntEnum):
        HIGH = 3

    envelope = {"mode": Mode.CAR, "level": Level.HIGH, "pair": (1.0, "x")}
    assert canonical_bytes(envelope) == b'{"level":3,"mode":"car","pair":[1,"x"]}'


def test_sig_is_dropped_and_the_input_left_untouched() -> None:
    envelope = {"b": 1.0, "payload": {"x": 2.0}, "sig": "ff"}
    assert canonical_bytes(envelope) == b'{"b":1,"payload":{"x":2}}'
    assert envelope == {"b": 1.0, "payload": {"x": 2.0}, "sig": "ff"}
    assert type(envelope["b"]) is float


def test_sign_is_hmac_sha256_hex_of_the_canonical_bytes() -> None:
    envelope = {"seq": 1, "v": 0.5}
    expected = hmac.new(KEY, b'{"seq":1,"v":0.5}', hashlib.sha256).hexdigest()
    assert sign(envelope, KEY) == expected
    assert signature_valid({**envelope, "sig": expected}, KEY)
    assert not signature_valid({**envelope, "sig": expected}, b"other key")
    assert not signature_valid({**envelope, "sig": expected.upper()}, KEY)
    assert not signature_valid(envelope, KEY)


def test_a_device_signing_1_0_as_rfc8785_is_accepted_whatever_it_sends() -> None:
    # The firmware signs "processing_seconds":41 (JCS) and may send 41, 41.0 or 4.1e1.
    vector = _vector("checkpoint_crossing_event")
    signed = vector["envelope"]
    for literal in (b"41", b"41.0", b"4.1e1"):
        raw = orjson.dumps(signed).replace(
            b'"processing_seconds":41.0', b'"processing_seconds":' + literal
        )
        assert literal in raw
        assert signature_valid(orjson.loads(raw), bytes.fromhex(vector["key_hex"]))


# --- published vectors ---------------------------------------------------------------------


def _committed() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(signing_vectors.VECTORS_PATH.read_text(encoding="utf-8"))
    return doc


def _vector(name: str) -> dict[str, Any]:
    (case,) = [c for c in _committed()["cases"] if c["name"] == name]
    assert isinstance(case, dict)
    return case


def test_committed_vectors_have_not_drifted() -> None:
    committed = signing_vectors.VECTORS_PATH.read_text(encoding="utf-8")
    assert committed == signing_vectors.render(), (
        "run `hito schema export --dir schemas` and commit schemas/signing-vectors.json"
    )


def test_schema_export_writes_the_vectors(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["schema", "export", "--dir", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out" / "signing-vectors.json"
    assert out.read_text(encoding="utf-8") == signing_vectors.render()
    assert len(list((tmp_path / "out" / "jsonschema").glob("*.schema.json"))) == 5


def test_vectors_cover_the_number_forms_text_and_every_schema() -> None:
    cases = _committed()["cases"]
    events = sorted(c["envelope"]["schema"] for c in cases if c["event"])
    assert events == ["checkpoint.crossing/1", "drone.telemetry/1", "sensor.reading/1"]
    canonical = "".join(c["canonical"] for c in cases)
    for form in ('"one":1,', ":1e-7,", ":1e+21,", ":123456789,", ":5e-324,", '"negative_zero":0,'):
        assert form in canonical
    assert ":9007199254740991" in canonical
    assert "Perú" in canonical and "\U0001f600" in canonical and "\u2028" in canonical


@pytest.mark.parametrize("name", [c["name"] for c in _committed()["cases"]])
def test_signer_verifier_and_rfc8785_agree_with_each_vector(name: str) -> None:
    case = _vector(name)
    key = bytes.fromhex(case["key_hex"])
    envelope = case["envelope"]
    canonical = bytes.fromhex(case["canonical_hex"])
    assert canonical == case["canonical"].encode("utf-8")
    assert _jcs(envelope) == canonical  # the independent implementation
    assert canonical_bytes(envelope) == canonical
    assert hmac.new(key, canonical, hashlib.sha256).hexdigest() == case["sig"] == envelope["sig"]
    assert sign(envelope, key) == case["sig"]
    assert signature_valid(envelope, key)
    assert not signature_valid({**envelope, "sig": sign(envelope, b"x" * 32)}, key)


def test_event_vectors_pass_the_validate_stage(settings: HitoSettings) -> None:
    events = [c for c in _committed()["cases"] if c["event"]]
    registry = DeviceRegistry(
        {
            (device_id := c["envelope"]["device_id"]): Device(
                device_id,
                c["envelope"]["site"],
                entry.source,
                bytes.fromhex(c["key_hex"]),
            )
            for c in events
            if (entry := lookup(c["envelope"]["schema"])) is not None
        }
    )
    for case in events:
        raw = json.dumps(case["envelope"]).encode()  # as another language's encoder might
        result = validate(
            raw,
            registry=registry,
            limits=limits_of(settings.pipeline),
            now=datetime(2026, 11, 28, 18, 30, tzinfo=UTC),
        )
        assert isinstance(result, Accepted), (case["name"], result)
