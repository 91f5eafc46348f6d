"""The outbox's record decoding: whatever bytes follow, precede or cut the good records, the
reader never raises and never returns a record that was not written."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hito.device.records import FRAME_BYTES, HEADER_BYTES, Record, decode, encode
from hito.schemas.registry import SOURCES

records = st.builds(
    Record,
    seq=st.integers(0, 2**53 - 1),
    event_time_ms=st.integers(-(2**62), 2**62),
    appended_ms=st.integers(-(2**62), 2**62),
    source=st.sampled_from(SOURCES),
    event=st.binary(max_size=300),
    more_in_batch=st.booleans(),
)


def written(rs: list[Record]) -> tuple[bytes, list[int]]:
    data, offsets = b"", []
    for r in rs:
        offsets.append(len(data))
        data += encode(r)
    return data, offsets


@given(st.lists(records, max_size=8))
def test_what_is_written_reads_back(rs: list[Record]) -> None:
    data, offsets = written(rs)
    decoded = decode(data)
    assert decoded.records == list(zip(offsets, rs, strict=True))
    # The batch flag is not part of a record's equality: compared on its own.
    assert [r.more_in_batch for _, r in decoded.records] == [r.more_in_batch for r in rs]
    assert decoded.end == len(data) and decoded.problem is None


@given(st.lists(records, min_size=1, max_size=6), st.data())
def test_a_cut_keeps_exactly_the_whole_records_before_it(
    rs: list[Record], data: st.DataObject
) -> None:
    raw, offsets = written(rs)
    cut = data.draw(st.integers(0, len(raw) - 1))
    whole = [(o, r) for o, r in zip(offsets, rs, strict=True) if o + r.size <= cut]
    decoded = decode(raw[:cut])
    assert decoded.records == whole
    assert decoded.end == (whole[-1][0] + whole[-1][1].size if whole else 0)
    assert (decoded.problem is None) == (decoded.end == cut)


@settings(max_examples=300)
@given(st.lists(records, max_size=4), st.binary(min_size=1, max_size=400))
def test_garbage_after_the_records_is_never_read_as_them(rs: list[Record], junk: bytes) -> None:
    raw, offsets = written(rs)
    decoded = decode(raw + junk)
    assert decoded.records[: len(rs)] == list(zip(offsets, rs, strict=True))
    assert decoded.end >= len(raw)


@settings(max_examples=500)
@given(st.binary(max_size=2000), st.integers(0, 2000))
def test_any_bytes_decode_without_raising(raw: bytes, start: int) -> None:
    decoded = decode(raw, start=min(start, len(raw)))
    for offset, r in decoded.records:  # whatever is returned is exactly what is there
        assert raw[offset : offset + r.size] == encode(r)
    assert decoded.end <= max(len(raw), min(start, len(raw)))


@given(st.lists(records, min_size=1, max_size=5), st.data())
def test_a_flipped_bit_stops_the_reader_at_that_record(
    rs: list[Record], data: st.DataObject
) -> None:
    raw, offsets = written(rs)
    at = data.draw(st.integers(0, len(raw) - 1))
    bit = data.draw(st.integers(0, 7))
    damaged = bytearray(raw)
    damaged[at] ^= 1 << bit
    hit = max(i for i, o in enumerate(offsets) if o <= at)
    decoded = decode(bytes(damaged))
    assert decoded.records[:hit] == list(zip(offsets, rs, strict=True))[:hit]
    assert len(decoded.records) == hit  # the damaged one is never returned
    assert decoded.end == offsets[hit] and decoded.problem is not None


def test_sizes() -> None:
    r = Record(1, 2, 3, "sensor", b"{}")
    assert len(encode(r)) == r.size == HEADER_BYTES + 2 and FRAME_BYTES == 8
