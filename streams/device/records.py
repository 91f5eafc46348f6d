"""The outbox's record format: length-prefixed, checksummed, so a reader finds the end of the
good data in any bytes (a torn tail after a power cut, a cut file, garbage appended).

One record::

    length  u32 big-endian   bytes of body (HEADER_BODY + the event)
    crc     u32 big-endian   CRC-32 of the length field and the body
    body    seq u64 | event_time_ms i64 | appended_ms i64 | source u8 | event (signed JSON)

The source byte's high bit says "more records of the same append follow" (``more_in_batch``):
every record of a batch but its last has it. A power cut during an append can leave a prefix
of the batch on the disk, each record whole and checksummed; recovery
(hito.device.segments) cuts a trailing run of flagged records, so an append that never
returned stored all of its records (the disk kept them all) or none, never a part. A record
without the bit ends its append (every record written before the bit existed reads so: each
was its own). An SDK older than the bit reads a flagged record as an unknown source, that
is as damage, and cuts there: the SDK on a device is never downgraded past this format.

:func:`decode` never raises: it returns the good records up to the first one that is
incomplete or fails its checksum, and where that is.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from hito.schemas.registry import SOURCES, Source

_FRAME = struct.Struct(">II")  # length, crc
_BODY = struct.Struct(">QqqB")  # seq, event_time_ms, appended_ms, source
FRAME_BYTES = _FRAME.size
HEADER_BYTES = _FRAME.size + _BODY.size
# Far above an event's size limit (64 KiB): a larger length is garbage, not a record.
MAX_EVENT_BYTES = 1024 * 1024
_SOURCE_INDEX = {s: i for i, s in enumerate(SOURCES)}
_MORE_IN_BATCH = 0x80  # in the source byte
assert len(SOURCES) < _MORE_IN_BATCH


@dataclass(frozen=True, slots=True)
class Record:
    seq: int
    event_time_ms: int
    appended_ms: int
    source: Source
    event: bytes  # the signed event, exactly the bytes sent to Kafka
    # Written by Outbox.append, read back by decode; not part of the record's identity.
    more_in_batch: bool = field(default=False, compare=False)

    @property
    def size(self) -> int:
        return HEADER_BYTES + len(self.event)


def encode(record: Record) -> bytes:
    if len(record.event) > MAX_EVENT_BYTES:
        raise ValueError(f"an event of {len(record.event)} bytes is over {MAX_EVENT_BYTES}")
    body = (
        _BODY.pack(
            record.seq,
            record.event_time_ms,
            record.appended_ms,
            _SOURCE_INDEX[record.source] | (_MORE_IN_BATCH if record.more_in_batch else 0),
        )
        + record.event
    )
    length = struct.pack(">I", len(body))
    return length + struct.pack(">I", zlib.crc32(body, zlib.crc32(length))) + body


@dataclass(frozen=True, slots=True)
class Decoded:
    """``records`` with the offset each starts at; ``end`` is where the good data stops;
    ``problem`` says why it stops there (None: ``end`` is the end of the bytes)."""

    records: list[tuple[int, Record]]
    end: int
    problem: str | None


def decode(data: bytes | memoryview, start: int = 0, limit: int | None = None) -> Decoded:
    """Records from ``data[start:]``, at most ``limit`` of them."""
    view = memoryview(data)
    out: list[tuple[int, Record]] = []
    pos = start
    while pos < len(view) and (limit is None or len(out) < limit):
        if len(view) - pos < FRAME_BYTES:
            return Decoded(out, pos, "incomplete record header")
        length, crc = _FRAME.unpack_from(view, pos)
        if length < _BODY.size or length > _BODY.size + MAX_EVENT_BYTES:
            return Decoded(out, pos, f"impossible record length {length}")
        body_start = pos + FRAME_BYTES
        if len(view) - body_start < length:
            return Decoded(out, pos, "incomplete record")
        body = view[body_start : body_start + length]
        if zlib.crc32(body, zlib.crc32(view[pos : pos + 4])) != crc:
            return Decoded(out, pos, "checksum mismatch")
        seq, event_ms, appended_ms, source = _BODY.unpack_from(body)
        more, source = bool(source & _MORE_IN_BATCH), source & ~_MORE_IN_BATCH
        if source >= len(SOURCES):
            return Decoded(out, pos, f"unknown source {source}")
        event = bytes(body[_BODY.size :])
        out.append((pos, Record(seq, event_ms, appended_ms, SOURCES[source], event, more)))
        pos = body_start + length
    return Decoded(out, pos, None)
