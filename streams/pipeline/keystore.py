"""The pseudonym key store: per purpose, the ratchet key of the oldest epoch still open.

One JSON file (mode 0600, written to a temporary file, fsync'd, renamed over the old one, and
the directory fsync'd) holds, per purpose with a linkability horizon, a *chain*: its epoch
length and one or more segments ``{from_epoch, key}``, where ``key`` is the key of epoch
``from_epoch`` and later epochs' keys are ratcheted from it (``hito.pipeline.pseudonyms``). A
second segment is a rotation: a fresh random key that takes over from its epoch on.

Destroying keys moves each chain's first segment forward to the oldest epoch still open
(:func:`~hito.pipeline.pseudonyms.first_open_epoch`) and rewrites the file: the old key is
then nowhere in the store, and the ratchet cannot go back to it. Workers on one host share the
file (changes are made under an exclusive lock on ``<store>.lock``, after reading it again);
workers on several hosts each hold a copy made from the same file at provisioning and reach
the same keys by epoch number (docs/privacy.md, "Keys").

The file is a secret: whoever holds it can recompute the pseudonyms of every epoch from its
first one on (until a rotation). Errors name the file and the problem, never its content (an
unreadable store is a ``SecretFileError``, like every secret file's).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hito.files import SecretFileError, exclusive_lock
from hito.pipeline.pseudonyms import KEY_BYTES, epoch_of, first_open_epoch, ratchet_forward

FORMAT = "hito.pseudonym-keys/1"


class KeyStoreError(RuntimeError):
    """The key store is missing, unreadable or does not fit the policy."""


class _SegmentDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    from_epoch: Annotated[int, Field(ge=0)]
    key: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class _ChainDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    epoch_s: Annotated[int, Field(ge=3600)]
    chain: list[_SegmentDoc] = Field(min_length=1)


class _StoreDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    format: str = FORMAT
    purposes: dict[str, _ChainDoc]


@dataclass(frozen=True)
class Segment:
    from_epoch: int
    key: bytes = field(repr=False)


@dataclass(frozen=True)
class Chain:
    """One purpose's keys: ``segments`` by ``from_epoch``, each ratcheted until the next."""

    epoch_s: int
    segments: tuple[Segment, ...]

    @property
    def first_epoch(self) -> int:
        return self.segments[0].from_epoch

    def key(self, epoch: int) -> bytes | None:
        """Epoch ``epoch``'s key, or None when it is before the chain (destroyed)."""
        current = None
        for segment in self.segments:
            if segment.from_epoch <= epoch:
                current = segment
        if current is None:
            return None
        return ratchet_forward(current.key, epoch - current.from_epoch)

    def destroyed_before(self, epoch: int) -> Chain:
        """The chain without any key of an epoch before ``epoch``."""
        if epoch <= self.first_epoch:
            return self
        later = [s for s in self.segments if s.from_epoch >= epoch]
        if later and later[0].from_epoch == epoch:
            return Chain(self.epoch_s, tuple(later))
        first = self.key(epoch)
        assert first is not None
        return Chain(self.epoch_s, (Segment(epoch, first), *later))

    def rotated(self, from_epoch: int, key: bytes) -> Chain:
        """A fresh key from ``from_epoch`` on (a rotation given again for the same or a later
        epoch replaces the earlier one)."""
        kept = tuple(s for s in self.segments if s.from_epoch < from_epoch)
        if not kept:
            raise KeyStoreError(f"a rotation from epoch {from_epoch} would replace every key")
        return Chain(self.epoch_s, (*kept, Segment(from_epoch, key)))


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


class KeyStore:
    """The store file and this process's view of it. ``lookup`` reads memory only (the hot
    path); every change re-reads the file under the lock, applies itself and writes it back."""

    def __init__(self, path: Path, chains: dict[str, Chain]) -> None:
        self.path = path
        self._chains = chains
        self._cache: dict[tuple[str, int], bytes] = {}

    # -- reading ---------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path) -> KeyStore:
        return cls(path, _read(path))

    @property
    def chains(self) -> dict[str, Chain]:
        return dict(self._chains)

    def lookup(self, purpose: str, epoch: int) -> bytes | None:
        """The key of ``purpose`` for ``epoch``; None when it was destroyed (or the purpose has
        no chain). A :data:`~hito.pipeline.pseudonyms.KeyLookup`."""
        cached = self._cache.get((purpose, epoch))
        if cached is not None:
            return cached
        chain = self._chains.get(purpose)
        key = chain.key(epoch) if chain is not None else None
        if key is not None:
            if len(self._cache) > 64:  # a handful of epochs is all a worker ever needs
                self._cache.clear()
            self._cache[(purpose, epoch)] = key
        return key

    # -- changing --------------------------------------------------------------------------

    @classmethod
    def provision(cls, path: Path, epochs: dict[str, int], now: datetime, grace_s: int) -> KeyStore:
        """A new store with a fresh random key per purpose (``epochs``: purpose -> epoch
        length), starting at the oldest epoch open at ``now``. Refuses to overwrite a store."""
        with exclusive_lock(_lock_path(path)):
            if path.exists():
                raise KeyStoreError(f"{path}: a key store exists already")
            chains = {
                purpose: Chain(
                    epoch_s, (Segment(first_open_epoch(now, epoch_s, grace_s), new_key()),)
                )
                for purpose, epoch_s in epochs.items()
            }
            _write(path, chains)
        return cls(path, chains)

    def add_missing(self, epochs: dict[str, int], now: datetime, grace_s: int) -> list[str]:
        """Give each purpose of ``epochs`` without a chain a fresh one (development stores);
        returns the purposes added."""
        added: list[str] = []

        def change(chains: dict[str, Chain]) -> dict[str, Chain]:
            for purpose, epoch_s in epochs.items():
                if purpose not in chains:
                    first = first_open_epoch(now, epoch_s, grace_s)
                    chains[purpose] = Chain(epoch_s, (Segment(first, new_key()),))
                    added.append(purpose)
            return chains

        self._update(change)
        return added

    def destroy_expired(self, now: datetime, grace_s: int) -> dict[str, int]:
        """Destroy every key of an epoch closed at ``now``; returns purpose -> the first epoch
        still held, for each chain that lost keys."""
        moved: dict[str, int] = {}

        def change(chains: dict[str, Chain]) -> dict[str, Chain]:
            for purpose, chain in chains.items():
                first = first_open_epoch(now, chain.epoch_s, grace_s)
                if first > chain.first_epoch:
                    chains[purpose] = chain.destroyed_before(first)
                    moved[purpose] = first
            return chains

        self._update(change)
        return moved

    def rotate(self, purpose: str, from_epoch: int, key: bytes, now: datetime) -> None:
        """Use ``key`` from epoch ``from_epoch`` on. Only a future epoch: a key changed within
        an epoch would give one person two pseudonyms in it."""

        def change(chains: dict[str, Chain]) -> dict[str, Chain]:
            chain = chains.get(purpose)
            if chain is None:
                raise KeyStoreError(f"{self.path}: no keys for purpose {purpose}")
            if from_epoch <= epoch_of(now, chain.epoch_s):
                raise KeyStoreError(
                    f"a rotation takes effect at a future epoch boundary: epoch {from_epoch} "
                    f"has begun (now is epoch {epoch_of(now, chain.epoch_s)})"
                )
            chains[purpose] = chain.rotated(from_epoch, key)
            return chains

        self._update(change)

    def reload(self) -> None:
        self._chains = _read(self.path)
        self._cache.clear()

    def _update(self, change: Callable[[dict[str, Chain]], dict[str, Chain]]) -> None:
        with exclusive_lock(_lock_path(self.path)):
            before = _read(self.path)
            after = change(dict(before))
            if after != before:
                _write(self.path, after)
            self._chains = after
            self._cache.clear()


def read_chain_file(path: Path) -> dict[str, Chain]:
    """A store file's chains (another host's store, or a rotation's seed file)."""
    return _read(path)


def write_chain_file(path: Path, chains: dict[str, Chain]) -> None:
    _write(path, chains)


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _read(path: Path) -> dict[str, Chain]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyStoreError(
            f"{path}: no pseudonym key store (provision one: hito policy keys init)"
        ) from None
    try:
        doc = _StoreDoc.model_validate_json(data)
    except ValidationError as exc:  # never repeat the input: it holds the keys
        where = sorted({".".join(map(str, e["loc"])) for e in exc.errors(include_input=False)})
        raise SecretFileError(f"{path}: not a key store ({', '.join(where[:5])})") from None
    if doc.format != FORMAT:
        raise SecretFileError(f"{path}: not a key store of format {FORMAT}")
    chains = {}
    for purpose, chain in doc.purposes.items():
        segments = tuple(Segment(s.from_epoch, bytes.fromhex(s.key)) for s in chain.chain)
        if [s.from_epoch for s in segments] != sorted({s.from_epoch for s in segments}):
            raise SecretFileError(f"{path}: purpose {purpose}: segments out of order")
        chains[purpose] = Chain(chain.epoch_s, segments)
    return chains


def _write(path: Path, chains: dict[str, Chain]) -> None:
    doc = {
        "format": FORMAT,
        "purposes": {
            purpose: {
                "epoch_s": chain.epoch_s,
                "chain": [{"from_epoch": s.from_epoch, "key": s.key.hex()} for s in chain.segments],
            }
            for purpose, chain in sorted(chains.items())
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself is durable: the old file cannot come back
    finally:
        os.close(directory)
