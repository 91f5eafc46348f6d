"""The compact dedup state against the model (``hito.pipeline.stages.dedup``): the same outcome
and the same state (its ``to_json`` included) after any sequence of seqs, and the compact
form whenever the state has one."""

from __future__ import annotations

from itertools import accumulate

from hypothesis import given, settings
from hypothesis import strategies as st

from hito.pipeline.stages.dedup import SeqState, observe
from hito.pipeline.state import dedup_compact
from hito.pipeline.state.dedup_compact import MAX_GAPS, State, compact, full, to_json
from hito.schemas.envelope import MAX_SEQ

WINDOWS = (16, 63, 64, 65, 66, 70, 127, 128, 129, 200, 4096)
# Steps around the recent 64 and the window's edges, long jumps, and the next seq.
STEP = st.one_of(
    st.just(1),
    st.integers(-140, 140),
    st.integers(-5000, 5000),
    st.sampled_from([63, 64, 65, -63, -64, -65, -66, 4095, 4096, 4097, -4096]),
)


def _check(seqs: list[int], window: int) -> None:
    model: SeqState | None = None
    mine: State | None = None
    for seq in seqs:
        model, expected = observe(model, seq, window)
        mine, seen = dedup_compact.observe(mine, seq, window)
        assert seen is expected, (seq, window)
        assert full(mine) == model, (seq, window)
        assert to_json(mine) == model.to_json()
        assert isinstance(mine, tuple) is (compact(model, window) is not None), (seq, window)


@settings(max_examples=1500, deadline=None)
@given(
    window=st.sampled_from(WINDOWS),
    start=st.one_of(st.integers(0, 200), st.integers(0, MAX_SEQ - 20_000)),
    steps=st.lists(STEP, max_size=250),
)
def test_the_same_outcomes_and_states_as_the_model(
    window: int, start: int, steps: list[int]
) -> None:
    _check([max(0, min(MAX_SEQ, s)) for s in accumulate(steps, initial=start)], window)


@settings(max_examples=300, deadline=None)
@given(window=st.sampled_from(WINDOWS), seqs=st.lists(st.integers(0, 400), max_size=300))
def test_the_same_on_unordered_seqs(window: int, seqs: list[int]) -> None:
    _check(seqs, window)


def test_a_device_in_order_stays_compact_and_its_value_is_the_models() -> None:
    state: State | None = None
    for seq in range(10_000):
        state, _ = dedup_compact.observe(state, seq, 4096)
    assert state == (9999, 2**64 - 1, 4096 - 64, 0, 0)
    assert to_json(state) == SeqState(9999, 2**4096 - 1).to_json()


def test_an_old_hole_keeps_the_full_state_until_nothing_is_above_it() -> None:
    state, _ = dedup_compact.observe(None, 0, 4096)
    state, _ = dedup_compact.observe(state, 2, 4096)  # 1 is missing
    for seq in range(3, 65):  # the hole within the recent 64: compact
        state, _ = dedup_compact.observe(state, seq, 4096)
    assert isinstance(state, tuple)
    state, _ = dedup_compact.observe(state, 65, 4096)  # 1 is now 64 below, under seq 0
    assert isinstance(state, SeqState)
    for seq in range(66, 4096):
        state, _ = dedup_compact.observe(state, seq, 4096)
    assert isinstance(state, SeqState)
    state, _ = dedup_compact.observe(state, 4096, 4096)  # seq 0 leaves: the hole is the top
    assert state == (4096, 2**64 - 1, 4096 - 64 - 1, 1, 0)


def test_gap_counters_past_the_arrays_keep_the_full_state() -> None:
    state, _ = dedup_compact.observe(None, 0, 4096)
    state, _ = dedup_compact.observe(state, MAX_GAPS + 2, 4096)
    assert isinstance(state, SeqState) and state.gaps_opened == MAX_GAPS + 1
