"""The registry file a million devices load from in a fraction of a second.

Written by ``hito devices import`` from the YAML registry and keys, or from a CSV (they are
validated there); read by workers (``DeviceRegistry.load``) straight into the registry's arrays,
with no per-device Python object. It holds the keys, so it is written 0600, atomically.

Layout (little-endian): a header (magic ``HITO-REG``, format version, key width, entry
count, section lengths, SHA-256 of the body), then the body's sections, each padded to 8
bytes: site names (UTF-8, one per line), the sorted id hashes (uint32), the entry order of
those hashes (uint32), the id end offsets (uint32, n + 1), the site index (uint16), the flags
(uint8), the key end offsets (uint32, n + 1; only when keys have several lengths), the ids,
the keys. A file is taken whole or not at all: a wrong size or checksum is refused with the
reason, never with its content.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hito.devices.registry import (
    KIND_MASK,
    KINDS,
    MIN_KEY_BYTES,
    REVOKED,
    Columns,
    RegistryError,
    valid_site,
)
from hito.files import write_private

MAGIC = b"HITO-REG"
VERSION = 1
# magic, version, key width, entries, sites length, ids length, keys length, body SHA-256
_HEADER = struct.Struct("<8sHHIIQQ32s")
_ID_BYTES = b"abcdefghijklmnopqrstuvwxyz0123456789-"  # DEVICE_ID_PATTERN's characters
_ID_LENGTHS = (3, 64)  # and its lengths


class RegistryFileError(RegistryError):
    """A registry file that is not whole or not one this version reads."""


def is_registry_file(path: Path) -> bool:
    """True when ``path`` starts like a registry file (the YAML registry cannot); False for
    a file that cannot be read (its loader then says why)."""
    try:
        with path.open("rb") as fh:
            return fh.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def _pad(n: int) -> int:
    return -n % 8


def _sections(c: Columns, sites: bytes) -> list[bytes]:
    parts: list[bytes | NDArray[Any]] = [sites, c.hashes, c.order, c.id_ends, c.site_of, c.flags]
    if c.key_ends is not None:
        parts.append(c.key_ends)
    parts += [c.ids, c.keys]
    return [
        p if isinstance(p, bytes) else np.ascontiguousarray(p, p.dtype.newbyteorder("<")).tobytes()
        for p in parts
    ]


def encode(c: Columns) -> bytes:
    sites = "\n".join(c.sites).encode()
    body = b"".join(s + bytes(_pad(len(s))) for s in _sections(c, sites))
    header = _HEADER.pack(
        MAGIC,
        VERSION,
        c.key_width,
        len(c.flags),
        len(sites),
        len(c.ids),
        len(c.keys),
        hashlib.sha256(body).digest(),
    )
    return header + body


def write(path: Path, c: Columns) -> int:
    """Write ``c`` to ``path`` (0600, atomically); returns the file's size."""
    data = encode(c)
    write_private(path, data)
    return len(data)


def read(path: Path) -> Columns:
    """The columns of a registry file, checked: whole (size and checksum), this format
    version, and every field in range. Raises RegistryFileError saying what is wrong.

    Each section is read into its own buffer, which the arrays then view: the registry in
    memory is the file's size, with no copy."""
    with path.open("rb") as fh:
        header = fh.read(_HEADER.size)
        if len(header) < _HEADER.size:
            raise RegistryFileError(f"{path}: truncated registry file (no complete header)")
        magic, version, key_width, n, sites_len, ids_len, keys_len, digest = _HEADER.unpack(header)
        if magic != MAGIC:
            raise RegistryFileError(f"{path}: not a registry file")
        if version != VERSION:
            raise RegistryFileError(
                f"{path}: registry file version {version}, this version reads {VERSION}"
            )
        lengths = [sites_len, 4 * n, 4 * n, 4 * (n + 1), 2 * n, n]
        if not key_width:
            lengths.append(4 * (n + 1))
        lengths += [ids_len, keys_len]
        expected = _HEADER.size + sum(size + _pad(size) for size in lengths)
        actual = os.fstat(fh.fileno()).st_size
        if actual != expected:
            what = "truncated" if actual < expected else "has trailing bytes"
            raise RegistryFileError(
                f"{path}: registry file {what} ({actual:,} bytes, its header says {expected:,})"
            )
        body = hashlib.sha256()
        sections: list[bytes] = []
        for size in lengths:
            section = fh.read(size + _pad(size))
            body.update(section)
            sections.append(section[:size] if _pad(size) else section)
    if body.digest() != digest:
        raise RegistryFileError(f"{path}: registry file corrupted (checksum mismatch)")

    def array(i: int, dtype: str) -> Any:
        return np.frombuffer(sections[i], dtype=np.dtype(dtype))

    c = Columns(
        sites=sections[0].decode().split("\n") if sites_len else [],
        hashes=array(1, "<u4"),
        order=array(2, "<u4"),
        id_ends=array(3, "<u4"),
        site_of=array(4, "<u2"),
        flags=array(5, "u1"),
        ids=sections[-2],
        keys=sections[-1],
        key_width=key_width,
        key_ends=None if key_width else array(6, "<u4"),
    )
    _check(path, c)
    return c


def _check(path: Path, c: Columns) -> None:
    """Every field in range, so that lookups cannot fail on a file that passed the checksum
    but was not written by this version's ``encode`` (validation proper is the import's)."""
    n = len(c.flags)

    def bad(what: str) -> RegistryFileError:
        return RegistryFileError(f"{path}: registry file inconsistent ({what})")

    if len(set(c.sites)) != len(c.sites) or not all(map(valid_site, c.sites)):
        raise bad("site names")
    if n and (not np.all(c.hashes[1:] >= c.hashes[:-1]) or int(c.order.max()) >= n):
        raise bad("hash index")
    # In uint32, offsets that go backwards give a huge length: caught by the maximum.
    lengths = c.id_ends[1:] - c.id_ends[:-1]
    if int(c.id_ends[0]) != 0 or int(c.id_ends[-1]) != len(c.ids):
        raise bad("id offsets")
    if n and (lengths.min() < _ID_LENGTHS[0] or lengths.max() > _ID_LENGTHS[1]):
        raise bad("id lengths")
    if c.ids.translate(None, _ID_BYTES):
        raise bad("id characters")
    if n and int(c.site_of.max()) >= len(c.sites):
        raise bad("site index")
    if n and int((c.flags & KIND_MASK).max()) >= len(KINDS):
        raise bad("kind")
    if np.any(c.flags & ~np.uint8(KIND_MASK | REVOKED)):
        raise bad("flags")
    if c.key_ends is None:
        if c.key_width < MIN_KEY_BYTES or len(c.keys) != n * c.key_width:
            raise bad("key width")
    else:
        key_lengths = c.key_ends[1:] - c.key_ends[:-1]
        if int(c.key_ends[0]) != 0 or int(c.key_ends[-1]) != len(c.keys):
            raise bad("key offsets")
        if n and (key_lengths.min() < MIN_KEY_BYTES or key_lengths.max() > len(c.keys)):
            raise bad("key lengths")
