"""Pseudonymisation keys: keyed HMAC-SHA256 with key ids, rotation with an overlap.

Keys come from a secret file (YAML) or the ``HITO_PRIVACY__KEYS_JSON`` environment variable,
never from the repository (``infra/dev/`` holds a marked development set). A key is *current*
from its ``active_from`` until the next key's; the previous key stays valid for the configured
overlap after a rotation, and during that time every pseudonym is given under both keys, so
identifiers seen before, during and after the rotation still link.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from hito.files import SecretFileError, read_secret_yaml

PSEUDONYM_HEX_CHARS = 32  # 128 bits


class _KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: Annotated[str, Field(pattern=r"^k[0-9]{1,6}$")]
    secret: Annotated[str, Field(pattern=r"^[0-9a-f]{32,128}$")]
    active_from: AwareDatetime


class _KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keys: list[_KeyEntry] = Field(min_length=1)


@dataclass(frozen=True)
class PseudonymKey:
    key_id: str
    secret: bytes = field(repr=False)
    active_from: datetime


@dataclass(frozen=True)
class Keyring:
    keys: tuple[PseudonymKey, ...]  # by active_from, oldest first
    overlap: timedelta

    @classmethod
    def from_entries(cls, entries: list[_KeyEntry], overlap: timedelta) -> Keyring:
        ids = [e.id for e in entries]
        if len(set(ids)) != len(ids):
            raise ValueError("pseudonym key ids must be unique")
        keys = sorted(
            (PseudonymKey(e.id, bytes.fromhex(e.secret), e.active_from) for e in entries),
            key=lambda k: k.active_from,
        )
        return cls(tuple(keys), overlap)

    @classmethod
    def load(cls, *, path: Path | None, json_text: str | None, overlap: timedelta) -> Keyring:
        if json_text:
            try:
                entries = _KeysFile.model_validate_json(json_text).keys
            except ValidationError as exc:  # never repeat the input: it holds the keys
                kinds = sorted({e["type"] for e in exc.errors(include_input=False)})
                raise SecretFileError(f"HITO_PRIVACY__KEYS_JSON: {', '.join(kinds)}") from None
        elif path is not None:
            entries = read_secret_yaml(path, _KeysFile).keys
        else:
            raise ValueError("no pseudonymisation keys: set a keys file or HITO_PRIVACY__KEYS_JSON")
        return cls.from_entries(entries, overlap)

    def valid_at(self, at: datetime) -> tuple[PseudonymKey, ...]:
        """The key current at ``at`` first, then the previous one while the overlap lasts."""
        current_index = None
        for i, key in enumerate(self.keys):
            if key.active_from <= at:
                current_index = i
        if current_index is None:
            raise ValueError(f"no pseudonymisation key is active at {at.isoformat()}")
        current = self.keys[current_index]
        if current_index > 0 and at < current.active_from + self.overlap:
            return (current, self.keys[current_index - 1])
        return (current,)


def pseudonym(key: PseudonymKey, domain: str, value: str) -> str:
    """``"<key id>:<hex>"``; the domain (field name) keeps equal strings in different fields
    from linking."""
    mac = hmac.new(key.secret, f"{domain}\x00{value}".encode(), hashlib.sha256).hexdigest()
    return f"{key.key_id}:{mac[:PSEUDONYM_HEX_CHARS]}"
