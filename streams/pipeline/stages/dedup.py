"""Stage ``dedup``: per-device sequence numbers -> new, duplicate or too old; gaps counted.

State per device is small and bounded: the highest ``seq`` seen and a bitmask of which of the
``window`` numbers below it were seen (bit i <-> seq ``high - i``). An out-of-order event inside
the window is accepted once and fills its gap; one below the window cannot be told from a replay,
so it is treated as a duplicate (``stale``) and counted apart.

Gaps: ``gaps_opened`` counts sequence numbers skipped when a higher one arrived;
``gaps_filled`` counts those that arrived later. ``gaps_opened - gaps_filled`` is the number of
events lost (or still in flight) for that device.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

STAGE = "dedup"
# The worker's table of these states; its changelog is what `hito devices seq` reads back.
TABLE = "dedup-seq"


def changelog_topic(app_id: str) -> str:
    """Faust's name for the table's changelog in the app ``app_id``."""
    return f"{app_id}-{TABLE}-changelog"


class SeqOutcome(StrEnum):
    NEW = "new"
    DUPLICATE = "duplicate"
    STALE = "stale"


@dataclass(frozen=True)
class SeqState:
    high: int
    mask: int
    gaps_opened: int = 0
    gaps_filled: int = 0

    def to_json(self) -> str:
        """``"<high>:<mask, hex>:<gaps opened>:<gaps filled>"``: one small string per device (a
        dict of four entries costs four times the memory, and a worker holds one per device).
        The mask is hex since JSON codecs stop at 64-bit integers."""
        return f"{self.high}:{self.mask:x}:{self.gaps_opened}:{self.gaps_filled}"

    @classmethod
    def from_json(cls, data: str | dict[str, int | str]) -> SeqState:
        """Reads :meth:`to_json`'s string, and the dict earlier versions stored."""
        if isinstance(data, dict):
            return cls(
                high=int(data["high"]),
                mask=int(str(data["mask"]), 16),
                gaps_opened=int(data["gaps_opened"]),
                gaps_filled=int(data["gaps_filled"]),
            )
        if not isinstance(data, str):
            raise TypeError(f"dedup state is a {type(data).__name__}")
        high, mask, opened, filled = data.split(":")
        return cls(int(high), int(mask, 16), int(opened), int(filled))


def observe(state: SeqState | None, seq: int, window: int) -> tuple[SeqState, SeqOutcome]:
    """The device's next state and what this ``seq`` is. Pure; never raises for seq >= 0."""
    if state is None:
        return SeqState(high=seq, mask=1), SeqOutcome.NEW
    full = (1 << window) - 1
    if seq > state.high:
        shift = seq - state.high
        mask = ((state.mask << shift) | 1) & full if shift < window else 1
        return (
            SeqState(seq, mask, state.gaps_opened + shift - 1, state.gaps_filled),
            SeqOutcome.NEW,
        )
    offset = state.high - seq
    if offset >= window:
        return state, SeqOutcome.STALE
    bit = 1 << offset
    if state.mask & bit:
        return state, SeqOutcome.DUPLICATE
    return (
        SeqState(state.high, state.mask | bit, state.gaps_opened, state.gaps_filled + 1),
        SeqOutcome.NEW,
    )
