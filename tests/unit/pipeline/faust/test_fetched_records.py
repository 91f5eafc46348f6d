"""The fetched-records reader (hito.pipeline.faust.header_keys): every record once, in order,
exact, whatever bytes a device put in its header keys; header keys that are UTF-8 read as
aiokafka reads them, others with U+FFFD for what does not decode."""

from __future__ import annotations

import struct

from aiokafka.consumer.fetcher import PartitionRecords
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatchBuilder

from hito.pipeline.faust.header_keys import KeptRecords, TolerantPartitionRecords

TP = TopicPartition("hito.raw.checkpoint", 0)
READ_UNCOMMITTED = 0


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


def _batch(base: int, records: list[Written], gzip: bool) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=1 if gzip else 0,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for i, (key, value, header_keys) in enumerate(records):
        headers = [(_key(h), b"v") for h in header_keys]
        assert builder.append(i, timestamp=1, key=key, value=value, headers=headers)
    out = bytearray(builder.build())
    struct.pack_into(">q", out, 0, base)  # base offset (not in the CRC)
    return bytes(out)


def _read(reader: type[PartitionRecords], records: object, start: int) -> list[tuple[object, ...]]:
    got = reader(TP, records, None, start, None, None, True, READ_UNCOMMITTED)
    return [(r.offset, r.key, r.value, r.headers) for r in got]


_written = st.tuples(
    st.binary(max_size=8),
    st.binary(max_size=16),
    st.lists(st.one_of(st.binary(max_size=6), st.text(max_size=4).map(str.encode)), max_size=3),
)
_batches = st.lists(
    st.tuples(st.lists(_written, min_size=1, max_size=6), st.booleans()), min_size=1, max_size=4
)


@settings(max_examples=300, deadline=None)
@given(_batches, st.data())
def test_every_record_comes_once_in_order_with_its_bytes(
    batches: list[tuple[list[Written], bool]], data: st.DataObject
) -> None:
    raw, expected, base = b"", [], 0
    for records, gzip in batches:
        raw += _batch(base, records, gzip)
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
    raw = _batch(7, records, gzip=False) + _batch(12, records, gzip=True)
    plain = _read(PartitionRecords, MemoryRecords(raw), 7)
    assert len(plain) == 10
    assert _read(TolerantPartitionRecords, KeptRecords(raw), 7) == plain
