from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson
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


def test_a_direction_under_k_publishes_its_count_but_no_times() -> None:
    """One truck southbound at 4 a.m.: suppression publishes the direction as one group, and
    its wait_time point was that driver's exact processing time (p50 = p95 = max)."""
    state = aggregate.new_state("chacalluta", START)
    aggregate.add(state, _crossing(0, direction="exit", mode="truck", processing_seconds=73.4),
                  (RAW, 0))  # fmt: skip
    lines = points_for(state, k=5)
    assert [ln.split(",")[0] for ln in lines] == ["crossings", "crossings_by_nationality"]
    assert not any("73.4" in ln for ln in lines)
    for seq in range(1, 5):  # k people now: the times are theirs together
        aggregate.add(state, _crossing(seq, direction="exit", mode="truck"), (RAW, seq))
    assert any(ln.startswith("wait_time,direction=exit") for ln in points_for(state, k=5))


def _reading(**payload: Any) -> CleanEvent:
    p = {"sensor_type": "environment", "geohash": "6ur2x", "detections": 0, **payload}
    return CleanEvent.model_validate(
        {
            "schema": "sensor.reading/1",
            "source": "sensor",
            "policy": "p1",
            "device_id": "sensor-concordia-01",
            "site": "concordia",
            "seq": 1,
            "event_time": START,
            "payload": p,
        }
    )


def test_what_a_count_cannot_take_is_named_never_counted() -> None:
    """A clean event ingest could not have made (another writer, an older version): named by
    its field, so the agent dead-letters it before ``add`` could fail part-way or a sum turn
    infinite (2 x DBL_MAX was inf; the changelog's JSON stored it as null; the next reading
    there failed every batch of its partition after a restart)."""
    assert aggregate.unfit(_reading(value=1e9)) is None
    assert aggregate.unfit(_reading(value=None)) is None
    assert aggregate.unfit(_reading()) is None
    assert aggregate.unfit(_crossing(1)) is None
    assert aggregate.unfit(_reading(value=1.7976931348623157e308)) == (
        "payload field value is not a bounded number"
    )
    assert aggregate.unfit(_reading(value=float("nan"))) is not None
    assert aggregate.unfit(_reading(detections="3")) is not None
    assert aggregate.unfit(_crossing(1, mode="car|bus")) == "payload field mode is not a name"
    assert aggregate.unfit(_crossing(1, direction=None)) == "payload field direction is not a name"
    missing = _crossing(1).model_copy(update={"payload": {"direction": "entry"}})
    assert aggregate.unfit(missing) == "payload field mode is not a name"


def test_a_window_of_fit_events_survives_its_json_changelog() -> None:
    state = aggregate.new_state("concordia", START)
    for offset, value in enumerate([1e9, 1e9, -3.5, None]):
        event = _reading(value=value)
        assert aggregate.unfit(event) is None
        aggregate.add(state, event, ("hito.raw.sensor|0", offset))
    assert orjson.loads(orjson.dumps(state)) == state
    assert state["sensor"]["environment|6ur2x"]["value_sum"] == 2e9 - 3.5
