"""Canonical form and HMAC-SHA256 signatures of events (shared by devices and the validator).

Canonical form: the envelope as a JSON object *without* its ``sig`` member, keys sorted at every
level, no insignificant whitespace, UTF-8 (non-ASCII not escaped), numbers in their shortest
round-trip form (as RFC 8785 / JCS for the values Hito uses). The signature is the lowercase hex
HMAC-SHA256 of those bytes under the device's key.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson


def canonical_bytes(envelope: dict[str, Any]) -> bytes:
    unsigned = {k: v for k, v in envelope.items() if k != "sig"}
    return orjson.dumps(unsigned, option=orjson.OPT_SORT_KEYS)


def sign(envelope: dict[str, Any], key: bytes) -> str:
    return hmac.new(key, canonical_bytes(envelope), hashlib.sha256).hexdigest()


def signature_valid(envelope: dict[str, Any], key: bytes) -> bool:
    given = envelope.get("sig")
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(sign(envelope, key), given)
