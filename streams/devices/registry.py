"""The registry in compact arrays: a million devices in about 62 MB, looked up in a microsecond.

Entries keep their registration order (the order of the YAML, CSV or ``Device`` iterable), so
an entry's *index* is stable when devices are appended; per-device state of the worker (dedup,
last seen) lives in arrays indexed by it. Per entry: the id (in one blob, with end offsets), the
key (one blob, fixed width when every key has the same length), a site index (uint16) and one
byte of flags (kind, revoked). Lookup hashes the id (CRC-32: ids are not secret and collisions
are resolved by comparing ids, so a cheap hash is enough) and bisects a sorted copy of the
hashes, narrowed by a directory on their top 16 bits.
"""

from __future__ import annotations

import bisect
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np
from numpy.typing import NDArray

from hito.schemas.envelope import DEVICE_ID_PATTERN, SITE_PATTERN
from hito.schemas.registry import Source


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    site: str
    kind: Source
    key: bytes = field(repr=False)  # a secret: never in logs or test output
    revoked: bool = False
    # Its entry's position in the registry it came from (-1: not from a registry): per-device
    # state is kept in arrays by this index. Not part of what a device *is*.
    index: int = field(default=-1, compare=False, repr=False)


# The registry builds Devices with the slots' own setters: the same object as Device(...), in
# about half the time (a frozen dataclass's __init__ goes through object.__setattr__ per field,
# and validation builds one Device per event).
_new_device = object.__new__
_set_id, _set_site, _set_kind, _set_key, _set_revoked, _set_index = (
    getattr(Device, name).__set__
    for name in ("device_id", "site", "kind", "key", "revoked", "index")
)


class RegistryError(ValueError):
    """The registry or key file is inconsistent; raised at start-up."""


KINDS: tuple[Source, ...] = get_args(Source)
KIND_INDEX = {kind: i for i, kind in enumerate(KINDS)}
REVOKED = 0x80  # flag bit
KIND_MASK = 0x7F  # the low bits: the kind's index
MAX_SITES = 0x10000
MIN_KEY_BYTES = 16  # 128 bits
_DIRECTORY_BITS = 16
_valid_id = re.compile(DEVICE_ID_PATTERN).fullmatch
valid_site = re.compile(SITE_PATTERN).fullmatch
Status = Literal["active", "revoked"]


def id_hash(device_id: bytes) -> int:
    """The lookup hash of an id (stable across processes: it is stored in registry files)."""
    return zlib.crc32(device_id)


@dataclass(frozen=True)
class Columns:
    """A registry's arrays, as built from devices or read from a registry file. ``order``
    lists entry indexes by ascending ``hashes`` (which are sorted)."""

    sites: list[str]
    hashes: NDArray[np.uint32]
    order: NDArray[np.uint32]
    id_ends: NDArray[np.uint32]  # n + 1 offsets into ids; id_ends[0] == 0
    site_of: NDArray[np.uint16]
    flags: NDArray[np.uint8]
    ids: bytes
    keys: bytes
    key_width: int  # 0: keys of several lengths, see key_ends
    key_ends: NDArray[np.uint32] | None

    @classmethod
    def of(cls, devices: Iterable[Device]) -> Columns:
        """Validated columns of ``devices`` in their order (ids and sites well-formed, no id
        twice, keys of at least 128 bits, at most 65,536 sites)."""
        sites: list[str] = []
        site_index: dict[str, int] = {}
        seen: set[str] = set()
        ids, keys, site_of, flags = [], [], [], []
        for d in devices:
            # An invariant the validator relies on: every registered id is a well-formed one.
            if not _valid_id(d.device_id):
                raise RegistryError(f"device id not matching {DEVICE_ID_PATTERN}: {d.device_id!r}")
            if d.device_id in seen:
                raise RegistryError(f"device {d.device_id} listed twice")
            seen.add(d.device_id)
            if len(d.key) < MIN_KEY_BYTES:
                raise RegistryError(f"key of {d.device_id} is shorter than 128 bits")
            i = site_index.get(d.site)
            if i is None:
                if not valid_site(d.site):
                    raise RegistryError(f"site not matching {SITE_PATTERN}: {d.site!r}")
                if len(sites) >= MAX_SITES:
                    raise RegistryError("more than 65,536 sites")
                i = site_index[d.site] = len(sites)
                sites.append(d.site)
            ids.append(d.device_id.encode())
            keys.append(d.key)
            site_of.append(i)
            flags.append(KIND_INDEX[d.kind] | (REVOKED if d.revoked else 0))
        widths = {len(k) for k in keys}
        key_width = widths.pop() if len(widths) == 1 else 0
        hashes = np.fromiter(map(id_hash, ids), dtype=np.uint32, count=len(ids))
        order = np.argsort(hashes, kind="stable").astype(np.uint32)
        return cls(
            sites=sites,
            hashes=hashes[order],
            order=order,
            id_ends=_ends(ids),
            site_of=np.array(site_of, dtype=np.uint16),
            flags=np.array(flags, dtype=np.uint8),
            ids=b"".join(ids),
            keys=b"".join(keys),
            key_width=key_width,
            key_ends=None if key_width else _ends(keys),
        )


def _ends(parts: list[bytes]) -> NDArray[np.uint32]:
    ends = np.zeros(len(parts) + 1, dtype=np.uint64)
    np.cumsum(np.fromiter(map(len, parts), dtype=np.uint64, count=len(parts)), out=ends[1:])
    if ends[-1] >= 2**32:
        raise RegistryError("ids or keys take more than 4 GiB")
    return ends.astype(np.uint32)


def _spans(ends: NDArray[np.uint32]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(starts, lengths) of the parts whose end offsets are ``ends``."""
    starts = ends[:-1].astype(np.int64)
    return starts, ends[1:].astype(np.int64) - starts


class DeviceRegistry:
    """Registered devices by id (see the module's docstring for the layout)."""

    __slots__ = (
        "_dir",
        "_flags",
        "_hashes",
        "_id_ends",
        "_ids",
        "_key_ends",
        "_key_width",
        "_keys",
        "_n",
        "_order",
        "_site_of",
        "_sites",
        "columns",
    )

    def __init__(self, devices: Mapping[str, Device] | Iterable[Device] | Columns) -> None:
        """From ``{device_id: Device}``, Devices one by one, or a registry file's columns."""
        if isinstance(devices, Mapping):
            for device_id, d in devices.items():
                if device_id != d.device_id:
                    raise RegistryError(f"entry {device_id!r} holds device {d.device_id!r}")
            devices = devices.values()
        c = devices if isinstance(devices, Columns) else Columns.of(devices)
        self.columns = c
        self._n = len(c.flags)
        # memoryviews (``.data``): indexing one gives a Python int at C speed, where numpy
        # gives a numpy scalar, slower to make and to compute with.
        self._hashes = c.hashes.data
        self._order = c.order.data
        self._id_ends = c.id_ends.data
        self._site_of = c.site_of.data
        self._flags = c.flags.data
        self._key_ends = c.key_ends.data if c.key_ends is not None else None
        self._ids, self._keys, self._key_width = c.ids, c.keys, c.key_width
        self._sites = c.sites
        # _dir[b] .. _dir[b + 1]: the positions of hashes whose top 16 bits are b.
        tops = np.arange(2**_DIRECTORY_BITS + 1, dtype=np.uint64) << (32 - _DIRECTORY_BITS)
        self._dir = np.searchsorted(c.hashes, tops).astype(np.uint32).data

    def index_of(self, device_id: str) -> int | None:
        """The entry index of ``device_id``, or None when it is not registered."""
        wanted = device_id.encode()
        h = id_hash(wanted)
        top = h >> (32 - _DIRECTORY_BITS)
        hashes, ends, ids = self._hashes, self._id_ends, self._ids
        at = bisect.bisect_left(hashes, h, self._dir[top], self._dir[top + 1])
        size = len(wanted)
        while at < self._n and hashes[at] == h:
            i = self._order[at]
            start = ends[i]
            if ends[i + 1] - start == size and ids.startswith(wanted, start):
                return i
            at += 1
        return None

    def get(self, device_id: str) -> Device | None:
        i = self.index_of(device_id)
        return None if i is None else self.device(i, device_id)

    def device(self, i: int, device_id: str | None = None) -> Device:
        """Entry ``i`` (``device_id``: its id, when the caller has it already)."""
        if device_id is None:
            device_id = self.device_id(i)
        flags = self._flags[i]
        if self._key_ends is None:
            key = self._keys[i * self._key_width : (i + 1) * self._key_width]
        else:
            key = self._keys[self._key_ends[i] : self._key_ends[i + 1]]
        device: Device = _new_device(Device)
        _set_id(device, device_id)
        _set_site(device, self._sites[self._site_of[i]])
        _set_kind(device, KINDS[flags & KIND_MASK])
        _set_key(device, key)
        _set_revoked(device, bool(flags & REVOKED))
        _set_index(device, i)
        return device

    def device_id(self, i: int) -> str:
        return self._ids[self._id_ends[i] : self._id_ends[i + 1]].decode()

    def site_index(self, i: int) -> int:
        return int(self._site_of[i])

    @property
    def sites(self) -> list[str]:
        """Site names; ``site_index`` of an entry indexes this list."""
        return self._sites

    @property
    def devices(self) -> dict[str, Device]:
        """Every device in registration order (built on each call: for tools and tests, not
        the hot path)."""
        out = {}
        for i in range(self._n):
            device = self.device(i)
            out[device.device_id] = device
        return out

    def __len__(self) -> int:
        return self._n

    def __contains__(self, device_id: object) -> bool:
        return isinstance(device_id, str) and self.index_of(device_id) is not None

    def revoked_count(self) -> int:
        return int(np.count_nonzero(self.columns.flags & REVOKED))

    def same_entries(self, other: DeviceRegistry) -> bool:
        """True when ``other`` has this registry's ids at the same indexes (its own may go
        further: devices appended), so per-device state indexed by entry carries over."""
        mine, theirs = self.columns, other.columns
        n = self._n
        return (
            other._n >= n
            and bool(np.array_equal(mine.id_ends, theirs.id_ends[: n + 1]))
            and theirs.ids.startswith(mine.ids)
        )

    def moved_to(self, other: DeviceRegistry) -> NDArray[np.int64]:
        """For each of this registry's entries, its index in ``other`` (-1: not there).

        Vectorised (a registry reload at a million devices must not stall the worker): each
        entry's hash is looked up in ``other``'s sorted hashes, and the candidate's id compared
        byte for byte; only ids whose hash ``other`` holds for another id are looked up one
        by one."""
        n = self._n
        if self.same_entries(other):
            return np.arange(n, dtype=np.int64)
        out = np.full(n, -1, dtype=np.int64)
        if not n or not other._n:
            return out
        mine, theirs = self.columns, other.columns
        hashes = np.empty(n, dtype=np.uint32)
        hashes[mine.order] = mine.hashes  # by entry
        at = np.minimum(np.searchsorted(theirs.hashes, hashes), other._n - 1)
        there = theirs.hashes[at] == hashes
        candidate = theirs.order[at].astype(np.int64)
        my_start, my_len = _spans(mine.id_ends)
        their_start, their_len = _spans(theirs.id_ends)
        same = there & (my_len == their_len[candidate])
        my_ids = np.frombuffer(mine.ids, dtype=np.uint8)
        their_ids = np.frombuffer(theirs.ids, dtype=np.uint8)
        for chunk in np.array_split(np.flatnonzero(same), max(1, n // 65536)):
            if not len(chunk):
                continue
            lengths = my_len[chunk]
            firsts = np.cumsum(lengths) - lengths  # where each id starts in the chunk's bytes
            owner = np.repeat(np.arange(len(chunk)), lengths)
            within = np.arange(int(lengths.sum())) - firsts[owner]
            differ = (
                my_ids[my_start[chunk][owner] + within]
                != their_ids[their_start[candidate[chunk]][owner] + within]
            )
            same[chunk[np.add.reduceat(differ, firsts) > 0]] = False
        out[same] = candidate[same]
        for i in np.flatnonzero(there & ~same).tolist():  # another id with the same hash
            j = other.index_of(self.device_id(i))
            out[i] = -1 if j is None else j
        return out

    @classmethod
    def load(cls, devices_file: Path, keys_file: Path | None = None) -> DeviceRegistry:
        """From a registry file (``hito devices import``: it holds the keys, ``keys_file``
        is not read), or from the YAML registry and its keys file. The two are told apart
        by the registry file's first bytes, whatever the file names."""
        from hito.devices import binary, sources

        if binary.is_registry_file(devices_file):
            return cls(binary.read(devices_file))
        if keys_file is None:
            raise RegistryError(
                f"{devices_file}: a YAML registry needs its keys file (device_keys_file)"
            )
        return cls(sources.from_yaml(devices_file, keys_file))
