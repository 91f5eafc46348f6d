"""What the pipeline publishes from payload fields: the outputs a privacy purpose may feed.

One place lists every output (an InfluxDB measurement, SPEC.md "InfluxDB") with the raw payload
fields it is computed from. The privacy policy's loader checks each purpose against it: a
purpose may only name outputs listed here, must declare every field its outputs read and no
field they do not read. ``tests/unit/schemas/test_outputs.py`` checks this list against the
measurements the pipeline's point builders really write.

``pipeline`` (events per stage and outcome) and ``revisions`` (events a late upload added to a
window, per source) read no payload field and serve no purpose of the policy; they are not
listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

CHECKPOINT = "checkpoint.crossing/1"
SENSOR = "sensor.reading/1"
DRONE = "drone.telemetry/1"


@dataclass(frozen=True)
class Output:
    name: str
    description: str
    reads: MappingProxyType[str, tuple[str, ...]]  # schema -> payload fields it is made from
    over_people: bool  # counts people: small-count suppression applies


def _output(
    name: str, description: str, over_people: bool, reads: dict[str, tuple[str, ...]]
) -> Output:
    return Output(name, description, MappingProxyType(reads), over_people)


OUTPUTS: MappingProxyType[str, Output] = MappingProxyType(
    {
        o.name: o
        for o in (
            _output(
                "crossings",
                "people crossing per site, minute, direction, mode and outcome",
                True,
                {CHECKPOINT: ("direction", "mode", "outcome")},
            ),
            _output(
                "crossings_by_nationality",
                "people crossing per site, minute, direction and nationality group",
                True,
                {CHECKPOINT: ("direction", "nationality")},
            ),
            _output(
                "surge",
                "crossings per site, direction and minute against their seasonal baseline",
                False,
                {CHECKPOINT: ("direction",)},
            ),
            _output(
                "wait_time",
                "booth processing time percentiles per site, minute, direction and mode",
                True,
                {CHECKPOINT: ("direction", "mode", "processing_seconds")},
            ),
            _output(
                "repeat_crossings",
                "people who crossed more than once in a day, per site and direction",
                True,
                {CHECKPOINT: ("direction", "document_number")},
            ),
            _output(
                "sensor",
                "detections and mean value per site, minute, sensor type and geohash cell",
                False,
                {SENSOR: ("sensor_type", "lat", "lon", "detections", "value")},
            ),
            _output(
                "drone",
                "detections, fixes, mean altitude and lowest battery per site, minute, geohash",
                False,
                {DRONE: ("lat", "lon", "alt_m", "battery_pct", "detections")},
            ),
        )
    }
)
