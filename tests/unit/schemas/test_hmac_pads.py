"""hmac_sha256 (kept key pads) is hmac.digest for every key and message; signature_valid_consuming
decides as signature_valid does."""

from __future__ import annotations

import hmac
from typing import Any

from hypothesis import example, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from hito.schemas import hmac_pads
from hito.schemas.hmac_pads import BLOCK_BYTES, MAX_KEYS, hmac_sha256, hmac_sha256_once
from hito.schemas.signing import sign, signature_valid, signature_valid_consuming
from tests.unit.schemas.test_signing import _envelopes, _json

KEY = b"k" * 32


def _parsed(value: Any) -> Any:
    """A copy sharing no object between two places, as a freshly parsed document is (the
    consuming check's precondition; deepcopy keeps sharing)."""
    if isinstance(value, dict):
        return {k: _parsed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_parsed(v) for v in value]
    return value


@hyp_settings(max_examples=500, deadline=None)
@given(key=st.binary(max_size=3 * BLOCK_BYTES), message=st.binary(max_size=2000))
@example(key=b"", message=b"")
@example(key=b"\x00" * BLOCK_BYTES, message=b"x")
@example(key=b"\xff" * (BLOCK_BYTES + 1), message=b"x")  # longer than a block: hashed first
def test_hmac_sha256_is_hmac_digest(key: bytes, message: bytes) -> None:
    expected = hmac.digest(key, message, "sha256")
    hmac_pads._pads.pop(key, None)
    assert hmac_sha256_once(key, message) == expected
    assert key not in hmac_pads._pads  # nothing of the key kept
    assert hmac_sha256(key, message) == expected
    assert hmac_sha256(key, message) == expected  # from the kept pads


def test_pads_are_kept_per_key_and_bounded() -> None:
    hmac_pads._pads.clear()
    keys = [i.to_bytes(4, "big") * 8 for i in range(MAX_KEYS + 3)]
    for key in keys:
        assert hmac_sha256(key, b"m") == hmac.digest(key, b"m", "sha256")
    assert len(hmac_pads._pads) == 3  # started over once it held MAX_KEYS
    assert set(hmac_pads._pads) == set(keys[-3:])
    for key in keys[:5]:  # evicted keys are made again, equal
        assert hmac_sha256(key, b"m") == hmac.digest(key, b"m", "sha256")


@hyp_settings(max_examples=1000, deadline=None)
@given(envelope=_envelopes, wrong=st.booleans())
def test_consuming_check_decides_as_signature_valid(envelope: dict[str, Any], wrong: bool) -> None:
    envelope["sig"] = sign(envelope, b"x" * 32) if wrong else sign(envelope, KEY)
    expected = signature_valid(envelope, KEY)
    assert expected is not wrong
    assert signature_valid_consuming(_parsed(envelope), KEY) is expected


@hyp_settings(max_examples=1000, deadline=None)
@given(value=_json)
def test_consuming_check_accepts_any_json_value_signed(value: Any) -> None:
    envelope = {"v": value, "payload": {"w": value}}
    envelope["sig"] = sign(envelope, KEY)
    assert signature_valid_consuming(_parsed(envelope), KEY)


def test_consuming_check_refuses_what_has_no_canonical_form() -> None:
    assert not signature_valid_consuming({"v": float("nan"), "sig": "0" * 64}, KEY)
    assert not signature_valid_consuming({"v": 1}, KEY)  # no sig
    assert not signature_valid_consuming({"v": 1, "sig": 7}, KEY)


def test_consuming_check_takes_sig_and_swaps_numbers_in_place() -> None:
    envelope: dict[str, Any] = {"a": 1.0, "payload": {"x": 2.0, "y": 0.5}}
    envelope["sig"] = sign(envelope, KEY)
    assert signature_valid_consuming(envelope, KEY)
    assert envelope == {"a": 1, "payload": {"x": 2, "y": 0.5}}
    assert type(envelope["a"]) is int and type(envelope["payload"]["x"]) is int


def test_pseudonym_keys_are_never_kept() -> None:
    # Destroying an epoch key must leave nothing that computes its pseudonyms
    # (hito.pipeline.pseudonyms): no pads of it stay behind in this process.
    from hito.pipeline.pseudonyms import pseudonym

    key = b"\x42" * 32
    hmac_pads._pads.pop(key, None)
    made = pseudonym(key, "repeat_crossings", "document_number", "L898902C36", 20_000)
    expected = hmac.digest(key, b"repeat_crossings\x00document_number\x00L898902C36", "sha256")
    assert made == f"e20000:{expected.hex()[:32]}"
    assert key not in hmac_pads._pads
