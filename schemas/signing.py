"""Canonical form and HMAC-SHA256 signatures of events (shared by devices and the validator).

The signature is ``sig`` = lowercase hex HMAC-SHA256, under the device's key, of the RFC 8785
(JSON Canonicalization Scheme, JCS) serialisation of the envelope without its ``sig`` member.
``schemas/signing-vectors.json`` holds worked examples; tests/unit/schemas/test_signing.py checks
this module against an independent RFC 8785 implementation.

How the bytes are made, fast enough for the validator's hot path: orjson with sorted keys already
writes JCS for strings (it escapes only ``"``, ``\\`` and U+0000..U+001F, as ``\\b \\t \\n \\f
\\r`` or lowercase ``\\u00xx``), for integers, for ``null``/``true``/``false`` and for every
non-integral float of magnitude 1e-4 or more (such floats are below 2**52; both write their
shortest round-trip digits in plain notation). The numbers where it differs are swapped before
it runs (``_jcs_object``): an integral float below 2**53 becomes the equal int (``1.0`` ->
``1``, ``-0.0`` -> ``0``), and any other float, or an int beyond I-JSON's exact range, becomes an
``orjson.Fragment`` with ECMAScript's digits (``_ecmascript_number``). orjson orders keys by code
point, JCS by UTF-16 code unit; the two agree unless an object's keys mix characters above
U+FFFF with U+E000..U+FFFF, so output that is not pure ASCII is re-encoded with JCS's order.
"""

from __future__ import annotations

import hmac
import math
from typing import Any

import orjson

from hito.schemas.hmac_pads import hmac_sha256

# I-JSON (RFC 7493): integers beyond this are not exactly representable as a double.
MAX_SAFE_INTEGER = 2**53 - 1
_SORTED = orjson.OPT_SORT_KEYS
# orjson writes a non-integral float as ECMAScript does from this magnitude up (lower, it uses
# exponents below 1e-5 where ECMAScript stays plain down to 1e-6). Every non-integral double is
# below 2**52, so the upper bound only keeps infinities out of the fast path.
_PLAIN_MIN = 1e-4
_NON_INTEGRAL_MAX = 2.0**52


class CanonicalizationError(ValueError):
    """The value has no RFC 8785 form (NaN, infinity, a lone surrogate, a non-JSON type)."""


def canonical_bytes(envelope: dict[str, Any]) -> bytes:
    """RFC 8785 bytes of ``envelope`` without its top-level ``sig`` member.

    Raises CanonicalizationError for values that JSON (I-JSON) cannot carry.
    """
    unsigned = dict(envelope)
    unsigned.pop("sig", None)
    return _canonical(unsigned, deep=False)


def _canonical(unsigned: dict[str, Any], *, deep: bool) -> bytes:
    """RFC 8785 bytes of ``unsigned``, whose numbers may be swapped in place: at its top
    level, and in nested objects too when ``deep``."""
    try:
        prepared = _jcs_object(unsigned, owned=True, deep=deep)
        out = orjson.dumps(prepared, option=_SORTED)
    except (orjson.JSONEncodeError, RecursionError) as exc:
        # orjson refuses lone surrogates, non-str keys and nesting past 254 levels
        raise CanonicalizationError(str(exc)) from exc
    if out.isascii():
        return out
    # Non-ASCII somewhere: only then can orjson's key order differ from JCS's.
    try:
        return orjson.dumps(_utf16_ordered(prepared))
    except orjson.JSONEncodeError as exc:  # pragma: no cover - the first dumps raised already
        raise CanonicalizationError(str(exc)) from exc


def sign(envelope: dict[str, Any], key: bytes) -> str:
    return hmac_sha256(key, canonical_bytes(envelope)).hex()


def signature_valid(envelope: dict[str, Any], key: bytes) -> bool:
    """True when ``sig`` is the signature of the rest; False (never raises) for anything else."""
    given = envelope.get("sig")
    if not isinstance(given, str):
        return False
    try:
        expected = sign(envelope, key)
    except CanonicalizationError:
        return False
    return hmac.compare_digest(expected, given)


def signature_valid_consuming(envelope: dict[str, Any], key: bytes) -> bool:
    """``signature_valid(envelope, key)``, for a caller that is done with ``envelope`` (the
    validator, with the dict it parsed): ``sig`` is popped and numbers JCS writes differently
    are swapped *in place*, nested objects included, so no dict is copied. Measured on the
    simulator's events: 1.0 µs less per event than ``signature_valid`` (3.9 -> 2.9 µs, copy
    and walk; load 1.5, 2 cores). ``envelope`` must share no object between two places (as
    a freshly parsed document): a number swapped in one place would be met again, swapped.
    Afterwards it holds no ``sig`` and possibly other number objects of equal value."""
    given = envelope.pop("sig", None)
    if not isinstance(given, str):
        return False
    try:
        expected = hmac_sha256(key, _canonical(envelope, deep=True)).hex()
    except CanonicalizationError:
        return False
    return hmac.compare_digest(expected, given)


def _jcs_object(obj: dict[str, Any], *, owned: bool = False, deep: bool = False) -> dict[str, Any]:
    """``obj`` with every number orjson would write differently from JCS swapped: changed in
    place when ``owned`` (nested objects too when ``deep``), else copied if anything changes.
    The validator calls this for every event, so the common types are tested inline, most
    frequent first."""
    out = obj
    for key, value in obj.items():
        kind = type(value)
        if kind is str:
            continue
        if kind is float:
            # _jcs_float's two common cases inline: this runs for every float of every event.
            if value.is_integer():
                if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
                    new: Any = int(value)
                else:
                    new = _jcs_float(value)
            elif (
                _PLAIN_MIN <= value < _NON_INTEGRAL_MAX or -_NON_INTEGRAL_MAX < value <= -_PLAIN_MIN
            ):
                continue
            else:
                new = _jcs_float(value)
        elif kind is int:
            if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
                continue
            new = _big_int(value)
        elif kind is dict:
            new = _jcs_object(value, owned=deep, deep=deep)
        else:
            new = _jcs_value(value)
        if new is value:
            continue
        if out is obj and not owned:
            out = dict(obj)
        out[key] = new
    return out


def _jcs_value(value: Any) -> Any:
    """One value made ready for orjson (the same object when nothing changes)."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is float:
        return _jcs_float(value)
    if kind is int:
        return value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else _big_int(value)
    if kind is dict:
        return _jcs_object(value)
    if kind is list:
        items = [_jcs_value(item) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return _jcs_value(_plain(value))


def _plain(value: Any) -> Any:
    """A subclass of a JSON type (a StrEnum, an IntEnum, a tuple) as the plain type's value,
    as RFC 8785 implementations read it; anything else has no JSON form."""
    if isinstance(value, str):
        return str.__str__(value)  # its characters, not the Enum's "Class.NAME" str()
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list | tuple):
        return list(value)
    raise CanonicalizationError(f"{type(value).__name__} is not a JSON value")


def _jcs_float(value: float) -> float | int | orjson.Fragment:
    if value.is_integer():
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return int(value)  # every integer here is exact, so its digits are ECMAScript's
    elif not math.isfinite(value):
        raise CanonicalizationError(f"{value} has no JSON form")
    elif abs(value) >= _PLAIN_MIN:
        return value  # orjson already writes ECMAScript's digits here
    return orjson.Fragment(_ecmascript_number(value))


def _big_int(value: int) -> orjson.Fragment:
    """An integer outside I-JSON's exact range, as JCS writes the double it reads as (a JSON
    number is a double to RFC 8785: 2**60 is 1152921504606847000)."""
    try:
        as_double = float(value)
    except OverflowError as exc:
        raise CanonicalizationError("integer beyond the range of a double") from exc
    return orjson.Fragment(_ecmascript_number(as_double))


def _ecmascript_number(value: float) -> str:
    """ECMAScript's Number::toString for a finite double (ECMA-262 7.1.12.1, RFC 8785 3.2.2.3):
    its shortest round-trip digits, plain from 1e-6 up to 1e21, else ``d.ddde+N`` / ``de-N``."""
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # repr gives the shortest round-trip digits (with the closest-to-value tie rule ECMAScript
    # also uses), as "ddd.ddd" or "d.ddde±XX".
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    # n: the decimal point sits after the n-th digit (value = 0.digits * 10**n).
    n = len(whole) + (int(exponent) if exponent else 0) - (len(whole + fraction) - len(digits))
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        power = n - 1
        text = f"{digits[0]}{'.' + digits[1:] if k > 1 else ''}e{'+' if power > 0 else '-'}"
        text += str(abs(power))
    return sign + text


def _utf16_ordered(value: Any) -> Any:
    """``value`` with every object's members in RFC 8785's order (by UTF-16 code units), for
    orjson to write as given (without OPT_SORT_KEYS)."""
    if type(value) is dict:
        try:
            members = sorted(value.items(), key=lambda kv: kv[0].encode("utf-16-be"))
        except (AttributeError, UnicodeEncodeError) as exc:
            raise CanonicalizationError("object keys must be valid Unicode strings") from exc
        return {k: _utf16_ordered(v) for k, v in members}
    if type(value) is list:
        return [_utf16_ordered(v) for v in value]
    return value
