from __future__ import annotations

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


RAW = "hito.raw.checkpoint|0"


def test_each_raw_offset_counts_once_and_state_stays_per_partition() -> None:
    state = aggregate.new_state("chacalluta", START)
    # In order per raw partition, with a replay of a suffix (an ingest restart) in between.
    deliveries = [(RAW, 0), (RAW, 1), (RAW, 2), ("hito.raw.checkpoint|1", 7), (RAW, 1), (RAW, 2),
                  (RAW, 3), ("hito.raw.checkpoint|1", 7), ("hito.raw.checkpoint|1", 9)]  # fmt: skip
    added = [aggregate.add(state, _crossing(i), origin) for i, origin in enumerate(deliveries)]
    assert added == [True, True, True, True, False, False, True, False, True]
    assert state["crossings"] == {"entry|car|admitted": 6}
    assert state["hw"] == {RAW: 3, "hito.raw.checkpoint|1": 9}  # one mark per raw partition
    assert state["version"] == 6


@given(
    offsets=st.dictionaries(
        st.integers(0, 3), st.lists(st.integers(0, 500), min_size=1, max_size=60), max_size=4
    ),
    replays=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 60)), max_size=10),
    data=st.data(),
)
def test_count_equals_distinct_raw_records_under_any_replay(
    offsets: dict[int, list[int]], replays: list[tuple[int, int]], data: st.DataObject
) -> None:
    """Each raw partition's events arrive in offset order; a replay re-sends a suffix of what
    was sent, in order (an ingest restart from its committed offset). Partitions interleave
    arbitrarily. Whatever happens, each raw record counts exactly once."""
    streams = {p: sorted(set(o)) for p, o in offsets.items()}
    sent: dict[int, list[int]] = {p: [] for p in streams}
    arrivals: list[tuple[int, int]] = []
    cursors = dict.fromkeys(streams, 0)
    pending_replays = list(replays)
    while any(cursors[p] < len(streams[p]) for p in streams) or pending_replays:
        choices = [p for p in streams if cursors[p] < len(streams[p])]
        if pending_replays and (not choices or data.draw(st.booleans())):
            p, back = pending_replays.pop()
            if sent.get(p):
                arrivals += [(p, o) for o in sent[p][-min(back, len(sent[p])) :]]
            continue
        p = data.draw(st.sampled_from(choices))
        offset = streams[p][cursors[p]]
        cursors[p] += 1
        sent[p].append(offset)
        arrivals.append((p, offset))
    state = aggregate.new_state("chacalluta", START)
    added = sum(aggregate.add(state, _crossing(0), (f"raw|{p}", o)) for p, o in arrivals)
    assert added == sum(len(o) for o in streams.values())
    assert sum(state["crossings"].values()) == added


def test_points_are_typed_tagged_and_suppressed() -> None:
    state = aggregate.new_state("chacalluta", START)
    for seq in range(12):
        aggregate.add(state, _crossing(seq, processing_seconds=20 if seq % 2 else 16.1), (RAW, seq))
    for seq in range(3):  # a small cell: 3 trucks
        aggregate.add(
            state,
            _crossing(seq, device="cl-chacalluta-ckpt-02", mode="truck", nationality="BOL"),
            (RAW, 100 + seq),
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
