from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hito.pipeline.stages.suppress import suppress

K = 5


def test_small_cells_merge_into_other() -> None:
    published, other = suppress({"PER": 40, "CHL": 30, "BOL": 3, "ARG": 2}, K)
    assert published == {"PER": 40, "CHL": 30}
    assert other == 5


def test_a_single_small_cell_pulls_the_smallest_published_one_in() -> None:
    # Alone in `other`, BOL=3 would be revealed by total - PER - CHL.
    published, other = suppress({"PER": 40, "CHL": 30, "BOL": 3}, K)
    assert published == {"PER": 40}
    assert other == 33


def test_small_other_pulls_more_cells_in() -> None:
    published, other = suppress({"PER": 40, "CHL": 6, "BOL": 2, "ARG": 1}, K)
    assert published == {"PER": 40}
    assert other == 9


def test_a_small_group_is_published_only_as_other() -> None:
    assert suppress({"PER": 2, "CHL": 1}, K) == ({}, 3)
    assert suppress({}, K) == ({}, 0)
    assert suppress({"PER": 0, "CHL": 7}, K) == ({"CHL": 7}, 0)


cells = st.dictionaries(
    st.sampled_from(["PER", "CHL", "BOL", "ARG", "VEN", "COL", "BRA"]),
    st.integers(0, 30),
    max_size=7,
)


@given(cells=cells, k=st.integers(2, 10))
def test_never_publishes_a_small_cell_directly_or_by_subtraction(
    cells: dict[str, int], k: int
) -> None:
    published, other = suppress(cells, k)
    total = sum(cells.values())
    assert sum(published.values()) + other == total  # nothing lost
    assert all(n >= k for n in published.values())  # no small cell directly
    hidden = [c for c, n in cells.items() if n > 0 and c not in published]
    # By subtraction, only `other` as a whole can be recovered: it must not be one small cell.
    if other:
        assert (other >= k and len(hidden) >= 2) or not published
    for c, n in published.items():
        assert cells[c] == n
