"""Schema registry: the envelope's ``schema`` field selects the model and the source.

A ``/2`` of a schema is added as a new entry beside its ``/1``; both stay valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hito.schemas.envelope import (
    CheckpointCrossingEvent,
    DroneTelemetryEvent,
    Event,
    SensorReadingEvent,
)

Source = Literal["checkpoint", "sensor", "drone"]
SOURCES: tuple[Source, ...] = ("checkpoint", "sensor", "drone")


@dataclass(frozen=True)
class SchemaEntry:
    name: str
    source: Source
    model: type[Event]

    @property
    def payload_fields(self) -> tuple[str, ...]:
        payload_model = self.model.model_fields["payload"].annotation
        assert isinstance(payload_model, type)
        return tuple(payload_model.model_fields)

    @property
    def file_stem(self) -> str:
        return self.name.replace("/", ".v")


REGISTRY: dict[str, SchemaEntry] = {
    e.name: e
    for e in (
        SchemaEntry("checkpoint.crossing/1", "checkpoint", CheckpointCrossingEvent),
        SchemaEntry("sensor.reading/1", "sensor", SensorReadingEvent),
        SchemaEntry("drone.telemetry/1", "drone", DroneTelemetryEvent),
    )
}


def lookup(name: str) -> SchemaEntry | None:
    return REGISTRY.get(name)
