"""The list of outputs (hito.schemas.outputs) is what the pipeline really writes, and each
output's ``reads`` are exactly the clean fields the pipeline's code reads to make it: the
policy loader's "every field serves a purpose" rests on this."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hito.pipeline.sinks.lines import points_for, repeat_points
from hito.pipeline.stages import aggregate, repeat
from hito.schemas.clean import CleanEvent
from hito.schemas.outputs import OUTPUTS
from hito.schemas.registry import REGISTRY

START = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
RULES = repeat.RepeatRules("repeat_crossings", 86400, 360, 1)


class Reads(dict[str, Any]):
    """A payload that records which keys were read."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)


PAYLOADS = {
    "checkpoint.crossing/1": {
        "direction": "entry",
        "mode": "car",
        "outcome": "admitted",
        "nationality": "PER",
        "processing_seconds": 30.0,
    },
    "sensor.reading/1": {
        "sensor_type": "ground",
        "geohash": "6wr7m4",
        "detections": 1,
        "value": 2.0,
    },
    "drone.telemetry/1": {
        "geohash": "6wr7m4",
        "detections": 2,
        "alt_m": 100.0,
        "battery_pct": 80.0,
    },
}


def _clean(schema: str, seq: int) -> CleanEvent:
    return CleanEvent.model_construct(
        schema_=schema,
        source=REGISTRY[schema].source,
        policy="p",
        device_id="cl-chacalluta-ckpt-01",
        site="chacalluta",
        seq=seq,
        event_time=START,
        payload=Reads(PAYLOADS[schema]),
        pseudonyms={"repeat_crossings": {"document_number": "e20790:" + "a" * 32}},
    )


def _as_clean_fields(fields: tuple[str, ...]) -> set[str]:
    return {"geohash" if f in ("lat", "lon") else f for f in fields}


def test_outputs_are_the_measurements_the_point_builders_write() -> None:
    state = aggregate.new_state("chacalluta", START)
    for seq, schema in enumerate(PAYLOADS):
        assert aggregate.add(state, _clean(schema, seq), ("hito.raw.x|0", seq))
    written = {ln.split(",", 1)[0] for ln in points_for(state, k=1)}
    written |= {ln.split(",", 1)[0] for ln in repeat_points("s", START, {"entry": 3}, "p", 1)}
    # surge points are made by the surge detector from the crossings cells.
    assert written | {"surge"} == set(OUTPUTS)


def test_each_schema_is_read_for_exactly_what_its_outputs_declare() -> None:
    for seq, schema in enumerate(PAYLOADS):
        event = _clean(schema, seq)
        assert aggregate.add(aggregate.new_state("chacalluta", START), event, ("raw|0", seq))
        repeat.sighting(event, RULES)
        read = set(event.payload.read)  # type: ignore[attr-defined]
        if event.pseudonyms and event.source == "checkpoint":
            read.add(repeat.FIELD)  # the repeat stage reads it from the pseudonyms
        declared = set().union(
            *(_as_clean_fields(o.reads.get(schema, ())) for o in OUTPUTS.values())
        )
        assert read == declared, schema


def test_the_repeat_stage_reads_the_purposes_pseudonym_and_direction_only() -> None:
    event = _clean("checkpoint.crossing/1", 7)
    seen = repeat.sighting(event, RULES)
    assert seen is not None and seen.crossing == "entry|cl-chacalluta-ckpt-01|7"
    assert event.payload.read == {"direction"}  # type: ignore[attr-defined]
    assert set(OUTPUTS["repeat_crossings"].reads["checkpoint.crossing/1"]) == {
        "direction",
        repeat.FIELD,
    }
