"""The dedup stage's state in five machine integers, for the devices that have no old holes.

``SeqState`` (``hito.pipeline.stages.dedup``) keeps a ``window``-bit mask per device: 4096
bits by default, a 1 KiB hex string per mature device. Almost every device's mask is, above
its 64 most recent bits, a run of ones (every older number seen back to the device's first
one) then zeros (numbers before its first). Such a state is ``Compact``: ``(high, recent,
run, opened, filled)``, with ``recent`` the mask's low 64 bits and ``run`` the number of ones
above them, so ``mask == recent | ((1 << run) - 1) << 64``. A device with a hole older than
64 below its high keeps a ``SeqState`` until the hole leaves the window.

:func:`observe` is ``dedup.observe`` on either form: the common moves (the next seq, a small
jump, a duplicate, a fill among the recent 64, a stale one) on small integers, anything else
through ``dedup.observe`` itself; it returns the compact form whenever the state has one
(property-tested against ``dedup.observe``). :func:`to_json` gives exactly
``SeqState.to_json()``, the changelog's value. Pure.
"""

from __future__ import annotations

from hito.pipeline.stages.dedup import SeqOutcome, SeqState
from hito.pipeline.stages.dedup import observe as observe_full

Compact = tuple[int, int, int, int, int]  # (high, recent, run, opened, filled)
State = Compact | SeqState

RECENT_BITS = 64
LOW = (1 << RECENT_BITS) - 1
MAX_HIGH = 2**63 - 1  # int64 in the arrays
MAX_GAPS = 2**32 - 1  # uint32 in the arrays
_HEX_LEAD = ("", "1", "3", "7")  # hex of 0, 1, 2, 3 low ones
_NEW, _DUPLICATE, _STALE = SeqOutcome.NEW, SeqOutcome.DUPLICATE, SeqOutcome.STALE


def compact(state: SeqState, window: int) -> Compact | None:
    """``state`` as Compact, or None when it has no compact form (an old hole, bits beyond
    the window, or numbers the arrays cannot hold)."""
    high, mask, opened, filled = state.high, state.mask, state.gaps_opened, state.gaps_filled
    if not (0 <= high <= MAX_HIGH and 0 <= opened <= MAX_GAPS and 0 <= filled <= MAX_GAPS):
        return None
    if mask < 0 or mask >> window:
        return None
    old = mask >> RECENT_BITS
    if old & (old + 1):  # not a run of ones from bit 64 up
        return None
    return high, mask & LOW, old.bit_length(), opened, filled


def expand(state: Compact) -> SeqState:
    high, recent, run, opened, filled = state
    return SeqState(high, recent | (((1 << run) - 1) << RECENT_BITS), opened, filled)


def full(state: State) -> SeqState:
    return state if isinstance(state, SeqState) else expand(state)


def normal(state: SeqState, window: int) -> State:
    """The compact form when there is one, else ``state``."""
    return compact(state, window) or state


def gaps(state: State | None) -> tuple[int, int]:
    """(gaps opened, gaps filled)."""
    if state is None:
        return 0, 0
    if isinstance(state, SeqState):
        return state.gaps_opened, state.gaps_filled
    return state[3], state[4]


def to_json(state: State) -> str:
    """Exactly ``SeqState.to_json()`` of the state (the changelog's value)."""
    if isinstance(state, SeqState):
        return state.to_json()
    high, recent, run, opened, filled = state
    if not run:
        return f"{high}:{recent:x}:{opened}:{filled}"
    ones = _HEX_LEAD[run % 4] + "f" * (run // 4)
    return f"{high}:{ones}{recent:016x}:{opened}:{filled}"


def observe(state: State | None, seq: int, window: int) -> tuple[State, SeqOutcome]:
    """``dedup.observe`` on either form; the state returned is compact when it can be."""
    if state is None:
        return (seq, 1, 0, 0, 0), _NEW
    if isinstance(state, SeqState) or window <= RECENT_BITS:
        after, seen = observe_full(full(state), seq, window)
        return (normal(after, window) if after is not state else state), seen
    high, recent, run, opened, filled = state
    if seq > high:
        shift = seq - high
        if shift >= window:  # nothing of the old window remains
            if opened + shift - 1 <= MAX_GAPS:
                return (seq, 1, 0, opened + shift - 1, filled), _NEW
        elif shift < RECENT_BITS and opened + shift - 1 <= MAX_GAPS:
            out = recent >> (RECENT_BITS - shift)  # bits moving above the recent 64
            old_bits = window - RECENT_BITS
            if run and shift < old_bits:
                if out == (1 << shift) - 1:  # they extend the run
                    new_run = min(run + shift, old_bits)
                    recent = ((recent << shift) | 1) & LOW
                    return (seq, recent, new_run, opened + shift - 1, filled), _NEW
            else:  # the old run moves out of the window: what moved up is all there is
                out &= (1 << old_bits) - 1
                if not out & (out + 1):
                    recent = ((recent << shift) | 1) & LOW
                    return (seq, recent, out.bit_length(), opened + shift - 1, filled), _NEW
    else:
        offset = high - seq
        if offset >= window:
            return state, _STALE
        if offset < RECENT_BITS:
            bit = 1 << offset
            if recent & bit:
                return state, _DUPLICATE
            if filled < MAX_GAPS:
                return (high, recent | bit, run, opened, filled + 1), _NEW
        else:
            older = offset - RECENT_BITS
            if older < run:
                return state, _DUPLICATE
            if older == run and filled < MAX_GAPS:  # the run grows by one
                return (high, recent, run + 1, opened, filled + 1), _NEW
    # Anything else (a hole left behind, a long jump, counters past the arrays): the model.
    after, seen = observe_full(expand(state), seq, window)
    return normal(after, window), seen
