"""The newest value of a key of a compacted topic: a later record replaces an earlier one, a
tombstone deletes it, a record that is not JSON is refused; and `hito devices seq`, which shows
a silenced device the seq its SDK must start from."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from hito.cli import app
from hito.ops import compacted
from hito.ops.compacted import Latest, Record, latest_values
from hito.pipeline.stages.dedup import observe

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


def test_a_record_that_is_not_json_or_has_no_key_is_refused() -> None:
    with pytest.raises(ValueError, match="without a key"):
        latest_values([Record(None, b'"1:1:0:0"', 0, 4)], ["ck-01"])
    with pytest.raises(ValueError):
        latest_values([Record(b"ck-01", b'"1:1:0:0"', 0, 0)], ["ck-01"])  # a bare key


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


def test_devices_seq_shows_a_silenced_device_the_seq_to_start_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A device that once sent 2^40 (a corrupt counter): nothing below it is new any more."""
    state = None
    for seq in (0, 1, 2, 5, 2**40):  # 3 and 4 lost on the way
        state, _ = observe(state, seq, 4096)
    assert state is not None
    asked: list[tuple[str, list[str]]] = []

    def read_latest(settings: object, topic: str, keys: list[str], **_: object) -> list[Latest]:
        asked.append((topic, list(keys)))
        at = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
        return [Latest("ck-01", state.to_json(), at, 3), Latest("ck-09")]

    monkeypatch.setattr(compacted, "read_latest", read_latest)
    shown = CliRunner().invoke(app, ["devices", "seq", "ck-01", "ck-09", "--app-id", "hito-x"])
    assert shown.exit_code == 0, shown.output
    assert asked == [("hito-x-dedup-seq-changelog", ["ck-01", "ck-09"])]
    [ck01] = [line for line in shown.output.splitlines() if "ck-01" in line]
    assert f"{2**40 + 1}" in ck01 and f"{2**40 - 6 + 2:,}" in ck01
    [ck09] = [line for line in shown.output.splitlines() if "ck-09" in line]
    assert "│ 0 " in ck09
