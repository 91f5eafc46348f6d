"""DedupArrays: any stored value reads back as itself (compact, sparse, unregistered or
unreadable), states follow their devices across registry reloads, revoked partitions go."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hito.devices import Device, DeviceRegistry
from hito.pipeline.stages.dedup import SeqState, observe
from hito.pipeline.state.dedup_arrays import DedupArrays, UnreadableState

WINDOW = 4096


def _devices(names: list[str]) -> list[Device]:
    return [Device(n, f"site-{i % 2}", "sensor", b"k" * 16) for i, n in enumerate(names)]


def _registry(names: list[str]) -> DeviceRegistry:
    return DeviceRegistry(_devices(names))


def _state(seqs: list[int]) -> SeqState:
    state: SeqState | None = None
    for seq in seqs:
        state, _ = observe(state, seq, WINDOW)
    assert state is not None
    return state


@settings(max_examples=200, deadline=None)
@given(
    seqs=st.lists(st.lists(st.integers(0, 9000), min_size=1, max_size=40), min_size=1, max_size=8)
)
def test_any_state_reads_back_as_its_changelog_value(seqs: list[list[int]]) -> None:
    names = [f"dev-{i}" for i in range(len(seqs))]
    arrays = DedupArrays(WINDOW, _registry(names[: len(names) // 2]))  # half unregistered
    values = {name: _state(s).to_json() for name, s in zip(names, seqs, strict=True)}
    for name, value in values.items():
        arrays.apply(name, value, 0)
    assert dict(arrays) == values
    arrays.follow(_registry(names))  # all registered now: they move into the arrays
    assert dict(arrays) == values and not arrays.others
    arrays.follow(_registry([]))  # none: they wait in others
    assert dict(arrays) == values and len(arrays.others) == len(values)


def test_states_follow_their_devices_across_registry_reloads() -> None:
    arrays = DedupArrays(WINDOW, _registry(["a-1", "b-1", "c-1"]))
    sparse = _state([0, 2, *range(3, 200)])  # an old hole: no compact form
    arrays.put(0, (10, 1, 0, 0, 0), 0)
    arrays.put(2, sparse, 1)
    appended = _registry(["a-1", "b-1", "c-1", "d-1"])
    arrays.follow(appended)
    assert arrays.state(0) == (10, 1, 0, 0, 0) and arrays.state(2) == sparse
    assert arrays.state(1) is None and arrays.state(3) is None
    reordered = _registry(["c-1", "d-1", "a-1"])
    arrays.follow(reordered)
    assert arrays.state(0) == sparse and arrays.state(2) == (10, 1, 0, 0, 0)
    assert arrays.sparse == {0: sparse}
    assert dict(arrays) == {"c-1": sparse.to_json(), "a-1": "10:1:0:0"}


def test_revoked_partitions_are_forgotten() -> None:
    arrays = DedupArrays(WINDOW, _registry(["a-1", "b-1", "c-1"]))
    arrays.put(0, (10, 1, 0, 0, 0), 0)
    arrays.put(1, _state([0, 2, *range(3, 200)]), 1)
    arrays.apply("gone-1", "7:1:0:0", 1)  # no longer registered
    arrays.apply("gone-2", "8:1:0:0", 0)
    arrays.keep_partitions({0})
    assert dict(arrays) == {"a-1": "10:1:0:0", "gone-2": "8:1:0:0"}
    assert not arrays.sparse


def test_an_unreadable_value_is_kept_as_stored_until_overwritten() -> None:
    arrays = DedupArrays(WINDOW, _registry(["a-1"]))
    arrays.apply("a-1", {"high": "x"}, 0)
    stored: object = arrays["a-1"]
    assert stored == {"high": "x"}
    with pytest.raises(UnreadableState):
        arrays.state(0)
    arrays.put(0, (3, 1, 0, 0, 0), 0)
    assert arrays.state(0) == (3, 1, 0, 0, 0) and arrays["a-1"] == "3:1:0:0"


def test_a_tombstone_deletes_and_the_mapping_counts() -> None:
    arrays = DedupArrays(WINDOW, _registry(["a-1", "b-1"]))
    arrays["a-1"] = "4:f:1:0"
    arrays["z-9"] = "1:1:0:0"
    assert len(arrays) == 2 and set(arrays) == {"a-1", "z-9"}
    arrays.apply("a-1", None, 0)
    assert "a-1" not in arrays and len(arrays) == 1
    with pytest.raises(KeyError):
        del arrays["a-1"]


def test_missing_is_gaps_opened_minus_filled_never_below_zero() -> None:
    arrays = DedupArrays(WINDOW, _registry(["a-1", "b-1", "c-1", "d-1"]))
    arrays.put(0, (10, 1, 0, 5, 2), 0)
    arrays.put(1, (10, 1, 0, 0, 3), 0)  # fills before the first event: more than opened
    arrays.put(2, _state([0, 2, *range(3, 200), 250]), 0)  # sparse: seq 1, then 200-249
    missing = arrays.missing()
    assert missing is not None and missing.tolist() == [3, 0, 51, 0]
