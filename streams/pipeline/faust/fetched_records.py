"""Records read from fetched bytes that a hostile or broken device cannot turn into a crash.

The broker stores a producer's record batch as the producer wrote it, after checks that leave
two things aiokafka 0.14 cannot survive. Either one made every fetch of the partition fail or
kill the worker, and then the next worker that took the partition: the partition never moved
again, and there was no DLQ record or reason.

- **A header key that is not UTF-8.** Kafka's header keys are strings. The broker decodes them
  leniently (Java) and accepts any bytes, while aiokafka decodes them strictly and raised
  ``UnicodeDecodeError``. Such a fetch is read again by aiokafka's Python reader, whose header
  keys decode what is not UTF-8 as U+FFFD (``_LenientBytes``). Nothing downstream trusts such a
  key: ingest ignores a raw record's headers, and the aggregator dead-letters a clean record
  without its ``hito-raw`` header.
- **A compressed batch that unpacks to far more than it is** (a compression bomb, or millions
  of tiny records). The broker checks a batch's compressed size only, and aiokafka unpacks a
  batch whole, with no bound, then copies it. A 1 MB zstd batch of zeros unpacks to about
  33 GB, and the worker is killed for memory. A payload that does not unpack (the broker
  unpacks a batch to check it, so this is defence in depth) made aiokafka raise, as a crash.
  So every compressed batch is first unpacked into a bounded buffer, ``BATCH_UNPACKED_MAX``
  (cramjam's ``decompress_into`` stops where the buffer ends).
  - **A batch that does not fit, or does not unpack,** is refused unread. It becomes one
    ``RefusedBatch`` record at its last offset, which ingest dead-letters as ``oversized``.
    The consumer passes the offsets before it (hito.pipeline.faust.offsets).
  - **A fetch is cut at a batch boundary** once what it unpacks to passes
    ``FETCH_UNPACKED_MAX``. The fetcher reads the rest next time.

Uncompressed fetches, the hot path, pay a scan of the batch headers: about 0.3 µs a batch. The
fast reader is aiokafka's compiled one, with a delegating generator step a record: 1.10 -> 1.13
µs per record read from a 500-record fetch (best of 7, 100,000 records). The Python reader runs
only for a fetch with a refused batch, or after a header key failed to decode.

Installed by the worker's consumer (hito.pipeline.faust.consumer) into aiokafka's fetcher module,
which looks both names up when it makes a fetch's records.
"""

from __future__ import annotations

import logging
import mmap
import struct
from collections.abc import Collection, Iterator
from typing import Any, SupportsIndex

import cramjam
from aiokafka.codec import _detect_xerial_stream
from aiokafka.consumer import fetcher
from aiokafka.consumer.fetcher import PartitionRecords
from aiokafka.record import memory_records
from aiokafka.record.default_records import _DefaultRecordBatchPy
from aiokafka.record.memory_records import _MemoryRecordsPy

from hito.pipeline.faust.batches import RefusedBatch

log = logging.getLogger(__name__)

_FastRecords = memory_records.MemoryRecords  # the compiled reader, where it is built

# A device's batch unpacks to at most its producer's request size (1 MiB by default): 16 MiB
# is far above any real one. A fetch holds at most one partition's max.partition.fetch.bytes
# (1 MiB) of compressed batches, each under the cap: bounded together too.
BATCH_UNPACKED_MAX = 16 * 1024 * 1024
FETCH_UNPACKED_MAX = 64 * 1024 * 1024
_HEADER = 61  # a v2 batch's header; its records (or their compressed form) follow
_GZIP, _SNAPPY, _LZ4, _ZSTD = 1, 2, 3, 4
# The consumer thread's (+1: "more than" shows). Anonymous memory, so only the pages an
# unpacking writes are resident: a bytearray is zeroed whole, which put 16 MiB on every
# worker's RSS (the bench's modelled RSS went from 292 to 307 MB). Pages written past
# _KEEP_BYTES are given back at once.
_BUFFER = mmap.mmap(-1, BATCH_UNPACKED_MAX + 1)
_KEEP_BYTES = 1024 * 1024
_guarded: frozenset[str] = frozenset()  # the topics whose fetches plan() guards (install)
_UNPACK_INTO: dict[int, Any] = {
    _GZIP: cramjam.gzip.decompress_into,
    _LZ4: cramjam.lz4.decompress_into,
    _ZSTD: cramjam.zstd.decompress_into,
}
TOO_LARGE = f"a compressed batch that unpacks to more than {BATCH_UNPACKED_MAX} bytes"
UNREADABLE = "a compressed batch that does not unpack"


def unpacked_size(codec: int, payload: memoryview) -> int | str:
    """What a compressed batch's records unpack to, in bytes, if at most BATCH_UNPACKED_MAX;
    else why it is refused (TOO_LARGE, UNREADABLE)."""
    size_or_why = _unpack(codec, payload)
    if isinstance(size_or_why, str) or size_or_why > _KEEP_BYTES:
        _BUFFER.madvise(mmap.MADV_DONTNEED)  # what it wrote leaves the RSS
    return size_or_why


def _unpack(codec: int, payload: memoryview) -> int | str:
    try:
        if codec != _SNAPPY:
            unpack = _UNPACK_INTO.get(codec)
            if unpack is None:
                return UNREADABLE  # no such codec
            size = int(unpack(payload, _BUFFER))
        elif _detect_xerial_stream(payload):  # as aiokafka reads it: blocks, each with a length
            size, cursor = 0, 16
            while cursor < len(payload):
                (block,) = struct.unpack_from(">i", payload, cursor)
                cursor += 4
                if block < 0 or cursor + block > len(payload):
                    return UNREADABLE
                size += _snappy_block(payload[cursor : cursor + block])
                cursor += block
                if size > BATCH_UNPACKED_MAX:
                    return TOO_LARGE
        else:
            size = _snappy_block(payload)
    except _TooLarge:
        return TOO_LARGE
    except cramjam.DecompressionError as exc:
        # cramjam's words when the bounded buffer is full (zstd, lz4, gzip; a test pins them)
        return TOO_LARGE if "failed to write whole buffer" in str(exc) else UNREADABLE
    except (struct.error, ValueError):
        return UNREADABLE
    return size if size <= BATCH_UNPACKED_MAX else TOO_LARGE


class _TooLarge(Exception):
    pass


def _snappy_block(block: memoryview) -> int:
    """A raw snappy block's size unpacked (its header says it; the block is unpacked too, into
    the bounded buffer, since a header may lie)."""
    if int(cramjam.snappy.decompress_raw_len(block)) > BATCH_UNPACKED_MAX:
        raise _TooLarge
    return int(cramjam.snappy.decompress_raw_into(block, _BUFFER))


def plan(raw: bytes) -> tuple[int, dict[int, str]]:
    """How many bytes of a fetch to read now (whole batches: the fetcher fetches the rest
    again) and the batches to refuse unread (base offset -> why)."""
    refused: dict[int, str] = {}
    pos, total, end_of_fetch = 0, 0, len(raw)
    view = memoryview(raw)
    while pos + _HEADER <= end_of_fetch:
        (length,) = struct.unpack_from(">i", raw, pos + 8)
        end = pos + 12 + length
        if end > end_of_fetch or length < _HEADER - 12:
            break  # a batch cut short at the fetch's end: aiokafka leaves it too
        size = length
        codec = raw[pos + 22] & 7
        if codec and raw[pos + 16] >= 2:
            unpacked = unpacked_size(codec, view[pos + _HEADER : end])
            if isinstance(unpacked, str):
                # Counted as the cap: refusing one cost an unpacking up to it, so a fetch of
                # many small bombs is cut as a fetch of many large batches is (about 4 ms each).
                (base,) = struct.unpack_from(">q", raw, pos)
                refused[base] = unpacked
                unpacked = BATCH_UNPACKED_MAX
            size = unpacked
        if total and total + size > FETCH_UNPACKED_MAX:
            (base,) = struct.unpack_from(">q", raw, pos)
            refused.pop(base, None)  # not read in this fetch: judged when it comes again
            return pos, refused
        total += size
        pos = end
    return end_of_fetch, refused


class _LenientBytes(bytearray):
    """aiokafka's Python reader decodes a header key as ``buffer[a:b].decode("utf-8")``: a
    slice of this buffer decodes what is not UTF-8 as U+FFFD."""

    def __getitem__(self, key: SupportsIndex | slice) -> Any:
        got = super().__getitem__(key)
        return _LenientBytes(got) if isinstance(key, slice) else got

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return super().decode(encoding, "replace")


class _LenientBatch(_DefaultRecordBatchPy):  # type: ignore[misc]  # aiokafka's, untyped
    def _maybe_uncompress(self) -> None:
        super()._maybe_uncompress()  # measured first (plan): within BATCH_UNPACKED_MAX
        buffer: bytearray = self.__dict__["_buffer"]
        if not isinstance(buffer, _LenientBytes):
            self.__dict__["_buffer"] = _LenientBytes(buffer)


class _Refused:
    """What aiokafka reads of a refused batch: one record, at the batch's last offset."""

    def __init__(self, batch: _DefaultRecordBatchPy, why: str) -> None:
        self.offset = batch.next_offset - 1
        self.first_offset = batch.base_offset
        self.timestamp = batch.max_timestamp
        self.timestamp_type = batch.timestamp_type
        self.why = why


class _RefusedBatch(_DefaultRecordBatchPy):  # type: ignore[misc]  # aiokafka's, untyped
    """A refused batch: its header is read (CRC, offsets, producer), its records never."""

    why = ""

    def __iter__(self) -> Iterator[_Refused]:
        return iter([_Refused(self, self.why)])


class _LenientRecords(_MemoryRecordsPy):  # type: ignore[misc]  # aiokafka's, untyped
    """aiokafka's Python reader of a fetch's bytes, with lenient header keys and the refused
    batches as one record each, from the batch that holds offset ``resume`` on.

    aiokafka's loop skips records below the next offset to fetch, but sets that offset to each
    batch's end once the batch is read: reading again the batches before ``resume`` would move
    it back and give their successors' records twice (found by the property test). Kafka 4 keeps
    format v2 batches only, which tell where they end."""

    def __init__(self, raw: bytes, resume: int, refused: dict[int, str]) -> None:
        super().__init__(raw)
        self.refused = refused
        while (batch := self._next_slice) is not None and batch[self.MAGIC_OFFSET] >= 2:
            if _LenientBatch(batch).next_offset > resume:
                break
            self._cache_next()

    def next_batch(self, *args: Any, **kwargs: Any) -> Any:
        next_slice = self._next_slice
        batch = super().next_batch(*args, **kwargs)
        if next_slice is None or next_slice[self.MAGIC_OFFSET] < 2:
            return batch
        base = struct.unpack_from(">q", next_slice)[0]
        if base in self.refused:
            refused = _RefusedBatch(next_slice)
            refused.why = self.refused[base]
            return refused
        return _LenientBatch(next_slice)


class KeptRecords:
    """A fetch's records as aiokafka's fetcher reads them, by its compiled reader, with the
    bytes kept for a second reading; for an input topic (``guard``), only what ``plan`` lets
    through, and by the Python reader when a batch is refused."""

    __slots__ = ("has_next", "next_batch", "raw", "refused", "size_in_bytes")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.refused: dict[int, str] = {}
        self._read_by(_FastRecords(raw))

    def _read_by(self, reader: Any) -> None:
        self.has_next = reader.has_next
        self.next_batch = reader.next_batch
        self.size_in_bytes = reader.size_in_bytes

    def guard(self) -> None:
        """Read only what ``plan`` lets through (before anything is read)."""
        size, self.refused = plan(self.raw)
        if size == len(self.raw) and not self.refused:
            return
        self.raw = self.raw[:size]
        self._read_by(
            _LenientRecords(self.raw, -1, self.refused) if self.refused else _FastRecords(self.raw)
        )


class TolerantPartitionRecords(PartitionRecords):  # type: ignore[misc]  # aiokafka's, untyped
    def __init__(self, tp: Any, records: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(records, KeptRecords) and tp.topic in _guarded:
            records.guard()
        super().__init__(tp, records, *args, **kwargs)
        if isinstance(records, KeptRecords) and records.refused:
            self.__dict__["_consumer_record"] = self._refused_or_record  # this fetch only

    def _refused_or_record(self, tp: Any, record: Any) -> Any:
        if not isinstance(record, _Refused):
            return PartitionRecords._consumer_record(self, tp, record)
        log.error(
            "%s: records %d..%d are %s: refused unread (one DLQ record)",
            tp,
            record.first_offset,
            record.offset,
            record.why,
        )
        return RefusedBatch(
            tp.topic, tp.partition, record.offset, record.timestamp, record.timestamp_type,
            None, None, None, -1, -1, (), first_offset=record.first_offset, why=record.why,
        )  # fmt: skip

    def _unpack_records(self) -> Iterator[Any]:
        try:
            yield from super()._unpack_records()
        except UnicodeDecodeError:
            records = self.__dict__["_records"]
            if not isinstance(records, KeptRecords):
                raise
            log.warning(
                "%s: a record from offset %d has a header key that is not UTF-8: read leniently",
                self._tp,
                self.next_fetch_offset,
            )
            lenient = _LenientRecords(records.raw, self.next_fetch_offset, records.refused)
            self.__dict__["_records"] = lenient
            yield from super()._unpack_records()


def install(inputs: Collection[str]) -> None:
    """Make aiokafka's fetcher read fetched records through this module (idempotent), guarding
    the ``inputs`` topics' fetches with ``plan``. Only those: a refused batch is a record the
    lanes and ingest know what to do with; a changelog's records go to a table's recovery, and
    its batches are the workers' own."""
    global _guarded
    _guarded = frozenset(inputs)
    fetcher.MemoryRecords = KeptRecords
    fetcher.PartitionRecords = TolerantPartitionRecords
