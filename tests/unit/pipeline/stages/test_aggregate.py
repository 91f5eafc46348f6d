from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hito.pipeline.sinks.lines import points_for
from hito.pipeline.stages import aggregate
from hito.schemas.clean import CleanEvent

START = datetime(2026, 11, 28, 18, 30, tzinfo=UTC)


def _crossing(seq: int, device: str = "cl-chacalluta-ckpt-01", **payload: Any) -> CleanEvent:
    p = {
        "direction": "entry",
        "mode": "car",
        "nationality": "PER",
        "outcome": "admitted",
        "processing_seconds": 16.1,
        **payload,
    }
    return CleanEvent.model_validate(
        {
            "schema": "checkpoint.crossing/1",
            "source": "checkpoint",
            "policy": "p1",
            "device_id": device,
            "site": "chacalluta",
            "seq": seq,
            "event_time": START,
            "payload": p,
            "pseudonyms": {"repeat_crossings": {"document_number": "e20785:" + "0" * 32}},
        }
    )


def test_each_device_seq_counts_once_and_ranges_stay_compact() -> None:
    state = aggregate.new_state("chacalluta", START)
    for seq in [0, 1, 2, 5, 4, 3, 2, 9]:
        aggregate.add(state, _crossing(seq))
    assert state["crossings"] == {"entry|car|admitted": 7}
    assert state["seen"] == {"cl-chacalluta-ckpt-01": [[0, 5], [9, 9]]}
    assert aggregate.seen_ranges(state, "cl-chacalluta-ckpt-01") == [[0, 5], [9, 9]]
    assert state["version"] == 7


@given(seqs=st.lists(st.integers(0, 200), max_size=300))
def test_count_equals_distinct_seqs_whatever_the_order(seqs: list[int]) -> None:
    state = aggregate.new_state("chacalluta", START)
    added = [aggregate.add(state, _crossing(s)) for s in seqs]
    assert sum(added) == len(set(seqs))
    assert sum(state["crossings"].values()) == len(set(seqs))
    ranges = aggregate.seen_ranges(state, "cl-chacalluta-ckpt-01")
    assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(ranges))
    assert sum(hi - lo + 1 for lo, hi in ranges) == len(set(seqs))


def test_points_are_typed_tagged_and_suppressed() -> None:
    state = aggregate.new_state("chacalluta", START)
    for seq in range(12):
        aggregate.add(state, _crossing(seq, processing_seconds=20 if seq % 2 else 16.1))
    for seq in range(3):  # a small cell: 3 trucks
        aggregate.add(
            state, _crossing(seq, device="cl-chacalluta-ckpt-02", mode="truck", nationality="BOL")
        )
    lines = points_for(state, k=5)
    assert all(",policy=p1," in ln and ",site=chacalluta" in ln for ln in lines)
    assert all(ln.endswith(" 1795890600") for ln in lines)  # window start, seconds
    crossings = sorted(ln for ln in lines if ln.startswith("crossings,"))
    # 12 cars + 3 trucks: the truck cell is under k, so the smallest other cell joins it.
    assert crossings == [
        "crossings,direction=entry,mode=other,outcome=other,policy=p1,site=chacalluta "
        "count=15i 1795890600"
    ]
    wait = [ln for ln in lines if ln.startswith("wait_time,")]
    assert len(wait) == 1
    assert re.search(r"max_s=20(\.0)?,p50_s=20(\.0)?,p95_s=20(\.0)? ", wait[0])
    assert "i," not in wait[0].split(" ")[1] and not wait[0].split(" ")[1].endswith("i")


def test_ranges_stored_by_earlier_versions_still_count() -> None:
    # Window states restored from a changelog written before the ranges became text.
    state = aggregate.new_state("chacalluta", START)
    state["seen"]["cl-chacalluta-ckpt-01"] = [[0, 5]]
    assert not aggregate.add(state, _crossing(3))
    assert aggregate.add(state, _crossing(6))
    assert state["seen"]["cl-chacalluta-ckpt-01"] == "0-6"


def test_a_single_range_is_kept_as_text() -> None:
    state = aggregate.new_state("chacalluta", START)
    for seq in [4, 5, 3, 7]:
        aggregate.add(state, _crossing(seq))
    assert state["seen"]["cl-chacalluta-ckpt-01"] == [[3, 5], [7, 7]]
    aggregate.add(state, _crossing(6))  # fills the gap: one range again, stored as text
    assert state["seen"]["cl-chacalluta-ckpt-01"] == "3-7"
    state["seen"]["cl-chacalluta-ckpt-01"] = "3-5,9-9"  # several ranges as text: read too
    assert not aggregate.add(state, _crossing(9))
    assert aggregate.add(state, _crossing(8))
    assert aggregate.seen_ranges(state, "cl-chacalluta-ckpt-01") == [[3, 5], [8, 9]]
