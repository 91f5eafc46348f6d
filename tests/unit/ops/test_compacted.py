"""The newest value of a key of a compacted topic: a later record replaces an earlier one, a
tombstone deletes it, each partition counts apart, a wanted record that is not JSON is
refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hito.ops.compacted import Latest, Record, latest_values

KEYS = ["ck-01", "ck-02", "dr-07"]


def _record(key: str, value: Any, at_ms: int = 0, partition: int = 0) -> Record:
    """As a Faust table writes its changelog: key and value JSON-encoded."""
    encoded = None if value is None else json.dumps(value).encode()
    return Record(json.dumps(key).encode(), encoded, at_ms, partition)


def test_a_key_never_written_has_no_value() -> None:
    assert latest_values([_record("ck-02", "9:1:0:0")], ["ck-01"]) == [Latest("ck-01")]


def test_when_and_where_the_newest_value_was_written() -> None:
    records = [
        _record("ck-01", "1:1:0:0", 1_000, 2),
        _record("ck-01", "5:11:3:0", 1_764_900_000_000, 2),
    ]
    [found] = latest_values(records, ["ck-01"])
    assert found == Latest("ck-01", "5:11:3:0", datetime(2025, 12, 5, 2, 0, tzinfo=UTC), 2)


def test_a_wanted_record_that_is_not_json_is_refused() -> None:
    key = json.dumps("ck-01").encode()
    with pytest.raises(ValueError):
        latest_values([Record(key, b"5:1:0:0", 0, 0)], ["ck-01"])  # a bare string
    # Other keys' records are not decoded (a changelog of a million keys is read in full).
    assert latest_values([Record(b"ck-02", b"?", 0, 0), Record(None, None, 0, 0)], ["ck-01"]) == [
        Latest("ck-01")
    ]


def test_a_key_in_two_partitions_is_shown_in_both() -> None:
    records = [_record("ck-01", "9:1:0:0", 5, partition=4), _record("ck-01", "7:1:0:0", 6, 1)]
    found = latest_values(records, ["ck-01"])
    assert [(f.partition, f.value) for f in found] == [(1, "7:1:0:0"), (4, "9:1:0:0")]


@given(
    st.lists(st.tuples(st.sampled_from(KEYS), st.none() | st.text(max_size=8)), max_size=40),
    st.lists(st.sampled_from([*KEYS, "unknown-9"]), min_size=1, max_size=6),
)
def test_the_last_record_of_each_key_wins(
    writes: list[tuple[str, str | None]], wanted: list[str]
) -> None:
    records = [_record(key, value, at_ms=i) for i, (key, value) in enumerate(writes)]
    last: dict[str, str | None] = {}
    for key, value in writes:
        last[key] = value
    found = latest_values(records, wanted)
    assert [f.key for f in found] == list(dict.fromkeys(wanted))
    assert all(f.value == last.get(f.key) for f in found)
    assert all((f.partition is None) == (f.key not in last) for f in found)
