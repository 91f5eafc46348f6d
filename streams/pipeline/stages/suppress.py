"""Small-count suppression for published aggregates over people (SPEC.md, privacy policy).

A cell counting fewer than ``k`` people is not published as such: it is merged into ``other``.
Complementary suppression: ``other`` itself must hold at least ``k`` people and at least two
cells, otherwise the smallest published cells join it, so that no published total minus the
published cells reveals a suppressed cell. When every cell together is under ``k`` the whole
group is published as ``other`` (its total is what the coarser measurement shows anyway).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def suppress(cells: Mapping[K, int], k: int) -> tuple[dict[K, int], int]:
    """(published cells, other): published cells all >= k; other is 0, or >= k from >= 2
    cells, or the whole group's total when that is under k. Nothing is lost:
    sum(published) + other == sum(cells)."""
    live = {key: n for key, n in cells.items() if n > 0}
    hidden = {key for key, n in live.items() if n < k}
    order = sorted((key for key in live if key not in hidden), key=lambda c: (live[c], repr(c)))

    def other_ok() -> bool:
        total = sum(live[c] for c in hidden)
        return total == 0 or (total >= k and len(hidden) >= 2)

    while not other_ok() and order:
        hidden.add(order.pop(0))
    published = {key: n for key, n in live.items() if key not in hidden}
    return published, sum(live[c] for c in hidden)
