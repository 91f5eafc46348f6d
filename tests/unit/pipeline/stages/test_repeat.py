from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from hito.pipeline.sinks.lines import repeat_points
from hito.pipeline.stages import repeat
from hito.schemas.clean import CleanEvent

DAY = 86400
RULES = repeat.RepeatRules("repeat_crossings", DAY, 360, 5)
E = 20790  # 2026-12-03


def _clean(seq: int, person: str | None, direction: str = "entry") -> CleanEvent:
    return CleanEvent.model_validate(
        {
            "schema": "checkpoint.crossing/1",
            "source": "checkpoint",
            "policy": "p",
            "device_id": "pe-santarosa-ckpt-01",
            "site": "santa-rosa",
            "seq": seq,
            "event_time": "2026-12-03T10:00:00Z",
            "payload": {"direction": direction, "mode": "bus"},
            "pseudonyms": {"repeat_crossings": {"document_number": person}} if person else {},
        }
    )


def test_a_sighting_is_the_persons_crossing_in_the_pseudonyms_epoch() -> None:
    person = f"e{E}:" + "ab" * 16
    seen = repeat.sighting(_clean(4, person, "exit"), RULES)
    assert seen == repeat.Sighting("santa-rosa", E, person, "exit|pe-santarosa-ckpt-01|4")
    assert seen.name == f"santa-rosa|{person}"
    assert repeat.day_of(seen.name) == ("santa-rosa", E)
    # No pseudonym (no document, or its key destroyed): nothing to recognise.
    assert repeat.sighting(_clean(5, None), RULES) is None
    other = repeat.RepeatRules("another_purpose", DAY, 360, 5)
    assert repeat.sighting(_clean(6, person), other) is None


def test_recording_a_crossing_twice_changes_nothing() -> None:
    once = repeat.record(None, "entry|d|1")
    assert once == ["entry|d|1"]
    twice = repeat.record(once, "exit|d|2")
    assert twice == ["entry|d|1", "exit|d|2"]
    assert repeat.record(twice, "entry|d|1") is None


def test_cells_count_people_with_two_crossings_in_a_direction() -> None:
    people = [
        ["entry|a|1", "entry|a|2"],  # twice in: counted in entry
        ["entry|a|3", "exit|a|4"],  # a round trip: once each way, counted nowhere
        ["exit|a|5", "exit|b|1", "exit|b|2", "entry|b|3", "entry|b|4"],  # both
        ["exit|a|6"],
    ]
    assert repeat.day_cells(people) == {"entry": 2, "exit": 1}


def test_a_cell_under_k_is_not_published_at_all() -> None:
    assert repeat.publishable({"entry": 5, "exit": 4}, 5) == {"entry": 5}
    lines = repeat_points("santa-rosa", RULES.day_start(E), {"entry": 5, "exit": 4}, "p1", 5)
    assert lines == [
        "repeat_crossings,direction=entry,policy=p1,site=santa-rosa count=5i 1796256000"
    ]
    assert repeat_points("santa-rosa", RULES.day_start(E), {"exit": 4}, "p1", 5) == []


def test_a_day_closes_at_its_end_plus_the_grace() -> None:
    end = datetime(2026, 12, 4, tzinfo=UTC)
    assert RULES.day_start(E) == end - timedelta(days=1)
    assert not RULES.closed(E, end + timedelta(seconds=359))
    assert RULES.closed(E, end + timedelta(seconds=360))


crossing = st.tuples(
    st.integers(0, 30),  # person
    st.sampled_from(["entry", "exit"]),
    st.sampled_from(["d1", "d2", "d3"]),
    st.integers(0, 40),  # seq
)


@given(crossings=st.lists(crossing, max_size=200), replays=st.lists(st.integers(0, 199)))
def test_cells_equal_an_independent_count_whatever_is_delivered_again(
    crossings: list[tuple[int, str, str, int]], replays: list[int]
) -> None:
    # A device's seq is one event: keep the first crossing drawn for each (device, seq).
    events: dict[tuple[str, int], tuple[int, str]] = {}
    for person, direction, device, seq in crossings:
        events.setdefault((device, seq), (person, direction))
    delivered = list(events.items())
    delivered += [delivered[i % len(delivered)] for i in replays] if delivered else []
    state: dict[int, list[str]] = {}
    for (device, seq), (person, direction) in delivered:
        after = repeat.record(state.get(person), f"{direction}|{device}|{seq}")
        if after is not None:
            state[person] = after
    per_person: defaultdict[tuple[int, str], int] = defaultdict(int)
    for person, direction in events.values():
        per_person[(person, direction)] += 1
    expected = Counter(d for (_, d), n in per_person.items() if n >= 2)
    assert repeat.day_cells(state.values()) == dict(expected)
