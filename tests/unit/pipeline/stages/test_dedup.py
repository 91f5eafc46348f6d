from __future__ import annotations

import json

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from hito.pipeline.stages.dedup import SeqOutcome, SeqState, observe

W = 16


def _run(seqs: list[int], window: int = W) -> tuple[SeqState | None, list[SeqOutcome]]:
    state: SeqState | None = None
    outcomes = []
    for seq in seqs:
        state, outcome = observe(state, seq, window)
        outcomes.append(outcome)
    return state, outcomes


def test_in_order_stream_is_all_new_without_gaps() -> None:
    state, outcomes = _run(list(range(100)))
    assert outcomes == [SeqOutcome.NEW] * 100
    assert state == SeqState(high=99, mask=(1 << W) - 1, gaps_opened=0, gaps_filled=0)


def test_repeat_is_a_duplicate_and_does_not_change_state() -> None:
    state, outcomes = _run([0, 1, 2, 2, 1, 0])
    assert outcomes[3:] == [SeqOutcome.DUPLICATE] * 3
    assert state is not None and state.high == 2


def test_gap_is_counted_and_filled_by_a_late_event() -> None:
    state, outcomes = _run([0, 1, 5])
    assert state is not None and (state.gaps_opened, state.gaps_filled) == (3, 0)
    state, outcomes = _run([0, 1, 5, 3, 3])
    assert outcomes == [SeqOutcome.NEW] * 4 + [SeqOutcome.DUPLICATE]
    assert state is not None and (state.gaps_opened, state.gaps_filled) == (3, 1)


def test_older_than_the_window_is_stale() -> None:
    state, outcomes = _run([0, 40, 10])
    assert outcomes == [SeqOutcome.NEW, SeqOutcome.NEW, SeqOutcome.STALE]
    assert state is not None and state.gaps_opened == 39


def test_state_round_trips_through_json_codecs_with_a_full_window() -> None:
    # A 4096-bit window mask once crashed the agent: JSON codecs stop at 64-bit integers.
    state, _ = _run([0, 3, 2, 4095, 5000], window=4096)
    assert state is not None and state.mask.bit_length() > 64
    for codec in (json, orjson):
        assert SeqState.from_json(codec.loads(codec.dumps(state.to_json()))) == state


@settings(max_examples=300, deadline=None)
@given(seqs=st.lists(st.integers(0, 60), max_size=120))
def test_matches_a_reference_set_within_the_window(seqs: list[int]) -> None:
    """Against a plain set: NEW exactly for first sightings that are inside the window."""
    seen: set[int] = set()
    high = -1
    state: SeqState | None = None
    for seq in seqs:
        state, outcome = observe(state, seq, W)
        if high >= 0 and seq <= high - W:
            assert outcome is SeqOutcome.STALE
        elif seq in seen:
            assert outcome is SeqOutcome.DUPLICATE
        else:
            assert outcome is SeqOutcome.NEW
            seen.add(seq)
        high = max(high, seq)
    if state is not None:
        assert state.high == high
        assert state.mask < (1 << W)
