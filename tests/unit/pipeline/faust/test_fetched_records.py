"""The fetched-records reader (hito.pipeline.faust.fetched_records): every record once, in order,
exact, whatever bytes a device put in its header keys and with every codec; header keys that
are UTF-8 read as aiokafka reads them, others with U+FFFD for what does not decode; a batch
that unpacks beyond the cap, or not at all, is one refused record and never unpacked whole; a
fetch that unpacks to too much is cut at a batch boundary."""

from __future__ import annotations

import struct

import cramjam
import pytest
from aiokafka.consumer.fetcher import PartitionRecords
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.record.util import calc_crc32c
from aiokafka.structs import TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatchBuilder

from hito.pipeline.faust import fetched_records
from hito.pipeline.faust.batches import RefusedBatch
from hito.pipeline.faust.fetched_records import (
    BATCH_UNPACKED_MAX,
    TOO_LARGE,
    UNREADABLE,
    KeptRecords,
    TolerantPartitionRecords,
)

TP = TopicPartition("hito.raw.checkpoint", 0)
READ_UNCOMMITTED = 0
HEADER = 61  # a v2 batch's header


@pytest.fixture(autouse=True)
def _guarded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker guards its input topics' fetches (install); TP is one."""
    monkeypatch.setattr(fetched_records, "_guarded", frozenset({TP.topic}))


class _Key(str):
    """A header key whose bytes kafka-python writes as given (it encodes keys itself)."""

    raw: bytes

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


def _key(raw: bytes) -> _Key:
    key = _Key("k")
    key.raw = raw
    return key


Written = tuple[bytes, bytes, list[bytes]]  # key, value, header keys' bytes


_CODECS = {  # Kafka's codec ids; what the payload of a batch so compressed is
    0: None,
    1: cramjam.gzip.compress,
    2: cramjam.snappy.compress_raw,  # aiokafka also reads xerial's blocks
    3: cramjam.lz4.compress,
    4: cramjam.zstd.compress,
}


def _with_payload(batch: bytes, codec: int, payload: bytes) -> bytes:
    """``batch`` with its records replaced by ``payload`` under ``codec`` (length, attributes
    and CRC made to match)."""
    out = bytearray(batch[:HEADER] + payload)
    struct.pack_into(">i", out, 8, len(out) - 12)
    (attributes,) = struct.unpack_from(">h", out, 21)
    struct.pack_into(">h", out, 21, (attributes & ~7) | codec)
    struct.pack_into(">I", out, 17, calc_crc32c(bytes(out[21:])))
    return bytes(out)


def _batch(base: int, records: list[Written], codec: int | bool) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 30,
    )
    for i, (key, value, header_keys) in enumerate(records):
        headers = [(_key(h), b"v") for h in header_keys]
        assert builder.append(i, timestamp=1, key=key, value=value, headers=headers)
    out = bytearray(builder.build())
    struct.pack_into(">q", out, 0, base)  # base offset (not in the CRC)
    compress = _CODECS[int(codec)]
    if compress is None:
        return bytes(out)
    return _with_payload(bytes(out), int(codec), bytes(compress(bytes(out[HEADER:]))))


def _read(reader: type[PartitionRecords], records: object, start: int) -> list[tuple[object, ...]]:
    got = reader(TP, records, None, start, None, None, True, READ_UNCOMMITTED)
    return [(r.offset, r.key, r.value, r.headers) for r in got]


_written = st.tuples(
    st.binary(max_size=8),
    st.binary(max_size=16),
    st.lists(st.one_of(st.binary(max_size=6), st.text(max_size=4).map(str.encode)), max_size=3),
)
_batches = st.lists(
    st.tuples(st.lists(_written, min_size=1, max_size=6), st.sampled_from(sorted(_CODECS))),
    min_size=1,
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(_batches, st.data())
def test_every_record_comes_once_in_order_with_its_bytes(
    batches: list[tuple[list[Written], int]], data: st.DataObject
) -> None:
    raw, expected, base = b"", [], 0
    for records, codec in batches:
        raw += _batch(base, records, codec)
        for i, (key, value, header_keys) in enumerate(records):
            headers = tuple((h.decode("utf-8", "replace"), b"v") for h in header_keys)
            expected.append((base + i, key, value, headers))
        base += len(records)
    # A fetch returns batches from the one that holds the fetch offset (the broker's rule).
    start = data.draw(st.integers(0, len(batches[0][0]) - 1))
    wanted = [r for r in expected if isinstance(r[0], int) and r[0] >= start]
    assert _read(TolerantPartitionRecords, KeptRecords(raw), start) == wanted


def test_records_whose_header_keys_are_utf8_read_as_aiokafka_reads_them() -> None:
    records = [(b"k%d" % i, b"v%d" % i, [b"trace", "é".encode()]) for i in range(5)]
    raw = b"".join(_batch(7 + 5 * n, records, codec) for n, codec in enumerate(sorted(_CODECS)))
    plain = _read(PartitionRecords, MemoryRecords(raw), 7)
    assert len(plain) == 5 * len(_CODECS)
    assert _read(TolerantPartitionRecords, KeptRecords(raw), 7) == plain


def _ok(base: int, n: int) -> bytes:
    return _batch(base, [(b"k%d" % i, b"v%d" % i, []) for i in range(n)], 0)


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_a_batch_that_unpacks_beyond_the_cap_is_one_refused_record(codec: int) -> None:
    """Zeros, a byte more than the cap: zstd makes 1 KB of them. aiokafka unpacked a batch
    whole, with no bound (1 MB of zstd zeros is about 33 GB): the worker was killed for
    memory."""
    bomb = _batch(3, [(b"k", bytes(BATCH_UNPACKED_MAX + 1), []), (b"k", b"v", [])], codec)
    assert len(bomb) < 4 << 20
    raw = _ok(0, 3) + bomb + _ok(5, 2)
    got = list(TolerantPartitionRecords(TP, KeptRecords(raw), None, 0, None, None, True, 0))
    assert [r.offset for r in got] == [0, 1, 2, 4, 5, 6]
    refused = got[3]
    assert type(refused) is RefusedBatch
    assert (refused.first_offset, refused.offset, refused.why) == (3, 4, TOO_LARGE)
    assert (refused.key, refused.value) == (None, None)
    assert [r.value for r in got if r is not refused] == [b"v0", b"v1", b"v2", b"v0", b"v1"]


def test_a_batch_that_does_not_unpack_is_refused() -> None:
    """aiokafka raised on it (a negative xerial snappy block length, a payload that is not
    zstd): the crash of every worker that took the partition."""
    xerial = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1) + struct.pack(">i", -5) + b"x" * 8
    raw = (
        _ok(0, 1)
        + _with_payload(_ok(1, 2), 2, xerial)
        + _with_payload(_ok(3, 2), 4, b"not zstd at all")
        + _ok(5, 1)
    )
    got = list(TolerantPartitionRecords(TP, KeptRecords(raw), None, 0, None, None, True, 0))
    assert [(r.offset, type(r) is RefusedBatch) for r in got] == [
        (0, False), (2, True), (4, True), (5, False)
    ]  # fmt: skip
    assert [r.why for r in got if type(r) is RefusedBatch] == [UNREADABLE, UNREADABLE]
    assert [r.first_offset for r in got if type(r) is RefusedBatch] == [1, 3]


def test_a_fetch_that_unpacks_to_too_much_is_cut_at_a_batch_boundary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Millions of tiny records compress to little: each batch under the cap, a fetch of them
    would still be read whole into memory. The fetch stops at the batch that would pass the
    fetch's cap (the fetcher fetches the rest); its first batch is always read."""
    batches = [_batch(10 * n, [(b"k", bytes(300), [])] * 10, 1) for n in range(5)]
    unpacked = len(_ok(0, 10)) - HEADER + 10 * 300  # about 3.2 KB a batch
    monkeypatch.setattr(fetched_records, "FETCH_UNPACKED_MAX", 2 * unpacked + 100)
    kept = KeptRecords(b"".join(batches))
    kept.guard()  # as the reader of an input partition's fetch does
    assert kept.raw == batches[0] + batches[1]
    got = list(TolerantPartitionRecords(TP, kept, None, 0, None, None, True, 0))
    assert [r.offset for r in got] == list(range(20))
    monkeypatch.setattr(fetched_records, "FETCH_UNPACKED_MAX", 1)
    one = KeptRecords(b"".join(batches))
    one.guard()
    assert one.raw == batches[0]
    assert BATCH_UNPACKED_MAX == 16 << 20


def test_a_changelog_fetch_is_read_as_aiokafka_reads_it() -> None:
    """Only input topics are guarded: a changelog's records go to a table's recovery, which
    has no use for a refused batch, and its batches are the workers' own."""
    changelog = TopicPartition("hito-agg-windows-changelog", 0)
    big = _batch(0, [(b"k", bytes(BATCH_UNPACKED_MAX + 1), [])], 4)
    got = list(TolerantPartitionRecords(changelog, KeptRecords(big), None, 0, None, None, True, 0))
    assert [(type(r) is RefusedBatch, len(r.value)) for r in got] == [
        (False, BATCH_UNPACKED_MAX + 1)
    ]


def test_refused_batches_count_as_the_cap_so_a_fetch_of_bombs_is_cut_too() -> None:
    """Refusing a batch costs an unpacking up to the cap (about 4 ms): a fetch of many small
    bombs (1 KB each) is cut after four, as a fetch of four batches at the cap is."""
    bombs = [_batch(n, [(b"k", bytes(BATCH_UNPACKED_MAX + 1), [])], 4) for n in range(6)]
    kept = KeptRecords(b"".join(bombs))
    kept.guard()
    assert kept.raw == b"".join(bombs[:4])
    assert sorted(kept.refused) == [0, 1, 2, 3]
