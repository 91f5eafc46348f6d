"""Revisions and the archive in line protocol."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import orjson

from hito.pipeline.sinks.lines import archive_line, points_for
from hito.pipeline.stages import aggregate

START = datetime(2026, 12, 3, 13, 0, tzinfo=UTC)


def test_a_revised_window_publishes_one_revisions_point_per_source() -> None:
    state = aggregate.new_state("chacalluta", START)
    state["policy"] = "p1"
    state["sensor"] = {
        "ground|6mk4bb": {"detections": 3, "readings": 2, "value_sum": 0.0, "values": 0}
    }
    state["revisions"] = {"sensor": 2, "checkpoint": 7}
    state["revised_at"] = 1_796_310_000
    revisions = [ln for ln in points_for(state, 5) if ln.startswith("revisions,")]
    ts = int(START.timestamp())
    tags = "revisions,policy=p1,site=chacalluta"
    assert revisions == [
        f"{tags},source=checkpoint events=7i,revised_at=1796310000i {ts}",
        f"{tags},source=sensor events=2i,revised_at=1796310000i {ts}",
    ]
    del state["revisions"], state["revised_at"]
    assert not [ln for ln in points_for(state, 5) if ln.startswith("revisions,")]


def test_the_archive_line_carries_the_whole_state_back() -> None:
    state = aggregate.new_state("santa-rosa", START)
    state["crossings"] = {"entry|car|admitted": 2}
    state["hw"] = {"hito.raw.checkpoint|3": 10**12}
    state["wait"] = {"entry|car": {"n": 2, "max": 41.5, "b": [0, 1, 1]}}
    line = archive_line(state)
    found = re.fullmatch(r'window_state,site=santa-rosa state="(.*)" (\d+)', line)
    assert found is not None
    text = re.sub(r'\\(["\\])', r"\1", found.group(1))
    assert orjson.loads(text) == state
    assert int(found.group(2)) == int(START.timestamp())
